//! Noise-model estimates against known synthetic truth on a real image: the bundled
//! fluorescence nuclei (data/, see the README), seen through a simulated camera. The
//! image carries its own noise (about 5 grey levels), so it is first smoothed (Gaussian,
//! sigma 1.5) into a clean scene; the known noise is added to that.

use denoisekit_core::noise::estimate_poisson_gaussian;
use denoisekit_core::phantom::Rng;
use denoisekit_core::{
    BorderMode, Control, GaussianParams, Volume, denoise_gaussian, estimate_sigma, volume_from_vec,
};
use std::path::Path;

fn nuclei() -> Volume {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/fluo_nuclei_dsb2018_512x512_u16.tif");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).expect("tiff");
    let (w, h) = dec.dimensions().expect("dimensions");
    let data = match dec.read_image().expect("image") {
        tiff::decoder::DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        _ => panic!("expected 16-bit"),
    };
    let raw = volume_from_vec(1, h as usize, w as usize, data).expect("shape");
    let smooth = GaussianParams {
        sigma: 1.5,
        sigma_z: 0.0,
        border: BorderMode::Symmetric,
    };
    denoise_gaussian(raw.view(), &smooth, &Control::new()).expect("smoothing")
}

/// The nuclei as mean photon counts (peak `peak`) through a camera.
fn camera(peak: f64, gain: f64, offset: f64, read: f64, seed: u64) -> Volume {
    let clean = nuclei();
    let max = clean.iter().cloned().fold(0.0f32, f32::max) as f64;
    let mut rng = Rng::new(seed);
    clean.mapv(|v| {
        let photons = 2.0 + peak * f64::from(v) / max;
        (gain * rng.poisson(photons) + offset + read * rng.normal()) as f32
    })
}

#[test]
fn poisson_gaussian_fit_is_within_ten_percent_on_real_images() {
    // (peak photons, gain, offset, read noise): an sCMOS-like and an EMCCD-like camera.
    for (peak, gain, offset, read) in [(100.0, 2.0, 100.0, 3.0), (400.0, 0.5, 0.0, 4.0)] {
        let img = camera(peak, gain, offset, read, 5);
        let fit = estimate_poisson_gaussian(&img.view()).unwrap();
        let b = read * read - gain * offset;
        assert!((fit.a - gain).abs() < 0.1 * gain, "gain {gain}: {fit:?}");
        assert!((fit.b - b).abs() < 0.1 * b.abs(), "b {b}: {fit:?}");
    }
}

#[test]
fn gaussian_sigma_is_within_ten_percent_on_a_real_image() {
    let clean = nuclei();
    for sigma in [2.0, 10.0, 25.0] {
        let noisy = denoisekit_core::phantom::add_gaussian_noise(&clean, sigma, 6);
        let s = estimate_sigma(&noisy.view()).unwrap();
        assert!(
            (s - sigma).abs() < 0.1 * sigma,
            "true {sigma}, estimated {s}"
        );
    }
}
