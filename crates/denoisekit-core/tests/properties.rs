//! Invariants every registered method must satisfy, table-driven over the registry: a
//! method is tested here the day it is registered.

use denoisekit_core::metrics::mse;
use denoisekit_core::phantom::{PhantomSpec, add_gaussian_noise, phantom};
use denoisekit_core::{
    Control, DefaultValue, DenoiseError, MethodKind, ParamKind, ParamValues, Volume, registry, run,
};
use ndarray::Array3;

mod settings;
use settings::{quick, three_d_values, with_image_inputs};

fn noisy_2d() -> (Volume, Volume) {
    let p = phantom(&PhantomSpec {
        shape: (1, 96, 96),
        seed: 11,
        read_noise: 0.1,
        ..Default::default()
    });
    (p.clean, p.noisy)
}

fn noisy_3d() -> (Volume, Volume) {
    let p = phantom(&PhantomSpec {
        shape: (6, 40, 40),
        seed: 12,
        read_noise: 0.1,
        ..Default::default()
    });
    (p.clean, p.noisy)
}

#[test]
fn shape_is_preserved_and_input_untouched() {
    for m in registry() {
        for (_, noisy) in [noisy_2d(), noisy_3d()] {
            for values in with_image_inputs(m, &quick(m, &three_d_values(m.id)), noisy.view()) {
                let before = noisy.clone();
                let out = run(m.id, noisy.view(), &values, &Control::new()).unwrap();
                assert_eq!(out.dim(), noisy.dim(), "{}", m.id);
                assert_eq!(noisy, before, "{} modified its input", m.id);
                assert!(
                    out.iter().all(|v| v.is_finite()),
                    "{} produced non-finite output",
                    m.id
                );
            }
        }
    }
}

#[test]
fn parameters_along_z_change_nothing_on_a_2d_image() {
    // Front ends hide `along_z` parameters on 2D images: that must lose nothing. And the
    // marks must be complete: a z parameter named by the convention is marked.
    let (_, noisy) = noisy_2d();
    for m in registry() {
        for p in m.params {
            let named_z = p.key.ends_with("_z") || p.key.starts_with("z_");
            assert_eq!(
                p.along_z, named_z,
                "{}.{}: along_z vs its name",
                m.id, p.key
            );
        }
        let z = quick(m, &three_d_values(m.id));
        for (plain, with_z) in with_image_inputs(m, &quick(m, &ParamValues::new()), noisy.view())
            .into_iter()
            .zip(with_image_inputs(m, &z, noisy.view()))
        {
            let a = run(m.id, noisy.view(), &plain, &Control::new()).unwrap();
            let b = run(m.id, noisy.view(), &with_z, &Control::new()).unwrap();
            assert_eq!(a, b, "{}: {} changed a 2D result", m.id, z.to_options());
        }
    }
}

#[test]
fn three_d_values_switch_the_z_neighbourhood_on() {
    // What benchmarks and tests call 3D must change a volume's result: a three_d value
    // that left the method plane by plane would time and test 2D under a 3D name.
    let (_, noisy) = noisy_3d();
    for m in registry() {
        let z = m.three_d_values();
        if z.pairs().is_empty() {
            continue;
        }
        let plain = run(m.id, noisy.view(), &ParamValues::new(), &Control::new()).unwrap();
        let with_z = run(m.id, noisy.view(), &z, &Control::new()).unwrap();
        assert_ne!(
            plain,
            with_z,
            "{}: {} changed nothing in 3D",
            m.id,
            z.to_options()
        );
    }
}

#[test]
fn conditional_parameters_change_nothing_when_their_condition_does_not_hold() {
    // Front ends show a parameter only `when` its condition holds: the camera's under the
    // Poisson–Gaussian model, the PSF under synthetic training.
    let (_, noisy) = noisy_2d();
    for m in registry() {
        let mut conditions: Vec<(&str, &str)> = Vec::new();
        for when in m.all_params().filter_map(|p| p.when) {
            if !conditions.contains(&when) {
                conditions.push(when);
            }
        }
        for (key, value) in conditions {
            let other = m
                .all_params()
                .find(|p| p.key == key)
                .and_then(|p| match p.kind {
                    ParamKind::Choice { options, .. } => {
                        options.iter().find(|o| **o != value && **o != "auto")
                    }
                    _ => None,
                })
                .expect("a when condition names a choice with another option");
            let base = quick(m, &ParamValues::new().set(key, other));
            let mut changed = base.clone();
            for p in m.all_params().filter(|p| p.when == Some((key, value))) {
                changed = match p.kind {
                    ParamKind::Float { min, max, .. } => changed.set(
                        p.key,
                        if max.is_finite() {
                            (min.max(0.0) + 1.0).min(max)
                        } else {
                            3.0
                        },
                    ),
                    ParamKind::Int { max, .. } => changed.set(p.key, max),
                    ParamKind::Choice { options, .. } => changed.set(p.key, options[0]),
                    // No method has a conditional file or region; a missing file would
                    // fail the run.
                    ParamKind::File { .. } | ParamKind::Region => changed,
                };
            }
            let a = run(
                m.id,
                noisy.view(),
                &m.with_example_images(&base, noisy.view()),
                &Control::new(),
            )
            .unwrap();
            let b = run(
                m.id,
                noisy.view(),
                &m.with_example_images(&changed, noisy.view()),
                &Control::new(),
            )
            .unwrap();
            assert_eq!(
                a,
                b,
                "{}: {} changed the result",
                m.id,
                changed.to_options()
            );
        }
    }
}

#[test]
fn same_input_gives_the_same_output() {
    // Parallel reductions must not depend on scheduling: a macro replayed on the same
    // file gives the same pixels.
    let (_, noisy) = noisy_2d();
    for m in registry() {
        for values in with_image_inputs(m, &quick(m, &ParamValues::new()), noisy.view()) {
            let a = run(m.id, noisy.view(), &values, &Control::new()).unwrap();
            let b = run(m.id, noisy.view(), &values, &Control::new()).unwrap();
            assert_eq!(
                a,
                b,
                "{} {} is not deterministic",
                m.id,
                values.to_options()
            );
        }
    }
}

#[test]
fn constant_image_is_unchanged() {
    for m in registry() {
        // A background remover finds nothing but background in a constant image.
        let want = match m.kind {
            MethodKind::Background => 0.0,
            _ => 1234.5,
        };
        for shape in [(1, 20, 17), (4, 9, 11)] {
            let img = Array3::<f32>::from_elem(shape, 1234.5);
            for values in with_image_inputs(m, &quick(m, &three_d_values(m.id)), img.view()) {
                let out = run(m.id, img.view(), &values, &Control::new()).unwrap();
                let worst = out.iter().map(|v| (v - want).abs()).fold(0.0f32, f32::max);
                assert!(
                    worst <= 1e-5 * 1234.5,
                    "{} {}: constant image changed by {worst}",
                    m.id,
                    values.to_options()
                );
            }
        }
    }
}

/// A sharp object (the phantom before its PSF), and its observation through the PSF that
/// a deconvolution method assumes by default (sigma 1.5 in x/y, and 1 in z, the value
/// [`three_d_values`] sets), with a little Gaussian noise.
fn blurred_object(shape: (usize, usize, usize)) -> (Volume, Volume) {
    use denoisekit_core::{BorderMode, GaussianParams, denoise_gaussian};
    let object = phantom(&PhantomSpec {
        shape,
        seed: 13,
        psf_sigma: 0.0,
        read_noise: 0.0,
        ..Default::default()
    })
    .clean;
    let psf = GaussianParams {
        sigma: 1.5,
        sigma_z: 1.0,
        border: BorderMode::Symmetric,
    };
    let seen = denoise_gaussian(object.view(), &psf, &Control::new()).unwrap();
    (object, add_gaussian_noise(&seen, 0.01, 14))
}

#[test]
fn error_on_phantom_goes_down() {
    for m in registry() {
        let cases = match m.kind {
            MethodKind::Denoise => [noisy_2d(), noisy_3d()],
            // The target is the object before the blur, not the blurred scene.
            MethodKind::Deconvolve => [blurred_object((1, 96, 96)), blurred_object((6, 40, 40))],
            // Not an estimate of the scene: see background_is_removed_from_objects_on_a_ramp.
            MethodKind::Background => continue,
        };
        for (clean, noisy) in cases {
            // The example PSF image is the blur's own PSF.
            for values in with_image_inputs(m, &three_d_values(m.id), noisy.view()) {
                let out = run(m.id, noisy.view(), &values, &Control::new()).unwrap();
                let before = mse(&clean.view(), &noisy.view()).unwrap();
                let after = mse(&clean.view(), &out.view()).unwrap();
                // Thirty Richardson-Lucy iterations recover only part of a 1.5-pixel blur
                // (the phantom's point sources stay wider than the object's single pixels).
                let factor = match m.kind {
                    MethodKind::Deconvolve => 0.85,
                    _ => 0.7,
                };
                assert!(
                    after < factor * before,
                    "{} {}: MSE {before} -> {after}",
                    m.id,
                    values.to_options()
                );
            }
        }
    }
}

#[test]
fn zero_strength_is_identity() {
    let (_, noisy) = noisy_2d();
    for m in registry() {
        assert!(
            !m.identity.is_empty(),
            "{} declares no identity setting",
            m.id
        );
        let mut v = ParamValues::new();
        for (k, val) in m.identity {
            v.insert(*k, val);
        }
        let out = run(m.id, noisy.view(), &v, &Control::new()).unwrap();
        assert_eq!(out, noisy, "{}", m.id);
    }
}

#[test]
fn offset_equivariance() {
    let (_, noisy) = noisy_2d();
    for m in registry().iter().filter(|m| m.kind == MethodKind::Denoise) {
        let shifted = noisy.mapv(|v| v + 100.0);
        // The input the shifted one is, minus the offset, exactly: `v + 100` rounds, and a
        // method trained on its input (zs_n2n) turns a rounding-level difference of the
        // input into a larger one of its result, which says nothing about offsets.
        let unshifted = shifted.mapv(|v| v - 100.0);
        let a = run(m.id, unshifted.view(), &ParamValues::new(), &Control::new()).unwrap();
        let b = run(m.id, shifted.view(), &ParamValues::new(), &Control::new()).unwrap();
        let worst = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| (x + 100.0 - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2e-3,
            "{}: offset changed the result by {worst}",
            m.id
        );
    }
}

/// Small bright discs (radius 3) on a background that rises across the image.
fn objects_on_a_ramp(shape: (usize, usize, usize)) -> (Volume, Volume) {
    let d = shape.0;
    let objects = Array3::from_shape_fn(shape, |(z, y, x)| {
        let (cy, cx) = ((y % 16) as f32 - 8.0, (x % 16) as f32 - 8.0);
        let cz = if d > 1 { (z % 4) as f32 - 1.5 } else { 0.0 };
        if cy * cy + cx * cx + cz * cz <= 9.0 {
            1.0
        } else {
            0.0
        }
    });
    let seen = Array3::from_shape_fn(shape, |(z, y, x)| {
        objects[(z, y, x)] + 0.5 + 0.004 * (y + x) as f32 + 0.0001 * (y * x) as f32
            - 0.01 * z as f32
    });
    (objects, seen)
}

#[test]
fn background_is_removed_from_objects_on_a_ramp() {
    for m in registry()
        .iter()
        .filter(|m| m.kind == MethodKind::Background)
    {
        for shape in [(1, 64, 64), (8, 32, 32)] {
            let (objects, seen) = objects_on_a_ramp(shape);
            // Defaults, and across planes when the method can.
            let out = run(m.id, seen.view(), &three_d_values(m.id), &Control::new()).unwrap();
            let before = mse(&objects.view(), &seen.view()).unwrap();
            let after = mse(&objects.view(), &out.view()).unwrap();
            assert!(
                after < 0.01 * before,
                "{} {shape:?}: MSE {before} -> {after}",
                m.id
            );
        }
    }
}

#[test]
fn background_removal_ignores_offsets() {
    let (_, noisy) = noisy_2d();
    for m in registry()
        .iter()
        .filter(|m| m.kind == MethodKind::Background)
    {
        let shifted = noisy.mapv(|v| v + 100.0);
        // The input the shifted one is, minus the offset, exactly: `v + 100` rounds, and a
        // method trained on its input (zs_n2n) turns a rounding-level difference of the
        // input into a larger one of its result, which says nothing about offsets.
        let unshifted = shifted.mapv(|v| v - 100.0);
        let a = run(m.id, unshifted.view(), &ParamValues::new(), &Control::new()).unwrap();
        let b = run(m.id, shifted.view(), &ParamValues::new(), &Control::new()).unwrap();
        let worst = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2e-3,
            "{}: offset changed the result by {worst}",
            m.id
        );
    }
}

#[test]
fn poisson_gaussian_model_denoises_photon_limited_images() {
    // 10 photons at intensity 1 plus read noise 0.02: the noise varies threefold across
    // the scene, which a single Gaussian sigma cannot describe.
    let p = phantom(&PhantomSpec {
        shape: (1, 96, 96),
        seed: 15,
        photons: 10.0,
        read_noise: 0.02,
        ..Default::default()
    });
    let model = ParamValues::new()
        .set("noise_model", "poisson_gaussian")
        .set("gain", 0.1)
        .set("read_noise", 0.02);
    let before = mse(&p.clean.view(), &p.noisy.view()).unwrap();
    for m in registry().iter().filter(|m| m.kind == MethodKind::Denoise) {
        let pg = run(m.id, p.noisy.view(), &model, &Control::new()).unwrap();
        let gaussian = ParamValues::new().set("noise_model", "gaussian");
        let g = run(m.id, p.noisy.view(), &gaussian, &Control::new()).unwrap();
        let (e_pg, e_g) = (
            mse(&p.clean.view(), &pg.view()).unwrap(),
            mse(&p.clean.view(), &g.view()).unwrap(),
        );
        assert!(e_pg < 0.7 * before, "{}: MSE {before} -> {e_pg}", m.id);
        // Methods that adapt to the noise level gain from a noise that is uniform after
        // the transform (measured: 1.2x for TV to 3x for NL-means, BM3D and BLS-GSM).
        let adapts = m.params.iter().any(|p| {
            matches!(
                p.kind,
                ParamKind::Float {
                    default: DefaultValue::TimesNoise(_),
                    ..
                }
            )
        });
        if adapts {
            assert!(
                e_pg < e_g,
                "{}: Poisson-Gaussian {e_pg} vs Gaussian {e_g}",
                m.id
            );
        }
    }
}

#[test]
fn deconvolution_commutes_with_scaling() {
    // Photon counts have no offset but a gain: a deconvolution must scale with the data.
    let (_, seen) = blurred_object((1, 48, 40));
    for m in registry()
        .iter()
        .filter(|m| m.kind == MethodKind::Deconvolve)
    {
        for values in with_image_inputs(m, &ParamValues::new(), seen.view()) {
            let a = run(m.id, seen.view(), &values, &Control::new()).unwrap();
            let scaled = seen.mapv(|v| 300.0 * v);
            let b = run(m.id, scaled.view(), &values, &Control::new()).unwrap();
            let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| (300.0 * x - y).abs() / 300.0)
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-4 * peak,
                "{} {}: scaling changed the result by {worst} (peak {peak})",
                m.id,
                values.to_options()
            );
        }
    }
}

fn expect_invalid_input(id: &str, img: &Volume, what: &str) {
    match run(id, img.view(), &ParamValues::new(), &Control::new()) {
        Err(DenoiseError::InvalidInput { reason }) => {
            assert!(
                reason.contains(what),
                "{id}: message {reason:?} lacks {what:?}"
            )
        }
        other => panic!("{id}: expected InvalidInput for {what}, got {other:?}"),
    }
}

#[test]
fn nan_inf_empty_and_tiny_images_are_rejected() {
    for m in registry() {
        let mut img = Array3::<f32>::zeros((1, 8, 8));
        img[(0, 2, 5)] = f32::NAN;
        expect_invalid_input(m.id, &img, "pixel (x=5, y=2, z=0) is NaN");
        img[(0, 2, 5)] = f32::INFINITY;
        expect_invalid_input(m.id, &img, "is inf");
        expect_invalid_input(m.id, &Array3::zeros((1, 0, 8)), "empty");
        expect_invalid_input(m.id, &Array3::zeros((0, 8, 8)), "empty");
        expect_invalid_input(m.id, &Array3::zeros((1, 1, 1)), "at least 2x2");
        expect_invalid_input(m.id, &Array3::zeros((3, 1, 9)), "at least 2x2");
        // Finite but beyond what 32-bit arithmetic survives (found by fuzzing: a top-hat
        // of ±f32::MAX overflowed, BM3D of a subnormal-range image gave NaN).
        img[(0, 2, 5)] = -f32::MAX;
        expect_invalid_input(m.id, &img, "must lie within ±1e12");
        img[(0, 2, 5)] = 1e-40;
        expect_invalid_input(m.id, &img, "intensity range is 1.00e-40, below 1e-15");
    }
}

#[test]
fn every_out_of_range_parameter_is_rejected() {
    let img = Array3::<f32>::zeros((1, 8, 8));
    for m in registry() {
        for p in m.params {
            let bad: Vec<String> = match p.kind {
                ParamKind::Float { min, max, .. } => {
                    let mut b = vec!["nan".to_string(), "inf".to_string(), "-inf".to_string()];
                    b.push(format!("{}", min - 1.0));
                    if max.is_finite() {
                        b.push(format!("{}", max + 1.0));
                    }
                    b
                }
                ParamKind::Int { min, max, .. } => {
                    vec![(min - 1).to_string(), (max + 1).to_string()]
                }
                // A file's problems (missing, damaged) are the method's tests'.
                ParamKind::Choice { .. } | ParamKind::File { .. } => vec![],
                // A rectangle beyond the image is refused naming the parameter, with the
                // image's size (the range depends on the image).
                ParamKind::Region => {
                    let r = run(
                        m.id,
                        img.view(),
                        &ParamValues::new().set(p.key, "4,4,5,2"),
                        &Control::new(),
                    );
                    assert!(
                        matches!(&r, Err(DenoiseError::InvalidParamValue { name, expected, .. })
                            if name == p.key && expected.contains("8x8")),
                        "{}.{}: {r:?}",
                        m.id,
                        p.key
                    );
                    vec![]
                }
            };
            for value in bad {
                let r = run(
                    m.id,
                    img.view(),
                    &ParamValues::new().set(p.key, &value),
                    &Control::new(),
                );
                match r {
                    Err(DenoiseError::ParamOutOfRange { ref name, .. }) if name == p.key => {}
                    other => panic!(
                        "{}.{} = {value}: expected ParamOutOfRange, got {other:?}",
                        m.id, p.key
                    ),
                }
            }
            if p.writes() {
                // Any name is a file one can write; the method's tests cover the rest.
                continue;
            }
            let garbage = run(
                m.id,
                img.view(),
                &ParamValues::new().set(p.key, "abc"),
                &Control::new(),
            );
            assert!(
                matches!(garbage, Err(DenoiseError::InvalidParamValue { .. })),
                "{}.{}: {garbage:?}",
                m.id,
                p.key
            );
        }
        let unknown = run(
            m.id,
            img.view(),
            &ParamValues::new().set("no_such_key", 1),
            &Control::new(),
        );
        assert!(
            matches!(unknown, Err(DenoiseError::UnknownParam { .. })),
            "{unknown:?}"
        );
    }
}

#[test]
fn typed_params_reject_out_of_range_values() {
    let img = Array3::<f32>::zeros((1, 8, 8));
    let p = denoisekit_core::NlMeansParams {
        h: -1.0,
        sigma: 0.0,
        patch_radius: 1,
        search_radius: 2,
        patch_radius_z: 0,
        search_radius_z: 0,
    };
    let e = denoisekit_core::denoise_nl_means(img.view(), &p, &Control::new()).unwrap_err();
    assert_eq!(e.to_string(), "parameter `h` = -1 is outside [0, inf)");
}

#[test]
fn unknown_method_lists_the_registry() {
    let img = Array3::<f32>::zeros((1, 8, 8));
    let e = run("wiener", img.view(), &ParamValues::new(), &Control::new()).unwrap_err();
    let msg = e.to_string();
    for m in registry() {
        assert!(msg.contains(m.id), "{msg}");
    }
}

#[test]
fn cancelled_control_stops_every_method() {
    let (_, noisy) = noisy_2d();
    for m in registry() {
        for values in with_image_inputs(m, &ParamValues::new(), noisy.view()) {
            let ctl = Control::new();
            ctl.cancel();
            let r = run(m.id, noisy.view(), &values, &ctl);
            assert_eq!(r.unwrap_err(), DenoiseError::Cancelled, "{}", m.id);
        }
    }
}

#[test]
fn every_method_reports_progress_up_to_one() {
    // A front end's progress bar: it must move while the job runs and be full at its end,
    // on a plane, and on a stack plane by plane and in 3D.
    let (_, plane) = noisy_2d();
    let (_, stack) = noisy_3d();
    for m in registry() {
        for (img, base) in [
            (&plane, ParamValues::new()),
            (&stack, ParamValues::new()),
            (&stack, m.three_d_values()),
        ] {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            let ctl = Control::with_progress(move |p| log.lock().unwrap().push(p));
            let values = m.with_example_images(&quick(m, &base), img.view());
            run(m.id, img.view(), &values, &ctl).unwrap();
            let seen = seen.lock().unwrap();
            let what = format!("{} {} {:?}", m.id, values.to_options(), img.dim());
            assert!(seen.len() > 1, "{what}: progress {seen:?}");
            assert!(seen.windows(2).all(|p| p[0] <= p[1]), "{what}: {seen:?}");
            assert_eq!(seen.last(), Some(&1.0), "{what}");
        }
    }
}

#[test]
fn a_job_with_nothing_to_do_still_ends_its_progress_at_one() {
    // A constant image: several methods return it as it is without a step of work, and
    // a front end's bar must not be left where it was.
    let flat = Volume::from_elem((1, 24, 24), 7.0);
    for m in registry() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let ctl = Control::with_progress(move |p| log.lock().unwrap().push(p));
        let values = m.with_example_images(&quick(m, &ParamValues::new()), flat.view());
        run(m.id, flat.view(), &values, &ctl).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&1.0), "{}: {seen:?}", m.id);
        assert_eq!(
            seen.iter().filter(|&&p| p == 1.0).count(),
            1,
            "{}: {seen:?}",
            m.id
        );
    }
}

#[test]
fn quick_settings_are_valid_and_still_filter() {
    // The end-to-end suites (emulators, Python, Dask) run every method at these settings:
    // a key that is not a parameter, a value out of range, or a setting that made the
    // method return its input would leave them testing nothing.
    let (_, noisy) = noisy_2d();
    for m in registry() {
        let values = m.quick_values();
        denoisekit_core::prepare(m.id, &noisy.view(), &values)
            .unwrap_or_else(|e| panic!("{} quick {}: {e}", m.id, values.to_options()));
        let out = run(m.id, noisy.view(), &values, &Control::new()).unwrap();
        assert_ne!(
            out,
            noisy,
            "{} quick {} changed nothing",
            m.id,
            values.to_options()
        );
    }
}

#[test]
fn defaults_round_trip_through_the_descriptor() {
    // The resolved defaults must be accepted again when written out as text, as a
    // recorded macro would replay them.
    let (_, noisy) = noisy_2d();
    for m in registry() {
        let (_, r) = denoisekit_core::prepare(m.id, &noisy.view(), &ParamValues::new()).unwrap();
        let mut v = ParamValues::new();
        for (k, val) in r.iter() {
            v.insert(k, val);
        }
        let (_, again) = denoisekit_core::prepare(m.id, &noisy.view(), &v).unwrap();
        assert_eq!(r.to_options(), again.to_options(), "{}", m.id);
    }
}

#[test]
fn tiny_positive_parameters_give_finite_output() {
    let (_, noisy) = noisy_2d();
    for m in registry() {
        for p in m.params {
            if let ParamKind::Float { min, .. } = p.kind {
                if min > 0.0 {
                    continue;
                }
                for tiny in ["1e-30", "1e-300", "5e-324"] {
                    let out = run(
                        m.id,
                        noisy.view(),
                        &quick(m, &ParamValues::new().set(p.key, tiny)),
                        &Control::new(),
                    )
                    .unwrap();
                    assert!(
                        out.iter().all(|v| v.is_finite()),
                        "{}.{} = {tiny} gave non-finite output",
                        m.id,
                        p.key
                    );
                }
            }
        }
    }
}

#[test]
fn strided_views_give_the_same_result_as_contiguous_copies() {
    let (_, noisy) = noisy_3d();
    // A z-reversed view is not in standard layout; every method must accept it as is.
    let view = noisy.slice(ndarray::s![..;-1, .., ..]);
    let copy = view.to_owned();
    for m in registry() {
        for values in [three_d_values(m.id), ParamValues::new()] {
            let values = quick(m, &values);
            let a = run(m.id, view, &values, &Control::new()).unwrap();
            let b = run(m.id, copy.view(), &values, &Control::new()).unwrap();
            assert_eq!(a, b, "{}", m.id);
        }
    }
    let g = ParamValues::new().set("sigma", 0).set("sigma_z", 1);
    let a = run("gaussian", view, &g, &Control::new()).unwrap();
    assert_eq!(
        a,
        run("gaussian", copy.view(), &g, &Control::new()).unwrap()
    );
}

#[test]
fn noise_estimate_ignores_clipped_background() {
    // 70% of the image is background clipped to exactly 0, as in many 8-bit fluorescence
    // images; the rest has noise of sigma 4 on a ramp.
    let mut r = denoisekit_core::phantom::Rng::new(9);
    let img = Array3::from_shape_fn((1, 200, 200), |(_, y, x)| {
        if x < 140 {
            0.0
        } else {
            (50.0 + y as f64 * 0.2 + 4.0 * r.normal()) as f32
        }
    });
    let s = denoisekit_core::estimate_sigma(&img.view()).unwrap();
    assert!((s - 4.0).abs() < 0.4, "estimated {s}, true 4");
    let flat = Array3::<f32>::from_elem((2, 30, 30), 7.0);
    assert_eq!(denoisekit_core::estimate_sigma(&flat.view()).unwrap(), 0.0);
}

#[test]
fn noise_estimate_is_within_ten_percent_on_the_phantom() {
    for sigma in [0.02, 0.1, 0.3] {
        let p = phantom(&PhantomSpec {
            shape: (1, 256, 256),
            seed: 21,
            read_noise: sigma,
            ..Default::default()
        });
        let s = denoisekit_core::estimate_sigma(&p.noisy.view()).unwrap();
        assert!(
            (s - sigma).abs() < 0.1 * sigma,
            "estimated {s}, true {sigma}"
        );
    }
}

#[test]
fn crop_with_support_halo_reproduces_the_full_result_exactly() {
    // This is what makes the ImageJ preview of a region equal the final result there.
    use ndarray::s;
    for (_, img) in [noisy_2d(), noisy_3d()] {
        let (d, h, w) = img.dim();
        for m in registry() {
            let values = quick(m, &three_d_values(m.id));
            let full = run(m.id, img.view(), &values, &Control::new()).unwrap();
            let (_, resolved) = denoisekit_core::prepare(m.id, &img.view(), &values).unwrap();
            // Pin noise-derived defaults: the crop's own noise estimate would differ.
            let mut pinned = ParamValues::new();
            for (k, v) in resolved.iter() {
                pinned.insert(k, v);
            }
            let [hz, hy, hx] = (m.support)(&resolved).unwrap();
            let (z0, z1): (usize, usize) = if d > 1 { (2, 4) } else { (0, 1) };
            let (y0, y1, x0, x1) = (h / 3, h / 3 + 9, w / 4, w / 4 + 13);
            let (cz0, cy0, cx0) = (
                z0.saturating_sub(hz),
                y0.saturating_sub(hy),
                x0.saturating_sub(hx),
            );
            let (cz1, cy1, cx1) = ((z1 + hz).min(d), (y1 + hy).min(h), (x1 + hx).min(w));
            let crop = img.slice(s![cz0..cz1, cy0..cy1, cx0..cx1]);
            let out = run(m.id, crop, &pinned, &Control::new()).unwrap();
            let part = out.slice(s![
                z0 - cz0..z1 - cz0,
                y0 - cy0..y1 - cy0,
                x0 - cx0..x1 - cx0
            ]);
            assert_eq!(
                part,
                full.slice(s![z0..z1, y0..y1, x0..x1]),
                "{} on {:?}",
                m.id,
                img.dim()
            );
        }
    }
}

#[test]
fn total_variation_is_local_with_a_fixed_iteration_count_and_global_with_its_stop() {
    // A crop grown by max_iterations reproduces the full result only when the energy
    // stop is off: the stop's iteration depends on the whole image (1.7e-3 apart on a
    // 1024^2 crop before this was stated).
    use ndarray::s;
    let (_, img) = noisy_3d();
    let (d, h, w) = img.dim();
    for z_weight in [0.0, 1.0] {
        let v = ParamValues::new()
            .set("tolerance", 0)
            .set("max_iterations", 5)
            .set("z_weight", z_weight)
            .set("noise_model", "gaussian");
        let (m, r) = denoisekit_core::prepare("total_variation", &img.view(), &v).unwrap();
        // The crop's own noise estimate would give another lambda.
        let v = r.to_params();
        let [hz, hy, hx] = (m.support)(&r).unwrap();
        assert_eq!([hy, hx], [5, 5]);
        assert_eq!(hz, if z_weight > 0.0 { 5 } else { 0 });
        let full = run("total_variation", img.view(), &v, &Control::new()).unwrap();
        let (y0, y1, x0, x1) = (h / 2 - 3, h / 2 + 3, w / 2 - 4, w / 2 + 4);
        let (z0, z1) = (d / 2, d / 2 + 1);
        let crop = img.slice(s![
            z0.saturating_sub(hz)..(z1 + hz).min(d),
            y0 - hy..y1 + hy,
            x0 - hx..x1 + hx
        ]);
        assert!(
            crop.dim().1 < h && crop.dim().2 < w,
            "the crop must be a real crop"
        );
        let out = run("total_variation", crop, &v, &Control::new()).unwrap();
        let oz = z0 - z0.saturating_sub(hz);
        assert_eq!(
            out.slice(s![oz..oz + 1, hy..hy + y1 - y0, hx..hx + x1 - x0]),
            full.slice(s![z0..z1, y0..y1, x0..x1]),
            "z_weight {z_weight}"
        );
    }
    let (m, r) =
        denoisekit_core::prepare("total_variation", &img.view(), &ParamValues::new()).unwrap();
    let global = denoisekit_core::descriptor::GLOBAL_SUPPORT;
    assert_eq!((m.support)(&r).unwrap(), [0, global, global]);
}

#[test]
fn unstable_or_unregularised_settings_are_refused_with_the_bound() {
    let img = Array3::<f32>::zeros((3, 8, 8));
    let e = run(
        "tikhonov",
        img.view(),
        &ParamValues::new().set("lambda", 0).set("psf_sigma", 1.5),
        &Control::new(),
    )
    .unwrap_err();
    assert!(
        matches!(e, DenoiseError::ParamOutOfRange { ref name, .. } if name == "lambda"),
        "{e}"
    );
    // An explicit diffusion step above 1/(2(2 + z_weight)) would diverge in 3D.
    let v = ParamValues::new().set("step", 0.25).set("z_weight", 1);
    let e = run("anisotropic_diffusion", img.view(), &v, &Control::new()).unwrap_err();
    assert!(e.to_string().contains("0.1667"), "{e}");
}

#[test]
fn windows_of_planes_give_the_untiled_result_exactly() {
    // What `run` does when a stack exceeds the memory budget, forced here with windows of
    // two planes: every method that reaches finitely far in z must be seam-free.
    let (_, noisy) = noisy_3d();
    let mut tiled_methods = 0;
    for m in registry() {
        // Every choice in 3D too: a periodic border wraps the halo around the stack.
        let mut settings = vec![ParamValues::new(), three_d_values(m.id)];
        for p in m.params {
            if let ParamKind::Choice { options, .. } = p.kind {
                settings.extend(options.iter().map(|o| three_d_values(m.id).set(p.key, o)));
            }
        }
        for values in settings {
            let values = m.with_example_images(&quick(m, &values), noisy.view());
            let (_, r) = denoisekit_core::prepare(m.id, &noisy.view(), &values).unwrap();
            let halo = (m.support)(&r).unwrap()[0];
            if halo >= denoisekit_core::descriptor::GLOBAL_SUPPORT {
                continue;
            }
            let whole = run(m.id, noisy.view(), &r.to_params(), &Control::new()).unwrap();
            let mut tiled = Array3::<f32>::zeros(noisy.raw_dim());
            let plan = denoisekit_core::tiling::Plan { window: 2, halo };
            denoisekit_core::tiling::run_windows::<DenoiseError>(
                m,
                &r,
                noisy.dim().0,
                plan,
                |range| Ok(noisy.slice(ndarray::s![range, .., ..]).to_owned()),
                |z, planes| {
                    let n = planes.dim().0;
                    tiled
                        .slice_mut(ndarray::s![z..z + n, .., ..])
                        .assign(&planes);
                    Ok(())
                },
                &Control::new(),
            )
            .unwrap();
            assert_eq!(
                whole,
                tiled,
                "{} {} differs when run in windows of 2 planes with halo {halo}",
                m.id,
                values.to_options()
            );
            tiled_methods += 1;
        }
    }
    assert!(tiled_methods >= 16, "only {tiled_methods} settings tiled");
}
