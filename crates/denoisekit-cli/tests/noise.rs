//! `denoisekit noise`: what it prints can be pasted into `run`.

use std::path::Path;
use std::process::Command;

const CLI: &str = env!("CARGO_BIN_EXE_denoisekit");

#[test]
fn a_camera_fit_with_no_positive_gain_is_not_offered_as_options() {
    // The bundled nuclei: background-subtracted fluorescence whose noise does not grow
    // with the signal; the line fitted through its levels falls.
    let nuclei = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/fluo_nuclei_dsb2018_512x512_u16.tif");
    let o = Command::new(CLI)
        .args(["noise", "--poisson-gaussian", nuclei.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("var = a*mean + b: a = -"), "{out}");
    assert!(!out.contains("noise_model=poisson_gaussian"), "{out}");
    assert!(
        err.contains("no camera model fits") && err.contains("noise_model=gaussian"),
        "{err}"
    );
}

/// A strength given by hand while auto chooses Poisson–Gaussian is read in stabilised
/// units: `run` says so, and does not where the model is named.
#[test]
fn a_strength_auto_reads_in_stabilised_units_is_said() {
    let dir = std::env::temp_dir().join(format!("denoisekit units {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("photons.tif");
    let mut rng = denoisekit_core::phantom::Rng::new(3);
    let img = ndarray::Array3::from_shape_fn((1, 96, 96), |(_, y, x)| {
        let level = 5.0 + 200.0 * ((x / 24 + y / 24) % 2) as f64;
        (4.0 * rng.poisson(level) + 100.0) as f32
    });
    denoisekit_tiff::write(&input, &img, denoisekit_tiff::Bits::F32).unwrap();
    let run = |extra: &[&str]| {
        let out = dir.join("out.tif");
        let mut args = vec![
            "run",
            "nl_means",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = Command::new(CLI)
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        err
    };
    let err = run(&["h=12", "--backend", "cpu"]);
    assert!(
        err.contains("warning: h=12 is read in the stabilised image's units"),
        "{err}"
    );
    let err = run(&["h=12", "noise_model=gaussian", "--backend", "cpu"]);
    assert!(!err.contains("stabilised"), "{err}");
}
