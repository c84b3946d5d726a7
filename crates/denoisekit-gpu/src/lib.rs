//! DenoiseKit's GPU backend: wgpu compute kernels (Vulkan, Metal, DX12) with the same
//! answers as the CPU within each method's stated `gpu_tolerance`.
//!
//! [`run`] is the entry the CLI and the JNI layer use: it validates the job with
//! `denoisekit_core::prepare`, picks the device from the requested [`Backend`], and falls
//! back to the CPU (saying so once in the log) when no usable GPU exists or a GPU step
//! fails. Kernels are WGSL files beside their host modules in `methods/`.
#![deny(missing_docs)]

#[cfg(feature = "wgpu")]
pub mod context;
pub mod error;
#[cfg(feature = "wgpu")]
pub mod methods;

#[cfg(feature = "wgpu")]
pub use context::{GpuContext, shared};
pub use error::GpuError;

use denoisekit_core::volume::Shape;
use denoisekit_core::{Backend, Control, DenoiseError, ParamValues, Resolved, Volume, VolumeView};

/// The GPU implementation of one method; `Some(bytes)` caps the size of each tile of planes
/// below the device limit (tests use it to force tiling).
#[cfg(feature = "wgpu")]
pub type GpuRunFn =
    fn(&GpuContext, VolumeView<'_>, &Resolved, &Control, Option<u64>) -> Result<Volume, GpuError>;

/// A method with a GPU implementation.
#[derive(Debug, Clone, Copy)]
pub struct GpuMethod {
    /// The method's id in the core registry.
    pub id: &'static str,
    /// Its GPU implementation.
    #[cfg(feature = "wgpu")]
    pub run: GpuRunFn,
    /// The WGSL files (stems under `src/methods/`) it runs; `tests/wgsl_valid.rs` checks
    /// that every file is validated and used.
    pub kernels: &'static [&'static str],
    /// Whether `Auto` picks the GPU.
    pub auto: AutoUse,
    /// Host memory the GPU job holds beyond the common staging copies, in copies of the
    /// image (`host_need`), for these settings and this shape.
    pub host_copies: fn(&Resolved, Shape) -> f32,
}

/// No host memory beyond the common staging copies.
fn no_host_copies(_: &Resolved, _: Shape) -> f32 {
    0.0
}

/// Whether `Backend::Auto` runs a method's kernel on a hardware GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoUse {
    /// Yes: the kernel beat the CPU end to end on a real GPU.
    Gpu,
    /// No, for this reason (which the device line of a result and docs/methods.md give).
    /// `Gpu` still runs the kernel.
    Cpu(&'static str),
}

/// Where a data-centre GPU was slower end to end than 16 cores (docs/benchmarks.md#gpu):
/// the Gaussian at 2048x2048 ran at 0.13x to 0.21x the CPU's speed on an H100, at 0.64x
/// on an H200 after its host stopped gathering planes element by element, and at 0.77x
/// to 0.82x (3.1–3.3 ms against 2.4–2.7 ms) once its host copies used every core.
const SLOWER_THAN_16_CORES: AutoUse =
    AutoUse::Cpu("16 CPU cores were faster than an H100 and an H200 end to end");

/// Methods with a GPU kernel. Each id here has `gpu_tolerance` set in its core
/// descriptor; `tests/gpu_matches_cpu.rs` checks both directions.
pub static GPU_METHODS: &[GpuMethod] = &[
    GpuMethod {
        id: "gaussian",
        #[cfg(feature = "wgpu")]
        run: methods::gaussian::run,
        kernels: &["gaussian"],
        auto: SLOWER_THAN_16_CORES,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "bilateral",
        #[cfg(feature = "wgpu")]
        run: methods::bilateral::run,
        kernels: &["bilateral"],
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "nl_means",
        #[cfg(feature = "wgpu")]
        run: methods::nl_means::run,
        kernels: &["nl_means"],
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "bm3d",
        #[cfg(feature = "wgpu")]
        run: methods::bm3d::run,
        kernels: &["bm3d"],
        auto: AutoUse::Cpu("not yet measured against the CPU on a hardware GPU"),
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "median",
        #[cfg(feature = "wgpu")]
        run: methods::median::run,
        kernels: &["median"],
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "anisotropic_diffusion",
        #[cfg(feature = "wgpu")]
        run: methods::anisotropic_diffusion::run,
        kernels: &["anisotropic_diffusion"],
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "total_variation",
        #[cfg(feature = "wgpu")]
        run: methods::total_variation::run,
        kernels: &["total_variation"],
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "tikhonov",
        #[cfg(feature = "wgpu")]
        run: methods::tikhonov::run,
        kernels: &["spectral"],
        // With FFT DCTs, 1.15x to 1.6x 16 cores on an H200 (2048², end to end).
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "fourier_filter",
        #[cfg(feature = "wgpu")]
        run: methods::fourier_filter::run,
        kernels: &["spectral"],
        // About even with 16 cores on an H200 (0.9x to 1.4x, 2048², end to end), so
        // ahead of the fewer cores of a typical workstation.
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
    GpuMethod {
        id: "richardson_lucy",
        #[cfg(feature = "wgpu")]
        run: methods::richardson_lucy::run,
        kernels: &["richardson_lucy", "gaussian", "spectral", "convolve"],
        // Measured with the Gaussian PSF (docs/benchmarks.md#gpu). The optical PSFs and a
        // PSF image run as FFTs on the device, whose DCT form already beat 16 cores
        // on an H200 for one transform with its transfers (Tikhonov); here 30 iterations
        // of four transforms each run without any.
        auto: AutoUse::Gpu,
        host_copies: denoisekit_core::methods::richardson_lucy::device_host_copies,
    },
    GpuMethod {
        id: "zs_n2n",
        #[cfg(feature = "wgpu")]
        run: methods::zs_n2n::run,
        kernels: &["zs_n2n", "zs_n2n_train"],
        // An H200 against its 16 cores (docs/benchmarks.md#gpu-h200): training on a
        // 256x256 region and applying to 512x512, 0.25 s against 2.0 s; at 2048x2048, 21x;
        // applying saved weights 5x to 34x (two layers, 400 steps, the defaults then).
        auto: AutoUse::Gpu,
        host_copies: no_host_copies,
    },
];

/// The GPU implementation of `id`, if there is one.
#[cfg(feature = "wgpu")]
pub fn gpu_method(id: &str) -> Option<GpuRunFn> {
    GPU_METHODS.iter().find(|m| m.id == id).map(|m| m.run)
}

/// Whether `Backend::Auto` runs method `id` on a hardware GPU (see [`GpuMethod::auto`]).
pub fn auto_on_gpu(id: &str) -> bool {
    GPU_METHODS
        .iter()
        .any(|m| m.id == id && m.auto == AutoUse::Gpu)
}

/// Why `Backend::Auto` keeps method `id`, which has a GPU kernel, on the CPU; `None` when
/// it does not (or there is no kernel).
pub fn why_not_auto(id: &str) -> Option<&'static str> {
    GPU_METHODS
        .iter()
        .find(|m| m.id == id)
        .and_then(|m| match m.auto {
            AutoUse::Gpu => None,
            AutoUse::Cpu(why) => Some(why),
        })
}

/// Which device computed a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// The CPU; with the reason when a GPU was asked for or preferred.
    Cpu(Option<String>),
    /// The GPU described.
    Gpu(String),
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ran::Cpu(None) => write!(f, "CPU ({} threads)", rayon::current_num_threads()),
            Ran::Cpu(Some(why)) => {
                write!(f, "CPU ({} threads; {why})", rayon::current_num_threads())
            }
            Ran::Gpu(name) => write!(f, "GPU {name}"),
        }
    }
}

/// A result, the device that computed it and the parameters it used (defaults filled in).
#[derive(Debug, Clone)]
pub struct Denoised {
    /// The denoised image.
    pub volume: Volume,
    /// Where it was computed.
    pub device: Ran,
    /// Every parameter's value, including noise-derived defaults.
    pub params: Resolved,
}

/// Runs method `id` on the device chosen by `backend`.
///
/// - `Cpu`: always the CPU.
/// - `Auto`: the GPU if it is a real (hardware) adapter and the method has a kernel that
///   beats the CPU ([`GpuMethod::auto`]), else the CPU. A software adapter such as
///   lavapipe is slower than the native path.
/// - `Gpu`: any adapter, including software ones; [`DenoiseError::BackendUnavailable`]
///   if there is none. A method without a GPU kernel, or settings without one
///   ([`GpuError::Unsupported`]), run on the CPU and say so.
/// - With `Auto` or `Gpu`, a job whose GPU path would not fit the host memory budget
///   whole runs on the CPU, which splits it into windows of planes or refuses it
///   (`TooLarge`), and says so.
///
/// A GPU failure in the middle of a job is logged and the job re-runs on the CPU, unless
/// `Gpu` was required, in which case the error is returned.
///
/// # Errors
/// Everything `denoisekit_core::run` reports, and `BackendUnavailable`.
pub fn run(
    id: &str,
    input: VolumeView<'_>,
    values: &ParamValues,
    backend: Backend,
    ctl: &Control,
) -> Result<Denoised, DenoiseError> {
    run_via(id, input, values, backend, ctl, try_gpu)
}

/// How a build attempts the GPU: `try_gpu` with the backend, [`without_gpu`] without it.
type TryGpu = fn(
    &'static denoisekit_core::MethodDescriptor,
    VolumeView<'_>,
    &Resolved,
    Backend,
    &Control,
) -> Result<Attempt, DenoiseError>;

/// [`run`] with the GPU attempted by `attempt`, so that tests of the default build also
/// run what a build without the backend does.
fn run_via(
    id: &str,
    input: VolumeView<'_>,
    values: &ParamValues,
    backend: Backend,
    ctl: &Control,
    attempt: TryGpu,
) -> Result<Denoised, DenoiseError> {
    let (m, resolved) = denoisekit_core::prepare(id, &input, values)?;
    ctl.reset_progress();
    let (volume, device) = match attempt(m, input.view(), &resolved, backend, ctl)? {
        Attempt::Done(volume, device) => {
            ctl.finish();
            (volume, device)
        }
        // The CPU path keeps the memory budget (windows of planes, or TooLarge).
        Attempt::UseCpu(why) => {
            // A GPU that failed part way reported progress the CPU run starts over.
            ctl.reset_progress();
            (
                denoisekit_core::run_resolved(m, input, &resolved, ctl)?,
                Ran::Cpu(why),
            )
        }
    };
    Ok(Denoised {
        volume,
        device,
        params: resolved,
    })
}

/// Whether this build holds the GPU backend: builds without the `wgpu` feature (the
/// macOS ones) run every job on the CPU.
pub const COMPILED_WITH_GPU: bool = cfg!(feature = "wgpu");

/// Why a build without the GPU backend runs on the CPU, as the device line shows it.
pub const NO_GPU_IN_BUILD: &str = "this build of DenoiseKit has no GPU support";

/// Host memory of a GPU job beyond its input: the upload's staging copy, the read-back
/// staging buffer and the output, plus the noise model's transformed copy and `own`, the
/// method's own host copies ([`GpuMethod::host_copies`]), in copies of the image.
#[cfg(feature = "wgpu")]
fn host_need(input: &VolumeView<'_>, resolved: &Resolved, own: f32) -> u64 {
    let copies = 3.0 + f64::from(denoisekit_core::memory::noise_model_copies(resolved) + own);
    let bytes = (input.len() as f64 * 4.0 * copies).min(u64::MAX as f64 / 2.0) as u64;
    bytes.saturating_add(denoisekit_core::memory::FIXED)
}

/// What a job's GPU attempt came to (the job's own errors are returned beside it).
enum Attempt {
    /// The GPU computed the result (never, in a build without the backend).
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    Done(Volume, Ran),
    /// The CPU should run it, for this reason (`None`: none worth reporting).
    UseCpu(Option<String>),
}

/// Runs a prepared job on the GPU when `backend` asks for one and one can run it (inside
/// the noise model's transform); otherwise says why the CPU should.
#[cfg(feature = "wgpu")]
fn try_gpu(
    m: &'static denoisekit_core::MethodDescriptor,
    input: VolumeView<'_>,
    resolved: &Resolved,
    backend: Backend,
    ctl: &Control,
) -> Result<Attempt, DenoiseError> {
    if backend == Backend::Cpu {
        return Ok(Attempt::UseCpu(None));
    }
    match (shared(), GPU_METHODS.iter().find(|g| g.id == m.id)) {
        (Err(e), _) if backend == Backend::Gpu => Err(DenoiseError::BackendUnavailable {
            reason: e.to_string(),
        }),
        (Err(_), _) => Ok(Attempt::UseCpu(None)),
        (Ok(_), None) => Ok(Attempt::UseCpu(Some(format!(
            "no GPU kernel for {} yet",
            m.id
        )))),
        (Ok(ctx), Some(_))
            if backend == Backend::Auto
                && ctx.is_software()
                && !context::fault::software_as_hardware() =>
        {
            Ok(Attempt::UseCpu(Some(format!(
                "{} is a software GPU",
                ctx.info.name
            ))))
        }
        (
            Ok(_),
            Some(GpuMethod {
                auto: AutoUse::Cpu(why),
                ..
            }),
        ) if backend == Backend::Auto => Ok(Attempt::UseCpu(Some(format!(
            "backend=auto keeps {} on the CPU: {why}",
            m.id
        )))),
        (Ok(ctx), Some(g)) => {
            // The CPU path windows a job over the budget or refuses it; the GPU path holds
            // it whole.
            let own = (g.host_copies)(resolved, Shape::of(&input));
            let (need, limit) = (host_need(&input, resolved, own), ctl.memory_limit()?);
            if need > limit {
                return Ok(Attempt::UseCpu(Some(format!(
                    "the GPU path needs {} of host memory, over the budget of {}",
                    denoisekit_core::memory::fmt_bytes(need),
                    denoisekit_core::memory::fmt_bytes(limit)
                ))));
            }
            if ctx.is_software() {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    log::warn!(
                        "DenoiseKit: {} is a software renderer, for testing. Mesa's llvmpipe \
                         ends every shader loop after 65535 passes per invocation without an \
                         error, so a large window can come back partly unwritten (seen: \
                         nl_means search_radius=23, median radius=25 radius_z=1, bilateral \
                         radius=60). backend=auto never uses it; the CPU path is exact and \
                         faster",
                        ctx.info.name
                    );
                });
            }
            let done = denoisekit_core::with_noise_model(input, resolved, ctl, |v, ctl| {
                (g.run)(ctx, v, resolved, ctl, None)
            });
            ctl.checkpoint()?;
            match done {
                Ok(volume) => Ok(Attempt::Done(volume, Ran::Gpu(ctx.describe()))),
                Err(GpuError::Job(e)) => Err(e),
                Err(GpuError::Unsupported(why)) => Ok(Attempt::UseCpu(Some(why))),
                Err(e) if backend == Backend::Gpu => Err(DenoiseError::BackendUnavailable {
                    reason: e.to_string(),
                }),
                Err(e) => {
                    log::warn!(
                        "DenoiseKit: GPU failed for {} ({e}); running on the CPU",
                        m.id
                    );
                    Ok(Attempt::UseCpu(Some(format!("GPU failed: {e}"))))
                }
            }
        }
    }
}

#[cfg(not(feature = "wgpu"))]
use without_gpu as try_gpu;

/// A build without the GPU backend: `Gpu` is refused, `Auto` runs on the CPU and says
/// why, in the device line of each result and once in the log. Compiled in every build:
/// the default build's tests run it through [`run_via`] (the macOS packages, built
/// without the backend, cannot run here).
#[cfg_attr(feature = "wgpu", allow(dead_code))]
fn without_gpu(
    _m: &'static denoisekit_core::MethodDescriptor,
    _input: VolumeView<'_>,
    _resolved: &Resolved,
    backend: Backend,
    _ctl: &Control,
) -> Result<Attempt, DenoiseError> {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    match backend {
        Backend::Cpu => Ok(Attempt::UseCpu(None)),
        Backend::Gpu => Err(DenoiseError::BackendUnavailable {
            reason: format!("{NO_GPU_IN_BUILD}; use backend=auto or backend=cpu"),
        }),
        Backend::Auto => {
            LOGGED.call_once(|| log::info!("DenoiseKit: {NO_GPU_IN_BUILD}; running on the CPU"));
            Ok(Attempt::UseCpu(Some(NO_GPU_IN_BUILD.to_string())))
        }
    }
}

/// What the CPU-only build (`--no-default-features`, as for macOS) does.
#[cfg(test)]
mod without_backend {
    use super::*;

    fn run(
        id: &str,
        input: VolumeView<'_>,
        values: &ParamValues,
        backend: Backend,
        ctl: &Control,
    ) -> Result<Denoised, DenoiseError> {
        run_via(id, input, values, backend, ctl, without_gpu)
    }

    #[test]
    fn auto_runs_on_the_cpu_and_says_why_and_gpu_is_refused() {
        let img = Volume::from_shape_fn((1, 16, 16), |(_, y, x)| (x * y) as f32);
        let values = ParamValues::new();
        let auto = run(
            "gaussian",
            img.view(),
            &values,
            Backend::Auto,
            &Control::new(),
        )
        .unwrap();
        assert_eq!(auto.device, Ran::Cpu(Some(NO_GPU_IN_BUILD.to_string())));
        let cpu = run(
            "gaussian",
            img.view(),
            &values,
            Backend::Cpu,
            &Control::new(),
        )
        .unwrap();
        assert_eq!(auto.volume, cpu.volume);
        assert_eq!(cpu.device, Ran::Cpu(None));
        match run(
            "gaussian",
            img.view(),
            &values,
            Backend::Gpu,
            &Control::new(),
        ) {
            Err(DenoiseError::BackendUnavailable { reason }) => {
                assert!(reason.contains(NO_GPU_IN_BUILD), "{reason}")
            }
            other => panic!("backend=gpu in a CPU-only build gave {other:?}"),
        }
    }
}
