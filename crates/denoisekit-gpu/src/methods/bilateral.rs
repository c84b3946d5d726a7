//! GPU host for `bilateral` (kernel: `bilateral.wgsl`): one dispatch over the volume.
//!
//! Volumes larger than the device's storage-binding limit are refused with
//! `GpuError::TooLarge`, and `run` then computes them on the CPU (plane tiling with a z
//! halo, as for the Gaussian, is still to come).

use crate::context::{Binding, GpuContext, groups};
use crate::error::GpuError;
use denoisekit_core::methods::bilateral::BilateralParams;
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("bilateral.wgsl");
const WG: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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
const _: () = assert!(size_of::<Uniforms>().is_multiple_of(16));

/// Runs the bilateral filter on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError`] on any device failure, `TooLarge` beyond the storage-binding limit.
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
) -> Result<Volume, GpuError> {
    let p = BilateralParams::from_resolved(r).map_err(|e| GpuError::Validation(e.to_string()))?;
    let (d, h, w) = input.dim();
    if p.sigma_spatial == 0.0 || p.sigma_range == 0.0 {
        return Ok(input.to_owned());
    }
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
    ctl.checkpoint()
        .map_err(|_| GpuError::Map("cancelled".into()))?;
    let radius = if p.radius == 0 {
        (3.0 * p.sigma_spatial).ceil() as usize
    } else {
        p.radius
    };
    let (radius_z, sz) = if d > 1 && p.sigma_spatial_z > 0.0 {
        ((3.0 * p.sigma_spatial_z).ceil() as usize, p.sigma_spatial_z)
    } else {
        (0, 1.0)
    };
    let cap = |x: f64| x.min(f32::MAX as f64) as f32;
    let u = Uniforms {
        width: w as u32,
        height: h as u32,
        depth: d as u32,
        radius: radius as u32,
        radius_z: radius_z as u32,
        inv_2ss: cap(1.0 / (2.0 * p.sigma_spatial * p.sigma_spatial)),
        inv_2sz: cap(1.0 / (2.0 * sz * sz)),
        inv_2sr: cap(1.0 / (2.0 * p.sigma_range * p.sigma_range)),
    };
    let kernel = ctx.kernel(
        "bilateral",
        WGSL,
        &[Binding::ReadOnly, Binding::ReadWrite, Binding::Uniform],
        &["main"],
    )?;
    let host = input.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let host = host.as_slice().unwrap_or(&[]);
    let out = ctx.scoped(|| -> Result<Vec<f32>, GpuError> {
        let a = ctx.upload("bilateral.src", host, wgpu::BufferUsages::empty());
        let b = ctx.storage("bilateral.dst", host.len());
        let ub = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("bilateral.params"),
                contents: bytemuck::bytes_of(&u),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("bilateral"),
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
