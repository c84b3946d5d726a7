//! Every GPU kernel gives the CPU's answer within its descriptor's `gpu_tolerance`.
//!
//! Runs on any adapter, Mesa's lavapipe included. Without an adapter the tests skip,
//! unless `DENOISEKIT_REQUIRE_GPU` is set (CI sets it), in which case they fail.
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

mod common;

use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::volume::min_max;
use denoisekit_core::{Backend, Control, GaussianParams, ParamValues, Volume, registry};
use denoisekit_gpu::{GPU_METHODS, GpuContext, Ran, gpu_method, run};

use common::context;

fn inputs() -> Vec<Volume> {
    let mk = |shape, seed| {
        phantom(&PhantomSpec {
            shape,
            seed,
            ..Default::default()
        })
        .noisy
    };
    vec![mk((1, 67, 45), 1), mk((5, 33, 29), 2)]
}

fn max_rel_diff(a: &Volume, b: &Volume, range: f32) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / range
}

#[test]
fn gpu_kernels_and_descriptors_agree() {
    for m in registry() {
        assert_eq!(
            m.gpu_tolerance.is_some(),
            gpu_method(m.id).is_some(),
            "{}",
            m.id
        );
    }
    for m in GPU_METHODS {
        assert!(
            denoisekit_core::find(m.id).is_ok(),
            "{} is not registered",
            m.id
        );
    }
}

#[test]
fn every_gpu_method_matches_cpu() {
    let Some(ctx) = context() else { return };
    eprintln!("GPU: {}", ctx.describe());
    let mut compared = 0;
    for m in registry().iter().filter(|m| m.gpu_tolerance.is_some()) {
        let tol = m.gpu_tolerance.unwrap_or(0.0);
        // Defaults, plus every choice of every choice parameter, plus each z neighbourhood
        // on (the descriptor's 3D value of each parameter that has one).
        // The choices start from the descriptor's quick settings (cheap on small images:
        // fewer iterations or a smaller search; the defaults run covers the rest): at the
        // defaults, zs_n2n's every training choice on lavapipe cost minutes. A z
        // neighbourhood starts from the defaults, which no other setting runs in 3D (the
        // quick settings may leave a path out: total variation's stopping test).
        let mut settings = vec![ParamValues::new()];
        let variant = || m.quick_values();
        for p in m.params {
            if let denoisekit_core::ParamKind::Choice { options, .. } = p.kind {
                settings.extend(options.iter().map(|o| variant().set(p.key, o)));
            }
            if let Some(on) = p.three_d {
                settings.push(ParamValues::new().set(p.key, on));
            }
        }
        // A method with no z neighbourhood treats a stack's planes alike (each on its own,
        // or, for zs_n2n, as sources of training patches for one network applied plane by
        // plane), so its defaults run once, on the stack: that covers the loop over planes
        // at the defaults too, and the plane runs the quick settings instead. The stack's
        // smaller planes are the cheaper input for zs_n2n's default training (patches are
        // at most a plane's even side: 28² there against 44² on the plane), which took over
        // five minutes of lavapipe on the plane.
        let plane_by_plane = m.three_d_values().pairs().is_empty();
        for (i, img) in inputs().iter().enumerate() {
            let (lo, hi) = min_max(&img.view());
            let mut on_this = settings.clone();
            if i == 0 && plane_by_plane {
                on_this[0] = variant();
            }
            // zs_n2n's defaults train for 800 steps: 326 s of lavapipe on the stack, 80% of
            // this test and over 5 minutes of CI. Beyond the quick settings (12 steps, the
            // same code paths and schedule) they add the drift of a long training: Adam's
            // sign-sized steps carry roundings forward (the mechanism is checked in
            // zs_n2n_trains_on_the_gpu_as_on_the_cpu). Measured here on 2026-12-07: 2.1e-2
            // of the range after 800 steps, under the 7e-2 tolerance; 1.1e-7 after 100. CI
            // runs 100 steps; DENOISEKIT_FULL_GPU_TESTS=1 runs the defaults in full.
            if i == 1 && m.id == "zs_n2n" && std::env::var_os("DENOISEKIT_FULL_GPU_TESTS").is_none()
            {
                on_this[0] = ParamValues::new().set("steps", 100);
            }
            for values in &on_this {
                // A choice that needs an image (psf=image) gets the descriptor's example.
                let values = &m.with_example_images(values, img.view());
                let gpu = run(m.id, img.view(), values, Backend::Gpu, &Control::new());
                let cpu = run(m.id, img.view(), values, Backend::Cpu, &Control::new());
                // A setting a shape cannot take (a 3D PSF on a plane) is the same error.
                let (gpu, cpu) = match (gpu, cpu) {
                    (Ok(g), Ok(c)) => (g, c),
                    (Err(g), Err(c)) => {
                        assert_eq!(g, c, "{} {values:?}", m.id);
                        continue;
                    }
                    (g, c) => panic!("{} {values:?}: GPU {g:?}, CPU {c:?}", m.id),
                };
                // Every setting of a method with a kernel runs on the GPU (a PSF image and
                // supervised training included).
                let ran = &gpu.device;
                assert!(
                    matches!(ran, Ran::Gpu(_)),
                    "{} {values:?}: ran on {ran}",
                    m.id
                );
                assert_eq!(
                    gpu.params, cpu.params,
                    "both devices must use the same parameters"
                );
                let d = max_rel_diff(&gpu.volume, &cpu.volume, hi - lo);
                eprintln!(
                    "{} {values:?} {:?}: GPU-CPU = {d:.2e} of range",
                    m.id,
                    img.dim()
                );
                assert!(
                    d <= tol,
                    "{} {:?} {:?}: GPU-CPU = {d} of range > {tol}",
                    m.id,
                    values,
                    img.dim()
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 0);
}

/// Large uploads go through a pooled staging buffer filled by all cores, and large read-backs
/// are copied out by all cores: every byte arrives, in order, including a length that is
/// not a whole number of copy chunks, and a reused staging buffer carries no old data.
#[test]
fn large_uploads_and_read_backs_arrive_whole() {
    let Some(ctx) = common::context() else { return };
    for (len, salt) in [
        ((3 << 20) / 4 + 3, 0.0f32),
        ((3 << 20) / 4 + 3, 0.5),
        (1 << 18, 0.25),
    ] {
        let data: Vec<f32> = (0..len).map(|i| i as f32 * 0.001 + salt).collect();
        let back = ctx
            .scoped(|| {
                let b = ctx.upload("round trip", &data);
                ctx.read_back(&b, len)
            })
            .unwrap()
            .unwrap();
        assert!(back == data, "{len} floats (salt {salt}) came back changed");
    }
}

#[test]
fn tiled_gaussian_equals_untiled() {
    let Some(ctx) = context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (9, 24, 20),
        seed: 5,
        ..Default::default()
    })
    .noisy;
    for border in denoisekit_core::BorderMode::ALL {
        let p = GaussianParams {
            sigma: 1.0,
            sigma_z: 0.7,
            border,
        };
        let plane = (24 * 20 * 4) as u64;
        // Room for 3 halo planes plus 4 output planes: tiles of 4, 4 and 1 planes.
        let tiled = denoisekit_gpu::methods::gaussian::gaussian(
            ctx,
            img.view(),
            &p,
            &Control::new(),
            Some(plane * 10),
        )
        .unwrap();
        let cpu = denoisekit_core::denoise_gaussian(img.view(), &p, &Control::new()).unwrap();
        let (lo, hi) = min_max(&img.view());
        let d = max_rel_diff(&tiled, &cpu, hi - lo);
        assert!(d <= 1e-5, "{border:?}: tiled GPU differs from CPU by {d}");
    }
}

#[test]
fn backend_choice_is_honoured_and_reported() {
    let img = inputs().remove(0);
    let ran = run(
        "gaussian",
        img.view(),
        &ParamValues::new(),
        Backend::Cpu,
        &Control::new(),
    )
    .unwrap()
    .device;
    assert_eq!(ran, Ran::Cpu(None));
    let Some(ctx) = context() else {
        let r = run(
            "gaussian",
            img.view(),
            &ParamValues::new(),
            Backend::Gpu,
            &Control::new(),
        );
        assert!(matches!(
            r,
            Err(denoisekit_core::DenoiseError::BackendUnavailable { .. })
        ));
        return;
    };
    // Auto on a method whose kernel beats the CPU (tests/gpu_auto.rs covers the others).
    let ran = run(
        "bilateral",
        img.view(),
        &ParamValues::new(),
        Backend::Auto,
        &Control::new(),
    )
    .unwrap()
    .device;
    if ctx.is_software() {
        assert!(
            matches!(ran, Ran::Cpu(Some(ref why)) if why.contains("software")),
            "{ran}"
        );
    } else {
        assert!(matches!(ran, Ran::Gpu(_)), "{ran}");
    }
    // A method without a GPU kernel runs on the CPU and says why.
    let Some(cpu_only) = registry().iter().find(|m| m.gpu_tolerance.is_none()) else {
        return;
    };
    let ran = run(
        cpu_only.id,
        img.view(),
        &ParamValues::new(),
        Backend::Gpu,
        &Control::new(),
    )
    .unwrap()
    .device;
    assert!(
        matches!(ran, Ran::Cpu(Some(ref why)) if why.contains("no GPU kernel")),
        "{ran}"
    );
}

#[test]
fn gpu_errors_are_typed_like_cpu_errors() {
    // A parameter combination the method refuses is the same error on either device,
    // not a GPU failure.
    let stack = phantom(&PhantomSpec {
        shape: (3, 16, 16),
        seed: 3,
        ..Default::default()
    })
    .noisy;
    let unstable = ParamValues::new().set("z_weight", 1).set("step", 0.25);
    for backend in [Backend::Cpu, Backend::Gpu] {
        let r = run(
            "anisotropic_diffusion",
            stack.view(),
            &unstable,
            backend,
            &Control::new(),
        );
        match (context(), r) {
            (_, Err(denoisekit_core::DenoiseError::ParamOutOfRange { name, max, .. })) => {
                assert_eq!(name, "step");
                assert!(max.contains("stability"), "{max}");
            }
            (None, Err(denoisekit_core::DenoiseError::BackendUnavailable { .. })) => {}
            (_, other) => panic!("{backend:?}: {other:?}"),
        }
    }
    // A cancelled job is Cancelled on the GPU as on the CPU, never a device failure and
    // never pixels.
    if context().is_some() {
        for m in GPU_METHODS {
            let ctl = Control::new();
            ctl.cancel();
            let r = run(m.id, stack.view(), &ParamValues::new(), Backend::Gpu, &ctl);
            assert!(
                matches!(r, Err(denoisekit_core::DenoiseError::Cancelled)),
                "{}: {r:?}",
                m.id
            );
        }
    }
    let img = Volume::zeros((1, 8, 8));
    let r = run(
        "gaussian",
        img.view(),
        &ParamValues::new().set("sigma", 99),
        Backend::Gpu,
        &Control::new(),
    );
    assert!(
        matches!(
            r,
            Err(denoisekit_core::DenoiseError::ParamOutOfRange { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn tiled_kernels_equal_untiled() {
    // Tiles of a few planes with their z halo must reproduce the one-dispatch result
    // exactly: every output pixel sees the same neighbours in the same order, and
    // iterative kernels carry as many halo planes as iterations.
    let Some(ctx) = context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (9, 20, 24),
        seed: 6,
        ..Default::default()
    })
    .noisy;
    let plane = (20 * 24 * 4) as u64;
    type Tiled = fn(
        &GpuContext,
        denoisekit_core::VolumeView<'_>,
        &denoisekit_core::Resolved,
        &Control,
        Option<u64>,
    ) -> Result<Volume, denoisekit_gpu::GpuError>;
    use denoisekit_gpu::methods as gm;
    // (method, settings, its GPU host, planes of room that give tiles of 3 output planes,
    // planes of room too small for one plane with its halo)
    let cases: [(&str, ParamValues, Tiled, u64, u64); 5] = [
        (
            "bilateral",
            ParamValues::new().set("sigma_spatial_z", 1),
            gm::bilateral::run,
            3 + 2 * 3,
            2,
        ),
        (
            "nl_means",
            ParamValues::new()
                .set("patch_radius_z", 1)
                .set("search_radius_z", 1)
                .set("search_radius", 3),
            gm::nl_means::run,
            3 + 2 * 2,
            2,
        ),
        (
            "median",
            ParamValues::new().set("radius", 2).set("radius_z", 1),
            gm::median::run,
            3 + 2,
            2,
        ),
        (
            "anisotropic_diffusion",
            ParamValues::new().set("z_weight", 0.5).set("iterations", 2),
            gm::anisotropic_diffusion::run,
            3 + 2 * 2,
            4,
        ),
        (
            // Planes on their own: no halo, but two dual arrays per voxel.
            "total_variation",
            ParamValues::new(),
            gm::total_variation::run,
            2 * 3,
            1,
        ),
    ];
    for (id, values, tiled, room, too_small) in cases {
        let (_, resolved) = denoisekit_core::prepare(id, &img.view(), &values).unwrap();
        let whole = tiled(ctx, img.view(), &resolved, &Control::new(), None).unwrap();
        let parts = tiled(
            ctx,
            img.view(),
            &resolved,
            &Control::new(),
            Some(plane * room),
        )
        .unwrap();
        assert_eq!(parts, whole, "{id}: tiled result differs");
        let r = tiled(
            ctx,
            img.view(),
            &resolved,
            &Control::new(),
            Some(plane * too_small),
        );
        assert!(
            matches!(r, Err(denoisekit_gpu::GpuError::TooLarge(_))),
            "{id}: {r:?}"
        );
    }
    // Z-coupled TV stops on the whole volume's energy: it is never tiled.
    let values = ParamValues::new().set("z_weight", 1);
    let (_, resolved) = denoisekit_core::prepare("total_variation", &img.view(), &values).unwrap();
    let r = gm::total_variation::run(
        ctx,
        img.view(),
        &resolved,
        &Control::new(),
        Some(plane * 24),
    );
    assert!(
        matches!(r, Err(denoisekit_gpu::GpuError::TooLarge(_))),
        "{r:?}"
    );
}

#[test]
fn spectral_filters_in_chunks_of_lines_equal_one_chunk() {
    // The DCTs' complex scratch holds as many lines as fit: a volume whose lines need
    // several chunks per axis (here a limit of the volume's own size) gives the same values.
    let Some(ctx) = context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (5, 33, 29),
        seed: 12,
        ..Default::default()
    })
    .noisy;
    let values = ParamValues::new().set("cutoff", 0.2).set("cutoff_z", 0.3);
    let (_, resolved) = denoisekit_core::prepare("fourier_filter", &img.view(), &values).unwrap();
    let run = |limit| {
        denoisekit_gpu::methods::fourier_filter::run(
            ctx,
            img.view(),
            &resolved,
            &Control::new(),
            limit,
        )
    };
    let whole = run(None).unwrap();
    assert_eq!(run(Some(img.len() as u64 * 4)).unwrap(), whole);
    // A limit that holds a plane but not one line's FFT (a line of 106 = 2·53 needs
    // Bluestein's 256 complex values) is refused, not cut.
    let thin = Volume::from_shape_fn((2, 4, 106), |(z, y, x)| (x * 3 + y * 7 + z) as f32);
    let (_, resolved) =
        denoisekit_core::prepare("fourier_filter", &thin.view(), &ParamValues::new()).unwrap();
    let r = denoisekit_gpu::methods::fourier_filter::run(
        ctx,
        thin.view(),
        &resolved,
        &Control::new(),
        Some(4 * 106 * 4),
    );
    assert!(
        matches!(r, Err(denoisekit_gpu::GpuError::TooLarge(_))),
        "{r:?}"
    );
}

#[test]
fn bm3d_on_the_gpu_keeps_the_cpu_psnr_in_any_number_of_bands() {
    // Issue 22's criterion: the same PSNR within 0.05 dB, in one band of reference rows
    // and in two (one submission each). The split changes the order of the sums, so each
    // result is compared with the CPU's rather than with the other (tests/gpu_reuse.rs
    // holds a re-run of one job to the same pixels).
    let Some(ctx) = context() else { return };
    let scene = phantom(&PhantomSpec {
        shape: (1, 96, 104),
        seed: 18,
        ..Default::default()
    });
    let img = scene.noisy.view();
    let (lo, hi) = min_max(&img);
    let range = f64::from(hi - lo);
    let tol = denoisekit_core::find("bm3d")
        .unwrap()
        .gpu_tolerance
        .unwrap();
    // The host on its own, without the variance-stabilising wrapper of `run`.
    let values = ParamValues::new().set("noise_model", "gaussian");
    let (_, resolved) = denoisekit_core::prepare("bm3d", &img, &values).unwrap();
    let cpu = denoisekit_core::run("bm3d", img, &values, &Control::new()).unwrap();
    let psnr =
        |v: &Volume| denoisekit_core::metrics::psnr(&scene.clean.view(), &v.view(), range).unwrap();
    // The plane's sums take 2 x 96 x 104 floats: a limit of that lets a band hold 18 of
    // the 31 rows of 33 references (33 values each), so the plane takes two bands.
    let sums = 2 * 96 * 104 * 4;
    for limit in [None, Some(sums)] {
        let gpu = denoisekit_gpu::methods::bm3d::run(ctx, img, &resolved, &Control::new(), limit)
            .unwrap();
        let d = max_rel_diff(&gpu, &cpu, hi - lo);
        let (pg, pc) = (psnr(&gpu), psnr(&cpu));
        eprintln!(
            "bm3d, group lists up to {limit:?} bytes: GPU-CPU = {d:.2e} of range, PSNR {pg:.3} / {pc:.3} dB"
        );
        assert!(d <= tol, "{limit:?}: GPU-CPU = {d} of range > {tol}");
        assert!(
            (pg - pc).abs() <= 0.05,
            "{limit:?}: PSNR {pg} on the GPU, {pc} on the CPU"
        );
        assert!(pc > psnr(&scene.noisy) + 3.0, "BM3D denoises: {pc} dB");
    }
    let r =
        denoisekit_gpu::methods::bm3d::run(ctx, img, &resolved, &Control::new(), Some(sums - 4));
    assert!(
        matches!(r, Err(denoisekit_gpu::GpuError::TooLarge(_))),
        "{r:?}"
    );
}

#[test]
fn zs_n2n_in_bands_of_rows_equals_one_band() {
    // The hidden maps' buffer holds as many rows as fit: a limit of a few rows' worth
    // gives the same values as the whole plane at once, and one below a row and the rows
    // the convolutions read around it (three on each side with four layers) is refused.
    // A deeper network than the default, so that the bands' margins and the alternation
    // between the two maps are tested; the result is the CPU's.
    let Some(ctx) = context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (2, 37, 29),
        seed: 13,
        ..Default::default()
    })
    .noisy;
    // Applying saved weights: training needs buffers of its own, far above a few rows.
    let file = std::env::temp_dir().join(format!("dk-gpu-bands-{}.json", std::process::id()));
    let path = file.display().to_string();
    let trained = denoisekit_core::find("zs_n2n")
        .unwrap()
        .quick_values()
        .set("width", 8)
        .set("layers", 4)
        .set("save_weights", path.as_str());
    denoisekit_core::run("zs_n2n", img.view(), &trained, &Control::new()).unwrap();
    // The network's kernels are compared: the refinement after them matches patches,
    // where a rounding can swap a group's member (the registry test covers it).
    let values = ParamValues::new()
        .set("weights", path.as_str())
        .set("refine", 0);
    let cpu = denoisekit_core::run("zs_n2n", img.view(), &values, &Control::new()).unwrap();
    let (_, resolved) = denoisekit_core::prepare("zs_n2n", &img.view(), &values).unwrap();
    let run = |limit| {
        denoisekit_gpu::methods::zs_n2n::run(ctx, img.view(), &resolved, &Control::new(), limit)
    };
    let whole = run(None).unwrap();
    let (lo, hi) = min_max(&img.view());
    let d = max_rel_diff(&whole, &cpu, hi - lo);
    assert!(d <= 1e-5, "GPU - CPU = {d:e} of the range");
    // Both hidden maps of one row: 8 + 8 channels. Nine rows' worth: bands of 3 rows.
    let row = 29 * (8 + 8) * 4;
    assert_eq!(run(Some(9 * row)).unwrap(), whole);
    let r = run(Some(6 * row));
    std::fs::remove_file(&file).unwrap();
    assert!(
        matches!(r, Err(denoisekit_gpu::GpuError::TooLarge(_))),
        "{r:?}"
    );
}

#[test]
fn demanding_settings_hold_their_tolerance() {
    // DCT rounding grows with the axis length, deconvolution amplifies rounding by its
    // gain, and Richardson-Lucy compounds it over many iterations: check each at a
    // realistic size against the CPU.
    let Some(_) = context() else { return };
    let shape = |shape, seed| {
        phantom(&PhantomSpec {
            shape,
            seed,
            ..Default::default()
        })
        .noisy
    };
    let (large, plane, stack) = (
        shape((1, 384, 416), 8),
        shape((1, 128, 144), 8),
        shape((6, 64, 72), 9),
    );
    // The DCTs' FFTs: powers of two run radix-4 (and one radix-2) passes, 384, 416, 144
    // and 72 mixed radices, and a prime length like 509 Bluestein's chirp-z.
    let (pow2, pow2_stack, prime) = (
        shape((1, 512, 256), 10),
        shape((8, 32, 64), 11),
        shape((1, 96, 509), 14),
    );
    let rl = |psf: &str, tv: f64, iterations: usize| {
        ParamValues::new()
            .set("psf", psf)
            .set("tv", tv)
            .set("iterations", iterations)
    };
    // (method, image, settings)
    let cases = [
        (
            "tikhonov",
            &large,
            ParamValues::new().set("psf_sigma", 2).set("lambda", 0.01),
        ),
        (
            "tikhonov",
            &large,
            ParamValues::new()
                .set("regulariser", "laplacian")
                .set("lambda", 50),
        ),
        (
            "fourier_filter",
            &large,
            ParamValues::new().set("cutoff", 0.1).set("softness", 0),
        ),
        (
            "tikhonov",
            &pow2,
            ParamValues::new().set("psf_sigma", 2).set("lambda", 0.01),
        ),
        (
            "tikhonov",
            &prime,
            ParamValues::new().set("psf_sigma", 2).set("lambda", 0.01),
        ),
        (
            "fourier_filter",
            &pow2_stack,
            ParamValues::new().set("cutoff", 0.2).set("cutoff_z", 0.3),
        ),
        // NL-means keeps row sums of the patch's rows above and below each 16-row tile in
        // workgroup memory: the largest patch the descriptor allows fills it, and with
        // search 3 the planar entry point's cache too (reach 13, its largest).
        (
            "nl_means",
            &plane,
            ParamValues::new()
                .set("patch_radius", 10)
                .set("search_radius", 3),
        ),
        // One past the planar entry point's reach: a 2D job on the general one.
        (
            "nl_means",
            &plane,
            ParamValues::new()
                .set("patch_radius", 2)
                .set("search_radius", 12),
        ),
        (
            "nl_means",
            &stack,
            ParamValues::new()
                .set("patch_radius", 3)
                .set("patch_radius_z", 1)
                .set("search_radius_z", 1),
        ),
        // The widest network the descriptor allows, and a width the kernel pads to a
        // multiple of 4. The widest runs on a plane of 3x3 workgroup tiles with ragged
        // edges: on the 128x144 plane its patches and passes took over a minute of lavapipe.
        // Its patches are then 40², not 64²: the patch sets the dispatches and the buffers'
        // sizes, the width what each invocation loops over.
        (
            "zs_n2n",
            &shape((1, 40, 44), 8),
            denoisekit_core::find("zs_n2n")
                .unwrap()
                .quick_values()
                .set("width", 64),
        ),
        (
            "zs_n2n",
            &stack,
            denoisekit_core::find("zs_n2n")
                .unwrap()
                .quick_values()
                .set("width", 5),
        ),
        // Beyond 27 values the median kernel selects by bisection instead of in registers.
        (
            "median",
            &stack,
            ParamValues::new().set("radius", 3).set("radius_z", 1),
        ),
        (
            "median",
            &plane,
            ParamValues::new().set("radius", 6).set("border", "zero"),
        ),
        ("richardson_lucy", &plane, rl("airy", 0.0, 100)),
        ("richardson_lucy", &plane, rl("gaussian", 0.0, 100)),
        ("richardson_lucy", &plane, rl("airy", 0.002, 30)),
        // The largest TV weight (an H100 once differed by 0.4% of the range at 0.005).
        (
            "richardson_lucy",
            &stack,
            rl("gaussian", 0.005, 30).set("psf_sigma_z", 1),
        ),
        ("richardson_lucy", &stack, rl("born_wolf", 0.0, 30)),
        (
            "richardson_lucy",
            &stack,
            rl("gaussian", 0.002, 30)
                .set("psf_sigma_z", 1)
                .set("start", "image"),
        ),
        // BM3D: the widest search at every position, with a plane smaller than a patch
        // (mirrored up to one) and planes of a stack each on their own.
        (
            "bm3d",
            &shape((1, 40, 44), 15),
            ParamValues::new().set("step", 1).set("search_radius", 30),
        ),
        ("bm3d", &shape((1, 5, 6), 16), ParamValues::new()),
        (
            "bm3d",
            &shape((3, 9, 12), 17),
            ParamValues::new().set("stages", "hard"),
        ),
        // The iterates are the CPU's (bit-identical on lavapipe); where to stop is decided
        // from energies summed in f32 on the GPU and in f64 on the CPU, so with a tolerance
        // far below the default the two can stop a few iterations apart (measured: 392
        // against 400 at tolerance 1e-6 and z_weight 0.7, 1.0e-4 of the range).
        (
            "total_variation",
            &stack,
            ParamValues::new()
                .set("z_weight", 0.7)
                .set("max_iterations", 400),
        ),
        (
            "total_variation",
            &stack,
            ParamValues::new()
                .set("z_weight", 0.7)
                .set("tolerance", 1e-8)
                .set("max_iterations", 150),
        ),
    ];
    for (id, img, values) in cases {
        let (lo, hi) = min_max(&img.view());
        let tol = denoisekit_core::find(id).unwrap().gpu_tolerance.unwrap();
        let gpu = run(id, img.view(), &values, Backend::Gpu, &Control::new()).unwrap();
        assert!(matches!(gpu.device, Ran::Gpu(_)), "{id}: {}", gpu.device);
        let cpu = run(id, img.view(), &values, Backend::Cpu, &Control::new()).unwrap();
        let d = max_rel_diff(&gpu.volume, &cpu.volume, hi - lo);
        let mean = gpu
            .volume
            .iter()
            .zip(cpu.volume.iter())
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum::<f64>()
            / gpu.volume.len() as f64
            / f64::from(hi - lo);
        eprintln!("{id} {values:?}: GPU-CPU = {d:.2e} of range (mean {mean:.1e})");
        assert!(d <= tol, "{id} {values:?}: GPU-CPU = {d} of range > {tol}");
    }
}

#[test]
fn zs_n2n_trains_on_the_gpu_as_on_the_cpu() {
    // The same schedule on both devices: the weights differ only by the rounding of the
    // sums. Adam carries a rounding forward at full size where a weight's gradient is near
    // zero (its step is the gradient's sign times the learning rate), so after enough
    // steps the CPU itself moves as far when the image moves by one rounding error: that
    // distance, measured here, is the tolerance, with a floor of 1e-6 where it is ~0.
    // Widths padded or not, patches smaller than the image and as wide as it, one step
    // and many; the zero-shot loss and the supervised one (towards the clean scene).
    let Some(ctx) = context() else { return };
    use denoisekit_core::methods::zs_n2n::{Data, ZsN2nParams, train};
    use denoisekit_core::volume::Shape;
    let scene = phantom(&PhantomSpec {
        shape: (2, 40, 36),
        seed: 17,
        ..Default::default()
    });
    let (lo, hi) = min_max(&scene.noisy.view());
    let scaled =
        |v: &Volume| -> Vec<f32> { v.iter().map(|v| (v - lo) / (hi - lo) * 4.0 - 2.0).collect() };
    let (norm, clean) = (scaled(&scene.noisy), scaled(&scene.clean));
    let nudged: Vec<f32> = norm.iter().map(|v| v * (1.0 + f32::EPSILON)).collect();
    let s = Shape::new(2, 40, 36);
    let dist = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    use denoisekit_core::{Subimages, Training};
    // Zero-shot with either sub-images, or supervised towards a target.
    let (diagonal, chequer, target) = (
        (Training::Zero, Subimages::Diagonal),
        (Training::Zero, Subimages::Chequerboard),
        (Training::Pairs, Subimages::Chequerboard),
    );
    for (width, layers, patch, steps, (training, subimages)) in [
        (8, 2, 32, 1, diagonal),
        (5, 2, 16, 30, diagonal),
        (24, 2, 16, 30, diagonal),
        (24, 2, 64, 3, diagonal),
        (24, 2, 64, 30, diagonal),
        (8, 2, 32, 1, target),
        (5, 2, 16, 30, target),
        (24, 2, 64, 30, target),
        (6, 3, 32, 1, diagonal),
        (5, 4, 18, 30, diagonal),
        (24, 4, 64, 30, diagonal),
        (5, 5, 16, 30, target),
        (8, 2, 32, 1, chequer),
        (5, 3, 16, 30, chequer),
        (24, 4, 64, 3, chequer),
        (24, 4, 64, 30, chequer),
    ] {
        let supervised = training == Training::Pairs;
        let data = |norm| Data {
            norm,
            target: supervised.then_some(&clean[..]),
        };
        let p = ZsN2nParams {
            steps,
            width,
            layers,
            learning_rate: 0.002,
            patch,
            seed: 4,
            training,
            subimages,
            psf_sigma: 1.5,
            refine: 0.0,
            train_region: Default::default(),
            weights: Default::default(),
            save_weights: Default::default(),
        };
        let mut cpu_losses = Vec::new();
        let cpu = train(data(&norm), s, &p, |l, _| {
            cpu_losses.push(l);
            Ok(())
        })
        .unwrap()
        .flat();
        let cpu_nudged = train(data(&nudged), s, &p, |_, _| Ok(())).unwrap().flat();
        let mut gpu_losses = Vec::new();
        let gpu = denoisekit_gpu::methods::zs_n2n_train::train(
            ctx,
            data(&norm),
            s,
            &p,
            u64::MAX,
            &mut |l, _| {
                gpu_losses.push(l);
                Ok(())
            },
        )
        .unwrap()
        .flat();
        let (diff, own) = (dist(&cpu, &gpu), dist(&cpu, &cpu_nudged));
        let case = format!(
            "width {width}, {layers} layers, patch {patch}, {steps} steps, {training:?}, {subimages:?}"
        );
        eprintln!("{case}: GPU - CPU {diff:e}; CPU - CPU on the nudged image {own:e}");
        assert!(
            diff <= 1e-6f32.max(4.0 * own),
            "{case}: {diff:e}, the CPU's own {own:e}"
        );
        assert_eq!(gpu_losses.len(), steps);
        for (k, (c, g)) in cpu_losses.iter().zip(&gpu_losses).enumerate() {
            assert!(
                (c - g).abs() <= 1e-3 * c.abs().max(1.0),
                "{case}, step {k}: loss {c} on the CPU, {g} on the GPU"
            );
        }
    }
}

#[test]
fn zs_n2n_training_on_the_gpu_shows_interim_results_and_cancels() {
    // A watched GPU training publishes what its current weights make of the image (read
    // back and applied on the GPU), says its loss, and stops on cancel between batches.
    let Some(ctx) = context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (1, 40, 36),
        seed: 19,
        ..Default::default()
    })
    .noisy;
    let values = ParamValues::new()
        .set("steps", 100_000)
        .set("patch", 20)
        .set("width", 4);
    let (_, resolved) = denoisekit_core::prepare("zs_n2n", &img.view(), &values).unwrap();
    let ctl = Control::new();
    assert!(ctl.take_interim().is_none());
    let interim = std::thread::scope(|scope| {
        let job = scope
            .spawn(|| denoisekit_gpu::methods::zs_n2n::run(ctx, img.view(), &resolved, &ctl, None));
        let start = std::time::Instant::now();
        // Its loss is noted every 20 steps, its interim results every 0.5 s.
        let mut interim = None;
        while interim.is_none() || !ctl.note().contains("loss") {
            interim = ctl.take_interim().or(interim);
            assert!(!job.is_finished(), "the job ended first");
            assert!(
                start.elapsed().as_secs() < 120,
                "no intermediate result and loss in 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ctl.cancel();
        let r = job.join().unwrap();
        assert!(
            matches!(
                r,
                Err(denoisekit_gpu::GpuError::Job(
                    denoisekit_core::DenoiseError::Cancelled
                ))
            ),
            "{r:?}"
        );
        interim.unwrap()
    });
    assert_eq!(interim.dim(), img.dim());
    // On the image's scale (not the normalised one): close to the image it denoises.
    let (lo, hi) = min_max(&img.view());
    let off = (&interim - &img).mapv(f32::abs).mean().unwrap();
    assert!(
        off < 0.25 * (hi - lo),
        "{off} from the image, whose range is {}",
        hi - lo
    );
    assert_ne!(interim, img);
}

#[test]
fn zs_n2n_applies_saved_weights_as_the_cpu_does() {
    // Training on the two devices differs by rounding (above); applying the same weights
    // gives the CPU's pixels to within rounding: widths padded to a multiple of 4 or not
    // (each further layer's weights are padded in turn), a plane and a stack. Lavapipe gave them bit for bit; an H200 (2026-12-04) differed by
    // one ulp in places, from its fused multiply-adds, so the bound is 1e-5 of the range:
    // three orders under the method's tolerance, and far under what a wrong weight or tap
    // does to a pixel.
    let Some(_) = context() else { return };
    let dir = std::env::temp_dir().join(format!("dk-gpu-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (width, layers, img) in [
        (5, 2, &inputs()[0]),
        (64, 2, &inputs()[0]),
        (24, 2, &inputs()[1]),
        (5, 3, &inputs()[0]),
        (7, 5, &inputs()[1]),
    ] {
        let file = dir.join(format!("w{width}-{layers}.json"));
        let path = file.display().to_string();
        let train = denoisekit_core::find("zs_n2n")
            .unwrap()
            .quick_values()
            .set("width", width)
            .set("layers", layers)
            .set("save_weights", path.as_str());
        denoisekit_core::run("zs_n2n", img.view(), &train, &Control::new()).unwrap();
        // The network's kernels, without the refinement after them (see above).
        let apply = ParamValues::new()
            .set("weights", path.as_str())
            .set("refine", 0);
        let gpu = run("zs_n2n", img.view(), &apply, Backend::Gpu, &Control::new()).unwrap();
        let cpu = run("zs_n2n", img.view(), &apply, Backend::Cpu, &Control::new()).unwrap();
        assert!(matches!(gpu.device, Ran::Gpu(_)), "{}", gpu.device);
        // max_rel_diff's f32::max passes over NaN: every pixel must be a number first.
        assert!(
            gpu.volume.iter().all(|v| v.is_finite()),
            "width {width}, {layers} layers: a GPU pixel is not finite"
        );
        let (lo, hi) = min_max(&cpu.volume.view());
        let diff = max_rel_diff(&gpu.volume, &cpu.volume, hi - lo);
        assert!(
            diff <= 1e-5,
            "width {width}, {layers} layers, {:?}: {diff:e}",
            img.dim()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn richardson_lucy_with_a_psf_image_runs_on_the_gpu_as_on_the_cpu() {
    // The measured PSF's FFT convolution: symmetric (K = Kᵀ) and asymmetric (the adjoint
    // folds and divides by Kᵀ 1), odd and even sizes, one sample wide along an axis (not
    // transformed there), a plane's PSF on a stack and a 3D one (coupled planes), with TV.
    let Some(_) = context() else { return };
    let psf = |(d, h, w): (usize, usize, usize), skew: f32| {
        Volume::from_shape_fn((d, h, w), |(z, y, x)| {
            let (cz, cy, cx) = (d as f32 / 2.0, h as f32 / 2.0, w as f32 / 2.0);
            let (dz, dy, dx) = (
                z as f32 - cz + 0.5,
                y as f32 - cy + 0.5,
                x as f32 - cx + 0.5,
            );
            (-(dx * dx + dy * dy + dz * dz) / 3.0).exp() * (1.0 + skew * (dx + 0.5 * dy)).max(0.05)
        })
    };
    let plane = phantom(&PhantomSpec {
        shape: (1, 67, 45),
        seed: 5,
        ..Default::default()
    })
    .noisy;
    let stack = phantom(&PhantomSpec {
        shape: (6, 33, 29),
        seed: 6,
        ..Default::default()
    })
    .noisy;
    let cases = [
        (&plane, psf((1, 7, 7), 0.0), "0"),
        (&plane, psf((1, 9, 7), 0.3), "0"),
        (&plane, psf((1, 6, 8), 0.2), "0"),
        (&plane, psf((1, 1, 9), 0.3), "0"),
        (&plane, psf((1, 9, 1), 0.3), "0"),
        (&plane, psf((1, 1, 1), 0.0), "0"),
        (&plane, psf((1, 9, 9), 0.3), "0.002"),
        (&stack, psf((1, 7, 5), 0.3), "0"),
        (&stack, psf((5, 7, 7), 0.3), "0"),
        (&stack, psf((5, 1, 7), 0.3), "0"),
        (&stack, psf((3, 5, 5), 0.0), "0.002"),
    ];
    for (img, kernel, tv) in cases {
        let values = ParamValues::new()
            .set("psf", "image")
            .set("iterations", "15")
            .set("tv", tv)
            .with_image("psf_image", kernel.clone());
        let gpu = run(
            "richardson_lucy",
            img.view(),
            &values,
            Backend::Gpu,
            &Control::new(),
        )
        .unwrap();
        let cpu = run(
            "richardson_lucy",
            img.view(),
            &values,
            Backend::Cpu,
            &Control::new(),
        )
        .unwrap();
        let case = format!("{:?} PSF on {:?}, tv {tv}", kernel.dim(), img.dim());
        assert!(
            matches!(gpu.device, Ran::Gpu(_)),
            "{case}: ran on {}",
            gpu.device
        );
        let (lo, hi) = min_max(&cpu.volume.view());
        let d = max_rel_diff(&gpu.volume, &cpu.volume, hi - lo);
        eprintln!("{case}: GPU-CPU = {d:.2e} of range");
        assert!(d <= 1e-4, "{case}: GPU-CPU = {d} of the range");
    }
}
