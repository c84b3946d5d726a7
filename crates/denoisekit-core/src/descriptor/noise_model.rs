//! The parameters every denoiser shares: the noise model and the camera's values, declared
//! once and appended to each denoiser's own by [`super::MethodDescriptor::all_params`];
//! `crate::vst` applies them.

use super::{DefaultValue, ParamSpec, Scale, Unit};

crate::choice_enum! {
    /// The noise models a denoiser can be told to assume.
    pub enum NoiseModelChoice {
        /// Noise that does not depend on the signal.
        Gaussian = "gaussian",
        /// Photon noise plus read noise, variance-stabilised before denoising.
        PoissonGaussian = "poisson_gaussian",
        /// One of the two, chosen from the image.
        Auto = "auto",
    }
}

const PG: &str = NoiseModelChoice::PoissonGaussian.name();

/// The parameters every denoiser shares: the noise model and, for Poisson–Gaussian noise,
/// the camera's gain, offset and read noise.
pub static NOISE_MODEL_PARAMS: [ParamSpec; 4] = [
    ParamSpec::choice(
        "Noise model",
        NoiseModelChoice::NAMES,
        NoiseModelChoice::Auto.name(),
    )
    .named(
        "noise_model",
        "auto (the default): gaussian or poisson_gaussian, chosen from the image with its \
         gain, offset and read noise (`denoisekit noise --auto` says why); the run reports \
         the model and values it used, which replay exactly. Left out where a gain, offset \
         or read noise is given, it is poisson_gaussian with them. gaussian: the noise does not \
         depend on the signal. poisson_gaussian: photon noise plus read noise \
         (fluorescence, low-dose EM): the image is variance-stabilised before denoising \
         and mapped back without bias; strengths in grey levels (h, sigma, lambda...) are \
         then in the stabilised image's units, where the noise is 1, so name the model \
         when you set one by hand.",
    ),
    ParamSpec::float("Gain", 1e-6, 1e6, DefaultValue::Fixed(1.0))
        .scale(Scale::Log)
        .unit(Unit::IntensityPerPhoton)
        .when("noise_model", PG)
        .named(
            "gain",
            "poisson_gaussian only: grey levels per detected photon (electron), from the \
             camera's specification or a photon-transfer measurement.",
        ),
    ParamSpec::float(
        "Offset",
        f64::NEG_INFINITY,
        f64::INFINITY,
        DefaultValue::Fixed(0.0),
    )
    .unit(Unit::Intensity)
    .when("noise_model", PG)
    .named(
        "offset",
        "poisson_gaussian only: the grey level of zero photons (camera baseline).",
    ),
    ParamSpec::float("Read noise", 0.0, 1e9, DefaultValue::Fixed(0.0))
        .unit(Unit::Intensity)
        .when("noise_model", PG)
        .named(
            "read_noise",
            "poisson_gaussian only: standard deviation of the signal-independent noise, \
             in grey levels.",
        ),
];
