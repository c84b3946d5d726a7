//! The bilateral filter: a Gaussian whose weights also fall with intensity difference.
//!
//! Each output pixel is the weighted mean of its window, with weight
//! `exp(-|Δx|²/2σs² - Δz²/2σz² - (I(q) - I(p))²/2σr²)`. Neighbours across an edge differ
//! by much more than `sigma_range` and get almost no weight, so edges stay sharp while
//! flat regions are smoothed. Pick it for images with clear edges and moderate noise;
//! at high noise it leaves speckles (noise peaks look like edges) where `nl_means` does
//! better. Computed exactly, pixel by pixel: no range-kernel approximation or grid.
//!
//! Cost: O(N · (2r+1)² · (2rz+1)) exponentials, with r = ⌈3σs⌉ by default.
//! Border: replicate (ImageJ's convention).
//! Units: `sigma_range` is in the image's own grey levels (a 16-bit image needs values
//! like 200, a float image in [0, 1] values like 0.1); it is never rescaled.
//! Accuracy: weights use [`crate::fastmath::fast_exp`] (relative error < 4e-7).
//!
//! # References
//! C. Tomasi, R. Manduchi, "Bilateral filtering for gray and color images", ICCV 1998,
//! doi:10.1109/ICCV.1998.710815.

use crate::border::{BorderMode, pad};
use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Scale, Unit,
};
use crate::error::Result;
use crate::fastmath::fast_exp;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::Array3;
use rayon::prelude::*;

crate::method_params! {
    /// Parameters of [`denoise_bilateral`].
    pub struct BilateralParams {
        /// Spatial standard deviation in x and y, in pixels. Larger = smoother; 0 leaves
        /// the image unchanged.
        sigma_spatial: f64 = ParamSpec::float("Spatial sigma", 0.0, 20.0, DefaultValue::Fixed(2.0))
            .unit(Unit::Pixels),
        /// Intensity difference at which a neighbour's weight falls to 61%, in grey levels.
        /// Larger = smoother (edges weaker than this are blurred); by default twice the
        /// estimated noise.
        sigma_range: f64 = ParamSpec::float("Range sigma", 0.0, f64::INFINITY, DefaultValue::TimesNoise(2.0))
            .unit(Unit::Intensity).scale(Scale::Log).tunable(),
        /// Window half-width in pixels; 0 chooses ⌈3 · sigma_spatial⌉.
        radius: usize = ParamSpec::int("Radius", 0, 60, 0).unit(Unit::Pixels),
        /// Spatial standard deviation across planes, in planes; 0 filters each plane on
        /// its own. The z half-width is ⌈3 · sigma_spatial_z⌉.
        sigma_spatial_z: f64 = ParamSpec::float("Spatial sigma (z)", 0.0, 10.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0))
            .unit(Unit::Pixels),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "bilateral",
    name: "Bilateral",
    category: "Edge-preserving",
    summary: "Exact bilateral filter: Gaussian smoothing that stops at edges stronger than the \
              range sigma. Good for clear edges at moderate noise.",
    references: &[
        "C. Tomasi, R. Manduchi, Bilateral filtering for gray and color images, \
                   ICCV 1998, doi:10.1109/ICCV.1998.710815",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: BilateralParams::SPECS,
    images: &[],
    // GPU `exp` differs from `fast_exp` by a few ulp and sums in another order; measured
    // 1.4e-7 of the range on lavapipe.
    gpu_tolerance: Some(1e-5),
    identity: &[("sigma_spatial", "0")],
    quick: &[],
    support,
    memory: Memory {
        volume: 2.5,
        plane: 0.5,
    },
    memory_for: None,
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = BilateralParams::from_resolved(r)?;
    let (xy, z) = radii(&p);
    Ok([z, xy, xy])
}

/// Window half-widths (xy, z) for these parameters.
fn radii(p: &BilateralParams) -> (usize, usize) {
    let xy = if p.radius == 0 {
        (3.0 * p.sigma_spatial).ceil() as usize
    } else {
        p.radius
    };
    (xy, (3.0 * p.sigma_spatial_z).ceil() as usize)
}

/// What the filter does to a stack of some depth: the one derivation of its window and
/// weights, which the CPU kernel and the GPU host both run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Half-width of the window in the plane.
    pub radius: usize,
    /// Half-width across planes; 0 filters each plane on its own.
    pub radius_z: usize,
    /// Spatial sigma in the plane.
    pub sigma: f64,
    /// Spatial sigma across planes (1 where `radius_z` is 0, where it is not used).
    pub sigma_z: f64,
    /// `1 / (2·sigma_range²)`, capped so that a tiny sigma_range gives 0·MAX = 0 for equal
    /// pixels, not 0·inf = NaN.
    pub inv_2sr: f32,
}

/// The plan for a stack of `depth` planes, or `None` where the result is the input.
pub fn plan(p: &BilateralParams, depth: usize) -> Option<Plan> {
    if p.sigma_spatial == 0.0 || p.sigma_range == 0.0 {
        return None;
    }
    let (radius, rz) = radii(p);
    let (radius_z, sigma_z) = if depth > 1 && p.sigma_spatial_z > 0.0 {
        (rz, p.sigma_spatial_z)
    } else {
        (0, 1.0)
    };
    Some(Plan {
        radius,
        radius_z,
        sigma: p.sigma_spatial,
        sigma_z,
        inv_2sr: (1.0 / (2.0 * p.sigma_range * p.sigma_range)).min(f32::MAX as f64) as f32,
    })
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_bilateral(v, &BilateralParams::from_resolved(r)?, ctl)
}

/// Applies the exact bilateral filter.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_bilateral, BilateralParams, Control};
/// use ndarray::Array3;
/// // A step edge of height 100 survives a range sigma of 10 untouched.
/// let img = Array3::from_shape_fn((1, 8, 8), |(_, _, x)| if x < 4 { 0.0f32 } else { 100.0 });
/// let p = BilateralParams { sigma_spatial: 2.0, sigma_range: 10.0, radius: 0, sigma_spatial_z: 0.0 };
/// let out = denoise_bilateral(img.view(), &p, &Control::new()).unwrap();
/// assert!((out[(0, 3, 3)] - 0.0).abs() < 1e-3 && (out[(0, 3, 4)] - 100.0).abs() < 1e-3);
/// ```
pub fn denoise_bilateral(
    input: VolumeView<'_>,
    p: &BilateralParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let s = Shape::of(&input);
    let Some(plan) = plan(p, s.depth) else {
        return Ok(input.to_owned());
    };
    let (r, rz, sz) = (plan.radius, plan.radius_z, plan.sigma_z);
    let padded = pad(&input, rz, r, r, BorderMode::Replicate);
    let (_, ph, pw) = padded.dim();
    // Invariant: `pad` builds a standard-layout array.
    let src = padded.as_slice().unwrap_or(&[]);
    // Spatial log-weights, one per offset, so each pair needs a single exponential.
    let offsets: Vec<(usize, usize, usize, f32)> = (0..=2 * rz)
        .flat_map(|dz| (0..=2 * r).flat_map(move |dy| (0..=2 * r).map(move |dx| (dz, dy, dx))))
        .filter_map(|(dz, dy, dx)| {
            let (fz, fy, fx) = (
                dz as f64 - rz as f64,
                dy as f64 - r as f64,
                dx as f64 - r as f64,
            );
            let lw = if (dz, dy, dx) == (rz, r, r) {
                // The centre, also when 2σ² underflows for a tiny sigma (0/0 would be NaN).
                0.0
            } else {
                -(fx * fx + fy * fy) / (2.0 * plan.sigma.powi(2)) - fz * fz / (2.0 * sz * sz)
            };
            // Terms below e^-30 cannot change an f32 sum that already holds the centre (1).
            (lw > -30.0).then_some((dz, dy, dx, lw as f32))
        })
        .collect();
    let inv = plan.inv_2sr;
    let w = s.width;
    let total = (s.depth * s.height) as u64;
    let mut out = Array3::<f32>::zeros((s.depth, s.height, s.width));
    // Invariant: freshly allocated, standard layout.
    let dst = out.as_slice_mut().unwrap_or(&mut []);
    let geo = RowGeometry {
        src,
        ph,
        pw,
        r,
        rz,
        offsets: &offsets,
        inv,
    };
    dst.par_chunks_mut(w)
        .enumerate()
        .with_min_len(4)
        .try_for_each(|(row, o)| {
            let (z, y) = (row / s.height, row % s.height);
            crate::simd::with_scratch(2 * w, |scratch| bilateral_row(&geo, scratch, z, y, o));
            ctl.advance(1, total)
        })?;
    Ok(out)
}

struct RowGeometry<'a> {
    src: &'a [f32],
    ph: usize,
    pw: usize,
    r: usize,
    rz: usize,
    offsets: &'a [(usize, usize, usize, f32)],
    inv: f32,
}

crate::simd_dispatch! {
    /// Output row `y` of plane `z`: every offset's weights for the whole row at once.
    fn bilateral_row(g: &RowGeometry<'_>, scratch: &mut [f32], z: usize, y: usize, o: &mut [f32]) {
        let w = o.len();
        let (num, den) = scratch.split_at_mut(w);
        let centre = ((z + g.rz) * g.ph + y + g.r) * g.pw + g.r;
        let c = &g.src[centre..centre + w];
        num.fill(0.0);
        den.fill(0.0);
        for &(dz, dy, dx, lw) in g.offsets {
            let start = ((z + dz) * g.ph + y + dy) * g.pw + dx;
            let nb = &g.src[start..start + w];
            for (((n, d), &q), &p) in num.iter_mut().zip(den.iter_mut()).zip(nb).zip(c) {
                let diff = q - p;
                let wt = fast_exp(lw - diff * diff * g.inv);
                *n += wt * q;
                *d += wt;
            }
        }
        for ((o, n), d) in o.iter_mut().zip(num.iter()).zip(den.iter()) {
            *o = n / d;
        }
    }
}
