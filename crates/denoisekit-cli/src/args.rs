//! The command line itself: clap's types for every subcommand and option.

use crate::*;
use clap::builder::TypedValueParser;

#[derive(Parser)]
#[command(
    name = "denoisekit",
    version,
    about = "Classical image denoisers for microscopy, on the CPU or any GPU"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Markdown,
}

/// `--backend`: one of the library's own names ([`Backend::NAMES`]).
pub(crate) fn backend_arg() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Backend::NAMES)
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// List the methods and their parameters.
    Methods {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Denoise a TIFF image or stack: `denoisekit run nl_means in.tif out.tif h=12 search_radius=6`.
    Run {
        /// Method id (see `denoisekit methods`).
        method: String,
        input: PathBuf,
        output: PathBuf,
        /// Parameters as key=value; unset ones take their defaults.
        params: Vec<String>,
        #[arg(long, value_parser = backend_arg(), default_value = "auto")]
        backend: String,
        /// Write 32-bit float instead of the input's own type.
        #[arg(long)]
        float: bool,
        /// OME-Zarr input: run on a local Dask cluster of N worker processes (default:
        /// one per core).
        #[arg(long, conflicts_with = "scheduler")]
        workers: Option<usize>,
        /// OME-Zarr input: run on the Dask cluster at this scheduler address.
        #[arg(long)]
        scheduler: Option<String>,
        /// OME-Zarr input: continue an interrupted run into the same output.
        #[arg(long, conflicts_with = "overwrite")]
        resume: bool,
        /// OME-Zarr input: replace an existing output store (a TIFF output is always
        /// replaced, once the new one is whole).
        #[arg(long)]
        overwrite: bool,
    },
    /// Choose a method's strength from the image itself (self-supervised, no clean image):
    /// `denoisekit tune nl_means in.tif`; prints the options to pass to `run` or a macro.
    /// `denoisekit tune auto in.tif` tunes every denoiser, ranks them by one self-supervised
    /// loss and prints the expected best last, as `<method> <options>`.
    Tune {
        /// Method id, or `auto` to rank the denoisers.
        method: String,
        input: PathBuf,
        /// Parameters to keep fixed, as key=value (the rest take their defaults).
        params: Vec<String>,
        /// With `auto`: the denoisers to rank, comma-separated (default: every denoiser
        /// whose strength is tunable whatever its other settings).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
    },
    /// Estimate the Gaussian noise standard deviation of an image, in its grey levels; with
    /// --poisson-gaussian, fit var = a·mean + b instead and print the noise-model options.
    Noise {
        input: PathBuf,
        #[arg(long)]
        poisson_gaussian: bool,
        /// Choose between the Gaussian and the Poisson-Gaussian model from the image;
        /// prints why, then the noise-model options to pass to `run`.
        #[arg(long, conflicts_with = "poisson_gaussian")]
        auto: bool,
        /// Measure the noise's spatial correlation between neighbouring pixels (on the
        /// variance-stabilised image when the noise is photon noise); with --auto, printed
        /// as the second line.
        #[arg(long, conflicts_with = "poisson_gaussian")]
        correlation: bool,
    },
    /// Denoise a bundled image with every denoiser, write outputs and a montage, print scores.
    Demo {
        /// Clean image to add noise to (default: the bundled fluorescence nuclei image).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Noise standard deviation as a fraction of the image's intensity range.
        #[arg(long, default_value_t = 0.1, value_parser = finite_in(0.0, 1e6))]
        noise: f64,
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        #[arg(long, value_parser = backend_arg(), default_value = "auto")]
        backend: String,
    },
    /// Write the seeded synthetic test scene (clean and noisy) as TIFFs.
    Phantom {
        /// Noisy output file; the clean scene goes next to it as `<name>_clean.tif`.
        output: PathBuf,
        /// Depth (planes), height and width.
        #[arg(long, num_args = 3, default_values_t = [1, 256, 256],
              value_parser = clap::value_parser!(u32).range(1..=65536).map(|n| n as usize))]
        shape: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gaussian read noise as a fraction of the clean scene's intensity scale.
        #[arg(long, default_value_t = 0.1, value_parser = finite_in(0.0, 1e6))]
        noise: f64,
        /// Grey level of clean intensity 1 (default: 1 for 32-bit files, 100 for 8-bit
        /// and 1000 for 16-bit ones).
        #[arg(long, value_parser = finite_in(1e-6, 1e9))]
        scale: Option<f64>,
        /// Sample type of the files: 8, 16 or 32 (float). Integer files clip the noise
        /// below 0, as a camera without an offset does.
        #[arg(long, default_value_t = 32)]
        bits: u32,
    },
    /// Time methods on an image: one warm-up, then the median of N runs.
    Bench {
        input: PathBuf,
        /// Methods to time, comma-separated or the option repeated (default: all).
        #[arg(long = "method", visible_alias = "methods", value_delimiter = ',')]
        methods: Vec<String>,
        /// Parameters as key=value, applied to every timed method that has them.
        params: Vec<String>,
        /// Timed runs per method, after one warm-up.
        #[arg(long, default_value_t = 5,
              value_parser = clap::value_parser!(u32).range(1..=1000).map(|n| n as usize))]
        repeats: usize,
        #[arg(long, value_parser = backend_arg(), default_value = "auto")]
        backend: String,
        /// Also write each output as float TIFF into this folder (to score against peers).
        #[arg(long)]
        save: Option<PathBuf>,
    },
}

/// A float option that must be finite and within `[lo, hi]`.
fn finite_in(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |text| {
        let v: f64 = text.parse().map_err(|e| format!("{e}"))?;
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is outside [{lo}, {hi}]"))
        }
    }
}
