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

mod args;
mod demo;
mod docs;
mod font;
mod progress;
mod stream;
mod volumes;
mod zarr;

use args::{Cli, Cmd, Format};
use demo::{bench, demo};
use docs::methods;
use stream::{stream, streaming_plan};

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    quiet_wayland_probe();
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
            overwrite,
        } => {
            refuse_forgotten_output(&method, &output)?;
            if zarr::is_zarr(&input) {
                let cluster = zarr::Cluster {
                    workers,
                    scheduler,
                    resume,
                    overwrite,
                };
                return Ok(zarr::run(
                    &method, &input, &output, &params, &backend, &cluster,
                )?);
            }
            if workers.is_some() || scheduler.is_some() || resume || overwrite {
                return Err(
                    "--workers, --scheduler, --resume and --overwrite apply to OME-Zarr input"
                        .into(),
                );
            }
            let values = parse_params(&params)?;
            refuse_overwrites(&method, &input, &output, &params, &values)?;
            refuse_foreign_extension(&output)?;
            let layout = tiffio::layout(&input)?;
            let groups = volumes::of(&input, &layout)?;
            if let Some(plan) = streaming_plan(&method, &input, &layout, &values, groups.len() > 1)?
            {
                if groups.len() > 1 {
                    return Err(volumes::too_large_to_split(&input, &groups).into());
                }
                return stream(&method, &input, &output, float, plan);
            }
            if groups.len() > 1 && writes_a_file(&method, &values)? {
                return Err(format!(
                    "{}: a hyperstack of {} volumes, each trained on its own: one weights \
                     file would keep only the last. Save one channel or time point and train \
                     on that, or train on each in turn",
                    input.display(),
                    groups.len()
                )
                .into());
            }
            let (mut img, bits) = tiffio::read(&input)?;
            let bits = if float { Bits::F32 } else { bits };
            // Before the work: an output that cannot be written (a missing drive, a
            // folder, a read-only file) is named now, not after a long run.
            tiffio::PageWriter::probe(&output)?;
            // Every volume's pixels before any is denoised: a NaN in the last channel was
            // refused only after the first had been reported done (and nothing written).
            // The whole file in one pass; a volume is gathered only to name the bad one.
            if groups.len() > 1 && denoisekit_core::check_input(&img.view()).is_err() {
                for g in &groups {
                    let copy = g.gather(&img);
                    denoisekit_core::check_input(&copy.as_ref().unwrap_or(&img).view())
                        .map_err(|e| format!("{}{e}", g.label()))?;
                }
            }
            let mut out: Option<Volume> = None;
            for g in &groups {
                let copy = g.gather(&img);
                let part = copy.as_ref().unwrap_or(&img);
                let t = Instant::now();
                let (ctl, bar) = progress::Progress::start(&method);
                let done = denoisekit_gpu::run(
                    &method,
                    part.view(),
                    &values,
                    Backend::from_name(&backend)?,
                    &ctl,
                )
                // A pixel or value the error names is in this channel or time point.
                .map_err(|e| format!("{}{e}", g.label()))?;
                drop(bar);
                if let Some(w) =
                    denoisekit_core::strength_units_warning(&method, &values, &done.params)?
                {
                    eprintln!("warning: {}{w}", g.label());
                }
                if denoisekit_core::find(&method)?.kind == MethodKind::Denoise
                    && let Some(w) = denoisekit_core::metrics::residual_warning(
                        &part.view(),
                        &done.volume.view(),
                    )?
                {
                    eprintln!("warning: {}{w}", g.label());
                }
                // Full precision: the line can be pasted back to reproduce the result
                // exactly.
                eprintln!(
                    "{}{method} {}{} on {}: {:.1} ms -> {}",
                    g.label(),
                    done.params.to_options(),
                    image_words(&params),
                    done.device,
                    t.elapsed().as_secs_f64() * 1e3,
                    output.display()
                );
                match copy {
                    None => out = Some(done.volume),
                    // The volumes' pages are disjoint: a result goes where only its own
                    // volume was read from, so no second copy of the file is held.
                    Some(_) => g.scatter(&done.volume, &mut img),
                }
            }
            let out = out.unwrap_or(img);
            let mut writer = tiffio::PageWriter::create(&output, bits, out.len() as u64)?;
            writer.write_volume(&out, &layout.calibration)?;
            warn_saturated(&writer, bits, out.len());
            writer.finish()?;
            Ok(())
        }
        Cmd::Tune {
            method,
            input,
            params,
            methods,
        } => {
            if method != "auto" && !methods.is_empty() {
                return Err(format!(
                    "--methods chooses the denoisers `tune auto` ranks; `tune {method}` tunes \
                     {method} alone: leave --methods out, or tune auto"
                )
                .into());
            }
            volumes::refuse_pooled(&input, "tune")?;
            let (img, _) = tiffio::read(&input)?;
            let fixed = parse_params(&params)?;
            let t0 = std::time::Instant::now();
            if method == "auto" {
                let ids: Vec<&str> = methods.iter().map(String::as_str).collect();
                let (ctl, bar) = progress::Progress::start("tuning and ranking");
                let ranked = denoisekit_core::tune::rank(&ids, img.view(), &fixed, &ctl)?;
                drop(bar);
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
            let (ctl, bar) = progress::Progress::start(&format!("tuning {method}"));
            let t = denoisekit_core::tune::tune(&method, img.view(), &fixed, &ctl)?;
            drop(bar);
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
            volumes::refuse_pooled(&input, "noise")?;
            let (img, _) = tiffio::read(&input)?;
            let correlated = |choice: &denoisekit_core::noise::NoiseChoice| {
                match denoisekit_core::correlation::estimate_correlation_for(&img.view(), choice) {
                    Ok(c) => format!(
                        "{}; noise sd {:.4}{}",
                        c.describe(),
                        c.sigma,
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
                // Options `run` would refuse (a gain of 0 or less, or none) are not offered.
                if fit.a <= 0.0 || fit.a.is_nan() {
                    return Err(format!(
                        "{}: no camera model fits: the fitted gain a = {:.4} is not above 0 (the \
                         noise does not grow with the signal here); use noise_model=gaussian, \
                         or let `denoisekit noise --auto` choose",
                        input.display(),
                        fit.a
                    )
                    .into());
                }
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
        } => demo(input, noise, &out, Backend::from_name(&backend)?),
        Cmd::Phantom {
            output,
            shape,
            seed,
            noise,
            scale,
            bits,
        } => {
            refuse_foreign_extension(&output)?;
            let bits = match bits {
                8 => Bits::U8,
                16 => Bits::U16,
                32 => Bits::F32,
                other => return Err(format!("--bits {other}: expected 8, 16 or 32").into()),
            };
            // The clean scene, the noisy one and a scaled copy being written.
            let bytes = shape.iter().map(|&n| n as u64).product::<u64>() * 4 * 3;
            let limit = memory::limit()?;
            if bytes > limit {
                return Err(format!(
                    "--shape {}x{}x{}: the scene needs {} in memory, more than the limit of {} \
                     (set {} to change it)",
                    shape[0],
                    shape[1],
                    shape[2],
                    memory::fmt_bytes(bytes),
                    memory::fmt_bytes(limit),
                    memory::LIMIT_ENV
                )
                .into());
            }
            let p = denoisekit_core::phantom::phantom(&denoisekit_core::phantom::PhantomSpec {
                shape: (shape[0], shape[1], shape[2]),
                seed,
                read_noise: noise,
                ..Default::default()
            });
            let s = scale.unwrap_or(match bits {
                Bits::U8 => 100.0,
                Bits::U16 => 1000.0,
                _ => 1.0,
            }) as f32;
            // An integer file holds the scene only between a few grey levels and its
            // maximum: below, it is a handful of levels; above, it is clipped flat.
            if let Some(top) = bits.max() {
                let (_, hi) = min_max(&p.clean.view());
                let reach = s * hi;
                if !(16.0..=top).contains(&reach) {
                    return Err(format!(
                        "--scale {s}: the clean scene spans 0 to {reach:.1} grey levels; a \
                         file of {} holds it from 16 (fewer are a handful of levels) to \
                         {top} (more are clipped): use --scale from {} to {}",
                        bits.describe(),
                        (160.0 / hi).ceil() / 10.0,
                        (10.0 * top / hi).floor() / 10.0,
                    )
                    .into());
                }
            }
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
            Backend::from_name(&backend)?,
            save.as_deref(),
        ),
    }
}

/// An output named like one of the method's parameters (`h=12`) is a forgotten output:
/// the parameter would be dropped and a file of that name written.
fn refuse_forgotten_output(method: &str, output: &Path) -> CliResult<()> {
    let m = denoisekit_core::find(method)?;
    let name = output.file_name().unwrap_or_default().to_string_lossy();
    if let Some((key, _)) = name.split_once('=')
        && m.takes(key)
    {
        return Err(format!(
            "the output file is named `{name}`, which is a parameter of {method}: give the \
             output file before the parameters (denoisekit run {method} INPUT OUTPUT {name})"
        )
        .into());
    }
    Ok(())
}

/// Says how many of a result's `total` pixels lay above the output type's largest value
/// and were written as it, where any did: documented, but a deconvolution's peaks lost
/// that way are lost silently otherwise.
pub(crate) fn warn_saturated(writer: &tiffio::PageWriter, bits: Bits, total: usize) {
    let (n, Some(top)) = (writer.saturated(), bits.max()) else {
        return;
    };
    if n > 0 {
        eprintln!(
            "warning: {n} pixels ({:.2}% of the result) came out above {top}, the largest of \
             {}, and were written as {top}: --float keeps their values",
            100.0 * n as f64 / total.max(1) as f64,
            bits.describe()
        );
    }
}

/// Mesa's device-select Vulkan layer asks libwayland for a display as wgpu lists the
/// GPUs, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" wherever a
/// session has none (cron, ssh, a cluster's batch job): every successful batch run
/// looked failed. Where no Wayland display could be reached anyway, the layer is turned
/// off by its own switch; wgpu ranks the GPUs itself (a discrete one first), so only
/// DRI_PRIME's choice is lost, and a user's own setting is kept. In `main`, before any
/// thread reads the environment; the library does not touch a host process's.
fn quiet_wayland_probe() {
    let absolute =
        |key: &str| std::env::var_os(key).is_some_and(|v| v.to_string_lossy().starts_with('/'));
    let wayland = absolute("XDG_RUNTIME_DIR")
        || absolute("WAYLAND_DISPLAY")
        || std::env::var_os("WAYLAND_SOCKET").is_some();
    if cfg!(target_os = "linux") && !wayland && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the first thing `main` does, while the process has one thread.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// A TIFF input's output is TIFF, whatever its name says: the extension of another
/// image format (a `.zarr`, which a later run would read as OME-Zarr; a `.png`) is
/// refused. Other names (`out_sigma1.5`) are the user's to choose.
fn refuse_foreign_extension(output: &Path) -> CliResult<()> {
    const OTHER_FORMATS: [&str; 18] = [
        "png", "jpg", "jpeg", "gif", "bmp", "webp", "jp2", "zarr", "n5", "h5", "hdf5", "npy",
        "npz", "nd2", "czi", "lif", "ims", "mrc",
    ];
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if let Some(ext) = ext.filter(|e| OTHER_FORMATS.contains(&e.as_str())) {
        return Err(format!(
            "the output {} ends in .{ext}, but it is written as TIFF: name it .tif or \
             .tiff (OME-Zarr output needs an OME-Zarr input)",
            output.display()
        )
        .into());
    }
    Ok(())
}

/// A file the method writes (`save_weights=`) must be none of the files the run reads or
/// writes: the input or an image parameter would be destroyed, and the output written
/// last would replace it.
fn refuse_overwrites(
    method: &str,
    input: &Path,
    output: &Path,
    params: &[String],
    values: &ParamValues,
) -> CliResult<()> {
    // The file's own name in its folder's real path: the same file under two names, even
    // one not written yet (the output).
    let real = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::canonicalize(dir)
                .map(|d| d.join(p.file_name().unwrap_or_default()))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let same = |a: &Path, b: &Path| real(a) == real(b);
    let m = denoisekit_core::find(method)?;
    let mut others: Vec<(String, &Path)> =
        vec![("the input".into(), input), ("the output".into(), output)];
    for p in params {
        if let Some((k, v)) = p.split_once('=')
            && is_image_key(k.trim())
        {
            others.push((format!("{}=", k.trim()), Path::new(v.trim())));
        }
    }
    for (k, v) in values.pairs() {
        let writes = m.params.iter().any(|p| p.key == k && p.writes());
        if !writes
            && m.params
                .iter()
                .any(|p| p.key == k && matches!(p.kind, ParamKind::File { .. }))
        {
            others.push((format!("{k}="), Path::new(v)));
        }
    }
    // The output replaces its file: a file the job reads besides the image (a PSF, a
    // training target, saved weights) would be lost. The image itself may be replaced,
    // which is a run in place.
    if let Some((what, _)) = others[2..].iter().find(|(_, o)| same(output, o)) {
        return Err(format!(
            "the output {} is the file given as {what}, which the job reads: the output \
             would replace it; name another output",
            output.display()
        )
        .into());
    }
    for (k, v) in values.pairs() {
        if v.is_empty() || !m.params.iter().any(|p| p.key == k && p.writes()) {
            continue;
        }
        if let Some((what, _)) = others.iter().find(|(_, o)| same(Path::new(v), o)) {
            return Err(
                format!("{k}={v} is {what}: {k} writes its own file, so name another one").into(),
            );
        }
    }
    Ok(())
}

/// Whether `values` name a file the method writes (`save_weights=`).
fn writes_a_file(method: &str, values: &ParamValues) -> CliResult<bool> {
    let m = denoisekit_core::find(method)?;
    Ok(values
        .pairs()
        .iter()
        .any(|(k, v)| !v.is_empty() && m.params.iter().any(|p| p.key == k && p.writes())))
}

/// `key=value` words as parameter values; a key naming a method's image input
/// ([`denoisekit_core::ImageInput`], such as `psf_image`) takes a TIFF file's path, whose
/// image is read and supplied.
fn parse_params(params: &[String]) -> CliResult<ParamValues> {
    let mut v = ParamValues::new();
    for (i, p) in params.iter().enumerate() {
        let (k, val) = p
            .split_once('=')
            .ok_or_else(|| format!("parameter {p:?} is not of the form key=value"))?;
        let (k, val) = (k.trim(), val.trim());
        if let Some(earlier) = params[..i]
            .iter()
            .filter_map(|q| q.split_once('='))
            .find(|(q, _)| q.trim() == k)
        {
            return Err(format!(
                "parameter {k} is given twice ({k}={} and {k}={val}): give it once",
                earlier.1.trim()
            )
            .into());
        }
        if k == "backend" {
            // As a recorded macro line writes it: here it is an option of the command.
            return Err(format!(
                "backend={val} is not a parameter here: `run`, `bench` and `demo` take it as \
                 --backend {val} (`tune` and `noise` run on the CPU)"
            )
            .into());
        }
        if is_image_key(k) {
            volumes::refuse_hyperstack_input(Path::new(val), k)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::methods_markdown;

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
        let e = parse_params(&["sigma=1".into(), "h=2".into(), "sigma = 2".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "parameter sigma is given twice (sigma=1 and sigma=2): give it once"
        );
        assert!(parse_params(&["sigma=1".into(), "sigma=1".into()]).is_err());
        // Pasted from a recorded macro line.
        let e = parse_params(&["backend=auto".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("take it as --backend auto"), "{e}");
    }

    #[test]
    fn phantom_and_bench_options_are_checked_by_range() {
        for bad in [
            vec!["phantom", "x.tif", "--noise", "nan"],
            vec!["phantom", "x.tif", "--scale", "inf"],
            vec!["phantom", "x.tif", "--noise=-1"],
            vec!["phantom", "x.tif", "--shape", "0", "16", "16"],
            vec!["phantom", "x.tif", "--shape", "1", "100000", "16"],
            vec!["bench", "x.tif", "--repeats", "0"],
            vec!["bench", "x.tif", "--repeats", "18446744073709551615"],
        ] {
            let e = Cli::try_parse_from(std::iter::once("denoisekit").chain(bad.clone()));
            assert!(e.is_err(), "{bad:?} was accepted");
        }
        assert!(
            Cli::try_parse_from(["denoisekit", "phantom", "x.tif", "--shape", "2", "8", "8"])
                .is_ok()
        );
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
