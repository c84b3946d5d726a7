//! The safe bodies of the native entries: copy Java arrays in with bounds checks, call
//! the library, copy the result out. Every failure is a [`BridgeError`].

use denoisekit_core::{Backend, Control, DenoiseError, ParamValues, Volume, volume_from_vec};
use jni::Env;
use jni::objects::{JFloatArray, JIntArray, JObjectArray, JString};
use jni::refs::Reference;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Why a native call failed; `kind` becomes the Java exception's kind.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// The library refused the job.
    #[error("{0}")]
    Denoise(#[from] DenoiseError),
    /// A Java argument is unusable (null, wrong length, bad dimensions).
    #[error("{0}")]
    Argument(String),
    /// A JNI call failed.
    #[error("JNI error: {0}")]
    Jni(#[from] jni::errors::Error),
}

impl BridgeError {
    /// The stable kind string shown to Java.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denoise(e) => e.kind(),
            Self::Argument(_) => "InvalidArgument",
            Self::Jni(_) => "Jni",
        }
    }
}

type Result<T> = std::result::Result<T, BridgeError>;

/// Sends the library's log (e.g. "no usable GPU; running on the CPU") to stderr, which
/// ImageJ shows in its console. Installed once; a host that set its own logger keeps it.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info && m.target().starts_with("denoisekit")
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[DenoiseKit {}] {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

/// Installs the stderr logger on the first native call.
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    });
}

fn arg(msg: impl Into<String>) -> BridgeError {
    BridgeError::Argument(msg.into())
}

/// Reads `{width, height, depth}` and the pixels into a volume.
pub fn read_volume(
    env: &mut Env<'_>,
    pixels: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
) -> Result<Volume> {
    if dims.is_null() {
        return Err(arg("dims is null; expected {width, height, depth}"));
    }
    if pixels.is_null() {
        return Err(arg("pixels is null"));
    }
    let n = dims.len(env)?;
    if n != 3 {
        return Err(arg(format!(
            "dims has {n} entries; expected 3: {{width, height, depth}}"
        )));
    }
    let mut d = [0i32; 3];
    dims.get_region(env, 0, &mut d)?;
    if d.iter().any(|&x| x < 0) {
        return Err(arg(format!(
            "dims {{width={}, height={}, depth={}}} has a negative size",
            d[0], d[1], d[2]
        )));
    }
    let (w, h, z) = (d[0] as usize, d[1] as usize, d[2] as usize);
    let len = w
        .checked_mul(h)
        .and_then(|x| x.checked_mul(z))
        .ok_or_else(|| arg(format!("{w}x{h}x{z} pixels overflow")))?;
    let have = pixels.len(env)?;
    if have != len {
        return Err(arg(format!(
            "pixels has {have} values but {w}x{h}x{z} needs {len}"
        )));
    }
    let mut buf = vec![0.0f32; len];
    pixels.get_region(env, 0, &mut buf)?;
    Ok(volume_from_vec(z, h, w, buf)?)
}

/// Reads parallel `keys`/`values` string arrays (either may be null when both are).
pub fn read_params(
    env: &mut Env<'_>,
    keys: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JString<'_>>,
) -> Result<ParamValues> {
    let mut p = ParamValues::new();
    if keys.is_null() && values.is_null() {
        return Ok(p);
    }
    if keys.is_null() || values.is_null() {
        return Err(arg("keys and values must both be null or both be arrays"));
    }
    let (nk, nv) = (keys.len(env)?, values.len(env)?);
    if nk != nv {
        return Err(arg(format!("{nk} keys but {nv} values")));
    }
    for i in 0..nk {
        let k = keys.get_element(env, i)?;
        let v = values.get_element(env, i)?;
        if k.is_null() || v.is_null() {
            return Err(arg(format!("parameter {i} has a null key or value")));
        }
        p.insert(k.try_to_string(env)?, v.try_to_string(env)?);
    }
    Ok(p)
}

/// A required Java string.
pub fn read_string(env: &mut Env<'_>, s: &JString<'_>, what: &str) -> Result<String> {
    if s.is_null() {
        return Err(arg(format!("{what} is null")));
    }
    Ok(s.try_to_string(env)?)
}

/// Copies a volume into a new Java float array.
pub fn write_volume<'l>(env: &mut Env<'l>, v: &Volume) -> Result<JFloatArray<'l>> {
    let data: Vec<f32> = v.iter().copied().collect();
    let out = env.new_float_array(data.len())?;
    out.set_region(env, 0, &data)?;
    Ok(out)
}

/// Running jobs by the id Java gave them, so that another Java thread can cancel one or
/// read its progress. Ids are plain numbers looked up in a map, never pointers: a stale or
/// forged id can at worst cancel nothing.
static JOBS: Mutex<Option<HashMap<i64, Job>>> = Mutex::new(None);

/// A running job: its control (to cancel it) and the fraction it has done, as f64 bits.
type Job = (Control, Arc<AtomicU64>);

/// Registers job `id` (0 = not cancellable) for the duration of the returned guard.
struct JobGuard(i64);

impl JobGuard {
    fn start(id: i64) -> (Self, Control) {
        // The fraction done, as f64 bits: written by worker threads, read by Java's poll.
        let done = Arc::new(AtomicU64::new(0f64.to_bits()));
        let sink = Arc::clone(&done);
        let ctl = Control::with_progress(move |f| sink.store(f.to_bits(), Ordering::Relaxed));
        if id != 0 {
            let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
            jobs.get_or_insert_with(HashMap::new)
                .insert(id, (ctl.clone(), done));
        }
        (Self(id), ctl)
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if self.0 != 0 {
            let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(map) = jobs.as_mut() {
                map.remove(&self.0);
            }
        }
    }
}

/// `progress`: the fraction of job `id` done, in [0, 1]; -1 when no such job is running.
pub fn progress(id: i64) -> Result<f64> {
    let jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(jobs
        .as_ref()
        .and_then(|m| m.get(&id))
        .map_or(-1.0, |(_, done)| {
            f64::from_bits(done.load(Ordering::Relaxed)).clamp(0.0, 1.0)
        }))
}

/// `note`: what running job `id` says about how it is going (a training loss), or ""
/// when it says nothing or no such job is running.
pub fn note(id: i64) -> Result<String> {
    let jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(jobs
        .as_ref()
        .and_then(|m| m.get(&id))
        .map_or_else(String::new, |(ctl, _)| ctl.note()))
}

/// `interim`: the latest intermediate result of running job `id` not yet taken (what a
/// network's current weights make of the image while it trains), or null when there is
/// none. The first call asks the job to publish them ([`Control::take_interim`]).
pub fn interim<'l>(env: &mut Env<'l>, id: i64) -> Result<JFloatArray<'l>> {
    // Cloned out of the map: the copy into Java must not hold the lock other polls take.
    let ctl = {
        let jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        jobs.as_ref()
            .and_then(|m| m.get(&id))
            .map(|(c, _)| c.clone())
    };
    match ctl.and_then(|c| c.take_interim()) {
        Some(v) => write_volume(env, &v),
        None => Ok(JFloatArray::null()),
    }
}

/// `gpuCompiled`: whether this build has the GPU backend.
pub fn gpu_compiled() -> Result<bool> {
    Ok(denoisekit_gpu::COMPILED_WITH_GPU)
}

/// `cancel`: asks job `id` to stop at its next checkpoint; whether it was running.
pub fn cancel(id: i64) -> Result<bool> {
    let jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match jobs.as_ref().and_then(|m| m.get(&id)) {
        Some((ctl, _)) => {
            ctl.cancel();
            true
        }
        None => false,
    })
}

/// The Java arguments that describe a job: method, image and parameters.
pub struct JobArgs<'a, 'l> {
    /// Method id.
    pub method: &'a JString<'l>,
    /// Pixels, plane after plane.
    pub pixels: &'a JFloatArray<'l>,
    /// `{width, height, depth}`.
    pub dims: &'a JIntArray<'l>,
    /// Parameter keys (or null together with `values`).
    pub keys: &'a JObjectArray<'l, JString<'l>>,
    /// Parameter values as text.
    pub values: &'a JObjectArray<'l, JString<'l>>,
    /// The method's other images (a PSF), if any.
    pub images: Images<'a, 'l>,
}

/// Images given with a job for a method's image inputs: keys, pixels and `{width,
/// height, depth}` per image; all three null, or arrays of one length.
pub struct Images<'a, 'l> {
    /// Input keys (`psf_image`).
    pub keys: &'a JObjectArray<'l, JString<'l>>,
    /// Pixels of each image, plane after plane.
    pub pixels: &'a JObjectArray<'l, JFloatArray<'l>>,
    /// Dimensions of each image.
    pub dims: &'a JObjectArray<'l, JIntArray<'l>>,
}

impl Images<'_, '_> {
    /// Copies and checks the images into `into`.
    fn read(&self, env: &mut Env<'_>, into: &mut ParamValues) -> Result<()> {
        let nulls = [
            self.keys.is_null(),
            self.pixels.is_null(),
            self.dims.is_null(),
        ];
        if nulls.iter().all(|&n| n) {
            return Ok(());
        }
        if nulls.iter().any(|&n| n) {
            return Err(arg(
                "imageKeys, imagePixels and imageDims must all be null or all be arrays",
            ));
        }
        let n = self.keys.len(env)?;
        let (np, nd) = (self.pixels.len(env)?, self.dims.len(env)?);
        if np != n || nd != n {
            return Err(arg(format!(
                "{n} image keys but {np} pixel arrays and {nd} dims arrays"
            )));
        }
        for i in 0..n {
            let key = self.keys.get_element(env, i)?;
            if key.is_null() {
                return Err(arg(format!("image {i} has a null key")));
            }
            let key = key.try_to_string(env)?;
            let pixels = self.pixels.get_element(env, i)?;
            let dims = self.dims.get_element(env, i)?;
            // Name the image in argument errors; JNI and library errors keep their kind.
            let image = read_volume(env, &pixels, &dims).map_err(|e| match e {
                BridgeError::Argument(m) => arg(format!("image `{key}`: {m}")),
                other => other,
            })?;
            into.insert_image(key, image);
        }
        Ok(())
    }
}

impl<'a, 'l> JobArgs<'a, 'l> {
    /// Bundles the arguments of a native call.
    pub fn new(
        method: &'a JString<'l>,
        pixels: &'a JFloatArray<'l>,
        dims: &'a JIntArray<'l>,
        keys: &'a JObjectArray<'l, JString<'l>>,
        values: &'a JObjectArray<'l, JString<'l>>,
        images: Images<'a, 'l>,
    ) -> Self {
        Self {
            method,
            pixels,
            dims,
            keys,
            values,
            images,
        }
    }

    /// Copies and checks everything: the method id, the parameters and the image.
    fn read(&self, env: &mut Env<'_>) -> Result<(String, ParamValues, Volume)> {
        let method = read_string(env, self.method, "method")?;
        let mut params = read_params(env, self.keys, self.values)?;
        self.images.read(env, &mut params)?;
        let img = read_volume(env, self.pixels, self.dims)?;
        Ok((method, params, img))
    }
}

/// `denoise`: runs a method and reports the device in `info[0]` when `info` is given.
pub fn denoise<'l>(
    env: &mut Env<'l>,
    job_args: &JobArgs<'_, '_>,
    backend: &JString<'_>,
    info: &JObjectArray<'_, JString<'_>>,
    job: i64,
) -> Result<JFloatArray<'l>> {
    init_logging();
    let backend = if backend.is_null() {
        Backend::Auto
    } else {
        Backend::from_name(&backend.try_to_string(env)?)?
    };
    let (method, params, img) = job_args.read(env)?;
    let (_guard, ctl) = JobGuard::start(job);
    let done = denoisekit_gpu::run(&method, img.view(), &params, backend, &ctl)?;
    if !info.is_null() && info.len(env)? > 0 {
        let s = env.new_string(done.device.to_string())?;
        info.set_element(env, 0, &s)?;
    }
    write_volume(env, &done.volume)
}

/// `resolve`: the full, checked parameter set as a macro option string.
pub fn resolve<'l>(env: &mut Env<'l>, job_args: &JobArgs<'_, '_>) -> Result<JString<'l>> {
    let (method, params, img) = job_args.read(env)?;
    let (_, resolved) = denoisekit_core::prepare(&method, &img.view(), &params)?;
    Ok(env.new_string(resolved.to_options())?)
}

/// `tune`: every option after self-supervised tuning of the method's strength (the given
/// values stay fixed), as a macro-style option string.
pub fn tune<'l>(env: &mut Env<'l>, job_args: &JobArgs<'_, '_>, job: i64) -> Result<JString<'l>> {
    let (method, params, img) = job_args.read(env)?;
    let (_guard, ctl) = JobGuard::start(job);
    let t = denoisekit_core::tune::tune(&method, img.view(), &params, &ctl)?;
    Ok(env.new_string(t.values.to_options())?)
}

/// `rank`: the denoisers in `methods` (comma-separated; empty: all whose strength is
/// tunable whatever their other settings) tuned and ranked by one self-supervised loss, one line per method, best
/// first: `<id> <loss> <options>`.
pub fn rank<'l>(
    env: &mut Env<'l>,
    pixels: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
    methods: &JString<'_>,
    job: i64,
) -> Result<JString<'l>> {
    let img = read_volume(env, pixels, dims)?;
    let methods = read_string(env, methods, "methods")?;
    let ids: Vec<&str> = methods
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    let (_guard, ctl) = JobGuard::start(job);
    let ranked = denoisekit_core::tune::rank(&ids, img.view(), &ParamValues::new(), &ctl)?;
    let lines: Vec<String> = ranked
        .iter()
        .map(|r| format!("{} {} {}", r.id, r.loss, r.tuned.values.to_options()))
        .collect();
    Ok(env.new_string(lines.join("\n"))?)
}

/// `support`: `{x, y, z}` reach of an output pixel for fully specified parameters.
pub fn support<'l>(
    env: &mut Env<'l>,
    method: &JString<'_>,
    keys: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JString<'_>>,
) -> Result<JIntArray<'l>> {
    let method = read_string(env, method, "method")?;
    let params = read_params(env, keys, values)?;
    let [z, y, x] = denoisekit_core::support(&method, &params)?;
    let as_int = |v: usize| i32::try_from(v).map_err(|_| arg(format!("support {v} overflows")));
    let out = env.new_int_array(3)?;
    out.set_region(env, 0, &[as_int(x)?, as_int(y)?, as_int(z)?])?;
    Ok(out)
}

/// `strengthUnitsWarning`: [`denoisekit_core::strength_units_warning`] for a run given
/// `given` whose every value is `all` (noise_model=auto already pinned), else "".
pub fn strength_units_warning<'l>(
    env: &mut Env<'l>,
    method: &JString<'_>,
    given: (
        &JObjectArray<'_, JString<'_>>,
        &JObjectArray<'_, JString<'_>>,
    ),
    all: (
        &JObjectArray<'_, JString<'_>>,
        &JObjectArray<'_, JString<'_>>,
    ),
) -> Result<JString<'l>> {
    let method = read_string(env, method, "method")?;
    let given = read_params(env, given.0, given.1)?;
    let all = read_params(env, all.0, all.1)?;
    let resolved = denoisekit_core::find(&method)?.resolve(&all, || {
        Err(DenoiseError::InvalidInput {
            reason: "strengthUnitsWarning needs every noise-dependent parameter given".into(),
        })
    })?;
    let warning = denoisekit_core::strength_units_warning(&method, &given, &resolved)?;
    Ok(env.new_string(warning.unwrap_or_default())?)
}

/// `residualCheck`: an "imager beware" warning when the residual `noisy − denoised` holds
/// image structure (see `denoisekit_core::metrics::residual_structure`), else "".
pub fn residual_check<'l>(
    env: &mut Env<'l>,
    noisy: &JFloatArray<'_>,
    denoised: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
) -> Result<JString<'l>> {
    let a = read_volume(env, noisy, dims)?;
    let b = read_volume(env, denoised, dims)?;
    let warning = denoisekit_core::metrics::residual_warning(&a.view(), &b.view())?;
    Ok(env.new_string(warning.unwrap_or_default())?)
}

/// `estimateNoise`: Gaussian noise sigma in grey levels.
pub fn estimate_noise(
    env: &mut Env<'_>,
    pixels: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
) -> Result<f64> {
    let img = read_volume(env, pixels, dims)?;
    Ok(denoisekit_core::estimate_sigma(&img.view())?)
}

/// `estimatePoissonGaussian`: `noise_model=poisson_gaussian gain=… offset=… read_noise=…`
/// from a fit of local variance against local mean.
pub fn estimate_poisson_gaussian<'l>(
    env: &mut Env<'l>,
    pixels: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
) -> Result<JString<'l>> {
    let img = read_volume(env, pixels, dims)?;
    let fit = denoisekit_core::noise::estimate_poisson_gaussian(&img.view())?;
    Ok(env.new_string(fit.options())?)
}

/// `noiseCorrelation`: whether the noise is independent between pixels, in a few words
/// (measured on the variance-stabilised image when the noise is photon noise).
pub fn noise_correlation<'l>(
    env: &mut Env<'l>,
    pixels: &JFloatArray<'_>,
    dims: &JIntArray<'_>,
) -> Result<JString<'l>> {
    let img = read_volume(env, pixels, dims)?;
    let c = denoisekit_core::correlation::estimate_correlation_auto(&img.view())?;
    Ok(env.new_string(c.summary())?)
}

/// `describe`: the registry as JSON.
pub fn describe<'l>(env: &mut Env<'l>) -> Result<JString<'l>> {
    init_logging();
    let json = serde_json::to_string(denoisekit_core::registry())
        .map_err(|e| arg(format!("cannot serialise the registry: {e}")))?;
    Ok(env.new_string(json)?)
}

/// `selfTest`: exercises the error paths from Java (used by the JVM tests and by users
/// checking an installation). 0 returns normally; 1 and 2 panic (String and &str
/// payloads); 3 returns a typed error.
pub fn self_test(what: i32) -> Result<i32> {
    match what {
        0 => Ok(0),
        1 => panic!("self-test panic number {what}"),
        2 => panic!("self-test panic"),
        3 => Err(DenoiseError::Cancelled.into()),
        _ => Err(arg(format!("selfTest({what}): expected 0..=3"))),
    }
}
