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
//! The finest diagonal band sees the noise's pointwise variance only when neighbouring
//! pixels' noise is independent. Correlated noise (EM scans, binned or interpolated
//! cameras) puts its variance at lower frequencies, and the band sees a fraction
//! `f = Σₖ R(k)·ρ(k)` of it, where `R` is the 2D autocorrelation of the separable detail
//! filter and `ρ` the noise's correlation coefficients ([`correlation`]): for 2x2
//! binning (0.5 with edge neighbours, 0.25 diagonally) `f` is 0.19, and the uncorrected
//! estimate is 44% of the noise; for noise smeared along x only (0.67 with the next pixel
//! in x), 0.25. [`estimate_sigma`] divides by `√f`, measured on a sample of the image;
//! noise-derived defaults then scale with the noise the pixels carry.
//!
//! Limits: the correlation is modelled up to 2 pixels, and `f` is floored at 1/25 (the
//! estimate is raised at most five-fold), so noise correlated over longer distances
//! (smoothed with a Gaussian of a pixel or more) is still underestimated; a stack gets
//! one correction, measured on at most 2^20 pixels (whole planes spread through the
//! stack, the central 1024x1024 of a larger plane), so a stack whose planes were acquired
//! differently gets a blend (measure them apart).
//!
//! # References
//! D. L. Donoho, I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
//! Biometrika 81(3), 1994, doi:10.1093/biomet/81.3.425.

pub mod correlation;
pub mod vst;

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

/// Estimates the standard deviation of additive Gaussian noise, in intensity units: the
/// noise each pixel carries, corrected for the spatial correlation measured on the image
/// (see the module's documentation). Where the correlation cannot be measured (an image
/// smaller than 16×16, or with too few smooth pixels) the noise is taken as independent.
///
/// Planes narrower than 4 pixels fall back to the Haar wavelet.
///
/// # Errors
/// [`crate::DenoiseError::InvalidInput`] for an image smaller than 2×2 or with non-finite pixels.
pub fn estimate_sigma(v: &VolumeView<'_>) -> Result<f64> {
    crate::volume::check_input(v)?;
    Ok(sigma_of_checked(v))
}

/// [`estimate_sigma`] of an image already checked.
fn sigma_of_checked(v: &VolumeView<'_>) -> f64 {
    correlation::estimate_correlation(v).map_or_else(|_| sigma_with(v, None), |c| c.sigma)
}

/// [`estimate_sigma`] of an image already checked, with its correlation `c` measured
/// already (`None`: independent, or not measurable).
pub(crate) fn sigma_with(v: &VolumeView<'_>, c: Option<&correlation::NoiseCorrelation>) -> f64 {
    let share = c.map_or(1.0, |c| detail_share(c, detail_filter(Shape::of(v))));
    finest_details(v, None).sigma / share.max(MIN_DETAIL_SHARE).sqrt()
}

/// The smallest share of the noise's variance the finest diagonal band is taken to see:
/// correlation coefficients near their bound make the measured share small and uncertain,
/// and the estimate is raised at most five-fold.
const MIN_DETAIL_SHARE: f64 = 1.0 / 25.0;

/// The 1D detail filter [`finest_details`] uses on planes of this shape.
fn detail_filter(s: Shape) -> &'static [f64] {
    if s.width >= 4 && s.height >= 4 {
        &DB2_HI
    } else {
        &HAAR_HI
    }
}

/// The share of the noise's pointwise variance that the finest diagonal details
/// (filtered by `hi` along both axes) carry, for the correlation `c`: `Σₖ R(k)·ρ(k)`, with
/// `R(dy, dx) = r(dy)·r(dx)` and `r` the filter's autocorrelation.
///
/// Independent noise ([`correlation::NoiseCorrelation::radius`] 0) gives exactly 1, so
/// such images keep the plain estimate. Correlated noise uses every lag measured, not only
/// those that count: a diagonal lag weighs `r(1)² ≈ 0.32`, and dropping one of 0.09 (under
/// the bar of 0.1) beside neighbours of 0.3 would put the estimate 16% high.
fn detail_share(c: &correlation::NoiseCorrelation, hi: &[f64]) -> f64 {
    if c.radius == 0 {
        return 1.0;
    }
    let r = |lag: i32| -> f64 {
        let k = lag.unsigned_abs() as usize;
        hi.iter().zip(hi.iter().skip(k)).map(|(a, b)| a * b).sum()
    };
    // Each lag of the half plane stands for itself and its opposite, of equal weight.
    1.0 + c
        .lags
        .iter()
        .map(|&((dy, dx), rho, _)| 2.0 * r(dy) * r(dx) * rho)
        .sum::<f64>()
}

/// The finest diagonal details' noise estimate, and how many supports it was read from.
pub(crate) struct Details {
    /// The estimate (0 when every support read is flat).
    pub sigma: f64,
    /// Supports read: not flat in the image they were masked by (all, unmasked).
    pub read: usize,
}

/// [`estimate_sigma`]'s measurement, on an image already checked. With `mask` (an image
/// of `v`'s shape and its minimum and maximum), a support is left out where that image
/// is flat or reaches its minimum or maximum there: fill and saturation, whose clipped
/// noise is not the noise a model describes; `read` then counts the supports that were
/// kept, whether `v` is flat there or not.
pub(crate) fn finest_details(
    v: &VolumeView<'_>,
    mask: Option<(&VolumeView<'_>, f32, f32)>,
) -> Details {
    let s = Shape::of(v);
    let hi = detail_filter(s);
    let k = hi.len();
    let src = v.as_standard_layout();
    let data = src.as_slice().expect("standard layout is contiguous");
    let masked = mask.map(|(m, lo, hi)| (m.as_standard_layout(), lo, hi));
    let masked = masked.as_ref().map(|(m, lo, hi)| {
        (
            m.as_slice().expect("standard layout is contiguous"),
            *lo,
            *hi,
        )
    });
    let (h, w) = (s.height, s.width);
    // Valid, downsampled-by-2 positions: the filter support [2i, 2i + k) stays inside.
    let ny = (h - k) / 2 + 1;
    let nx = (w - k) / 2 + 1;
    // One slot per position, written in place by every core (collecting a filtered
    // parallel iterator cost more than the filter itself); a flat or masked support
    // leaves -1, below every |coefficient|, and the median skips those.
    let mut coeffs = vec![FLAT; s.depth * ny * nx];
    let (flat, read): (usize, usize) = coeffs
        .par_chunks_mut(nx)
        .enumerate()
        .map(|(row, out)| {
            let (z, iy) = (row / ny, row % ny);
            let at_in = |px: &[f32], ix: usize, a: usize, b: usize| {
                px[z * h * w + (2 * iy + a) * w + 2 * ix + b]
            };
            let mut read = 0;
            for (ix, o) in out.iter_mut().enumerate() {
                if let Some((m, lo, top)) = masked {
                    let first = at_in(m, ix, 0, 0);
                    let (mut flat, mut clipped) = (true, false);
                    for a in 0..k {
                        for b in 0..k {
                            let p = at_in(m, ix, a, b);
                            flat &= p == first;
                            clipped |= p <= lo || p >= top;
                        }
                    }
                    if flat || clipped {
                        continue;
                    }
                    read += 1;
                }
                let first = at_in(data, ix, 0, 0);
                let mut flat = true;
                let mut acc = 0.0;
                for (a, ha) in hi.iter().enumerate() {
                    for (b, hb) in hi.iter().enumerate() {
                        let v = at_in(data, ix, a, b);
                        flat &= v == first;
                        acc += ha * hb * f64::from(v);
                    }
                }
                // A perfectly flat support is clipped, saturated or synthetic background:
                // it carries no information about the noise, so it is left out rather
                // than dragging the median (and every noise-derived default) to zero.
                if !flat {
                    *o = acc.abs();
                }
            }
            (out.iter().filter(|&&c| c == FLAT).count(), read)
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let read = if masked.is_some() { read } else { coeffs.len() };
    if flat == coeffs.len() {
        // Every support is flat: a constant (or piecewise-constant) image has no noise.
        return Details { sigma: 0.0, read };
    }
    Details {
        sigma: median_above(&mut coeffs, flat) / 0.674_489_750_196_081_7,
        read,
    }
}

/// A signal-dependent noise model fitted to one image: `var(z) = a · E[z] + b`, in grey
/// levels. For a camera, `a` is the gain (grey levels per photon) and `b = σ_read² − a ·
/// offset`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PoissonGaussian {
    /// Slope: the gain, grey levels per photon.
    pub a: f64,
    /// Variance at zero mean intensity, grey levels².
    pub b: f64,
    /// Standard errors of `a` and `b` from the fit's residuals.
    pub a_se: f64,
    /// See `a_se`.
    pub b_se: f64,
    /// Intensity levels (bins of flat blocks) the line was fitted to.
    pub levels: usize,
}

impl PoissonGaussian {
    /// The noise-model options that reproduce this fit: a positive `b` is read noise
    /// (offset 0); a negative one is an offset with no read noise (only `σ² − a·offset`
    /// is identifiable from one image).
    pub fn options(&self) -> String {
        let (offset, read) = self.offset_and_read_noise();
        let sig = sig4;
        format!(
            "noise_model=poisson_gaussian gain={} offset={} read_noise={}",
            sig(self.a),
            sig(offset),
            sig(read)
        )
    }

    /// The camera's offset and read noise that [`PoissonGaussian::options`] reports.
    fn offset_and_read_noise(&self) -> (f64, f64) {
        if self.b >= 0.0 {
            (0.0, self.b.sqrt())
        } else {
            (-self.b / self.a, 0.0)
        }
    }

    /// The variance-stabilising transform of this camera.
    pub fn gat(&self) -> vst::Gat {
        let (offset, read) = self.offset_and_read_noise();
        vst::Gat::new(self.a, offset, read)
    }
}

/// The noise model an image calls for: what `noise_model=auto` resolves to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum NoiseModel {
    /// Signal-independent noise of this standard deviation, grey levels.
    Gaussian {
        /// The noise's standard deviation ([`estimate_sigma`]).
        sigma: f64,
    },
    /// Signal-dependent (photon) noise, `var = a · mean + b`.
    PoissonGaussian(PoissonGaussian),
}

/// A noise model chosen from the image, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NoiseChoice {
    /// The model.
    pub model: NoiseModel,
    /// One sentence for the user: why this model, with the numbers.
    pub reason: String,
}

impl NoiseChoice {
    /// The noise-model options that make a run use this model exactly.
    pub fn options(&self) -> String {
        match &self.model {
            NoiseModel::Gaussian { .. } => "noise_model=gaussian".to_string(),
            NoiseModel::PoissonGaussian(f) => f.options(),
        }
    }
}

/// How much the noise's standard deviation may vary over the image's intensities (between
/// the 10th and 90th percentile of its smooth regions' levels) before one σ no longer
/// describes it: ±10% around one value.
const SD_SPREAD_KEPT_GAUSSIAN: f64 = 1.2;

/// Chooses between Gaussian and Poisson–Gaussian noise for this image.
///
/// The Poisson–Gaussian fit ([`estimate_poisson_gaussian`]) is kept when its slope is
/// positive and significant (more than three standard errors) and the standard deviation
/// it predicts changes by more than a factor of 1.2 between the 10th and 90th percentile of
/// the image's intensities; otherwise one σ describes the noise within ±10% and the
/// Gaussian model, with its simpler and exactly invertible arithmetic, is chosen. A fit
/// that fails (too small, too clipped, all structure) also gives the Gaussian model, with
/// the fit's reason.
///
/// # Errors
/// [`crate::DenoiseError::InvalidInput`] for an invalid image (see [`estimate_sigma`]).
pub fn choose_noise_model(v: &VolumeView<'_>) -> Result<NoiseChoice> {
    crate::volume::check_input(v)?;
    Ok(match photon_model(v) {
        Ok((fit, reason)) => NoiseChoice {
            model: NoiseModel::PoissonGaussian(fit),
            reason,
        },
        Err(why) => {
            let sigma = sigma_of_checked(v);
            NoiseChoice {
                model: NoiseModel::Gaussian { sigma },
                reason: format!("Gaussian (sigma {}): {why}", sig4(sigma)),
            }
        }
    })
}

/// [`choose_noise_model`]'s decision on an image already checked, without the Gaussian
/// model's noise level (whose correlation measurement is most of its cost): the
/// Poisson–Gaussian fit kept and why, or why the Gaussian model is chosen instead.
pub(crate) fn photon_model(
    v: &VolumeView<'_>,
) -> std::result::Result<(PoissonGaussian, String), String> {
    let fit = estimate_poisson_gaussian(v).map_err(|e| format!("no Poisson-Gaussian fit ({e})"))?;
    let a_text = format!("{} ± {}", sig4(fit.a), sig4(fit.a_se));
    // Written so that a NaN standard error also counts as "not significant".
    let significant = fit.a > 0.0 && fit.a > 3.0 * fit.a_se;
    if !significant {
        return Err(format!(
            "the noise does not grow measurably with the signal (gain {a_text})"
        ));
    }
    let (p10, p90) = intensity_percentiles(v, 0.1, 0.9);
    let var = |y: f64| fit.a * y + fit.b;
    let spread = if var(p10) > 0.0 {
        (var(p90) / var(p10)).sqrt()
    } else {
        f64::INFINITY
    };
    if spread < SD_SPREAD_KEPT_GAUSSIAN {
        return Err(format!(
            "the noise's standard deviation changes by a factor of only {spread:.2} between \
             the image's 10th and 90th percentile (gain {a_text})"
        ));
    }
    // The flat blocks the fit measures can misjudge an image whose noise is not white; a
    // model the run would refuse ([`vst::Gat::check`]) is not chosen.
    let g = fit.gat();
    if g.check(v, &g.forward(v).view()).is_err() {
        return Err(format!(
            "the fitted camera (gain {a_text}) does not fit the whole image (its offset lies \
             above many pixels, or its noise far from what the image shows)"
        ));
    }
    // A quarter of the image, its darkest pixels included, brought to one value is not a
    // camera model but a flattened background (8-bit data stretched to 16 bits and
    // clipped at zero fitted an offset above 47% of it, and came back lifted to it).
    if let Some(why) = g.flattens(v) {
        return Err(why);
    }
    let reason = format!(
        "Poisson-Gaussian (gain {a_text}, {} levels): the noise's standard deviation changes \
         by a factor of {} between the image's 10th and 90th percentile",
        fit.levels,
        if spread.is_finite() {
            format!("{spread:.2}")
        } else {
            "more than 10".to_string()
        }
    );
    Ok((fit, reason))
}

/// The `p` and `q` quantiles of the image's values, from a sample of at most 2^20 pixels.
pub(crate) fn intensity_percentiles(v: &VolumeView<'_>, p: f64, q: f64) -> (f64, f64) {
    let n = v.len();
    let step = (n >> 20).max(1);
    let mut x: Vec<f64> = v.iter().step_by(step).map(|&p| f64::from(p)).collect();
    // Selection, not a sort: the two order statistics a full sort would put there.
    let mut at = |f: f64| {
        let i = ((x.len() - 1) as f64 * f).round() as usize;
        *x.select_nth_unstable_by(i, f64::total_cmp).1
    };
    (at(p), at(q))
}

/// `x` to four significant digits: no fit here is more precise than that.
pub(crate) fn sig4(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return crate::format::fmt_num(x);
    }
    let decimals = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    crate::format::fmt_num(format!("{x:.decimals$}").parse().unwrap_or(x))
}

/// Cells of 2×2 pixels per side of a block.
const BLOCK_CELLS: usize = 8;

/// Fits the Poisson–Gaussian model `var = a · mean + b` to one image, in the spirit of Foi
/// et al. (2008): local means and noise variances are measured on flat blocks only, then a
/// straight line is fitted to them.
///
/// Blocks of 16×16 pixels give a mean and a noise variance: the mean square of a
/// normalised second difference in x and y (Immerkær's operator, blind to
/// smooth curvature) on 49 positions. Blocks whose 2×2 cell means depart from a plane by
/// more than the noise explains (edges, texture), and blocks touching the image's minimum
/// or maximum (clipping, saturation), are left out. The blocks
/// are binned by mean (equal counts), each bin's variance is the mean of its blocks', and the line
/// is fitted by weighted least squares (weights `n / var²`, since a variance estimate's
/// spread grows with the variance).
///
/// The image is also fitted on its smooth pixels (`estimate_poisson_gaussian_dense`),
/// which works on dense images (cells filling the field, electron micrographs) where
/// there are too few flat blocks; the fit whose slope has the smaller relative standard
/// error is returned.
///
/// # Errors
/// [`crate::DenoiseError::InvalidInput`] for an invalid image, or one too small, too
/// clipped or too structured for either fit; the message says which.
///
/// # References
/// J. Immerkær, "Fast noise variance estimation", CVIU 64, 1996, doi:10.1006/cviu.1996.0060.
/// A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical Poissonian-Gaussian noise
/// modeling and fitting for single-image raw-data", IEEE TIP 17, 2008,
/// doi:10.1109/TIP.2008.2001399.
pub fn estimate_poisson_gaussian(v: &VolumeView<'_>) -> Result<PoissonGaussian> {
    crate::volume::check_input(v)?;
    let s = Shape::of(v);
    let (lo, hi) = crate::volume::min_max(v);
    let src = v.as_standard_layout();
    let data = src.as_slice().expect("standard layout is contiguous");
    let (h, w) = (s.height, s.width);
    let side = 2 * BLOCK_CELLS;
    let (by, bx) = (h / side, w / side);
    // (mean, variance) of every flat block.
    // (mean, noise variance, residual variance of the cell means) of every unclipped block.
    let candidates: Vec<(f64, f64, f64)> = (0..s.depth * by * bx)
        .into_par_iter()
        .filter_map(|b| {
            let (z, r) = (b / (by * bx), b % (by * bx));
            let (y0, x0) = ((r / bx) * side, (r % bx) * side);
            let plane = &data[z * h * w..(z + 1) * h * w];
            let mut means = [[0.0f64; BLOCK_CELLS]; BLOCK_CELLS];
            let mut details = Vec::with_capacity(BLOCK_CELLS * BLOCK_CELLS);
            for (cy, row) in means.iter_mut().enumerate() {
                for (cx, m) in row.iter_mut().enumerate() {
                    let at = (y0 + 2 * cy) * w + x0 + 2 * cx;
                    let q = [plane[at], plane[at + 1], plane[at + w], plane[at + w + 1]];
                    // Clipped or saturated pixels have no noise to measure.
                    if q.iter().any(|&p| p == lo || p == hi) {
                        return None;
                    }
                    let [p00, p01, p10, p11] = q.map(f64::from);
                    *m = 0.25 * (p00 + p01 + p10 + p11);
                }
            }
            // Noise samples: the separable second difference [1 −2 1] ⊗ [1 −2 1] (norm 6),
            // blind to every quadratic and to x·y terms, on a stride-2 grid inside the
            // block. A Haar detail would see the curvature of round objects as noise.
            for iy in 0..BLOCK_CELLS - 1 {
                for ix in 0..BLOCK_CELLS - 1 {
                    let (cy, cx) = (y0 + 1 + 2 * iy, x0 + 1 + 2 * ix);
                    let row = |y: usize| {
                        let r = &plane[y * w + cx - 1..y * w + cx + 2];
                        f64::from(r[0]) - 2.0 * f64::from(r[1]) + f64::from(r[2])
                    };
                    details.push((row(cy - 1) - 2.0 * row(cy) + row(cy + 1)) / 6.0);
                }
            }
            // The mean square is unbiased; a median of 49 correlated samples overestimates
            // the variance by about 7%. Outliers (edges) are removed by the test below.
            let var = details.iter().map(|d| d * d).sum::<f64>() / details.len() as f64;
            let (mean, residual) = surface_fit_residual(&means);
            (var > 0.0).then_some((mean, var, residual))
        })
        .collect();
    // A cell mean carries a quarter of the noise variance. A block whose means depart from
    // a smooth (quadratic) surface by more than the noise explains holds structure (an edge,
    // texture) that the noise operator would partly count as noise. The test compares
    // with the variance the current fit predicts, not the block's own estimate: selecting
    // on that would favour blocks whose noise happened to be overestimated (measured:
    // +10 to 15% on the gain). The first pass, without a fit, uses the block's own.
    let mut fit = None;
    for _ in 0..4 {
        let blocks: Vec<(f64, f64)> = candidates
            .iter()
            .filter(|&&(mean, var, residual)| {
                let expected = match fit {
                    Some(PoissonGaussian { a, b, .. }) => (a * mean + b).max(f64::MIN_POSITIVE),
                    None => var,
                };
                residual <= 1.25 * expected / 4.0
            })
            .map(|&(mean, var, _)| (mean, var))
            .collect();
        match fit_line(blocks) {
            Ok(f) => fit = Some(f),
            Err(_) => {
                fit = None;
                break;
            }
        }
    }
    // Single smooth pixels give many more samples where the image has them; flat blocks
    // resist texture that a pixel test misses. Keep the fit that knows its slope better.
    let dense = estimate_poisson_gaussian_dense(data, s, (lo, hi));
    let relative = |f: &PoissonGaussian| f.a_se / f.a.abs().max(f64::MIN_POSITIVE);
    match (fit, dense) {
        (Some(b), Ok(d)) => Ok(if relative(&d) < relative(&b) { d } else { b }),
        (Some(b), Err(_)) => Ok(b),
        (None, Ok(d)) => Ok(d),
        (None, Err(e)) => Err(e),
    }
}

/// Bins flat blocks `(mean, variance)` by mean and fits `variance = a · mean + b`.
fn fit_line(mut blocks: Vec<(f64, f64)>) -> Result<PoissonGaussian> {
    blocks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_bins = (blocks.len() / 8).clamp(0, 24);
    if n_bins < 3 {
        return Err(crate::DenoiseError::invalid(format!(
            "too few flat regions to fit a Poisson-Gaussian noise model: {} flat 16x16 \
             blocks, at least 24 needed (a larger image, or one with less structure)",
            blocks.len()
        )));
    }
    // (mean intensity, variance, blocks) per bin.
    let bins: Vec<(f64, f64, f64)> = (0..n_bins)
        .map(|k| {
            let part = &blocks[k * blocks.len() / n_bins..(k + 1) * blocks.len() / n_bins];
            let y = part.iter().map(|b| b.0).sum::<f64>() / part.len() as f64;
            // A plain mean: block variances are skewed (chi-square-like), so trimming both
            // tails would bias the bin low. Structured blocks were excluded before.
            let var = part.iter().map(|b| b.1).sum::<f64>() / part.len() as f64;
            (y, var, part.len() as f64)
        })
        .collect();
    fit_bins(&bins, None)
}

/// Weighted least squares for `var = a · y + b` over bins `(y, var, samples)`. The
/// weights are `n / var²` (a variance estimate's spread grows with the variance), with
/// the variance the previous fit predicts when there is one: the bin's own estimate
/// would favour bins whose noise happened to come out low.
fn fit_bins(bins: &[(f64, f64, f64)], prior: Option<(f64, f64)>) -> Result<PoissonGaussian> {
    let weight = |y: f64, var: f64, n: f64| {
        let v = match prior {
            Some((a, b)) => (a * y + b).max(0.05 * var),
            None => var,
        };
        n / (v * v).max(f64::MIN_POSITIVE)
    };
    let (mut sw, mut swy, mut swyy, mut swv, mut swyv) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(y, var, n) in bins {
        let wt = weight(y, var, n);
        sw += wt;
        swy += wt * y;
        swyy += wt * y * y;
        swv += wt * var;
        swyv += wt * y * var;
    }
    let det = sw * swyy - swy * swy;
    if det <= 0.0 || !det.is_finite() {
        return Err(crate::DenoiseError::invalid(
            "the flat regions all have the same intensity: the Poisson-Gaussian model needs \
             a range of intensities to separate signal-dependent from constant noise",
        ));
    }
    let a = (sw * swyv - swy * swv) / det;
    let b = (swyy * swv - swy * swyv) / det;
    let resid: f64 = bins
        .iter()
        .map(|&(y, var, n)| weight(y, var, n) * (var - a * y - b).powi(2))
        .sum();
    let s2 = resid / (bins.len() as f64 - 2.0);
    Ok(PoissonGaussian {
        a,
        b,
        a_se: (s2 * sw / det).sqrt(),
        b_se: (s2 * swyy / det).sqrt(),
        levels: bins.len(),
    })
}

/// Pixels the dense fit measures at most; planes of a larger stack are sampled evenly.
const DENSE_MAX_PIXELS: usize = 1 << 22;

/// Samples per chunk in which the dense fit counts its smooth pixels.
const DENSE_CHUNK: usize = 1 << 14;

/// Smooth pixels per intensity bin of the dense fit, at least.
const DENSE_BIN_PIXELS: usize = 512;

/// The dense fit, for images whose structure leaves too few flat 16x16 blocks (electron
/// micrographs, cells filling the field): Foi et al.'s level sets over single pixels.
///
/// At every pixel whose 7x7 neighbourhood holds no clipped or saturated value: the local
/// intensity is the 5x5 mean, the noise sample Immerkær's normalised second difference
/// (zero on every quadratic surface, variance σ² on white noise), and the local slope the
/// central difference of the 5x5 means. A pixel is smooth when that slope is within what
/// the noise alone gives in 90% of cases (its two components have standard deviation
/// √20/50 · σ). The smooth pixels are binned by intensity (equal counts); each bin's
/// variance is the square of its median absolute noise sample over 0.6745, robust to the
/// edges that pass the test; a line is fitted to the bins. Selection and weights use the
/// variance the fit predicts, so the fit is repeated four times from a first pass that
/// assumes one variance everywhere.
fn estimate_poisson_gaussian_dense(
    data: &[f32],
    s: Shape,
    (lo, hi): (f32, f32),
) -> Result<PoissonGaussian> {
    let (h, w) = (s.height, s.width);
    if h < 9 || w < 9 {
        return Err(crate::DenoiseError::invalid(format!(
            "a {w}x{h} image is too small to fit a Poisson-Gaussian noise model: at least \
             9x9 pixels needed"
        )));
    }
    let planes = (DENSE_MAX_PIXELS / (h * w)).max(1);
    let stride = s.depth.div_ceil(planes);
    // (local mean, noise sample, squared local slope) of every unclipped pixel, in order of
    // local mean: every pass below bins a subset by intensity, and a subset of a sorted
    // list is sorted. One stable radix sort (so ties keep the order each pass's own
    // comparison sort gave them) replaces four comparison sorts of up to 4 M samples,
    // which took most of a second at 2048x2048.
    let samples: Vec<(f32, f32, f32)> = (0..s.depth)
        .step_by(stride)
        .flat_map(|z| {
            let plane = &data[z * h * w..(z + 1) * h * w];
            dense_samples(plane, h, w, lo, hi)
        })
        .collect();
    let samples = radix_sort_by_f32(samples, |t| t.0);
    let mut noise: Vec<f64> = samples.iter().map(|t| f64::from(t.1.abs())).collect();
    if noise.len() < 3 * DENSE_BIN_PIXELS {
        return Err(crate::DenoiseError::invalid(format!(
            "too few unclipped pixels to fit a Poisson-Gaussian noise model: {} (at least \
             {} away from the image's minimum and maximum)",
            noise.len(),
            3 * DENSE_BIN_PIXELS
        )));
    }
    let sigma = median(&mut noise) / 0.674_489_750_196_081_7;
    if sigma <= 0.0 {
        return Err(crate::DenoiseError::invalid(
            "the image has no measurable noise: a Poisson-Gaussian model cannot be fitted",
        ));
    }
    // 90% of slopes of pure noise: a Rayleigh quantile, √(2 ln 10) scales.
    let slope_sd = 20f64.sqrt() / 50.0;
    let limit2 = 2.0 * 10f64.ln() * slope_sd * slope_sd;
    let mut prior: Option<(f64, f64)> = None;
    let mut fit = None;
    for _ in 0..4 {
        let predicted = |y: f64| match prior {
            Some((a, b)) => (a * y + b).max(0.01 * sigma * sigma),
            None => sigma * sigma,
        };
        let smooth = |t: &(f32, f32, f32)| f64::from(t.2) <= limit2 * predicted(f64::from(t.0));
        let chunks = smooth_counts(&samples, &smooth);
        let count: usize = chunks.iter().sum();
        let n_bins = (count / DENSE_BIN_PIXELS).min(32);
        if n_bins < 3 {
            return Err(crate::DenoiseError::invalid(format!(
                "too few smooth pixels to fit a Poisson-Gaussian noise model: {count} (at least \
                 {}; the image is all edges and texture)",
                3 * DENSE_BIN_PIXELS
            )));
        }
        let bins = smooth_bins(&samples, &smooth, &chunks, n_bins);
        let f = fit_bins(&bins, prior)?;
        prior = Some((f.a, f.b));
        fit = Some(f);
    }
    Ok(fit.expect("at least one pass ran"))
}

/// How many of each [`DENSE_CHUNK`] samples are `smooth`, counted in parallel.
fn smooth_counts(
    samples: &[(f32, f32, f32)],
    smooth: &(impl Fn(&(f32, f32, f32)) -> bool + Sync),
) -> Vec<usize> {
    samples
        .par_chunks(DENSE_CHUNK)
        .map(|c| c.iter().filter(|t| smooth(t)).count())
        .collect()
}

/// The `smooth` samples (in the order of `samples`, by local mean) cut into `n_bins` runs
/// of equal counts: each run's mean local intensity, its noise variance (the squared
/// median absolute noise sample over 0.6745) and its length. The runs are measured in
/// parallel, each from the chunk where it starts (`chunks`, from [`smooth_counts`]): the
/// smooth samples are never gathered into a list of their own (up to 4 M, four times).
fn smooth_bins(
    samples: &[(f32, f32, f32)],
    smooth: &(impl Fn(&(f32, f32, f32)) -> bool + Sync),
    chunks: &[usize],
    n_bins: usize,
) -> Vec<(f64, f64, f64)> {
    let count: usize = chunks.iter().sum();
    (0..n_bins)
        .into_par_iter()
        .map(|k| {
            let (first, len) = (
                k * count / n_bins,
                (k + 1) * count / n_bins - k * count / n_bins,
            );
            // The chunk holding the run's first smooth sample, and how many come before it.
            let (mut chunk, mut before) = (0, 0);
            while before + chunks[chunk] <= first {
                before += chunks[chunk];
                chunk += 1;
            }
            let run = samples[chunk * DENSE_CHUNK..]
                .iter()
                .filter(|t| smooth(t))
                .skip(first - before)
                .take(len);
            let (mut ys, mut d) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for t in run {
                ys.push(f64::from(t.0));
                d.push(f64::from(t.1.abs()));
            }
            let y = ys.iter().sum::<f64>() / len as f64;
            let sd = median(&mut d) / 0.674_489_750_196_081_7;
            (y, sd * sd, len as f64)
        })
        .collect()
}

/// The dense fit's samples of one plane: see [`estimate_poisson_gaussian_dense`].
fn dense_samples(plane: &[f32], h: usize, w: usize, lo: f32, hi: f32) -> Vec<(f32, f32, f32)> {
    // Integral images (one row and column of zeros in front) of the values and of the
    // clipped pixels make every box sum four look-ups.
    let (ih, iw) = (h + 1, w + 1);
    let mut sum = vec![0.0f64; ih * iw];
    let mut clip = vec![0u32; ih * iw];
    for y in 0..h {
        for x in 0..w {
            let v = plane[y * w + x];
            let at = (y + 1) * iw + x + 1;
            sum[at] = f64::from(v) + sum[at - 1] + sum[at - iw] - sum[at - iw - 1];
            clip[at] =
                u32::from(v <= lo || v >= hi) + clip[at - 1] + clip[at - iw] - clip[at - iw - 1];
        }
    }
    // Sum over rows y0..y1 and columns x0..x1 (exclusive ends).
    let boxed = |t: &[f64], y0: usize, x0: usize, y1: usize, x1: usize| {
        t[y1 * iw + x1] - t[y0 * iw + x1] - t[y1 * iw + x0] + t[y0 * iw + x0]
    };
    let clipped = |y0: usize, x0: usize, y1: usize, x1: usize| {
        clip[y1 * iw + x1] + clip[y0 * iw + x0] - clip[y0 * iw + x1] - clip[y1 * iw + x0]
    };
    // Rows of samples in bands, each with the 5x5 means of its rows and the one above and
    // below computed once (a sample reads five of them) in a band-sized buffer.
    const BAND: usize = 16;
    let rows: Vec<usize> = (3..h - 3).step_by(BAND).collect();
    rows.into_par_iter()
        .flat_map_iter(|y0| {
            let y1 = (y0 + BAND).min(h - 3);
            // Means of rows y0 - 1 ..= y1, columns 2 ..= w - 3.
            let mut means = vec![0.0f64; (y1 - y0 + 2) * w];
            for (r, row) in means.chunks_exact_mut(w).enumerate() {
                let y = y0 - 1 + r;
                for (x, m) in row.iter_mut().enumerate().take(w - 2).skip(2) {
                    *m = boxed(&sum, y - 2, x - 2, y + 3, x + 3) / 25.0;
                }
            }
            let mut out = Vec::with_capacity((y1 - y0) * (w - 6));
            for y in y0..y1 {
                let mean5 = |y: usize, x: usize| means[(y + 1 - y0) * w + x];
                out.extend((3..w - 3).filter_map(|x| {
                    if clipped(y - 3, x - 3, y + 4, x + 4) > 0 {
                        return None;
                    }
                    let p = |dy: isize, dx: isize| {
                        f64::from(
                            plane[(y as isize + dy) as usize * w + (x as isize + dx) as usize],
                        )
                    };
                    let row = |dy| p(dy, -1) - 2.0 * p(dy, 0) + p(dy, 1);
                    let d = (row(-1) - 2.0 * row(0) + row(1)) / 6.0;
                    let gx = 0.5 * (mean5(y, x + 1) - mean5(y, x - 1));
                    let gy = 0.5 * (mean5(y + 1, x) - mean5(y - 1, x));
                    Some((mean5(y, x) as f32, d as f32, (gx * gx + gy * gy) as f32))
                }));
            }
            out
        })
        .collect()
}

/// The mean of a block's cell means and the variance of their residual from the best
/// quadratic surface. On a complete regular grid the centred basis `1, x, y, x², y², xy`
/// is orthogonal, so the fit is a sum of independent projections.
fn surface_fit_residual(m: &[[f64; BLOCK_CELLS]; BLOCK_CELLS]) -> (f64, f64) {
    let n = BLOCK_CELLS;
    let c = (n as f64 - 1.0) / 2.0;
    let u: Vec<f64> = (0..n).map(|i| i as f64 - c).collect();
    let u2_mean = u.iter().map(|v| v * v).sum::<f64>() / n as f64;
    let q: Vec<f64> = u.iter().map(|v| v * v - u2_mean).collect();
    let mean = m.iter().flatten().sum::<f64>() / (n * n) as f64;
    let basis: [&dyn Fn(usize, usize) -> f64; 5] = [
        &|_, x| u[x],
        &|y, _| u[y],
        &|_, x| q[x],
        &|y, _| q[y],
        &|y, x| u[y] * u[x],
    ];
    let total: f64 = m.iter().flatten().map(|v| (v - mean).powi(2)).sum();
    let mut explained = 0.0;
    for f in basis {
        let (mut dot, mut norm) = (0.0, 0.0);
        for (y, row) in m.iter().enumerate() {
            for (x, v) in row.iter().enumerate() {
                dot += (v - mean) * f(y, x);
                norm += f(y, x) * f(y, x);
            }
        }
        explained += dot * dot / norm;
    }
    (mean, (total - explained).max(0.0) / ((n * n) as f64 - 6.0))
}

/// `items` stably sorted by `key` in `f32::total_cmp` order: a least-significant-digit
/// radix sort, three passes of 11 bits, linear in the length where a comparison sort is not.
fn radix_sort_by_f32<T: Copy>(mut items: Vec<T>, key: impl Fn(&T) -> f32) -> Vec<T> {
    // Unsigned order of these bits is total_cmp's order: negatives have every bit flipped,
    // positives only the sign.
    let bits = |t: &T| {
        let b = key(t).to_bits();
        if b >> 31 == 1 { !b } else { b | 1 << 31 }
    };
    let mut other = items.clone();
    for shift in [0, 11, 22] {
        let digit = |t: &T| ((bits(t) >> shift) & 0x7ff) as usize;
        let mut start = vec![0usize; 2049];
        for t in &items {
            start[digit(t) + 1] += 1;
        }
        for d in 1..start.len() {
            start[d] += start[d - 1];
        }
        for t in &items {
            let d = digit(t);
            other[start[d]] = *t;
            start[d] += 1;
        }
        std::mem::swap(&mut items, &mut other);
    }
    items
}

/// The median of `x` (may reorder `x`). `x` must not be empty.
fn median(x: &mut [f64]) -> f64 {
    median_above(x, 0)
}

/// What `estimate_sigma` writes for a position whose support is flat.
const FLAT: f64 = -1.0;

/// The median of `x` without its `skip` smallest values (in `f64::total_cmp` order).
fn median_above(x: &mut [f64], skip: usize) -> f64 {
    let n = x.len() - skip;
    if x.len() >= PARALLEL_MEDIAN {
        let [lower, upper] = order_statistics(x, [skip + (n - 1) / 2, skip + n / 2]);
        return if n % 2 == 1 {
            upper
        } else {
            0.5 * (lower + upper)
        };
    }
    let x = if skip == 0 {
        x
    } else {
        x.select_nth_unstable_by(skip - 1, f64::total_cmp);
        &mut x[skip..]
    };
    let (_, m, _) = x.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = x[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// From this many values the median is found by every core: one core's selection over
/// the 1 M wavelet coefficients of a 2048x2048 image took most of `estimate_sigma`, which
/// every job with a noise-derived default runs first.
const PARALLEL_MEDIAN: usize = 1 << 16;

/// The values of ranks `ranks` (0-based, ascending) in `f64::total_cmp` order: one
/// parallel histogram of the top bits of an order-preserving key finds the bucket holding
/// each rank, and a selection among that bucket's values (a small share of them, for any
/// spread-out data) finishes. Exactly the values a full sort would put there.
fn order_statistics(x: &[f64], ranks: [usize; 2]) -> [f64; 2] {
    const BITS: u32 = 16;
    // Unsigned order of the key is total_cmp's order of the value.
    let key = |v: f64| {
        let b = v.to_bits();
        if b >> 63 == 1 { !b } else { b | 1 << 63 }
    };
    let bucket = |v: f64| (key(v) >> (64 - BITS)) as usize;
    let hist = x
        .par_chunks(1 << 15)
        .fold(
            || vec![0usize; 1 << BITS],
            |mut h, c| {
                c.iter().for_each(|&v| h[bucket(v)] += 1);
                h
            },
        )
        .reduce(
            || vec![0usize; 1 << BITS],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let (mut below, mut b) = (0, 0);
    // The bucket gathered last, and how many values lie below it.
    let mut inside: Option<(usize, usize, Vec<f64>)> = None;
    ranks.map(|r| {
        while below + hist[b] <= r {
            below += hist[b];
            b += 1;
        }
        let (_, start, values) = match &mut inside {
            Some(g) if g.0 == b => g,
            _ => inside.insert((
                b,
                below,
                x.par_iter().copied().filter(|&v| bucket(v) == b).collect(),
            )),
        };
        *values.select_nth_unstable_by(r - *start, f64::total_cmp).1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Volume;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    /// The parallel median is the sorted middle, bit for bit, for odd and even counts,
    /// data crowded into one histogram bucket, both signs, ties and zeros.
    #[test]
    fn the_parallel_median_is_the_sorted_middle() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = PARALLEL_MEDIAN + 5;
        let spread: Vec<f64> = (0..n).map(|_| (next() - 0.3) * 1e3).collect();
        // One bucket: the top 16 bits of the key are equal for all of these.
        let crowded: Vec<f64> = (0..n).map(|_| 1.0 + next() * 1e-6).collect();
        let ties: Vec<f64> = (0..n).map(|i| [0.0, -0.0, 2.5, -7.0][i % 4]).collect();
        let abs: Vec<f64> = spread.iter().map(|v| v.abs()).collect();
        for data in [spread, crowded, ties, abs] {
            for len in [data.len(), data.len() - 1] {
                let mut sorted = data[..len].to_vec();
                sorted.sort_by(f64::total_cmp);
                let want = if len % 2 == 1 {
                    sorted[len / 2]
                } else {
                    0.5 * (sorted[len / 2 - 1] + sorted[len / 2])
                };
                let got = median(&mut data[..len].to_vec());
                assert_eq!(got.to_bits(), want.to_bits(), "{len} values");
            }
        }
    }

    #[test]
    fn radix_sort_is_the_stable_total_order_sort() {
        // Keys with many ties (as the 5x5 means of an integer image have), both signs,
        // zeros of both signs, infinities and values spanning every radix digit; the
        // index in each item shows whether ties kept their order.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as u32
        };
        let specials = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -1e-40,
        ];
        let items: Vec<(f32, usize)> = (0..20_000)
            .map(|i| {
                let r = next();
                let key = match r % 4 {
                    0 => (r % 37) as f32 / 25.0 - 0.5,
                    1 => f32::from_bits(next()),
                    2 => specials[(r as usize / 4) % specials.len()],
                    _ => (r as f32 - 2e9) * 1e-3,
                };
                (if key.is_nan() { 1.5 } else { key }, i)
            })
            .collect();
        let mut expected = items.clone();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        let got = radix_sort_by_f32(items, |t| t.0);
        assert!(
            got.iter()
                .zip(&expected)
                .all(|(a, b)| a.0.to_bits() == b.0.to_bits() && a.1 == b.1)
        );
    }

    #[test]
    fn db2_filter_is_orthonormal_high_pass() {
        let sum: f64 = DB2_HI.iter().sum();
        let energy: f64 = DB2_HI.iter().map(|h| h * h).sum();
        assert!(sum.abs() < 1e-12);
        assert!((energy - 1.0).abs() < 1e-12);
    }

    #[test]
    fn poisson_gaussian_fit_recovers_a_known_camera() {
        use crate::phantom::Rng;
        // A slowly varying scene (two ramps) seen by a camera with gain 2.5 grey levels per
        // photon, offset 100 and read noise 4 grey levels: var = 2.5 mean - 2.5 * 100 + 16.
        let (gain, offset, read) = (2.5, 100.0, 4.0);
        let mut rng = Rng::new(31);
        let img = ndarray::Array3::from_shape_fn((1, 384, 384), |(_, y, x)| {
            let photons = 5.0 + 200.0 * (x as f64 / 384.0) * (0.3 + 0.7 * y as f64 / 384.0);
            (gain * rng.poisson(photons) + offset + read * rng.normal()) as f32
        });
        let fit = estimate_poisson_gaussian(&img.view()).unwrap();
        let b_true = read * read - gain * offset;
        assert!((fit.a - gain).abs() < 0.1 * gain, "{fit:?}");
        assert!((fit.b - b_true).abs() < 0.1 * b_true.abs(), "{fit:?}");
        assert!(fit.a_se < 0.1 * gain, "{fit:?}");
    }

    #[test]
    fn poisson_gaussian_fit_ignores_clipped_background() {
        use crate::phantom::Rng;
        // Half the image is clipped at 0 (no photons, offset subtracted and clamped).
        let mut rng = Rng::new(32);
        let img = ndarray::Array3::from_shape_fn((1, 384, 384), |(_, y, x)| {
            if x < 192 {
                0.0
            } else {
                let photons = 10.0 + 300.0 * ((x - 192) as f64 / 192.0) * (y as f64 / 384.0);
                (0.5 * rng.poisson(photons) + 2.0 * rng.normal()) as f32
            }
        });
        let fit = estimate_poisson_gaussian(&img.view()).unwrap();
        assert!((fit.a - 0.5).abs() < 0.05, "{fit:?}");
        assert!((fit.b - 4.0).abs() < 0.4 * 4.0 + 3.0 * fit.b_se, "{fit:?}");
    }

    #[test]
    fn poisson_gaussian_fit_refuses_images_without_noise_or_room() {
        let img = ndarray::Array3::from_shape_fn((1, 20, 20), |(_, y, x)| (x * y) as f32);
        let e = estimate_poisson_gaussian(&img.view()).unwrap_err();
        assert!(e.to_string().contains("pixels"), "{e}");
        let tiny = ndarray::Array3::from_shape_fn((1, 6, 40), |(_, y, x)| (x + y) as f32);
        let e = estimate_poisson_gaussian(&tiny.view()).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }

    /// A dense scene: discs of random brightness on a textured background, everywhere
    /// edges (no flat 16x16 block), each pixel's photon count turned into a grey level by
    /// `camera`.
    fn dense_scene(seed: u64, camera: impl Fn(f64, &mut crate::phantom::Rng) -> f64) -> Volume {
        use crate::phantom::Rng;
        let mut rng = Rng::new(seed);
        let n = 384;
        let discs: Vec<(f64, f64, f64, f64)> = (0..400)
            .map(|_| {
                let (u, v, r, b) = (rng.uniform(), rng.uniform(), rng.uniform(), rng.uniform());
                (u * n as f64, v * n as f64, 3.0 + 6.0 * r, 20.0 + 300.0 * b)
            })
            .collect();
        Volume::from_shape_fn((1, n, n), |(_, y, x)| {
            let (yf, xf) = (y as f64, x as f64);
            let mut photons = 40.0 + 30.0 * ((xf / 7.0).sin() * (yf / 9.0).cos());
            for &(cx, cy, r, b) in &discs {
                if (xf - cx).powi(2) + (yf - cy).powi(2) < r * r {
                    photons = b;
                }
            }
            camera(photons, &mut rng) as f32
        })
    }

    fn camera(gain: f64, offset: f64, read: f64) -> impl Fn(f64, &mut crate::phantom::Rng) -> f64 {
        move |photons, rng| gain * rng.poisson(photons) + offset + read * rng.normal()
    }

    /// The dense fit's samples equal a direct evaluation at every pixel (5x5 means summed
    /// in the same order through the integral image), whichever band of rows holds it:
    /// heights around the band's 16 rows, the smallest image, and clipped pixels.
    #[test]
    fn dense_samples_equal_a_direct_evaluation() {
        let mut rng = crate::phantom::Rng::new(11);
        for (h, w) in [(9, 9), (22, 13), (23, 10), (38, 17)] {
            let mut plane: Vec<f32> = (0..h * w).map(|_| (rng.uniform() * 100.0) as f32).collect();
            plane[w + 1] = 0.0;
            let (lo, hi) = (0.0, 100.0);
            let got = dense_samples(&plane, h, w, lo, hi);
            let (iw, at) = (w + 1, |y: usize, x: usize| f64::from(plane[y * w + x]));
            let mut sum = vec![0.0f64; (h + 1) * iw];
            for y in 0..h {
                for x in 0..w {
                    let i = (y + 1) * iw + x + 1;
                    sum[i] = at(y, x) + sum[i - 1] + sum[i - iw] - sum[i - iw - 1];
                }
            }
            let mean5 = |y: usize, x: usize| {
                (sum[(y + 3) * iw + x + 3] - sum[(y - 2) * iw + x + 3] - sum[(y + 3) * iw + x - 2]
                    + sum[(y - 2) * iw + x - 2])
                    / 25.0
            };
            let mut want = Vec::new();
            for y in 3..h - 3 {
                for x in 3..w - 3 {
                    let near = (y - 3..y + 4)
                        .any(|v| (x - 3..x + 4).any(|u| at(v, u) <= 0.0 || at(v, u) >= 100.0));
                    if near {
                        continue;
                    }
                    let row = |v: usize| at(v, x - 1) - 2.0 * at(v, x) + at(v, x + 1);
                    let d = (row(y - 1) - 2.0 * row(y) + row(y + 1)) / 6.0;
                    let gx = 0.5 * (mean5(y, x + 1) - mean5(y, x - 1));
                    let gy = 0.5 * (mean5(y + 1, x) - mean5(y - 1, x));
                    want.push((mean5(y, x) as f32, d as f32, (gx * gx + gy * gy) as f32));
                }
            }
            assert!(
                want.len() < (h - 6) * (w - 6),
                "the clipped pixel excludes some"
            );
            assert_eq!(got, want, "{h}x{w}");
        }
    }

    /// The bins measured in parallel from per-chunk counts are the bins of the smooth
    /// samples taken in order, bit for bit: runs that start in a later chunk, chunks
    /// without a smooth sample, and bins of unequal lengths.
    #[test]
    fn smooth_bins_are_runs_of_the_smooth_samples_in_order() {
        let mut rng = crate::phantom::Rng::new(12);
        let n = 3 * DENSE_CHUNK + 1234;
        let samples: Vec<(f32, f32, f32)> = (0..n)
            .map(|i| {
                // No smooth sample in the second chunk.
                let slope = if i / DENSE_CHUNK == 1 {
                    1.0
                } else {
                    rng.uniform() as f32
                };
                (i as f32 * 0.01, rng.normal() as f32, slope)
            })
            .collect();
        let smooth = |t: &(f32, f32, f32)| t.2 < 0.3;
        let chunks = smooth_counts(&samples, &smooth);
        assert_eq!(chunks[1], 0);
        let kept: Vec<&(f32, f32, f32)> = samples.iter().filter(|t| smooth(t)).collect();
        for n_bins in [3, 7, 32] {
            let got = smooth_bins(&samples, &smooth, &chunks, n_bins);
            let count = kept.len();
            let want: Vec<(f64, f64, f64)> = (0..n_bins)
                .map(|k| {
                    let part = &kept[k * count / n_bins..(k + 1) * count / n_bins];
                    let y = part.iter().map(|t| f64::from(t.0)).sum::<f64>() / part.len() as f64;
                    let mut d: Vec<f64> = part.iter().map(|t| f64::from(t.1.abs())).collect();
                    let sd = median(&mut d) / 0.674_489_750_196_081_7;
                    (y, sd * sd, part.len() as f64)
                })
                .collect();
            assert_eq!(got, want, "{n_bins} bins");
        }
    }

    #[test]
    fn dense_images_are_fitted_on_their_smooth_pixels() {
        let (gain, offset, read) = (3.0, 50.0, 6.0);
        let img = dense_scene(41, camera(gain, offset, read));
        let b_true = read * read - gain * offset;
        let data = img.as_slice().unwrap();
        let (lo, hi) = crate::volume::min_max(&img.view());
        let dense =
            estimate_poisson_gaussian_dense(data, Shape::of(&img.view()), (lo, hi)).unwrap();
        let public = estimate_poisson_gaussian(&img.view()).unwrap();
        for fit in [dense, public] {
            assert!((fit.a - gain).abs() < 0.1 * gain, "{fit:?}");
            assert!((fit.b - b_true).abs() < 0.25 * b_true.abs(), "{fit:?}");
        }
    }

    #[test]
    fn auto_tells_photon_noise_from_constant_noise() {
        let photons = dense_scene(42, camera(3.0, 50.0, 6.0));
        let c = choose_noise_model(&photons.view()).unwrap();
        assert!(
            matches!(c.model, NoiseModel::PoissonGaussian(f) if (f.a - 3.0).abs() < 0.3),
            "{c:?}"
        );
        assert!(
            c.options()
                .starts_with("noise_model=poisson_gaussian gain="),
            "{c:?}"
        );
        // The same scene with Gaussian noise of about the same overall level.
        let gaussian = dense_scene(42, |photons, rng| {
            3.0 * photons + 50.0 + 20.0 * rng.normal()
        });
        let c = choose_noise_model(&gaussian.view()).unwrap();
        assert!(matches!(c.model, NoiseModel::Gaussian { .. }), "{c:?}");
        assert_eq!(c.options(), "noise_model=gaussian");
        // A constant image has nothing to fit: Gaussian, with the reason.
        let flat = Volume::from_elem((1, 64, 64), 7.0);
        let c = choose_noise_model(&flat.view()).unwrap();
        assert!(c.reason.contains("no Poisson-Gaussian fit"), "{c:?}");
    }
}
