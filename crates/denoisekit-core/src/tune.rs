//! Self-supervised parameter tuning: the Noise2Self / J-invariance loss (Batson & Royer
//! 2019), or Monte-Carlo SURE for the methods whose descriptor asks for it
//! ([`TuneLoss`]), minimised by golden-section search on each tunable parameter's log
//! scale.
//!
//! No clean image is needed. A grid of pixels (every 4th in y and x) is hidden: each is
//! replaced by its neighbours' mean plus fresh noise of the image's level, the method runs
//! on that image,
//! and the loss is the mean squared difference between the output and the *noisy* values
//! at the hidden pixels. Because the output at a hidden pixel cannot have seen that
//! pixel's own noise, this loss equals the true error against the clean image plus the
//! noise variance (in expectation), so its minimum is where the true error's is. This is
//! scikit-image's `calibrate_denoiser` with `approximate_loss=True` (one mask); instead of
//! evaluating a user-given grid, each parameter the descriptor marks `tunable` is searched
//! by golden sections of `log(value)` between 1/8 and 8 times its default (clipped to its
//! range), one parameter after another.
//!
//! BM3D is scored with SURE instead. Its masked loss kept falling up to about 2.4 times
//! the true noise level (the same with four different masks, so a bias of masking, not
//! noise of the loss), which was 1.2 dB below the best setting on the real nuclei at
//! noise 20; with SURE it is 0.01 dB below (tests/tuning.rs). SURE scores the method on
//! the image itself; it needs each pixel's noise variance, which is the estimated level
//! on Gaussian noise and on the Poisson-Gaussian model's stabilised image, and comes from
//! the image's own Poisson-Gaussian fit when photon noise is left unstabilised.
//!
//! Large images are tuned on a central crop (at most 256×256 pixels and 8 planes): the
//! best strength of a method depends on the noise and the kind of structure, not on the
//! field of view, and the crop keeps the `Auto` button interactive.
//!
//! # References
//! J. Batson, L. Royer, "Noise2Self: blind denoising by self-supervision", ICML 2019,
//! arXiv:1901.11365.
//! S. Ramani, T. Blu, M. Unser, "Monte-Carlo SURE: a black-box optimization of
//! regularization parameters for general denoising algorithms", IEEE TIP 17(9), 2008,
//! doi:10.1109/TIP.2008.2001404.

use crate::control::Control;
use crate::descriptor::{ParamKind, ParamValue, ParamValues, TuneLoss};
use crate::error::{DenoiseError, Result};
use crate::volume::{Shape, Volume, VolumeView};
use ndarray::{Array3, s};

/// Side of the hidden-pixel grid.
const STRIDE: usize = 4;
/// Largest crop tuned on.
const MAX_SIDE: usize = 256;
const MAX_PLANES: usize = 8;
/// Golden-section steps per parameter: the bracket shrinks to 0.618^10 ≈ 0.8% of its log
/// width (a factor of 64), i.e. to within 1.7% of the value. Against 14 steps (0.5%) the
/// tuned PSNR of the 40 cases in tests/tuning.rs moved by at most 0.02 dB, for 4 fewer runs.
const STEPS: usize = 10;

/// What [`tune`] found.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// Every parameter, with the tuned ones at their best values.
    pub values: ParamValues,
    /// (key, value) of each tuned parameter.
    pub tuned: Vec<(&'static str, f64)>,
    /// Self-supervised loss at the defaults and at the tuned values.
    pub loss_default: f64,
    /// See `loss_default`.
    pub loss_tuned: f64,
    /// Method runs spent.
    pub evaluations: usize,
}

/// Tunes method `id`'s tunable parameters on `input`; `fixed` values are kept as given.
///
/// # Errors
/// Everything [`crate::run`] reports; [`DenoiseError::InvalidInput`] when the method has
/// nothing to tune (all its tunable parameters were fixed).
pub fn tune(id: &str, input: VolumeView<'_>, fixed: &ParamValues, ctl: &Control) -> Result<Tuned> {
    // Run the whole search on a pool thread: called from outside the pool (the CLI's main
    // thread, a Java thread), every parallel loop of every trial would otherwise hand its
    // work to the pool and sleep on a latch, which dominated tuning the wavelet.
    rayon::scope(|_| tune_here(id, input, fixed, ctl))
}

fn tune_here(id: &str, input: VolumeView<'_>, fixed: &ParamValues, ctl: &Control) -> Result<Tuned> {
    // noise_model=auto is decided on the whole image, not on the crop searched below.
    let fixed = &*match crate::find(id)?.kind {
        crate::MethodKind::Denoise => crate::resolve_noise_model(&input, fixed)?,
        _ => std::borrow::Cow::Borrowed(fixed),
    };
    let (m, resolved) = crate::prepare(id, &input, fixed)?;
    let crop = central_crop(&input);
    let noise_keys: Vec<&str> = crate::vst::NOISE_MODEL_PARAMS
        .iter()
        .map(|p| p.key)
        .collect();
    // With a Poisson-Gaussian model the search runs on the stabilised image, where the
    // noise is uniform and the method's parameters live (see `crate::run`).
    let gat = match m.kind {
        crate::MethodKind::Denoise => crate::vst::Gat::from_values(fixed)?,
        _ => None,
    };
    let crop = match &gat {
        Some(g) => g.forward(&crop.view()),
        None => crop,
    };
    let sigma = crate::estimate_sigma(&crop.view())?;
    let probe = (m.tune_loss == TuneLoss::Sure && sigma > 0.0)
        .then(|| sure_probe(&crop, sigma, Variance::of(&crop, sigma)))
        .flatten();
    let score = match probe {
        Some(p) => Score::Sure(p),
        None => Score::Masked(hide_grid(&crop.view(), (1, 1), sigma)),
    };
    // The runs inside the search see the (stabilised) crop with the Gaussian model.
    let mut base = ParamValues::new();
    for (k, v) in resolved.iter().filter(|(k, _)| !noise_keys.contains(k)) {
        base.insert(k, v);
    }
    // Image inputs (a PSF) go with every trial, and into the result for replaying.
    for (k, image) in fixed.images() {
        base.insert_image(k.clone(), image.clone());
    }
    let targets: Vec<(&'static str, f64, f64, f64)> = m
        .params
        .iter()
        .filter(|p| p.tunable && !fixed.pairs().iter().any(|(k, _)| k == p.key))
        .filter_map(|p| {
            let ParamKind::Float { min, max, .. } = p.kind else {
                return None;
            };
            let (_, ParamValue::Float(d)) = resolved.iter().find(|(k, _)| *k == p.key)? else {
                return None;
            };
            // A zero default (or a flat image's zero noise) gives no scale to search around.
            (d > 0.0).then(|| (p.key, d, (d / 8.0).max(min), (d * 8.0).min(max)))
        })
        .collect();
    if targets.is_empty() {
        return Err(DenoiseError::invalid(format!(
            "{id} has nothing to tune: its tunable parameters are fixed, or their defaults \
             are 0 (a noise-free image)"
        )));
    }
    let mut evaluations = 0usize;
    let mut loss = |values: &ParamValues| -> Result<f64> {
        evaluations += 1;
        ctl.checkpoint()?;
        let quiet = ctl.quiet();
        match &score {
            Score::Masked((masked, hidden)) => {
                let out = crate::run(id, masked.view(), values, &quiet)?;
                let out = out.as_slice().expect("standard layout");
                let sum: f64 = hidden
                    .iter()
                    .map(|&(i, v)| (f64::from(out[i]) - f64::from(v)).powi(2))
                    .sum();
                Ok(sum / hidden.len() as f64)
            }
            Score::Sure(p) => {
                let out = crate::run(id, crop.view(), values, &quiet)?;
                evaluations += 1;
                let moved = crate::run(id, p.perturbed.view(), values, &quiet)?;
                Ok(p.loss(&crop, &out, &moved))
            }
        }
    };
    let loss_default = loss(&base)?;
    let mut current = base.clone();
    let mut best_loss = loss_default;
    let mut tuned = Vec::new();
    for &(key, default, lo, hi) in &targets {
        let mut at = |v: f64| -> Result<f64> {
            let trial = current.clone().set(key, crate::fmt_num(v));
            loss(&trial)
        };
        let (value, l) = golden_log(&mut at, lo, hi)?;
        // Keep the default if the search found nothing better (a flat loss).
        let (value, l) = if l < best_loss {
            (value, l)
        } else {
            (default, best_loss)
        };
        best_loss = l;
        current.insert(key, crate::fmt_num(value));
        tuned.push((key, value));
        ctl.advance(1, targets.len() as u64)?;
    }
    for (k, v) in resolved.iter().filter(|(k, _)| noise_keys.contains(k)) {
        current.insert(k, v);
    }
    Ok(Tuned {
        values: current,
        tuned,
        loss_default,
        loss_tuned: best_loss,
        evaluations,
    })
}

/// What a trial is scored on.
enum Score {
    /// The image with a grid hidden, and the hidden (index, noisy value) pairs.
    Masked((Volume, Vec<(usize, f32)>)),
    Sure(SureProbe),
}

/// Monte-Carlo SURE (Ramani, Blu & Unser 2008) for independent Gaussian noise of
/// variance `σᵢ²` at pixel `i`: the expected squared error of a method's output `f(y)`
/// against the clean image is `(|y − f(y)|² − Σσᵢ² + 2·Σ σᵢ² ∂fᵢ/∂yᵢ)/N`, with the
/// derivatives estimated along one random ±1 direction `b` as `bᵢ(f(y + εb) − f(y))ᵢ/ε`.
/// The step taken is `δ = εb` rounded to f32, so the estimate is
/// `N·δᵢ(f(y + δ) − f(y))ᵢ/|δ|²`, which equals the former for an exact step and keeps its
/// scale when rounding shortens or lengthens some of the steps (a large offset with
/// little noise). The same `b` serves every trial, so that the search compares settings
/// on the same probe. The loss reported adds the mean `σᵢ²`, which puts it on the masked
/// loss's scale (the error against a fresh noisy copy).
struct SureProbe {
    /// Each pixel's noise variance: `σ²` everywhere, or from the fit `var = a·mean + b`.
    var: Variance,
    perturbed: Volume,
    /// `|δ|²`, in f64.
    step_sq: f64,
}

enum Variance {
    Uniform(f64),
    PerPixel(Vec<f64>),
}

impl Variance {
    /// The noise variance of each pixel of `image`. Photon noise without the
    /// Poisson-Gaussian model grows with the signal; one σ² (the wavelet estimate, set by
    /// the dim background) then weighs the divergence too little where it is bright, and
    /// BM3D's SURE chose 6.5 where 12 was best (4.6 dB below, on the nuclei as camera
    /// counts). When the image's noise is signal-dependent by the rule `noise_model=auto`
    /// uses ([`crate::noise::choose_noise_model`]), each pixel gets `a·mean + b` from a
    /// local mean (SURE for independent noise of unequal variances).
    fn of(image: &Volume, sigma: f64) -> Variance {
        let uniform = Variance::Uniform(sigma * sigma);
        let fit = match crate::noise::choose_noise_model(&image.view()) {
            Ok(crate::noise::NoiseChoice {
                model: crate::noise::NoiseModel::PoissonGaussian(fit),
                ..
            }) => fit,
            _ => return uniform,
        };
        let local = crate::methods::gaussian::GaussianParams {
            sigma: 2.0,
            sigma_z: 0.0,
            border: crate::BorderMode::Symmetric,
        };
        let Ok(mean) = crate::denoise_gaussian(image.view(), &local, &Control::new()) else {
            return uniform;
        };
        // The floor keeps a pixel darker than the fit's zero from a negative variance.
        let floor = 0.01 * sigma * sigma;
        Variance::PerPixel(
            mean.iter()
                .map(|&m| (fit.a * f64::from(m) + fit.b).max(floor))
                .collect(),
        )
    }

    fn at(&self, i: usize) -> f64 {
        match self {
            Variance::Uniform(v) => *v,
            Variance::PerPixel(v) => v[i],
        }
    }
}

/// `None` when the step rounds away entirely (ε below the spacing of the image's floats).
fn sure_probe(image: &Volume, sigma: f64, var: Variance) -> Option<SureProbe> {
    // ε = 2σ/N^0.3: small enough for a first-order difference, large enough that float
    // rounding of the output does not swamp it (Deledalle et al., SIAM J. Imaging Sci.
    // 2014, §5).
    let eps = 2.0 * sigma / (image.len() as f64).powf(0.3);
    let mut rng = crate::phantom::Rng::new(0x5e7e_b0a7);
    let mut perturbed = image.as_standard_layout().into_owned();
    let mut step_sq = 0.0;
    for p in perturbed.iter_mut() {
        let b = if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 };
        let moved = (f64::from(*p) + eps * b) as f32;
        step_sq += (f64::from(moved) - f64::from(*p)).powi(2);
        *p = moved;
    }
    (step_sq > 0.0).then_some(SureProbe {
        var,
        perturbed,
        step_sq,
    })
}

impl SureProbe {
    fn loss(&self, image: &Volume, out: &Volume, moved: &Volume) -> f64 {
        let (mut residual, mut divergence) = (0.0f64, 0.0f64);
        let pixels = image.iter().zip(out).zip(moved).zip(&self.perturbed);
        for (i, (((&y, &f), &g), &p)) in pixels.enumerate() {
            residual += (f64::from(y) - f64::from(f)).powi(2);
            let step = f64::from(p) - f64::from(y);
            divergence += self.var.at(i) * step * (f64::from(g) - f64::from(f));
        }
        let n = image.len() as f64;
        (residual + 2.0 * n * divergence / self.step_sq) / n
    }
}

/// Minimises `f` over `[lo, hi]` on a log scale; returns the best point and value.
fn golden_log(f: &mut impl FnMut(f64) -> Result<f64>, lo: f64, hi: f64) -> Result<(f64, f64)> {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (lo.ln(), hi.ln());
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c.exp())?, f(d.exp())?);
    for _ in 0..STEPS {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c.exp())?;
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d.exp())?;
        }
    }
    Ok(if fc <= fd {
        (c.exp(), fc)
    } else {
        (d.exp(), fd)
    })
}

/// The central part of the image, at most `MAX_PLANES × MAX_SIDE × MAX_SIDE`.
fn central_crop(v: &VolumeView<'_>) -> Volume {
    let sh = Shape::of(v);
    let take = |n: usize, m: usize| {
        let k = n.min(m);
        let start = (n - k) / 2;
        start..start + k
    };
    let (z, y, x) = (
        take(sh.depth, MAX_PLANES),
        take(sh.height, MAX_SIDE),
        take(sh.width, MAX_SIDE),
    );
    v.slice(s![z, y, x]).as_standard_layout().into_owned()
}

/// Hides every `STRIDE`-th pixel in y and x from `(oy, ox)`, replacing it by the weighted
/// mean of its neighbours (edge 1, diagonal ½) plus Gaussian noise that brings its noise
/// back to `sigma`. The replacement is independent of the hidden pixel's own noise (what
/// makes the loss self-supervised) yet looks like an ordinary noisy pixel: a plain mean
/// looks already denoised, which made bilateral and NL-means prefer too weak settings, and
/// a copied neighbour creates flat pairs that made TV prefer too strong ones. Returns the
/// masked image and the (flat index, noisy value) of every hidden pixel.
fn hide_grid(
    v: &VolumeView<'_>,
    (oy, ox): (usize, usize),
    sigma: f64,
) -> (Volume, Vec<(usize, f32)>) {
    let (d, h, w) = v.dim();
    let mut out: Array3<f32> = v.to_owned();
    let mut hidden = Vec::new();
    let mut rng = crate::phantom::Rng::new(0x006e_3273);
    for z in 0..d {
        for y in (oy..h).step_by(STRIDE) {
            for x in (ox..w).step_by(STRIDE) {
                let (mut sum, mut ws, mut w2) = (0.0f64, 0.0f64, 0.0f64);
                for dy in -1isize..=1 {
                    for dx in -1isize..=1 {
                        let (yy, xx) = (y as isize + dy, x as isize + dx);
                        if (dy == 0 && dx == 0)
                            || yy < 0
                            || xx < 0
                            || yy as usize >= h
                            || xx as usize >= w
                        {
                            continue;
                        }
                        let wt = if dy == 0 || dx == 0 { 1.0 } else { 0.5 };
                        sum += wt * f64::from(v[(z, yy as usize, xx as usize)]);
                        ws += wt;
                        w2 += wt * wt;
                    }
                }
                if ws == 0.0 {
                    continue;
                }
                // The weighted mean carries sigma² · Σw²/(Σw)² of noise; add the rest.
                let extra = sigma * (1.0 - w2 / (ws * ws)).max(0.0).sqrt();
                out[(z, y, x)] = (sum / ws + extra * rng.normal()) as f32;
                hidden.push(((z * h + y) * w + x, v[(z, y, x)]));
            }
        }
    }
    (out, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_section_finds_a_minimum_on_the_log_scale() {
        let mut f = |v: f64| Ok((v.ln() - 3f64.ln()).powi(2));
        let (x, _) = golden_log(&mut f, 0.5, 40.0).unwrap();
        assert!((x - 3.0).abs() < 0.05, "{x}");
    }

    #[test]
    fn sure_estimates_the_error_against_the_clean_image() {
        let p = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 128, 128),
            seed: 5,
            ..Default::default()
        });
        let probe = sure_probe(&p.noisy, 0.1, Variance::Uniform(0.01)).unwrap();
        // A linear smoother, and BM3D at, below and above the noise level: without the
        // divergence term (or with its sign or scale wrong) the estimate is far off.
        for (id, key, v) in [
            ("gaussian", "sigma", 1.0),
            ("bm3d", "sigma", 0.1),
            ("bm3d", "sigma", 0.05),
            ("bm3d", "sigma", 0.2),
        ] {
            let values = ParamValues::new().set(key, v);
            let out = crate::run(id, p.noisy.view(), &values, &Control::new()).unwrap();
            let moved = crate::run(id, probe.perturbed.view(), &values, &Control::new()).unwrap();
            let sure = probe.loss(&p.noisy, &out, &moved) - 0.01;
            let mse = (&out - &p.clean)
                .mapv(|e| f64::from(e).powi(2))
                .mean()
                .unwrap();
            eprintln!("{id} {key}={v}: SURE {sure:.3e}, true {mse:.3e}");
            assert!(
                (sure - mse).abs() < 0.1 * mse,
                "{id} {key}={v}: SURE {sure} vs {mse}"
            );
        }
        // On an offset of 1e5 the f32 spacing (0.0078) is most of ε (0.011): the steps
        // round to 0.0078, and dividing by the nominal ε would make the divergence 28%
        // too small: SURE off by about 80% of the true error.
        let (noisy, clean) = (p.noisy.mapv(|v| v + 1e5), p.clean.mapv(|v| v + 1e5));
        let probe = sure_probe(&noisy, 0.1, Variance::Uniform(0.01)).unwrap();
        let values = ParamValues::new().set("sigma", 1.0);
        let out = crate::run("gaussian", noisy.view(), &values, &Control::new()).unwrap();
        let moved = crate::run("gaussian", probe.perturbed.view(), &values, &Control::new());
        let sure = probe.loss(&noisy, &out, &moved.unwrap()) - 0.01;
        let mse = (&out - &clean)
            .mapv(|e| f64::from(e).powi(2))
            .mean()
            .unwrap();
        eprintln!("offset: SURE {sure:.3e}, true {mse:.3e}");
        assert!(
            (sure - mse).abs() < 0.1 * mse,
            "offset: SURE {sure} vs {mse}"
        );
    }

    #[test]
    fn sure_weighs_each_pixel_by_its_noise_when_the_noise_grows_with_the_signal() {
        // Flat 16x16 tiles from 0.1 to 1, as counts of 30 photons at 1 plus read noise
        // 0.02: the variance is x/30 + 0.02², five times larger on the brightest tiles
        // than on the darkest.
        let level =
            |y: usize, x: usize| 0.1 + 0.9 * (((y / 16) * 7 + (x / 16) * 3) % 10) as f64 / 9.0;
        let clean = Array3::from_shape_fn((1, 256, 256), |(_, y, x)| level(y, x) as f32);
        let mut rng = crate::phantom::Rng::new(6);
        let noisy =
            clean.mapv(|x| (rng.poisson(f64::from(x) * 30.0) / 30.0 + 0.02 * rng.normal()) as f32);
        let Variance::PerPixel(var) = Variance::of(&noisy, 0.1) else {
            panic!("photon noise taken as uniform");
        };
        // Away from the tiles' edges (where the local mean mixes two levels).
        let mut rel = Vec::new();
        for ((y, x), &v) in ndarray::indices((256, 256)).into_iter().zip(&var) {
            if (4..12).contains(&(y % 16)) && (4..12).contains(&(x % 16)) {
                rel.push(v / (level(y, x) / 30.0 + 0.0004));
            }
        }
        rel.sort_by(f64::total_cmp);
        let (p10, p90) = (rel[rel.len() / 10], rel[rel.len() * 9 / 10]);
        assert!(
            p10 > 0.75 && p90 < 1.25,
            "fitted/true variance, 10th to 90th percentile: {p10} to {p90}"
        );
        let gaussian = clean.mapv(|x| x + 0.1 * rng.normal() as f32);
        assert!(matches!(Variance::of(&gaussian, 0.1), Variance::Uniform(_)));
    }

    #[test]
    fn hidden_pixels_are_replaced_by_their_neighbours() {
        let img = Array3::from_shape_fn((1, 9, 9), |(_, y, x)| (y * 9 + x) as f32);
        // No noise to restore: on a linear image the weighted mean is the hidden value.
        let (masked, hidden) = hide_grid(&img.view(), (1, 1), 0.0);
        // Rows and columns 1 and 5.
        assert_eq!(hidden.len(), 4);
        for &(i, v) in &hidden {
            assert!((masked.as_slice().unwrap()[i] - v).abs() < 1e-4);
        }
    }
}
