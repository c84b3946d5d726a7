//! GPU host for `anisotropic_diffusion` (kernel: `anisotropic_diffusion.wgsl`): all
//! iterations run on the GPU, alternating between two buffers; the image is uploaded once
//! and read back once. Submissions of `ITERATIONS_PER_SUBMIT` steps keep cancel
//! responsive.
//!
//! Tiling: planes are independent when `z_weight` is 0, so tiles need no halo; with z
//! coupling each step reaches one plane further, so a tile carries `iterations` halo
//! planes on both sides (the method's own z support) and its kept planes equal the
//! untiled result.

use super::{WG, in_tiles, tile_planes};
use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::methods::anisotropic_diffusion::{AnisotropicDiffusionParams, plan};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("anisotropic_diffusion.wgsl");

/// Steps recorded per submission: enough to keep the GPU busy, few enough that a cancel
/// is seen within a few milliseconds on a real GPU.
const ITERATIONS_PER_SUBMIT: usize = 16;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        exponential: u32,
        inv_k2: f32,
        step: f32,
        wz: f32,
        _pad: f32,
    }
}

/// Runs Perona–Malik diffusion on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError::Job`] for a step above the stability bound, as on the CPU; [`GpuError`] on
/// any device failure, `TooLarge` when one plane with its z halo exceeds
/// the storage-binding limit (or `max_tile_bytes`, which tests use to force tiling).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = AnisotropicDiffusionParams::from_resolved(r)?;
    let (d, h, w) = input.dim();
    let Some(plan) = plan(&p, d)? else {
        return Ok(input.to_owned());
    };
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        exponential: u32::from(plan.exponential),
        inv_k2: plan.inv_k2,
        step: plan.step,
        wz: plan.wz,
        _pad: 0.0,
    };
    let halo = if plan.wz > 0.0 { p.iterations } else { 0 };
    let tile = tile_planes(ctx, (d, h, w), 1, halo, max_tile_bytes)?;
    let ntiles = d.div_ceil(tile) as u64;
    let total = ntiles * p.iterations as u64;
    in_tiles(input, (tile, halo, false), |sub| {
        let depth = sub.dim().0 as u32;
        diffuse(ctx, sub, Uniforms { depth, ..u }, p.iterations, ctl, total)
    })
}

fn diffuse(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    u: Uniforms,
    iterations: usize,
    ctl: &Control,
    progress_total: u64,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let kernel = ctx.kernel(
        "anisotropic_diffusion",
        WGSL,
        &[Binding::ReadOnly, Binding::ReadWrite, Binding::Uniform],
        &["main"],
    )?;
    super::on_device(ctx, input, |host| {
        let a = ctx.upload("ad.a", host);
        let b = ctx.storage("ad.b", host.len());
        let ub = ctx.uniform("ad.params", bytemuck::bytes_of(&u));
        let forward = ctx.bind(&kernel, "ad.a_to_b", &[&a, &b, &ub]);
        let backward = ctx.bind(&kernel, "ad.b_to_a", &[&b, &a, &ub]);
        let wg = (groups(w, WG), groups(h, WG), d as u32);
        super::iterate(
            ctx,
            ctl,
            (iterations, ITERATIONS_PER_SUBMIT),
            progress_total,
            |enc, first, count| {
                for k in first..first + count {
                    let bg = if k.is_multiple_of(2) {
                        &forward
                    } else {
                        &backward
                    };
                    dispatch(enc, &kernel, "main", bg, wg);
                }
            },
            || Ok(false),
        )?;
        ctx.read_back(
            if iterations.is_multiple_of(2) { &a } else { &b },
            host.len(),
        )
    })
}
