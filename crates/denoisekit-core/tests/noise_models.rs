//! Noise-model estimates against known synthetic truth on a real image: the bundled
//! fluorescence nuclei (data/, see the README), seen through a simulated camera. The
//! image carries its own noise (about 5 grey levels), so it is first smoothed (Gaussian,
//! sigma 1.5) into a clean scene; the known noise is added to that.

mod real;

use denoisekit_core::estimate_sigma;
use denoisekit_core::noise::estimate_poisson_gaussian;
use real::{camera, nuclei};

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
