//! Convolution with a measured PSF on the GPU (kernel: `convolve.wgsl`, FFTs from
//! `spectral.wgsl`), for Richardson–Lucy with `psf=image`: the same padding, transfer
//! function, adjoint and normalisation as the core's `Convolver`, whose layout it reads
//! (`denoisekit_core::convolve`). The padded block, the transfer function and the index
//! tables stay on the device for every iteration.
//!
//! Cost: per application, two FFTs of the padded block along each transformed axis
//! (O(log n) per value) and three passes over it (pad, multiply, crop or fold); memory,
//! the padded block (complex) and the transfer function of one block.

use super::{Pass, WG, spectral};
use crate::context::{Binding, GpuContext, Kernel, Pooled, groups};
use crate::error::GpuError;
use denoisekit_core::methods::richardson_lucy::{MeasuredPsf, UNSEEN};
use std::sync::Arc;

const WGSL: &str = include_str!("convolve.wgsl");

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        lx: u32,
        ly: u32,
        planes: u32,
        pad_x: u32,
        pad_y: u32,
        pad_z: u32,
        coupled: u32,
        embed: u32,
        adjoint: u32,
        ox: u32,
        oy: u32,
        oz: u32,
        src_x: u32,
        src_y: u32,
        src_z: u32,
        tgt_x: u32,
        tgt_y: u32,
        tgt_z: u32,
        has_norm: u32,
        scale: f32,
        unseen: f32,
    }
}

/// A measured PSF on the device, ready to apply `K` or `Kᵀ` to images of one shape.
pub(crate) struct Measured<'a> {
    kernel: Arc<Kernel>,
    fft_kernel: Arc<Kernel>,
    ffts: spectral::Ffts<'a>,
    /// The padded complex block.
    block: Pooled<'a>,
    otf: Pooled<'a>,
    index: Pooled<'a>,
    /// `Kᵀ 1` for an asymmetric PSF.
    norm: Option<Pooled<'a>>,
    u: Uniforms,
    /// The image's shape and the padded block's, (z, y, x).
    dims: (usize, usize, usize),
    block_dims: (usize, usize, usize),
}

impl<'a> Measured<'a> {
    /// `m` on the device for images of `dims`; `max_bytes` as the job's tile limit.
    ///
    /// # Errors
    /// `TooLarge` when the padded block exceeds the storage-binding limit (or
    /// `max_bytes`), 32-bit indexing or a dispatch's workgroups; [`GpuError`] on a device
    /// failure.
    pub(crate) fn new(
        ctx: &'a GpuContext,
        m: &MeasuredPsf,
        dims: (usize, usize, usize),
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        let c = &m.convolver;
        let coupled = c.couples_planes();
        let [az, ay, ax] = [c.axis(0), c.axis(1), c.axis(2)];
        let planes = if coupled { az.len } else { dims.0 };
        let block_dims = (planes, ay.len, ax.len);
        let block_floats = 2 * planes * ay.len * ax.len;
        let limit = ctx.buffer_limit(max_bytes);
        let max_groups = u64::from(ctx.limits.max_compute_workgroups_per_dimension);
        // The kernel indexes floats with u32, and dispatches one workgroup per plane.
        if (block_floats * 4) as u64 > limit
            || block_floats as u64 > u64::from(u32::MAX)
            || planes as u64 > max_groups
        {
            return Err(GpuError::TooLarge(format!(
                "the PSF's padded {}x{}x{planes} block needs {} bytes; the device allows {limit}",
                ax.len,
                ay.len,
                block_floats * 4
            )));
        }
        // An axis the PSF is one sample wide along is neither padded nor transformed.
        let (kd, kh, kw) = m.kernel.dim();
        let along = [kw > 1, kh > 1, coupled && kd > 1];
        let otf_dims = (
            if along[2] { planes } else { 1 },
            if along[1] { ay.len } else { 1 },
            if along[0] { ax.len } else { 1 },
        );
        // The wrapped kernel at index 0 of every axis it is not transformed along.
        let wrapped = c.wrapped(&m.kernel.view());
        let (bz, by, bx) = (c.block_planes(), ay.len, ax.len);
        debug_assert_eq!(wrapped.len(), bz * by * bx);
        let mut otf = Vec::with_capacity(2 * otf_dims.0 * otf_dims.1 * otf_dims.2);
        for z in 0..otf_dims.0 {
            for y in 0..otf_dims.1 {
                for x in 0..otf_dims.2 {
                    otf.extend([wrapped[(z * by + y) * bx + x], 0.0]);
                }
            }
        }
        // The index tables: each axis's sources, then its fold's starts and targets.
        let mut index: Vec<u32> = Vec::new();
        let mut tables = |a: &denoisekit_core::convolve::AxisLayout<'_>| -> (u32, u32) {
            let src = index.len() as u32;
            index.extend(a.source.iter().map(|&s| s as u32));
            let tgt = index.len() as u32;
            let mut at = tgt as usize + a.n + 1;
            for t in a.targets {
                index.push(at as u32);
                at += t.len();
            }
            index.push(at as u32);
            for t in a.targets {
                index.extend(t.iter().map(|&p| p as u32));
            }
            (src, tgt)
        };
        let (src_x, tgt_x) = tables(&ax);
        let (src_y, tgt_y) = tables(&ay);
        let (src_z, tgt_z) = tables(&az);
        let (d, h, w) = dims;
        let u = Uniforms {
            width: w as u32,
            height: h as u32,
            depth: d as u32,
            lx: ax.len as u32,
            ly: ay.len as u32,
            planes: planes as u32,
            pad_x: ax.pad as u32,
            pad_y: ay.pad as u32,
            pad_z: if coupled { az.pad as u32 } else { 0 },
            coupled: u32::from(coupled),
            embed: 0,
            adjoint: 0,
            ox: otf_dims.2 as u32,
            oy: otf_dims.1 as u32,
            oz: otf_dims.0 as u32,
            src_x,
            src_y,
            src_z,
            tgt_x,
            tgt_y,
            tgt_z,
            has_norm: u32::from(m.norm.is_some()),
            scale: (1.0 / (otf_dims.0 * otf_dims.1 * otf_dims.2) as f64) as f32,
            unseen: UNSEEN,
        };
        let kernel = ctx.kernel(
            "convolve",
            WGSL,
            &[
                Binding::ReadOnly,
                Binding::ReadWrite,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::Uniform,
            ],
            &["pad", "multiply", "crop", "fold"],
        )?;
        let fft_kernel = spectral::kernel(ctx)?;
        let otf = ctx.upload("convolve.otf", &otf);
        // The transfer function: the wrapped kernel's spectrum, by the same FFTs.
        let otf_ffts = spectral::Ffts::new(ctx, otf_dims, along, max_bytes)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for pass in otf_ffts.passes(ctx, &fft_kernel, &otf) {
            pass.record(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
        let norm = m.norm.as_ref().map(|n| {
            let n = n.as_standard_layout();
            // Invariant: `as_standard_layout` yields a contiguous array.
            ctx.upload("convolve.norm", n.as_slice().unwrap_or(&[]))
        });
        Ok(Self {
            kernel,
            fft_kernel,
            ffts: spectral::Ffts::new(ctx, block_dims, along, max_bytes)?,
            block: ctx.storage("convolve.block", block_floats),
            otf,
            index: ctx.upload("convolve.index", bytemuck::cast_slice(&index)),
            norm,
            u,
            dims,
            block_dims,
        })
    }

    /// The passes that write `K x` (or `Kᵀ x` when `adjoint`) into `y`.
    pub(crate) fn passes(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        adjoint: bool,
    ) -> Vec<Pass> {
        // A symmetric PSF's operator is its own transpose (and has no `Kᵀ 1` to divide by).
        let fold = adjoint && self.norm.is_some();
        let u = Uniforms {
            embed: u32::from(fold),
            adjoint: u32::from(fold),
            ..self.u
        };
        let (d, h, w) = self.dims;
        let (bz, by, bx) = self.block_dims;
        let on_block = (groups(bx, WG), groups(by, WG), bz as u32);
        let on_image = (groups(w, WG), groups(h, WG), d as u32);
        let values = self.norm.as_deref().unwrap_or(&self.otf);
        let pass = |entry: &'static str, src: &wgpu::Buffer, dst: &wgpu::Buffer, values, groups| {
            let ub = ctx.uniform("convolve.params", bytemuck::bytes_of(&u));
            let bind_group = ctx.bind(&self.kernel, entry, &[src, dst, &self.index, values, &ub]);
            Pass {
                kernel: self.kernel.clone(),
                entry,
                bind_group,
                groups,
                _uniform: ub,
            }
        };
        let mut out = vec![pass("pad", x, &self.block, &self.otf, on_block)];
        out.extend(self.ffts.passes(ctx, &self.fft_kernel, &self.block));
        out.push(pass("multiply", x, &self.block, &self.otf, on_block));
        out.extend(self.ffts.passes(ctx, &self.fft_kernel, &self.block));
        out.push(match fold {
            true => pass("fold", &self.block, y, values, on_image),
            false => pass("crop", &self.block, y, &self.otf, on_image),
        });
        out
    }
}
