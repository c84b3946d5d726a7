//! Shared GPU host for the spectral methods (kernel: `spectral.wgsl`): DCT-II along each
//! axis, multiplication by the method's transfer function, DCT-III back, all in one
//! submission. The CPU filters the mirrored extension with FFTs, which is the same linear
//! operator, so both evaluate the same `denoisekit_core::spectral::Filter`.
//!
//! Cost: each transform is a direct sum, O(n) per value along an axis of length n
//! (2·(w + h) multiply-adds per pixel for a plane), which suits the GPU's arithmetic and
//! accepts any size. Planes filtered on their own are tiled freely; a z-coupled volume
//! must fit the device in one piece.

use super::{Pass, WG, chain, in_tiles, on_device, tile_planes};
use crate::context::{Binding, GpuContext, Pooled, groups};
use crate::error::GpuError;
use denoisekit_core::spectral::Filter;
use denoisekit_core::{Control, Volume, VolumeView};

const WGSL: &str = include_str!("spectral.wgsl");

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        axis: u32,
        inverse: u32,
        table_len: u32,
        _pad: [u32; 2],
    }
}

/// `cos(π m / (2n))` for `m < 4n`: every cosine a DCT of length `n` needs.
pub(crate) fn cos_table(n: usize) -> Vec<f32> {
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
    let kernel = kernel(ctx)?;
    let transfer = filter.dct_table((d, h, w));
    let (cos_x, cos_y) = (cos_table(w), cos_table(h));
    let cos_z = filter.use_z.then(|| cos_table(d));
    in_tiles(input, tile, 0, |sub| {
        ctl.checkpoint()?;
        let (d, h, w) = sub.dim();
        on_device(ctx, sub, |host| {
            let a = ctx.upload("spectral.a", host);
            let b = ctx.storage("spectral.b", host.len());
            let tables = Tables::new(
                ctx,
                filter.use_z,
                &transfer,
                &cos_x,
                &cos_y,
                cos_z.as_deref(),
            );
            // An odd number of passes: the input buffer can serve as the scratch.
            let passes = passes(ctx, &kernel, (d, h, w), &tables, &a, &b, &a);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            passes.iter().for_each(|p| p.record(&mut enc));
            ctx.queue.submit([enc.finish()]);
            ctx.read_back(&b, host.len())
        })
    })
}

/// The kernel, compiled once per process.
pub(crate) fn kernel(ctx: &GpuContext) -> Result<std::sync::Arc<crate::context::Kernel>, GpuError> {
    ctx.kernel(
        "spectral",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadOnly,
            Binding::Uniform,
        ],
        &["dct", "multiply"],
    )
}

/// The device-side tables of one filter: cosines per transformed axis and the transfer.
pub(crate) struct Tables<'a> {
    x: Pooled<'a>,
    y: Pooled<'a>,
    z: Option<Pooled<'a>>,
    transfer: Pooled<'a>,
    transfer_len: usize,
}

impl<'a> Tables<'a> {
    /// Uploads the tables (`cos_z` only when the filter couples planes).
    pub(crate) fn new(
        ctx: &'a GpuContext,
        use_z: bool,
        transfer: &[f32],
        cos_x: &[f32],
        cos_y: &[f32],
        cos_z: Option<&[f32]>,
    ) -> Self {
        let up = |label, data: &[f32]| ctx.upload(label, data);
        Self {
            x: up("spectral.cos_x", cos_x),
            y: up("spectral.cos_y", cos_y),
            z: cos_z.filter(|_| use_z).map(|c| up("spectral.cos_z", c)),
            transfer: up("spectral.transfer", transfer),
            transfer_len: transfer.len(),
        }
    }

    /// Tables for `filter` on a `(d, h, w)` block.
    pub(crate) fn for_filter(
        ctx: &'a GpuContext,
        filter: &Filter,
        (d, h, w): (usize, usize, usize),
    ) -> Self {
        let cos_z = filter.use_z.then(|| cos_table(d));
        Self::new(
            ctx,
            filter.use_z,
            &filter.dct_table((d, h, w)),
            &cos_table(w),
            &cos_table(h),
            cos_z.as_deref(),
        )
    }
}

/// The passes that filter `x` into `y` (DCT per axis, multiply, inverse DCT per axis in
/// reverse order), alternating with the scratch `s`; always an odd number of passes.
pub(crate) fn passes(
    ctx: &GpuContext,
    kernel: &std::sync::Arc<crate::context::Kernel>,
    (d, h, w): (usize, usize, usize),
    t: &Tables<'_>,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: &wgpu::Buffer,
) -> Vec<Pass> {
    // (entry, axis, inverse, table)
    let (tx, ty, tt): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer) = (&t.x, &t.y, &t.transfer);
    let tz: Option<&wgpu::Buffer> = t.z.as_deref();
    let mut spec: Vec<(&'static str, u32, u32, &wgpu::Buffer)> =
        vec![("dct", 0, 0, tx), ("dct", 1, 0, ty)];
    if let Some(tz) = tz {
        spec.push(("dct", 2, 0, tz));
    }
    spec.push(("multiply", 0, 0, tt));
    if let Some(tz) = tz {
        spec.push(("dct", 2, 1, tz));
    }
    spec.extend([("dct", 1, 1, ty), ("dct", 0, 1, tx)]);
    let bufs = chain(spec.len(), x, y, s);
    spec.iter()
        .enumerate()
        .map(|(k, (entry, axis, inverse, table))| {
            let u = Uniforms {
                width: w as u32,
                height: h as u32,
                depth: d as u32,
                axis: *axis,
                inverse: *inverse,
                table_len: t.transfer_len as u32,
                _pad: [0; 2],
            };
            let ub = ctx.uniform("spectral.params", bytemuck::bytes_of(&u));
            let bind_group = ctx.bind(kernel, entry, &[bufs[k], bufs[k + 1], table, &ub]);
            Pass {
                kernel: kernel.clone(),
                entry,
                bind_group,
                groups: (groups(w, WG), groups(h, WG), d as u32),
                _uniform: ub,
            }
        })
        .collect()
}
