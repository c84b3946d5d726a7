//! Tikhonov (quadratic) regularisation, solved exactly in the Fourier domain, optionally
//! deconvolving a Gaussian PSF.
//!
//! Minimises `‖K u − f‖² + λ ‖L u‖²`, where `L` is the gradient (first differences) or the
//! Laplacian and `K` the identity or a Gaussian blur of standard deviation `psf_sigma`.
//! The solution is linear: `û = K̂ f̂ / (K̂² + λ |L̂|²)`. Quadratic regularisation smooths
//! edges as much as noise, like a Gaussian, but with a heavier-tailed response; its real
//! use is the deconvolution: it sharpens a blurred image while keeping noise in check,
//! and it is the fast linear reference against which TV and the patch-based methods are
//! judged.
//!
//! Exactness: the image is mirror-extended before the FFT ([`crate::spectral`]), which
//! gives the differences a Neumann border; on that extension `|L̂|² = Σ 4 sin²(π f)`
//! (gradient) or its square (Laplacian) exactly, so no iteration or tolerance is involved.
//! Cost: O(N log N). Units: `lambda` is dimensionless, about the square of the smoothing
//! length in pixels for the gradient regulariser. The gain is capped at 10⁶ so that a tiny
//! `lambda` with a PSF cannot overflow.
//!
//! # References
//! A. N. Tikhonov, V. Y. Arsenin, "Solutions of ill-posed problems", Winston 1977.
//! M. Bertero, P. Boccacci, "Introduction to inverse problems in imaging", IOP 1998,
//! doi:10.1887/0750304359.

use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Scale, Unit,
};
use crate::error::{DenoiseError, Result};
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};

crate::choice_enum! {
    /// What Tikhonov regularisation penalises.
    pub enum Regulariser {
        /// The gradient.
        Gradient = "gradient",
        /// The Laplacian.
        Laplacian = "laplacian",
    }
}

crate::method_params! {
    /// Parameters of [`denoise_tikhonov`].
    pub struct TikhonovParams {
        /// Regularisation weight. Larger = smoother; about the square of the smoothing
        /// length in pixels. 0 without a PSF leaves the image unchanged.
        lambda: f64 = ParamSpec::float("Weight lambda", 0.0, 1e6, DefaultValue::Fixed(2.0)).scale(Scale::Log).tunable(),
        /// Penalise the gradient (smooth, like a heavy-tailed Gaussian) or the Laplacian
        /// (keeps ramps, suppresses curvature).
        regulariser: Regulariser = ParamSpec::choice("Regulariser", Regulariser::NAMES, Regulariser::Gradient.name()),
        /// Standard deviation of a Gaussian PSF to deconvolve, in pixels; 0 only denoises.
        psf_sigma: f64 = ParamSpec::float("PSF sigma", 0.0, 20.0, DefaultValue::Fixed(0.0)).unit(Unit::Pixels),
        /// Weight of the regulariser across planes: 0 = each plane on its own, 1 = isotropic 3D.
        z_weight: f64 = ParamSpec::float("Z weight", 0.0, 1.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0)),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "tikhonov",
    name: "Tikhonov",
    category: "Variational",
    summary: "Quadratic (gradient or Laplacian) regularisation solved exactly in the Fourier \
              domain, optionally deconvolving a Gaussian PSF. Fast and linear; use it to \
              sharpen a blurred image with noise under control.",
    references: &[
        "A. N. Tikhonov, V. Y. Arsenin, Solutions of ill-posed problems, Winston 1977",
        "M. Bertero, P. Boccacci, Introduction to inverse problems in imaging, IOP 1998, \
         doi:10.1887/0750304359",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: TikhonovParams::SPECS,
    images: &[],
    gpu_tolerance: Some(1e-4),
    identity: &[("lambda", "0"), ("psf_sigma", "0")],
    quick: &[],
    support,
    memory: Memory {
        volume: 1.0,
        plane: 2.25,
    },
    memory_for: None,
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

// The solution is global: every output pixel depends on the whole (mirrored) image.
use crate::descriptor::GLOBAL_SUPPORT as GLOBAL;

/// Upper bound on the transfer function (see the module docs).
const MAX_GAIN: f64 = 1e6;

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = TikhonovParams::from_resolved(r)?;
    Ok([if p.z_weight > 0.0 { GLOBAL } else { 0 }, GLOBAL, GLOBAL])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_tikhonov(v, &TikhonovParams::from_resolved(r)?, ctl)
}

/// Tikhonov regularisation (and Gaussian deconvolution); see the module docs.
///
/// # Errors
/// [`DenoiseError::ParamOutOfRange`] (also `lambda = 0` with a PSF: an unregularised
/// inverse filter), [`DenoiseError::InvalidInput`], [`DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_tikhonov, Control, Regulariser, TikhonovParams};
/// use ndarray::Array3;
/// let img = Array3::from_shape_fn((1, 16, 16), |(_, y, x)| ((x * 7 + y * 3) % 5) as f32);
/// let p = TikhonovParams { lambda: 4.0, regulariser: Regulariser::Gradient, psf_sigma: 0.0, z_weight: 0.0 };
/// let out = denoise_tikhonov(img.view(), &p, &Control::new()).unwrap();
/// // Smoother, with the same mean (the zero frequency passes unchanged).
/// let spread = |v: &Array3<f32>| v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min);
/// assert!(spread(&out) < spread(&img));
/// assert!((out.mean().unwrap() - img.mean().unwrap()).abs() < 1e-4);
/// ```
pub fn denoise_tikhonov(
    input: VolumeView<'_>,
    p: &TikhonovParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    match filter(p, Shape::of(&input).depth)? {
        Some(f) => f.apply(&input, ctl),
        None => Ok(input.to_owned()),
    }
}

/// The job's filter on a stack of `depth` planes; `None` for the identity (`lambda` 0
/// without a PSF).
///
/// # Errors
/// [`DenoiseError::ParamOutOfRange`] for `lambda` 0 with a PSF.
pub fn filter(p: &TikhonovParams, depth: usize) -> Result<Option<crate::spectral::Filter>> {
    if p.psf_sigma > 0.0 && p.lambda == 0.0 {
        return Err(DenoiseError::ParamOutOfRange {
            name: "lambda".into(),
            value: "0".into(),
            min: "above 0 when psf_sigma > 0 (an unregularised inverse filter amplifies noise without bound)".into(),
            max: "1000000".into(),
        });
    }
    if p.lambda == 0.0 {
        return Ok(None);
    }
    let use_z = depth > 1 && p.z_weight > 0.0;
    let (lambda, wz2, sigma2) = (p.lambda, p.z_weight * p.z_weight, p.psf_sigma * p.psf_sigma);
    let laplacian = p.regulariser == Regulariser::Laplacian;
    let two_pi2 = 2.0 * std::f64::consts::PI * std::f64::consts::PI;
    // Per axis: the squared finite-difference gain and the squared frequency.
    let axis = |f: f64| [4.0 * (std::f64::consts::PI * f).sin().powi(2), f * f];
    Ok(Some(crate::spectral::Filter::by_axis(
        use_z,
        axis,
        move |z, y, x| {
            let grad = x[0] + y[0] + wz2 * z[0];
            let reg = if laplacian { grad * grad } else { grad };
            // exp(-0) is exactly 1: without a PSF the exponential is skipped, not changed.
            let k = if sigma2 == 0.0 {
                1.0
            } else {
                (-two_pi2 * sigma2 * (x[1] + y[1])).exp()
            };
            (k / (k * k + lambda * reg)).min(MAX_GAIN)
        },
    )))
}
