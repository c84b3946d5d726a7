//! A seeded synthetic fluorescence-like scene with known clean truth.
//!
//! Dots (sub-resolution beads), rings (membranes, shells in 3D) and curved filaments on a
//! dim background, blurred by a Gaussian PSF, then degraded by Poisson–Gaussian noise:
//! `noisy = Poisson(photons · clean) / photons + N(0, read_noise²)`. Everything is
//! driven by one `u64` seed through a SplitMix64 generator, so a test or a benchmark
//! gets the same image on every machine. Used by the property tests, the demo and the
//! benches; `../shared/bench/synth_fluo.py` is the Python cousin used for the peers.

pub use crate::rng::Rng;
use crate::volume::Volume;
use ndarray::Array3;

/// Parameters of [`phantom`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSpec {
    /// (depth, height, width); depth 1 gives a 2D image.
    pub shape: (usize, usize, usize),
    /// Seed of the scene and of the noise.
    pub seed: u64,
    /// Standard deviation of the Gaussian PSF in pixels (xy, and z for stacks).
    pub psf_sigma: f64,
    /// Expected photons at clean intensity 1; `f64::INFINITY` means no shot noise.
    pub photons: f64,
    /// Standard deviation of additive Gaussian noise, in clean-intensity units.
    pub read_noise: f64,
}

impl Default for PhantomSpec {
    fn default() -> Self {
        Self {
            shape: (1, 256, 256),
            seed: 1,
            psf_sigma: 1.2,
            photons: f64::INFINITY,
            read_noise: 0.1,
        }
    }
}

/// The clean scene in [0, ~1] and its noisy observation.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// Noise-free scene (after the PSF).
    pub clean: Volume,
    /// `clean` with Poisson–Gaussian noise.
    pub noisy: Volume,
}

/// Builds the scene and its noisy copy. See the module docs.
pub fn phantom(spec: &PhantomSpec) -> Phantom {
    let (d, h, w) = spec.shape;
    let mut rng = Rng::new(spec.seed);
    let mut obj = Array3::<f32>::from_elem((d, h, w), 0.05);
    let area = (h * w) as f64 / (256.0 * 256.0);
    let n_rings = (6.0 * area).ceil() as usize;
    let n_fil = (5.0 * area).ceil() as usize;
    let n_dots = (60.0 * area * d as f64).ceil() as usize;
    let zc = |rng: &mut Rng| rng.uniform() * d as f64;
    for _ in 0..n_rings {
        let (cz, cy, cx) = (
            zc(&mut rng),
            rng.uniform() * h as f64,
            rng.uniform() * w as f64,
        );
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
        let (mut y, mut x, mut z) = (
            rng.uniform() * h as f64,
            rng.uniform() * w as f64,
            zc(&mut rng),
        );
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
            (zc(&mut rng) as usize).min(d - 1),
            (rng.uniform() * h as f64) as usize % h,
            (rng.uniform() * w as f64) as usize % w,
        );
        obj[(z, y, x)] += (2.0 + rng.uniform() * 6.0) as f32;
    }
    let clean = blur(&obj, spec.psf_sigma, d > 1);
    let mut noisy = clean.clone();
    for p in noisy.iter_mut() {
        let mut v = *p as f64;
        if spec.photons.is_finite() {
            v = rng.poisson(v.max(0.0) * spec.photons) / spec.photons;
        }
        v += spec.read_noise * rng.normal();
        *p = v as f32;
    }
    Phantom { clean, noisy }
}

/// Adds white Gaussian noise of standard deviation `sigma` (seeded) to a copy of `v`.
pub fn add_gaussian_noise(v: &Volume, sigma: f64, seed: u64) -> Volume {
    let mut rng = Rng::new(seed);
    v.mapv(|p| (p as f64 + sigma * rng.normal()) as f32)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_image() {
        let s = PhantomSpec {
            shape: (1, 64, 64),
            ..Default::default()
        };
        assert_eq!(phantom(&s).noisy, phantom(&s).noisy);
        let other = PhantomSpec {
            seed: 2,
            ..s.clone()
        };
        assert_ne!(phantom(&s).noisy, phantom(&other).noisy);
    }

    #[test]
    fn gaussian_noise_has_requested_sigma() {
        let v = Volume::zeros((1, 200, 200));
        let n = add_gaussian_noise(&v, 0.5, 3);
        let var = n.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / n.len() as f64;
        assert!((var.sqrt() - 0.5).abs() < 0.01, "{}", var.sqrt());
    }

    #[test]
    fn poisson_mean_and_variance() {
        let mut r = Rng::new(7);
        for lambda in [3.0, 50.0] {
            let xs: Vec<f64> = (0..20000).map(|_| r.poisson(lambda)).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
            assert!((m - lambda).abs() < 0.05 * lambda, "mean {m}");
            assert!((v - lambda).abs() < 0.1 * lambda, "var {v}");
        }
    }
}
