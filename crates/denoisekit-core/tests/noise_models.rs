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

#[test]
fn noise_model_auto_runs_and_reports_the_model_chosen_from_the_image() {
    use denoisekit_core::noise::{NoiseModel, choose_noise_model};
    use denoisekit_core::{Control, ParamValues, prepare, run};
    let auto = ParamValues::new().set("noise_model", "auto");
    // Photon noise on the real nuclei: the Poisson-Gaussian model, with the fitted camera.
    let photons = camera(100.0, 2.0, 100.0, 3.0, 7);
    let choice = choose_noise_model(&photons.view()).unwrap();
    assert!(
        matches!(choice.model, NoiseModel::PoissonGaussian(_)),
        "{choice:?}"
    );
    let mut explicit = ParamValues::new();
    for pair in choice.options().split_whitespace() {
        let (k, v) = pair.split_once('=').unwrap();
        explicit.insert(k, v);
    }
    let (_, resolved) = prepare("nl_means", &photons.view(), &auto).unwrap();
    let (_, expected) = prepare("nl_means", &photons.view(), &explicit).unwrap();
    assert_eq!(resolved.to_options(), expected.to_options());
    assert!(
        resolved
            .to_options()
            .contains("noise_model=poisson_gaussian")
    );
    let ctl = Control::new();
    assert_eq!(
        run("nl_means", photons.view(), &auto, &ctl).unwrap(),
        run("nl_means", photons.view(), &explicit, &ctl).unwrap()
    );
    // Gaussian noise of one level: the Gaussian model.
    let gaussian = denoisekit_core::phantom::add_gaussian_noise(&nuclei(), 10.0, 8);
    let (_, resolved) = prepare("gaussian", &gaussian.view(), &auto).unwrap();
    assert!(
        resolved.to_options().contains("noise_model=gaussian"),
        "{}",
        resolved.to_options()
    );
}

#[test]
fn noise_model_auto_answers_on_any_image_without_panicking() {
    use denoisekit_core::{Control, ParamValues, Volume, run};
    let auto = ParamValues::new().set("noise_model", "auto");
    let patterns: [&dyn Fn(usize, usize, usize) -> f32; 5] = [
        &|_, _, _| 7.0,
        &|z, y, x| ((x * 31 + y * 17 + z * 7) % 13) as f32,
        &|_, y, x| if (x + y) % 2 == 0 { 0.0 } else { 65535.0 },
        &|_, y, x| 1e30 * ((x * y) % 5) as f32,
        &|_, y, x| -3.0e-20 * (x as f32 - y as f32),
    ];
    for shape in [(1, 1, 1), (1, 2, 3), (1, 9, 9), (2, 12, 40), (1, 64, 64)] {
        for f in patterns {
            let img = Volume::from_shape_fn(shape, |(z, y, x)| f(z, y, x));
            // An answer, or an error naming the problem: never a panic or a NaN image.
            if let Ok(out) = run("gaussian", img.view(), &auto, &Control::new()) {
                assert!(out.iter().all(|v| v.is_finite()), "{shape:?}");
            }
        }
    }
}

/// The Poisson-Gaussian model of [`camera`]'s read noise (3) with `gain` and `offset`
/// given by hand.
fn camera_model(gain: f64, offset: f64) -> denoisekit_core::ParamValues {
    denoisekit_core::ParamValues::new()
        .set("noise_model", "poisson_gaussian")
        .set("gain", gain)
        .set("read_noise", 3)
        .set("offset", offset)
}

#[test]
fn an_offset_above_a_quarter_of_the_image_is_refused_with_its_range() {
    use denoisekit_core::{Control, run};
    // The true camera (offset 100), and its image once the baseline was subtracted: the
    // camera's offset given by hand for the second mapped it to one flat value.
    let img = camera(100.0, 2.0, 100.0, 3.0, 7);
    let model = |offset: f64| camera_model(2.0, offset);
    let right = run("gaussian", img.view(), &model(100.0), &Control::new()).unwrap();
    assert!(right.iter().all(|v| v.is_finite()));
    let subtracted = img.mapv(|v| v - 100.0);
    let e = run(
        "gaussian",
        subtracted.view(),
        &model(100.0),
        &Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("parameter `offset`: cannot use \"100\"") && e.contains("use offset=0"),
        "{e}"
    );
    run("gaussian", subtracted.view(), &model(0.0), &Control::new()).unwrap();
    // An offset above 40% of the pixels (its floor there: gain·(⅜ + s²) below it) lifts
    // them: refused too; one above a tenth of them passes.
    let mut sorted: Vec<f32> = img.iter().copied().collect();
    sorted.sort_by(f32::total_cmp);
    let above = |share: f64| {
        f64::from(sorted[(share * sorted.len() as f64) as usize]) + 2.0 * (0.375 + 2.25)
    };
    let e = run("gaussian", img.view(), &model(above(0.4)), &Control::new()).unwrap_err();
    assert!(e.to_string().contains("% of the pixels"), "{e}");
    run("gaussian", img.view(), &model(above(0.1)), &Control::new()).unwrap();
    // Zero fill around the data (a deskewed or stitched volume), most of the image: not
    // data the model explains, so not counted.
    let mut padded = ndarray::Array3::<f32>::zeros((1, img.dim().1 * 3, img.dim().2));
    padded
        .slice_mut(ndarray::s![.., ..img.dim().1, ..])
        .assign(&img);
    run("gaussian", padded.view(), &model(100.0), &Control::new()).unwrap();
}

#[test]
fn a_camera_model_far_from_the_images_noise_is_refused_with_what_was_measured() {
    use denoisekit_core::{Control, ParamValues, run};
    // Photon noise from a camera of gain 2; the same model with other gains given by hand.
    let img = camera(100.0, 2.0, 100.0, 3.0, 7);
    let model = |gain: f64| camera_model(gain, 100.0);
    let mean =
        |v: &denoisekit_core::Volume| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let noisy = mean(&img);
    // A gain half again too large still runs (the threshold leaves room for noise that
    // measures low); its result stays near the image's mean.
    for gain in [2.0, 3.0] {
        let out = run("gaussian", img.view(), &model(gain), &Control::new()).unwrap();
        assert!(
            (mean(&out) - noisy).abs() < 0.02 * noisy,
            "gain {gain}: {} against {noisy}",
            mean(&out)
        );
    }
    // Tuning checks the model as a run does: the options it prints are ones a run takes.
    let e = denoisekit_core::tune::tune("gaussian", img.view(), &model(400.0), &Control::new())
        .unwrap_err();
    assert!(e.to_string().contains("times what the image shows"), "{e}");
    // Ten times too large, a spec sheet's inverse, a gain in the millions: refused, naming
    // the gain.
    for gain in [20.0, 400.0, 1e6] {
        let e = run("gaussian", img.view(), &model(gain), &Control::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("parameter `gain`: cannot use \"{gain}\""))
                && e.contains("times what the image shows")
                && e.contains("noise_model=auto"),
            "{e}"
        );
    }
    // Half the gain runs; a fortieth understates the noise variance more than sixfold
    // (less than fortyfold: the read noise, given right, does not scale): refused.
    run("gaussian", img.view(), &model(1.0), &Control::new()).unwrap();
    let e = run("gaussian", img.view(), &model(0.05), &Control::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("parameter `gain`: cannot use \"0.05\"")
            && e.contains("of what the image shows"),
        "{e}"
    );
    // A read noise so large that the transformed image rounds to one value (it came out
    // as one flat value): refused, naming the read noise.
    let e = run(
        "gaussian",
        img.view(),
        &model(2.0).set("read_noise", 1e6),
        &Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("parameter `read_noise`: cannot use \"1000000\"")
            && e.contains("rounds to one value"),
        "{e}"
    );
    // Photon counting at a fraction of a photon per pixel in the background: the right
    // model, whose transform cannot bring such counts' noise up to 1, runs.
    let clean = real::nuclei();
    let max = clean.iter().cloned().fold(0.0f32, f32::max) as f64;
    let mut rng = denoisekit_core::rng::Rng::new(3);
    let counts = clean.mapv(|v| rng.poisson(0.05 + 2.0 * f64::from(v) / max) as f32);
    let counting = ParamValues::new()
        .set("noise_model", "poisson_gaussian")
        .set("gain", 1)
        .set("read_noise", 0.5)
        .set("offset", 0);
    run("gaussian", counts.view(), &counting, &Control::new()).unwrap();
    // Fill and saturation are left out of the measurement: two thirds zeros around the
    // image do not hide a gain 200 times too large, and a camera saturated over most of
    // the field with its right model runs.
    let mut padded = ndarray::Array3::<f32>::zeros((1, img.dim().1 * 3, img.dim().2));
    padded
        .slice_mut(ndarray::s![.., ..img.dim().1, ..])
        .assign(&img);
    let e = run("gaussian", padded.view(), &model(400.0), &Control::new()).unwrap_err();
    assert!(e.to_string().contains("times what the image shows"), "{e}");
    let mut sorted: Vec<f32> = img.iter().copied().collect();
    sorted.sort_by(f32::total_cmp);
    let top = sorted[sorted.len() * 2 / 5];
    let saturated = img.mapv(|v| v.min(top));
    run("gaussian", saturated.view(), &model(2.0), &Control::new()).unwrap();
    // A crop too small to measure (a preview of a small selection) is not judged: with the
    // right model never refused by chance.
    for seed in 0..40 {
        let small = camera(100.0, 2.0, 100.0, 3.0, 100 + seed);
        let crop = small.slice(ndarray::s![.., 200..212, 200..212]);
        run("gaussian", crop, &model(2.0), &Control::new()).unwrap();
    }
    // A flat image has no noise to measure the model against.
    let flat = ndarray::Array3::<f32>::from_elem((1, 32, 32), 500.0);
    run("gaussian", flat.view(), &model(1e6), &Control::new()).unwrap();
}
