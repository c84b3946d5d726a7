//! End to end in real ImageJ (Debian's 1.53t under Xvfb): a macro runs
//! `Denoise...` on a stack exactly as a recorded macro would, and the result must equal,
//! pixel for pixel, what the CLI writes for the same input and parameters; the source
//! image must be unchanged.

mod common;

use common::{DISPLAY, Env, Xvfb, read_tiff, require};
use std::path::Path;
use std::process::Command;

fn cli(env: &Env, args: &[&str]) {
    let out = Command::new(&env.cli)
        .args(args)
        .output()
        .expect("run denoisekit");
    assert!(
        out.status.success(),
        "denoisekit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs the one-jar package (plugin + bundled native library), exactly as a user
/// drops it into `Fiji.app/plugins/`: no separate library file.
fn install_plugin(env: &Env) {
    let plugins = env.tmp.join("plugins");
    let mut native = std::ffi::OsString::from(format!(
        "{}-{}=",
        match std::env::consts::OS {
            "windows" => "windows",
            "macos" => "macos",
            _ => "linux",
        },
        std::env::consts::ARCH
    ));
    native.push(&env.lib);
    let out = Command::new("bash")
        .arg(env.root.join("scripts/package.sh"))
        .arg("--assemble")
        .arg(plugins.join("DenoiseKit_.jar"))
        .arg(&env.jar)
        .arg(native)
        .output()
        .expect("run package.sh");
    assert!(
        out.status.success(),
        "package.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<_> = std::fs::read_dir(&plugins)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("DenoiseKit_.jar")],
        "only the jar is installed"
    );
}

/// Runs `java <args>` on a private X server, bounded in time (a hung ImageJ must fail the
/// test, not the CI run); returns success and stdout plus stderr, which it also prints.
fn java_on_display(args: &[std::ffi::OsString]) -> (bool, String) {
    let x = Xvfb::start();
    let run = Command::new("timeout")
        .args(["300", "java"])
        .args(args)
        .env("DISPLAY", &x.display)
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .expect("run java");
    drop(x);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{log}");
    (run.status.success(), log)
}

/// Runs `macro_file` with `arg` in ImageJ (-batch) with the plugin installed in a fresh
/// plugins folder; returns success and the log.
fn run_macro(env: &Env, macro_file: &str, arg: &str) -> (bool, String) {
    install_plugin(env);
    java_on_display(&[
        "-Xcheck:jni".into(),
        format!("-Dplugins.dir={}", env.tmp.display()).into(),
        // The library is extracted into the scratch folder, not the user's cache.
        format!("-Ddenoisekit.cache={}", env.tmp.join("cache").display()).into(),
        "-jar".into(),
        "/usr/share/java/ij.jar".into(),
        "-batch".into(),
        env.root.join("tests/imagej").join(macro_file).into(),
        arg.into(),
    ])
}

/// Runs the macro in ImageJ with the plugin installed in a fresh plugins folder; returns
/// the result, the source image as saved after the command, and the log.
fn imagej_with(
    env: &Env,
    input: &Path,
    options: &str,
    hyperstack: Option<&str>,
) -> (Vec<f32>, Vec<f32>, String) {
    let _one_at_a_time = DISPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let (out, untouched) = (env.tmp.join("ij_out.tif"), env.tmp.join("untouched.tif"));
    let mut arg = format!(
        "{}|{}|{}|{options}",
        input.display(),
        out.display(),
        untouched.display()
    );
    if let Some(dims) = hyperstack {
        arg = format!("{arg}|{dims}");
    }
    let (ok, log) = run_macro(env, "denoise_stack.ijm", &arg);
    assert!(ok && out.exists(), "ImageJ macro failed:\n{log}");
    (read_tiff(&out), read_tiff(&untouched), log)
}

fn prerequisites(test: &str) -> Option<Env> {
    let env = Env::find(test)?;
    let xvfb = Command::new("which")
        .arg("Xvfb")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(xvfb, "Xvfb (apt-get install xvfb)")
        || !require(
            Path::new("/usr/share/java/ij.jar").exists(),
            "ImageJ (apt-get install libij-java)",
        )
        || !require(
            env.cli.exists(),
            "the denoisekit CLI (build the workspace first)",
        )
    {
        return None;
    }
    Some(env)
}

/// What one comparison between ImageJ and the CLI produced.
struct Outcome {
    /// ImageJ's result window.
    ij: Vec<f32>,
    /// The CLI's output for the same input and parameters.
    cli: Vec<f32>,
    /// The input file.
    source: Vec<f32>,
    /// The source image as saved by ImageJ after the command.
    untouched: Vec<f32>,
    log: String,
}

/// Writes a phantom (`phantom`: the CLI's phantom options), denoises it with
/// `denoisekit run <method> ... <params>` and in ImageJ with the macro options
/// `method=<method> backend=cpu <params> <extra>` (optionally as a c,z,t hyperstack).
fn ij_vs_cli(
    env: &Env,
    phantom: &str,
    method: &str,
    params: &str,
    extra: &str,
    hyperstack: Option<&str>,
) -> Outcome {
    let input = env.tmp.join("input.tif");
    let input_s = input.to_str().unwrap();
    let mut args = vec!["phantom", input_s];
    args.extend(phantom.split_whitespace());
    cli(env, &args);
    let cli_out = env.tmp.join("cli.tif");
    let mut args = vec![
        "run",
        method,
        input_s,
        cli_out.to_str().unwrap(),
        "--backend",
        "cpu",
    ];
    args.extend(params.split_whitespace());
    cli(env, &args);
    let options = format!("method={method} backend=cpu {params} {extra}");
    let (ij, untouched, log) = imagej_with(env, &input, options.trim(), hyperstack);
    Outcome {
        ij,
        cli: read_tiff(&cli_out),
        source: read_tiff(&input),
        untouched,
        log,
    }
}

#[test]
fn recorded_macro_on_a_16_bit_stack_matches_the_cli() {
    let Some(env) = prerequisites("ij_stack") else {
        return;
    };
    let params = "h=24 sigma=30 patch_radius=2 search_radius=5 patch_radius_z=1 search_radius_z=1";
    let o = ij_vs_cli(
        &env,
        "--shape 4 48 56 --scale 1000 --noise 0.03 --bits 16",
        "nl_means",
        params,
        "",
        None,
    );
    assert_eq!(o.ij.len(), 4 * 48 * 56);
    assert_eq!(o.ij, o.cli, "ImageJ and CLI results differ");
    assert_eq!(o.untouched, o.source, "the source image was modified");
    assert_ne!(o.ij, o.source, "nothing was denoised");
    assert!(
        o.log.contains("result: input-nl_means 16-bit 4 slices"),
        "{}",
        o.log
    );
    assert!(
        o.log.contains("info: DenoiseKit ") && o.log.contains("patch_radius_z=1"),
        "{}",
        o.log
    );
}

#[test]
fn weights_saved_by_the_cli_replay_in_a_macro() {
    // Train once, apply many: a batch macro names the weights file (a path with a space,
    // in brackets as ImageJ writes it) and gets the trained run's pixels without training.
    let Some(env) = prerequisites("ij_weights") else {
        return;
    };
    let input = env.tmp.join("input.tif");
    let input_s = input.to_str().unwrap();
    cli(
        &env,
        &[
            "phantom", input_s, "--shape", "1", "48", "56", "--scale", "1000", "--noise", "0.05",
            "--bits", "16",
        ],
    );
    let weights = env.tmp.join("my weights.json");
    let trained = env.tmp.join("trained.tif");
    cli(
        &env,
        &[
            "run",
            "zs_n2n",
            input_s,
            trained.to_str().unwrap(),
            "--backend",
            "cpu",
            "steps=20",
            &format!("save_weights={}", weights.display()),
        ],
    );
    let named = format!("weights=[{}]", weights.display());
    let options = format!("method=zs_n2n backend=cpu {named}");
    let (ij, untouched, log) = imagej_with(&env, &input, &options, None);
    assert_eq!(ij, read_tiff(&trained), "{log}");
    assert_eq!(untouched, read_tiff(&input));
    // Recorded as given: the replayed macro names the same file.
    assert!(log.contains(&named), "{log}");
}

#[test]
fn a_training_region_in_a_macro_matches_the_cli() {
    // The region a user filled in from the selection replays from the macro as given (one
    // outside the image is refused by the library: the core's and the properties' tests).
    let Some(env) = prerequisites("ij_region") else {
        return;
    };
    let o = ij_vs_cli(
        &env,
        "--shape 1 40 48 --scale 1000 --noise 0.05 --bits 16",
        "zs_n2n",
        "steps=20 width=4 train_region=8,4,32,24",
        "",
        None,
    );
    assert_eq!(o.ij, o.cli, "{}", o.log);
    assert_eq!(o.untouched, o.source);
    assert!(o.log.contains("train_region=8,4,32,24"), "{}", o.log);
}

#[test]
fn float_plane_with_a_choice_parameter_matches_the_cli() {
    let Some(env) = prerequisites("ij_plane") else {
        return;
    };
    let o = ij_vs_cli(
        &env,
        "--shape 1 40 40",
        "gaussian",
        "sigma=2 border=reflect",
        "",
        None,
    );
    assert_eq!(o.ij, o.cli);
    assert_eq!(o.untouched, o.source);
    assert!(o.log.contains("32-bit 1 slices"), "{}", o.log);
}

#[test]
fn eight_bit_image_matches_the_cli_and_stays_eight_bit() {
    let Some(env) = prerequisites("ij_u8") else {
        return;
    };
    let phantom = "--shape 1 50 61 --scale 200 --noise 0.05 --bits 8";
    let o = ij_vs_cli(
        &env,
        phantom,
        "bilateral",
        "sigma_spatial=1.5 sigma_range=20 radius=4",
        "",
        None,
    );
    assert_eq!(o.ij, o.cli);
    assert_eq!(o.untouched, o.source);
    assert!(o.log.contains("8-bit 1 slices"), "{}", o.log);
}

#[test]
fn hyperstack_keeps_dimensions_calibration_and_plane_order() {
    // 12 planes = 2 channels x 3 slices x 2 frames. With sigma_z = 0 every plane is
    // filtered on its own, so the CLI on the flat 12-page file must agree plane by plane:
    // any mix-up of channel, slice and frame indices shows as a mismatch.
    let Some(env) = prerequisites("ij_hyper") else {
        return;
    };
    let phantom = "--shape 12 32 40 --scale 1000 --bits 16";
    let o = ij_vs_cli(
        &env,
        phantom,
        "gaussian",
        "sigma=1.2 sigma_z=0",
        "",
        Some("2,3,2"),
    );
    assert_eq!(o.ij, o.cli);
    assert_eq!(o.untouched, o.source);
    assert!(
        o.log
            .contains("dimensions: c=2 z=3 t=2 voxel=0.25x0.25x0.8 micron"),
        "{}",
        o.log
    );
}

#[test]
fn sixteen_bit_data_survives_an_identity_round_trip() {
    // Full 16-bit range, no clipping to percentiles (DenoisEM clipped 16-bit data).
    let Some(env) = prerequisites("ij_identity") else {
        return;
    };
    let phantom = "--shape 2 40 50 --scale 60000 --noise 0.1 --bits 16";
    let o = ij_vs_cli(&env, phantom, "gaussian", "sigma=0 sigma_z=0", "", None);
    assert_eq!(o.ij, o.source);
    assert!(
        o.source.iter().any(|&v| v > 60000.0) && o.source.contains(&0.0),
        "test image should span the range"
    );
}

/// Writes a float stack as a multi-page TIFF.
fn write_f32_stack(path: &Path, (d, h, w): (usize, usize, usize), data: &[f32]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(f)).unwrap();
    for plane in data.chunks(h * w).take(d) {
        enc.write_image::<tiff::encoder::colortype::Gray32Float>(w as u32, h as u32, plane)
            .unwrap();
    }
}

#[test]
fn measured_psf_is_chosen_among_the_open_images() {
    // Richardson-Lucy with psf=image: the macro names an open image as psf_image, as the
    // recorder writes it; the result equals the CLI's with the same PSF file.
    let Some(env) = prerequisites("ij_psf") else {
        return;
    };
    let input = env.tmp.join("input.tif");
    let input_s = input.to_str().unwrap();
    cli(
        &env,
        &[
            "phantom", input_s, "--shape", "5", "40", "44", "--scale", "1000", "--bits", "16",
        ],
    );
    // An asymmetric 3x5x7 PSF: a Gaussian with a tail to the right.
    let psf = env.tmp.join("psf.tif");
    let dims = (3, 5, 7);
    let data: Vec<f32> = (0..3 * 5 * 7)
        .map(|i| {
            let (z, y, x) = (
                (i / 35) as f32 - 1.0,
                ((i / 7) % 5) as f32 - 2.0,
                (i % 7) as f32 - 3.0,
            );
            let tail = if x > 0.0 { 0.5 } else { 0.0 };
            (-(x * x + y * y + 2.0 * z * z) / 3.0).exp() + tail * (-(y * y + z * z)).exp()
        })
        .collect();
    write_f32_stack(&psf, dims, &data);
    let cli_out = env.tmp.join("cli.tif");
    let params = "iterations=8 psf=image";
    let psf_arg = format!("psf_image={}", psf.display());
    let mut args = vec!["run", "richardson_lucy", input_s, cli_out.to_str().unwrap()];
    args.extend(["--backend", "cpu", "iterations=8", "psf=image", &psf_arg]);
    cli(&env, &args);

    let _one_at_a_time = DISPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let (out, untouched) = (env.tmp.join("ij_out.tif"), env.tmp.join("untouched.tif"));
    let arg = format!(
        "{}|{}|{}|method=richardson_lucy backend=cpu {params} psf_image=psf.tif|open:{}",
        input.display(),
        out.display(),
        untouched.display(),
        psf.display()
    );
    let (ok, log) = run_macro(&env, "denoise_stack.ijm", &arg);
    assert!(ok && out.exists(), "ImageJ macro failed:\n{log}");
    let (ij, source) = (read_tiff(&out), read_tiff(&input));
    assert_eq!(ij, read_tiff(&cli_out), "ImageJ and CLI results differ");
    assert_eq!(
        read_tiff(&untouched),
        source,
        "the source image was modified"
    );
    assert_ne!(ij, source, "nothing was deconvolved");
    assert!(
        log.contains("psf=image") && log.contains("psf_image=[psf.tif]"),
        "{log}"
    );
}

#[test]
fn time_lapse_is_denoised_across_frames() {
    // A 2D time-lapse (1 slice, 6 frames): the 3D neighbourhood runs along time, so the
    // result equals the CLI's on the same planes taken as a volume.
    let Some(env) = prerequisites("ij_frames") else {
        return;
    };
    let phantom = "--shape 6 36 44 --scale 1000 --noise 0.04 --bits 16";
    let params = "h=30 sigma=40 patch_radius=1 search_radius=3 patch_radius_z=1 search_radius_z=1";
    let o = ij_vs_cli(
        &env,
        phantom,
        "nl_means",
        params,
        "z_axis=frames",
        Some("1,1,6"),
    );
    assert!(o.log.contains("dimensions: c=1 z=1 t=6"), "{}", o.log);
    assert!(o.log.contains("z_axis=frames"), "{}", o.log);
    assert_eq!(o.ij, o.cli);
}

#[test]
fn gui_record_preview_replay_and_compare() {
    // The real user interface, driven like a person: menu command, dialogs, the preview
    // checkbox, OK, and ImageJ's macro recorder (tests/imagej_gui/GuiHarness.java).
    let Some(env) = prerequisites("ij_gui") else {
        return;
    };
    install_plugin(&env);
    let input = env.tmp.join("scene.tif");
    cli(
        &env,
        &[
            "phantom",
            input.to_str().unwrap(),
            "--shape",
            "1",
            "200",
            "256",
            "--scale",
            "1000",
            "--noise",
            "0.05",
            "--bits",
            "16",
        ],
    );
    let classes = env.tmp.join("gui-classes");
    let status = Command::new("javac")
        .args(["-encoding", "UTF-8", "-cp", "/usr/share/java/ij.jar", "-d"])
        .arg(&classes)
        .arg(
            env.root
                .join("tests/imagej_gui/org/denoisekit/gui/GuiHarness.java"),
        )
        .status()
        .expect("run javac");
    assert!(status.success(), "javac GuiHarness failed");
    let shots = env.tmp.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let _one_at_a_time = DISPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let (ok, log) = java_on_display(&[
        format!("-Dplugins.dir={}", env.tmp.display()).into(),
        // The library is extracted into the scratch folder, not the user's cache.
        format!("-Ddenoisekit.cache={}", env.tmp.join("cache").display()).into(),
        "-cp".into(),
        format!("/usr/share/java/ij.jar:{}", classes.display()).into(),
        "org.denoisekit.gui.GuiHarness".into(),
        input.clone().into(),
        shots.clone().into(),
    ]);
    assert!(ok, "GUI harness failed:\n{log}");
    let line = |prefix: &str| -> String {
        log.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{log}"))
            .trim()
            .to_string()
    };
    // The panel's Apply records the line that replays it, exactly.
    assert!(
        line("recorded: ").starts_with("run(\"Denoise...\", \"method=nl_means backend=auto h=60 "),
        "{log}"
    );
    assert_eq!(line("preview-equals-final: "), "true", "{log}");
    assert_eq!(line("replay-identical: "), "true", "{log}");
    // The recorded lines, replayed as a macro with another image current, run on the
    // panel's image: the panel records which one.
    let replayed = line("replayed-as-recorded: ");
    assert!(
        replayed.starts_with("1 of ") && replayed.contains(", 0 of decoy: selectWindow(\""),
        "{replayed}\n{log}"
    );
    assert_eq!(line("path-read-back: "), "true", "{log}");
    // One Auto: the panel opened at the self-supervised strength (NL-means is quick on this
    // image) and shows the preview's residual check itself.
    assert!(
        line("strength-line: ")
            .starts_with("Strength: self-supervised from the slice on screen (h="),
        "{log}"
    );
    assert!(
        line("residual-line: ").starts_with("Residual check: "),
        "{log}"
    );
    // Only the fields that apply: no z on a 2D image, z on a stack; the camera's fields
    // under the Poisson-Gaussian model only.
    assert_eq!(line("z-fields-on-2d: "), "hidden", "{log}");
    assert_eq!(line("z-fields-on-3d: "), "shown", "{log}");
    assert!(
        line("camera-fields: ").starts_with("hidden under gaussian true"),
        "{log}"
    );
    // The learned method's preview shows its current weights while it trains, and the
    // loss on the progress line.
    let interims: u64 = line("learned-interims: ").parse().unwrap_or(0);
    assert!(interims >= 1, "{log}");
    assert!(
        line("learned-note: ").contains("training step") && line("learned-note: ").contains("loss"),
        "{log}"
    );
    // A bad value is named at its field with the allowed range.
    assert!(
        line("bad-value: ").contains("\"abc\" is not a number; allowed: [0"),
        "{log}"
    );
    // The residual of a 32-bit image is drawn with its own contrast: grey around the
    // middle with visible spread, not a black square.
    let contrast = line("residual-contrast: ");
    let num = |key: &str| -> f64 {
        contrast
            .split_whitespace()
            .find_map(|t| t.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {contrast}"))
    };
    assert!((100.0..156.0).contains(&num("mean=")), "{contrast}");
    assert!(num("std=") > 15.0, "{contrast}");
    // A 3D job's progress moves while it runs, and Stop cancels one without a result.
    let progress = line("progress-3d: ");
    let steps: usize = progress.split(' ').next().unwrap().parse().unwrap();
    assert!(steps >= 2, "{progress}");
    let stop = line("stop: ");
    assert!(
        stop.contains("stopped") && stop.ends_with("stack-nl_means: 1"),
        "{stop}"
    );
    assert!(line("montage: ").contains('x'), "{log}");
    // Compare Methods, tuned: every denoiser's loss logged, the expected best named; a
    // click on a tile opens the panel on that method.
    let best = line("compare-best: ");
    assert!(
        denoisekit_core::find(&best).is_ok(),
        "Compare Methods named no best denoiser ({best:?}):\n{log}"
    );
    assert!(log.contains("compare-bm3d-loss: yes"), "{log}");
    assert_eq!(line("compare-click: "), "bm3d", "{log}");
    // Suggest selects a denoiser (not the median it showed: it has nothing to tune, so it
    // is not ranked).
    let suggested = line("suggest: ");
    assert!(
        suggested != "median" && denoisekit_core::find(&suggested).is_ok(),
        "Suggest selected {suggested:?}:\n{log}"
    );
    // The scene's background is clipped at 0 (16-bit), which leaves too few pixels to
    // measure the correlation: the panel says so. The unclipped image of white noise is
    // measured, and independent.
    assert!(
        line("noise-line: ").contains("correlation not measured: too few smooth pixels"),
        "{log}"
    );
    assert!(
        line("noise-line-pg: ").contains("grey levels, independent between pixels"),
        "{log}"
    );
    // A run that fails in its second channel (a NaN) wrote nothing into the image, and
    // the error says how to go on.
    let failure = line("in-place-failure: ");
    assert!(
        failure.starts_with("pixel (x=5, y=5, z=0) is NaN") && failure.contains("nan_masked"),
        "{failure}"
    );
    assert_eq!(line("in-place-unchanged: "), "true", "{log}");
    assert_eq!(line("nan-masked: "), "true", "{log}");
    // Replayed on planes that opened as slices, a time-lapse's line is refused, not run
    // slice by slice in 2D.
    let refused = line("z-axis-refused: ");
    assert!(
        refused
            .contains("z_axis=frames, but \"slices\" has 1 frame and 6 slices: use z_axis=slices")
            && refused.ends_with("result: false"),
        "{refused}"
    );
    assert_eq!(line("slices-on-time-lapse: "), "true", "{log}");
    let unknown = line("unknown-option: ");
    assert!(
        unknown.contains("its parameters are sigma,")
            && unknown
                .contains("every method takes backend, scope, z_axis and the checkboxes in_place,"),
        "{unknown}"
    );
    // A PSF per channel deconvolves each channel with its own, as each channel alone.
    assert_eq!(line("psf-per-channel: "), "c1 true, c2 true", "{log}");
    let channels = line("psf-channels-refused: ");
    assert!(
        channels.contains(
            "psf_image=[psf3] has 3 channels and the image 2: give one for all, or one per channel"
        ),
        "{channels}"
    );
    let pixels = line("psf-pixels-refused: ");
    assert!(
        pixels.contains(
            "psf_image=[psf fine] has a pixel width of 0.1 micron and the image 0.25 micron"
        ),
        "{pixels}"
    );
    // A float result of a signed 16-bit image holds its calibrated values and display range.
    let signed = line("signed16-float: ");
    assert!(signed.starts_with("true"), "{signed}");
    let composite = line("signed16-composite: ");
    assert!(composite.starts_with("true"), "{composite}");
    // A Compare tile on a frame of a time-lapse is Denoise... on that frame.
    let frames = line("compare-frames: ");
    assert!(frames.starts_with("true; "), "{frames}");
    // Compare Methods on a strip too thin for the learned method: the others are compared
    // (the original and every method but one), and the log says why it is left out.
    let strip = line("compare-strip: ");
    let all = line("montage: ");
    let one_less = all
        .split(", ")
        .nth(1)
        .and_then(|n| n.split(' ').next()?.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .unwrap_or_else(|| panic!("no methods in the montage line {all:?}"));
    assert!(
        strip.starts_with(&format!("{one_less} methods; zs_n2n "))
            && strip.contains("not compared: invalid input: the image is 96x14 pixels"),
        "{strip}"
    );
    // A NaN on the plane on screen, masked; the title keeps a dot inside the name.
    assert_eq!(line("nan-on-screen: "), "true", "{log}");
    // Undo after an in-place run restores the plane as it was just before it.
    assert_eq!(line("undo: "), "changed true, restored true", "{log}");
    assert_eq!(line("flag-with-value: "), "true", "{log}");
    // A key given twice, or a value with no key, is refused, as on the command line.
    assert_eq!(line("key-twice: "), "true, no key: true", "{log}");
    assert_eq!(
        line("in-place-selection: "),
        "inside true, outside 0",
        "{log}"
    );
    // A composite's one-plane result has its channel's LUT, display range and label.
    assert_eq!(
        line("slice-lut: "),
        "true range 1000-30000 label the second channel",
        "{log}"
    );
    // After Esc stopped one job, the next runs.
    assert_eq!(line("after-esc: "), "2", "{log}");
    // Stopped with another method's loading queued behind the job: no result, and the
    // panel idle on the chosen method (a stop once cancelled only the loading).
    let queued = line("stop-with-queued: ");
    assert!(
        queued.starts_with("2; ") && queued.ends_with("sigma shown: true"),
        "{queued}\n{log}"
    );
    // An RGB image: a 3-channel copy offered and opened, the original untouched; a macro
    // is told how to make that copy.
    assert_eq!(
        line("rgb-copy: "),
        "3 channels, 8-bit; original unchanged true",
        "{log}"
    );
    assert_eq!(line("rgb-macro: "), "true", "{log}");
    // Auto under the Poisson-Gaussian model fits the camera (true gain 2).
    let gain = line("pg-auto: gain=")
        .split_whitespace()
        .next()
        .and_then(|g| g.parse::<f64>().ok());
    assert!(
        gain.is_some_and(|g| (g - 2.0).abs() < 0.2),
        "Poisson-Gaussian Auto gave gain {gain:?}:\n{log}"
    );
    // Remembered poisson_gaussian: the panel on the next image (variance 0.2 * mean + 400)
    // opens with the camera fitted there, not the model's placeholder gain of 1.
    let reopened = line("pg-reopened: ");
    let gain = reopened
        .split_once("gain=")
        .and_then(|(_, g)| g.split_whitespace().next()?.parse::<f64>().ok());
    assert!(
        reopened.starts_with("poisson_gaussian ") && gain.is_some_and(|g| (g - 0.2).abs() < 0.1),
        "{reopened}\n{log}"
    );
    const SHOTS: [&str; 3] = [
        "denoise-panel.png",
        "denoise-residual.png",
        "compare-methods.png",
    ];
    for shot in SHOTS {
        assert!(
            shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000),
            "{shot} missing"
        );
    }
    // Refresh the screenshots shown in the README when asked to.
    if let Some(dir) = std::env::var_os("DENOISEKIT_UPDATE_SCREENSHOTS") {
        for shot in SHOTS {
            std::fs::copy(shots.join(shot), Path::new(&dir).join(shot)).unwrap();
        }
    }
}

#[test]
fn noise_model_auto_is_chosen_once_on_the_plane_and_matches_the_cli() {
    let Some(env) = prerequisites("ij_auto") else {
        return;
    };
    // Photon-like noise (variance = 2 x mean, normal approximation) on smooth blobs, as
    // 32-bit grey levels: the Poisson-Gaussian model must be chosen, in ImageJ as on the
    // command line, from the whole plane.
    let (h, w) = (96, 112);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut normal = move || {
        let mut u = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (u().max(1e-12), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let data: Vec<f32> = (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as f64, (i % w) as f64);
            let photons = 20.0
                + 180.0 * (-(((x - 40.0).powi(2) + (y - 50.0).powi(2)) / 600.0)).exp()
                + 120.0 * (-(((x - 85.0).powi(2) + (y - 30.0).powi(2)) / 300.0)).exp();
            let mean = 2.0 * photons + 100.0;
            (mean + (2.0 * (mean - 100.0)).sqrt() * normal()) as f32
        })
        .collect();
    let input = env.tmp.join("photons.tif");
    write_f32_stack(&input, (1, h, w), &data);
    let cli_out = env.tmp.join("cli.tif");
    cli(
        &env,
        &[
            "run",
            "nl_means",
            input.to_str().unwrap(),
            cli_out.to_str().unwrap(),
            "--backend",
            "cpu",
            "h=0.8",
            "sigma=1",
            "noise_model=auto",
        ],
    );
    // h and sigma are given: the dialog's defaults for them were measured before the model
    // was chosen (with the Gaussian model), the CLI's after.
    let (ij, untouched, log) = imagej_with(
        &env,
        &input,
        // Spelled as a macro writer may: the library reads choices in any case.
        "method=nl_means backend=cpu h=0.8 sigma=1 noise_model=Auto",
        None,
    );
    assert_eq!(
        ij,
        read_tiff(&cli_out),
        "ImageJ and the CLI chose differently"
    );
    assert_eq!(untouched, data);
    assert!(
        log.contains("noise_model=auto chose: noise_model=poisson_gaussian gain="),
        "{log}"
    );
    // h and sigma were given by hand and are read in stabilised units: said as the CLI
    // says it.
    let units = "DenoiseKit warning: h=0.8 and sigma=1 are read in the stabilised image's units";
    assert!(log.contains(units), "{log}");
    // A hand-written macro that leaves the model out gets auto, its default, and is told
    // the same.
    let (unnamed, _, log) = imagej_with(
        &env,
        &input,
        "method=nl_means backend=cpu h=0.8 sigma=1",
        None,
    );
    assert_eq!(unnamed, ij);
    assert!(
        log.contains("noise_model=auto chose: noise_model=poisson_gaussian gain=")
            && log.contains(units),
        "{log}"
    );
    // The result's Info records the values used, not "auto".
    let info = log.lines().find(|l| l.starts_with("info:")).unwrap_or("");
    assert!(
        info.contains("noise_model=poisson_gaussian")
            && !info.to_lowercase().contains("noise_model=auto"),
        "{info}"
    );
    // A camera given without the model is that camera under poisson_gaussian, in the
    // macro as on the command line (the CLI let auto replace it), and the strengths are
    // said to be in stabilised units.
    let camera = "h=0.8 sigma=1 gain=2 offset=90";
    let cli_camera = env.tmp.join("cli_camera.tif");
    let mut args = vec![
        "run",
        "nl_means",
        input.to_str().unwrap(),
        cli_camera.to_str().unwrap(),
    ];
    args.extend(["--backend", "cpu"]);
    args.extend(camera.split_whitespace());
    cli(&env, &args);
    let (given, _, log) = imagej_with(
        &env,
        &input,
        &format!("method=nl_means backend=cpu {camera}"),
        None,
    );
    assert_eq!(
        given,
        read_tiff(&cli_camera),
        "ImageJ and the CLI used other cameras"
    );
    assert!(
        log.contains("a camera value given without noise_model means poisson_gaussian")
            && !log.contains("noise_model=auto chose"),
        "{log}"
    );
}

#[test]
fn an_ome_tiff_output_opens_in_imagej_as_its_hyperstack() {
    // 2 channels x 3 slices stored z fastest (XYZCT), as Bio-Formats or tifffile may write
    // them. The CLI's output must open in ImageJ with those axes, in ImageJ's plane order,
    // with the pixel size and z spacing.
    let Some(env) = prerequisites("ij_ome") else {
        return;
    };
    let (w, h) = (24u32, 20u32);
    let input = env.tmp.join("ome.tif");
    let ome = "<?xml version=\"1.0\"?><OME><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" \
               DimensionOrder=\"XYZCT\" SizeC=\"2\" SizeT=\"1\" SizeX=\"24\" SizeY=\"20\" \
               SizeZ=\"3\" PhysicalSizeX=\"0.1\" PhysicalSizeY=\"0.125\" PhysicalSizeZ=\"0.5\" \
               Type=\"uint16\"></Pixels></Image></OME>";
    let planes: Vec<Vec<u16>> = (0..6u16)
        .map(|p| (0..(w * h) as u16).map(|i| p * 1000 + i % 97).collect())
        .collect();
    {
        let f = std::fs::File::create(&input).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(f)).unwrap();
        for (p, plane) in planes.iter().enumerate() {
            let mut image = enc
                .new_image::<tiff::encoder::colortype::Gray16>(w, h)
                .unwrap();
            if p == 0 {
                image
                    .encoder()
                    .write_tag(tiff::tags::Tag::ImageDescription, ome)
                    .unwrap();
            }
            image.write_data(plane).unwrap();
        }
    }
    let out = env.tmp.join("ome_out.tif");
    let params = "sigma=0 sigma_z=0";
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["run", "gaussian", i, o, "--backend", "cpu"];
    args.extend(params.split_whitespace());
    cli(&env, &args);
    // ImageJ's page c + 2z is the input's page z + 3c.
    let pages: Vec<Vec<f32>> = read_tiff(&out)
        .chunks((w * h) as usize)
        .map(<[f32]>::to_vec)
        .collect();
    for (c, z) in [(0, 0), (1, 0), (0, 2), (1, 2)] {
        let want: Vec<f32> = planes[z + 3 * c].iter().map(|&v| f32::from(v)).collect();
        assert_eq!(pages[c + 2 * z], want, "channel {c}, slice {z}");
    }
    let options = format!("method=gaussian backend=cpu {params}");
    let (ij, untouched, log) = imagej_with(&env, &out, &options, None);
    assert!(log.contains("source: c=2 z=3 t=1"), "{log}");
    assert!(
        log.contains("dimensions: c=2 z=3 t=1 voxel=0.1x0.125x0.5 micron"),
        "{log}"
    );
    assert_eq!(
        (ij.len(), untouched.len()),
        (6 * (w * h) as usize, ij.len())
    );
    // ImageJ reads every plane of the file where the file put it (an `images=` line in
    // the description made it read them as one block, shifted by the page directories).
    assert!(
        untouched == read_tiff(&out),
        "ImageJ read other pixels than the file holds"
    );
}
