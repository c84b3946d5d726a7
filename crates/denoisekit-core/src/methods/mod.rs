//! The method registry: the only list of methods in DenoiseKit.
//!
//! To add a method (docs/architecture.md, "Adding a method", says the same): write
//! `methods/<id>.rs` with a `//!` header, its `method_params!` table (choices as
//! `choice_enum!` enums), `pub fn denoise_<id>` and a `pub static DESCRIPTOR`; add its
//! line to the `registry!` list below (module, parameters struct, functions, choice enums:
//! that one line registers it and re-exports its API); regenerate docs/methods.md.
//! Optionally a GPU kernel in `denoisekit-gpu`, consuming a `plan` the CPU kernel derives
//! too. The CLI, the JNI `describe` call, the Fiji panel, Python, the docs and the
//! property tests pick it up from the registry.

use crate::descriptor::MethodDescriptor;
use crate::error::{DenoiseError, Result};

/// Declares each method's module, its entry in [`REGISTRY`] (in the order given, which is
/// the order users see) and the re-export of its typed API (parameters struct, `denoise_*`
/// functions, the enums of its choices) that `lib.rs` publishes: one line per method, so a
/// method cannot be registered without its API, or exported without being registered.
macro_rules! registry {
    ($($id:ident => $params:ident, $($func:ident),+;)+) => {
        $(pub mod $id;)+

        /// Every registered method, in the order shown to users.
        pub static REGISTRY: &[&MethodDescriptor] = &[$(&$id::DESCRIPTOR),+];

        /// Each method's typed API, re-exported at the crate root.
        pub mod api {
            $(pub use super::$id::{$params, $($func),+};)+
        }
    };
}

registry! {
    gaussian => GaussianParams, denoise_gaussian;
    bilateral => BilateralParams, denoise_bilateral;
    nl_means => NlMeansParams, denoise_nl_means;
    bm3d => Bm3dParams, denoise_bm3d, Stages;
    zs_n2n => ZsN2nParams, denoise_zs_n2n, Training, Subimages;
    bls_gsm => BlsGsmParams, denoise_bls_gsm;
    total_variation => TotalVariationParams, denoise_total_variation;
    wavelet => WaveletParams, denoise_wavelet, ThresholdRule, Shrinkage, ZMode;
    tikhonov => TikhonovParams, denoise_tikhonov, Regulariser;
    anisotropic_diffusion => AnisotropicDiffusionParams, denoise_anisotropic_diffusion, Conductance;
    fourier_filter => FourierFilterParams, denoise_fourier_filter;
    median => MedianParams, denoise_median;
    richardson_lucy => RichardsonLucyParams, denoise_richardson_lucy, denoise_richardson_lucy_psf, PsfModel, StartEstimate;
    top_hat => TopHatParams, denoise_top_hat, TopHatMode, TopHatOutput;
}

pub mod scene;
mod wavelet_filters;

/// Every registered method.
pub fn registry() -> &'static [&'static MethodDescriptor] {
    REGISTRY
}

/// The method with this id.
///
/// # Errors
/// [`DenoiseError::UnknownMethod`] listing the registered ids.
pub fn find(id: &str) -> Result<&'static MethodDescriptor> {
    REGISTRY
        .iter()
        .copied()
        .find(|m| m.id == id)
        .ok_or_else(|| DenoiseError::UnknownMethod {
            name: id.to_string(),
            valid: REGISTRY.iter().map(|m| m.id).collect::<Vec<_>>().join(", "),
        })
}
