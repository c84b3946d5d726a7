//! GPU hosts, one module per method id, each beside its WGSL kernel.

use crate::context::{Binding, GpuContext, groups};
use crate::error::GpuError;
use denoisekit_core::{Volume, VolumeView};

pub mod bilateral;
pub mod gaussian;
pub mod nl_means;

const WG: u32 = 16;

/// Runs a one-pass kernel over a volume in tiles of whole planes that fit the device's
/// storage-binding limit (or `max_tile_bytes`, which tests use to force tiling). Each tile
/// carries `halo_z` planes of real neighbours on both sides, so that the kernel's own
/// replicate rule only ever applies at the volume's true edges and tiles join exactly.
/// `uniforms` gets the tile's depth. A single plane (plus halo) beyond the limit is
/// refused with `TooLarge`, and `crate::run` then uses the CPU.
///
/// # Errors
/// [`GpuError`] on any device failure.
pub fn per_pixel_tiled(
    ctx: &GpuContext,
    name: &'static str,
    wgsl: &str,
    input: VolumeView<'_>,
    halo_z: usize,
    uniforms: &dyn Fn(u32) -> Vec<u8>,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let limit = max_tile_bytes
        .unwrap_or(u64::MAX)
        .min(ctx.limits.max_storage_buffer_binding_size)
        .min(ctx.limits.max_buffer_size);
    let planes_fit = ((limit / (h * w * 4).max(1) as u64) as usize)
        .min(ctx.limits.max_compute_workgroups_per_dimension as usize);
    if planes_fit < 2 * halo_z + 1 {
        return Err(GpuError::TooLarge(format!(
            "a {w}x{h} plane with {halo_z} halo planes on each side exceeds {limit} bytes"
        )));
    }
    let tile = (planes_fit - 2 * halo_z).min(d);
    if tile >= d {
        return per_pixel(ctx, name, wgsl, input, &uniforms(d as u32));
    }
    let mut out = Volume::zeros((d, h, w));
    for z0 in (0..d).step_by(tile) {
        let z1 = (z0 + tile).min(d);
        let (a, b) = (z0.saturating_sub(halo_z), (z1 + halo_z).min(d));
        let sub = input.slice(ndarray::s![a..b, .., ..]);
        let res = per_pixel(ctx, name, wgsl, sub, &uniforms((b - a) as u32))?;
        out.slice_mut(ndarray::s![z0..z1, .., ..])
            .assign(&res.slice(ndarray::s![z0 - a..z1 - a, .., ..]));
    }
    Ok(out)
}

/// Runs a one-pass kernel (`main`, one invocation per output pixel, bindings: source,
/// destination, uniform) over the whole volume in one dispatch.
///
/// # Errors
/// [`GpuError`] on any device failure.
pub fn per_pixel(
    ctx: &GpuContext,
    name: &'static str,
    wgsl: &str,
    input: VolumeView<'_>,
    uniforms: &[u8],
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let bytes = (d * h * w * 4) as u64;
    if bytes
        > ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size)
    {
        return Err(GpuError::TooLarge(format!(
            "{bytes} bytes exceed the device's storage binding limit"
        )));
    }
    if d as u64 > ctx.limits.max_compute_workgroups_per_dimension as u64 {
        return Err(GpuError::TooLarge(format!(
            "{d} planes exceed the dispatch limit"
        )));
    }
    let kernel = ctx.kernel(
        name,
        wgsl,
        &[Binding::ReadOnly, Binding::ReadWrite, Binding::Uniform],
        &["main"],
    )?;
    let host = input.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let host = host.as_slice().unwrap_or(&[]);
    let out = ctx.scoped(|| -> Result<Vec<f32>, GpuError> {
        let a = ctx.upload(name, host, wgpu::BufferUsages::empty());
        let b = ctx.storage(name, host.len());
        let ub = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: uniforms,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &kernel.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: a.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: b.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: ub.as_entire_binding(),
                },
            ],
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            // Invariant: "main" was compiled with the kernel.
            pass.set_pipeline(&kernel.pipelines["main"]);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups(w, WG), groups(h, WG), d as u32);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.read_back(&b, host.len())
    })??;
    denoisekit_core::volume_from_vec(d, h, w, out).map_err(|e| GpuError::Validation(e.to_string()))
}
