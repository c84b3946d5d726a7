//! Train once, apply many: `denoisekit run zs_n2n ... save_weights=F` on one image, then
//! `weights=F` on others, as a batch script would; bad files are refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CLI: &str = env!("CARGO_BIN_EXE_denoisekit");

fn dir() -> PathBuf {
    // A space in the path: where users keep their data.
    let d = std::env::temp_dir().join(format!("denoisekit weights {}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cli(args: &[&str]) -> Output {
    Command::new(CLI)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run denoisekit")
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    String::from_utf8_lossy(&o.stdout).to_string() + &err
}

fn phantom(path: &Path, seed: &str) {
    ok(&cli(&[
        "phantom",
        path.to_str().unwrap(),
        "--shape",
        "1",
        "64",
        "72",
        "--scale",
        "1000",
        "--bits",
        "16",
        "--seed",
        seed,
    ]));
}

#[test]
fn weights_saved_on_one_image_replay_on_others() {
    let d = dir();
    let (a, b) = (d.join("a.tif"), d.join("b.tif"));
    phantom(&a, "1");
    phantom(&b, "2");
    // In a folder not made yet: made, as the output's folder is.
    let w = d.join("new folder").join("w.json");
    let ws = w.to_str().unwrap();
    let run = |input: &Path, out: &Path, extra: &[String]| {
        let mut args = vec![
            "run".to_string(),
            "zs_n2n".into(),
            input.display().to_string(),
            out.display().to_string(),
            "--float".into(),
            "--backend".into(),
            "cpu".into(),
        ];
        args.extend_from_slice(extra);
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let trained = d.join("trained.tif");
    let log = ok(&run(
        &a,
        &trained,
        &["steps=20".into(), format!("save_weights={ws}")],
    ));
    assert!(w.is_file(), "no weights written: {log}");
    // The same image from the file: the same pixels as training then applying.
    let replayed = d.join("replayed.tif");
    ok(&run(&a, &replayed, &[format!("weights={ws}")]));
    assert_eq!(
        std::fs::read(&trained).unwrap(),
        std::fs::read(&replayed).unwrap()
    );
    // Another image: applied without training, and changed.
    let other = d.join("other.tif");
    ok(&run(&b, &other, &[format!("weights={ws}")]));
    assert_ne!(std::fs::read(&b).unwrap(), std::fs::read(&other).unwrap());

    // A missing and a foreign file: an error naming the parameter and the file.
    let missing = d.join("none.json");
    let o = run(
        &b,
        &d.join("x.tif"),
        &[format!("weights={}", missing.display())],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("weights") && err.contains("none.json"),
        "{err}"
    );
    let o = run(&b, &d.join("x.tif"), &[format!("weights={}", a.display())]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("a.tif"), "{err}");
    assert!(
        !d.join("x.tif").exists(),
        "an output was written after an error"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn save_weights_never_names_a_file_the_run_reads_or_writes() {
    let d = dir().join("clobber");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "3");
    let before = std::fs::read(&a).unwrap();
    let out = d.join("out.tif");
    let (ai, oi) = (a.to_str().unwrap(), out.to_str().unwrap());
    for (target, what) in [(ai, "the input"), (oi, "the output")] {
        let save = format!("save_weights={target}");
        let o = cli(&["run", "zs_n2n", ai, oi, "steps=2", &save]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{save} was accepted");
        assert!(err.contains(&format!("{save} is {what}")), "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), before);
    assert!(!out.exists());
    // The same file under another name (a relative path) is found too, also one not
    // written yet (the output).
    for (alias, what) in [("./a.tif", "the input"), ("./out.tif", "the output")] {
        let save = format!("save_weights={alias}");
        let o = Command::new(CLI)
            .current_dir(&d)
            .args(["run", "zs_n2n", ai, oi, "steps=2", &save])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{save} is {what}")), "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), before);
    assert!(!out.exists());
}

#[test]
fn the_output_never_replaces_a_file_the_run_reads() {
    let d = dir().join("reads");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "4");
    let w = d.join("w.json");
    let save = format!("save_weights={}", w.display());
    ok(&cli(&[
        "run",
        "zs_n2n",
        a.to_str().unwrap(),
        d.join("trained.tif").to_str().unwrap(),
        "steps=2",
        &save,
    ]));
    let psf = d.join("psf.tif");
    phantom(&psf, "5");
    let (ai, wi, pi) = (
        a.to_str().unwrap(),
        w.to_str().unwrap(),
        psf.to_str().unwrap(),
    );
    let (weights, psf_image) = (format!("weights={wi}"), format!("psf_image={pi}"));
    let before = (std::fs::read(&w).unwrap(), std::fs::read(&psf).unwrap());
    for (args, what) in [
        (vec!["run", "zs_n2n", ai, wi, &weights], "weights="),
        (
            vec!["run", "richardson_lucy", ai, pi, "psf=image", &psf_image],
            "psf_image=",
        ),
    ] {
        let o = cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(
            err.contains(&format!("is the file given as {what}, which the job reads")),
            "{err}"
        );
    }
    assert_eq!(
        (std::fs::read(&w).unwrap(), std::fs::read(&psf).unwrap()),
        before
    );
}

#[test]
fn an_image_input_its_switch_does_not_choose_is_refused() {
    let d = dir().join("unused");
    std::fs::create_dir_all(&d).unwrap();
    let (a, psf, out) = (d.join("a.tif"), d.join("psf.tif"), d.join("o.tif"));
    phantom(&a, "6");
    phantom(&psf, "7");
    let psf_image = format!("psf_image={}", psf.display());
    let (ai, oi) = (a.to_str().unwrap(), out.to_str().unwrap());
    let o = cli(&["run", "richardson_lucy", ai, oi, &psf_image]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("richardson_lucy uses psf_image only with psf=image"),
        "{err}"
    );
    assert!(!out.exists());
    let target = format!("target={}", psf.display());
    let o = cli(&["run", "zs_n2n", ai, oi, "steps=2", &target]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("zs_n2n uses target only with training=pairs"),
        "{err}"
    );
    // Chosen, it runs.
    ok(&cli(&[
        "run",
        "richardson_lucy",
        ai,
        oi,
        "psf=image",
        &psf_image,
        "iterations=2",
    ]));
}

#[test]
fn a_forgotten_or_foreign_output_name_is_refused() {
    let d = dir().join("outputs");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "8");
    let ai = a.to_str().unwrap();
    // `run nl_means a.tif h=12`: the output left out, h=12 taken for it.
    let o = cli(&["run", "nl_means", ai, "h=12", "search_radius=3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("named `h=12`, which is a parameter of nl_means"),
        "{err}"
    );
    // A PNG or a .zarr name would hold TIFF bytes (a later run reads a .zarr as OME-Zarr).
    for name in ["o.png", "o.zarr"] {
        let out = d.join(name);
        let o = cli(&["run", "gaussian", ai, out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("but it is written as TIFF"), "{err}");
        assert!(!out.exists(), "{name}");
    }
    // So would a phantom (and its clean scene would go beside it as .tif).
    let png = d.join("scene.png");
    let o = cli(&["phantom", png.to_str().unwrap(), "--shape", "1", "32", "32"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("but it is written as TIFF"), "{err}");
    assert!(!png.exists() && !d.join("scene_clean.tif").exists());
    ok(&cli(&[
        "run",
        "gaussian",
        ai,
        d.join("o.TIFF").to_str().unwrap(),
    ]));
}

/// An output that cannot be written is named before the work (a training run wrote its
/// weights, then failed to write its image), and a result clipped to the output's type is
/// said, with the way to keep it.
#[test]
fn an_unwritable_output_is_named_before_the_work_and_clipping_is_said() {
    let d = dir().join("unwritable");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "9");
    let ai = a.to_str().unwrap();
    let w = d.join("w.json");
    let ws = format!("save_weights={}", w.display());
    // A folder named as the output, and a file inside a file.
    for (out, says) in [(d.clone(), "it is a folder"), (a.join("o.tif"), "a.tif")] {
        let o = cli(&["run", "zs_n2n", ai, out.to_str().unwrap(), "steps=20", &ws]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{err}");
        assert!(
            !w.exists(),
            "the network was trained before {} was refused",
            out.display()
        );
    }
    // A run refused after the check leaves no folder for its output behind.
    let fresh = d.join("new").join("sub").join("o.tif");
    let o = cli(&[
        "run",
        "tikhonov",
        ai,
        fresh.to_str().unwrap(),
        "lambda=0",
        "psf_sigma=2",
    ]);
    assert!(!o.status.success());
    assert!(
        !d.join("new").exists(),
        "the output's folders were made for a failed run"
    );
    // Deconvolved, a bright phantom's peaks pass the 16 bits it was read in.
    let bright = d.join("bright.tif");
    let bi = bright.to_str().unwrap();
    ok(&cli(&[
        "phantom", bi, "--shape", "1", "64", "72", "--scale", "50000", "--bits", "16",
    ]));
    let out = d.join("rl.tif");
    let o = ok(&cli(&[
        "run",
        "richardson_lucy",
        bi,
        out.to_str().unwrap(),
        "iterations=50",
        "psf_sigma=2.5",
    ]));
    assert!(
        o.contains("came out above 65535, the largest of 16-bit unsigned integers, and were written as 65535: --float keeps their values"),
        "{o}"
    );
    let o = ok(&cli(&["run", "gaussian", bi, out.to_str().unwrap()]));
    assert!(!o.contains("came out above"), "{o}");
}

#[test]
fn an_integer_phantom_is_neither_a_handful_of_levels_nor_clipped() {
    let d = dir().join("phantoms");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("p8.tif");
    let ps = p.to_str().unwrap();
    // The default scale of an 8-bit file spans its levels.
    ok(&cli(&[
        "phantom", ps, "--bits", "8", "--shape", "1", "64", "64",
    ]));
    let (clean, _) = denoisekit_tiff::read(&d.join("p8_clean.tif")).unwrap();
    let top = clean.iter().copied().fold(0.0f32, f32::max);
    assert!((16.0..=255.0).contains(&top), "{top}");
    for (bits, scale) in [("8", "1"), ("16", "100000")] {
        let o = cli(&["phantom", ps, "--bits", bits, "--scale", scale]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("use --scale from"),
            "{err}"
        );
    }
}

#[test]
fn options_a_command_would_ignore_are_refused() {
    let d = dir().join("ignored");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "9");
    let ai = a.to_str().unwrap();
    for (args, said) in [
        // A misspelt key would time the defaults.
        (
            vec!["bench", ai, "--method", "gaussian", "sigmaa=4"],
            "`sigmaa` is a parameter of none of the timed methods (gaussian)",
        ),
        (
            vec!["tune", "gaussian", ai, "--methods", "median"],
            "--methods chooses the denoisers `tune auto` ranks",
        ),
        (
            vec!["noise", ai, "--poisson-gaussian", "--correlation"],
            "cannot be used with",
        ),
    ] {
        let o = cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(said), "{args:?}: {err}");
    }
}

/// A session with no display (cron, ssh, a cluster's batch job): a successful run prints
/// no "error:" line. Mesa's device-select layer, where installed (lavapipe here), made
/// libwayland print one as the GPUs were listed.
#[test]
fn a_session_without_a_display_gets_no_error_line() {
    let d = dir().join("headless");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tif");
    phantom(&a, "10");
    let o = Command::new(CLI)
        .args([
            "run",
            "gaussian",
            a.to_str().unwrap(),
            d.join("o.tif").to_str().unwrap(),
        ])
        .args(["--backend", "auto"])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let err = ok(&o);
    assert!(!err.contains("error"), "{err}");
}
