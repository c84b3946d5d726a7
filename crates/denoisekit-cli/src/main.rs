//! `denoisekit`: the command line of DenoiseKit.
//!
//! Every method and parameter shown or accepted here comes from the core registry;
//! nothing is listed by hand. Parameters are given as `key=value`, exactly as in a
//! recorded ImageJ macro, so a setting tuned in Fiji can be pasted onto the command line.

use clap::{Parser, Subcommand, ValueEnum};
use denoisekit_core::metrics::{psnr, ssim};
use denoisekit_core::tiling::{self, Plan};
use denoisekit_core::volume::min_max;
use denoisekit_core::{
    Backend, Control, DefaultValue, DenoiseError, MethodDescriptor, MethodKind, ParamKind,
    ParamSpec, ParamValues, Resolved, Shape, TuneLoss, Volume, estimate_sigma, fmt_num, memory,
    registry, volume_from_vec,
};
use denoisekit_tiff::{self as tiffio, Bits};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod zarr;

#[derive(Parser)]
#[command(
    name = "denoisekit",
    version,
    about = "Classical image denoisers for microscopy, on the CPU or any GPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Auto,
    Cpu,
    Gpu,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::Gpu => Backend::Gpu,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
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
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
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
        #[arg(long)]
        resume: bool,
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
        /// with a tunable parameter).
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
        #[arg(long)]
        correlation: bool,
    },
    /// Denoise a bundled image with every denoiser, write outputs and a montage, print scores.
    Demo {
        /// Clean image to add noise to (default: the bundled fluorescence nuclei image).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Noise standard deviation as a fraction of the image's intensity range.
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
    },
    /// Write the seeded synthetic test scene (clean and noisy) as TIFFs.
    Phantom {
        /// Noisy output file; the clean scene goes next to it as `<name>_clean.tif`.
        output: PathBuf,
        /// Depth (planes), height and width.
        #[arg(long, num_args = 3, default_values_t = [1, 256, 256])]
        shape: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gaussian read noise as a fraction of the clean scene's intensity scale.
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        /// Grey level of clean intensity 1 (e.g. 1000 for a 16-bit-like image).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Sample type of the files: 8, 16 or 32 (float).
        #[arg(long, default_value_t = 32)]
        bits: u32,
    },
    /// Time methods on an image: one warm-up, then the median of N runs.
    Bench {
        input: PathBuf,
        /// Methods to time (default: all).
        #[arg(long = "method")]
        methods: Vec<String>,
        /// Parameters as key=value, applied to every timed method that has them.
        params: Vec<String>,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// Also write each output as float TIFF into this folder (to score against peers).
        #[arg(long)]
        save: Option<PathBuf>,
    },
}

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // wgpu-hal logs each backend it probes and cannot open (DX12 under Wine, Vulkan
    // without a driver) as an error; the one line that matters, "no usable GPU ...;
    // running on the CPU", is ours. RUST_LOG shows them again.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,wgpu_hal=off"),
    )
    .format_timestamp(None)
    .init();
    match dispatch(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("denoisekit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> CliResult<()> {
    match cmd {
        Cmd::Methods { format } => methods(format),
        Cmd::Run {
            method,
            input,
            output,
            params,
            backend,
            float,
            workers,
            scheduler,
            resume,
        } => {
            if zarr::is_zarr(&input) {
                let cluster = zarr::Cluster {
                    workers,
                    scheduler,
                    resume,
                };
                let b = backend
                    .to_possible_value()
                    .map(|v| v.get_name().to_string());
                return Ok(zarr::run(
                    &method,
                    &input,
                    &output,
                    &params,
                    b.as_deref().unwrap_or("auto"),
                    &cluster,
                )?);
            }
            if workers.is_some() || scheduler.is_some() || resume {
                return Err("--workers, --scheduler and --resume apply to OME-Zarr input".into());
            }
            let values = parse_params(&params)?;
            if let Some(plan) = streaming_plan(&method, &input, &values)? {
                return stream(&method, &input, &output, float, plan);
            }
            let (img, bits) = tiffio::read(&input)?;
            let t = Instant::now();
            let done = denoisekit_gpu::run(
                &method,
                img.view(),
                &values,
                backend.into(),
                &Control::new(),
            )?;
            tiffio::write(&output, &done.volume, if float { Bits::F32 } else { bits })?;
            if denoisekit_core::find(&method)?.kind == MethodKind::Denoise
                && let Some(w) =
                    denoisekit_core::metrics::residual_warning(&img.view(), &done.volume.view())?
            {
                eprintln!("warning: {w}");
            }
            // Full precision: the line can be pasted back to reproduce the result exactly.
            eprintln!(
                "{method} {}{} on {}: {:.1} ms -> {}",
                done.params.to_options(),
                image_words(&params),
                done.device,
                t.elapsed().as_secs_f64() * 1e3,
                output.display()
            );
            Ok(())
        }
        Cmd::Tune {
            method,
            input,
            params,
            methods,
        } => {
            let (img, _) = tiffio::read(&input)?;
            let fixed = parse_params(&params)?;
            let t0 = std::time::Instant::now();
            if method == "auto" {
                let ids: Vec<&str> = methods.iter().map(String::as_str).collect();
                let ranked =
                    denoisekit_core::tune::rank(&ids, img.view(), &fixed, &Control::new())?;
                println!(
                    "{} denoisers tuned and ranked in {:.1} s by the self-supervised loss \
                     (an estimate of the squared error plus the noise variance; lower is better):",
                    ranked.len(),
                    t0.elapsed().as_secs_f64()
                );
                for (i, r) in ranked.iter().enumerate() {
                    let tuned: Vec<String> = r
                        .tuned
                        .tuned
                        .iter()
                        .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                        .collect();
                    println!(
                        "{}{:>2}. {:<22} loss {:.6}  {}",
                        if i == 0 { "*" } else { " " },
                        i + 1,
                        r.id,
                        r.loss,
                        tuned.join(" ")
                    );
                }
                let best = &ranked[0];
                println!(
                    "{} {}{}",
                    best.id,
                    best.tuned.values.to_options(),
                    image_words(&params)
                );
                return Ok(());
            }
            let t = denoisekit_core::tune::tune(&method, img.view(), &fixed, &Control::new())?;
            let tuned: Vec<String> = t
                .tuned
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                .collect();
            println!(
                "{method}: tuned {} in {:.1} ms ({} runs); self-supervised loss {:.6} at the defaults, {:.6} tuned",
                tuned.join(" "),
                t0.elapsed().as_secs_f64() * 1e3,
                t.evaluations,
                t.loss_default,
                t.loss_tuned
            );
            println!("{}{}", t.values.to_options(), image_words(&params));
            Ok(())
        }
        Cmd::Noise {
            input,
            poisson_gaussian,
            auto,
            correlation,
        } => {
            let (img, _) = tiffio::read(&input)?;
            let correlated = |choice: &denoisekit_core::noise::NoiseChoice| {
                match denoisekit_core::correlation::estimate_correlation_for(&img.view(), choice) {
                    Ok(c) => format!(
                        "{}; pointwise noise sd {:.4}{}",
                        c.describe(),
                        c.variance.sqrt(),
                        if matches!(
                            choice.model,
                            denoisekit_core::noise::NoiseModel::Gaussian { .. }
                        ) {
                            ""
                        } else {
                            " (stabilised units)"
                        }
                    ),
                    Err(e) => format!("noise correlation not measured: {e}"),
                }
            };
            if auto {
                let choice = denoisekit_core::noise::choose_noise_model(&img.view())?;
                println!("{}", choice.reason);
                if correlation {
                    println!("{}", correlated(&choice));
                }
                println!("{}", choice.options());
            } else if correlation {
                let choice = denoisekit_core::noise::choose_noise_model(&img.view())?;
                println!("{}", correlated(&choice));
            } else if poisson_gaussian {
                let fit = denoisekit_core::noise::estimate_poisson_gaussian(&img.view())?;
                println!(
                    "var = a*mean + b: a = {:.4} (± {:.2}), b = {:.4} (± {:.2}), from {} intensity levels",
                    fit.a, fit.a_se, fit.b, fit.b_se, fit.levels
                );
                println!("{}", fit.options());
            } else {
                println!("{}", estimate_sigma(&img.view())?);
            }
            Ok(())
        }
        Cmd::Demo {
            input,
            noise,
            out,
            backend,
        } => demo(input, noise, &out, backend.into()),
        Cmd::Phantom {
            output,
            shape,
            seed,
            noise,
            scale,
            bits,
        } => {
            let bits = match bits {
                8 => Bits::U8,
                16 => Bits::U16,
                32 => Bits::F32,
                other => return Err(format!("--bits {other}: expected 8, 16 or 32").into()),
            };
            let p = denoisekit_core::phantom::phantom(&denoisekit_core::phantom::PhantomSpec {
                shape: (shape[0].max(1), shape[1].max(1), shape[2].max(1)),
                seed,
                read_noise: noise,
                ..Default::default()
            });
            let s = scale as f32;
            let clean_path = output.with_file_name(format!(
                "{}_clean.tif",
                output
                    .file_stem()
                    .and_then(|x| x.to_str())
                    .unwrap_or("phantom")
            ));
            tiffio::write(&output, &p.noisy.mapv(|v| v * s), bits)?;
            tiffio::write(&clean_path, &p.clean.mapv(|v| v * s), bits)?;
            eprintln!("wrote {} and {}", output.display(), clean_path.display());
            Ok(())
        }
        Cmd::Bench {
            input,
            methods,
            params,
            repeats,
            backend,
            save,
        } => bench(
            &input,
            &methods,
            &params,
            repeats,
            backend.into(),
            save.as_deref(),
        ),
    }
}

/// `Some` when the whole job (the stack and the method's working memory) would pass the
/// memory budget and the method can run in windows of planes: then the stack is streamed.
fn streaming_plan(
    method: &str,
    input: &Path,
    values: &ParamValues,
) -> CliResult<Option<(Shape, Resolved, Plan)>> {
    let m = denoisekit_core::find(method)?;
    let (depth, height, width) = tiffio::probe(input)?;
    let shape = Shape {
        depth,
        height,
        width,
    };
    // Sizes depend on radii and the noise model, never on the noise level: any stands in.
    let sizing = m.resolve(values, || Ok(1.0))?;
    let stack = (shape.len().unwrap_or(usize::MAX) as u64).saturating_mul(4);
    let whole = stack.saturating_add(memory::need(m, shape, &sizing)?);
    let limit = memory::limit()?;
    if whole <= limit {
        return Ok(None);
    }
    // Parameters are resolved once, on the middle planes, so every window uses the same.
    let mid = depth / 2;
    let sample = read_planes(input, mid.saturating_sub(2)..(mid + 3).min(depth))?;
    let (_, r) = if depth > 1 && sample.dim().0 == 1 {
        // A one-plane sample would be judged as a 2D image.
        return Err(memory::too_large(m, shape, whole, limit).into());
    } else {
        denoisekit_core::prepare(method, &sample.view(), values)?
    };
    let plane = (height * width * 4) as u64;
    match tiling::plan(m, shape, &r, limit, plane)? {
        Some(plan) => Ok(Some((shape, r, plan))),
        None => Err(memory::too_large(m, shape, whole, limit).into()),
    }
}

/// Planes `range` of a stack, reading only as far as needed.
fn read_planes(path: &Path, range: std::ops::Range<usize>) -> CliResult<Volume> {
    let mut r = tiffio::PageReader::open(path)?;
    for _ in 0..range.start {
        r.skip_page()?;
    }
    let (w, h) = r.dims();
    let mut data = Vec::with_capacity(range.len() * w * h);
    for _ in range.clone() {
        data.extend(r.next_page()?.ok_or("the stack ended early")?);
    }
    Ok(volume_from_vec(range.len(), h, w, data)?)
}

/// Denoises a stack too large for the memory budget page by page: windows of planes with
/// their z halo are read, denoised on the CPU and written in order, so memory holds one
/// window, not the file.
fn stream(
    method: &str,
    input: &Path,
    output: &Path,
    float: bool,
    (shape, r, plan): (Shape, Resolved, Plan),
) -> CliResult<()> {
    let t = Instant::now();
    let m = denoisekit_core::find(method)?;
    eprintln!(
        "{method}: {shape} does not fit in the memory limit of {}: streaming in windows of {} \
         planes (z halo {}) on the CPU",
        memory::fmt_bytes(memory::limit()?),
        plan.window,
        plan.halo
    );
    let mut reader = tiffio::PageReader::open(input)?;
    let first = reader.next_page()?.ok_or("the stack has no pages")?;
    let bits = if float {
        Bits::F32
    } else {
        reader.bits().unwrap_or(Bits::F32)
    };
    let mut writer =
        tiffio::PageWriter::create(output, bits, shape.len().unwrap_or(usize::MAX) as u64)?;
    let (w, h) = (shape.width, shape.height);
    // Planes `start..start + ring.len()` of the stack; windows only move forward.
    let mut ring = std::collections::VecDeque::from([first]);
    let mut start = 0;
    // The closures report file errors here; the job sees them as a stop.
    let io_error = std::cell::RefCell::new(None);
    let result = tiling::run_windows(
        m,
        &r,
        shape.depth,
        plan,
        |range| {
            while start < range.start {
                ring.pop_front();
                start += 1;
            }
            while start + ring.len() < range.end {
                match reader.next_page() {
                    Ok(Some(px)) => ring.push_back(px),
                    Ok(None) => {
                        return Err(DenoiseError::InvalidInput {
                            reason: "the stack ended early".into(),
                        });
                    }
                    Err(e) => {
                        *io_error.borrow_mut() = Some(e);
                        return Err(DenoiseError::Cancelled);
                    }
                }
            }
            let mut data = Vec::with_capacity(range.len() * w * h);
            for px in ring.range(..range.len()) {
                data.extend_from_slice(px);
            }
            volume_from_vec(range.len(), h, w, data)
        },
        |_, planes| {
            for plane in planes.outer_iter() {
                let px = plane.as_standard_layout();
                let px = px.as_slice().expect("standard layout");
                if let Err(e) = writer.write_page(w, h, px) {
                    *io_error.borrow_mut() = Some(e);
                    return Err(DenoiseError::Cancelled);
                }
            }
            Ok(())
        },
        &Control::new(),
    );
    if let Some(e) = io_error.into_inner() {
        return Err(e.into());
    }
    result?;
    eprintln!(
        "{method} {} on cpu (streamed): {:.1} ms -> {}",
        r.to_options(),
        t.elapsed().as_secs_f64() * 1e3,
        output.display()
    );
    Ok(())
}

/// `key=value` words as parameter values; a key naming a method's image input
/// ([`denoisekit_core::ImageInput`], such as `psf_image`) takes a TIFF file's path, whose
/// image is read and supplied.
fn parse_params(params: &[String]) -> CliResult<ParamValues> {
    let mut v = ParamValues::new();
    for p in params {
        let (k, val) = p
            .split_once('=')
            .ok_or_else(|| format!("parameter {p:?} is not of the form key=value"))?;
        let (k, val) = (k.trim(), val.trim());
        if is_image_key(k) {
            let (image, _) = tiffio::read(Path::new(val))?;
            v.insert_image(k, image);
        } else {
            v.insert(k, val);
        }
    }
    Ok(v)
}

fn is_image_key(k: &str) -> bool {
    registry()
        .iter()
        .any(|m| m.images.iter().any(|i| i.key == k))
}

/// The `key=path` words of image inputs, to complete a replayable option line (the
/// resolved options cannot name the files).
fn image_words(params: &[String]) -> String {
    params
        .iter()
        .filter(|p| {
            p.split_once('=')
                .is_some_and(|(k, _)| is_image_key(k.trim()))
        })
        .map(|p| format!(" {}", p.trim()))
        .collect()
}

/// Resolved parameters for display, floats to 4 significant digits. (Replays should use
/// the full values, which `Resolved::to_options` gives.)
fn short_options(r: &denoisekit_core::Resolved) -> String {
    // The camera parameters mean nothing under the Gaussian model: leave them out.
    r.iter_used()
        .map(|(k, v)| match v {
            denoisekit_core::ParamValue::Float(x) if x != 0.0 && x.is_finite() => {
                let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
                let t = format!("{x:.digits$}");
                let t = if t.contains('.') {
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    t
                };
                format!("{k}={t}")
            }
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One parameter as a line of `denoisekit methods`.
fn text_row(p: &ParamSpec) -> String {
    format!(
        "    {:<16} {:<22} default {:<12} {:?}  {}",
        p.key,
        describe_range(&p.kind),
        describe_default(&p.kind),
        p.unit,
        p.help_text()
    )
}

/// One parameter as a row of docs/methods.md.
fn markdown_row(p: &ParamSpec) -> String {
    format!(
        "| `{}` | {} | {} | {:?} | {} |\n",
        p.key,
        describe_range(&p.kind),
        describe_default(&p.kind),
        p.unit,
        p.help_text()
    )
}

fn describe_default(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Float {
            default: DefaultValue::Fixed(v),
            ..
        } => fmt_num(*v),
        ParamKind::Float {
            default: DefaultValue::TimesNoise(k),
            ..
        } => format!("{} × noise", fmt_num(*k)),
        ParamKind::Int { default, .. } => default.to_string(),
        ParamKind::Choice { default, .. } => default.to_string(),
    }
}

fn describe_range(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Float { min, max, .. } => format!("[{}, {}]", fmt_num(*min), fmt_num(*max)),
        ParamKind::Int { min, max, .. } => format!("{min}..={max}"),
        ParamKind::Choice { options, .. } => options.join(", "),
    }
}

fn methods(format: Format) -> CliResult<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(registry())?),
        Format::Text => {
            for m in registry() {
                println!("{} — {} ({}; {})", m.id, m.name, m.category, m.dims.label());
                println!("    {}", m.summary);
                for p in m.params {
                    println!("{}", text_row(p));
                }
                for i in m.images {
                    println!("{}", image_row(i, false));
                }
                if m.kind == MethodKind::Denoise {
                    println!("    (and the noise model shared by every denoiser, below)");
                }
                println!();
            }
            println!("Noise model, shared by every denoiser:");
            for p in &denoisekit_core::vst::NOISE_MODEL_PARAMS {
                println!("{}", text_row(p));
            }
        }
        Format::Markdown => print!("{}", methods_markdown(registry())),
    }
    Ok(())
}

/// A method's image input as a row of `methods`' text or markdown table.
fn image_row(i: &denoisekit_core::ImageInput, markdown: bool) -> String {
    let (when, opt) = i.when;
    let help = format!(
        "{} Used with {when}={opt}. On the command line: `{}=file.tif`; in ImageJ, an \
         open image.",
        i.help, i.key
    );
    if markdown {
        format!("| `{}` | an image | | | {help} |\n", i.key)
    } else {
        format!("    {:<16} {:<22} {help}", i.key, "an image")
    }
}

/// "2 copies of the image + 0.5 of a plane per plane in flight", as the docs state it.
fn memory_text(m: &memory::Memory) -> String {
    let copies = |n: f32| {
        if n == 1.0 {
            "1 copy".to_string()
        } else {
            format!("{n} copies")
        }
    };
    let mut t = format!("{} of the image", copies(m.volume));
    if m.plane > 0.0 {
        t += &format!(" + {} of a plane per plane in flight", copies(m.plane));
    }
    t + " ([memory budget](robustness.md#memory))"
}

fn tuning_text(m: &MethodDescriptor) -> String {
    let keys: Vec<String> = m
        .params
        .iter()
        .filter(|p| p.tunable)
        .map(|p| format!("`{}`", p.key))
        .collect();
    if keys.is_empty() {
        return String::new();
    }
    let loss = match m.tune_loss {
        TuneLoss::Masked => "Noise2Self (hidden pixels predicted)",
        TuneLoss::Sure => {
            "Monte-Carlo SURE (the error estimated from the noise level and a second, perturbed run)"
        }
    };
    format!(
        " Self-supervised tuning ([`tune`](macros.md)) of {}: {loss}.",
        keys.join(", ")
    )
}

/// Whether the method has a GPU kernel, and whether `backend=auto` uses it.
fn gpu_text(m: &MethodDescriptor) -> &'static str {
    match (m.gpu_tolerance.is_some(), denoisekit_gpu::auto_on_gpu(m.id)) {
        (false, _) => "not yet",
        (true, true) => "yes",
        (true, false) => {
            "with `backend=gpu` (`auto` keeps it on the CPU, as fast or faster on an H100: [GPU benchmarks](benchmarks.md#gpu))"
        }
    }
}

fn methods_markdown(reg: &[&MethodDescriptor]) -> String {
    let mut s = String::from(
        "# Methods\n\nGenerated by `denoisekit methods --format markdown` from the registry.\n",
    );
    for m in reg {
        s += &format!(
            "\n## `{}`: {}\n\n{} Dimensions: {}. GPU: {}. Working memory: {}.{}\n\n| key | range | default | unit | help |\n|---|---|---|---|---|\n",
            m.id,
            m.name,
            m.summary,
            m.dims.label(),
            gpu_text(m),
            memory_text(&m.memory),
            tuning_text(m)
        );
        for p in m.params {
            s += &markdown_row(p);
        }
        for i in m.images {
            s += &image_row(i, true);
        }
        if m.kind == MethodKind::Denoise {
            s += "| | | | | Plus the [noise model](#noise-model-shared-by-every-denoiser) parameters. |\n";
        }
        s += "\nReferences:\n";
        for r in m.references {
            s += &format!("- {r}\n");
        }
    }
    s += "\n## Noise model, shared by every denoiser\n\n\
          With `noise_model=poisson_gaussian` the image is variance-stabilised by the \
          generalized Anscombe transform before denoising and mapped back by its exact \
          unbiased inverse (Mäkitalo & Foi, IEEE TIP 2013, doi:10.1109/TIP.2012.2202675); \
          noise-derived defaults are then measured on the stabilised image.\n\n\
          | key | range | default | unit | help |\n|---|---|---|---|---|\n";
    for p in &denoisekit_core::vst::NOISE_MODEL_PARAMS {
        s += &markdown_row(p);
    }
    s
}

fn bundled_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fluo_nuclei_dsb2018_512x512_u16.tif")
}

fn median_ms(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn demo(input: Option<PathBuf>, noise: f64, out: &Path, backend: Backend) -> CliResult<()> {
    let path = input.unwrap_or_else(bundled_input);
    let (clean, _) = tiffio::read(&path)?;
    let (lo, hi) = min_max(&clean.view());
    let range = (hi - lo) as f64;
    let sigma = noise * range;
    let noisy = denoisekit_core::phantom::add_gaussian_noise(&clean, sigma, 2024);
    tiffio::write(&out.join("clean.tif"), &clean, Bits::F32)?;
    tiffio::write(&out.join("noisy.tif"), &noisy, Bits::F32)?;
    let est = estimate_sigma(&noisy.view())?;
    println!(
        "DenoiseKit {} demo: {} ({}), Gaussian noise sigma = {:.2} (estimated {:.2})\n",
        denoisekit_core::VERSION,
        path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        denoisekit_core::Shape::of(&clean.view()),
        sigma,
        est
    );
    println!("| method | parameters | device | time (ms) | PSNR (dB) | SSIM |");
    println!("|---|---|---|---:|---:|---:|");
    let score = |v: &Volume| -> CliResult<(f64, f64)> {
        Ok((
            psnr(&clean.view(), &v.view(), range)?,
            ssim(&clean.view(), &v.view(), range)?,
        ))
    };
    let (p0, s0) = score(&noisy)?;
    println!("| (noisy input) | | | | {p0:.2} | {s0:.3} |");
    let mut panels = vec![clean.clone(), noisy.clone()];
    // Denoisers only: the demo adds noise to an unblurred image, which gives a
    // deconvolution or a background remover nothing meaningful to score.
    for m in registry().iter().filter(|m| m.kind == MethodKind::Denoise) {
        let values = ParamValues::new();
        let mut times = Vec::new();
        let mut result = None;
        for _ in 0..3 {
            let t = Instant::now();
            let r = denoisekit_gpu::run(m.id, noisy.view(), &values, backend, &Control::new())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            result = Some(r);
        }
        let Some(done) = result else { continue };
        let (p, s) = score(&done.volume)?;
        println!(
            "| {} | {} | {} | {:.1} | {p:.2} | {s:.3} |",
            m.id,
            short_options(&done.params),
            done.device,
            median_ms(times)
        );
        tiffio::write(&out.join(format!("{}.tif", m.id)), &done.volume, Bits::F32)?;
        panels.push(done.volume);
    }
    let png = out.join("montage.png");
    write_montage(&png, &panels, lo, hi)?;
    let names: Vec<&str> = ["clean", "noisy"]
        .into_iter()
        .chain(
            registry()
                .iter()
                .filter(|m| m.kind == MethodKind::Denoise)
                .map(|m| m.id),
        )
        .collect();
    println!(
        "\nWrote {} (panels left to right: {}) and one TIFF per method.",
        png.display(),
        names.join(", ")
    );
    Ok(())
}

/// The middle plane of each panel side by side, as 8-bit grey scaled to [lo, hi].
fn write_montage(path: &Path, panels: &[Volume], lo: f32, hi: f32) -> CliResult<()> {
    let (d, h, w) = panels[0].dim();
    let gap = 4;
    let width = panels.len() * (w + gap) - gap;
    let mut img = vec![255u8; width * h];
    for (i, p) in panels.iter().enumerate() {
        for y in 0..h {
            for x in 0..w {
                let v = (p[(d / 2, y, x)] - lo) / (hi - lo).max(f32::MIN_POSITIVE);
                img[y * width + i * (w + gap) + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, h as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&img)?;
    Ok(())
}

fn bench(
    input: &Path,
    methods: &[String],
    params: &[String],
    repeats: usize,
    backend: Backend,
    save: Option<&Path>,
) -> CliResult<()> {
    let (img, _) = tiffio::read(input)?;
    let given = parse_params(params)?;
    let selected: Vec<&MethodDescriptor> = if methods.is_empty() {
        registry().to_vec()
    } else {
        methods
            .iter()
            .map(|m| denoisekit_core::find(m))
            .collect::<Result<_, _>>()?
    };
    println!(
        "input {} ({}), {} rayon threads, 1 warm-up + median of {repeats}",
        input.display(),
        denoisekit_core::Shape::of(&img.view()),
        rayon::current_num_threads()
    );
    println!("| method | parameters | device | median (ms) | min (ms) | Mpixel/s |");
    println!("|---|---|---|---:|---:|---:|");
    for m in selected {
        // Apply only the given keys this method has, so one command can time several methods.
        let mut values = ParamValues::new();
        for (k, v) in given.pairs() {
            if m.all_params().any(|p| p.key == k) {
                values.insert(k.clone(), v);
            }
        }
        for (k, image) in given.images() {
            if m.images.iter().any(|i| i.key == k) {
                values.insert_image(k.clone(), image.clone());
            }
        }
        let first = denoisekit_gpu::run(m.id, img.view(), &values, backend, &Control::new())?;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let r = denoisekit_gpu::run(m.id, img.view(), &values, backend, &Control::new())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            drop(r);
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let med = median_ms(times);
        println!(
            "| {} | {} | {} | {med:.2} | {min:.2} | {:.1} |",
            m.id,
            short_options(&first.params),
            first.device,
            img.len() as f64 / med / 1e3
        );
        if let Some(dir) = save {
            tiffio::write(&dir.join(format!("{}.tif", m.id)), &first.volume, Bits::F32)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_as_macro_keys() {
        let v = parse_params(&["h=0.5".into(), " patch_radius = 2 ".into()]).unwrap();
        assert_eq!(
            v.pairs(),
            &[
                ("h".to_string(), "0.5".to_string()),
                ("patch_radius".to_string(), "2".to_string())
            ]
        );
        assert!(parse_params(&["h".into()]).is_err());
    }

    #[test]
    fn docs_methods_md_is_generated_from_the_registry() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/methods.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == methods_markdown(registry()),
            "docs/methods.md is stale: run `denoisekit methods --format markdown > docs/methods.md`"
        );
    }

    #[test]
    fn markdown_lists_every_registered_parameter() {
        let md = methods_markdown(registry());
        for m in registry() {
            for p in m.params {
                assert!(
                    md.contains(&format!("| `{}` |", p.key)),
                    "{}.{}",
                    m.id,
                    p.key
                );
            }
        }
    }
}
