//! The entry the CLI and the plugin call keeps the memory budget on every device: a stack
//! over the budget runs in windows of planes with the same result, or is refused. A job
//! whose GPU path would hold more than the budget goes to the CPU path (an H100 once ran
//! such a job whole, where lavapipe, which `Auto` skips, had hidden it).
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

use denoisekit_core::{Backend, Control, DenoiseError, ParamValues, memory};
use denoisekit_gpu::Ran;
use ndarray::Array3;
use std::sync::Mutex;

/// The memory limit is the process's: tests that set it take turns.
static LIMIT: Mutex<()> = Mutex::new(());

#[test]
fn cpu_path_windows_or_refuses_jobs_over_the_budget() {
    let _turn = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn a_psf_image_s_host_copies_count_against_the_budget() {
    let _turn = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    // Richardson-Lucy with a PSF image holds the convolver, `Kᵀ 1` and the transfer
    // function's staging on the host beside the common staging copies: with a budget the
    // CPU path fits and the GPU path's whole count does not, the job runs on the CPU and
    // says why.
    let img = Array3::from_shape_fn((1, 64, 48), |(_, y, x)| {
        ((x * 7 + y * 13) % 23) as f32 + 5.0
    });
    let psf = Array3::from_shape_fn((1, 9, 9), |(_, y, x)| {
        let (dy, dx) = (y as f32 - 4.0, x as f32 - 3.0);
        (-(dx * dx + dy * dy) / 4.0).exp()
    });
    let values = ParamValues::new()
        .set("psf", "image")
        .set("iterations", "3")
        .with_image("psf_image", psf);
    let ctl = Control::new();
    let whole = denoisekit_gpu::run("richardson_lucy", img.view(), &values, Backend::Cpu, &ctl);
    // Halfway between the CPU path's need and the GPU path's (its three staging copies
    // and its own), each as the code that checks it counts.
    let (m, resolved) = denoisekit_core::prepare("richardson_lucy", &img.view(), &values).unwrap();
    let shape = denoisekit_core::volume::Shape::of(&img.view());
    let cpu = memory::need(m, shape, &resolved).unwrap();
    let own = denoisekit_core::methods::richardson_lucy::device_host_copies(&resolved, shape);
    let gpu = memory::FIXED + (img.len() as f64 * 4.0 * (3.0 + f64::from(own))) as u64;
    assert!(
        cpu < gpu,
        "the CPU path needs {cpu} bytes, the GPU path {gpu}"
    );
    memory::set_limit(Some(cpu.midpoint(gpu)));
    let required = denoisekit_gpu::run("richardson_lucy", img.view(), &values, Backend::Gpu, &ctl);
    memory::set_limit(None);
    if denoisekit_gpu::context::shared().is_ok() {
        let required = required.unwrap();
        assert_eq!(required.volume, whole.unwrap().volume);
        assert!(
            matches!(required.device, Ran::Cpu(Some(ref why)) if why.contains("host memory")),
            "{}",
            required.device
        );
    }
}
