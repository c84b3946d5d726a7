//! GPU host for `tikhonov`: the core's filter (the exact Fourier-domain solution) applied
//! through the shared DCT kernel in [`super::spectral`].

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::tikhonov::{TikhonovParams, filter};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

/// Runs Tikhonov regularisation (and Gaussian-PSF deconvolution) on the GPU.
///
/// # Errors
/// [`GpuError::Job`] for `lambda` 0 with a PSF, as on the CPU; otherwise as
/// [`super::spectral::apply`].
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = TikhonovParams::from_resolved(r)?;
    match filter(&p, input.dim().0)? {
        Some(f) => super::spectral::apply(ctx, input, &f, ctl, max_tile_bytes),
        None => Ok(input.to_owned()),
    }
}
