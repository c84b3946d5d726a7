//! GPU host for `total_variation` (kernel: `total_variation.wgsl`): Chambolle's iteration
//! with the image, the dual variables and the stopping rule on the GPU. The host records
//! `ITERATIONS_PER_SUBMIT` iterations per submission and reads back only the groups'
//! stop flags between submissions (16 bytes per plane), never the image.
//!
//! Planes solved on their own (`z_weight` 0) each stop on their own, as on the CPU, so
//! tiles of planes need no halo. With z coupling the stop is decided on the whole volume's
//! energy: such a volume must fit the device in one piece, or the CPU runs it.
//!
//! Tolerance: the iterates are the CPU's (bit-identical on lavapipe for a fixed number of
//! iterations), but the energies are summed in f32 here and in f64 on the CPU, so a group
//! can stop a few iterations apart from the CPU when its energy change lies near the
//! threshold. At the default `tolerance` that moves the result by far less than the
//! stated 1e-4 of the range; at 1e-6 with slow z-coupled convergence the GPU stopped at
//! iteration 392 and the CPU ran all 400, 1.0e-4 of the range apart.

use super::{WG, in_tiles, tile_planes};
use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::methods::total_variation::{MIN_ITERATIONS, TotalVariationParams, plan};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("total_variation.wgsl");

/// Iterations recorded per submission; between submissions the host checks cancel and
/// whether every group has stopped.
const ITERATIONS_PER_SUBMIT: usize = 16;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        groups_x: u32,
        groups_y: u32,
        per_plane: u32,
        min_iterations: u32,
        _pad0: u32,
        tau: f32,
        k: f32,
        lambda: f32,
        wz: f32,
        tolerance: f32,
        _pad1: [f32; 3],
    }
}

/// Runs ROF total variation on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError`] on any device failure, `TooLarge` when a plane (or a z-coupled volume)
/// exceeds the storage-binding limit (or `max_tile_bytes`, which tests use to force
/// tiling).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = TotalVariationParams::from_resolved(r)?;
    let (d, h, w) = input.dim();
    let Some(step) = plan(&p, d) else {
        return Ok(input.to_owned());
    };
    let per_plane = step.wz == 0.0;
    let floats = if per_plane { 2 } else { 3 };
    let tile = tile_planes(ctx, (d, h, w), floats, 0, max_tile_bytes)?;
    if !per_plane && tile < d {
        return Err(GpuError::TooLarge(format!(
            "z-coupled total variation of {w}x{h}x{d} needs the whole volume on the GPU"
        )));
    }
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        groups_x: groups(w, WG),
        groups_y: groups(h, WG),
        per_plane: u32::from(per_plane),
        min_iterations: MIN_ITERATIONS as u32,
        _pad0: 0,
        tau: step.tau,
        k: step.ratio(),
        lambda: step.lambda,
        wz: step.wz,
        tolerance: p.tolerance as f32,
        _pad1: [0.0; 3],
    };
    let total = d.div_ceil(tile) as u64 * p.max_iterations as u64;
    in_tiles(input, (tile, 0, false), |sub| {
        let depth = sub.dim().0 as u32;
        solve(
            ctx,
            sub,
            Uniforms { depth, ..u },
            p.max_iterations,
            ctl,
            total,
        )
    })
}

fn solve(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    u: Uniforms,
    max_iterations: usize,
    ctl: &Control,
    progress_total: u64,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let n = d * h * w;
    let kernel = ctx.kernel(
        "total_variation",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Uniform,
        ],
        &["divergence", "update", "stop"],
    )?;
    let n_groups = if u.per_plane != 0 { d } else { 1 };
    let partials = (u.groups_x * u.groups_y) as usize * d;
    let dual_len = if u.per_plane != 0 { 2 * n } else { 3 * n };
    super::on_device(ctx, input, |host| {
        let f = ctx.upload("tv.f", host);
        let out = ctx.storage("tv.out", n);
        let dual = ctx.upload("tv.dual", &vec![0.0; dual_len]);
        let scratch = ctx.upload("tv.scratch", &vec![0.0; 4 * n_groups + 2 * partials]);
        let ub = ctx.uniform("tv.params", bytemuck::bytes_of(&u));
        let bg = ctx.bind(&kernel, "tv", &[&f, &out, &dual, &scratch, &ub]);
        let grid = (u.groups_x, u.groups_y, d as u32);
        super::iterate(
            ctx,
            ctl,
            (max_iterations, ITERATIONS_PER_SUBMIT),
            progress_total,
            |enc, _, count| {
                for _ in 0..count {
                    dispatch(enc, &kernel, "divergence", &bg, grid);
                    dispatch(enc, &kernel, "update", &bg, grid);
                    dispatch(enc, &kernel, "stop", &bg, (n_groups as u32, 1, 1));
                }
            },
            // [first, previous, stopped, iteration] per group.
            || {
                let state = ctx.read_back(&scratch, 4 * n_groups)?;
                Ok(state.chunks(4).all(|s| s[2] != 0.0))
            },
        )?;
        ctx.read_back(&out, n)
    })
}
