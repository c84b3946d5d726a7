//! Image quality against a clean reference: PSNR and SSIM.
//!
//! SSIM follows Wang et al. with scikit-image's defaults (`structural_similarity`): a 7×7
//! uniform window, K1 = 0.01, K2 = 0.03, sample covariance, averaged over the positions
//! where the window lies inside the image, so scores agree with `../shared/bench/peers.py`
//! on 2D images. Stacks are scored plane by plane and averaged (scikit-image would use a
//! 7×7×7 window).
//!
//! # References
//! Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
//! error visibility to structural similarity", IEEE TIP 13(4), 2004,
//! doi:10.1109/TIP.2003.819861.

use crate::error::{DenoiseError, Result};
use crate::volume::VolumeView;

fn same_shape(a: &VolumeView<'_>, b: &VolumeView<'_>) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(DenoiseError::invalid(format!(
            "shapes differ: {:?} vs {:?}",
            a.dim(),
            b.dim()
        )));
    }
    Ok(())
}

/// Mean squared error between two images of the same shape.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] if the shapes differ or the images are empty.
pub fn mse(a: &VolumeView<'_>, b: &VolumeView<'_>) -> Result<f64> {
    same_shape(a, b)?;
    if a.is_empty() {
        return Err(DenoiseError::invalid("empty image"));
    }
    let s: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum();
    Ok(s / a.len() as f64)
}

/// Peak signal-to-noise ratio in dB for the given data range (max − min of the clean image).
///
/// # Errors
/// As [`mse`]; also if `data_range` is not positive.
pub fn psnr(clean: &VolumeView<'_>, test: &VolumeView<'_>, data_range: f64) -> Result<f64> {
    if data_range.is_nan() || data_range <= 0.0 {
        return Err(DenoiseError::invalid(format!(
            "data range must be positive, got {data_range}"
        )));
    }
    let m = mse(clean, test)?;
    Ok(10.0 * (data_range * data_range / m).log10())
}

/// Mean structural similarity, averaged over planes.
///
/// # Errors
/// As [`psnr`]; also if a plane is smaller than the 7×7 window.
pub fn ssim(clean: &VolumeView<'_>, test: &VolumeView<'_>, data_range: f64) -> Result<f64> {
    same_shape(clean, test)?;
    if data_range.is_nan() || data_range <= 0.0 {
        return Err(DenoiseError::invalid(format!(
            "data range must be positive, got {data_range}"
        )));
    }
    if clean.is_empty() {
        return Err(DenoiseError::invalid("empty image"));
    }
    let (_, h, w) = clean.dim();
    const WIN: usize = 7;
    if h < WIN || w < WIN {
        return Err(DenoiseError::invalid(format!(
            "SSIM needs planes of at least 7x7 pixels, got {w}x{h}"
        )));
    }
    let n = (WIN * WIN) as f64;
    let cov_norm = n / (n - 1.0);
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    let mut total = 0.0;
    let mut count = 0usize;
    for (pa, pb) in clean.outer_iter().zip(test.outer_iter()) {
        for y in 0..=h - WIN {
            for x in 0..=w - WIN {
                let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for dy in 0..WIN {
                    for dx in 0..WIN {
                        let a = pa[(y + dy, x + dx)] as f64;
                        let b = pb[(y + dy, x + dx)] as f64;
                        sa += a;
                        sb += b;
                        saa += a * a;
                        sbb += b * b;
                        sab += a * b;
                    }
                }
                let (ma, mb) = (sa / n, sb / n);
                let va = cov_norm * (saa / n - ma * ma);
                let vb = cov_norm * (sbb / n - mb * mb);
                let cov = cov_norm * (sab / n - ma * mb);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                count += 1;
            }
        }
    }
    Ok(total / count as f64)
}

/// Above this [`residual_structure`], a setting is reported as removing signal.
///
/// Calibrated on the phantom (noise 0.1): good settings score −0.16 to 0.01 (NL-means and
/// BM3D at their defaults about −0.01, Gaussian sigma 1 −0.16), over-smoothing 0.06 (TV
/// lambda 0.3) to 0.15 (Gaussian sigma 5, TV lambda 1; their errors are 2 to 6 times the
/// best), a 9×9 median 0.10.
pub const RESIDUAL_STRUCTURE_WARNING: f64 = 0.05;

/// How much image structure the residual `noisy − denoised` holds: the correlation of
/// the residual with its own neighbour (along x and along y, the larger of the two).
///
/// Removed noise is white: the residual of a good setting is nearly uncorrelated between
/// neighbours (slightly negative, since denoising keeps the low frequencies of the noise).
/// Removed signal is smooth, edges and textures: it makes neighbouring residuals alike.
/// Above [`RESIDUAL_STRUCTURE_WARNING`] the setting removes structure, not only noise
/// ("imager beware"); 0 or below means the residual looks like noise.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] for different shapes.
pub fn residual_structure(noisy: &VolumeView<'_>, denoised: &VolumeView<'_>) -> Result<f64> {
    let [x, y] = residual_correlations(noisy, denoised)?;
    Ok(x.max(y))
}

/// The residual's correlation with its neighbour along x and along y.
fn residual_correlations(noisy: &VolumeView<'_>, denoised: &VolumeView<'_>) -> Result<[f64; 2]> {
    same_shape(noisy, denoised)?;
    let (d, h, w) = noisy.dim();
    let r =
        |z: usize, y: usize, x: usize| f64::from(noisy[(z, y, x)]) - f64::from(denoised[(z, y, x)]);
    // Pearson correlation of the pairs (r(p), r(p + step)).
    let corr = |dy: usize, dx: usize| -> f64 {
        let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
        for z in 0..d {
            for y in 0..h.saturating_sub(dy) {
                for x in 0..w.saturating_sub(dx) {
                    let (a, b) = (r(z, y, x), r(z, y + dy, x + dx));
                    n += 1.0;
                    sa += a;
                    sb += b;
                    saa += a * a;
                    sbb += b * b;
                    sab += a * b;
                }
            }
        }
        if n < 2.0 {
            return 0.0;
        }
        let cov = sab / n - (sa / n) * (sb / n);
        let va = saa / n - (sa / n).powi(2);
        let vb = sbb / n - (sb / n).powi(2);
        if va <= 0.0 || vb <= 0.0 {
            0.0
        } else {
            cov / (va * vb).sqrt()
        }
    };
    Ok([corr(0, 1), corr(1, 0)])
}

/// The noise's own correlation with its neighbour along x and along y, where it is
/// significant (0 where it is not, or cannot be measured), on [`crate::noise_sample`]:
/// a residual of removed noise, and nothing else, is correlated as much.
fn noise_correlations(noisy: &VolumeView<'_>) -> [f64; 2] {
    let [z, y, x] = crate::noise_sample(noisy.dim());
    let Ok(c) = crate::correlation::estimate_correlation(&noisy.slice(ndarray::s![z, y, x])) else {
        return [0.0; 2];
    };
    let at = |lag| {
        c.significant()
            .iter()
            .find(|(l, _)| *l == lag)
            .map_or(0.0, |&(_, r)| r.max(0.0))
    };
    [at((0, 1)), at((1, 0))]
}

/// The "imager beware" message when [`residual_structure`] exceeds
/// [`RESIDUAL_STRUCTURE_WARNING`], shared by the command line and the plugin.
///
/// Where the noise itself is correlated between neighbours (the scan noise of electron
/// microscopes, binned or interpolated images), removed noise is as correlated as it, so
/// the bound is that correlation plus [`RESIDUAL_STRUCTURE_WARNING`]: on an ssTEM plane
/// (noise correlation 0.52) NL-means at its defaults removed almost nothing and was
/// still told it removed signal (0.08).
///
/// # Errors
/// [`DenoiseError::InvalidInput`] for different shapes.
pub fn residual_warning(
    noisy: &VolumeView<'_>,
    denoised: &VolumeView<'_>,
) -> Result<Option<String>> {
    let r = residual_correlations(noisy, denoised)?;
    // The noise is measured only where the residual could warn at all.
    if r[0].max(r[1]) <= RESIDUAL_STRUCTURE_WARNING {
        return Ok(None);
    }
    let n = noise_correlations(noisy);
    let (i, excess) = (0..2)
        .map(|i| (i, r[i] - n[i]))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    Ok((excess > RESIDUAL_STRUCTURE_WARNING).then(|| {
        let measured = match n[i] {
            0.0 => format!("{:.3}", r[i]),
            c => format!("{:.3} against the noise's own {c:.3}: {excess:+.3}", r[i]),
        };
        format!(
            "the residual (input minus result) looks like image structure, not noise \
             (neighbour correlation {measured} > {RESIDUAL_STRUCTURE_WARNING}): this \
             setting removes signal; try a weaker one and check the residual view"
        )
    }))
}

#[cfg(test)]
mod residual_tests {
    use super::*;
    use crate::phantom::{PhantomSpec, phantom};
    use crate::{Control, ParamValues, run};

    /// Noise correlated between neighbours (white noise averaged over pairs of pixels)
    /// removed by a light blur is as correlated as it: no warning; a blur that takes the
    /// scene's structure too still warns, with the noise's own correlation.
    #[test]
    fn correlated_noise_removed_is_not_taken_for_structure() {
        let mut rng = crate::rng::Rng::new(8);
        let white: Vec<f64> = (0..258 * 258).map(|_| rng.normal()).collect();
        let img = ndarray::Array3::from_shape_fn((1, 256, 256), |(_, y, x)| {
            let scene = 100.0 + 40.0 * ((x as f64 / 9.0).sin() + (y as f64 / 13.0).cos());
            let at = |dy: usize, dx: usize| white[(y + dy) * 258 + x + dx];
            (scene + 6.0 * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1))) as f32
        });
        let warn = |sigma: f64| {
            let v = ParamValues::new()
                .set("sigma", sigma)
                .set("noise_model", "gaussian");
            let out = run("gaussian", img.view(), &v, &Control::new()).unwrap();
            let w = residual_warning(&img.view(), &out.view()).unwrap();
            (residual_structure(&img.view(), &out.view()).unwrap(), w)
        };
        let (light, w) = warn(0.7);
        assert!(
            light > RESIDUAL_STRUCTURE_WARNING && w.is_none(),
            "{light}: {w:?}"
        );
        let (_, w) = warn(6.0);
        assert!(
            w.as_ref()
                .is_some_and(|w| w.contains("against the noise's own 0.")),
            "{w:?}"
        );
    }

    #[test]
    fn residual_structure_flags_oversmoothing_only() {
        let p = phantom(&PhantomSpec {
            shape: (1, 128, 128),
            seed: 51,
            read_noise: 0.1,
            ..Default::default()
        });
        // Strengths in the image's grey levels: the Gaussian model, not the stabilised
        // units that noise_model=auto (the default) may choose on this photon noise.
        let score = |id: &str, v: ParamValues| {
            let v = v.set("noise_model", "gaussian");
            let out = run(id, p.noisy.view(), &v, &Control::new()).unwrap();
            residual_structure(&p.noisy.view(), &out.view()).unwrap()
        };
        // Defaults remove noise; a 5-pixel Gaussian or a strong TV remove structure too.
        for (id, v) in [
            ("nl_means", ParamValues::new()),
            ("bm3d", ParamValues::new()),
            ("gaussian", ParamValues::new().set("sigma", 1.0)),
        ] {
            let s = score(id, v);
            assert!(s < RESIDUAL_STRUCTURE_WARNING, "{id}: {s}");
        }
        for (id, v) in [
            ("gaussian", ParamValues::new().set("sigma", 5.0)),
            ("total_variation", ParamValues::new().set("lambda", 1.0)),
            ("median", ParamValues::new().set("radius", 4)),
        ] {
            let s = score(id, v);
            assert!(s > RESIDUAL_STRUCTURE_WARNING, "{id}: {s}");
        }
    }
}
