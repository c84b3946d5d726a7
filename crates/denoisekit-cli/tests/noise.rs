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
