//! A real image with known noise for the tests: the bundled fluorescence nuclei (data/,
//! see the README). The image carries its own noise (about 5 grey levels), so it is first
//! smoothed (Gaussian, sigma 1.5) into a clean scene; known noise is added to that.
#![allow(dead_code)] // each test file uses part of it

use denoisekit_core::phantom::Rng;
use denoisekit_core::{
    BorderMode, Control, GaussianParams, Volume, denoise_gaussian, volume_from_vec,
};
use std::path::Path;

/// The bundled nuclei as recorded (16-bit, with their own noise), as float.
pub fn nuclei_raw() -> Volume {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/fluo_nuclei_dsb2018_512x512_u16.tif");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).expect("tiff");
    let (w, h) = dec.dimensions().expect("dimensions");
    let data = match dec.read_image().expect("image") {
        tiff::decoder::DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        _ => panic!("expected 16-bit"),
    };
    volume_from_vec(1, h as usize, w as usize, data).expect("shape")
}

/// The clean nuclei scene, grey levels 0..~235.
pub fn nuclei() -> Volume {
    let raw = nuclei_raw();
    let smooth = GaussianParams {
        sigma: 1.5,
        sigma_z: 0.0,
        border: BorderMode::Symmetric,
    };
    denoise_gaussian(raw.view(), &smooth, &Control::new()).expect("smoothing")
}

/// The nuclei as mean photon counts (peak `peak`) through a camera.
pub fn camera(peak: f64, gain: f64, offset: f64, read: f64, seed: u64) -> Volume {
    let clean = nuclei();
    let max = clean.iter().cloned().fold(0.0f32, f32::max) as f64;
    let mut rng = Rng::new(seed);
    clean.mapv(|v| {
        let photons = 2.0 + peak * f64::from(v) / max;
        (gain * rng.poisson(photons) + offset + read * rng.normal()) as f32
    })
}

/// The first plane of a file in `../shared/data/real` (beside the repository; not
/// bundled, so only the documentation's tables use it), as float; `None` when absent.
pub fn shared_plane(name: &str) -> Option<Volume> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/real")
        .join(name);
    let f = std::fs::File::open(&path).ok()?;
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).expect("tiff");
    let (w, h) = dec.dimensions().expect("dimensions");
    let data = match dec.read_image().expect("image") {
        tiff::decoder::DecodingResult::U8(v) => v.into_iter().map(f32::from).collect(),
        tiff::decoder::DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        tiff::decoder::DecodingResult::F32(v) => v,
        _ => panic!("{name}: unexpected sample type"),
    };
    Some(volume_from_vec(1, h as usize, w as usize, data).expect("shape"))
}

/// A clean scene from a recorded image: smoothed (Gaussian, `sigma` pixels) to remove
/// most of its own noise, as [`nuclei`] is.
pub fn smoothed(raw: &Volume, sigma: f64) -> Volume {
    let p = GaussianParams {
        sigma,
        sigma_z: 0.0,
        border: BorderMode::Symmetric,
    };
    denoise_gaussian(raw.view(), &p, &Control::new()).expect("smoothing")
}
