//! `denoisekit._native`: the registry's methods on NumPy arrays, for the Python package.
//!
//! Deliberately thin, like the JNI boundary: images arrive as `float32` (z, y, x) arrays
//! (the pure-Python layer converts dtypes and adds the plane axis of 2D images),
//! parameters as `key=value` strings exactly as in a macro or on the command line, and
//! every method, parameter, range and default is read from the core's registry. Each job
//! runs with the GIL released, on its own thread, while the calling thread watches for
//! Ctrl-C and cancels the job through its [`Control`]; a panic becomes a Python
//! exception, never an abort of the interpreter.

use denoisekit_core::descriptor::GLOBAL_SUPPORT;
use denoisekit_core::{Backend, Control, DenoiseError, ParamValues, Volume, VolumeView};
use numpy::{PyArray3, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

pyo3::create_exception!(
    _native,
    TooLargeError,
    PyMemoryError,
    "The job needs more working memory than its budget (`memory_limit=`, \
     DENOISEKIT_MEMORY_LIMIT, or 80% of the memory available): refused before allocating."
);
pyo3::create_exception!(
    _native,
    BackendUnavailableError,
    PyRuntimeError,
    "backend='gpu' was asked for and no usable GPU exists. (A method or settings without a \
     GPU kernel run on the CPU instead, with a UserWarning saying so.)"
);

/// Why a job ended without a result.
enum Failure {
    Core(DenoiseError),
    Panic(String),
    /// The call's threads could not be started.
    Threads(String),
}

impl From<DenoiseError> for Failure {
    fn from(e: DenoiseError) -> Self {
        Self::Core(e)
    }
}

fn to_py(f: Failure) -> PyErr {
    match f {
        Failure::Core(e) => match e {
            DenoiseError::TooLarge { .. } => {
                TooLargeError::new_err(format!("{e}; or pass memory_limit= (bytes) to this call"))
            }
            DenoiseError::Cancelled => PyKeyboardInterrupt::new_err("cancelled"),
            DenoiseError::BackendUnavailable { .. } => {
                BackendUnavailableError::new_err(e.to_string())
            }
            DenoiseError::InvalidInput { .. }
            | DenoiseError::ParamOutOfRange { .. }
            | DenoiseError::InvalidParamValue { .. }
            | DenoiseError::UnknownParam { .. }
            | DenoiseError::UnknownMethod { .. }
            | DenoiseError::UnsupportedDims { .. } => PyValueError::new_err(e.to_string()),
            // The error type is non-exhaustive: a kind added later is still reported.
            _ => PyRuntimeError::new_err(e.to_string()),
        },
        Failure::Threads(msg) => PyRuntimeError::new_err(msg),
        Failure::Panic(msg) => PyRuntimeError::new_err(format!(
            "internal error in DenoiseKit (please report it): {msg}"
        )),
    }
}

/// Threads for calls that do not say: 0 = rayon's global pool (every core).
static DEFAULT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Idle pools by thread count, with the process that started them. A pool is checked out
/// for one call at a time: two calls sharing a pool would queue behind each other (Dask
/// runs a call per worker thread, all with `threads=1`), and a spawned thread per call
/// costs more than keeping them.
static IDLE: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

struct Pool {
    threads: usize,
    process: u32,
    pool: rayon::ThreadPool,
}

/// A pool lent to one call; back to [`IDLE`] when dropped.
struct Lent(Option<Pool>);

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            idle.push(p);
            // A sweep over thread counts (or one large count) would otherwise keep every
            // pool's threads for the life of the process: the oldest go first.
            // The pool just returned stays, however large: the next call likely asks for it.
            let cap = idle_threads_max();
            while idle.iter().map(|p| p.threads).sum::<usize>() > cap && idle.len() > 1 {
                drop(idle.remove(0));
            }
        }
    }
}

/// Idle threads kept at most: twice the cores, and at least 16 (a Dask worker per core,
/// each with `threads=1`, keeps its pool).
fn idle_threads_max() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| (2 * std::thread::available_parallelism().map_or(1, usize::from)).max(16))
}

/// The process the module was loaded in. A process forked from it (`multiprocessing`'s
/// default start method on Linux) inherits the pools, rayon's global one included, but
/// none of their threads: a job sent to them waited for ever.
static LOADED_IN: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The most threads a call may ask for: 1024, or four per core available to the process
/// where that is more. A count typed wrongly (`threads=10**6`) spent minutes spawning
/// threads; a process pinned to fewer cores than the machine has (Slurm, taskset) may
/// still ask for the machine's count.
fn max_threads() -> usize {
    (4 * std::thread::available_parallelism().map_or(1, usize::from)).max(1024)
}

fn check_threads(what: &str, n: i64) -> PyResult<usize> {
    let max = max_threads();
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "{what} = {n} is outside [0, {max}] (0: every core)"
        ))),
    }
}

/// A call's `memory_limit=`, read as [`LIMIT_ENV`](denoisekit_core::memory::LIMIT_ENV)
/// is: bytes, or a size such as `8G` (the Python layer passes the value's text).
fn memory_limit(text: Option<String>) -> PyResult<Option<u64>> {
    text.map(|t| {
        denoisekit_core::memory::parse_size(&t).map_err(|expected| {
            PyValueError::new_err(format!("memory_limit = {t} is not {expected}"))
        })
    })
    .transpose()
}

/// The threads a call asks for (0: rayon's global pool), checked.
fn pool_size(threads: Option<i64>) -> PyResult<usize> {
    match threads {
        Some(n) => check_threads("threads", n),
        None => Ok(DEFAULT_THREADS.load(Ordering::Relaxed)),
    }
}

/// A pool of `n` threads for one call (`n` 0: rayon's global pool). Called without the
/// GIL: starting many threads takes a while.
fn pool(n: usize) -> Result<Lent, String> {
    let me = std::process::id();
    let forked = LOADED_IN.get().is_some_and(|&p| p != me);
    // In a forked child the global pool has no threads: one of the child's own instead.
    let n = match n {
        // The count the parent's global pool had (RAYON_NUM_THREADS included): reading it
        // dispatches nothing.
        0 if forked => rayon::current_num_threads(),
        n => n,
    };
    if n == 0 {
        return Ok(Lent(None));
    }
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if forked {
        // The parent's pools are forgotten, not dropped: dropping one wakes threads that
        // are not in this process.
        let (mine, parents): (Vec<Pool>, Vec<Pool>) = idle.drain(..).partition(|p| p.process == me);
        parents.into_iter().for_each(std::mem::forget);
        *idle = mine;
    }
    if let Some(i) = idle.iter().position(|p| p.threads == n) {
        return Ok(Lent(Some(idle.swap_remove(i))));
    }
    drop(idle);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(move |i| format!("denoisekit-{n}-{i}"))
        .build()
        .map_err(|e| format!("cannot start {n} threads: {e}"))?;
    Ok(Lent(Some(Pool {
        threads: n,
        process: me,
        pool,
    })))
}

/// Runs `job` with the GIL released on a thread of its own (inside the pool for
/// `threads`), while this thread checks for signals every 50 ms: Ctrl-C cancels the job
/// at its next checkpoint and raises `KeyboardInterrupt` once it has stopped.
/// Bumped by [`cancel_all`]: every job that started before stops at its next checkpoint.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

/// Stops every job running in this process, on any thread: the package's SIGINT handler
/// calls it, as Python delivers Ctrl-C to the main thread only and a Dask worker thread's
/// job would run on to its end.
#[pyfunction]
fn cancel_all() {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

fn run_job<T: Send>(
    py: Python<'_>,
    threads: Option<i64>,
    ctl: &Control,
    job: impl FnOnce(&Control) -> Result<T, DenoiseError> + Send,
) -> PyResult<T> {
    let n = pool_size(threads)?;
    let epoch = INTERRUPTS.load(Ordering::SeqCst);
    let outcome = py.detach(move || {
        let pool = match pool(n) {
            Ok(p) => p,
            Err(e) => return (Err(Failure::Threads(e)), None),
        };
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            s.spawn(move || {
                let run = || match &pool.0 {
                    Some(p) => p.pool.install(|| job(ctl)),
                    None => job(ctl),
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                    .map_err(|p| {
                        Failure::Panic(
                            p.downcast_ref::<&str>()
                                .map(|s| (*s).to_string())
                                .or_else(|| p.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "a panic".into()),
                        )
                    })
                    .and_then(|r| r.map_err(Failure::from));
                let _ = tx.send(r);
            });
            let mut interrupted: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(r) => return (r, interrupted),
                    Err(RecvTimeoutError::Timeout) => {
                        if interrupted.is_some() {
                            continue;
                        }
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            ctl.cancel();
                            interrupted = Some(e);
                        } else if INTERRUPTS.load(Ordering::SeqCst) != epoch {
                            // Ctrl-C reached the main thread while this job ran on another.
                            ctl.cancel();
                            interrupted = Some(PyKeyboardInterrupt::new_err(
                                "interrupted: Ctrl-C (denoisekit.cancel_all)",
                            ));
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return (Err(Failure::Panic("the job's thread ended".into())), None);
                    }
                }
            }
        })
    });
    match outcome {
        // The signal handler's own exception (KeyboardInterrupt, or what a custom
        // handler raised) wins over the job's "cancelled". It says whether the job
        // stopped for it or had already finished, which its timing alone would tell.
        (r, Some(e)) => {
            let stopped = matches!(r, Err(Failure::Core(DenoiseError::Cancelled)));
            // An exception that takes no attributes keeps only its own message.
            let _ = e.value(py).setattr("denoisekit_cancelled", stopped);
            Err(e)
        }
        (r, None) => r.map_err(to_py),
    }
}

/// `key=value` pairs, as Python receives them.
type Pairs = Vec<(String, String)>;

fn values(params: Vec<(String, String)>) -> ParamValues {
    let mut v = ParamValues::new();
    for (k, x) in params {
        v.insert(k, x);
    }
    v
}

fn with_images(
    mut v: ParamValues,
    images: Vec<(String, PyReadonlyArray3<'_, f32>)>,
) -> PyResult<ParamValues> {
    for (k, img) in images {
        let image = view(&img, &k)?.to_owned();
        v.insert_image(k, image);
    }
    Ok(v)
}

/// The array as a view, where its strides are whole pixels: rust-numpy divides byte
/// strides by 4 unchecked, so a float32 field of a record array (strides of its records)
/// would be read, or written, at the wrong places.
fn view<'a>(a: &'a PyReadonlyArray3<'_, f32>, what: &str) -> PyResult<VolumeView<'a>> {
    whole_pixels(a.strides(), what)?;
    Ok(a.as_array())
}

fn whole_pixels(strides: &[isize], what: &str) -> PyResult<()> {
    if strides.iter().any(|s| s % 4 != 0) {
        return Err(PyValueError::new_err(format!(
            "{what}: byte strides {strides:?} are not whole float32 pixels (a field of a \
             record array?); pass numpy.ascontiguousarray of it"
        )));
    }
    Ok(())
}

fn pairs(r: &denoisekit_core::Resolved) -> Vec<(String, String)> {
    r.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn options_pairs(v: &ParamValues) -> Vec<(String, String)> {
    v.pairs().to_vec()
}

/// The library version.
#[pyfunction]
fn version() -> &'static str {
    denoisekit_core::VERSION
}

/// The registry: every method's descriptor, as JSON.
#[pyfunction]
fn registry_json() -> PyResult<String> {
    serde_json::to_string(denoisekit_core::registry())
        .map_err(|e| PyRuntimeError::new_err(format!("cannot serialise the registry: {e}")))
}

/// Whether this build has GPU kernels.
#[pyfunction]
fn gpu_compiled() -> bool {
    denoisekit_gpu::COMPILED_WITH_GPU
}

/// Threads for every later call that does not give `threads=` (0: all cores).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    DEFAULT_THREADS.store(check_threads("set_num_threads: n", n)?, Ordering::Relaxed);
    Ok(())
}

/// The working-memory budget of a call without `memory_limit=`, in bytes: the
/// environment's [`LIMIT_ENV`](denoisekit_core::memory::LIMIT_ENV), else 80% of the memory
/// available now; `None` where the system does not say what is available. The Dask
/// driver shares it among the tasks that run at once.
#[pyfunction]
fn memory_budget() -> PyResult<Option<u64>> {
    let b = denoisekit_core::memory::limit().map_err(|e| to_py(e.into()))?;
    Ok((b < u64::MAX).then_some(b))
}

/// Why float64 values from `lo` to `hi`, which float32 moves by up to `moved`, cannot be
/// denoised as float32 (`None` when they can): [`denoisekit_core::float32_precision_loss`].
#[pyfunction]
fn float32_precision_loss(lo: f64, hi: f64, moved: f64) -> Option<String> {
    denoisekit_core::float32_precision_loss(lo, hi, moved)
}

/// The thread count a call without `threads=` uses.
#[pyfunction]
fn get_num_threads() -> usize {
    match DEFAULT_THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// `(z, y, x)` reach of an output pixel; `None` where it is the whole axis.
#[pyfunction]
fn support(method: &str, params: Vec<(String, String)>) -> PyResult<[Option<usize>; 3]> {
    let s = denoisekit_core::support(method, &values(params)).map_err(|e| to_py(e.into()))?;
    Ok(s.map(|r| (r < GLOBAL_SUPPORT).then_some(r)))
}

/// The central block, `[(start, stop)]` along z, y and x, on which a run that never
/// holds the whole image measures the noise-derived defaults.
#[pyfunction]
fn noise_sample(depth: usize, height: usize, width: usize) -> [(usize, usize); 3] {
    denoisekit_core::noise_sample((depth, height, width)).map(|r| (r.start, r.end))
}

/// Whether the method's border wraps around the image (a periodic border).
#[pyfunction]
fn wraps(method: &str, params: Vec<(String, String)>) -> PyResult<bool> {
    denoisekit_core::wraps(method, &values(params)).map_err(|e| to_py(e.into()))
}

/// Every parameter's value as the method would use it; noise-derived ones measured on
/// `image` (without an image they must be given), whose noise model is then judged
/// against it as a run would (the Dask driver's chunks rely on it). With
/// [`denoisekit_core::strength_units_warning`]'s warning: Dask's and OME-Zarr's chunks run
/// with the model pinned here, so this is where they can say it.
#[pyfunction]
#[pyo3(signature = (method, params, images, image=None))]
fn resolve(
    py: Python<'_>,
    method: &str,
    params: Vec<(String, String)>,
    images: Vec<(String, PyReadonlyArray3<'_, f32>)>,
    image: Option<PyReadonlyArray3<'_, f32>>,
) -> PyResult<(Pairs, Option<String>)> {
    let v = with_images(values(params), images)?;
    match image {
        Some(img) => {
            let view = view(&img, "image")?;
            run_job(py, None, &Control::new(), |_| {
                let (_, r) = denoisekit_core::prepare(method, &view, &v)?;
                denoisekit_core::judge_noise_model(view.view(), &r)?;
                let units = denoisekit_core::strength_units_warning(method, &v, &r)?;
                Ok((pairs(&r), units))
            })
        }
        None => {
            let m = denoisekit_core::find(method).map_err(|e| to_py(e.into()))?;
            // A camera given without a model names poisson_gaussian, as a run does.
            let v = denoisekit_core::implied_noise_model(&v);
            let r = m
                .resolve(&v, || {
                    Err(DenoiseError::InvalidInput {
                        reason: format!(
                            "{method}: a noise-dependent parameter is unset; give it, or pass \
                             image= to measure the noise"
                        ),
                    })
                })
                .map_err(|e| to_py(e.into()))?;
            Ok((pairs(&r), None))
        }
    }
}

/// Refuses a backend, thread count or memory limit that every job would refuse: the
/// Dask drivers ask on the client, before planning or creating an output, rather than
/// have each chunk's task fail alike on the workers.
#[pyfunction]
#[pyo3(signature = (backend, threads=None, memory_limit=None))]
fn check_job_options(
    backend: &str,
    threads: Option<i64>,
    memory_limit: Option<String>,
) -> PyResult<()> {
    Backend::from_name(backend).map_err(|e| to_py(e.into()))?;
    pool_size(threads)?;
    self::memory_limit(memory_limit)?;
    Ok(())
}

/// Denoises `image` (float32, z/y/x); returns the result and the device that ran it.
/// `model_judged`: the image is a part (a Dask chunk) of one whose noise model
/// [`resolve`] judged; the part is not judged again.
#[pyfunction]
#[pyo3(signature = (image, method, params, images, backend="auto", threads=None, memory_limit=None, out=None, model_judged=false))]
#[allow(clippy::too_many_arguments)]
fn denoise<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, f32>,
    method: &str,
    params: Vec<(String, String)>,
    images: Vec<(String, PyReadonlyArray3<'py, f32>)>,
    backend: &str,
    threads: Option<i64>,
    memory_limit: Option<String>,
    out: Option<Bound<'py, PyArray3<f32>>>,
    model_judged: bool,
) -> PyResult<Denoised<'py>> {
    let backend = Backend::from_name(backend).map_err(|e| to_py(e.into()))?;
    if let Some(o) = &out
        && o.shape() != image.shape()
    {
        return Err(PyValueError::new_err(format!(
            "out has shape {:?}, the image {:?}",
            o.shape(),
            image.shape()
        )));
    }
    if let Some(o) = &out {
        whole_pixels(o.strides(), "out")?;
    }
    // Borrowed for writing before the job: a read-only `out` is refused before the work.
    let mut target = match &out {
        Some(o) => Some(o.try_readwrite().map_err(|e| {
            PyValueError::new_err(format!(
                "out cannot be written ({e}); pass a writeable float32 array that is not the input"
            ))
        })?),
        None => None,
    };
    let v = with_images(values(params), images)?;
    let view: VolumeView<'_> = view(&image, "image")?;
    let mut ctl = Control::new();
    if model_judged {
        ctl = ctl.with_model_judged();
    }
    if let Some(b) = self::memory_limit(memory_limit)? {
        ctl = ctl.with_memory_limit(b);
    }
    let done = run_job(py, threads, &ctl, |ctl| {
        denoisekit_gpu::run(method, view, &v, backend, ctl)
    })?;
    let device = done.device.to_string();
    let resolved = pairs(&done.params);
    let units = denoisekit_core::strength_units_warning(method, &v, &done.params)
        .map_err(|e| to_py(e.into()))?;
    if let Some(t) = target.as_mut() {
        t.as_array_mut().assign(&done.volume);
    }
    drop(target);
    let arr = match out {
        Some(o) => o,
        None => owned(py, done.volume),
    };
    Ok((arr, device, resolved, units))
}

/// What `denoise` returns: the result, the device it ran on, every value it used, and
/// [`denoisekit_core::strength_units_warning`]'s warning.
type Denoised<'py> = (Bound<'py, PyArray3<f32>>, String, Pairs, Option<String>);

fn owned(py: Python<'_>, v: Volume) -> Bound<'_, PyArray3<f32>> {
    numpy::IntoPyArray::into_pyarray(v, py)
}

/// Self-supervised tuning: `(every value, [(tuned key, value)], loss at the defaults,
/// loss tuned, method runs)`.
#[pyfunction]
#[pyo3(signature = (image, method, params, images, threads=None))]
#[allow(clippy::type_complexity)]
fn tune(
    py: Python<'_>,
    image: PyReadonlyArray3<'_, f32>,
    method: &str,
    params: Vec<(String, String)>,
    images: Vec<(String, PyReadonlyArray3<'_, f32>)>,
    threads: Option<i64>,
) -> PyResult<(Vec<(String, String)>, Vec<(String, f64)>, f64, f64, usize)> {
    let v = with_images(values(params), images)?;
    let view = view(&image, "image")?;
    let t = run_job(py, threads, &Control::new(), |ctl| {
        denoisekit_core::tune::tune(method, view, &v, ctl)
    })?;
    Ok((
        options_pairs(&t.values),
        t.tuned.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
        t.loss_default,
        t.loss_tuned,
        t.evaluations,
    ))
}

/// The denoisers tuned and ranked by one loss, best first: `(id, loss, values)`.
#[pyfunction]
#[pyo3(signature = (image, methods, threads=None))]
#[allow(clippy::type_complexity)]
fn rank(
    py: Python<'_>,
    image: PyReadonlyArray3<'_, f32>,
    methods: Vec<String>,
    threads: Option<i64>,
) -> PyResult<Vec<(String, f64, Vec<(String, String)>)>> {
    let view = view(&image, "image")?;
    let ids: Vec<&str> = methods.iter().map(String::as_str).collect();
    let ranked = run_job(py, threads, &Control::new(), |ctl| {
        denoisekit_core::tune::rank(&ids, view, &ParamValues::new(), ctl)
    })?;
    Ok(ranked
        .into_iter()
        .map(|r| (r.id.to_string(), r.loss, options_pairs(&r.tuned.values)))
        .collect())
}

/// The noise: `(Gaussian sigma, chosen model's options, why, correlation summary,
/// correlation radius)`.
#[pyfunction]
fn estimate_noise(
    py: Python<'_>,
    image: PyReadonlyArray3<'_, f32>,
) -> PyResult<(f64, Pairs, String, String, usize)> {
    let view = view(&image, "image")?;
    run_job(py, None, &Control::new(), |_| {
        let choice = denoisekit_core::noise::choose_noise_model(&view)?;
        // The Gaussian model's reason measured the level already.
        let sigma = match choice.model {
            denoisekit_core::noise::NoiseModel::Gaussian { sigma } => sigma,
            denoisekit_core::noise::NoiseModel::PoissonGaussian(_) => {
                denoisekit_core::estimate_sigma(&view)?
            }
        };
        // An image with too few smooth pixels still has a noise level and a model; the
        // correlation is then said to be unmeasured, as the CLI and the panel say it.
        let (summary, radius) =
            match denoisekit_core::correlation::estimate_correlation_for(&view, &choice) {
                Ok(c) => (c.summary(), c.radius),
                Err(e) => (
                    format!(
                        "not measured: {}",
                        e.to_string().trim_start_matches("invalid input: ")
                    ),
                    0,
                ),
            };
        let opts = choice
            .options()
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok((sigma, opts, choice.reason, summary, radius))
    })
}

/// The "imager beware" check: a warning when the residual holds image structure.
#[pyfunction]
fn residual_check(
    py: Python<'_>,
    noisy: PyReadonlyArray3<'_, f32>,
    denoised: PyReadonlyArray3<'_, f32>,
) -> PyResult<Option<String>> {
    let (a, b) = (view(&noisy, "noisy")?, view(&denoised, "denoised")?);
    if a.shape() != b.shape() {
        return Err(PyValueError::new_err(format!(
            "the images differ in shape: {:?} and {:?}",
            a.shape(),
            b.shape()
        )));
    }
    // Checked as a job's input is: a NaN would make the correlation NaN, and an image too
    // small to correlate would pass as "no warning".
    for (what, v) in [("noisy", &a), ("denoised", &b)] {
        denoisekit_core::check_input(v)
            .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    }
    run_job(py, None, &Control::new(), |_| {
        denoisekit_core::metrics::residual_warning(&a, &b)
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    LOADED_IN.get_or_init(std::process::id);
    // Named by their real module, so that pickling (a Dask worker's error on its way to
    // the client) finds the same classes again and `except TooLargeError` works there.
    for (name, ty) in [
        ("TooLargeError", m.py().get_type::<TooLargeError>()),
        (
            "BackendUnavailableError",
            m.py().get_type::<BackendUnavailableError>(),
        ),
    ] {
        ty.setattr("__module__", "denoisekit._native")?;
        m.add(name, ty)?;
    }
    // The backend names, default first: front ends list these instead of their own.
    m.add("BACKENDS", Backend::NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(registry_json, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_compiled, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(float32_precision_loss, m)?)?;
    m.add_function(wrap_pyfunction!(support, m)?)?;
    m.add_function(wrap_pyfunction!(wraps, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_all, m)?)?;
    m.add_function(wrap_pyfunction!(noise_sample, m)?)?;
    m.add_function(wrap_pyfunction!(resolve, m)?)?;
    m.add_function(wrap_pyfunction!(denoise, m)?)?;
    m.add_function(wrap_pyfunction!(check_job_options, m)?)?;
    m.add_function(wrap_pyfunction!(tune, m)?)?;
    m.add_function(wrap_pyfunction!(rank, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_noise, m)?)?;
    m.add_function(wrap_pyfunction!(residual_check, m)?)?;
    Ok(())
}
