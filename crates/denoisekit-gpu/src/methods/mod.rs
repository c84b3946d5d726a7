//! GPU hosts, one module per method id, each beside its WGSL kernel.

use crate::context::{Binding, GpuContext, dispatch, groups};
use crate::error::GpuError;
use denoisekit_core::tiling::{Span, spans};
use denoisekit_core::{Control, Volume, VolumeView};

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

/// Implements [`Placed`] for a one-pass kernel's uniform block, whose `depth`, `x0`, `y0`
/// and `z0` fields a box sets.
macro_rules! placed {
    ($name:ident) => {
        impl super::Placed for $name {
            fn placed(self, depth: u32, [x0, y0, z0]: [u32; 3]) -> Self {
                let mut u = self;
                (u.depth, u.x0, u.y0, u.z0) = (depth, x0, y0, z0);
                u
            }
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
/// a one-pass kernel may do, where a box of one workgroup allows it. A display GPU's
/// driver resets a dispatch that runs past about 2 s (Windows' TDR), and a cancel waits
/// for the submission in flight. One dispatch over a whole job could not stay under
/// either: a 51 x 51 x 21 median reads up to 1.8 M values per voxel, 10^14 on a
/// 1024 x 1024 x 64 stack. 2^32 reads are 43 ms at 10^11 reads/s (an integrated GPU), the
/// order of BM3D's bands (2^26 candidate patches of 64 values), and still boxes of
/// thousands of workgroups for the usual windows (a 13 x 13 median on 2048-wide planes:
/// 368 rows, 2944 workgroups), so that a large GPU stays full.
const BAND_READS: u64 = 1 << 32;
/// The most workgroups a dispatch may have along x or y on every device (WebGPU's
/// default `max_compute_workgroups_per_dimension`).
const MAX_GROUPS: usize = 65535;

/// A one-pass kernel's uniform block, set per box.
pub trait Placed: bytemuck::Pod {
    /// The block for a tile of `depth` planes and a box whose dispatch starts at `origin`
    /// (x, y, z; x and y multiples of the workgroup side).
    fn placed(self, depth: u32, origin: [u32; 3]) -> Self;
}

/// A one-pass kernel (one invocation per output voxel; bindings: source, destination,
/// uniform) and what its tiling needs.
pub struct OnePass<'a, U> {
    /// Identifies the compiled pipeline: one name per entry point.
    pub name: &'static str,
    /// The entry point in `wgsl`.
    pub entry: &'static str,
    /// The kernel's source.
    pub wgsl: &'a str,
    /// How far an output voxel's window reaches along z.
    pub reach_z: usize,
    /// Whether the window wraps around the volume's ends (a periodic border):
    /// [`denoisekit_core::BorderMode::wraps_in`].
    pub wraps: bool,
    /// Values one output voxel reads (its window, times the passes over it).
    pub reads_per_voxel: u64,
    /// The uniform block, placed per box.
    pub uniforms: U,
}

/// Runs a one-pass kernel over a volume in tiles of whole planes that fit the device's
/// storage-binding limit (or `max_tile_bytes`, which tests use to force tiling). Each tile
/// carries `reach_z` planes of real neighbours on both sides, so that the kernel's own
/// border rule only ever applies at the volume's true edges and tiles join exactly. A
/// single plane (plus halo) beyond the limit is refused with `TooLarge`, and `crate::run`
/// then uses the CPU. Within a tile, the output is computed in boxes of at most 2^32
/// window reads (a box is at least one workgroup, 16 x 16 pixels), one submission each
/// with a cancel check between them and its voxels reported as progress once done: every
/// box reads the whole tile, so the result is the one dispatch's.
///
/// # Errors
/// [`GpuError`] on any device failure; `Cancelled` between boxes.
pub fn per_pixel_tiled(
    ctx: &GpuContext,
    kernel: &OnePass<'_, impl Placed>,
    input: VolumeView<'_>,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    #[cfg(not(test))]
    let bound = BAND_READS;
    #[cfg(test)]
    let bound = tests::BAND_READS.get();
    let (d, h, w) = input.dim();
    let tile = tile_planes(ctx, input.dim(), 1, kernel.reach_z, max_tile_bytes)?;
    // Progress counts the voxels computed, halo planes included, so that each box moves
    // it by its share of the job's device time.
    let tiles = (tile, kernel.reach_z, kernel.wraps);
    let planes: usize = spans(d, tile, kernel.reach_z, kernel.wraps)
        .flat_map(|s| s.read)
        .map(|r| r.len())
        .sum();
    let total = (planes * h * w) as u64;
    in_tiles(input, tiles, |sub| {
        per_pixel(ctx, kernel, sub, ctl, (bound, total))
    })
}

/// The boxes of output (origin and extent, both (z, y, x)) that cover a `(d, h, w)`
/// volume with at most `bound` reads each where a workgroup's 16 x 16 pixels allow:
/// whole planes when one plane is within it, else bands of rows, else tiles of a band;
/// none wider or higher than a dispatch allows.
fn boxes(
    (d, h, w): (usize, usize, usize),
    reads_per_voxel: u64,
    bound: u64,
) -> Vec<([usize; 3], [usize; 3])> {
    let side = WG as usize;
    let cap = MAX_GROUPS * side;
    let reads = reads_per_voxel.max(1);
    let plane = (h * w) as u64 * reads;
    let mut out = Vec::new();
    if plane <= bound && h <= cap && w <= cap {
        let planes = ((bound / plane.max(1)) as usize).clamp(1, d.max(1));
        for z0 in (0..d).step_by(planes) {
            out.push(([z0, 0, 0], [planes.min(d - z0), h, w]));
        }
        return out;
    }
    let row = w as u64 * reads;
    let (rows, cols) = if row * side as u64 <= bound && w <= cap {
        (((bound / row) as usize / side * side).clamp(side, cap), w)
    } else {
        let cols = (bound / (side as u64 * reads)) as usize / side * side;
        (side, cols.clamp(side, cap))
    };
    for z0 in 0..d {
        for y0 in (0..h).step_by(rows) {
            for x0 in (0..w).step_by(cols) {
                out.push(([z0, y0, x0], [1, rows.min(h - y0), cols.min(w - x0)]));
            }
        }
    }
    out
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
/// on both sides (read around the volume's ends when `wrap`: a periodic border), and
/// joins the tiles' own planes. `f` must treat a tile's first and last planes as it
/// treats the volume's; the halo keeps that rule away from the kept planes.
///
/// # Errors
/// The first error of `f`.
pub fn in_tiles(
    input: VolumeView<'_>,
    (tile, halo_z, wrap): (usize, usize, bool),
    mut f: impl FnMut(VolumeView<'_>) -> Result<Volume, GpuError>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    if tile >= d {
        return f(input);
    }
    let mut out = Volume::zeros((d, h, w));
    for Span { read, skip, keep } in spans(d, tile, halo_z, wrap) {
        let parts: Vec<_> = read
            .into_iter()
            .map(|r| input.slice(ndarray::s![r, .., ..]))
            .collect();
        let res = match parts.as_slice() {
            [one] => f(one.view())?,
            _ => {
                let joined = ndarray::concatenate(ndarray::Axis(0), &parts)
                    .map_err(|e| GpuError::Validation(e.to_string()))?;
                f(joined.view())?
            }
        };
        out.slice_mut(ndarray::s![keep.clone(), .., ..])
            .assign(&res.slice(ndarray::s![skip..skip + keep.len(), .., ..]));
    }
    Ok(out)
}

/// Runs a one-pass kernel over the whole volume held on the device, in the boxes of
/// [`boxes`] of at most `bound` reads: one submission each, with a cancel check before
/// each, and each box's voxels reported as done (of the job's `total`) once it finished.
///
/// # Errors
/// [`GpuError`] on any device failure; `Cancelled` between boxes.
fn per_pixel(
    ctx: &GpuContext,
    k: &OnePass<'_, impl Placed>,
    input: VolumeView<'_>,
    ctl: &Control,
    (bound, total): (u64, u64),
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
        k.name,
        k.wgsl,
        &[Binding::ReadOnly, Binding::ReadWrite, Binding::Uniform],
        &[k.entry],
    )?;
    let boxes = boxes((d, h, w), k.reads_per_voxel, bound);
    on_device(ctx, input, |host| {
        let a = ctx.upload(k.name, host);
        let b = ctx.storage(k.name, host.len());
        let mut in_flight = None;
        for &([z0, y0, x0], [bd, bh, bw]) in &boxes {
            ctl.checkpoint()?;
            #[cfg(test)]
            tests::BOXES.set(tests::BOXES.get() + 1);
            let origin = [x0 as u32, y0 as u32, z0 as u32];
            let ub = ctx.uniform(
                k.name,
                bytemuck::bytes_of(&k.uniforms.placed(d as u32, origin)),
            );
            let bg = ctx.bind(&kernel, k.name, &[&a, &b, &ub]);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let grid = (groups(bw, WG), groups(bh, WG), bd as u32);
            dispatch(&mut enc, &kernel, k.entry, &bg, grid);
            // One box queued behind the one running: the device never waits for the host,
            // and a cancel for at most two boxes.
            let idx = ctx.queue.submit([enc.finish()]);
            let voxels = (bd * bh * bw) as u64;
            if let Some((previous, done)) = in_flight.replace((idx, voxels)) {
                ctx.device
                    .poll(wgpu::PollType::Wait {
                        submission_index: Some(previous),
                        timeout: None,
                    })
                    .map_err(|e| GpuError::Map(e.to_string()))?;
                ctl.advance(done, total)?;
            }
        }
        let out = ctx.read_back(&b, host.len())?;
        if let Some((_, done)) = in_flight {
            ctl.advance(done, total)?;
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::BAND_READS as DEFAULT;
    use denoisekit_core::phantom::{PhantomSpec, phantom};
    use denoisekit_core::{Control, ParamValues};
    use std::cell::Cell;

    thread_local! {
        /// The box bound of this thread's one-pass jobs (tests force small boxes).
        pub(super) static BAND_READS: Cell<u64> = const { Cell::new(DEFAULT) };
        /// Submissions of one-pass boxes on this thread.
        pub(super) static BOXES: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn boxes_cover_the_output_once_within_the_bound() {
        // (shape, reads per voxel, bound, expected box extent)
        let cases = [
            ((7, 30, 40), 10, 30 * 40 * 10 * 3, [3, 30, 40]),
            ((2, 100, 40), 10, 40 * 10 * 40, [1, 32, 40]),
            ((2, 50, 300), 1000, 16 * 1000 * 40, [1, 16, 32]),
            ((1, 20, 20), 1 << 40, 1, [1, 16, 16]),
            // Wider than a dispatch's workgroups reach.
            ((1, 1, 1_100_000), 1, u64::MAX, [1, 1, 65535 * 16]),
        ];
        for (shape, reads, bound, extent) in cases {
            let boxes = super::boxes(shape, reads, bound);
            let (d, h, w) = shape;
            let mut hits = vec![0u8; d * h * w];
            for ([z0, y0, x0], [bd, bh, bw]) in &boxes {
                assert!(y0 % 16 == 0 && x0 % 16 == 0, "{shape:?}: origin");
                for z in *z0..z0 + bd {
                    for y in *y0..y0 + bh {
                        for x in *x0..x0 + bw {
                            hits[(z * h + y) * w + x] += 1;
                        }
                    }
                }
            }
            assert!(hits.iter().all(|&n| n == 1), "{shape:?}: {boxes:?}");
            assert_eq!(boxes[0].1, extent, "{shape:?}");
        }
    }

    #[test]
    fn boxes_give_the_one_dispatch_result() {
        // Every box reads the whole tile on the device, so its pixels are the one
        // dispatch's bit for bit, borders included (a periodic median wraps to the far
        // edge, which no band of rows holds).
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
        let scene = |shape| {
            phantom(&PhantomSpec {
                shape,
                seed: 21,
                ..Default::default()
            })
            .noisy
        };
        let (flat, stack) = (scene((1, 61, 37)), scene((3, 29, 23)));
        let cases: [(&str, Host, ParamValues); 7] = [
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
                ParamValues::new()
                    .set("radius", 6)
                    .set("border", "periodic"),
            ),
            (
                "median",
                super::median::run,
                ParamValues::new()
                    .set("radius", 2)
                    .set("radius_z", 1)
                    .set("border", "periodic"),
            ),
            // The planar entry point (its tiles in workgroup memory) and the general one.
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
                let run = |bound| {
                    BAND_READS.set(bound);
                    BOXES.set(0);
                    let out = host(ctx, img.view(), &resolved, &Control::new(), None);
                    BAND_READS.set(DEFAULT);
                    (out.unwrap(), BOXES.get())
                };
                let (whole, one) = run(u64::MAX);
                // A bound of one read: boxes of one workgroup.
                let (boxed, boxes) = run(1);
                let (d, h, w) = img.dim();
                assert_eq!(one, 1, "{id} {values:?}: one dispatch");
                assert_eq!(
                    boxes,
                    d * h.div_ceil(16) * w.div_ceil(16),
                    "{id} {values:?}"
                );
                assert!(
                    whole == boxed,
                    "{id} {values:?} {:?}: boxes differ",
                    img.dim()
                );
            }
        }
    }

    /// A 5 x 29 x 23 phantom stack, and the bytes of one of its planes.
    fn stack(seed: u64) -> denoisekit_core::Volume {
        phantom(&PhantomSpec {
            shape: (5, 29, 23),
            seed,
            ..Default::default()
        })
        .noisy
    }
    const PLANE: u64 = 29 * 23 * 4;

    #[test]
    fn tiles_of_a_periodic_median_wrap_their_halo() {
        let Some(ctx) = crate::context::test_context() else {
            return;
        };
        let img = stack(23);
        // radius_z 1 in tiles of one plane (three planes' bytes with the halo), and
        // radius_z 2 in tiles of one (five planes, as many as the stack has).
        for (rz, bytes) in [(1, 3 * PLANE), (2, 5 * PLANE)] {
            let values = ParamValues::new()
                .set("radius", 1)
                .set("radius_z", rz)
                .set("border", "periodic");
            let (_, r) = denoisekit_core::prepare("median", &img.view(), &values).unwrap();
            let run = |bytes| super::median::run(ctx, img.view(), &r, &Control::new(), bytes);
            assert!(
                run(None).unwrap() == run(Some(bytes)).unwrap(),
                "radius_z {rz}"
            );
        }
    }

    #[test]
    fn each_box_reports_its_progress_and_tiles_add_up_to_one() {
        let Some(ctx) = crate::context::test_context() else {
            return;
        };
        let img = stack(22);
        let values = ParamValues::new().set("radius", 1).set("radius_z", 1);
        let (_, resolved) = denoisekit_core::prepare("median", &img.view(), &values).unwrap();
        // Whole, and in tiles of one plane with a halo plane on both sides (three planes'
        // bytes): five tiles of up to three planes, 13 planes computed.
        for (max_tile_bytes, planes) in [(None, 5), (Some(3 * PLANE), 13)] {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            let ctl = Control::with_progress(move |p| log.lock().unwrap().push(p));
            BAND_READS.set(1);
            BOXES.set(0);
            let out = super::median::run(ctx, img.view(), &resolved, &ctl, max_tile_bytes);
            BAND_READS.set(DEFAULT);
            out.unwrap();
            let seen = seen.lock().unwrap();
            // One report per box, each box a workgroup's 2 x 2 tiles of 16 x 16 pixels.
            assert_eq!(BOXES.get(), planes * 4, "{max_tile_bytes:?}");
            assert_eq!(seen.len(), BOXES.get(), "{max_tile_bytes:?}");
            assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");
            assert_eq!(seen.last(), Some(&1.0), "{max_tile_bytes:?}");
        }
    }
}
