//! GPU host for `bm3d` (kernel: `bm3d.wgsl`): both stages of each plane on the device,
//! the basic estimate never leaving it. The host centres each plane as the CPU does
//! ([`centred_plane`]), then per stage matches and filters bands of reference rows (one
//! submission each, so that cancel and progress stay responsive and the group lists stay
//! within a bounded buffer) and divides the aggregated sums.
//!
//! Groups are filtered one colour at a time: references far enough apart that their
//! groups share no pixel, so each colour adds to the sums without atomics and the sums'
//! order is fixed (a re-run gives the same pixels). The colours' parameters are records of
//! one uniform buffer, chosen per dispatch by offset.
//!
//! Tolerance: matching and filtering follow the CPU's arithmetic order, so the groups,
//! coefficients and weights are the CPU's up to the rounding of fused multiply-adds; the
//! aggregation adds in another order. Rounding-level differences can flip a coefficient
//! lying at the hard threshold or a candidate tying with the farthest kept match, which
//! moves a few pixels by a fraction of σ: the descriptor's tolerance bounds the worst
//! pixel, and `tests/gpu_matches_cpu.rs` also holds the PSNR to the CPU's.

use crate::context::{Binding, GpuContext, dispatch_at, groups};
use crate::error::GpuError;
use denoisekit_core::methods::bm3d::{
    Bm3dParams, K, LAMBDA_3D, N_WIENER, Plan, centred_plane, dct_matrix, grid, kaiser_window, plan,
    uncentre_plane,
};
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("bm3d.wgsl");

/// u32 per reference in the group lists: the group's size, then its positions.
const GROUP_STRIDE: usize = N_WIENER + 1;
/// The most bytes of group lists one band of reference rows may fill.
const GROUP_BYTES: u64 = 64 << 20;
/// The most candidate patches one band of reference rows may compare (a bound on one
/// submission's work), so that cancel and progress answer within a fraction of a second
/// and no dispatch nears the watchdog that resets a display GPU after about 2 s: at the
/// defaults on 2048 x 2048, six bands per stage.
const BAND_CANDIDATES: usize = 1 << 26;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        refs_x: u32,
        refs_y: u32,
        row0: u32,
        step: u32,
        search_radius: u32,
        n_max: u32,
        wiener: u32,
        band_rows: u32,
        color_x: u32,
        color_y: u32,
        period: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
        tau: f32,
        threshold: f32,
        noise_var: f32,
        sqrt_half: f32,
        dct: [[f32; 4]; 16],
        kaiser: [[f32; 4]; 16],
    }
}

/// Runs BM3D on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError`] on any device failure, `TooLarge` when a plane's sums exceed the
/// storage-binding limit (or `max_tile_bytes`, which tests use to force smaller bands).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = Bm3dParams::from_resolved(r)?;
    let Some(plan) = plan(input, &p)? else {
        return Ok(input.to_owned());
    };
    let (d, height, width) = input.dim();
    let (h, w) = (height.max(K), width.max(K));
    let limit = ctx.buffer_limit(max_tile_bytes);
    let sums = (2 * h * w * 4) as u64;
    if sums > limit {
        return Err(GpuError::TooLarge(format!(
            "BM3D's sums of a {width}x{height} plane take {sums} bytes, more than {limit}"
        )));
    }
    let (refs_x, refs_y) = (grid(w, plan.step).len(), grid(h, plan.step).len());
    let row_bytes = (refs_x * GROUP_STRIDE * 4) as u64;
    let window = (2 * plan.search_radius + 1).pow(2);
    let band = ((limit.min(GROUP_BYTES) / row_bytes) as usize)
        .min(BAND_CANDIDATES / (refs_x * window))
        .clamp(1, refs_y)
        .min(ctx.limits.max_compute_workgroups_per_dimension as usize);
    if refs_x > ctx.limits.max_compute_workgroups_per_dimension as usize {
        return Err(GpuError::TooLarge(format!(
            "{refs_x} reference columns exceed the dispatch limit"
        )));
    }
    let kernel = ctx.kernel(
        "bm3d",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Records,
        ],
        &["match_refs", "filter_groups", "normalize"],
    )?;
    // References of one colour are `period` grid steps apart: more than a group's reach
    // (search window plus patch) even where the last grid position is pulled in to fit.
    let period = (2 * plan.search_radius + K).div_ceil(plan.step) + 1;
    let stride = ctx.record_stride(size_of::<Uniforms>());
    // One band's records (matching and normalising, then one per colour), rewritten
    // before each band: at most 1 + 69² of them (search radius 30, step 1), 3.7 MB.
    let capacity = (1 + period.min(band) * period.min(refs_x)) as u64 * stride;
    let total = plan.progress_total(d, height);
    let mut out = Volume::zeros((d, height, width));
    ctx.scoped(|| -> Result<(), GpuError> {
        let noisy = ctx.storage("bm3d.noisy", h * w);
        let basic = ctx.storage("bm3d.basic", h * w);
        let acc = ctx.storage("bm3d.acc", 2 * h * w);
        let lists = ctx.storage("bm3d.groups", band * refs_x * GROUP_STRIDE);
        let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bm3d.params"),
            size: capacity,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bg = ctx.bind_records(
            &kernel,
            "bm3d",
            &[&noisy, &basic, &acc, &lists],
            (&params, size_of::<Uniforms>() as u64),
        );
        for z in 0..d {
            let (plane, mean) = centred_plane(input, z);
            ctx.queue
                .write_buffer(&noisy, 0, bytemuck::cast_slice(&plane));
            for stage in 0..plan.stages {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                enc.clear_buffer(&acc, 0, None);
                ctx.queue.submit([enc.finish()]);
                for row0 in (0..refs_y).step_by(band) {
                    ctl.checkpoint()?;
                    let rows = band.min(refs_y - row0);
                    let u = Uniforms {
                        period: period as u32,
                        ..uniforms(&plan, (w, h), (refs_x, refs_y), (row0, rows), stage == 1)
                    };
                    let mut records = bytemuck::bytes_of(&u).to_vec();
                    let mut colors = Vec::new();
                    for cy in 0..period.min(rows) {
                        for cx in 0..period.min(refs_x) {
                            records.resize(records.len().next_multiple_of(stride as usize), 0);
                            let at = records.len() as u32;
                            records.extend(bytemuck::bytes_of(&Uniforms {
                                color_x: cx as u32,
                                color_y: cy as u32,
                                ..u
                            }));
                            let n = |len: usize, c: usize| (len - c).div_ceil(period) as u32;
                            colors.push((at, n(refs_x, cx), n(rows, cy)));
                        }
                    }
                    // Ordered after the previous band's submission, before this one's.
                    ctx.queue.write_buffer(&params, 0, &records);
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    let grid = (groups(refs_x, 8), groups(rows, 8), 1);
                    dispatch_at(&mut enc, &kernel, "match_refs", (&bg, Some(0)), grid);
                    for (at, nx, ny) in colors {
                        dispatch_at(
                            &mut enc,
                            &kernel,
                            "filter_groups",
                            (&bg, Some(at)),
                            (nx, ny, 1),
                        );
                    }
                    let idx = ctx.queue.submit([enc.finish()]);
                    ctx.device
                        .poll(wgpu::PollType::Wait {
                            submission_index: Some(idx),
                            timeout: None,
                        })
                        .map_err(|e| GpuError::Map(e.to_string()))?;
                    ctl.advance(rows as u64, total)?;
                }
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                let grid = (groups(w, 16), groups(h, 16), 1);
                dispatch_at(&mut enc, &kernel, "normalize", (&bg, Some(0)), grid);
                ctx.queue.submit([enc.finish()]);
            }
            let result = ctx.read_back(&basic, h * w)?;
            uncentre_plane(&result, w, mean, out.slice_mut(ndarray::s![z, .., ..]));
        }
        Ok(())
    })??;
    Ok(out)
}

/// The kernel's parameters for the band of reference rows from `row0`, with the CPU's
/// thresholds ([`Plan::matching`]).
fn uniforms(
    plan: &Plan,
    (w, h): (usize, usize),
    (refs_x, refs_y): (usize, usize),
    (row0, band_rows): (usize, usize),
    wiener: bool,
) -> Uniforms {
    let sigma = plan.sigma;
    let (n_max, tau) = plan.matching(wiener);
    Uniforms {
        width: w as u32,
        height: h as u32,
        refs_x: refs_x as u32,
        refs_y: refs_y as u32,
        row0: row0 as u32,
        step: plan.step as u32,
        search_radius: plan.search_radius as u32,
        n_max: n_max as u32,
        wiener: u32::from(wiener),
        band_rows: band_rows as u32,
        color_x: 0,
        color_y: 0,
        period: 1,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
        tau,
        threshold: LAMBDA_3D * sigma,
        noise_var: sigma * sigma,
        sqrt_half: std::f32::consts::FRAC_1_SQRT_2,
        dct: bytemuck::cast(dct_matrix()),
        kaiser: bytemuck::cast(kaiser_window()),
    }
}

#[cfg(test)]
mod tests {
    /// The kernel's group size bound is the final estimate's largest group.
    #[test]
    fn the_kernel_holds_the_largest_group() {
        let line = super::WGSL
            .lines()
            .find(|l| l.starts_with("const N_MAX: u32 = "))
            .expect("bm3d.wgsl declares N_MAX");
        let n: usize = line
            .trim_start_matches("const N_MAX: u32 = ")
            .trim_end_matches("u;")
            .parse()
            .expect("a u32 literal");
        assert_eq!(n, super::N_WIENER);
    }
}
