//! Perona–Malik anisotropic diffusion.
//!
//! Repeated small smoothing steps whose strength falls with the local gradient: flux
//! `g(|∇u|)·∇u` with conductance `g(s) = exp(−(s/κ)²)` (favours high-contrast edges) or
//! `1/(1 + (s/κ)²)` (favours wide regions). Regions with gradients well below `kappa`
//! smooth like a Gaussian, edges well above it are kept. Pick it for quick
//! edge-preserving smoothing of EM and fluorescence; NL-means or TV remove more noise at
//! equal edge quality.
//!
//! Discretisation: the explicit 4- (6-) neighbour scheme of Perona & Malik as implemented
//! by Kovesi and in MedPy's `anisotropic_diffusion` (`tests/reference.rs` matches it).
//! Stability: an explicit step needs `step ≤ 1/(2·(2 + z_weight))` (0.25 for planes,
//! 1/6 for isotropic 3D); larger steps are refused with that bound, never run unstable.
//! Cost: O(N) per iteration. Border: no flux across the image edge (Neumann).
//! Units: `kappa` is in the image's grey levels (by default twice the estimated noise).
//!
//! # References
//! P. Perona, J. Malik, "Scale-space and edge detection using anisotropic diffusion",
//! IEEE TPAMI 12(7), 1990, doi:10.1109/34.56205.

use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Scale, Unit,
};
use crate::error::{DenoiseError, Result};
use crate::fastmath::fast_exp;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use rayon::prelude::*;

crate::choice_enum! {
    /// Perona and Malik's conductance functions.
    pub enum Conductance {
        /// exp(-(|∇u|/κ)²): keeps high-contrast edges.
        Exponential = "exponential",
        /// 1 / (1 + (|∇u|/κ)²): favours wide regions.
        Rational = "rational",
    }
}

crate::method_params! {
    /// Parameters of [`denoise_anisotropic_diffusion`].
    pub struct AnisotropicDiffusionParams {
        /// Edge threshold in grey levels: differences between neighbours well above it stop
        /// the diffusion. Larger = smoother (weaker edges are blurred). By default twice
        /// the estimated noise.
        kappa: f64 = ParamSpec::float("Edge threshold kappa", 0.0, f64::INFINITY, DefaultValue::TimesNoise(2.0))
            .unit(Unit::Intensity).scale(Scale::Log).tunable(),
        /// Number of diffusion steps. Larger = smoother; 0 leaves the image unchanged.
        iterations: usize = ParamSpec::int("Iterations", 0, 1000, 10).unit(Unit::Count),
        /// Time step of each iteration; at most 0.25 for planes, 1/(2·(2 + z_weight)) for
        /// volumes (stability of the explicit scheme).
        step: f64 = ParamSpec::float("Step", 0.0, 0.25, DefaultValue::Fixed(0.15)),
        /// Conductance: exponential (Perona–Malik 1, keeps high-contrast edges) or rational
        /// (Perona–Malik 2, favours wide regions).
        conductance: Conductance = ParamSpec::choice("Conductance", Conductance::NAMES, Conductance::Exponential.name()),
        /// Weight of the flux across planes: 0 = each plane on its own, 1 = isotropic 3D.
        z_weight: f64 = ParamSpec::float("Z weight", 0.0, 1.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0)),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "anisotropic_diffusion",
    name: "Anisotropic diffusion",
    category: "Edge-preserving",
    summary: "Perona-Malik diffusion: repeated smoothing steps that slow down at edges \
              stronger than kappa. Quick edge-preserving smoothing in 2D and 3D.",
    references: &[
        "P. Perona, J. Malik, Scale-space and edge detection using anisotropic \
                   diffusion, IEEE TPAMI 12(7), 1990, doi:10.1109/34.56205",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: AnisotropicDiffusionParams::SPECS,
    images: &[],
    gpu_tolerance: Some(1e-5),
    identity: &[("iterations", "0")],
    quick: &[("iterations", "5")],
    support,
    memory: Memory {
        volume: 3.0,
        plane: 0.0,
    },
    memory_for: Some(memory_for),
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

fn memory_for(r: &Resolved, s: Shape) -> Memory {
    // Plus a third flux, across planes, when z is coupled.
    let z_flux =
        AnisotropicDiffusionParams::from_resolved(r).is_ok_and(|p| p.z_weight_for(s.depth) > 0.0);
    Memory {
        volume: DESCRIPTOR.memory.volume + if z_flux { 1.0 } else { 0.0 },
        ..DESCRIPTOR.memory
    }
}

impl AnisotropicDiffusionParams {
    /// The z weight in effect: a single plane has no neighbours across z.
    fn z_weight_for(&self, depth: usize) -> f64 {
        if depth > 1 { self.z_weight } else { 0.0 }
    }
}

fn support(r: &Resolved) -> Result<[usize; 3]> {
    // Each step moves information by one pixel along each axis.
    let p = AnisotropicDiffusionParams::from_resolved(r)?;
    let z = if p.z_weight > 0.0 { p.iterations } else { 0 };
    Ok([z, p.iterations, p.iterations])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_anisotropic_diffusion(v, &AnisotropicDiffusionParams::from_resolved(r)?, ctl)
}

/// Perona–Malik anisotropic diffusion; see the module docs.
///
/// # Errors
/// [`DenoiseError::ParamOutOfRange`] (also for a step above the stability bound of a 3D
/// run), [`DenoiseError::InvalidInput`], [`DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_anisotropic_diffusion, AnisotropicDiffusionParams, Conductance, Control};
/// use ndarray::Array3;
/// // Small wiggles (±1) are smoothed, the step of 100 is kept.
/// let img = Array3::from_shape_fn((1, 12, 12), |(_, y, x)| {
///     (if x < 6 { 0.0 } else { 100.0 }) + if (x + y) % 2 == 0 { 1.0 } else { -1.0 }
/// });
/// let p = AnisotropicDiffusionParams {
///     kappa: 5.0, iterations: 20, step: 0.2, conductance: Conductance::Exponential, z_weight: 0.0,
/// };
/// let out = denoise_anisotropic_diffusion(img.view(), &p, &Control::new()).unwrap();
/// assert!((out[(0, 5, 2)] - out[(0, 6, 2)]).abs() < 0.5);
/// assert!(out[(0, 5, 9)] - out[(0, 5, 2)] > 95.0);
/// ```
pub fn denoise_anisotropic_diffusion(
    input: VolumeView<'_>,
    p: &AnisotropicDiffusionParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let s = Shape::of(&input);
    let plan = plan(p, s.depth)?;
    let mut out = input.as_standard_layout().into_owned();
    let Some(plan) = plan else {
        return Ok(out);
    };
    let (d, h, w) = (s.depth, s.height, s.width);
    let n = d * h * w;
    // Invariant: `into_owned` of a standard-layout view is contiguous.
    let u = out.as_slice_mut().unwrap_or(&mut []);
    let cond = FluxRule {
        inv_k2: plan.inv_k2,
        exponential: plan.exponential,
    };
    let (step, wz) = (plan.step, plan.wz);
    let plane = h * w;
    let nflux = if wz > 0.0 { 3 } else { 2 };
    crate::simd::with_scratch(nflux * n, |flux| {
        for _ in 0..p.iterations {
            ctl.checkpoint()?;
            let (fx, rest) = flux.split_at_mut(n);
            let (fy, fz) = rest.split_at_mut(n);
            let u_r: &[f32] = u;
            // Flux across each pixel's right, lower and back face; none across the edge.
            fx.par_chunks_mut(w)
                .zip(fy.par_chunks_mut(w))
                .enumerate()
                .for_each(|(row, (fxr, fyr))| {
                    let i = row * w;
                    let c = &u_r[i..i + w];
                    let down = if (row % h) + 1 < h {
                        &u_r[i + w..i + 2 * w]
                    } else {
                        c
                    };
                    flux_row(c, &c[1..], fxr, &cond, 1.0);
                    fxr[w - 1] = 0.0;
                    flux_row(c, down, fyr, &cond, 1.0);
                });
            if wz > 0.0 {
                fz.par_chunks_mut(w).enumerate().for_each(|(row, fzr)| {
                    let z = row / h;
                    let i = row * w;
                    let c = &u_r[i..i + w];
                    let back = if z + 1 < d {
                        &u_r[i + plane..i + plane + w]
                    } else {
                        c
                    };
                    flux_row(c, back, fzr, &cond, wz);
                });
            }
            let (fx, fy, fz): (&[f32], &[f32], &[f32]) = (fx, fy, fz);
            // u += step · divergence of the flux.
            u.par_chunks_mut(w).enumerate().for_each(|(row, ur)| {
                let (z, y) = (row / h, row % h);
                let i = row * w;
                let zero = 0.0f32;
                for x in 0..w {
                    let mut div = fx[i + x] - if x > 0 { fx[i + x - 1] } else { zero };
                    div += fy[i + x] - if y > 0 { fy[i + x - w] } else { zero };
                    if wz > 0.0 {
                        div += fz[i + x] - if z > 0 { fz[i + x - plane] } else { zero };
                    }
                    ur[x] += step * div;
                }
            });
            ctl.advance(1, p.iterations as u64)?;
        }
        Ok::<(), DenoiseError>(())
    })?;
    Ok(out)
}

/// What the diffusion does to a stack of some depth: the one derivation of its step and
/// conductance, which the CPU kernel and the GPU host both run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Time step of each iteration.
    pub step: f32,
    /// `1/κ²`, capped at f32's largest value.
    pub inv_k2: f32,
    /// The exponential conductance (else the rational one).
    pub exponential: bool,
    /// Weight of the flux across planes; 0 on a single plane.
    pub wz: f32,
}

/// The plan for a stack of `depth` planes, or `None` where the result is the input.
///
/// # Errors
/// [`DenoiseError::ParamOutOfRange`] for a step above the stability bound.
pub fn plan(p: &AnisotropicDiffusionParams, depth: usize) -> Result<Option<Plan>> {
    check_stability(p, depth)?;
    if p.iterations == 0 || p.step == 0.0 || p.kappa == 0.0 {
        return Ok(None);
    }
    Ok(Some(Plan {
        step: p.step as f32,
        inv_k2: (1.0 / (p.kappa * p.kappa)).min(f32::MAX as f64) as f32,
        exponential: p.conductance == Conductance::Exponential,
        wz: p.z_weight_for(depth) as f32,
    }))
}

/// Refuses a step above the explicit scheme's stability bound for a volume of `depth`
/// planes.
fn check_stability(p: &AnisotropicDiffusionParams, depth: usize) -> Result<()> {
    let wz = p.z_weight_for(depth);
    let max_step = 1.0 / (2.0 * (2.0 + wz));
    if p.step > max_step + 1e-12 {
        return Err(DenoiseError::ParamOutOfRange {
            name: "step".into(),
            value: crate::fmt_num(p.step),
            min: "0".into(),
            max: format!(
                "{max_step:.4} (stability bound for z_weight = {})",
                p.z_weight
            ),
        });
    }
    Ok(())
}

struct FluxRule {
    inv_k2: f32,
    exponential: bool,
}

crate::simd_dispatch! {
    /// `flux = g(δ)·δ·weight` with `δ = next − c` for one row (`next` may be shorter by one:
    /// the remaining entries are left for the caller).
    fn flux_row(c: &[f32], next: &[f32], flux: &mut [f32], cond: &FluxRule, weight: f32) {
        for ((f, &a), &b) in flux.iter_mut().zip(c).zip(next) {
            let delta = b - a;
            let t = delta * delta * cond.inv_k2;
            let g = if cond.exponential { fast_exp(-t) } else { 1.0 / (1.0 + t) };
            *f = g * delta * weight;
        }
    }
}
