//! GPU hosts, one module per method id, each beside its WGSL kernel.

use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::{Control, Volume, VolumeView};
use ndarray::{Axis, Slice};

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

/// The most window reads (output voxels times the values each reads) one submission of
/// a one-pass kernel may do. A display GPU's driver resets a dispatch that runs past about
/// 2 s (Windows' TDR), and a cancel waits for the submission in flight. One dispatch over
/// a whole job could not stay under either: a 51 x 51 x 21 median reads up to 1.8 M
/// values per voxel, 10^14 on a 1024 x 1024 x 64 stack. 2^28 reads are milliseconds on a
/// discrete GPU and well under a second on an integrated one.
const BAND_READS: u64 = 1 << 28;

/// A one-pass kernel (one invocation per output voxel; bindings: source, destination,
/// uniform) and what tiling it needs.
pub struct OnePass<'a> {
    /// Identifies the compiled pipeline: one name per entry point.
    pub name: &'static str,
    /// The entry point in `wgsl`.
    pub entry: &'static str,
    /// The kernel's source.
    pub wgsl: &'a str,
    /// How far an output voxel's window reaches along z and along y.
    pub reach: (usize, usize),
    /// Values one output voxel reads (its window, times the passes over it).
    pub reads_per_voxel: u64,
    /// The uniform block for a tile or band of the given depth and height.
    pub uniforms: &'a dyn Fn(u32, u32) -> Vec<u8>,
}

/// Runs a one-pass kernel over a volume in tiles of whole planes that fit the device's
/// storage-binding limit (or `max_tile_bytes`, which tests use to force tiling), each in
/// bands of rows of at most 2^28 window reads, one submission each, with a cancel
/// check between them. Tiles and bands carry their window's reach of real neighbours on
/// both sides, so that the kernel's own border rule only ever applies at the volume's
/// true edges and they join exactly. A single plane (plus halo) beyond the limit is
/// refused with `TooLarge`, and `crate::run` then uses the CPU.
///
/// # Errors
/// [`GpuError`] on any device failure; `Cancelled` between bands.
pub fn per_pixel_tiled(
    ctx: &GpuContext,
    kernel: &OnePass<'_>,
    input: VolumeView<'_>,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let k = kernel;
    #[cfg(not(test))]
    let band_reads = BAND_READS;
    #[cfg(test)]
    let band_reads = tests::BAND_READS.get();
    let (d, _, w) = input.dim();
    let (reach_z, reach_y) = k.reach;
    let tile = tile_planes(ctx, input.dim(), 1, reach_z, max_tile_bytes)?;
    let in_bands = |sub: VolumeView<'_>| {
        let (sd, sh, _) = sub.dim();
        let one = |band: VolumeView<'_>| {
            ctl.checkpoint()?;
            #[cfg(test)]
            tests::BANDS.set(tests::BANDS.get() + 1);
            let (bd, bh, _) = band.dim();
            per_pixel(
                ctx,
                k.name,
                k.entry,
                k.wgsl,
                band,
                &(k.uniforms)(bd as u32, bh as u32),
            )
        };
        let row_reads = (sd * w) as u64 * k.reads_per_voxel.max(1);
        // Rows of output per band beside the halo's, which is read and computed again:
        // at least as many as the halo has, so that no band does over three times its share.
        let rows = ((band_reads / row_reads.max(1)) as usize)
            .saturating_sub(2 * reach_y)
            .max(reach_y)
            .max(1);
        if rows >= sh {
            one(sub)
        } else {
            in_tiles_along(Axis(1), sub, rows, reach_y, one)
        }
    };
    if tile >= d {
        return in_bands(input);
    }
    in_tiles(input, tile, reach_z, in_bands)
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
    f: impl FnMut(VolumeView<'_>) -> Result<Volume, GpuError>,
) -> Result<Volume, GpuError> {
    in_tiles_along(Axis(0), input, tile, halo_z, f)
}

/// [`in_tiles`] along any axis: tiles of `tile` planes (axis 0), rows (1) or columns (2).
fn in_tiles_along(
    axis: Axis,
    input: VolumeView<'_>,
    tile: usize,
    halo: usize,
    mut f: impl FnMut(VolumeView<'_>) -> Result<Volume, GpuError>,
) -> Result<Volume, GpuError> {
    let n = input.len_of(axis);
    let mut out = Volume::zeros(input.dim());
    for i0 in (0..n).step_by(tile.max(1)) {
        let i1 = (i0 + tile).min(n);
        let (a, b) = (i0.saturating_sub(halo), (i1 + halo).min(n));
        let res = f(input.slice_axis(axis, Slice::from(a..b)))?;
        out.slice_axis_mut(axis, Slice::from(i0..i1))
            .assign(&res.slice_axis(axis, Slice::from(i0 - a..i1 - a)));
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

#[cfg(test)]
mod tests {
    use super::BAND_READS as DEFAULT;
    use denoisekit_core::phantom::{PhantomSpec, phantom};
    use denoisekit_core::{Control, ParamValues};
    use std::cell::Cell;

    thread_local! {
        /// The band bound of this thread's one-pass jobs (tests force small bands).
        pub(super) static BAND_READS: Cell<u64> = const { Cell::new(DEFAULT) };
        /// Submissions of one-pass bands on this thread.
        pub(super) static BANDS: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn bands_of_rows_give_the_one_dispatch_result() {
        // Each band carries its window's reach of real rows on both sides, so every kept
        // pixel reads the same values in the same order as in one dispatch: bit for bit.
        let Some(ctx) = crate::context::test_context() else {
            return;
        };
        type Host = fn(
            &crate::GpuContext,
            denoisekit_core::VolumeView<'_>,
            &denoisekit_core::Resolved,
            &Control,
            Option<u64>,
        ) -> Result<denoisekit_core::Volume, crate::GpuError>;
        let plane = |shape| {
            phantom(&PhantomSpec {
                shape,
                seed: 21,
                ..Default::default()
            })
            .noisy
        };
        let (flat, stack) = (plane((1, 61, 37)), plane((3, 29, 23)));
        let cases: [(&str, Host, ParamValues); 6] = [
            ("bilateral", super::bilateral::run, ParamValues::new()),
            (
                "bilateral",
                super::bilateral::run,
                ParamValues::new().set("sigma_spatial_z", 1),
            ),
            // A window of 9 values (in registers) and one of 169 (by bisection).
            ("median", super::median::run, ParamValues::new()),
            (
                "median",
                super::median::run,
                ParamValues::new().set("radius", 6),
            ),
            // The planar entry point (its tiles of rows in workgroup memory) and the
            // general one.
            ("nl_means", super::nl_means::run, ParamValues::new()),
            (
                "nl_means",
                super::nl_means::run,
                ParamValues::new()
                    .set("patch_radius_z", 1)
                    .set("search_radius_z", 1),
            ),
        ];
        for (id, host, values) in cases {
            for img in [&flat, &stack] {
                let (_, resolved) = denoisekit_core::prepare(id, &img.view(), &values).unwrap();
                let run = |reads| {
                    BAND_READS.set(reads);
                    BANDS.set(0);
                    let out = host(ctx, img.view(), &resolved, &Control::new(), None).unwrap();
                    (out, BANDS.get())
                };
                let (whole, one) = run(u64::MAX);
                // A bound of one read: bands as high as the window's reach.
                let (banded, bands) = run(1);
                BAND_READS.set(DEFAULT);
                assert_eq!(one, 1, "{id} {values:?}: one dispatch");
                assert!(bands > 2, "{id} {values:?}: {bands} bands");
                assert!(
                    whole == banded,
                    "{id} {values:?} {:?}: bands differ",
                    img.dim()
                );
            }
        }
    }
}
