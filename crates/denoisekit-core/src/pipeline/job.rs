//! A job from request to result: validate the image, resolve the parameters (choosing
//! the noise model and estimating the noise where a default needs it), then run the
//! method on the CPU within the memory budget, around the noise model's transform.

use crate::control::Control;
use crate::descriptor::{MethodDescriptor, MethodKind, ParamValues, Resolved};
use crate::error::{DenoiseError, Result};
use crate::methods::find;
use crate::noise::{self, estimate_sigma, vst};
use crate::pipeline::{memory, tiling};
use crate::volume::{Shape, Volume, VolumeView, check_input};

/// Where a job should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// A real GPU if one is present, else the CPU (a software GPU is not preferred).
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The GPU; an error if there is none.
    Gpu,
}

impl Backend {
    /// The names accepted by [`Backend::from_name`].
    pub const NAMES: &'static [&'static str] = &["auto", "cpu", "gpu"];

    /// Parses `auto`, `cpu` or `gpu`.
    ///
    /// # Errors
    /// [`DenoiseError::InvalidParamValue`] listing the valid names.
    pub fn from_name(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            _ => Err(DenoiseError::InvalidParamValue {
                name: "backend".into(),
                value: s.into(),
                expected: format!("one of {}", Self::NAMES.join(", ")),
            }),
        }
    }
}

/// Validates a job and resolves its parameters without running it.
///
/// # Errors
/// [`DenoiseError::UnknownMethod`], [`DenoiseError::UnsupportedDims`],
/// [`DenoiseError::InvalidInput`] and the parameter errors of [`MethodDescriptor::resolve`].
pub fn prepare(
    id: &str,
    input: &VolumeView<'_>,
    values: &ParamValues,
) -> Result<(&'static MethodDescriptor, Resolved)> {
    let m = find(id)?;
    check_input(input)?;
    let ndim = Shape::of(input).ndim();
    if !m.dims.supports(ndim) {
        return Err(DenoiseError::UnsupportedDims {
            method: m.id.to_string(),
            dims: ndim,
            supported: m.dims.label().to_string(),
        });
    }
    // The Gaussian model auto chooses carries the noise level its reason gave: the
    // defaults take that, rather than measure it again.
    let (values, chosen_sigma) = match m.kind {
        MethodKind::Denoise => choose_noise_model_for(input, values)?,
        _ => (std::borrow::Cow::Borrowed(values), None),
    };
    let values = &*values;
    // With a Poisson-Gaussian model the method sees the stabilised image, so its
    // noise-derived defaults are measured there.
    let gat = match m.kind {
        MethodKind::Denoise => vst::Gat::from_values(values)?,
        _ => None,
    };
    let resolved = m.resolve(values, || match (&gat, chosen_sigma) {
        (Some(g), _) => estimate_sigma(&g.forward(input).view()),
        (None, Some(sigma)) => Ok(sigma),
        (None, None) => estimate_sigma(input),
    })?;
    Ok((m, resolved))
}

/// Whether `values` leave the noise model to `auto`: given so (in any spelling the
/// choice parses), or unset, the descriptor's default, with no camera value given (see
/// [`camera_without_model`]).
fn asks_auto(values: &ParamValues) -> Result<bool> {
    let spec = &vst::NOISE_MODEL_PARAMS[0];
    let auto = vst::NoiseModelChoice::Auto.value();
    Ok(match values.pairs().iter().find(|(k, _)| k == spec.key) {
        Some((_, v)) => spec.parse(v)? == auto,
        None => !camera_without_model(values) && spec.default_value(|| Ok(0.0))? == auto,
    })
}

/// Whether `values` give a camera value (gain, offset or read noise) and no noise model:
/// the camera the user means, so the model is `poisson_gaussian` with it. Auto would fit
/// its own camera and drop the values given (the CLI and Python did so silently, and
/// Fiji kept them only where auto chose photon noise).
fn camera_without_model(values: &ParamValues) -> bool {
    let [model, camera @ ..] = &vst::NOISE_MODEL_PARAMS;
    let given = |key: &str| values.pairs().iter().any(|(k, _)| k == key);
    !given(model.key) && camera.iter().any(|p| given(p.key))
}

/// `values` with the noise model a camera value given without one implies
/// (`poisson_gaussian`, see [`resolve_noise_model`]) named; otherwise as they are. What
/// resolving without an image (nothing to choose `auto` on) must apply too, so that its
/// values replay as the run.
pub fn implied_noise_model(values: &ParamValues) -> std::borrow::Cow<'_, ParamValues> {
    if !camera_without_model(values) {
        return std::borrow::Cow::Borrowed(values);
    }
    let mut named = values.clone();
    named.insert(
        vst::NOISE_MODEL_PARAMS[0].key,
        vst::NoiseModelChoice::PoissonGaussian.name(),
    );
    std::borrow::Cow::Owned(named)
}

/// `values` with `noise_model=auto` (given, or unset: the default) replaced by the model
/// this image calls for and that
/// model's gain, offset and read noise ([`noise::choose_noise_model`]): the run, what it
/// reports and a replay of that report then use the same numbers. Other values are
/// returned as they are.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] for an invalid image.
pub fn resolve_noise_model<'v>(
    input: &VolumeView<'_>,
    values: &'v ParamValues,
) -> Result<std::borrow::Cow<'v, ParamValues>> {
    Ok(choose_noise_model_for(input, values)?.0)
}

/// [`resolve_noise_model`], with the noise level of the Gaussian model when auto chose
/// it.
fn choose_noise_model_for<'v>(
    input: &VolumeView<'_>,
    values: &'v ParamValues,
) -> Result<(std::borrow::Cow<'v, ParamValues>, Option<f64>)> {
    if let named @ std::borrow::Cow::Owned(_) = implied_noise_model(values) {
        return Ok((named, None));
    }
    if !asks_auto(values)? {
        return Ok((std::borrow::Cow::Borrowed(values), None));
    }
    let choice = noise::choose_noise_model(input)?;
    let sigma = match choice.model {
        noise::NoiseModel::Gaussian { sigma } => Some(sigma),
        noise::NoiseModel::PoissonGaussian(_) => None,
    };
    log::info!("DenoiseKit: noise_model=auto: {}", choice.reason);
    let mut chosen = values.clone();
    for pair in choice.options().split_whitespace() {
        if let Some((k, v)) = pair.split_once('=') {
            chosen.insert(k, v);
        }
    }
    Ok((std::borrow::Cow::Owned(chosen), sigma))
}

/// Runs `f` on the input as the noise model asks: directly, or between the generalized
/// Anscombe transform and its exact unbiased inverse ([`vst`]). `f` gets the control to
/// run under: `ctl` itself, or one whose intermediate results ([`Control::publish_interim`])
/// are turned back by the same inverse as the final one, so that a watcher sees them on
/// the image's scale.
///
/// `f` reports in its own error type (the GPU's keeps device errors apart from the job's),
/// into which the noise model's errors convert.
///
/// # Errors
/// Whatever `f` returns, and the noise-model parameter errors.
pub fn with_noise_model<E: From<DenoiseError>>(
    input: VolumeView<'_>,
    resolved: &Resolved,
    ctl: &Control,
    f: impl FnOnce(VolumeView<'_>, &Control) -> std::result::Result<Volume, E>,
) -> std::result::Result<Volume, E> {
    let out = match noise_transform(resolved)? {
        Some(g) => {
            let stable = g.forward(&input);
            if !ctl.model_judged() {
                g.check(&input, &stable.view())?;
            }
            let mapped = {
                let g = g.clone();
                ctl.map_interim(move |v| g.inverse(v))
            };
            g.inverse(f(stable.view(), &mapped)?)
        }
        None => f(input, ctl)?,
    };
    check_finite(&out, resolved)?;
    Ok(out)
}

/// Refuses a noise model that does not fit `image` (its offset above most of it, its
/// noise far from what it shows: [`vst::Gat::check`]), as every run judges its input: the
/// offset on all of `image`, the noise on its [`noise_sample`] (a transform of the
/// whole would cost a copy of it). A run over parts of an image (windows, chunks) judges
/// the model once, here, on the image (or on the sample, all a streamed or Dask run
/// holds), and runs the parts with [`Control::with_model_judged`].
///
/// # Errors
/// The parameter errors of the noise model: `offset`, `gain` or `read_noise`.
pub fn judge_noise_model(image: VolumeView<'_>, resolved: &Resolved) -> Result<()> {
    match noise_transform(resolved)? {
        Some(g) => {
            let [z, y, x] = noise_sample(image.dim());
            g.check_parts(&image, &image.slice(ndarray::s![z, y, x]))
        }
        None => Ok(()),
    }
}

/// A warning for the user when strengths given by hand in grey levels (`h=12`) are read
/// in the stabilised image's units instead, where the noise is 1: `noise_model=auto`,
/// given or by default, chose Poisson–Gaussian for this image (the same `h=12` means 12
/// grey levels on an image auto judges Gaussian, so a batch over a folder would treat its
/// images differently), or a camera value given without a model implied it; `None` when
/// no such value was given, or the model was named.
///
/// # Errors
/// [`DenoiseError::UnknownMethod`].
pub fn strength_units_warning(
    id: &str,
    given: &ParamValues,
    resolved: &Resolved,
) -> Result<Option<String>> {
    let m = crate::find(id)?;
    let chose_pg = matches!(
        resolved.get::<vst::NoiseModelChoice>("noise_model"),
        Ok(vst::NoiseModelChoice::PoissonGaussian)
    );
    let implied = camera_without_model(given);
    if !chose_pg || !(implied || asks_auto(given)?) {
        return Ok(None);
    }
    let hand: Vec<String> = given
        .pairs()
        .iter()
        .filter(|(k, _)| {
            m.params
                .iter()
                .any(|p| p.key == k && p.unit == crate::Unit::Intensity)
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let (last, verb) = match hand.len() {
        0 => return Ok(None),
        1 => (hand[0].clone(), "is"),
        n => (
            format!("{} and {}", hand[..n - 1].join(", "), hand[n - 1]),
            "are",
        ),
    };
    let (why, way) = if implied {
        (
            "a camera value given without noise_model means poisson_gaussian",
            "Name noise_model=poisson_gaussian beside the camera to say so, and give the \
             strengths in those units (noise_model=gaussian reads grey levels, without the \
             camera)",
        )
    } else {
        (
            "noise_model=auto chose poisson_gaussian for this image",
            "Add noise_model=gaussian to give grey levels, or name the model either way so \
             that every image is treated alike",
        )
    };
    Ok(Some(format!(
        "{last} {verb} read in the stabilised image's units, where the noise is 1, not in \
         grey levels: {why}. {way}"
    )))
}

/// Refuses a result with a NaN or infinite value: the input was checked finite, so the
/// settings took the arithmetic out of float range (a weights file of huge values), or a
/// device computed wrongly; either way the image would be silently wrong.
fn check_finite(out: &Volume, resolved: &Resolved) -> Result<()> {
    let Some((i, v)) = out.iter().enumerate().find(|(_, v)| !v.is_finite()) else {
        return Ok(());
    };
    let (_, h, w) = out.dim();
    Err(DenoiseError::invalid(format!(
        "the result is {v} at pixel (x={}, y={}, z={}): these settings take the arithmetic \
         out of floating-point range ({}); check the values set by hand, such as a noise \
         model's gain and offset or a weights file (on a GPU, also try the CPU)",
        i % w,
        i / w % h,
        i / (w * h),
        resolved.to_options()
    )))
}

/// The transform the noise model runs a method between, if any.
fn noise_transform(resolved: &Resolved) -> Result<Option<vst::Gat>> {
    match resolved.get::<vst::NoiseModelChoice>("noise_model") {
        Ok(_) => vst::Gat::from_resolved(resolved),
        // Methods other than denoisers have no noise model.
        Err(_) => Ok(None),
    }
}

/// Runs method `id` on the CPU with the given (unchecked) parameter values.
///
/// # Errors
/// Everything [`prepare`] reports, [`DenoiseError::Cancelled`], and
/// [`DenoiseError::TooLarge`] when the job needs more working memory than
/// the job's budget ([`Control::memory_limit`]) and cannot be split into windows of planes ([`tiling`]).
///
/// # Examples
/// ```
/// use denoisekit_core::{run, Control, ParamValues};
/// use ndarray::Array3;
/// let img = Array3::<f32>::from_elem((1, 8, 8), 3.0);
/// let out = run("gaussian", img.view(), &ParamValues::new().set("sigma", 1.0), &Control::new()).unwrap();
/// assert!(out.iter().all(|v| (v - 3.0).abs() < 1e-5));
/// let err = run("gaussian", img.view(), &ParamValues::new().set("sigma", -1), &Control::new());
/// assert_eq!(err.unwrap_err().to_string(), "parameter `sigma` = -1 is outside [0, 50]");
/// ```
pub fn run(id: &str, input: VolumeView<'_>, values: &ParamValues, ctl: &Control) -> Result<Volume> {
    on_pool_if_small(input.len(), || {
        let (m, resolved) = prepare(id, &input, values)?;
        ctl.reset_progress();
        run_resolved(m, input, &resolved, ctl)
    })
}

/// Largest job, in voxels, that runs whole on a pool thread ([`on_pool_if_small`]).
const SMALL_JOB: usize = 1 << 17;

/// Runs `f` on a pool thread when the image is small. Called from outside the pool (the
/// CLI's main thread, a Java thread), every parallel loop hands its work to the pool and
/// sleeps on a latch; on a small image, where a loop takes microseconds, that hand-off
/// was most of the time (replaying the fuzz corpus of images up to 4x12x12: 72 s with
/// it, 12.7 s without, on one pool thread). Large jobs keep handing over loop by loop:
/// a pool thread that waits inside a loop may take up queued work, and a whole queued
/// job would hold back the job it was waiting in (and that job's cancel) until it ends.
fn on_pool_if_small<R: Send>(voxels: usize, f: impl FnOnce() -> R + Send) -> R {
    if voxels <= SMALL_JOB {
        // Already on a pool thread, `scope` runs `f` in place.
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// Runs a job [`prepare`] accepted, on the CPU, within the memory budget: whole when its
/// working memory fits the job's budget ([`Control::memory_limit`]), else in windows of planes ([`tiling`]).
///
/// # Errors
/// [`DenoiseError::TooLarge`] when it neither fits nor can be split, and what the method
/// returns.
pub fn run_resolved(
    m: &'static MethodDescriptor,
    input: VolumeView<'_>,
    resolved: &Resolved,
    ctl: &Control,
) -> Result<Volume> {
    let limit = ctl.memory_limit()?;
    let out = on_pool_if_small(input.len(), || {
        if memory::need(m, Shape::of(&input), resolved)? > limit {
            return tiling::run_in_memory(m, resolved, input, limit, ctl);
        }
        with_noise_model(input, resolved, ctl, |v, ctl| (m.run)(v, resolved, ctl))
    })?;
    ctl.finish();
    Ok(out)
}

/// How far (`[z, y, x]`) an output pixel of method `id` reaches into the input for these
/// parameters: a region extended by this halo gives exactly the full result inside it.
///
/// # Errors
/// [`DenoiseError::UnknownMethod`], the parameter errors of [`MethodDescriptor::resolve`],
/// and [`DenoiseError::InvalidInput`] when a noise-dependent parameter is left unset
/// (there is no image to estimate the noise from).
pub fn support(id: &str, values: &ParamValues) -> Result<[usize; 3]> {
    let m = find(id)?;
    let resolved = m.resolve(values, || {
        Err(DenoiseError::invalid(
            "support needs every noise-dependent parameter given explicitly",
        ))
    })?;
    (m.support)(&resolved)
}

/// The most planes, rows and columns of the central block on which a front end that
/// never holds the whole image (the CLI streaming a stack, Dask, OME-Zarr) measures the
/// noise-derived defaults, once for every window or chunk: the same block in each.
pub const NOISE_SAMPLE: [usize; 3] = [8, 512, 512];

/// The central block of [`NOISE_SAMPLE`] of a `(depth, height, width)` image, as ranges
/// along z, y and x.
pub fn noise_sample((d, h, w): (usize, usize, usize)) -> [std::ops::Range<usize>; 3] {
    let central = |n: usize, side: usize| {
        let lo = (n - n.min(side)) / 2;
        lo..lo + n.min(side)
    };
    [
        central(d, NOISE_SAMPLE[0]),
        central(h, NOISE_SAMPLE[1]),
        central(w, NOISE_SAMPLE[2]),
    ]
}

/// Whether method `id`'s border wraps around the image for these parameters
/// ([`crate::BorderMode::wraps_in`]): a region's halo is then read around the image's ends.
///
/// # Errors
/// [`DenoiseError::UnknownMethod`] and the parameter errors of
/// [`MethodDescriptor::resolve`].
pub fn wraps(id: &str, values: &ParamValues) -> Result<bool> {
    // The border never depends on the noise level: any stands in for it.
    Ok(crate::BorderMode::wraps_in(
        &find(id)?.resolve(values, || Ok(1.0))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strength given in grey levels is said to be read in stabilised units only where
    /// auto chose Poisson–Gaussian and no model was named.
    #[test]
    fn strengths_set_by_hand_under_auto_poisson_gaussian_are_warned_of() {
        let mut rng = crate::rng::Rng::new(3);
        let photons = ndarray::Array3::from_shape_fn((1, 96, 96), |(_, y, x)| {
            let level = 5.0 + 200.0 * ((x / 24 + y / 24) % 2) as f64;
            (4.0 * rng.poisson(level) + 100.0) as f32
        });
        let flat = ndarray::Array3::from_shape_fn((1, 96, 96), |(_, y, x)| {
            (100.0 + 50.0 * ((x / 24 + y / 24) % 2) as f64 + 5.0 * rng.normal()) as f32
        });
        let warned = |img: &Volume, given: ParamValues| {
            let (_, r) = prepare("nl_means", &img.view(), &given).unwrap();
            strength_units_warning("nl_means", &given, &r).unwrap()
        };
        let w = warned(
            &photons,
            ParamValues::new().set("h", 12).set("search_radius", 3),
        );
        assert!(
            w.as_ref()
                .is_some_and(|w| w.starts_with("h=12 is read in the stabilised")),
            "{w:?}"
        );
        let w = warned(&photons, ParamValues::new().set("h", 12).set("sigma", 9));
        assert!(
            w.as_ref()
                .is_some_and(|w| w.starts_with("h=12 and sigma=9 are read")),
            "{w:?}"
        );
        assert_eq!(
            warned(&photons, ParamValues::new().set("search_radius", 3)),
            None
        );
        let spelt = ParamValues::new().set("h", 12).set("noise_model", "AUTO");
        assert!(warned(&photons, spelt).is_some());
        let named = ParamValues::new()
            .set("h", 12)
            .set("noise_model", "poisson_gaussian")
            .set("gain", 4)
            .set("offset", 100);
        assert_eq!(warned(&photons, named), None);
        assert_eq!(warned(&flat, ParamValues::new().set("h", 12)), None);
    }

    /// A camera value given with no noise model is the user's camera: the run is
    /// poisson_gaussian with it, whatever auto would judge the image, and a strength set
    /// by hand is warned of (read in stabilised units, though no model was named).
    #[test]
    fn a_camera_given_without_a_model_is_used_as_given() {
        let mut rng = crate::rng::Rng::new(5);
        let photons = ndarray::Array3::from_shape_fn((1, 96, 96), |(_, y, x)| {
            let level = 5.0 + 200.0 * ((x / 24 + y / 24) % 2) as f64;
            (4.0 * rng.poisson(level) + 100.0) as f32
        });
        let flat = ndarray::Array3::from_shape_fn((1, 96, 96), |(_, y, x)| {
            (300.0 + 50.0 * ((x / 24 + y / 24) % 2) as f64 + 5.0 * rng.normal()) as f32
        });
        for img in [&photons, &flat] {
            let given = ParamValues::new()
                .set("h", 1)
                .set("gain", 2)
                .set("offset", 90);
            let (_, r) = prepare("nl_means", &img.view(), &given).unwrap();
            assert_eq!(
                r.get::<vst::NoiseModelChoice>("noise_model").unwrap(),
                vst::NoiseModelChoice::PoissonGaussian
            );
            assert_eq!(
                (
                    r.get::<f64>("gain").unwrap(),
                    r.get::<f64>("offset").unwrap()
                ),
                (2.0, 90.0)
            );
            // h given by hand is read in stabilised units: said, with the reason.
            let w = strength_units_warning("nl_means", &given, &r).unwrap();
            assert!(
                w.as_ref()
                    .is_some_and(|w| w.starts_with("h=1 is read in the stabilised")
                        && w.contains("a camera value given without noise_model means")),
                "{w:?}"
            );
            // Resolving without an image names the same model.
            let named = implied_noise_model(&given);
            let pg = ("noise_model".to_string(), "poisson_gaussian".to_string());
            assert!(named.pairs().contains(&pg));
        }
        // Named auto fits its own camera.
        let auto = ParamValues::new().set("noise_model", "auto");
        let (_, r) = prepare("nl_means", &photons.view(), &auto).unwrap();
        assert_ne!(r.get::<f64>("gain").unwrap(), 2.0);
    }

    /// Front ends offer the first name as the default (Fiji's dialogs do): it must be the
    /// library's own default, and every name must parse as the backend it names.
    #[test]
    fn backend_names_parse_with_the_default_first() {
        let parsed: Vec<Backend> = Backend::NAMES
            .iter()
            .map(|n| Backend::from_name(n).unwrap())
            .collect();
        assert_eq!(parsed, [Backend::Auto, Backend::Cpu, Backend::Gpu]);
        assert_eq!(parsed[0], Backend::default());
    }
}
