//! Low-pass filtering in the Fourier domain with a soft-edged radial mask.
//!
//! A microscope transmits no spatial frequency beyond its optical cut-off (the edge of the
//! OTF); everything the camera records beyond it is noise. This filter keeps frequencies
//! inside a radius `cutoff` (in cycles per pixel, 0.5 = Nyquist) and removes those
//! outside, with a raised-cosine edge of relative width `softness` to avoid ringing.
//! Pick it when the image is oversampled (pixel size well below the resolution), or to
//! remove high-frequency noise before measuring; structures smaller than 1/cutoff pixels
//! are blurred.
//!
//! Border: the image is extended by mirroring before the transform (an even extension,
//! as a DCT does), so opposite edges do not leak into each other and a constant image
//! stays constant. Cost: O(N log N): a DCT of the image and back, computed in place.
//! Mask: `ρ = √((fx² + fy²)/cutoff² + fz²/cutoff_z²)`; 1 for ρ ≤ 1 − s, 0 for ρ ≥ 1 + s,
//! `½(1 + cos(π(ρ − 1 + s)/(2s)))` between (s = softness).
//! 3D: `cutoff_z` > 0 filters across planes too (in cycles per plane); 0 filters each
//! plane on its own.
//!
//! # References
//! M. Frigo, S. G. Johnson, "The design and implementation of FFTW3", Proc. IEEE 93(2),
//! 2005, doi:10.1109/JPROC.2004.840301 (the transform; here rustfft).
//! J. W. Goodman, "Introduction to Fourier optics", 3rd ed., Roberts & Co. 2005 (the OTF
//! cut-off).

use crate::control::Control;
use crate::descriptor::{DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved};
use crate::error::Result;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};

crate::method_params! {
    /// Parameters of [`denoise_fourier_filter`].
    pub struct FourierFilterParams {
        /// Radius of the pass band in cycles per pixel (0.5 = Nyquist). Smaller = smoother;
        /// at 0.75 or more with the default softness nothing is removed.
        cutoff: f64 = ParamSpec::float("Cutoff", 0.01, 1.0, DefaultValue::Fixed(0.25)).tunable(),
        /// Width of the soft edge as a fraction of the cutoff (0 = hard edge, which rings).
        softness: f64 = ParamSpec::float("Softness", 0.0, 0.9, DefaultValue::Fixed(0.2)),
        /// Cutoff across planes in cycles per plane; 0 filters each plane on its own.
        cutoff_z: f64 = ParamSpec::float("Cutoff (z)", 0.0, 1.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0)),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "fourier_filter",
    name: "Fourier low-pass",
    category: "Frequency",
    summary: "Removes spatial frequencies beyond a cutoff (in cycles per pixel) with a soft \
              radial mask: the noise an oversampled microscope records beyond its optical \
              cut-off. Mirror-extended, so no wrap-around at the edges.",
    references: &[
        "M. Frigo, S. G. Johnson, The design and implementation of FFTW3, Proc. IEEE 93(2), \
         2005, doi:10.1109/JPROC.2004.840301",
        "J. W. Goodman, Introduction to Fourier optics, 3rd ed., Roberts & Co. 2005",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: FourierFilterParams::SPECS,
    images: &[],
    gpu_tolerance: Some(1e-5),
    identity: &[("cutoff", "1"), ("softness", "0")],
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

// The filter is global: every output pixel depends on the whole (mirrored) image.
use crate::descriptor::GLOBAL_SUPPORT as GLOBAL;

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = FourierFilterParams::from_resolved(r)?;
    Ok([if p.cutoff_z > 0.0 { GLOBAL } else { 0 }, GLOBAL, GLOBAL])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_fourier_filter(v, &FourierFilterParams::from_resolved(r)?, ctl)
}

/// The mask value for normalised radius `rho` and softness `s`.
fn mask(rho: f64, s: f64) -> f64 {
    if rho <= 1.0 - s {
        1.0
    } else if rho >= 1.0 + s {
        0.0
    } else {
        0.5 * (1.0 + (std::f64::consts::PI * (rho - 1.0 + s) / (2.0 * s)).cos())
    }
}

/// Fourier low-pass; see the module docs.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_fourier_filter, Control, FourierFilterParams};
/// use ndarray::Array3;
/// // Stripes at 0.375 cycles/pixel (a cosine that the mirror extension continues
/// // smoothly) on a level of 2: a low-pass at 0.25 removes them, leaving the level.
/// let stripes = |x: usize| (2.0 * std::f64::consts::PI * 0.375 * (x as f64 + 0.5)).cos();
/// let img = Array3::from_shape_fn((1, 8, 8), |(_, _, x)| (2.0 + stripes(x)) as f32);
/// let p = FourierFilterParams { cutoff: 0.25, softness: 0.2, cutoff_z: 0.0 };
/// let out = denoise_fourier_filter(img.view(), &p, &Control::new()).unwrap();
/// assert!(out.iter().all(|v| (v - 2.0).abs() < 1e-5));
/// ```
pub fn denoise_fourier_filter(
    input: VolumeView<'_>,
    p: &FourierFilterParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    match filter(p, Shape::of(&input).depth) {
        Some(f) => f.apply(&input, ctl),
        None => Ok(input.to_owned()),
    }
}

/// The job's filter on a stack of `depth` planes; `None` when it passes every frequency
/// present (the input is then returned exactly, not through two transforms).
pub fn filter(p: &FourierFilterParams, depth: usize) -> Option<crate::spectral::Filter> {
    let use_z = depth > 1 && p.cutoff_z > 0.0;
    // The highest frequency present is 0.5 per axis; if it is inside the flat pass band,
    // the filter is the identity.
    let rho_max2 = 0.5 / (p.cutoff * p.cutoff)
        + if use_z {
            0.25 / (p.cutoff_z * p.cutoff_z)
        } else {
            0.0
        };
    if rho_max2.sqrt() <= 1.0 - p.softness {
        return None;
    }
    let (c, s, cz) = (p.cutoff, p.softness, p.cutoff_z);
    // Per axis: the squared frequency, and the same over cutoff_z² for z (0/0 when a tiny
    // cutoff_z underflows: the zero frequency always passes in z).
    let axis = move |f: f64| [f * f, if f == 0.0 { 0.0 } else { f * f / (cz * cz) }];
    Some(crate::spectral::Filter::by_axis(
        use_z,
        axis,
        move |z, y, x| mask(((x[0] + y[0]) / (c * c) + z[1]).sqrt(), s),
    ))
}
