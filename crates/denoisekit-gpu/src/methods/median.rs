//! GPU host for `median` (kernel: `median.wgsl`): through [`super::per_pixel_tiled`]
//! (tiles of planes with the z window as halo, boxes of output of bounded work). Windows
//! of up to 27 values (3 × 3, 5 × 5, 3 × 3 × 3) are selected in registers; larger ones by
//! bisection on the values' bit patterns. Both return exactly the CPU's value (tested
//! for both paths).
//!
//! Cost: small windows, one read per value; larger ones about (window + 1) · (bits that
//! differ within the window) reads per pixel, at most 33 passes over the window; fine for
//! the usual radii, slow for the largest 3D windows (51 × 51 × 21 values), where the CPU's
//! selection is no faster per pixel. On lavapipe the 3 × 3 path took 58 ms for 512²
//! against 907 ms by bisection.

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::median::{MedianParams, radii};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("median.wgsl");

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        radius: u32,
        radius_z: u32,
        border: u32,
        x0: u32,
        y0: u32,
        z0: u32,
        _pad: [u32; 3],
    }
}

placed!(Uniforms);

/// Runs the median filter on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError`] on any device failure, `TooLarge` when one plane with its z halo exceeds
/// the storage-binding limit (or `max_tile_bytes`, which tests use to force tiling).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = MedianParams::from_resolved(r)?;
    let (d, h, w) = input.dim();
    let Some((radius, rz)) = radii(&p, d) else {
        return Ok(input.to_owned());
    };
    ctl.checkpoint()?;
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        radius: radius as u32,
        radius_z: rz as u32,
        border: p.border as u32,
        x0: 0,
        y0: 0,
        z0: 0,
        _pad: [0; 3],
    };
    let window = ((2 * radius + 1).pow(2) * (2 * rz + 1)) as u64;
    let kernel = super::OnePass {
        name: "median",
        entry: "main",
        wgsl: WGSL,
        reach_z: rz,
        wraps: denoisekit_core::BorderMode::wraps_in(r),
        // Bisection: at most 33 passes over the window (see the cost note above).
        reads_per_voxel: if window <= 27 {
            window
        } else {
            (window + 1) * 33
        },
        uniforms: u,
    };
    super::per_pixel_tiled(ctx, &kernel, input, ctl, max_tile_bytes)
}
