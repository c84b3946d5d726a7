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
//! Large images are tuned on a sample (at most 2^18 voxels, half that for SURE: a whole
//! 512×512 image, else 128×128 tiles spread over the field, on the 8 central planes): the
//! best strength of a method depends on the noise and the kinds of structure, which the
//! tiles sample, and the budget keeps the `Auto` button interactive.
//!
//! Spatially correlated noise ([`crate::correlation`]) is measured first; when present,
//! the mask hides each hidden pixel's correlated neighbours too and SURE weighs its
//! divergence by the noise covariance.
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
/// Voxels tuned on at most ([`sample_tiles`]).
const BUDGET: usize = 1 << 18;
/// Side of the tiles sampled from larger images.
const TILE: usize = 128;
/// Planes tuned on at most: the central ones.
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
/// nothing to tune (all its tunable parameters were fixed, or are unused under the other
/// settings, as zs_n2n's `psf_sigma` unless `training = synthetic`).
pub fn tune(id: &str, input: VolumeView<'_>, fixed: &ParamValues, ctl: &Control) -> Result<Tuned> {
    // Run the whole search on a pool thread: called from outside the pool (the CLI's main
    // thread, a Java thread), every parallel loop of every trial would otherwise hand its
    // work to the pool and sleep on a latch, which dominated tuning the wavelet.
    rayon::scope(|_| tune_here(id, input, fixed, ctl))
}

fn tune_here(id: &str, input: VolumeView<'_>, fixed: &ParamValues, ctl: &Control) -> Result<Tuned> {
    // noise_model=auto is decided on the whole image, not on the tiles searched below.
    let fixed = &*match crate::methods::find(id)?.kind {
        crate::descriptor::MethodKind::Denoise => crate::job::resolve_noise_model(&input, fixed)?,
        _ => std::borrow::Cow::Borrowed(fixed),
    };
    let (m, resolved) = crate::job::prepare(id, &input, fixed)?;
    // SURE runs the method twice per trial: half the sample keeps its search as quick.
    let budget = match m.tune_loss {
        TuneLoss::Sure => BUDGET / 2,
        _ => BUDGET,
    };
    let Sample {
        tiles,
        sigma,
        radius,
        rho,
        stack,
    } = Sample::new(m, &input, fixed, budget)?;
    let sure = m.tune_loss == TuneLoss::Sure && sigma > 0.0;
    let photon_fit = if sure {
        Variance::photon_fit(&stack)
    } else {
        None
    };
    let scores: Vec<(Volume, Score)> = tiles
        .into_iter()
        .map(|tile| {
            let probe = sure
                .then(|| sure_probe(&tile, sigma, Variance::of(&tile, sigma, photon_fit), &rho))
                .flatten();
            let score = match probe {
                Some(p) => Score::Sure(p),
                None => Score::Masked(hide_grid(&tile.view(), (1, 1), sigma, radius)),
            };
            (tile, score)
        })
        .collect();
    let base = trial_values(m, &resolved, fixed);
    let targets: Vec<(&'static str, f64, f64, f64)> = m
        .params
        .iter()
        .filter(|p| p.tunable && !fixed.pairs().iter().any(|(k, _)| k == p.key))
        // A parameter the other settings leave unused (zs_n2n's PSF when it trains on the
        // image itself) would be searched on a flat loss.
        .filter(|p| {
            p.applies(|key| {
                resolved
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            })
        })
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
    if let Some(e) = untunable(m, &resolved, fixed) {
        return Err(e);
    }
    if targets.is_empty() {
        return Err(nothing_to_tune(m));
    }
    let mut evaluations = 0usize;
    let mut loss = |values: &ParamValues| pooled_loss(id, &scores, values, ctl, &mut evaluations);
    let loss_default = loss(&base)?;
    let mut current = base.clone();
    let mut best_loss = loss_default;
    let mut tuned = Vec::new();
    for &(key, default, lo, hi) in &targets {
        let mut at = |v: f64| -> Result<f64> {
            let trial = current.clone().set(key, crate::format::fmt_num(v));
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
        current.insert(key, crate::format::fmt_num(value));
        tuned.push((key, value));
        ctl.advance(1, targets.len() as u64)?;
    }
    for (k, v) in resolved.iter().filter(|(k, _)| is_noise_key(k)) {
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

fn is_noise_key(key: &str) -> bool {
    crate::vst::NOISE_MODEL_PARAMS.iter().any(|p| p.key == key)
}

/// The values a trial runs with: the resolved ones but the noise model (the runs see the
/// stabilised tiles with the Gaussian model) and the values that mean something only for
/// the whole image (files the method would write, a trial's being a tile's; regions in the
/// image's coordinates), and the image inputs (a PSF) of `fixed`.
fn trial_values(
    m: &crate::MethodDescriptor,
    resolved: &crate::Resolved,
    fixed: &ParamValues,
) -> ParamValues {
    let writes = |k: &str| m.all_params().any(|p| p.key == k && p.whole_image_only());
    let mut base = ParamValues::new();
    for (k, v) in resolved
        .iter()
        .filter(|(k, _)| !is_noise_key(k) && !writes(k))
    {
        base.insert(k, v);
    }
    // Explicit: unset, the model would be the default (auto), chosen again on every trial.
    if resolved.iter().any(|(k, _)| is_noise_key(k)) {
        base.insert("noise_model", "gaussian");
    }
    for (k, image) in fixed.images() {
        base.insert_image(k.clone(), image.clone());
    }
    base
}

/// Why `m` has nothing to tune under `resolved` (its values, `fixed` those given), as
/// far as the settings alone tell: no tunable parameter, or none left unfixed and used.
/// (A default of 0, from a noise-free image, is found once the noise is measured.)
fn untunable(
    m: &crate::MethodDescriptor,
    resolved: &crate::Resolved,
    fixed: &ParamValues,
) -> Option<DenoiseError> {
    if !m.params.iter().any(|p| p.tunable) {
        return Some(DenoiseError::invalid(format!(
            "{} has no strength to tune: none of its parameters is tuned by the \
             self-supervised loss (set them by hand; `denoisekit methods` lists them)",
            m.id
        )));
    }
    let open = m.params.iter().any(|p| {
        p.tunable
            && !fixed.pairs().iter().any(|(k, _)| k == p.key)
            && p.applies(|key| {
                resolved
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            })
    });
    (!open).then(|| nothing_to_tune(m))
}

fn nothing_to_tune(m: &crate::MethodDescriptor) -> DenoiseError {
    DenoiseError::invalid(format!(
        "{} has nothing to tune: its tunable parameters are fixed, unused under these \
         settings ({}), or their defaults are 0 (a noise-free image)",
        m.id,
        m.params
            .iter()
            .filter(|p| p.tunable)
            .map(|p| match p.when {
                Some((k, v)) => format!("{} only with {k}={v}", p.key),
                None => p.key.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Every tile's squared errors with method `id` at `values`, pooled (SURE's per pixel,
/// the mask's per hidden pixel); counts the method runs in `evaluations`.
fn pooled_loss(
    id: &str,
    scores: &[(Volume, Score)],
    values: &ParamValues,
    ctl: &Control,
    evaluations: &mut usize,
) -> Result<f64> {
    ctl.checkpoint()?;
    let quiet = ctl.quiet();
    let (mut total, mut count) = (0.0f64, 0usize);
    for (tile, score) in scores {
        match score {
            Score::Masked((masked, hidden)) => {
                *evaluations += 1;
                let out = crate::job::run(id, masked.view(), values, &quiet)?;
                let out = out.as_slice().expect("standard layout");
                total += hidden
                    .iter()
                    .map(|&(i, v)| (f64::from(out[i]) - f64::from(v)).powi(2))
                    .sum::<f64>();
                count += hidden.len();
            }
            Score::Sure(p) => {
                *evaluations += 2;
                let out = crate::job::run(id, tile.view(), values, &quiet)?;
                let moved = crate::job::run(id, p.perturbed.view(), values, &quiet)?;
                total += p.loss(tile, &out, &moved) * tile.len() as f64;
                count += tile.len();
            }
        }
    }
    Ok(total / count.max(1) as f64)
}

/// One denoiser's place in [`rank`].
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The method.
    pub id: &'static str,
    /// Its tuning.
    pub tuned: Tuned,
    /// The masked self-supervised loss at its tuned values, on the tiles and mask every
    /// ranked method shares: an estimate of its squared error plus the noise variance.
    pub loss: f64,
}

/// Tunes each method of `ids` (when empty, every denoiser whose strength is tunable
/// whatever its other settings) and
/// ranks them by one loss: the masked loss at each one's tuned values, on the same tiles
/// and the same hidden pixels (a method tuned by SURE is scored by the mask too, so that
/// the losses compare). Lowest, the expected best, first. The noise model is resolved
/// once, on the whole image.
///
/// # Errors
/// What [`tune`] reports for any of them.
pub fn rank(
    ids: &[&str],
    input: VolumeView<'_>,
    fixed: &ParamValues,
    ctl: &Control,
) -> Result<Vec<Ranked>> {
    rayon::scope(|_| {
        let ids: Vec<&'static str> = if ids.is_empty() {
            crate::methods::registry()
                .iter()
                .filter(|m| {
                    m.kind == crate::descriptor::MethodKind::Denoise
                        && m.params.iter().any(|p| p.tunable && p.when.is_none())
                })
                .map(|m| m.id)
                .collect()
        } else {
            ids.iter()
                .map(|id| crate::methods::find(id).map(|m| m.id))
                .collect::<Result<_>>()?
        };
        if let Some(m) = ids.iter().map(|id| crate::methods::find(id)).find_map(|m| {
            m.ok()
                .filter(|m| m.kind != crate::descriptor::MethodKind::Denoise)
        }) {
            return Err(DenoiseError::invalid(format!(
                "{} is not a denoiser: only denoisers are ranked by the self-supervised loss",
                m.id
            )));
        }
        // Every method's settings are checked before any is tuned: one with nothing to
        // tune at the end of the list refused only after the others' time was spent.
        for &id in &ids {
            let m = crate::methods::find(id)?;
            let resolved = m.resolve(fixed, || Ok(1.0))?;
            if let Some(e) = untunable(m, &resolved, fixed) {
                return Err(e);
            }
        }
        let Some(&first) = ids.first() else {
            return Err(DenoiseError::invalid("no method to rank"));
        };
        let fixed = crate::job::resolve_noise_model(&input, fixed)?;
        let sample = Sample::new(crate::methods::find(first)?, &input, &fixed, BUDGET)?;
        let scores: Vec<(Volume, Score)> = sample
            .tiles
            .iter()
            .map(|t| (t.clone(), sample.masked(t)))
            .collect();
        let mut ranked = Vec::with_capacity(ids.len());
        for id in ids {
            let tuned = tune_here(id, input, &fixed, ctl)?;
            let (m, resolved) = crate::job::prepare(id, &input, &tuned.values)?;
            let mut runs = 0;
            let loss = pooled_loss(
                id,
                &scores,
                &trial_values(m, &resolved, &tuned.values),
                ctl,
                &mut runs,
            )?;
            ranked.push(Ranked { id, tuned, loss });
        }
        ranked.sort_by(|a, b| a.loss.total_cmp(&b.loss));
        Ok(ranked)
    })
}

/// The tiles a search runs on (stabilised when the noise model asks) and their noise.
struct Sample {
    tiles: Vec<Volume>,
    /// The noise's pointwise standard deviation.
    sigma: f64,
    /// How far the noise's correlation reaches (0: independent), and its coefficients.
    radius: usize,
    rho: Vec<(crate::correlation::Lag, f64)>,
    /// The tiles' planes as one stack.
    stack: Volume,
}

impl Sample {
    /// `fixed` has its noise model resolved ([`crate::resolve_noise_model`]).
    fn new(
        m: &crate::MethodDescriptor,
        input: &VolumeView<'_>,
        fixed: &ParamValues,
        budget: usize,
    ) -> Result<Sample> {
        let tiles = sample_tiles(input, budget);
        // With a Poisson-Gaussian model the search runs on the stabilised image, where the
        // noise is uniform and the method's parameters live (see `crate::run`).
        let gat = match m.kind {
            crate::descriptor::MethodKind::Denoise => crate::vst::Gat::from_values(fixed)?,
            _ => None,
        };
        let tiles: Vec<Volume> = match &gat {
            Some(g) => {
                // The checks a run makes of the model (on the tiles, which stand for the
                // image here), so that the options printed are ones a run accepts.
                let raw = stack_planes(&tiles);
                let stable: Vec<Volume> = tiles.iter().map(|t| g.forward(&t.view())).collect();
                g.check(&raw.view(), &stack_planes(&stable).view())?;
                stable
            }
            None => tiles,
        };
        // The noise is measured on all tiles at once, as planes of one stack (both
        // estimates work plane by plane and pool the planes).
        let stack = stack_planes(&tiles);
        // Correlated noise breaks both losses' premise (a pixel's noise is independent of
        // its neighbours'); when it is measured, the mask hides the correlated neighbours
        // too and SURE weighs its divergence by the covariance. The noise level is the one
        // defaults derive from, corrected by this measurement.
        crate::volume::check_input(&stack.view())?;
        let correlation = crate::correlation::estimate_correlation(&stack.view())
            .ok()
            .filter(|c| c.radius > 0);
        let sigma = correlation.as_ref().map_or_else(
            || crate::noise::sigma_with(&stack.view(), None),
            |c| c.sigma,
        );
        // Every denoiser's strength scales with the noise: with none measured (nothing
        // above the 32-bit rounding of the tiles it was measured on, stabilised when the
        // model asks) there is no range to search, and every setting scores the same. Said
        // once, for the image, rather than as the first method's "nothing to tune".
        let (slo, shi) = crate::volume::min_max(&stack.view());
        let rounding = f64::from(f32::EPSILON) * f64::from(slo.abs().max(shi.abs()));
        if sigma <= rounding && m.kind == crate::descriptor::MethodKind::Denoise {
            let (lo, hi) = crate::volume::min_max(input);
            return Err(DenoiseError::invalid(if lo == hi {
                format!(
                    "the image is constant (every pixel {}): there is no noise to tune or rank \
                     denoisers by, and nothing to denoise",
                    crate::format::fmt_num(f64::from(lo))
                )
            } else {
                "no noise measured in the image (none where the search samples it): \
                 the self-supervised loss needs noise to compare settings by, and an image \
                 without noise needs no denoiser"
                    .to_string()
            }));
        }
        let (radius, rho) = match &correlation {
            Some(c) => {
                log::info!("DenoiseKit: tuning for correlated noise: {}", c.describe());
                (c.radius, c.significant())
            }
            None => (0, Vec::new()),
        };
        Ok(Sample {
            tiles,
            sigma,
            radius,
            rho,
            stack,
        })
    }

    fn masked(&self, tile: &Volume) -> Score {
        Score::Masked(hide_grid(&tile.view(), (1, 1), self.sigma, self.radius))
    }
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
///
/// With correlated noise of covariance `C` the divergence term becomes `2·tr(C·∂f/∂y)`,
/// estimated as `(Cδ)ᵀ(f(y + δ) − f(y))·N/|δ|²`; `Cδ` is computed once per probe, from
/// each pixel's variance and the measured correlation coefficients.
struct SureProbe {
    /// `Cδ`: the step weighted by the noise covariance (`σᵢ²δᵢ` for independent noise).
    weighted: Vec<f64>,
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
    /// The photon-noise fit of `image` when its noise is signal-dependent by that rule.
    fn photon_fit(image: &Volume) -> Option<crate::noise::PoissonGaussian> {
        crate::noise::photon_model(&image.view())
            .ok()
            .map(|(fit, _)| fit)
    }

    /// `fit`: [`Variance::photon_fit`] of the image `image` was sampled from.
    fn of(image: &Volume, sigma: f64, fit: Option<crate::noise::PoissonGaussian>) -> Variance {
        let uniform = Variance::Uniform(sigma * sigma);
        let Some(fit) = fit else {
            return uniform;
        };
        let local = crate::methods::gaussian::GaussianParams {
            sigma: 2.0,
            sigma_z: 0.0,
            border: crate::BorderMode::Symmetric,
        };
        let Ok(mean) =
            crate::methods::gaussian::denoise_gaussian(image.view(), &local, &Control::new())
        else {
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
/// `rho`: the noise's correlation coefficients by lag (both signs), empty when independent.
fn sure_probe(
    image: &Volume,
    sigma: f64,
    var: Variance,
    rho: &[(crate::correlation::Lag, f64)],
) -> Option<SureProbe> {
    // ε = 2σ/N^0.3: small enough for a first-order difference, large enough that float
    // rounding of the output does not swamp it (Deledalle et al., SIAM J. Imaging Sci.
    // 2014, §5).
    let eps = 2.0 * sigma / (image.len() as f64).powf(0.3);
    let mut rng = crate::rng::Rng::new(0x5e7e_b0a7);
    let mut perturbed = image.as_standard_layout().into_owned();
    let mut step_sq = 0.0;
    for p in perturbed.iter_mut() {
        let b = if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 };
        let moved = (f64::from(*p) + eps * b) as f32;
        step_sq += (f64::from(moved) - f64::from(*p)).powi(2);
        *p = moved;
    }
    let (d, h, w) = image.dim();
    let (image, moved) = (
        image.as_slice().expect("standard layout"),
        perturbed.as_slice().expect("standard layout"),
    );
    let step = |i: usize| f64::from(moved[i]) - f64::from(image[i]);
    let weighted = (0..d * h * w)
        .map(|i| {
            let (y, x) = ((i / w) % h, i % w);
            let mut c = var.at(i) * step(i);
            for &((dy, dx), r) in rho {
                let (yy, xx) = (y as i64 + i64::from(dy), x as i64 + i64::from(dx));
                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                    let j = i - y * w - x + yy as usize * w + xx as usize;
                    c += r * (var.at(i) * var.at(j)).sqrt() * step(j);
                }
            }
            c
        })
        .collect();
    (step_sq > 0.0).then_some(SureProbe {
        weighted,
        perturbed,
        step_sq,
    })
}

impl SureProbe {
    fn loss(&self, image: &Volume, out: &Volume, moved: &Volume) -> f64 {
        let (mut residual, mut divergence) = (0.0f64, 0.0f64);
        let pixels = image.iter().zip(out).zip(moved).zip(&self.weighted);
        for (((&y, &f), &g), &c) in pixels {
            residual += (f64::from(y) - f64::from(f)).powi(2);
            divergence += c * (f64::from(g) - f64::from(f));
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

/// The parts of the image the search runs on: the whole image when it has at most
/// `budget` voxels, else tiles of `MAX_PLANES × TILE × TILE` (the central planes) spread
/// evenly over the field, `budget` voxels in all.
///
/// One central crop was tried first: on the real W2S pairs its best Gaussian σ was 1.6
/// times the whole image's best (1.5 dB below it) when the centre held brighter structure
/// than the rest. The best strength depends on the kinds of structure present, so the
/// sample must see the whole field.
fn sample_tiles(v: &VolumeView<'_>, budget: usize) -> Vec<Volume> {
    let sh = Shape::of(v);
    let zs = {
        let k = sh.depth.min(MAX_PLANES);
        let start = (sh.depth - k) / 2;
        start..start + k
    };
    let planes = zs.len();
    if planes * sh.height * sh.width <= budget {
        return vec![v.slice(s![zs, .., ..]).as_standard_layout().into_owned()];
    }
    let (ty, tx) = (sh.height.min(TILE), sh.width.min(TILE));
    let wanted = (budget / (planes * ty * tx)).max(1);
    let (fit_y, fit_x) = (sh.height / ty, sh.width / tx);
    // A grid of gy × gx tiles shaped like the image.
    let aspect = sh.height as f64 / sh.width as f64;
    let gy = ((wanted as f64 * aspect).sqrt().round() as usize).clamp(1, fit_y);
    let gx = (wanted / gy).clamp(1, fit_x);
    let start = |i: usize, g: usize, n: usize, t: usize| {
        let centre = (i as f64 + 0.5) * n as f64 / g as f64;
        ((centre - t as f64 / 2.0).round().max(0.0) as usize).min(n - t)
    };
    let mut tiles = Vec::with_capacity(gy * gx);
    for iy in 0..gy {
        for ix in 0..gx {
            let (y0, x0) = (start(iy, gy, sh.height, ty), start(ix, gx, sh.width, tx));
            tiles.push(
                v.slice(s![zs.clone(), y0..y0 + ty, x0..x0 + tx])
                    .as_standard_layout()
                    .into_owned(),
            );
        }
    }
    tiles
}

/// The tiles' planes as one stack (they have the same shape).
fn stack_planes(tiles: &[Volume]) -> Volume {
    let views: Vec<_> = tiles.iter().map(|t| t.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).expect("tiles share one shape")
}

/// Hides every `STRIDE`-th pixel in y and x from `(oy, ox)`, replacing it by the weighted
/// mean of its neighbours (edge 1, diagonal ½) plus Gaussian noise that brings its noise
/// back to `sigma`. The replacement is independent of the hidden pixel's own noise (what
/// makes the loss self-supervised) yet looks like an ordinary noisy pixel: a plain mean
/// looks already denoised, which made bilateral and NL-means prefer too weak settings, and
/// a copied neighbour creates flat pairs that made TV prefer too strong ones. Returns the
/// masked image and the (flat index, noisy value) of every hidden pixel.
///
/// When the noise is correlated up to `radius` pixels, the hidden pixel's neighbours
/// within that radius carry part of its noise, and a method that reads them would be
/// rewarded for keeping it (StructN2V's observation). The whole block within `radius` is
/// then replaced, by the mean of the ring just outside it plus fresh noise, and only the
/// centre is scored; the grid is spread to `STRIDE · (radius + 1)` so that about the same
/// small share of the image (a sixth or less) is replaced.
fn hide_grid(
    v: &VolumeView<'_>,
    (oy, ox): (usize, usize),
    sigma: f64,
    radius: usize,
) -> (Volume, Vec<(usize, f32)>) {
    if radius > 0 {
        return hide_blocks(v, (oy + radius, ox + radius), sigma, radius);
    }
    let (d, h, w) = v.dim();
    let mut out: Array3<f32> = v.to_owned();
    let mut hidden = Vec::new();
    let mut rng = crate::rng::Rng::new(0x006e_3273);
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

/// [`hide_grid`] for noise correlated up to `radius` pixels.
fn hide_blocks(
    v: &VolumeView<'_>,
    (oy, ox): (usize, usize),
    sigma: f64,
    radius: usize,
) -> (Volume, Vec<(usize, f32)>) {
    let (d, h, w) = v.dim();
    let r = radius as isize;
    let mut out: Array3<f32> = v.to_owned();
    let mut hidden = Vec::new();
    let mut rng = crate::rng::Rng::new(0x006e_3273);
    let inside = |y: isize, x: isize| y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w;
    for z in 0..d {
        for y in (oy..h).step_by(STRIDE * (radius + 1)) {
            for x in (ox..w).step_by(STRIDE * (radius + 1)) {
                let (yc, xc) = (y as isize, x as isize);
                // The ring at Chebyshev distance radius + 1: beyond the correlation.
                let (mut sum, mut n) = (0.0f64, 0.0f64);
                for dy in -r - 1..=r + 1 {
                    for dx in -r - 1..=r + 1 {
                        if dy.abs().max(dx.abs()) == r + 1 && inside(yc + dy, xc + dx) {
                            sum += f64::from(v[(z, (yc + dy) as usize, (xc + dx) as usize)]);
                            n += 1.0;
                        }
                    }
                }
                if n == 0.0 {
                    continue;
                }
                let extra = sigma * (1.0 - 1.0 / n).max(0.0).sqrt();
                for dy in -r..=r {
                    for dx in -r..=r {
                        if inside(yc + dy, xc + dx) {
                            let at = (z, (yc + dy) as usize, (xc + dx) as usize);
                            out[at] = (sum / n + extra * rng.normal()) as f32;
                        }
                    }
                }
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
    fn an_image_without_noise_is_refused_once_for_the_image() {
        // Before, ranking stopped at the first method with "bilateral has nothing to tune".
        let flat = Volume::from_elem((1, 64, 64), 100.0);
        let ctl = Control::new();
        let e = rank(&[], flat.view(), &ParamValues::new(), &ctl)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the image is constant (every pixel 100)"), "{e}");
        let e = tune("bm3d", flat.view(), &ParamValues::new(), &ctl)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the image is constant"), "{e}");
        // Steps, no noise: the same, said of the noise.
        let steps =
            Volume::from_shape_fn((1, 64, 64), |(_, y, _)| if y < 32 { 10.0 } else { 90.0 });
        let e = rank(
            &["gaussian", "nl_means"],
            steps.view(),
            &ParamValues::new(),
            &ctl,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no noise measured in the image"), "{e}");
    }

    #[test]
    fn a_method_with_nothing_to_tune_is_refused_before_any_is_tuned() {
        // The run is cancelled from the start: tuning bm3d first would stop there, and
        // the list's last method would never be judged.
        let p = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 96, 96),
            seed: 2,
            ..Default::default()
        });
        let ctl = Control::new();
        ctl.cancel();
        for (last, said) in [
            ("median", "median has no strength to tune"),
            ("zs_n2n", "zs_n2n has nothing to tune"),
        ] {
            let e = rank(&["bm3d", last], p.noisy.view(), &ParamValues::new(), &ctl)
                .unwrap_err()
                .to_string();
            assert!(e.contains(said), "{e}");
        }
    }

    #[test]
    fn sure_estimates_the_error_against_the_clean_image() {
        let p = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 128, 128),
            seed: 5,
            ..Default::default()
        });
        let probe = sure_probe(&p.noisy, 0.1, Variance::Uniform(0.01), &[]).unwrap();
        // A linear smoother, and BM3D at, below and above the noise level: without the
        // divergence term (or with its sign or scale wrong) the estimate is far off.
        for (id, key, v) in [
            ("gaussian", "sigma", 1.0),
            ("bm3d", "sigma", 0.1),
            ("bm3d", "sigma", 0.05),
            ("bm3d", "sigma", 0.2),
        ] {
            let values = ParamValues::new().set(key, v);
            let out = crate::job::run(id, p.noisy.view(), &values, &Control::new()).unwrap();
            let moved =
                crate::job::run(id, probe.perturbed.view(), &values, &Control::new()).unwrap();
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
        let probe = sure_probe(&noisy, 0.1, Variance::Uniform(0.01), &[]).unwrap();
        let values = ParamValues::new().set("sigma", 1.0);
        let out = crate::job::run("gaussian", noisy.view(), &values, &Control::new()).unwrap();
        let moved = crate::job::run("gaussian", probe.perturbed.view(), &values, &Control::new());
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
        let mut rng = crate::rng::Rng::new(6);
        let noisy =
            clean.mapv(|x| (rng.poisson(f64::from(x) * 30.0) / 30.0 + 0.02 * rng.normal()) as f32);
        let Variance::PerPixel(var) = Variance::of(&noisy, 0.1, Variance::photon_fit(&noisy))
        else {
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
        assert!(matches!(
            Variance::of(&gaussian, 0.1, Variance::photon_fit(&gaussian)),
            Variance::Uniform(_)
        ));
    }

    #[test]
    fn hidden_pixels_are_replaced_by_their_neighbours() {
        let img = Array3::from_shape_fn((1, 9, 9), |(_, y, x)| (y * 9 + x) as f32);
        // No noise to restore: on a linear image the weighted mean is the hidden value.
        let (masked, hidden) = hide_grid(&img.view(), (1, 1), 0.0, 0);
        // Rows and columns 1 and 5.
        assert_eq!(hidden.len(), 4);
        for &(i, v) in &hidden {
            assert!((masked.as_slice().unwrap()[i] - v).abs() < 1e-4);
        }
    }
}
