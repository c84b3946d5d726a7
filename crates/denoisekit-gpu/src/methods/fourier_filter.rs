//! GPU host for `fourier_filter`: the core's soft radial mask applied through the shared
//! DCT kernel in [`super::spectral`].

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::fourier_filter::{FourierFilterParams, filter};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

/// Runs the Fourier low-pass on the GPU.
///
/// # Errors
/// As [`super::spectral::apply`].
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = FourierFilterParams::from_resolved(r)?;
    match filter(&p, input.dim().0) {
        Some(f) => super::spectral::apply(ctx, input, &f, ctl, max_tile_bytes),
        None => Ok(input.to_owned()),
    }
}
