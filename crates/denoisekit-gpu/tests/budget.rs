//! The entry the CLI and the plugin call keeps the memory budget on every device: a stack
//! over the budget runs in windows of planes with the same result, or is refused. A job
//! whose GPU path would hold more than the budget goes to the CPU path (an H100 once ran
//! such a job whole, where lavapipe, which `Auto` skips, had hidden it).
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

use denoisekit_core::{Backend, Control, DenoiseError, ParamValues, memory};
use denoisekit_gpu::Ran;
use ndarray::Array3;

#[test]
fn cpu_path_windows_or_refuses_jobs_over_the_budget() {
    let img = Array3::from_shape_fn((40, 64, 48), |(z, y, x)| {
        ((x * 7 + y * 13 + z * 29) % 23) as f32 + if (x / 8 + y / 8) % 2 == 0 { 50.0 } else { 0.0 }
    });
    let values = ParamValues::new().set("sigma", 1.2).set("sigma_z", 1.0);
    let ctl = Control::new();
    let whole = denoisekit_gpu::run("gaussian", img.view(), &values, Backend::Cpu, &ctl).unwrap();
    // Below the whole job (2 copies), above the output plus a few planes.
    memory::set_limit(Some(memory::FIXED + (img.len() as u64) * 4 * 19 / 10));
    let windowed = denoisekit_gpu::run("gaussian", img.view(), &values, Backend::Cpu, &ctl);
    let coupled_values = ParamValues::new().set("z_weight", 1);
    let coupled = denoisekit_gpu::run("tikhonov", img.view(), &coupled_values, Backend::Auto, &ctl);
    let required = [("gaussian", &values), ("tikhonov", &coupled_values)]
        .map(|(id, v)| denoisekit_gpu::run(id, img.view(), v, Backend::Gpu, &ctl));
    memory::set_limit(None);
    assert_eq!(windowed.unwrap().volume, whole.volume);
    let e = coupled.unwrap_err();
    assert!(matches!(e, DenoiseError::TooLarge { .. }), "{e}");
    assert!(
        e.to_string().contains("tikhonov on a 48x64x40 image"),
        "{e}"
    );
    // Even a required GPU keeps the budget: the job runs windowed on the CPU and says why,
    // or is refused. Without any adapter there is nothing to require.
    if denoisekit_gpu::context::shared().is_ok() {
        let [gaussian, tikhonov] = required;
        let gaussian = gaussian.unwrap();
        assert_eq!(gaussian.volume, whole.volume);
        assert!(
            matches!(gaussian.device, Ran::Cpu(Some(ref why)) if why.contains("host memory")),
            "{}",
            gaussian.device
        );
        let e = tikhonov.unwrap_err();
        assert!(matches!(e, DenoiseError::TooLarge { .. }), "{e}");
    }
}
