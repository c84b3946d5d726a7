//! A GPU failure in the middle of a job never yields a wrong image: with `Backend::Gpu`
//! it is reported as `BackendUnavailable`, with `Backend::Auto` the job re-runs on the
//! CPU and gives the CPU's exact result, and the device works again afterwards.
//!
//! The fault is a real wgpu validation error (a dispatch beyond the device's limits),
//! injected halfway through each method's dispatches. One test in its own binary: the
//! fault hooks are process-wide.
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

mod common;

use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::volume::min_max;
use denoisekit_core::{Backend, Control, DenoiseError, ParamValues};
use denoisekit_gpu::context::fault;
use denoisekit_gpu::{GPU_METHODS, Ran, auto_on_gpu, run};

#[test]
fn a_fault_mid_job_is_reported_or_falls_back_never_corrupts() {
    let Some(ctx) = common::context() else { return };
    eprintln!("GPU: {}", ctx.describe());
    let img = phantom(&PhantomSpec {
        shape: (3, 40, 36),
        seed: 11,
        ..Default::default()
    })
    .noisy;
    let (lo, hi) = min_max(&img.view());
    fault::treat_software_as_hardware(true);
    for m in GPU_METHODS {
        let id = m.id;
        // z coupling where the method has it, so 3D kernels and halos are exercised.
        let values = match id {
            "gaussian" => ParamValues::new().set("sigma_z", 1),
            "anisotropic_diffusion" | "total_variation" => ParamValues::new().set("z_weight", 0.5),
            "median" => ParamValues::new().set("radius_z", 1),
            "tikhonov" => ParamValues::new().set("z_weight", 0.5).set("psf_sigma", 1),
            "fourier_filter" => ParamValues::new().set("cutoff_z", 0.3),
            "richardson_lucy" => ParamValues::new().set("psf_sigma_z", 1).set("tv", 0.005),
            // A short training: the fault lands in its dispatches or in applying.
            "zs_n2n" => denoisekit_core::find(id).unwrap().quick_values(),
            _ => ParamValues::new(),
        };
        let job = |backend| run(id, img.view(), &values, backend, &Control::new());
        let cpu = job(Backend::Cpu).unwrap().volume;
        let before = fault::dispatches();
        let clean = job(Backend::Gpu).unwrap();
        assert!(
            matches!(clean.device, Ran::Gpu(_)),
            "{id}: {}",
            clean.device
        );
        let n = fault::dispatches() - before;
        assert!(n > 0, "{id}: no dispatch counted");

        fault::fail_after(n / 2);
        match job(Backend::Gpu) {
            Err(DenoiseError::BackendUnavailable { reason }) => {
                assert!(reason.contains("validation"), "{id}: {reason}")
            }
            other => panic!("{id}: a required GPU that failed gave {other:?}"),
        }

        // Auto keeps a method whose kernel is slower than the CPU off the GPU altogether
        // (tests/gpu_auto.rs): no fault can reach it there.
        let expected = if auto_on_gpu(id) {
            fault::fail_after(n / 2);
            "GPU failed"
        } else {
            "backend=auto keeps"
        };
        // Progress starts over with the CPU's run (the last rise): the failed GPU run's
        // must not fill the bar while the CPU still works.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let ctl = Control::with_progress(move |p| log.lock().unwrap().push(p));
        let fallback = run(id, img.view(), &values, Backend::Auto, &ctl).unwrap();
        let seen = seen.lock().unwrap();
        let restart = seen.windows(2).rposition(|p| p[1] < p[0]);
        let on_cpu = &seen[restart.map_or(0, |i| i + 1)..];
        let full = on_cpu.iter().position(|&p| p >= 1.0);
        assert_eq!(full, Some(on_cpu.len() - 1), "{id}: progress {seen:?}");
        assert!(
            matches!(fallback.device, Ran::Cpu(Some(ref why)) if why.contains(expected)),
            "{id}: {}",
            fallback.device
        );
        assert_eq!(
            fallback.volume, cpu,
            "{id}: the fallback is not the CPU result"
        );

        // The fault was consumed; the device computes correctly again.
        fault::clear();
        let again = job(Backend::Gpu).unwrap();
        assert!(matches!(again.device, Ran::Gpu(_)), "{id}");
        let tol = denoisekit_core::find(id).unwrap().gpu_tolerance.unwrap();
        let diff = again
            .volume
            .iter()
            .zip(cpu.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
            / (hi - lo);
        assert!(diff <= tol, "{id}: after the fault GPU-CPU = {diff}");
        eprintln!(
            "{id}: {n} dispatches, fault at {}: reported, fell back, recovered",
            n / 2
        );
    }
    fault::treat_software_as_hardware(false);
}
