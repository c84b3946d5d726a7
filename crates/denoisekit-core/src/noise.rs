//! Noise level estimation.
//!
//! The standard deviation of additive white Gaussian noise is estimated from the finest
//! diagonal wavelet detail band, which holds little signal in natural and microscopy
//! images: σ̂ = median(|d|) / 0.6745 (Donoho & Johnstone 1994). Each plane is
//! transformed in 2D with the Daubechies-2 (db2) wavelet, as scikit-image's
//! `estimate_sigma` does; only coefficients whose support lies inside the image are
//! used, so no border rule can add false detail. The coefficients of all planes are
//! pooled, which is robust when a few planes are empty or saturated. Coefficients whose
//! whole support is flat (clipped background, saturated areas) are excluded: they would
//! otherwise pull the estimate to zero on images that are mostly clipped background.
//!
//! # References
//! D. L. Donoho, I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
//! Biometrika 81(3), 1994, doi:10.1093/biomet/81.3.425.

use crate::error::Result;
use crate::volume::{Shape, VolumeView};
use rayon::prelude::*;

// db2 decomposition high-pass filter (PyWavelets `dec_hi`), applied as a correlation.
const DB2_HI: [f64; 4] = [
    -0.482_962_913_144_690_25,
    0.836_516_303_737_469,
    -0.224_143_868_041_857_35,
    -0.129_409_522_550_921_45,
];
const HAAR_HI: [f64; 2] = [
    -std::f64::consts::FRAC_1_SQRT_2,
    std::f64::consts::FRAC_1_SQRT_2,
];

/// Estimates the standard deviation of additive Gaussian noise, in intensity units.
///
/// Planes narrower than 4 pixels fall back to the Haar wavelet.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] for an image smaller than 2×2 or with non-finite pixels.
pub fn estimate_sigma(v: &VolumeView<'_>) -> Result<f64> {
    crate::volume::check_input(v)?;
    let s = Shape::of(v);
    let hi: &[f64] = if s.width >= 4 && s.height >= 4 {
        &DB2_HI
    } else {
        &HAAR_HI
    };
    let k = hi.len();
    let src = v.as_standard_layout();
    let data = src.as_slice().expect("standard layout is contiguous");
    let (h, w) = (s.height, s.width);
    // Valid, downsampled-by-2 positions: the filter support [2i, 2i + k) stays inside.
    let ny = (h - k) / 2 + 1;
    let nx = (w - k) / 2 + 1;
    let mut coeffs: Vec<f64> = (0..s.depth * ny)
        .into_par_iter()
        .flat_map_iter(|row| {
            let (z, iy) = (row / ny, row % ny);
            let plane = &data[z * h * w..(z + 1) * h * w];
            (0..nx).filter_map(move |ix| {
                let at = |a: usize, b: usize| plane[(2 * iy + a) * w + 2 * ix + b];
                let first = at(0, 0);
                let mut flat = true;
                let mut acc = 0.0;
                for (a, ha) in hi.iter().enumerate() {
                    for (b, hb) in hi.iter().enumerate() {
                        let v = at(a, b);
                        flat &= v == first;
                        acc += ha * hb * f64::from(v);
                    }
                }
                // A perfectly flat support is clipped, saturated or synthetic background:
                // it carries no information about the noise, so it is left out rather than
                // dragging the median (and every noise-derived default) to zero.
                (!flat).then_some(acc.abs())
            })
        })
        .collect();
    if coeffs.is_empty() {
        // Every support is flat: a constant (or piecewise-constant) image has no noise.
        return Ok(0.0);
    }
    Ok(median(&mut coeffs) / 0.674_489_750_196_081_7)
}

/// The median of `x` (reorders `x`). `x` must not be empty.
fn median(x: &mut [f64]) -> f64 {
    let n = x.len();
    let (_, m, _) = x.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = x[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn db2_filter_is_orthonormal_high_pass() {
        let sum: f64 = DB2_HI.iter().sum();
        let energy: f64 = DB2_HI.iter().map(|h| h * h).sum();
        assert!(sum.abs() < 1e-12);
        assert!((energy - 1.0).abs() < 1e-12);
    }
}
