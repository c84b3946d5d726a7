//! DenoiseKit core: classical image denoisers for microscopy, on the CPU.
//!
//! Every method is described once by a [`MethodDescriptor`] in [`methods::REGISTRY`]:
//! id, parameters with ranges, defaults, units and help. [`run`] is the generic entry used
//! by the CLI, the JNI layer and the GPU crate's fallback: it validates the image and the
//! parameters, fills in defaults (estimating the noise only when a default needs it) and
//! calls the method. Each method is also callable directly with its typed parameters,
//! e.g. [`denoise_gaussian`].
//!
//! Images are [`Volume`]s of `f32` ordered (z, y, x); intensities stay in the image's
//! own units, never rescaled by bit depth.
//!
//! Layers, bottom up: `base` → `descriptor` → `kernels` → `noise` → `methods` →
//! `pipeline` → `eval`. Each uses only itself and the layers before it (checked by
//! `tests/layers.rs`, which reads this line). Their modules are re-exported here by name,
//! so `denoisekit_core::volume` and `crate::volume` name the same module wherever it sits.
#![deny(missing_docs)]

pub mod base;
pub mod descriptor;
pub mod eval;
pub mod kernels;
pub mod methods;
pub mod noise;
pub mod pipeline;

pub use base::{budget, control, error, fastmath, files, format, rng, simd, volume};
pub use eval::{metrics, phantom};
pub use kernels::{border, convolve, psf, spectral};
pub use noise::{correlation, vst};
pub use pipeline::{job, memory, tiling, tune};

pub use border::BorderMode;
pub use control::Control;
pub use descriptor::{
    DefaultValue, Dims, FilePath, ImageInput, MethodDescriptor, MethodKind, ParamKind, ParamSpec,
    ParamValue, ParamValues, Rect, Region, Resolved, Scale, SharedVolume, TuneLoss, Unit,
};
pub use error::{DenoiseError, Result};
pub use format::fmt_num;
pub use job::{
    Backend, NOISE_SAMPLE, implied_noise_model, judge_noise_model, noise_sample, prepare,
    resolve_noise_model, run, run_resolved, strength_units_warning, support, with_noise_model,
    wraps,
};
pub use methods::api::*;
pub use methods::{find, registry};
pub use noise::estimate_sigma;
pub use volume::{Shape, Volume, VolumeView, check_input, float32_precision_loss, volume_from_vec};

/// The library version, as written into results and logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
