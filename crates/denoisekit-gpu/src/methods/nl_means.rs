//! GPU host for `nl_means` (kernel: `nl_means.wgsl`): one dispatch per tile of planes
//! through [`super::per_pixel_tiled`] (halo: patch plus search radius in z), patch
//! distances summed directly per pixel.

use crate::context::GpuContext;
use crate::error::GpuError;
use denoisekit_core::methods::nl_means::NlMeansParams;
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("nl_means.wgsl");

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        patch_radius: u32,
        search_radius: u32,
        patch_radius_z: u32,
        search_radius_z: u32,
        _pad: u32,
        inv_n: f32,
        thr: f32,
        inv_h2: f32,
        _pad2: f32,
    }
}

/// Runs non-local means on the GPU from resolved parameters.
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
    let p = NlMeansParams::from_resolved(r)?;
    let d = input.dim().0;
    let (prz, srz) = if d > 1 {
        (p.patch_radius_z, p.search_radius_z)
    } else {
        (0, 0)
    };
    if p.h == 0.0 || (p.search_radius == 0 && srz == 0) {
        return Ok(input.to_owned());
    }
    ctl.checkpoint()?;
    let cap = |x: f64| x.min(f32::MAX as f64) as f32;
    let (_, h, w) = input.dim();
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        patch_radius: p.patch_radius as u32,
        search_radius: p.search_radius as u32,
        patch_radius_z: prz as u32,
        search_radius_z: srz as u32,
        _pad: 0,
        inv_n: 1.0 / ((2 * p.patch_radius + 1).pow(2) * (2 * prz + 1)) as f32,
        thr: cap(2.0 * p.sigma * p.sigma),
        inv_h2: cap(1.0 / (p.h * p.h)),
        _pad2: 0.0,
    };
    let uniforms = |depth: u32| bytemuck::bytes_of(&Uniforms { depth, ..u }).to_vec();
    super::per_pixel_tiled(
        ctx,
        "nl_means",
        WGSL,
        input,
        prz + srz,
        &uniforms,
        max_tile_bytes,
    )
}
