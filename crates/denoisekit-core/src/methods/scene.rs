//! Synthetic fluorescence-like scenes: dots (sub-resolution beads), rings (membranes,
//! shells in 3D) and curved filaments on a dim background, blurred by a Gaussian PSF.
//! What the test phantom ([`crate::phantom`]) adds noise to, and what `zs_n2n`'s
//! `training = synthetic` learns from (RLN's finding: networks trained on such scenes,
//! blurred by the microscope's PSF and carrying its noise, carry over to real cells).
//!
//! # References
//! Y. Li et al., "Incorporating the image formation process into deep learning improves
//! network performance", Nature Methods 19, 2022, doi:10.1038/s41592-022-01652-7.

use crate::rng::Rng;
use crate::volume::Volume;
use ndarray::Array3;

/// A scene of `(depth, height, width)` in about [0, 1] (background 0.05), blurred by a
/// Gaussian PSF of standard deviation `psf_sigma` pixels (also across planes when `depth
/// > 1`), drawn from `rng`. The number of structures grows with the area.
pub fn draw((d, h, w): (usize, usize, usize), psf_sigma: f64, rng: &mut Rng) -> Volume {
    let mut obj = Array3::<f32>::from_elem((d, h, w), 0.05);
    let area = (h * w) as f64 / (256.0 * 256.0);
    let n_rings = (6.0 * area).ceil() as usize;
    let n_fil = (5.0 * area).ceil() as usize;
    let n_dots = (60.0 * area * d as f64).ceil() as usize;
    let zc = |rng: &mut Rng| rng.uniform() * d as f64;
    for _ in 0..n_rings {
        let (cz, cy, cx) = (zc(rng), rng.uniform() * h as f64, rng.uniform() * w as f64);
        let r = 6.0 + rng.uniform() * 20.0;
        let a = 0.3 + rng.uniform() * 0.5;
        for ((z, y, x), p) in obj.indexed_iter_mut() {
            let dz = if d > 1 { z as f64 - cz } else { 0.0 };
            let dist = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) + dz * dz).sqrt();
            let t = (dist - r) / 1.5;
            *p += (a * (-0.5 * t * t).exp()) as f32;
        }
    }
    for _ in 0..n_fil {
        let (mut y, mut x, mut z) = (rng.uniform() * h as f64, rng.uniform() * w as f64, zc(rng));
        let mut ang = rng.uniform() * std::f64::consts::TAU;
        let a = (0.5 + rng.uniform() * 0.5) as f32;
        let steps = (0.6 * h.min(w) as f64 / 0.5) as usize;
        for _ in 0..steps {
            ang += 0.08 * rng.normal();
            y += 0.5 * ang.sin();
            x += 0.5 * ang.cos();
            if d > 1 {
                z = (z + 0.1 * rng.normal()).clamp(0.0, (d - 1) as f64);
            }
            let (iy, ix, iz) = (
                y.round() as isize,
                x.round() as isize,
                (z as usize).min(d - 1),
            );
            if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                let v = &mut obj[(iz, iy as usize, ix as usize)];
                *v = v.max(a);
            }
        }
    }
    for _ in 0..n_dots {
        let (z, y, x) = (
            (zc(rng) as usize).min(d - 1),
            (rng.uniform() * h as f64) as usize % h,
            (rng.uniform() * w as f64) as usize % w,
        );
        obj[(z, y, x)] += (2.0 + rng.uniform() * 6.0) as f32;
    }
    blur(&obj, psf_sigma, d > 1)
}

fn blur(v: &Volume, sigma: f64, three_d: bool) -> Volume {
    use crate::methods::gaussian::{GaussianParams, denoise_gaussian};
    let p = GaussianParams {
        sigma,
        sigma_z: if three_d { sigma } else { 0.0 },
        border: crate::BorderMode::Replicate,
    };
    // Invariant: the parameters above are in range and the volume is finite and non-empty.
    denoise_gaussian(v.view(), &p, &crate::Control::new()).unwrap_or_else(|_| v.clone())
}
