//! Richardson–Lucy deconvolution, optionally with total-variation regularisation.
//!
//! For photon-count data `f` blurred by a known point spread function `K`, each iteration
//! multiplies the estimate by the back-projected ratio of the data to the re-blurred
//! estimate: `u ← u · Kᵀ(f / K u)`. This is the EM algorithm for the Poisson likelihood
//! (Richardson 1972, Lucy 1974): the estimate stays non-negative and keeps the total
//! intensity. It sharpens and also amplifies noise as iterations go on, so the iteration
//! count is the regulariser; with `tv > 0` the update is divided by
//! `1 − tv · div(∇u / |∇u|)` (Dey et al. 2006), which suppresses the noise build-up and
//! lets more iterations run.
//!
//! - PSF: `gaussian` (σ in pixels per axis; a 3D blur when `psf_sigma_z > 0` on a stack),
//!   applied as a direct separable convolution with the chosen border rule; or `airy`, the
//!   in-focus widefield (Born & Wolf) PSF of a circular pupil from the numerical aperture,
//!   the emission wavelength and the pixel size, applied per plane through its exact
//!   optical transfer function `(2/π)(acos ρ − ρ√(1 − ρ²))`, `ρ = f / (2 NA / λ)`, on the
//!   mirrored image (so its border rule is always `symmetric`); or `born_wolf`, the 3D
//!   widefield PSF of a stack (scalar Born & Wolf model with paraxial defocus, also from
//!   the immersion's refractive index and the z step; [`crate::psf`]), applied to the
//!   whole mirrored stack through its transfer function, computed once per job; or
//!   `image`, a measured or computed PSF given as an image (`psf_image`: a TIFF file on
//!   the command line, an open image in ImageJ), applied by FFT convolution of the
//!   mirrored image ([`crate::convolve`]), with the exact transpose of that operator for
//!   `Kᵀ` (a measured PSF need not be symmetric) and the EM normalisation by `Kᵀ 1`, which
//!   differs from 1 near the borders for an asymmetric PSF. Its centre is the pixel at
//!   `size / 2` on each axis; negative samples (over-subtracted background) are set to 0
//!   and it is normalised to sum 1, so the flux is kept. A single-plane PSF deconvolves each plane
//!   of a stack on its own; a PSF of several planes couples them. A PSF larger than the
//!   image is fine (the mirroring repeats), but costs transforms of its size.
//! - Input: negative values (offset-subtracted noise) are not photons; they are treated as
//!   0. The start is a flat image at the data's mean (default: on the benchmark scene, 30
//!   iterations from it score 28.9 dB against the object, from the image itself 26.9 dB,
//!   whose noise is amplified from the first iteration), or the image itself (floored at
//!   10⁻³ of its mean so that no pixel is stuck at 0, since a multiplicative update cannot
//!   leave 0).
//!   Where the re-blurred estimate vanishes the ratio is taken as 1 (no change).
//! - 0 iterations returns the input unchanged.
//!
//! Cost: two blurs per iteration (the Gaussian's cost, or a DCT of each plane, of the
//! whole stack for Born–Wolf, and back for the optical PSFs), plus one gradient pass with
//! TV. With `start = mean`, `border = zero`
//! and a Gaussian PSF this is exactly `skimage.restoration.richardson_lucy(clip=False)`
//! on an image of mean 0.5 (tested).
//!
//! # References
//! W. H. Richardson, "Bayesian-based iterative method of image restoration", JOSA 62,
//! 1972, doi:10.1364/JOSA.62.000055.
//! L. B. Lucy, "An iterative technique for the rectification of observed distributions",
//! Astron. J. 79, 1974, doi:10.1086/111605.
//! N. Dey et al., "Richardson–Lucy algorithm with total variation regularization for 3D
//! confocal microscope deconvolution", Microsc. Res. Tech. 69, 2006, doi:10.1002/jemt.20294.
//! M. Born, E. Wolf, "Principles of Optics", 7th ed., Cambridge 1999, §8.5.

use crate::border::BorderMode;
use crate::control::Control;
use crate::convolve::Convolver;
use crate::descriptor::{
    DefaultValue, Dims, ImageInput, MethodDescriptor, MethodKind, ParamSpec, Resolved, Unit,
};
use crate::error::{DenoiseError, Result};
use crate::descriptor::Memory;
use crate::methods::gaussian::{GaussianParams, denoise_gaussian};
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::{Array3, Zip};
use rayon::prelude::*;

crate::choice_enum! {
    /// The point spread functions Richardson–Lucy deconvolves.
    pub enum PsfModel {
        /// A Gaussian of given widths.
        Gaussian = "gaussian",
        /// The in-focus widefield PSF of the optics.
        Airy = "airy",
        /// The 3D widefield PSF of the optics.
        BornWolf = "born_wolf",
        /// A measured PSF, given as an image.
        Image = "image",
    }
}

crate::choice_enum! {
    /// Richardson–Lucy's first estimate.
    pub enum StartEstimate {
        /// A flat image at the data's mean.
        Mean = "mean",
        /// The image itself.
        Image = "image",
    }
}

crate::method_params! {
    /// Parameters of [`denoise_richardson_lucy`].
    pub struct RichardsonLucyParams {
        /// Number of iterations. More = sharper and noisier (without TV); 0 returns the
        /// input unchanged. 10 to 50 is usual.
        iterations: usize = ParamSpec::int("Iterations", 0, 10_000, 30).unit(Unit::Count),
        /// PSF model: gaussian (give its sigma), airy (in-focus widefield PSF from the
        /// optics: NA, wavelength, pixel size), born_wolf (the 3D widefield PSF of a
        /// stack: also the refractive index and the z step) or image (a measured PSF,
        /// given as psf_image, centred, at the image's pixel size).
        psf: PsfModel = ParamSpec::choice("PSF", PsfModel::NAMES, PsfModel::Gaussian.name()),
        /// Gaussian PSF: standard deviation in x and y, in pixels.
        psf_sigma: f64 = crate::psf::GAUSSIAN_SIGMA,
        /// Gaussian PSF: standard deviation across planes; 0 deconvolves each plane on its own.
        psf_sigma_z: f64 = ParamSpec::float("PSF sigma (z)", 0.0, 50.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0)).unit(Unit::Pixels),
        /// Airy PSF: numerical aperture of the objective.
        na: f64 = ParamSpec::float("Numerical aperture", 0.05, 1.7, DefaultValue::Fixed(1.4)),
        /// Airy PSF: emission wavelength, in nanometres.
        wavelength: f64 = ParamSpec::float("Wavelength", 200.0, 2000.0, DefaultValue::Fixed(520.0)).unit(Unit::Nanometres),
        /// Airy PSF: pixel size in the sample plane, in nanometres.
        pixel_size: f64 = ParamSpec::float("Pixel size", 1.0, 100_000.0, DefaultValue::Fixed(65.0)).unit(Unit::Nanometres),
        /// Born–Wolf PSF: refractive index of the immersion medium (1.515 oil, 1.33
        /// water, 1.0 air); above the numerical aperture.
        refractive_index: f64 = ParamSpec::float("Refractive index", 1.0, 2.0, DefaultValue::Fixed(1.515)),
        /// Born–Wolf PSF: distance between planes, in nanometres.
        z_step: f64 = ParamSpec::float("Z step", 1.0, 100_000.0, DefaultValue::Fixed(200.0)).along_z().unit(Unit::Nanometres),
        /// Total-variation weight (Dey et al.); 0 = plain Richardson–Lucy, 0.002 is typical.
        /// Larger = flatter regions, fewer noise speckles. It stops at 0.005: from about
        /// 0.01 the iteration turns chaotic, and rounding, not the data, decides pixels.
        tv: f64 = ParamSpec::float("TV weight", 0.0, 0.005, DefaultValue::Fixed(0.0)),
        /// First estimate: a flat image at the data's mean (the usual choice: early iterations
        /// stay smooth, so noise builds up later), or the image itself (sharper sooner).
        start: StartEstimate = ParamSpec::choice("Start", StartEstimate::NAMES, StartEstimate::Mean.name()),
        /// Border rule of the Gaussian blur (the Airy and Born–Wolf PSFs always mirror:
        /// symmetric).
        border: BorderMode = ParamSpec::choice("Border", BorderMode::NAMES, "symmetric"),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "richardson_lucy",
    name: "Richardson-Lucy deconvolution",
    category: "Deconvolution",
    summary: "Iterative maximum-likelihood deconvolution for photon-count data with a \
              Gaussian, in-focus widefield (Airy) or 3D widefield (Born-Wolf) PSF, \
              optionally TV-regularised. \
              Sharpens blurred fluorescence images; the iteration count trades sharpness \
              against noise. Negative values (background subtracted below 0) are taken as 0.",
    references: &[
        "W. H. Richardson, Bayesian-based iterative method of image restoration, JOSA 1972, \
         doi:10.1364/JOSA.62.000055",
        "L. B. Lucy, An iterative technique for the rectification of observed distributions, \
         Astron. J. 1974, doi:10.1086/111605",
        "N. Dey et al., Richardson-Lucy algorithm with total variation regularization for 3D \
         confocal microscope deconvolution, Microsc. Res. Tech. 2006, doi:10.1002/jemt.20294",
        "M. Born, E. Wolf, Principles of Optics, 7th ed., Cambridge 1999, sections 8.5 and 8.8",
    ],
    kind: MethodKind::Deconvolve,
    dims: Dims::D2D3,
    params: RichardsonLucyParams::SPECS,
    images: &[ImageInput {
        key: PSF_IMAGE,
        label: "PSF image",
        help: "The measured PSF for psf=image: a bead image or a computed PSF at the \
               image's pixel size (and z step), centred, background subtracted; one plane \
               for plane-by-plane deconvolution, several planes for a 3D PSF.",
        when: ("psf", PsfModel::Image.name()),
        example: example_psf,
    }],
    gpu_tolerance: Some(1e-4),
    identity: &[("iterations", "0")],
    quick: &[("iterations", "4")],
    support,
    memory: Memory {
        volume: 6.0,
        plane: 0.0,
    },
    memory_for: Some(memory_for),
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

/// The key of the PSF image input.
pub const PSF_IMAGE: &str = "psf_image";

/// The default Gaussian PSF (σ 1.5 in x and y; on a stack also 1 across planes, the
/// tests' 3D setting) as an image: the example PSF image.
fn example_psf(input: VolumeView<'_>) -> Volume {
    let depth = input.dim().0;
    sampled_gaussian_psf(1.5, if depth > 1 { 1.0 } else { 0.0 })
}

/// The Gaussian PSF of `sigma` (and `sigma_z` across planes, if positive) sampled with
/// the Gaussian path's own taps, so that as a PSF image it gives the Gaussian path's
/// result.
fn sampled_gaussian_psf(sigma: f64, sigma_z: f64) -> Volume {
    let kxy = crate::methods::gaussian::gaussian_kernel(sigma);
    let kz = if sigma_z > 0.0 {
        crate::methods::gaussian::gaussian_kernel(sigma_z)
    } else {
        vec![1.0]
    };
    Array3::from_shape_fn((kz.len(), kxy.len(), kxy.len()), |(z, y, x)| {
        kz[z] * kxy[y] * kxy[x]
    })
}

/// The Born–Wolf PSF filters the whole stack at once (a transposed copy in the 3D
/// transforms of `spectral`), holds its transfer function's octant, and computes that
/// octant through a double-precision copy (measured peak: 9.4 copies). A PSF image needs
/// its spectrum and a block's on the padded grid ([`Convolver::memory_ratio`]), and
/// `Kᵀ 1` when it is asymmetric.
fn memory_for(r: &Resolved, s: Shape) -> Memory {
    match (r.get::<PsfModel>("psf"), r.image(PSF_IMAGE)) {
        (Ok(PsfModel::BornWolf), _) => Memory {
            volume: 9.0,
            plane: 1.5,
        },
        // Plus `Kᵀ 1` for an asymmetric PSF (counted always: a symmetric one is rare in
        // measured data).
        (Ok(PsfModel::Image), Some(psf)) => Memory {
            volume: DESCRIPTOR.memory.volume
                + 1.0
                + Convolver::memory_ratio(psf.dim(), (s.depth, s.height, s.width)),
            plane: 0.0,
        },
        _ => DESCRIPTOR.memory,
    }
}

use crate::descriptor::GLOBAL_SUPPORT as GLOBAL;

fn support(_: &Resolved) -> Result<[usize; 3]> {
    // Every output pixel depends on the whole stack: the flat start, the start's floor,
    // the ratio guard and the TV smoothing are all set from the data's mean (that is what
    // makes the method scale-equivariant), and the Airy path filters whole planes. A crop
    // or a window of planes would see another mean.
    Ok([GLOBAL; 3])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    let p = RichardsonLucyParams::from_resolved(r)?;
    match (p.psf, r.image(PSF_IMAGE)) {
        (PsfModel::Image, Some(psf)) => denoise_richardson_lucy_psf(v, &p, psf.view(), ctl),
        _ => denoise_richardson_lucy(v, &p, ctl),
    }
}

/// Richardson–Lucy deconvolution; see the module docs.
///
/// # Errors
/// [`DenoiseError::ParamOutOfRange`], [`DenoiseError::InvalidParamValue`] (a border other
/// than `symmetric` with an optical PSF; `psf = image`, which needs
/// [`denoise_richardson_lucy_psf`]), [`DenoiseError::InvalidInput`],
/// [`DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_gaussian, denoise_richardson_lucy, BorderMode, Control,
///                       GaussianParams, PsfModel, RichardsonLucyParams, StartEstimate};
/// use ndarray::Array3;
/// let mut obj = Array3::<f32>::from_elem((1, 33, 33), 1.0);
/// obj[(0, 16, 16)] = 50.0;
/// let blur = GaussianParams { sigma: 1.5, sigma_z: 0.0, border: BorderMode::Symmetric };
/// let seen = denoise_gaussian(obj.view(), &blur, &Control::new()).unwrap();
/// let p = RichardsonLucyParams { iterations: 50, psf: PsfModel::Gaussian, psf_sigma: 1.5,
///     psf_sigma_z: 0.0, na: 1.4, wavelength: 520.0, pixel_size: 65.0,
///     refractive_index: 1.515, z_step: 200.0, tv: 0.0, start: StartEstimate::Image,
///     border: BorderMode::Symmetric };
/// let out = denoise_richardson_lucy(seen.view(), &p, &Control::new()).unwrap();
/// // The point comes back much sharper, and the total intensity is kept.
/// assert!(out[(0, 16, 16)] > 2.0 * seen[(0, 16, 16)]);
/// assert!((out.sum() - seen.sum()).abs() < 1e-3 * seen.sum());
/// ```
pub fn denoise_richardson_lucy(
    input: VolumeView<'_>,
    p: &RichardsonLucyParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let start = setup(input, p)?;
    iterate(start, p, &Blur::new(p, Shape::of(&input)), ctl)
}

/// Richardson–Lucy deconvolution with a PSF given as an image (`p.psf` must be `image`);
/// see the module docs for how the PSF is used.
///
/// # Errors
/// As [`denoise_richardson_lucy`], and [`DenoiseError::InvalidParamValue`] for a PSF that
/// has non-finite or no positive samples, or several planes for a single-plane input.
pub fn denoise_richardson_lucy_psf(
    input: VolumeView<'_>,
    p: &RichardsonLucyParams,
    psf: VolumeView<'_>,
    ctl: &Control,
) -> Result<Volume> {
    match setup_measured(input, p, psf, ctl)? {
        MeasuredStart::Done(v) => Ok(v),
        MeasuredStart::Iterate(s, m) => iterate(
            Start::Iterate(s),
            p,
            &Blur::Measured(Box::new(m.convolver), m.norm),
            ctl,
        ),
    }
}

/// A PSF image made ready to deconvolve with ([`setup_measured`]), shared with the GPU
/// backend so that both devices use the same kernel, padding and normalisation.
pub struct MeasuredPsf {
    /// The PSF, negative samples clipped, normalised to sum 1.
    pub kernel: Volume,
    /// Its convolver for the input's shape.
    pub convolver: Convolver,
    /// `Kᵀ 1` when the PSF is asymmetric, by which the back-projection is divided (a
    /// sample where it is at most [`UNSEEN`] keeps its estimate); `None` when symmetric.
    pub norm: Option<Volume>,
}

/// Host memory a device's run holds besides its staging copies, in copies of the image of
/// shape `s`: the setup's data and start estimate, and for a PSF image the convolver
/// [`setup_measured`] builds (its spectrum and scratch), `Kᵀ 1`, and the wrapped kernel and
/// its complex copy while the transfer function is uploaded.
pub fn device_host_copies(r: &Resolved, s: Shape) -> f32 {
    let dims = (s.depth, s.height, s.width);
    let measured = match (r.get::<PsfModel>("psf"), r.image(PSF_IMAGE)) {
        (Ok(PsfModel::Image), Some(psf)) => {
            // The convolver's four spectrum-sized buffers, `Kᵀ 1`, and the wrapped kernel
            // with its complex copy: three of those buffers' size.
            let conv = Convolver::memory_ratio(psf.dim(), dims);
            conv + 1.0 + 0.75 * conv
        }
        _ => 0.0,
    };
    2.0 + measured
}

/// `Kᵀ 1` at or below this: a sample no output sees.
pub const UNSEEN: f32 = 1e-6;

/// Either the finished result or the iteration's setup and the measured PSF.
pub enum MeasuredStart {
    /// The result, without iterating.
    Done(Volume),
    /// Iterate from this, with this PSF.
    Iterate(Setup, Box<MeasuredPsf>),
}

/// Checks the parameters, the input and the PSF image `psf` (before anything else, so
/// that a bad one is reported even where the result would not need it: 0 iterations),
/// and sets up the iteration with it.
///
/// # Errors
/// As [`denoise_richardson_lucy_psf`].
pub fn setup_measured(
    input: VolumeView<'_>,
    p: &RichardsonLucyParams,
    psf: VolumeView<'_>,
    ctl: &Control,
) -> Result<MeasuredStart> {
    p.validate()?;
    check_input(&input)?;
    let kernel = checked_psf(&psf, input.dim())?;
    let s = match setup_with(input, p, true)? {
        Start::Done(v) => return Ok(MeasuredStart::Done(v)),
        Start::Iterate(s) => s,
    };
    let use_z_tv = input.dim().0 > 1 && psf.dim().0 > 1;
    let (convolver, norm) = measured(&kernel, input.dim(), &ctl.quiet())?;
    Ok(MeasuredStart::Iterate(
        Setup { use_z_tv, ..s },
        Box::new(MeasuredPsf {
            kernel,
            convolver,
            norm,
        }),
    ))
}

/// Checks a PSF image against the input's shape, clips its negative samples and
/// normalises it to sum 1.
fn checked_psf(psf: &VolumeView<'_>, dims: (usize, usize, usize)) -> Result<Volume> {
    let (kd, kh, kw) = psf.dim();
    let d = dims.0;
    let refuse = |expected: String| DenoiseError::InvalidParamValue {
        name: PSF_IMAGE.into(),
        value: format!("a {kd}x{kh}x{kw} image"),
        expected,
    };
    if psf.is_empty() {
        return Err(refuse("a PSF with at least one pixel".into()));
    }
    if psf.iter().any(|v| !v.is_finite()) {
        return Err(refuse(
            "finite values (it has NaN or infinite pixels)".into(),
        ));
    }
    if kd > 1 && d == 1 {
        return Err(refuse(format!(
            "a single-plane PSF for a single-plane image (this one has {kd} planes)"
        )));
    }
    let positive = psf.mapv(|v| f64::from(v.max(0.0)));
    let sum = positive.sum();
    if !(sum > 0.0 && sum.is_finite()) {
        return Err(refuse("a PSF with positive values".into()));
    }
    Ok(positive.mapv(|v| (v / sum) as f32))
}

/// The iteration from `start`; shared by every PSF.
fn iterate(start: Start, p: &RichardsonLucyParams, blur: &Blur, ctl: &Control) -> Result<Volume> {
    let Setup {
        f,
        mut u,
        tiny,
        eps2,
        use_z_tv,
    } = match start {
        Start::Done(v) => return Ok(v),
        Start::Iterate(s) => s,
    };
    let quiet = ctl.quiet();
    // Two work volumes, reused by every iteration.
    let mut ratio = Array3::<f32>::zeros(f.dim());
    let mut corr = Array3::<f32>::zeros(f.dim());
    for _ in 0..p.iterations {
        let reg = (p.tv > 0.0).then(|| tv_divergence(&u, use_z_tv, eps2));
        blur.apply_into(&u, &mut ratio, &quiet)?;
        Zip::from(&mut ratio).and(&f).par_for_each(|k, &fv| {
            *k = if *k > tiny { fv / *k } else { 1.0 };
        });
        blur.adjoint_into(&ratio, &mut corr, &quiet)?;
        match reg {
            // tv ≤ 0.005 and |div| ≤ 2·ndim ≤ 6 keep the denominator ≥ 0.97: no sign flips.
            Some(div) => Zip::from(&mut u)
                .and(&corr)
                .and(&div)
                .par_for_each(|u, &c, &d| *u = *u * c / (1.0 - p.tv as f32 * d)),
            None => Zip::from(&mut u).and(&corr).par_for_each(|u, &c| *u *= c),
        }
        ctl.advance(1, p.iterations as u64)?;
    }
    Ok(u)
}

/// What the iteration starts from; shared with the GPU backend so that both devices
/// begin from the same data, estimate and guards.
pub struct Setup {
    /// The data, negative values set to 0.
    pub f: Volume,
    /// The first estimate.
    pub u: Volume,
    /// Ratios where `K u` is at most this are left at 1: such pixels have no estimate to
    /// correct, and f / (tiny) would blow up.
    pub tiny: f32,
    /// Smoothing of |∇u| in the TV term, in the image's units so that scaling commutes.
    pub eps2: f32,
    /// Whether the TV term includes the z gradient (a 3D Gaussian PSF on a stack).
    pub use_z_tv: bool,
}

/// Either the finished result (no iterations, or no photons) or the iteration's setup.
pub enum Start {
    /// The result, without iterating.
    Done(Volume),
    /// Iterate from this.
    Iterate(Setup),
}

/// Checks the PSF choice and sets up the iteration for `input`.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] for a border other than `symmetric` with an optical
/// or measured PSF, and for `psf = image` (whose PSF this does not see:
/// [`denoise_richardson_lucy_psf`]).
pub fn setup(input: VolumeView<'_>, p: &RichardsonLucyParams) -> Result<Start> {
    setup_with(input, p, false)
}

fn setup_with(input: VolumeView<'_>, p: &RichardsonLucyParams, has_psf: bool) -> Result<Start> {
    if p.psf == PsfModel::Image && !has_psf {
        return Err(DenoiseError::InvalidParamValue {
            name: "psf".into(),
            value: "image".into(),
            expected: format!(
                "a PSF image given as {PSF_IMAGE} (a TIFF file on the command line, an open \
                 image in ImageJ), or another PSF model"
            ),
        });
    }
    let optical = p.psf != PsfModel::Gaussian;
    if optical && p.border != BorderMode::Symmetric {
        return Err(DenoiseError::InvalidParamValue {
            name: "border".into(),
            value: p.border.name().into(),
            expected: format!(
                "symmetric with psf={} (the PSF is applied in the Fourier domain of the \
                 mirrored image)",
                p.psf
            ),
        });
    }
    let depth = input.dim().0;
    if p.psf == PsfModel::BornWolf {
        if depth < 2 {
            return Err(DenoiseError::InvalidParamValue {
                name: "psf".into(),
                value: "born_wolf".into(),
                expected: "a stack of at least 2 planes (for a single plane use psf=airy)".into(),
            });
        }
        if p.na >= p.refractive_index {
            return Err(DenoiseError::ParamOutOfRange {
                name: "na".into(),
                value: crate::fmt_num(p.na),
                min: "0.05".into(),
                max: format!(
                    "below refractive_index = {}",
                    crate::fmt_num(p.refractive_index)
                ),
            });
        }
    }
    if p.iterations == 0 {
        return Ok(Start::Done(input.to_owned()));
    }
    let (lo, hi) = crate::volume::min_max(&input);
    if hi <= 0.0 && lo < 0.0 {
        // Taken as 0 like any negative value, every pixel would be: a black image.
        return Err(DenoiseError::invalid(format!(
            "richardson_lucy deconvolves light, which is 0 or more, and every pixel here is \
             0 or less ({} to {}): add the camera offset (or a constant) back so that the \
             background is 0 or more",
            crate::fmt_num(f64::from(lo)),
            crate::fmt_num(f64::from(hi))
        )));
    }
    let f: Volume = input.mapv(|v| v.max(0.0));
    let n = f.len() as f64;
    let mean = f.par_iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    if mean <= crate::volume::MIN_RANGE {
        // No photons anywhere (or only at the level of float rounding, where the guards
        // below would underflow to 0: found by fuzzing): the only non-negative
        // explanation is an empty object.
        return Ok(Start::Done(f));
    }
    let u = match p.start {
        StartEstimate::Mean => Array3::from_elem(f.dim(), mean as f32),
        StartEstimate::Image => {
            let floor = (1e-3 * mean) as f32;
            f.mapv(|v| v.max(floor))
        }
    };
    Ok(Start::Iterate(Setup {
        f,
        u,
        tiny: ((1e-12 * mean) as f32).max(f32::MIN_POSITIVE),
        // The TV direction ∇u/|∇u| is ill-defined where u is flat, and TV makes u flat:
        // with a tiny eps (it was 1e-3·mean) the last bit of the input decided single
        // pixels (0.16% of the range on the nuclei at tv = 0.002, 1% at 0.01; a real
        // GPU's rounding gave 0.4%). At 0.1·mean the same changes stay near 1e-6 up to
        // tv = 0.0075 and the error against the truth moves by 0.3% (tests/conditioning.rs).
        eps2: (((0.1 * mean) * (0.1 * mean)) as f32).max(f32::MIN_POSITIVE),
        use_z_tv: depth > 1
            && (p.psf == PsfModel::BornWolf || (p.psf == PsfModel::Gaussian && p.psf_sigma_z > 0.0)),
    }))
}

/// The Airy PSF's transfer function for one plane, as a spectral filter (the CPU and GPU
/// apply the same one).
pub fn airy_filter(p: &RichardsonLucyParams) -> crate::spectral::Filter {
    let cutoff = 2.0 * p.na * p.pixel_size / p.wavelength;
    crate::spectral::Filter::new(
        false,
        Box::new(move |_, fy, fx| airy_otf((fx * fx + fy * fy).sqrt() / cutoff)),
    )
}

/// The optical PSFs as spectral filters for a stack of `dims` (`None` for the Gaussian,
/// which is convolved directly). The CPU and the GPU apply the same filter.
pub fn psf_filter(
    p: &RichardsonLucyParams,
    dims: (usize, usize, usize),
) -> Option<crate::spectral::Filter> {
    match p.psf {
        PsfModel::Airy => Some(airy_filter(p)),
        PsfModel::BornWolf => Some(crate::psf::born_wolf_filter(
            &crate::psf::Widefield {
                na: p.na,
                wavelength: p.wavelength,
                refractive_index: p.refractive_index,
                pixel_size: p.pixel_size,
                z_step: p.z_step,
            },
            dims,
        )),
        PsfModel::Gaussian | PsfModel::Image => None,
    }
}

/// A measured PSF as an operator on images of `dims`, and `Kᵀ 1` when it is asymmetric.
/// With mirrored borders an asymmetric PSF's operator has column sums `Kᵀ 1` other than 1
/// near the borders, so the EM update divides by them (Richardson–Lucy's normalisation,
/// which a PSF of sum 1 otherwise makes 1): the back-projection returns `Kᵀ r / Kᵀ 1`.
fn measured(kernel: &Volume, dims: (usize, usize, usize), ctl: &Control) -> Result<(Convolver, Option<Volume>)> {
    let conv = Convolver::new(&kernel.view(), dims)?;
    let norm = if conv.is_symmetric() {
        None
    } else {
        let mut n = Volume::zeros(dims);
        conv.apply_into(&Volume::ones(dims), true, &mut n, ctl)?;
        Some(n)
    };
    Ok((conv, norm))
}

/// The PSF as an operator. The models are symmetric (`Kᵀ = K`); a measured PSF need not
/// be.
enum Blur {
    Gaussian(GaussianParams),
    Spectral(crate::spectral::Filter),
    /// A measured PSF, and `Kᵀ 1` when it is asymmetric (see [`measured`]).
    Measured(Box<Convolver>, Option<Volume>),
}

impl Blur {
    fn new(p: &RichardsonLucyParams, s: Shape) -> Self {
        match psf_filter(p, (s.depth, s.height, s.width)) {
            Some(f) => Self::Spectral(f),
            None => Self::Gaussian(GaussianParams {
                sigma: p.psf_sigma,
                sigma_z: if s.depth > 1 { p.psf_sigma_z } else { 0.0 },
                border: p.border,
            }),
        }
    }

    /// `K u` into `out` (same shape), without allocating for a 2D Gaussian or a measured
    /// PSF.
    fn apply_into(&self, u: &Volume, out: &mut Volume, ctl: &Control) -> Result<()> {
        match self {
            Self::Measured(c, _) => c.apply_into(u, false, out, ctl),
            Self::Gaussian(g) if g.sigma_z == 0.0 => {
                crate::methods::gaussian::blur_plane_into(&u.view(), g.sigma, g.border, out, ctl)
            }
            _ => {
                *out = self.apply(u, ctl)?;
                Ok(())
            }
        }
    }

    /// `Kᵀ u` into `out`.
    fn adjoint_into(&self, u: &Volume, out: &mut Volume, ctl: &Control) -> Result<()> {
        match self {
            Self::Measured(c, norm) => {
                c.apply_into(u, true, out, ctl)?;
                if let Some(norm) = norm {
                    // A sample no output sees (Kᵀ 1 = 0) keeps its estimate.
                    Zip::from(&mut *out).and(norm).par_for_each(|o, &n| {
                        *o = if n > UNSEEN { *o / n } else { 1.0 };
                    });
                }
                Ok(())
            }
            _ => self.apply_into(u, out, ctl),
        }
    }

    fn apply(&self, u: &Volume, ctl: &Control) -> Result<Volume> {
        match self {
            Self::Gaussian(g) => denoise_gaussian(u.view(), g, ctl),
            Self::Spectral(filter) => filter.apply(&u.view(), ctl),
            Self::Measured(..) => {
                let mut out = Volume::zeros(u.dim());
                self.apply_into(u, &mut out, ctl)?;
                Ok(out)
            }
        }
    }
}

/// The incoherent OTF of an aberration-free circular pupil at normalised frequency `rho`
/// (1 = cut-off 2 NA / λ); 1 at zero frequency.
pub fn airy_otf(rho: f64) -> f64 {
    if rho >= 1.0 {
        0.0
    } else {
        std::f64::consts::FRAC_2_PI * (rho.acos() - rho * (1.0 - rho * rho).sqrt())
    }
}

/// `div(∇u / |∇u|_ε)` with forward differences for the gradient and backward differences
/// for the divergence (its adjoint), Neumann at the borders.
fn tv_divergence(u: &Volume, use_z: bool, eps2: f32) -> Volume {
    let (d, h, w) = u.dim();
    let at = |z: usize, y: usize, x: usize| u[(z, y, x)];
    // Normalised gradient field, one component per axis.
    let mut px = Array3::<f32>::zeros((d, h, w));
    let mut py = Array3::<f32>::zeros((d, h, w));
    let mut pz = Array3::<f32>::zeros((d, h, w));
    Zip::indexed(&mut px)
        .and(&mut py)
        .and(&mut pz)
        .par_for_each(|(z, y, x), px, py, pz| {
            let c = at(z, y, x);
            let gx = if x + 1 < w { at(z, y, x + 1) - c } else { 0.0 };
            let gy = if y + 1 < h { at(z, y + 1, x) - c } else { 0.0 };
            let gz = if use_z && z + 1 < d {
                at(z + 1, y, x) - c
            } else {
                0.0
            };
            let norm = (gx * gx + gy * gy + gz * gz + eps2).sqrt();
            (*px, *py, *pz) = (gx / norm, gy / norm, gz / norm);
        });
    Array3::from_shape_fn((d, h, w), |(z, y, x)| {
        // Backward differences with p = 0 outside (the adjoint of the forward gradient
        // whose last difference is 0).
        let bx = px[(z, y, x)] - if x > 0 { px[(z, y, x - 1)] } else { 0.0 };
        let by = py[(z, y, x)] - if y > 0 { py[(z, y - 1, x)] } else { 0.0 };
        let bz = if use_z {
            pz[(z, y, x)] - if z > 0 { pz[(z - 1, y, x)] } else { 0.0 }
        } else {
            0.0
        };
        bx + by + bz
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airy_otf_is_one_at_zero_and_vanishes_at_the_cutoff() {
        assert!((airy_otf(0.0) - 1.0).abs() < 1e-15);
        assert!(airy_otf(0.999_999) < 1e-8);
        assert_eq!(airy_otf(1.0), 0.0);
        // Half the cut-off: (2/π)(π/3 − (1/2)(√3/2)) = 0.3910.
        assert!((airy_otf(0.5) - 0.391_002_218_955_771).abs() < 1e-12);
    }

    fn params() -> RichardsonLucyParams {
        RichardsonLucyParams {
            iterations: 30,
            psf: PsfModel::Gaussian,
            psf_sigma: 1.5,
            psf_sigma_z: 0.0,
            na: 1.4,
            wavelength: 520.0,
            pixel_size: 65.0,
            refractive_index: 1.515,
            z_step: 200.0,
            tv: 0.0,
            start: StartEstimate::Image,
            border: BorderMode::Symmetric,
        }
    }

    /// The phantom's sharp object (before any PSF, without noise).
    fn sharp_object(shape: (usize, usize, usize), seed: u64) -> Volume {
        crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape,
            seed,
            psf_sigma: 0.0,
            read_noise: 0.0,
            ..Default::default()
        })
        .clean
    }

    /// The phantom's sharp object and its observation through `p`'s PSF with Gaussian noise.
    fn observe(p: &RichardsonLucyParams, noise: f64) -> (Volume, Volume) {
        let object = sharp_object((1, 80, 72), 21);
        let k = Blur::new(p, Shape::of(&object.view()));
        let seen = k.apply(&object, &Control::new()).unwrap();
        (object, crate::phantom::add_gaussian_noise(&seen, noise, 22))
    }

    fn mse(a: &Volume, b: &Volume) -> f64 {
        crate::metrics::mse(&a.view(), &b.view()).unwrap()
    }

    #[test]
    fn an_image_with_no_light_left_after_subtraction_is_refused() {
        let (_, seen) = observe(&params(), 0.01);
        let negative = seen.mapv(|v| v - 2.0);
        let e = denoise_richardson_lucy(negative.view(), &params(), &Control::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("every pixel here is 0 or less"), "{e}");
        // Some light left: the negative values are taken as 0, as documented.
        let half = seen.mapv(|v| v - 0.5);
        denoise_richardson_lucy(half.view(), &params(), &Control::new()).unwrap();
    }

    #[test]
    fn born_wolf_psf_deconvolves_a_stack() {
        use crate::phantom::{PhantomSpec, add_gaussian_noise, phantom};
        // 60x/1.4 oil, 520 nm, 100 nm pixels, 250 nm planes.
        let p = RichardsonLucyParams {
            psf: PsfModel::BornWolf,
            na: 1.4,
            pixel_size: 100.0,
            z_step: 250.0,
            iterations: 60,
            start: StartEstimate::Mean,
            ..params()
        };
        let object = phantom(&PhantomSpec {
            shape: (10, 40, 36),
            seed: 23,
            psf_sigma: 0.0,
            read_noise: 0.0,
            ..Default::default()
        })
        .clean;
        let k = Blur::new(&p, Shape::of(&object.view()));
        let seen = add_gaussian_noise(&k.apply(&object, &Control::new()).unwrap(), 0.002, 24);
        let out = denoise_richardson_lucy(seen.view(), &p, &Control::new()).unwrap();
        let (before, after) = (mse(&seen, &object), mse(&out, &object));
        assert!(after < 0.8 * before, "MSE {before} -> {after}");
        // Flux is kept (the OTF is 1 at zero frequency).
        let (a, b) = (
            f64::from(out.sum()),
            f64::from(seen.mapv(|v| v.max(0.0)).sum()),
        );
        assert!((a - b).abs() < 1e-3 * b, "{a} vs {b}");
        // A single plane has no z to deconvolve, and NA cannot reach the medium's index.
        let plane = seen.slice(ndarray::s![0..1, .., ..]).to_owned();
        let e = denoise_richardson_lucy(plane.view(), &p, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("psf=airy"), "{e}");
        let dry = RichardsonLucyParams {
            refractive_index: 1.0,
            ..p
        };
        let e = denoise_richardson_lucy(seen.view(), &dry, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("refractive_index"), "{e}");
    }

    #[test]
    fn psf_image_of_a_gaussian_equals_the_gaussian_psf() {
        // The FFT path with the sampled taps and the direct separable convolution, both
        // with mirrored borders: equal up to float rounding, in 2D and in 3D, with TV.
        // The second PSF has more planes (11) than the stack: it is mirrored, as the
        // Gaussian path's border rule does.
        for (dims, sz, tv) in [((1, 40, 36), 0.0, 0.0), ((9, 24, 20), 1.2, 0.002)] {
            let mut s = 7u64;
            let img = Array3::from_shape_fn(dims, |(z, y, x)| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                10.0 + ((x * 7 + y * 3 + z * 5) % 11) as f32 + (s >> 60) as f32
            });
            let p = RichardsonLucyParams {
                psf_sigma: 1.3,
                psf_sigma_z: sz,
                tv,
                iterations: 20,
                ..params()
            };
            let want = denoise_richardson_lucy(img.view(), &p, &Control::new()).unwrap();
            let psf = sampled_gaussian_psf(1.3, sz);
            let q = RichardsonLucyParams { psf: PsfModel::Image, ..p };
            let got =
                denoise_richardson_lucy_psf(img.view(), &q, psf.view(), &Control::new()).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-4, "{dims:?}: relative difference {err}");
        }
    }

    #[test]
    fn an_asymmetric_psf_image_is_deconvolved_with_its_adjoint() {
        // A comet-shaped PSF (a motion tail to the right): deconvolving with it must undo
        // the blur; with the mirrored PSF (what using K in place of Kᵀ amounts to) the
        // estimate does not improve as much.
        let object = sharp_object((1, 64, 64), 5);
        let mut psf = Volume::zeros((1, 7, 7));
        for (i, w) in [8.0, 5.0, 3.0, 2.0].iter().enumerate() {
            psf[(0, 3, 3 + i)] = *w;
            psf[(0, 2, 3 + i)] = 0.3 * w;
            psf[(0, 4, 3 + i)] = 0.3 * w;
        }
        let kernel = checked_psf(&psf.view(), object.dim()).unwrap();
        let (conv, norm) = measured(&kernel, object.dim(), &Control::new()).unwrap();
        let k = Blur::Measured(Box::new(conv), norm);
        let mut seen = Volume::zeros(object.dim());
        k.apply_into(&object, &mut seen, &Control::new()).unwrap();
        let p = RichardsonLucyParams {
            psf: PsfModel::Image,
            iterations: 60,
            ..params()
        };
        let out =
            denoise_richardson_lucy_psf(seen.view(), &p, psf.view(), &Control::new()).unwrap();
        let (before, after) = (mse(&seen, &object), mse(&out, &object));
        assert!(after < 0.5 * before, "MSE {before} -> {after}");
        // The flux is kept up to what the mirrored borders let through an asymmetric PSF.
        let flux = (out.sum() - seen.sum()).abs() / seen.sum();
        assert!(flux < 1e-2, "flux changed by {flux}");
        let mirrored = psf.slice(ndarray::s![.., ..;-1, ..;-1]).to_owned();
        let wrong =
            denoise_richardson_lucy_psf(seen.view(), &p, mirrored.view(), &Control::new()).unwrap();
        assert!(mse(&wrong, &object) > 1.5 * after);
    }

    #[test]
    fn bad_psf_images_are_refused_by_name() {
        let img = Volume::from_elem((1, 16, 16), 5.0);
        let p = RichardsonLucyParams {
            psf: PsfModel::Image,
            ..params()
        };
        let run = |psf: Volume| {
            denoise_richardson_lucy_psf(img.view(), &p, psf.view(), &Control::new())
                .unwrap_err()
                .to_string()
        };
        let mut nan = Volume::ones((1, 3, 3));
        nan[(0, 1, 1)] = f32::NAN;
        for (psf, says) in [
            (nan, "finite"),
            (Volume::from_elem((1, 3, 3), -1.0), "positive"),
            (Volume::zeros((0, 3, 3)), "at least one pixel"),
            (Volume::ones((3, 3, 3)), "single-plane PSF"),
        ] {
            let e = run(psf);
            assert!(e.contains("psf_image") && e.contains(says), "{e}");
        }
        // Without the image: the model-PSF entry refuses psf=image, naming the input.
        let e = denoise_richardson_lucy(img.view(), &p, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("psf_image"), "{e}");
        // Through the registry, the image travels with the parameter values.
        let values = crate::ParamValues::new()
            .set("psf", "image")
            .set("iterations", 5)
            .with_image(PSF_IMAGE, sampled_gaussian_psf(1.0, 0.0));
        let out = crate::run("richardson_lucy", img.view(), &values, &Control::new()).unwrap();
        assert!(out.iter().all(|v| (v - 5.0).abs() < 1e-4));
        let unknown = crate::ParamValues::new().with_image("psf_imgae", Volume::ones((1, 1, 1)));
        let e = crate::run("richardson_lucy", img.view(), &unknown, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("psf_image"), "{e}");
    }

    #[test]
    fn airy_psf_is_deconvolved() {
        // 40x/0.6 widefield at 520 nm, 160 nm pixels: an Airy disc about 3 pixels across.
        let p = RichardsonLucyParams {
            psf: PsfModel::Airy,
            na: 0.6,
            pixel_size: 160.0,
            ..params()
        };
        let (object, seen) = observe(&p, 0.005);
        let out = denoise_richardson_lucy(seen.view(), &p, &Control::new()).unwrap();
        let (before, after) = (mse(&seen, &object), mse(&out, &object));
        assert!(after < 0.8 * before, "MSE {before} -> {after}");
        // The Airy path mirrors the image: any other border is refused, naming the rule.
        let bad = RichardsonLucyParams {
            border: BorderMode::Zero,
            ..p
        };
        let e = denoise_richardson_lucy(seen.view(), &bad, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("symmetric"), "{e}");
    }

    #[test]
    fn tv_holds_back_the_noise_of_long_runs() {
        // Plain Richardson-Lucy amplifies noise as iterations go on, most visibly in flat
        // regions; TV keeps it in check there. The object: bright squares on a dim ground.
        use crate::phantom::add_gaussian_noise;
        let object = Array3::from_shape_fn((1, 64, 64), |(_, y, x)| {
            if (y / 16 + x / 16) % 2 == 0 { 1.0 } else { 0.2 }
        });
        let plain = RichardsonLucyParams {
            iterations: 200,
            ..params()
        };
        let k = Blur::new(&plain, Shape::of(&object.view()));
        let seen = add_gaussian_noise(&k.apply(&object, &Control::new()).unwrap(), 0.03, 23);
        let with_tv = RichardsonLucyParams { tv: 0.002, ..plain };
        let a = denoise_richardson_lucy(seen.view(), &plain, &Control::new()).unwrap();
        let b = denoise_richardson_lucy(seen.view(), &with_tv, &Control::new()).unwrap();
        let (ea, eb) = (mse(&a, &object), mse(&b, &object));
        assert!(eb < 0.8 * ea, "TV {eb} vs plain {ea}");
        assert!(b.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn tv_divergence_is_bounded_and_zero_on_constants() {
        let c = Array3::<f32>::from_elem((3, 5, 6), 7.0);
        assert!(tv_divergence(&c, true, 1e-6).iter().all(|&v| v == 0.0));
        let mut rng = crate::phantom::Rng::new(5);
        let noise = Array3::from_shape_fn((3, 9, 8), |_| rng.normal() as f32);
        let worst = tv_divergence(&noise, true, 1e-12)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(worst <= 6.0 + 1e-5, "{worst}");
    }
}
