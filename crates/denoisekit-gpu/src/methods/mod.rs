//! GPU hosts, one module per method id, each beside its WGSL kernel.

use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::{Volume, VolumeView};

/// Declares a kernel's uniform block: the `#[repr(C)]` struct uploaded as its WGSL
/// `var<uniform>`, padded to 16 bytes. `wgsl` names the kernel's source; a test generated
/// beside the struct checks its fields (name, order, offset, type) and size against
/// naga's reflection of that source, so the two sides cannot drift. Fields whose names
/// start with `_` are padding: only the bytes they cover are compared.
macro_rules! uniforms {
    (
        wgsl = $wgsl:path;
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($fvis:vis $field:ident: $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($fvis $field: $ty),+
        }
        const _: () = assert!(size_of::<$name>().is_multiple_of(16));

        #[cfg(test)]
        #[test]
        fn uniforms_match_wgsl() {
            let fields = [$((stringify!($field), std::mem::offset_of!($name, $field), stringify!($ty))),+];
            $crate::methods::layout::check($wgsl, &fields, size_of::<$name>());
        }
    };
}

#[cfg(test)]
mod layout;

pub mod anisotropic_diffusion;
pub mod bilateral;
pub mod bm3d;
pub(crate) mod convolve;
pub mod fourier_filter;
pub mod gaussian;
pub mod median;
pub mod nl_means;
pub mod richardson_lucy;
pub mod spectral;
pub mod tikhonov;
pub mod total_variation;
pub mod zs_n2n;
pub mod zs_n2n_train;

const WG: u32 = 16;

/// One recorded dispatch of a multi-pass job, built once and replayed every iteration.
pub(crate) struct Pass {
    pub(crate) kernel: std::sync::Arc<crate::context::Kernel>,
    pub(crate) entry: &'static str,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) groups: (u32, u32, u32),
    /// The pass's own uniform buffer, kept alive with it.
    pub(crate) _uniform: wgpu::Buffer,
}

impl Pass {
    /// Records the pass into `enc`.
    pub(crate) fn record(&self, enc: &mut wgpu::CommandEncoder) {
        dispatch(enc, &self.kernel, self.entry, &self.bind_group, self.groups);
    }
}

/// Runs `job` on the input's values in (z, y, x) order inside the device's error scopes
/// and returns what it reads back (the same number of values) as a volume of the input's
/// shape: the upload-run-read-back frame every host shares.
///
/// # Errors
/// The first error of the scopes or of `job`.
pub(crate) fn on_device(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    job: impl FnOnce(&[f32]) -> Result<Vec<f32>, GpuError>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let host = input.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let out = ctx.scoped(|| job(host.as_slice().unwrap_or(&[])))??;
    denoisekit_core::volume_from_vec(d, h, w, out).map_err(|e| GpuError::Validation(e.to_string()))
}

/// Runs `iterations` steps of an iterative kernel in submissions of `per_submit`:
/// `record(enc, first, count)` records steps `first..first + count`. After each
/// submission the host waits for it (so that queued work, and with it a cancel's latency,
/// stays bounded), checks cancel, reports the steps done as progress out of
/// `progress_total`, and asks
/// `stop()` whether to end early.
///
/// # Errors
/// `Cancelled` (as [`GpuError::Job`]), device errors, and those of `stop`.
pub(crate) fn iterate(
    ctx: &GpuContext,
    ctl: &denoisekit_core::Control,
    (iterations, per_submit): (usize, usize),
    progress_total: u64,
    mut record: impl FnMut(&mut wgpu::CommandEncoder, usize, usize),
    mut stop: impl FnMut() -> Result<bool, GpuError>,
) -> Result<(), GpuError> {
    let mut done = 0;
    while done < iterations {
        ctl.checkpoint()?;
        let count = per_submit.min(iterations - done);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        record(&mut enc, done, count);
        let idx = ctx.queue.submit([enc.finish()]);
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: None,
            })
            .map_err(|e| GpuError::Map(e.to_string()))?;
        done += count;
        ctl.advance(count as u64, progress_total)?;
        if stop()? {
            break;
        }
    }
    Ok(())
}

/// The buffers a chain of `n` passes from `x` ends in `y` reads and writes, alternating
/// with the scratch `s`: `[x, …, s, y]`. `s` may be `x` when `n` is odd (the input is then
/// overwritten).
pub(crate) fn chain<'a>(
    n: usize,
    x: &'a wgpu::Buffer,
    y: &'a wgpu::Buffer,
    s: &'a wgpu::Buffer,
) -> Vec<&'a wgpu::Buffer> {
    let mut seq = vec![x];
    seq.extend((1..=n).map(|k| if (n - k).is_multiple_of(2) { y } else { s }));
    seq
}

/// Runs a one-pass kernel over a volume in tiles of whole planes that fit the device's
/// storage-binding limit (or `max_tile_bytes`, which tests use to force tiling). Each tile
/// carries `halo_z` planes of real neighbours on both sides, so that the kernel's own
/// replicate rule only ever applies at the volume's true edges and tiles join exactly.
/// `uniforms` gets the tile's depth. A single plane (plus halo) beyond the limit is
/// refused with `TooLarge`, and `crate::run` then uses the CPU.
///
/// # Errors
/// [`GpuError`] on any device failure.
#[allow(clippy::too_many_arguments)] // one-pass kernels differ in exactly these
pub fn per_pixel_tiled(
    ctx: &GpuContext,
    name: &'static str,
    entry: &'static str,
    wgsl: &str,
    input: VolumeView<'_>,
    halo_z: usize,
    uniforms: &dyn Fn(u32) -> Vec<u8>,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let d = input.dim().0;
    let tile = tile_planes(ctx, input.dim(), 1, halo_z, max_tile_bytes)?;
    if tile >= d {
        return per_pixel(ctx, name, entry, wgsl, input, &uniforms(d as u32));
    }
    in_tiles(input, tile, halo_z, |sub| {
        per_pixel(ctx, name, entry, wgsl, sub, &uniforms(sub.dim().0 as u32))
    })
}

/// How many output planes one tile may hold so that its largest buffer (`floats_per_voxel`
/// floats per voxel of the tile plus `halo_z` planes on both sides) stays within the
/// device's storage-binding and buffer limits (or `max_tile_bytes`) and its depth within
/// the dispatch limit. The whole volume when it fits, whatever the halo.
///
/// # Errors
/// `TooLarge` when not even one plane with its halo fits.
pub fn tile_planes(
    ctx: &GpuContext,
    (d, h, w): (usize, usize, usize),
    floats_per_voxel: usize,
    halo_z: usize,
    max_tile_bytes: Option<u64>,
) -> Result<usize, GpuError> {
    let limit = ctx.buffer_limit(max_tile_bytes);
    let plane_bytes = (h * w * 4 * floats_per_voxel).max(1) as u64;
    let planes_fit = ((limit / plane_bytes) as usize)
        .min(ctx.limits.max_compute_workgroups_per_dimension as usize);
    if planes_fit >= d {
        return Ok(d.max(1));
    }
    if planes_fit < 2 * halo_z + 1 {
        return Err(GpuError::TooLarge(format!(
            "a {w}x{h} plane with {halo_z} halo planes on each side exceeds {limit} bytes"
        )));
    }
    Ok((planes_fit - 2 * halo_z).min(d).max(1))
}

/// Runs `f` on tiles of `tile` planes, each with up to `halo_z` real neighbouring planes
/// on both sides, and joins the tiles' own planes. `f` must treat a tile's first and last
/// planes as it treats the volume's; the halo keeps that rule away from the kept planes.
///
/// # Errors
/// The first error of `f`.
pub fn in_tiles(
    input: VolumeView<'_>,
    tile: usize,
    halo_z: usize,
    mut f: impl FnMut(VolumeView<'_>) -> Result<Volume, GpuError>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let mut out = Volume::zeros((d, h, w));
    for z0 in (0..d).step_by(tile.max(1)) {
        let z1 = (z0 + tile).min(d);
        let (a, b) = (z0.saturating_sub(halo_z), (z1 + halo_z).min(d));
        let res = f(input.slice(ndarray::s![a..b, .., ..]))?;
        out.slice_mut(ndarray::s![z0..z1, .., ..])
            .assign(&res.slice(ndarray::s![z0 - a..z1 - a, .., ..]));
    }
    Ok(out)
}

/// Runs a one-pass kernel (entry point `entry` of `wgsl`, one invocation per output
/// pixel, bindings: source, destination, uniform) over the whole volume in one dispatch.
/// `name` identifies the compiled pipeline: one name per entry point.
///
/// # Errors
/// [`GpuError`] on any device failure.
pub fn per_pixel(
    ctx: &GpuContext,
    name: &'static str,
    entry: &'static str,
    wgsl: &str,
    input: VolumeView<'_>,
    uniforms: &[u8],
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let bytes = (d * h * w * 4) as u64;
    if bytes > ctx.buffer_limit(None) {
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
        &[entry],
    )?;
    on_device(ctx, input, |host| {
        let a = ctx.upload(name, host);
        let b = ctx.storage(name, host.len());
        let ub = ctx.uniform(name, uniforms);
        let bg = ctx.bind(&kernel, name, &[&a, &b, &ub]);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        dispatch(
            &mut enc,
            &kernel,
            entry,
            &bg,
            (groups(w, WG), groups(h, WG), d as u32),
        );
        ctx.queue.submit([enc.finish()]);
        ctx.read_back(&b, host.len())
    })
}
