//! The method registry: the only list of methods in DenoiseKit.
//!
//! To add a method: write `methods/<id>.rs` with its `method_params!` table, its
//! `denoise_<id>` function and a `DESCRIPTOR`, then add one line to [`REGISTRY`]. The CLI,
//! the JNI `describe` call, the ImageJ dialog, the docs and the property tests pick it up.

use crate::descriptor::MethodDescriptor;
use crate::error::{DenoiseError, Result};

pub mod anisotropic_diffusion;
pub mod bilateral;
pub mod bls_gsm;
pub mod bm3d;
pub mod fourier_filter;
pub mod gaussian;
pub mod median;
pub mod nl_means;
pub mod richardson_lucy;
pub mod tikhonov;
pub mod top_hat;
pub mod total_variation;
pub mod wavelet;
mod wavelet_filters;

/// Every registered method, in the order shown to users.
pub static REGISTRY: &[&MethodDescriptor] = &[
    &gaussian::DESCRIPTOR,
    &bilateral::DESCRIPTOR,
    &nl_means::DESCRIPTOR,
    &bm3d::DESCRIPTOR,
    &bls_gsm::DESCRIPTOR,
    &total_variation::DESCRIPTOR,
    &wavelet::DESCRIPTOR,
    &tikhonov::DESCRIPTOR,
    &anisotropic_diffusion::DESCRIPTOR,
    &fourier_filter::DESCRIPTOR,
    &median::DESCRIPTOR,
    &richardson_lucy::DESCRIPTOR,
    &top_hat::DESCRIPTOR,
];

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
