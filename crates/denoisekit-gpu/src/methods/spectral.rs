//! Shared GPU host for the spectral methods (kernel: `spectral.wgsl`): DCT-II along each
//! axis, multiplication by the method's transfer function, DCT-III back, all in one
//! submission. The CPU filters the mirrored extension with FFTs, which is the same linear
//! operator, so both evaluate the same `denoisekit_core::spectral::Filter`.
//!
//! Cost: each transform is a direct sum, O(n) per value along an axis of length n
//! (2·(w + h) multiply-adds per pixel for a plane), which suits the GPU's arithmetic and
//! accepts any size. Planes filtered on their own are tiled freely; a z-coupled volume
//! must fit the device in one piece.

use super::{WG, in_tiles, tile_planes};
use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::spectral::Filter;
use denoisekit_core::{Control, Volume, VolumeView};

const WGSL: &str = include_str!("spectral.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniforms {
    width: u32,
    height: u32,
    depth: u32,
    axis: u32,
    inverse: u32,
    table_len: u32,
    _pad: [u32; 2],
}
const _: () = assert!(size_of::<Uniforms>().is_multiple_of(16));

/// `cos(π m / (2n))` for `m < 4n`: every cosine a DCT of length `n` needs.
fn cos_table(n: usize) -> Vec<f32> {
    (0..4 * n)
        .map(|m| (std::f64::consts::PI * m as f64 / (2 * n) as f64).cos() as f32)
        .collect()
}

/// Applies `filter` to `input` on the GPU.
///
/// # Errors
/// [`GpuError`] on any device failure; `TooLarge` when a plane, or a z-coupled volume,
/// exceeds the storage-binding limit (or `max_tile_bytes`).
pub fn apply(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    filter: &Filter,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let tile = tile_planes(ctx, (d, h, w), 1, 0, max_tile_bytes)?;
    if filter.use_z && tile < d {
        return Err(GpuError::TooLarge(format!(
            "a z-coupled spectral filter of {w}x{h}x{d} needs the whole volume on the GPU"
        )));
    }
    let kernel = ctx.kernel(
        "spectral",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadOnly,
            Binding::Uniform,
        ],
        &["dct", "multiply"],
    )?;
    let transfer = filter.dct_table((d, h, w));
    let (cos_x, cos_y) = (cos_table(w), cos_table(h));
    let cos_z = filter.use_z.then(|| cos_table(d));
    in_tiles(input, tile, 0, |sub| {
        ctl.checkpoint()
            .map_err(|_| GpuError::Map("cancelled".into()))?;
        let (d, h, w) = sub.dim();
        let host = sub.as_standard_layout();
        // Invariant: `as_standard_layout` yields a contiguous array.
        let host = host.as_slice().unwrap_or(&[]);
        let out = ctx.scoped(|| -> Result<Vec<f32>, GpuError> {
            let a = ctx.upload("spectral.a", host, wgpu::BufferUsages::COPY_SRC);
            let b = ctx.storage("spectral.b", host.len());
            let tx = ctx.upload("spectral.cos_x", &cos_x, wgpu::BufferUsages::empty());
            let ty = ctx.upload("spectral.cos_y", &cos_y, wgpu::BufferUsages::empty());
            let tz = cos_z
                .as_ref()
                .map(|c| ctx.upload("spectral.cos_z", c, wgpu::BufferUsages::empty()));
            let tt = ctx.upload("spectral.transfer", &transfer, wgpu::BufferUsages::empty());
            // (entry, axis, inverse, table)
            let mut passes: Vec<(&str, u32, u32, &wgpu::Buffer)> =
                vec![("dct", 0, 0, &tx), ("dct", 1, 0, &ty)];
            if let Some(tz) = &tz {
                passes.push(("dct", 2, 0, tz));
            }
            passes.push(("multiply", 0, 0, &tt));
            if let Some(tz) = &tz {
                passes.push(("dct", 2, 1, tz));
            }
            passes.extend([("dct", 1, 1, &ty), ("dct", 0, 1, &tx)]);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let mut keep = Vec::new();
            for (k, (entry, axis, inverse, table)) in passes.iter().enumerate() {
                let u = Uniforms {
                    width: w as u32,
                    height: h as u32,
                    depth: d as u32,
                    axis: *axis,
                    inverse: *inverse,
                    table_len: transfer.len() as u32,
                    _pad: [0; 2],
                };
                let ub = ctx.uniform("spectral.params", bytemuck::bytes_of(&u));
                let (src, dst) = if k.is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
                let bg = ctx.bind(&kernel, entry, &[src, dst, table, &ub]);
                dispatch(
                    &mut enc,
                    &kernel,
                    entry,
                    &bg,
                    (groups(w, WG), groups(h, WG), d as u32),
                );
                keep.push((ub, bg));
            }
            ctx.queue.submit([enc.finish()]);
            let result = if passes.len().is_multiple_of(2) { &a } else { &b };
            ctx.read_back(result, host.len())
        })??;
        denoisekit_core::volume_from_vec(d, h, w, out)
            .map_err(|e| GpuError::Validation(e.to_string()))
    })
}
