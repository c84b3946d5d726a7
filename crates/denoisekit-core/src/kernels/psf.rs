//! Point spread functions computed from the optics, and their transfer functions on the
//! grid the spectral filters use.
//!
//! The widefield PSF in 3D is the scalar Born & Wolf model with paraxial defocus
//! (Principles of Optics, §8.8): with `v = 2π NA r / λ` and `u = 2π NA² z / (n λ)`,
//! `h(v, u) = |2 ∫₀¹ J₀(v ρ) exp(−i u ρ² / 2) ρ dρ|²`. It is symmetric in z and radial in
//! the plane, so its transfer function on the mirrored grid of [`crate::spectral`] is real
//! and even: a DCT-I of the PSF's first octant along each axis (an FFT of the even
//! extension), normalised to 1 at zero frequency so that flux is kept.
//!
//! # References
//! M. Born, E. Wolf, "Principles of Optics", 7th ed., Cambridge 1999, §8.8.
//! M. Abramowitz, I. A. Stegun, "Handbook of Mathematical Functions", 1964, 9.4.1 and
//! 9.4.3 (the J₀ approximation, |error| < 1e-7).

use crate::descriptor::{DefaultValue, ParamSpec, Unit};
use crate::spectral::Filter;
use rayon::prelude::*;
use realfft::RealFftPlanner;

/// The parameter of a Gaussian PSF's standard deviation in the plane, in pixels, for
/// every method that takes one (a widefield PSF is close to a Gaussian of `0.21 λ / NA`).
pub const GAUSSIAN_SIGMA: ParamSpec =
    ParamSpec::float("PSF sigma (xy)", 0.05, 50.0, DefaultValue::Fixed(1.5)).unit(Unit::Pixels);

/// The Bessel function J₀ (Abramowitz & Stegun 9.4.1 and 9.4.3, absolute error below
/// 1e-7).
pub fn bessel_j0(x: f64) -> f64 {
    let x = x.abs();
    if x <= 3.0 {
        let t = (x / 3.0) * (x / 3.0);
        1.0 + t
            * (-2.249_999_7
                + t * (1.265_620_8
                    + t * (-0.316_386_6
                        + t * (0.044_447_9 + t * (-0.003_944_4 + t * 0.000_210_0)))))
    } else {
        let t = 3.0 / x;
        let f0 = 0.797_884_56
            + t * (-0.000_000_77
                + t * (-0.005_527_40
                    + t * (-0.000_095_12
                        + t * (0.001_372_37 + t * (-0.000_728_05 + t * 0.000_144_76)))));
        let theta = x - std::f64::consts::FRAC_PI_4
            + t * (-0.041_663_97
                + t * (-0.000_039_54
                    + t * (0.002_625_73
                        + t * (-0.000_541_25 + t * (-0.000_293_33 + t * 0.000_135_58)))));
        f0 * theta.cos() / x.sqrt()
    }
}

/// Optics of a widefield microscope, lengths in nanometres.
#[derive(Debug, Clone, Copy)]
pub struct Widefield {
    /// Numerical aperture of the objective (below `refractive_index`).
    pub na: f64,
    /// Emission wavelength.
    pub wavelength: f64,
    /// Refractive index of the immersion medium.
    pub refractive_index: f64,
    /// Pixel size in the sample plane.
    pub pixel_size: f64,
    /// Distance between planes.
    pub z_step: f64,
}

/// Beyond `v = V_TAIL` (optical units, `2π NA r / λ`) past the most defocused plane's
/// geometric shadow (`v ≈ u`), the PSF is taken as 0. In focus the intensity there is below
/// `8 / (π V³)` ≈ 3e-10 of the peak and the energy beyond it about `2 / (π V)` ≈ 3e-4 of
/// the total, less than a small image's grid already leaves out (a 64² image at 100 nm
/// pixels, NA 1.4, 500 nm ends at v ≈ 160). Without the cut the work and the Bessel table
/// grew with the grid's diagonal in pixels times its diagonal in optical units: 0.75 GB
/// for a 2048² stack at the default optics (where the cut changed 0.13% of a 16-bit
/// result by 1), 1.2 GB for a 256² one at a camera's 6.5 µm pixel entered without
/// dividing by the magnification, and about 18 GB, killed by the system, at 100 µm.
const V_TAIL: f64 = 2000.0;

/// Largest block of the Bessel table held at once, in bytes.
const TABLE_BLOCK: usize = 64 << 20;

/// The Born & Wolf PSF at offsets `(z, y, x)` in `0..=d, 0..=h, 0..=w` (pixels and
/// planes), sampled at the voxel centres; an array of `(d+1)(h+1)(w+1)` values, peak 1.
pub fn born_wolf_octant(o: &Widefield, dims: (usize, usize, usize)) -> Vec<f32> {
    born_wolf_blocked(o, dims, TABLE_BLOCK)
}

fn born_wolf_blocked(
    o: &Widefield,
    (d, h, w): (usize, usize, usize),
    table_block: usize,
) -> Vec<f32> {
    let k_lat = 2.0 * std::f64::consts::PI * o.na / o.wavelength;
    let k_ax = 2.0 * std::f64::consts::PI * o.na * o.na / (o.refractive_index * o.wavelength);
    let u_max = k_ax * d as f64 * o.z_step;
    // Radial samples every half pixel up to the grid's corner or the cut, interpolated
    // linearly.
    let r_max = (((h * h + w * w) as f64).sqrt() + 1.0)
        .min((V_TAIL + u_max) / (k_lat * o.pixel_size) + 1.0);
    let nr = (2.0 * r_max).ceil() as usize + 2;
    let v_max = k_lat * r_max * o.pixel_size;
    // Simpson nodes in ρ: about 16 per oscillation of J₀(vρ) and of the defocus phase.
    let q =
        (((v_max + u_max / 2.0) / std::f64::consts::PI * 16.0) as usize + 64).next_multiple_of(2);
    let rho: Vec<f64> = (0..=q).map(|i| i as f64 / q as f64).collect();
    let weight = |i: usize| {
        let s = if i == 0 || i == q {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        s / (3.0 * q as f64)
    };
    let phase = |z: usize| -> Vec<(f64, f64)> {
        let u = k_ax * z as f64 * o.z_step;
        rho.iter()
            .map(|&p| {
                let a = -0.5 * u * p * p;
                (a.cos(), a.sin())
            })
            .collect()
    };
    // The radial profile of every plane: |∫ J₀(vρ) e^{-iuρ²/2} ρ dρ|², with J₀(vρ) ρ w
    // tabulated once for all planes, a block of radial samples at a time.
    let mut profiles = vec![vec![0.0f64; nr]; d + 1];
    let block = (table_block / (8 * (q + 1))).max(1);
    for first in (0..nr).step_by(block) {
        let rows = first..(first + block).min(nr);
        let bessel: Vec<f64> = rows
            .clone()
            .into_par_iter()
            .flat_map_iter(|ri| {
                let v = k_lat * (ri as f64 * 0.5) * o.pixel_size;
                let rho = &rho;
                (0..=q).map(move |i| bessel_j0(v * rho[i]) * rho[i] * weight(i))
            })
            .collect();
        profiles.par_iter_mut().enumerate().for_each(|(z, prof)| {
            let ph = phase(z);
            for (k, row) in bessel.chunks(q + 1).enumerate() {
                let (re, im) = row
                    .iter()
                    .zip(&ph)
                    .fold((0.0, 0.0), |(re, im), (b, (c, s))| (re + b * c, im + b * s));
                prof[first + k] = 4.0 * (re * re + im * im);
            }
        });
    }
    let (h1, w1) = (h + 1, w + 1);
    let at = |prof: &[f64], i: usize| prof.get(i).copied().unwrap_or(0.0);
    let mut out = vec![0.0f32; (d + 1) * h1 * w1];
    out.par_chunks_mut(h1 * w1)
        .zip(&profiles)
        .for_each(|(plane, prof)| {
            for (y, row) in plane.chunks_mut(w1).enumerate() {
                for (x, o) in row.iter_mut().enumerate() {
                    let r2 = ((x * x + y * y) as f64).sqrt() * 2.0;
                    let i = r2.floor() as usize;
                    let t = r2 - i as f64;
                    *o = (at(prof, i) * (1.0 - t) + at(prof, i + 1) * t) as f32;
                }
            }
        });
    out
}

/// The real, even transfer function of a PSF given by its first octant (offsets
/// `0..=d, 0..=h, 0..=w`, the rest by symmetry) on the mirrored `(2d, 2h, 2w)` grid,
/// normalised to 1 at zero frequency; returned as its first octant in frequency
/// (`k = 0..=n` per axis, frequency `k / (2n)`).
pub fn otf_octant(psf: &[f32], (d, h, w): (usize, usize, usize)) -> Vec<f32> {
    let dims = [d + 1, h + 1, w + 1];
    let mut a: Vec<f64> = psf.iter().map(|&v| f64::from(v)).collect();
    // Single precision, the core's own FFT: the result is f32 anyway, and a second
    // precision's planner would compile rustfft's whole SIMD algorithm set again (about a
    // third of this crate's build time, in every build CI runs).
    let mut planner = RealFftPlanner::<f32>::new();
    for (axis, &n1) in dims.iter().enumerate() {
        let n = n1 - 1;
        if n == 0 {
            continue;
        }
        let fft = planner.plan_fft_forward(2 * n);
        let stride: usize = dims[axis + 1..].iter().product();
        let outer: usize = dims[..axis].iter().product();
        let mut line = vec![0.0f32; 2 * n];
        let mut spec = fft.make_output_vec();
        for o in 0..outer {
            for s in 0..stride {
                let at = |j: usize| o * n1 * stride + j * stride + s;
                // Even extension: x0 … xn … x1.
                for j in 0..=n {
                    line[j] = a[at(j)] as f32;
                }
                for j in 1..n {
                    line[2 * n - j] = a[at(j)] as f32;
                }
                // Invariant: buffers have the planned lengths.
                let _ = fft.process(&mut line, &mut spec);
                for (j, c) in spec.iter().enumerate().take(n1) {
                    a[at(j)] = f64::from(c.re);
                }
            }
        }
    }
    let dc = a[0];
    a.iter().map(|&v| (v / dc) as f32).collect()
}

/// A spectral filter for a PSF's transfer function held as its first octant: the value
/// at frequency `f` along an axis of `n` samples is the octant's entry `round(|f|·2n)`.
pub fn octant_filter(otf: Vec<f32>, (d, h, w): (usize, usize, usize)) -> Filter {
    let (h1, w1) = (h + 1, w + 1);
    let idx = |f: f64, n: usize| ((f.abs() * (2 * n) as f64).round() as usize).min(n);
    Filter::new(
        d > 0,
        Box::new(move |fz, fy, fx| {
            f64::from(otf[(idx(fz, d) * h1 + idx(fy, h)) * w1 + idx(fx, w)])
        }),
    )
}

/// The 3D widefield (Born & Wolf) blur of a `(depth, height, width)` stack as a spectral
/// filter.
pub fn born_wolf_filter(o: &Widefield, (depth, h, w): (usize, usize, usize)) -> Filter {
    let dims = (depth, h, w);
    octant_filter(otf_octant(&born_wolf_octant(o, dims), dims), dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// J₀ by its integral (1/π)∫₀^π cos(x sin t) dt, with the trapezoid rule, which is
    /// exact to rounding for this periodic integrand once the points outnumber x/2 + 20.
    fn j0_reference(x: f64) -> f64 {
        let m = (x / 2.0) as usize + 40;
        let h = std::f64::consts::PI / m as f64;
        let s: f64 = (0..m).map(|i| (x * (i as f64 * h).sin()).cos()).sum();
        s / m as f64
    }

    #[test]
    fn bessel_j0_matches_its_integral() {
        for i in 0..4000 {
            let x = i as f64 * 0.05;
            assert!((bessel_j0(x) - j0_reference(x)).abs() < 2e-7, "x = {x}");
        }
        assert!((bessel_j0(0.0) - 1.0).abs() < 1e-12);
        // First zero.
        assert!(bessel_j0(2.404_825_557_7).abs() < 1e-7);
    }

    fn optics() -> Widefield {
        Widefield {
            na: 1.4,
            wavelength: 520.0,
            refractive_index: 1.515,
            pixel_size: 65.0,
            z_step: 200.0,
        }
    }

    #[test]
    fn born_wolf_psf_peaks_at_focus_and_spreads_with_defocus() {
        let dims = (8, 24, 24);
        let psf = born_wolf_octant(&optics(), dims);
        let at = |z: usize, y: usize, x: usize| psf[(z * 25 + y) * 25 + x];
        assert!((at(0, 0, 0) - 1.0).abs() < 1e-4, "peak {}", at(0, 0, 0));
        // The in-focus profile is the Airy pattern [2 J1(v)/v]^2: its first zero lies at
        // v = 3.8317, r = 3.8317 λ / (2π NA) = 226.5 nm = 3.48 pixels.
        assert!(
            at(0, 0, 3) < 0.05 && at(0, 0, 2) > 0.1,
            "{} {}",
            at(0, 0, 2),
            at(0, 0, 3)
        );
        // Defocus lowers the peak and spreads the light.
        assert!(at(1, 0, 0) < at(0, 0, 0) && at(4, 0, 0) < 0.2 * at(0, 0, 0));
        assert!(at(4, 0, 8) > at(0, 0, 8));
        assert!(psf.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn the_bessel_table_in_blocks_gives_the_same_psf() {
        let dims = (5, 40, 33);
        let whole = born_wolf_octant(&optics(), dims);
        assert_eq!(born_wolf_blocked(&optics(), dims, 1), whole);
    }

    #[test]
    fn a_psf_far_below_a_pixel_is_cut_where_it_is_dark() {
        // A camera's 6.5 µm pixel entered without dividing by the magnification: the PSF
        // is a point, and its tail beyond v = V_TAIL (20 pixels here, with the defocus of
        // 3 planes) is left out instead of tabulated to the grid's corner.
        let o = Widefield {
            pixel_size: 6500.0,
            ..optics()
        };
        let dims = (3, 256, 256);
        let psf = born_wolf_octant(&o, dims);
        let at = |z: usize, y: usize, x: usize| psf[(z * 257 + y) * 257 + x];
        assert!((at(0, 0, 0) - 1.0).abs() < 1e-4);
        assert!(at(0, 0, 1) < 1e-4, "{}", at(0, 0, 1));
        assert!(at(0, 0, 22) == 0.0 && at(0, 256, 256) == 0.0);
        assert!(psf.iter().all(|v| v.is_finite() && *v >= 0.0));
        // Where no cut applies, the table reaches the grid's corner as before.
        let psf = born_wolf_octant(&optics(), (2, 24, 24));
        assert!(psf[24 * 25 + 24] > 0.0);
    }

    #[test]
    fn otf_is_normalised_and_band_limited_laterally() {
        let o = optics();
        let dims = (8, 32, 32);
        let otf = otf_octant(&born_wolf_octant(&o, dims), dims);
        assert!((otf[0] - 1.0).abs() < 1e-6);
        // Lateral cut-off 2 NA / λ = 0.35 cycles per pixel, i.e. index 0.35 · 64 = 22.4:
        // beyond it only the leakage of sampling and truncation remains.
        let at = |z: usize, y: usize, x: usize| otf[(z * 33 + y) * 33 + x];
        // Inside the band it falls with frequency (at fz = 0 it is the transfer of the PSF
        // summed over the stack's depth, which the defocused planes lower).
        assert!(
            at(0, 0, 1) > at(0, 0, 5) && at(0, 0, 5) > at(0, 0, 15) && at(0, 0, 15) > 0.0,
            "{} {} {}",
            at(0, 0, 1),
            at(0, 0, 5),
            at(0, 0, 15)
        );
        for x in 26..=32 {
            assert!(at(0, 0, x).abs() < 0.02, "x = {x}: {}", at(0, 0, x));
        }
        assert!(otf.iter().all(|v| v.is_finite() && *v <= 1.0 + 1e-5));
    }
}
