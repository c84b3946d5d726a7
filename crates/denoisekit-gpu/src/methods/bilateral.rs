//! GPU host for `bilateral` (kernel: `bilateral.wgsl`): one dispatch per tile of planes
//! through [`super::per_pixel_tiled`], with the z window as halo.

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
    }
}

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
    };
    let uniforms = |depth: u32| bytemuck::bytes_of(&Uniforms { depth, ..u }).to_vec();
    super::per_pixel_tiled(
        ctx,
        "bilateral",
        "main",
        WGSL,
        input,
        plan.radius_z,
        &uniforms,
        max_tile_bytes,
    )
}
