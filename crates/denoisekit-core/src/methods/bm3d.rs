//! BM3D: block matching and 3D collaborative filtering (Dabov et al. 2007), both stages,
//! with the parameters of Lebrun's IPOL description.
//!
//! For every reference patch (8×8, on a grid of step `step`), the most similar patches
//! within the search window are stacked into a 3D group. The group is transformed (2D DCT
//! of each patch, then an orthonormal Haar transform across the stack), which concentrates
//! the signal the patches share into few coefficients, and filtered:
//! 1. basic estimate: coefficients below 2.7 σ are set to zero (hard thresholding), up
//!    to 16 patches per group;
//! 2. final estimate: the groups are matched again on the basic estimate, up to 32 patches,
//!    and the noisy group is Wiener-filtered with the basic estimate's group spectrum as
//!    the signal power.
//!
//! Filtered patches are put back with a Kaiser window (β = 2) and a weight per group that
//! favours groups with little residual noise, and every pixel is the weighted mean of its
//! estimates. Stacks are processed plane by plane.
//!
//! Matching: distances are mean squared differences per pixel; a candidate is kept if it
//! is within 4σ² of the reference for the basic estimate (two independent noisy copies of
//! the same patch differ by 2σ² on average) and within σ² on the basic estimate for the
//! final one; the closest ones are kept, the reference itself always first. Group sizes
//! are rounded down to a power of two for the Haar transform. Lebrun states these
//! thresholds in 8-bit grey levels for σ ≤ 40 (2500 and 400); relative to σ they make the
//! method independent of the image's intensity scale.
//!
//! Differences from the reference implementation (the `bm3d` package, the benchmark peer):
//! the 2D transform of the first stage is the DCT instead of the biorthogonal 1.5
//! wavelet, and the default search window is 29×29 instead of 39×39, which is where much
//! of the speed comes from. On the benchmark's fluorescence scenes the PSNR is within 0.1
//! dB of the package's (above it at 1024²); on smooth synthetic blobs the package's
//! wavelet does 0.45 dB better (tests/data/README.md). Each plane is processed around its
//! mean, so the f32 transforms stay precise under a large camera offset and the result
//! commutes with offsets.
//!
//! Cost: O(N · window² · K / step) for matching (the squared differences are summed down
//! every column of each row of references), O(N · group / step²) patch transforms.
//! Support: global (the reference grid is anchored to the image corner).
//!
//! # References
//! K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, "Image denoising by sparse 3-D
//! transform-domain collaborative filtering", IEEE TIP 16, 2007, doi:10.1109/TIP.2007.901238.
//! M. Lebrun, "An analysis and implementation of the BM3D image denoising method", IPOL 2,
//! 2012, doi:10.5201/ipol.2012.l-bm3d.

use crate::border::BorderMode;
use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Unit,
};
use crate::error::Result;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::{Array3, s};
use rayon::prelude::*;

crate::choice_enum! {
    /// Which of BM3D's two stages run.
    pub enum Stages {
        /// The basic estimate, then Wiener filtering.
        Both = "both",
        /// The hard-thresholded basic estimate only.
        Hard = "hard",
    }
}

crate::method_params! {
    /// Parameters of [`denoise_bm3d`].
    pub struct Bm3dParams {
        /// Standard deviation of the noise, in grey levels. Default: estimated from the
        /// image. 0 leaves the image unchanged.
        sigma: f64 = ParamSpec::float("Noise sigma", 0.0, f64::INFINITY, DefaultValue::TimesNoise(1.0)).unit(Unit::Intensity).tunable(),
        /// Half-width of the search window for similar patches, in pixels. Larger finds
        /// more matches in repetitive images; cost grows with its square.
        search_radius: usize = ParamSpec::int("Search radius", 1, 30, DEFAULT_SEARCH_RADIUS as i64).unit(Unit::Pixels),
        /// Distance between reference patches, in pixels. Smaller is slower and slightly
        /// better.
        step: usize = ParamSpec::int("Reference step", 1, 8, DEFAULT_STEP as i64).unit(Unit::Pixels),
        /// both: basic estimate, then Wiener filtering (best); hard: the basic estimate only
        /// (about twice as fast).
        stages: Stages = ParamSpec::choice("Stages", Stages::NAMES, Stages::Both.name()),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "bm3d",
    name: "BM3D",
    category: "Patch-based",
    summary: "Block matching and 3D collaborative filtering, both stages (hard thresholding, \
              then Wiener). The strongest classical denoiser for Gaussian noise, especially \
              on textures and repeated structures; slower than NL-means.",
    references: &[
        "K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, Image denoising by sparse 3-D \
         transform-domain collaborative filtering, IEEE TIP 2007, doi:10.1109/TIP.2007.901238",
        "M. Lebrun, An analysis and implementation of the BM3D image denoising method, \
         IPOL 2012, doi:10.5201/ipol.2012.l-bm3d",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: Bm3dParams::SPECS,
    images: &[],
    gpu_tolerance: Some(1e-3),
    identity: &[("sigma", "0")],
    quick: &[("search_radius", "6")],
    support,
    memory: Memory {
        volume: 1.0,
        plane: 9.0,
    },
    memory_for: None,
    tune_loss: crate::descriptor::TuneLoss::Sure,
    run,
};

/// Default half-width of the search window.
pub const DEFAULT_SEARCH_RADIUS: usize = 14;
/// Default distance between reference patches.
pub const DEFAULT_STEP: usize = 3;
/// Patch side.
pub const K: usize = 8;
/// Most patches per group in the basic estimate.
pub const N_HARD: usize = 16;
/// Most patches per group in the final estimate.
pub const N_WIENER: usize = 32;
/// Hard threshold, in units of σ.
pub const LAMBDA_3D: f32 = 2.7;
/// Matching threshold of the basic estimate, in units of σ² (see the module docs).
pub const TAU_HARD: f32 = 4.0;
/// Matching threshold of the final estimate, in units of σ².
pub const TAU_WIENER: f32 = 1.0;
/// Reference rows per parallel task.
const BAND_REFS: usize = 16;
// The reference grid is anchored to the image corner, so no crop reproduces it.
use crate::descriptor::GLOBAL_SUPPORT as GLOBAL;

fn support(_: &Resolved) -> Result<[usize; 3]> {
    Ok([0, GLOBAL, GLOBAL])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_bm3d(v, &Bm3dParams::from_resolved(r)?, ctl)
}

/// BM3D; see the module docs.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_bm3d, Bm3dParams, Control, Stages};
/// use denoisekit_core::phantom::add_gaussian_noise;
/// use ndarray::Array3;
/// let clean = Array3::from_shape_fn((1, 48, 48), |(_, y, x)| if (x / 12 + y / 12) % 2 == 0 { 1.0 } else { 0.0 });
/// let noisy = add_gaussian_noise(&clean, 0.2, 1);
/// let p = Bm3dParams { sigma: 0.2, search_radius: 8, step: 3, stages: Stages::Both };
/// let out = denoise_bm3d(noisy.view(), &p, &Control::new()).unwrap();
/// let err = |a: &Array3<f32>| (a - &clean).mapv(|v| v * v).mean().unwrap();
/// assert!(err(&out) < 0.1 * err(&noisy));
/// ```
pub fn denoise_bm3d(input: VolumeView<'_>, p: &Bm3dParams, ctl: &Control) -> Result<Volume> {
    let Some(plan) = plan(input, p)? else {
        return Ok(input.to_owned());
    };
    let s = Shape::of(&input);
    let progress = Progress {
        ctl,
        total: plan.progress_total(s.depth, s.height),
        plane_done: None,
    };
    planes(input, None, &plan, &progress)
}

/// BM3D's second stage alone, with `pilot` (another denoiser's estimate of `input`, same
/// shape) in place of the basic estimate: groups are matched on the pilot and the noisy
/// groups are Wiener-filtered with the pilot's group spectra as the signal power, noise of
/// standard deviation `sigma`, at BM3D's default search window and step. The pilot is
/// returned where `sigma` is negligible against the image's range. Checks for
/// cancellation; does not advance `ctl`'s progress (the caller's job owns it) but calls
/// `plane_done` after each plane (also for each plane of a returned pilot), in which the
/// caller may.
///
/// # Errors
/// [`crate::DenoiseError::InvalidInput`] for a pilot of another shape, or an input or
/// pilot [`check_input`] refuses; [`crate::DenoiseError::Cancelled`]; what `plane_done`
/// returns.
pub fn wiener_with_pilot(
    input: VolumeView<'_>,
    pilot: VolumeView<'_>,
    sigma: f64,
    ctl: &Control,
    plane_done: &(dyn Fn() -> Result<()> + Sync),
) -> Result<Volume> {
    if pilot.shape() != input.shape() {
        return Err(crate::DenoiseError::InvalidInput {
            reason: format!(
                "the pilot estimate's shape {:?} differs from the image's {:?}",
                pilot.shape(),
                input.shape()
            ),
        });
    }
    let p = Bm3dParams {
        sigma,
        search_radius: DEFAULT_SEARCH_RADIUS,
        step: DEFAULT_STEP,
        stages: Stages::Both,
    };
    check_input(&pilot)?;
    let Some(plan) = plan(input, &p)? else {
        // Nothing to filter: every plane is done as the pilot has it, and the caller's
        // progress must still reach its end.
        for _ in 0..input.shape()[0] {
            plane_done()?;
        }
        return Ok(pilot.to_owned());
    };
    let progress = Progress {
        ctl,
        total: 0,
        plane_done: Some(plane_done),
    };
    planes(input, Some(pilot), &plan, &progress)
}

/// Filters every plane of `input`: the basic estimate, or `pilot`'s plane in its place,
/// then the Wiener stage when the plan has both stages.
fn planes(input: VolumeView<'_>, pilot: Option<VolumeView<'_>>, plan: &Plan, progress: &Progress<'_>) -> Result<Volume> {
    let s = Shape::of(&input);
    let mut out = Array3::<f32>::zeros((s.depth, s.height, s.width));
    for z in 0..s.depth {
        progress.ctl.checkpoint()?;
        let w = s.width.max(K);
        let (plane, mean) = centred_plane(input, z);
        let img = Plane {
            data: &plane,
            h: plane.len() / w,
            w,
        };
        let basic = match pilot {
            // Centred on the image's mean, as the image is, so that the two are compared
            // on one scale.
            Some(pv) => {
                let (pp, pmean) = centred_plane(pv, z);
                pp.iter().map(|&v| (f64::from(v) + pmean - mean) as f32).collect()
            }
            None => stage(&img, &img, Filter::Hard, plan, progress)?,
        };
        // A pilot comes with a plan of both stages (see `wiener_with_pilot`).
        let result = if plan.stages == 2 {
            let b = Plane { data: &basic, ..img };
            stage(&img, &b, Filter::Wiener, plan, progress)?
        } else {
            basic
        };
        uncentre_plane(&result, w, mean, out.slice_mut(s![z, .., ..]));
        if let Some(done) = progress.plane_done {
            done()?;
        }
    }
    Ok(out)
}

/// What both devices run for one job (see [`plan`]).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The noise's standard deviation, capped at a million times the image's range.
    pub sigma: f32,
    /// 1 (hard thresholding only) or 2 (then Wiener filtering).
    pub stages: usize,
    /// Distance between reference patches.
    pub step: usize,
    /// Half-width of the search window.
    pub search_radius: usize,
}

impl Plan {
    /// The most patches per group and the matching threshold on a squared distance
    /// summed over a patch, for the basic estimate or (`wiener`) the final one.
    pub fn matching(&self, wiener: bool) -> (usize, f32) {
        let sigma = self.sigma;
        let (n_max, tau) = if wiener {
            (N_WIENER, TAU_WIENER * sigma * sigma)
        } else {
            (N_HARD, TAU_HARD * sigma * sigma)
        };
        (n_max, tau * (K * K) as f32)
    }

    /// Progress units of a job: one per row of references, per stage and plane.
    pub fn progress_total(&self, depth: usize, height: usize) -> u64 {
        (depth * self.stages * grid(height.max(K), self.step).len()) as u64
    }
}

/// Validates the job and returns its plan, or `None` where the result is the input.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`].
pub fn plan(input: VolumeView<'_>, p: &Bm3dParams) -> Result<Option<Plan>> {
    p.validate()?;
    check_input(&input)?;
    let (lo, hi) = crate::volume::min_max(&input);
    let range = f64::from(hi) - f64::from(lo);
    // Noise below a millionth of the range is below f32 rounding of the coefficients: the
    // result would be the input. Noise beyond a million times the range flattens every
    // group to its mean already; capping it keeps σ² finite in f32.
    if p.sigma <= 1e-6 * range || range == 0.0 {
        return Ok(None);
    }
    Ok(Some(Plan {
        sigma: p.sigma.min(1e6 * range) as f32,
        stages: match p.stages {
            Stages::Both => 2,
            Stages::Hard => 1,
        },
        step: p.step,
        search_radius: p.search_radius,
    }))
}

/// Plane `z` as BM3D filters it: mirrored up to a patch where it is smaller, minus its
/// mean; with that mean. Its width is `max(width, K)`.
pub fn centred_plane(input: VolumeView<'_>, z: usize) -> (Vec<f32>, f64) {
    let s = Shape::of(&input);
    let (h, w) = (s.height.max(K), s.width.max(K));
    let sym = |i: usize, n: usize| {
        BorderMode::Symmetric
            .index(i as isize, n)
            .expect("symmetric extension always maps inside")
    };
    // Working around the plane's mean keeps the f32 transforms precise on images with a
    // large offset (a camera baseline), and makes the result commute with offsets.
    let mean = (input.slice(s![z, .., ..]).iter())
        .map(|&v| f64::from(v))
        .sum::<f64>()
        / (s.height * s.width) as f64;
    let plane = (0..h * w)
        .map(|i| (f64::from(input[(z, sym(i / w, s.height), sym(i % w, s.width))]) - mean) as f32)
        .collect();
    (plane, mean)
}

/// Writes a filtered plane of width `w` (from [`centred_plane`]) into `out`: its top-left
/// part of `out`'s shape, plus `mean`.
pub fn uncentre_plane(result: &[f32], w: usize, mean: f64, mut out: ndarray::ArrayViewMut2<'_, f32>) {
    for (y, mut row) in out.rows_mut().into_iter().enumerate() {
        for (o, &v) in row.iter_mut().zip(&result[y * w..]) {
            *o = (f64::from(v) + mean) as f32;
        }
    }
}

struct Progress<'a> {
    ctl: &'a Control,
    /// 0: check for cancellation without reporting progress.
    total: u64,
    /// Called after each plane: a caller's own progress units.
    plane_done: Option<&'a (dyn Fn() -> Result<()> + Sync)>,
}

impl Progress<'_> {
    fn advance(&self) -> Result<()> {
        if self.total == 0 {
            self.ctl.checkpoint()
        } else {
            self.ctl.advance(1, self.total)
        }
    }
}

#[derive(Clone, Copy)]
struct Plane<'a> {
    data: &'a [f32],
    h: usize,
    w: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Filter {
    Hard,
    Wiener,
}

/// Reference positions along an axis of length `n` (≥ K): every `step`, plus the last.
pub fn grid(n: usize, step: usize) -> Vec<usize> {
    let last = n - K;
    let mut g: Vec<usize> = (0..=last).step_by(step).collect();
    if g.last() != Some(&last) {
        g.push(last);
    }
    g
}

/// One BM3D stage over a plane: match on `guide`, filter groups of `noisy` (with the
/// guide's spectrum for Wiener), aggregate.
fn stage(
    noisy: &Plane<'_>,
    guide: &Plane<'_>,
    filter: Filter,
    plan: &Plan,
    progress: &Progress<'_>,
) -> Result<Vec<f32>> {
    let (h, w) = (noisy.h, noisy.w);
    let ys = grid(h, plan.step);
    let xs = grid(w, plan.step);
    let sr = plan.search_radius;
    let sigma = plan.sigma;
    let (n_max, tau) = plan.matching(filter == Filter::Wiener);
    let kaiser = kaiser_window();
    let dct = Dct::new();
    let phased = Phased::new(guide, plan.step);
    // Each band of reference rows accumulates into its own rows (the band plus the search
    // reach), which are summed afterwards: no locking, a deterministic sum order.
    let bands: Vec<(usize, Vec<f32>)> = ys
        .par_chunks(BAND_REFS)
        .map(|band| {
            let job = Band {
                noisy,
                guide,
                phased: &phased,
                filter,
                sigma,
                tau,
                n_max,
                sr,
                xs: &xs,
                kaiser: &kaiser,
                dct: &dct,
                progress,
            };
            process_band(&job, band)
        })
        .collect::<Result<_>>()?;
    let mut acc = vec![0.0f32; 2 * h * w];
    for (top, band) in bands {
        let at = 2 * top * w;
        acc[at..at + band.len()]
            .iter_mut()
            .zip(&band)
            .for_each(|(a, b)| *a += b);
    }
    // Every pixel lies in its own reference patch's group (the grid covers the plane and
    // a reference always matches itself), so the denominator is positive.
    Ok(acc.chunks_exact(2).map(|nd| nd[0] / nd[1]).collect())
}

/// Everything a band of reference rows needs.
struct Band<'a> {
    noisy: &'a Plane<'a>,
    guide: &'a Plane<'a>,
    phased: &'a Phased,
    filter: Filter,
    sigma: f32,
    tau: f32,
    n_max: usize,
    sr: usize,
    xs: &'a [usize],
    kaiser: &'a Patch,
    dct: &'a Dct,
    progress: &'a Progress<'a>,
}

crate::simd_dispatch! {
    /// Matches, filters and aggregates the references of rows `band`; returns the first
    /// plane row of the band's accumulators, and the accumulated numerator and denominator
    /// of each pixel, side by side.
    fn process_band(job: &Band<'_>, band: &[usize]) -> Result<(usize, Vec<f32>)> {
        let Band { noisy, guide, phased, filter, sigma, tau, n_max, sr, xs, kaiser, dct, progress } = *job;
        let (h, w) = (noisy.h, noisy.w);
        let top = band[0].saturating_sub(sr);
        let bottom = (band[band.len() - 1] + sr + K).min(h);
        // Interleaved, so that a patch row's update is one run of 2K values: at most two
        // cache lines, where two arrays touched up to four.
        let mut acc = vec![0.0f32; 2 * (bottom - top) * w];
        let mut best: Vec<Best> = xs.iter().map(|_| Best::new(n_max)).collect();
        let mut scratch = Scratch::new(phased, xs.len());
        let mut work = Work::new();
        let mut members = [0u32; N_WIENER];
        // Each patch's 2D DCT is C · (P Cᵀ): the row transforms P Cᵀ are computed once per
        // band for every position, so a patch costs one 8×8 product instead of two.
        let rows_noisy = RowDct::new(noisy, top, bottom, dct);
        let rows_guide = match filter {
            Filter::Hard => None,
            Filter::Wiener => Some(RowDct::new(guide, top, bottom, dct)),
        };
        let rows_guide = rows_guide.as_ref().unwrap_or(&rows_noisy);
        for &y0 in band {
            progress.ctl.checkpoint()?;
            best.iter_mut().for_each(Best::clear);
            match_row(phased, y0, xs, sr, tau, &mut best, &mut scratch);
            for (b, &x0) in best.iter_mut().zip(xs) {
                let len = b.group((y0 * w + x0) as u32, &mut members);
                let group = &members[..prev_power_of_two(len)];
                let weight = filter_group(&rows_noisy, rows_guide, group, filter, sigma, dct, &mut work);
                let wk = map2(kaiser, kaiser, |k, _| weight * k);
                for (patch, &pos) in work.y.iter().zip(group) {
                    let (py, px) = (pos as usize / w, pos as usize % w);
                    for ((prow, wrow), i) in patch.iter().zip(&wk).zip(0..) {
                        let at = 2 * ((py + i - top) * w + px);
                        // A copy of a fixed-size run, updated and stored back: vector
                        // operations (in place, the compiler emitted scalar
                        // read-modify-writes).
                        let mut nd = [0.0f32; 2 * K];
                        nd.copy_from_slice(&acc[at..at + 2 * K]);
                        for j in 0..K {
                            nd[2 * j] += wrow[j] * prow[j];
                            nd[2 * j + 1] += wrow[j];
                        }
                        acc[at..at + 2 * K].copy_from_slice(&nd);
                    }
                }
            }
            progress.advance()?;
        }
        Ok((top, acc))
    }
}

/// The reference's candidate matches: those under the current limit are appended; when the
/// buffer is full, the closest `cap` are selected and the limit drops to the farthest of
/// them. Amortised O(1) per candidate, where keeping a sorted list moved half of it on
/// every insertion. A candidate is `(distance bits << 32) | position`: distances are sums
/// of squares (never negative), whose IEEE bit patterns order like the numbers.
struct Best {
    keys: [u64; 2 * N_WIENER],
    len: usize,
    /// Matches kept besides the reference itself.
    cap: usize,
}

impl Best {
    fn new(cap: usize) -> Self {
        debug_assert!((2..=N_WIENER).contains(&cap));
        Self {
            keys: [0; 2 * N_WIENER],
            len: 0,
            cap: cap - 1,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds a candidate closer than the current limit; returns the new limit.
    #[inline]
    fn offer(&mut self, d: f32, pos: u32, limit: f32) -> f32 {
        self.keys[self.len] = (u64::from(d.to_bits()) << 32) | u64::from(pos);
        self.len += 1;
        if self.len < self.keys.len() {
            return limit;
        }
        self.keys.select_nth_unstable(self.cap - 1);
        self.len = self.cap;
        f32::from_bits((self.keys[self.cap - 1] >> 32) as u32)
    }

    /// The closest matches in order of distance, at most `cap`, into `out` after the
    /// reference; returns how many positions `out` holds.
    fn group(&mut self, reference: u32, out: &mut [u32; N_WIENER]) -> usize {
        let keys = &mut self.keys[..self.len];
        keys.sort_unstable();
        let n = keys.len().min(self.cap);
        out[0] = reference;
        for (o, k) in out[1..=n].iter_mut().zip(keys.iter()) {
            *o = *k as u32;
        }
        n + 1
    }
}

struct Scratch {
    /// Column sums of one shift, in the layout of [`Phased`].
    colsum: Vec<f32>,
    /// Distances of one shift, per reference of the row.
    boxsum: Vec<f32>,
    /// Per reference: the distance a candidate must beat to enter its list.
    limit: Vec<f32>,
}

impl Scratch {
    fn new(g: &Phased, refs: usize) -> Self {
        Self {
            colsum: vec![0.0; g.step * g.n],
            boxsum: vec![0.0; refs],
            limit: vec![0.0; refs],
        }
    }
}

/// The guide plane with its columns dealt into `step` phases: phase φ holds columns φ,
/// φ + step, φ + 2·step, … of every row. Matching needs distances at the reference columns
/// only (every step-th, [`grid`]); in this layout the sums that make them are runs of
/// contiguous values, so the distances of neighbouring references are one vector
/// operation, and the columns between references are not summed over the patch width.
struct Phased {
    step: usize,
    h: usize,
    w: usize,
    /// Values per phase row, `⌈w / step⌉` (the shorter phases end in unused padding).
    n: usize,
    data: Vec<f32>,
}

impl Phased {
    fn new(g: &Plane<'_>, step: usize) -> Self {
        let n = g.w.div_ceil(step);
        let mut data = vec![0.0; step * g.h * n];
        for (y, row) in g.data.chunks_exact(g.w).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                data[((x % step) * g.h + y) * n + x / step] = v;
            }
        }
        Self {
            step,
            h: g.h,
            w: g.w,
            n,
            data,
        }
    }

    #[inline(always)]
    fn row(&self, phase: usize, y: usize) -> &[f32] {
        let at = (phase * self.h + y) * self.n;
        &self.data[at..at + self.n]
    }
}

/// Block matching for the references of row `y0`: for every shift in the window, the
/// squared differences of the K rows are summed down the columns, then over K columns at
/// each reference, which gives the distance of every reference in the row at once.
fn match_row(
    ph: &Phased,
    y0: usize,
    xs: &[usize],
    sr: usize,
    tau: f32,
    best: &mut [Best],
    sc: &mut Scratch,
) {
    let (h, w) = (ph.h, ph.w);
    // References 0..on_grid lie at k · step; the last one may not ([`grid`]).
    let on_grid = xs.len() - usize::from(xs[xs.len() - 1] != (xs.len() - 1) * ph.step);
    // Distances stay as sums over the patch, as `tau` is ([`Plan::matching`]).
    let sr = sr as isize;
    let limit = &mut sc.limit[..xs.len()];
    // The reference itself is not a candidate: it is always first in its group.
    limit.fill(tau);
    for dy in -sr..=sr {
        let yc = y0 as isize + dy;
        if yc < 0 || yc as usize + K > h {
            continue;
        }
        let yc = yc as usize;
        for dx in -sr..=sr {
            if dy == 0 && dx == 0 {
                continue;
            }
            // Columns whose shifted partner is inside the plane.
            let lo = (-dx).max(0) as usize;
            // Signed: a search window wider than the plane shifts past its far edge
            // (found by the fuzzer on an 11-pixel-wide image).
            let hi = w as isize - dx.max(0);
            if hi < (lo + K) as isize {
                continue;
            }
            let hi = hi as usize;
            // References whose candidate lies inside the plane: lo <= x0 <= hi - K.
            let c0 = xs.partition_point(|&x| x < lo);
            let c1 = xs.partition_point(|&x| x + K <= hi);
            column_sums(ph, y0, yc, dx, lo, hi, &mut sc.colsum);
            let g1 = c1.min(on_grid);
            if c0 < g1 {
                box_sums(&sc.colsum, ph.n, ph.step, c0, g1, &mut sc.boxsum);
            }
            if c1 > on_grid {
                // The last reference, off the grid: the same sum, one value.
                let x0 = xs[on_grid];
                let at = |x: usize| sc.colsum[(x % ph.step) * ph.n + x / ph.step];
                let mut d = at(x0);
                for j in 1..K {
                    d += at(x0 + j);
                }
                sc.boxsum[on_grid] = d;
            }
            // Most distances are above their reference's limit once its list has filled:
            // eight are compared at once, and only a block with a closer one is visited.
            let mut ci = c0;
            while ci < c1 {
                let end = (ci + 8).min(c1);
                let closer = (sc.boxsum[ci..end].iter().zip(&limit[ci..end]))
                    .fold(false, |any, (d, l)| any | (d < l));
                if closer {
                    for cj in ci..end {
                        let d = sc.boxsum[cj];
                        if d < limit[cj] {
                            let pos = (yc * w + (xs[cj] as isize + dx) as usize) as u32;
                            limit[cj] = best[cj].offer(d, pos, limit[cj]);
                        }
                    }
                }
                ci = end;
            }
        }
    }
}

crate::simd_dispatch! {
    /// `colsum[x] = Σ_{i<K} (g[y0+i][x] − g[yc+i][x+dx])²` for x in `lo..hi`, in the
    /// layout of [`Phased`] (column x at `(x % step) · n + x / step`).
    fn column_sums(g: &Phased, y0: usize, yc: usize, dx: isize, lo: usize, hi: usize, colsum: &mut [f32]) {
        let (s, n) = (g.step, g.n);
        for phase in 0..s {
            // Columns phase + m · s inside lo..hi.
            let (m0, m1) = ((lo + s - 1 - phase) / s, (hi + s - 1 - phase) / s);
            if m0 >= m1 {
                continue;
            }
            // Their partners, phase + m · s + dx, are columns of another phase, shifted.
            let t = phase as isize + dx;
            let partner = t.rem_euclid(s as isize) as usize;
            let b0 = (m0 as isize + t.div_euclid(s as isize)) as usize;
            let cs = &mut colsum[phase * n + m0..phase * n + m1];
            cs.fill(0.0);
            for i in 0..K {
                let a = &g.row(phase, y0 + i)[m0..m1];
                let b = &g.row(partner, yc + i)[b0..b0 + (m1 - m0)];
                for ((c, &a), &b) in cs.iter_mut().zip(a).zip(b) {
                    let d = a - b;
                    *c += d * d;
                }
            }
        }
    }
}

crate::simd_dispatch! {
    /// `boxsum[k] = Σ_{j<K} colsum[k·s + j]` (`colsum` in the layout of [`Phased`], `n`
    /// values per phase) for the references `k` in `k0..k1`.
    fn box_sums(colsum: &[f32], n: usize, s: usize, k0: usize, k1: usize, boxsum: &mut [f32]) {
        let out = &mut boxsum[k0..k1];
        out.copy_from_slice(&colsum[k0..k1]);
        for j in 1..K {
            let at = (j % s) * n + k0 + j / s;
            for (o, &c) in out.iter_mut().zip(&colsum[at..at + (k1 - k0)]) {
                *o += c;
            }
        }
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// An 8×8 patch, or a matrix acting on one.
pub type Patch = [[f32; K]; K];

/// The 8-point DCT of every horizontal run of 8 pixels starting in rows `top..bottom`.
struct RowDct {
    data: Vec<[f32; K]>,
    top: usize,
    w: usize,
}

impl RowDct {
    #[inline(always)]
    fn new(p: &Plane<'_>, top: usize, bottom: usize, dct: &Dct) -> Self {
        let w = p.w;
        let mut data = vec![[0.0f32; K]; (bottom - top) * w];
        for (r, out) in data.chunks_mut(w).enumerate() {
            let row = &p.data[(top + r) * w..(top + r + 1) * w];
            for (x, o) in out[..=w - K].iter_mut().enumerate() {
                // (P Cᵀ)[l] = Σ_n P[n] C[l][n]: sums of scaled rows of Cᵀ.
                for (&v, ct) in row[x..x + K].iter().zip(&dct.ct) {
                    for (acc, c) in o.iter_mut().zip(ct) {
                        *acc += v * c;
                    }
                }
            }
        }
        Self { data, top, w }
    }

    /// `P Cᵀ` of the patch at plane offset `pos` (inside the rows this was built for).
    #[inline(always)]
    fn patch(&self, pos: u32) -> Patch {
        let (y, x) = (pos as usize / self.w, pos as usize % self.w);
        let mut out = [[0.0f32; K]; K];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.data[(y - self.top + i) * self.w + x];
        }
        out
    }
}

/// Per-band working memory for one group (kept between groups: no allocation per group).
struct Work {
    y: [Patch; N_WIENER],
    b: [Patch; N_WIENER],
    tmp: [Patch; N_WIENER],
}

impl Work {
    fn new() -> Box<Self> {
        Box::new(Self {
            y: [[[0.0; K]; K]; N_WIENER],
            b: [[[0.0; K]; K]; N_WIENER],
            tmp: [[[0.0; K]; K]; N_WIENER],
        })
    }
}

/// Transforms, filters and inverts one group, leaving the patch estimates in `work.y`;
/// returns the group's aggregation weight.
#[inline(always)]
fn filter_group(
    noisy: &RowDct,
    guide: &RowDct,
    group: &[u32],
    filter: Filter,
    sigma: f32,
    dct: &Dct,
    work: &mut Work,
) -> f32 {
    let n = group.len();
    let Work { y, b, tmp } = work;
    let (y, b, tmp) = (&mut y[..n], &mut b[..n], &mut tmp[..n]);
    for (c, &p) in y.iter_mut().zip(group) {
        *c = matmul(&dct.c, &noisy.patch(p));
    }
    haar(y, tmp);
    let var = sigma * sigma;
    let weight = match filter {
        Filter::Hard => {
            let t = LAMBDA_3D * sigma;
            let mut kept = 0usize;
            for c in y.iter_mut().flatten().flatten() {
                if c.abs() <= t {
                    *c = 0.0;
                } else {
                    kept += 1;
                }
            }
            // Dabov's 1 / (σ² · kept); σ² is the same for every group of the plane.
            1.0 / kept.max(1) as f32
        }
        Filter::Wiener => {
            for (c, &p) in b.iter_mut().zip(group) {
                *c = matmul(&dct.c, &guide.patch(p));
            }
            haar(b, tmp);
            let mut energy = [0.0f32; K];
            for (yp, bp) in y.iter_mut().zip(b.iter()) {
                for (yr, br) in yp.iter_mut().zip(bp) {
                    for ((yc, bc), e) in yr.iter_mut().zip(br).zip(energy.iter_mut()) {
                        let s = bc * bc / (bc * bc + var);
                        *yc *= s;
                        *e += s * s;
                    }
                }
            }
            1.0 / energy.iter().sum::<f32>().max(f32::MIN_POSITIVE)
        }
    };
    haar_inverse(y, tmp);
    for c in y.iter_mut() {
        *c = dct.inverse(c);
    }
    weight
}

/// The orthonormal 8-point DCT-II matrix: `C[k][n] = a(k) cos(π (2n + 1) k / 16)`.
pub fn dct_matrix() -> Patch {
    let mut c = [[0.0f32; K]; K];
    for (k, row) in c.iter_mut().enumerate() {
        let a = if k == 0 {
            (1.0 / K as f64).sqrt()
        } else {
            (2.0 / K as f64).sqrt()
        };
        for (n, v) in row.iter_mut().enumerate() {
            *v = (a * (std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2 * K) as f64).cos())
                as f32;
        }
    }
    c
}

/// `A · B` for 8×8 matrices as sums of scaled rows of `B`: each row of the result is one
/// 8-wide vector accumulation.
#[inline(always)]
fn matmul(a: &Patch, b: &Patch) -> Patch {
    let mut out = [[0.0f32; K]; K];
    for (orow, arow) in out.iter_mut().zip(a) {
        for (&s, brow) in arow.iter().zip(b) {
            for (o, v) in orow.iter_mut().zip(brow) {
                *o += s * v;
            }
        }
    }
    out
}

/// The orthonormal DCT matrix `C` and its transpose.
struct Dct {
    c: Patch,
    ct: Patch,
}

impl Dct {
    fn new() -> Self {
        let c = dct_matrix();
        let mut ct = [[0.0f32; K]; K];
        for (i, row) in ct.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = c[j][i];
            }
        }
        Self { c, ct }
    }

    /// `C · P · Cᵀ` (the filter composes it from [`RowDct`] instead).
    #[cfg(test)]
    fn forward(&self, p: &Patch) -> Patch {
        matmul(&matmul(&self.c, p), &self.ct)
    }

    /// `Cᵀ · D · C`.
    #[inline(always)]
    fn inverse(&self, d: &Patch) -> Patch {
        matmul(&matmul(&self.ct, d), &self.c)
    }
}

/// Orthonormal multi-level Haar transform across the group (length a power of two).
#[inline(always)]
fn haar(g: &mut [Patch], tmp: &mut [Patch]) {
    let mut len = g.len();
    let r = std::f32::consts::FRAC_1_SQRT_2;
    while len > 1 {
        let half = len / 2;
        for i in 0..half {
            let (a, b) = (&g[2 * i], &g[2 * i + 1]);
            tmp[i] = map2(a, b, |a, b| (a + b) * r);
            tmp[half + i] = map2(a, b, |a, b| (a - b) * r);
        }
        g[..len].copy_from_slice(&tmp[..len]);
        len = half;
    }
}

#[inline(always)]
fn haar_inverse(g: &mut [Patch], tmp: &mut [Patch]) {
    let n = g.len();
    let r = std::f32::consts::FRAC_1_SQRT_2;
    let mut len = 1;
    while len < n {
        for i in 0..len {
            let (a, d) = (&g[i], &g[len + i]);
            tmp[2 * i] = map2(a, d, |a, d| (a + d) * r);
            tmp[2 * i + 1] = map2(a, d, |a, d| (a - d) * r);
        }
        g[..2 * len].copy_from_slice(&tmp[..2 * len]);
        len *= 2;
    }
}

#[inline(always)]
fn map2(a: &Patch, b: &Patch, f: impl Fn(f32, f32) -> f32) -> Patch {
    let mut o = [[0.0f32; K]; K];
    for i in 0..K {
        for j in 0..K {
            o[i][j] = f(a[i][j], b[i][j]);
        }
    }
    o
}

/// The 8×8 Kaiser window (β = 2) used to put filtered patches back.
pub fn kaiser_window() -> Patch {
    // Zeroth-order modified Bessel function of the first kind, by its power series.
    let i0 = |x: f64| {
        let (mut sum, mut term) = (1.0, 1.0);
        for k in 1..30 {
            term *= (x / 2.0) * (x / 2.0) / (k * k) as f64;
            sum += term;
        }
        sum
    };
    let beta = 2.0;
    let w1: Vec<f64> = (0..K)
        .map(|i| {
            let t = 2.0 * i as f64 / (K - 1) as f64 - 1.0;
            i0(beta * (1.0 - t * t).sqrt()) / i0(beta)
        })
        .collect();
    let mut w = [[0.0f32; K]; K];
    for i in 0..K {
        for j in 0..K {
            w[i][j] = (w1[i] * w1[j]) as f32;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_invert() {
        let c = Dct::new();
        let mut rng = crate::phantom::Rng::new(4);
        let mut group: Vec<Patch> = (0..8)
            .map(|_| {
                let mut p = [[0.0f32; K]; K];
                p.iter_mut()
                    .flatten()
                    .for_each(|v| *v = rng.normal() as f32);
                p
            })
            .collect();
        let orig = group.clone();
        for p in group.iter_mut() {
            *p = c.forward(p);
        }
        // Orthonormal: the energy is kept.
        let e = |g: &[Patch]| g.iter().flatten().flatten().map(|v| v * v).sum::<f32>();
        assert!((e(&group) - e(&orig)).abs() < 1e-3 * e(&orig));
        let mut tmp = group.clone();
        haar(&mut group, &mut tmp);
        assert!((e(&group) - e(&orig)).abs() < 1e-3 * e(&orig));
        haar_inverse(&mut group, &mut tmp);
        for p in group.iter_mut() {
            *p = c.inverse(p);
        }
        let worst = group
            .iter()
            .flatten()
            .flatten()
            .zip(orig.iter().flatten().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn row_transforms_compose_to_the_2d_dct() {
        let dct = Dct::new();
        let (h, w) = (12, 11);
        let data: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let plane = Plane { data: &data, h, w };
        let rows = RowDct::new(&plane, 2, h, &dct);
        let (y, x) = (3, 2);
        let mut p = [[0.0f32; K]; K];
        for (i, r) in p.iter_mut().enumerate() {
            r.copy_from_slice(&data[(y + i) * w + x..][..K]);
        }
        let direct = dct.forward(&p);
        let via_rows = matmul(&dct.c, &rows.patch((y * w + x) as u32));
        for (a, b) in direct.iter().flatten().zip(via_rows.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn best_keeps_the_closest_in_order() {
        let mut b = Best::new(4);
        let mut limit = f32::INFINITY;
        // More candidates than the buffer holds, so that selection runs.
        for i in 0..200u32 {
            let d = ((i * 7919) % 200) as f32;
            if d < limit {
                limit = b.offer(d, i, limit);
            }
        }
        assert!(limit >= 2.0);
        let mut out = [0u32; N_WIENER];
        let n = b.group(999, &mut out);
        // The reference first, then the three closest: distances 0, 1, 2.
        let want: Vec<u32> = (0..3)
            .map(|d| (0..200).find(|i| (i * 7919) % 200 == d).unwrap())
            .collect();
        assert_eq!(n, 4);
        assert_eq!(out[0], 999);
        assert_eq!(&out[1..4], want.as_slice());
        assert_eq!(prev_power_of_two(31), 16);
        assert_eq!(prev_power_of_two(1), 1);
    }

    /// Matching in column phases finds, for every reference of a row, the candidates a
    /// direct sum over each patch pair finds, in the same order: at every step (one to
    /// eight phases), with the last reference off the grid, in planes as narrow as a
    /// patch, and with a window wider than the plane.
    #[test]
    fn phased_matching_finds_what_direct_sums_find() {
        let mut rng = crate::phantom::Rng::new(7);
        for (h, w) in [(20, 23), (9, 8), (12, 9), (10, 30)] {
            let data: Vec<f32> = (0..h * w).map(|_| rng.normal() as f32).collect();
            let g = Plane { data: &data, h, w };
            let direct = |y0: usize, x0: usize, yc: usize, xc: usize| {
                let mut d = 0.0f32;
                for j in 0..K {
                    let mut c = 0.0f32;
                    for i in 0..K {
                        let e = data[(y0 + i) * w + x0 + j] - data[(yc + i) * w + xc + j];
                        c += e * e;
                    }
                    d += c;
                }
                d
            };
            let spec = Bm3dParams::SPECS.iter().find(|s| s.key == "step").unwrap();
            let crate::descriptor::ParamKind::Int { min, max, .. } = spec.kind else {
                panic!("step is an integer parameter")
            };
            for step in min as usize..=max as usize {
                let xs = grid(w, step);
                let ph = Phased::new(&g, step);
                let mut sc = Scratch::new(&ph, xs.len());
                for (sr, y0, n_max) in [(3, h - K, N_HARD), (30, (h - K) / 2, N_WIENER)] {
                    // About the median distance of two noise patches (2 per pixel): some
                    // candidates are refused.
                    let tau = 2.0 * (K * K) as f32;
                    let mut best: Vec<Best> = xs.iter().map(|_| Best::new(n_max)).collect();
                    match_row(&ph, y0, &xs, sr, tau, &mut best, &mut sc);
                    for (b, &x0) in best.iter_mut().zip(&xs) {
                        let mut want: Vec<(u32, u32)> = (y0.saturating_sub(sr)..=(y0 + sr).min(h - K))
                            .flat_map(|yc| (x0.saturating_sub(sr)..=(x0 + sr).min(w - K)).map(move |xc| (yc, xc)))
                            .filter(|&c| c != (y0, x0))
                            .map(|(yc, xc)| (direct(y0, x0, yc, xc).to_bits(), (yc * w + xc) as u32))
                            .filter(|&(d, _)| f32::from_bits(d) < tau)
                            .collect();
                        want.sort_unstable();
                        want.truncate(n_max - 1);
                        let mut out = [0u32; N_WIENER];
                        let n = b.group((y0 * w + x0) as u32, &mut out);
                        let got: Vec<u32> = out[1..n].to_vec();
                        let want: Vec<u32> = want.iter().map(|&(_, p)| p).collect();
                        assert_eq!(got, want, "{h}x{w}, step {step}, reference ({y0}, {x0})");
                    }
                }
            }
        }
    }

    /// The Wiener stage given BM3D's own basic estimate as the pilot is BM3D (up to the
    /// pilot's round trip through the image's scale); given a better pilot (the clean
    /// scene, shifted: only its spectrum and matches may count, not its mean), it does
    /// better than BM3D; a pilot of another shape is refused.
    #[test]
    fn the_wiener_stage_on_a_pilot_is_bm3d_s_second_stage() {
        let crate::phantom::Phantom { clean, noisy } = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (2, 40, 37),
            seed: 2,
            ..Default::default()
        });
        let ctl = Control::new();
        let p = Bm3dParams {
            sigma: 0.1,
            search_radius: DEFAULT_SEARCH_RADIUS,
            step: DEFAULT_STEP,
            stages: Stages::Hard,
        };
        let basic = denoise_bm3d(noisy.view(), &p, &ctl).unwrap();
        let both = denoise_bm3d(noisy.view(), &Bm3dParams { stages: Stages::Both, ..p }, &ctl).unwrap();
        let piloted = wiener_with_pilot(noisy.view(), basic.view(), 0.1, &ctl, &|| Ok(())).unwrap();
        let worst = (&both - &piloted).iter().fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-4, "{worst}");
        assert!((&both - &basic).iter().any(|d| d.abs() > 1e-2));
        let oracle = wiener_with_pilot(noisy.view(), (&clean + 5.0).view(), 0.1, &ctl, &|| Ok(())).unwrap();
        let err = |a: &Volume| (a - &clean).mapv(|d| f64::from(d * d)).mean().unwrap();
        assert!(err(&oracle) < 0.8 * err(&both), "{} against BM3D's {}", err(&oracle), err(&both));
        let e = wiener_with_pilot(noisy.view(), basic.slice(s![..1, .., ..]), 0.1, &ctl, &|| Ok(())).unwrap_err();
        assert!(e.to_string().contains("pilot"), "{e}");
    }

    #[test]
    fn grid_covers_the_plane() {
        assert_eq!(grid(8, 3), vec![0]);
        assert_eq!(grid(20, 3), vec![0, 3, 6, 9, 12]);
        assert_eq!(grid(21, 3), vec![0, 3, 6, 9, 12, 13]);
    }
}
