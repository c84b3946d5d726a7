//! `Auto` runs a method on a hardware GPU only where its kernel beats the CPU; `Gpu` runs
//! every kernel. On an H100 and an H200 the Gaussian was slower end to end than 16 CPU
//! cores, so `Auto` keeps it on the CPU and says why, as it does BM3D's kernel until it is
//! measured on hardware; Tikhonov and the Fourier filter,
//! once their DCTs ran as FFTs (even with 16 cores to 1.6x on an H200), and zs_n2n (5x to 34x in
//! process) run on the GPU.
//!
//! One test in its own binary: it treats a software adapter as hardware, process-wide.
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

mod common;

use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::{Backend, Control};
use denoisekit_gpu::context::fault;
use denoisekit_gpu::{GPU_METHODS, Ran, auto_on_gpu, run};

#[test]
fn auto_runs_on_the_gpu_only_the_kernels_that_beat_the_cpu() {
    let Some(_) = common::context() else { return };
    let img = phantom(&PhantomSpec {
        shape: (1, 48, 40),
        seed: 3,
        ..Default::default()
    })
    .noisy;
    fault::treat_software_as_hardware(true);
    let kept_on_cpu: Vec<&str> = GPU_METHODS
        .iter()
        .filter(|m| !auto_on_gpu(m.id))
        .map(|m| m.id)
        .collect();
    assert_eq!(kept_on_cpu, ["gaussian", "bm3d"]);
    for m in GPU_METHODS {
        let job = |backend| {
            run(
                m.id,
                img.view(),
                &denoisekit_core::find(m.id).unwrap().quick_values(),
                backend,
                &Control::new(),
            )
            .unwrap()
            .device
        };
        let auto = job(Backend::Auto);
        if auto_on_gpu(m.id) {
            assert!(matches!(auto, Ran::Gpu(_)), "{}: {auto}", m.id);
        } else {
            assert!(
                matches!(auto, Ran::Cpu(Some(ref why)) if why.contains(denoisekit_gpu::why_not_auto(m.id).unwrap())),
                "{}: {auto}",
                m.id
            );
        }
        let required = job(Backend::Gpu);
        assert!(matches!(required, Ran::Gpu(_)), "{}: {required}", m.id);
    }
    fault::treat_software_as_hardware(false);
}
