//! GPU host for `bilateral` (kernel: `bilateral.wgsl`): through
//! [`super::per_pixel_tiled`] (tiles of planes with the z window as halo, boxes of output
//! of bounded work).

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::bilateral::{BilateralParams, plan};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("bilateral.wgsl");

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        radius: u32,
        radius_z: u32,
        inv_2ss: f32,
        inv_2sz: f32,
        inv_2sr: f32,
        x0: u32,
        y0: u32,
        z0: u32,
        _pad: u32,
    }
}

placed!(Uniforms);

/// Runs the bilateral filter on the GPU from resolved parameters.
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
    let p = BilateralParams::from_resolved(r)?;
    let (d, h, w) = input.dim();
    let Some(plan) = plan(&p, d) else {
        return Ok(input.to_owned());
    };
    ctl.checkpoint()?;
    let cap = |x: f64| x.min(f32::MAX as f64) as f32;
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        radius: plan.radius as u32,
        radius_z: plan.radius_z as u32,
        inv_2ss: cap(1.0 / (2.0 * plan.sigma * plan.sigma)),
        inv_2sz: cap(1.0 / (2.0 * plan.sigma_z * plan.sigma_z)),
        inv_2sr: plan.inv_2sr,
        x0: 0,
        y0: 0,
        z0: 0,
        _pad: 0,
    };
    let kernel = super::OnePass {
        name: "bilateral",
        entry: "main",
        wgsl: WGSL,
        reach_z: plan.radius_z,
        wraps: denoisekit_core::BorderMode::wraps_in(r),
        reads_per_voxel: ((2 * plan.radius + 1).pow(2) * (2 * plan.radius_z + 1)) as u64,
        uniforms: u,
    };
    super::per_pixel_tiled(ctx, &kernel, input, ctl, max_tile_bytes)
}
