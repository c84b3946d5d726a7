//! Working memory: every method's stated need (its descriptor's `memory`) is an upper
//! bound on what it allocates, measured with a counting allocator, and not a gross
//! overstatement; a job over the budget runs in windows of planes with the untiled
//! result, or is refused with `TooLarge` naming the sizes.

use denoisekit_core::memory::{self, FIXED};
use denoisekit_core::{
    Control, DenoiseError, MethodDescriptor, MethodKind, ParamValues, Shape, registry, run,
};
use ndarray::Array3;

mod settings;
use settings::{quick, three_d_values};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = NOW.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // Counted as alloc-then-free: both blocks exist during the copy.
        let now = NOW.fetch_add(new, Relaxed) + new;
        PEAK.fetch_max(now, Relaxed);
        let q = unsafe { System.realloc(p, l, new) };
        NOW.fetch_sub(l.size(), Relaxed);
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The tests of this file change the process-wide budget and read process-wide counters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scene(shape: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_fn(shape, |(z, y, x)| {
        let edge = if (x / 16 + y / 16 + z) % 2 == 0 {
            40.0
        } else {
            10.0
        };
        edge + ((x * 7919 + y * 104_729 + z * 31) % 97) as f32 * 0.1
    })
}

/// What `m` states it needs with `values` on `img`, beyond the fixed allowance, and what
/// its run allocates at its peak, in bytes.
fn stated_and_allocated(
    m: &MethodDescriptor,
    img: &Array3<f32>,
    values: &ParamValues,
) -> (u64, u64) {
    let (_, r) = denoisekit_core::prepare(m.id, &img.view(), values).unwrap();
    let need = memory::need(m, Shape::of(&img.view()), &r).unwrap();
    // Scratch kept from earlier jobs would hide this job's own: start clean on every
    // thread that may run it.
    rayon::broadcast(|_| denoisekit_core::simd::release_scratch());
    denoisekit_core::simd::release_scratch();
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = run(m.id, img.view(), &r.to_params(), &Control::new()).unwrap();
    let peak = (PEAK.load(Relaxed) - base) as u64;
    drop(out);
    (need - FIXED, peak)
}

/// What is wrong with a statement of `stated` bytes for a peak of `peak`: an
/// understatement, or a gross overstatement.
fn misstated(what: &str, stated: u64, peak: u64) -> Vec<String> {
    let mut wrong = Vec::new();
    // The fixed allowance would hide everything at test sizes: hold the stated copies to
    // account, with 1 MiB for small buffers.
    if peak > stated + (1 << 20) {
        wrong.push(format!(
            "{what}: allocated {peak} bytes, states {stated} plus the fixed allowance"
        ));
    }
    if stated > 4 * peak {
        wrong.push(format!(
            "{what}: states {stated} bytes, allocates only {peak}"
        ));
    }
    wrong
}

#[test]
fn stated_working_memory_bounds_what_every_method_allocates() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    let mut wrong = Vec::new();
    for shape in [(1, 1024, 768), (16, 256, 256)] {
        let img = scene(shape);
        for m in registry() {
            if shape.0 > 1 && !m.dims.supports(3) {
                continue;
            }
            // Each model, and the settings that couple a stack through z (a 3D transform).
            let mut settings = vec![ParamValues::new()];
            if m.kind == MethodKind::Denoise {
                settings.push(ParamValues::new().set("noise_model", "poisson_gaussian"));
            }
            if shape.0 > 1 {
                settings.push(three_d_values(m.id));
            }
            if shape.0 > 1 && m.memory_for.is_some() {
                // Settings may change what it needs: every option of every choice (with
                // two iterations where there are iterations: memory does not grow with them).
                for p in m.params {
                    if let denoisekit_core::ParamKind::Choice { options, .. } = p.kind {
                        for o in options {
                            let mut v = ParamValues::new().set(p.key, o);
                            if m.params.iter().any(|q| q.key == "iterations") {
                                v = v.set("iterations", 2);
                            }
                            settings.push(v);
                        }
                    }
                }
            }
            for values in settings {
                // Memory does not grow with training steps or iterations.
                let values = quick(m, &values);
                // A choice that needs an image (psf=image) gets the descriptor's example.
                let values = m.with_example_images(&values, img.view());
                let (stated, peak) = stated_and_allocated(m, &img, &values);
                let what = format!("{} {} on {shape:?}", m.id, values.to_options());
                wrong.extend(misstated(&what, stated, peak));
                checked += 1;
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 40, "only {checked} settings checked");
}

#[test]
fn over_the_budget_a_stack_runs_in_windows_with_the_same_result() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let img = scene((12, 96, 80));
    // The model given: choosing it (noise_model=auto, the default) measures the whole
    // image once, a bounded cost outside the windows that this test weighs.
    let values = ParamValues::new()
        .set("h", 6)
        .set("sigma", 3)
        .set("search_radius_z", 1)
        .set("noise_model", "gaussian");
    let whole = run("nl_means", img.view(), &values, &Control::new()).unwrap();
    // Room for the output and a few planes, not for the whole job.
    memory::set_limit(Some(FIXED + 12 * 96 * 80 * 4 + 20 * 96 * 80 * 4));
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let tiled = run("nl_means", img.view(), &values, &Control::new());
    let peak = (PEAK.load(Relaxed) - base) as u64;
    memory::set_limit(None);
    assert_eq!(tiled.unwrap(), whole);
    let whole_need = 3 * 12 * 96 * 80 * 4;
    assert!(
        peak < whole_need,
        "windows allocated {peak} bytes, no less than the whole job's {whole_need}"
    );
}

#[test]
fn a_job_that_cannot_be_split_is_refused_naming_the_sizes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let img = scene((4, 64, 64));
    memory::set_limit(Some(1 << 20));
    let coupled = run(
        "fourier_filter",
        img.view(),
        &ParamValues::new().set("cutoff_z", 0.2),
        &Control::new(),
    );
    let tiny_budget = run("gaussian", img.view(), &ParamValues::new(), &Control::new());
    // Above what every job needs besides its image, but not enough for one large plane,
    // nor for a stack that the method couples whole, nor for one window of planes.
    memory::set_limit(Some(20 << 20));
    let plane = scene((1, 1024, 1024));
    let one_plane = run(
        "fourier_filter",
        plane.view(),
        &ParamValues::new(),
        &Control::new(),
    );
    let stack = scene((4, 512, 512));
    let coupled_stack = run(
        "fourier_filter",
        stack.view(),
        &ParamValues::new().set("cutoff_z", 0.2),
        &Control::new(),
    );
    let planes_apart = run(
        "fourier_filter",
        stack.view(),
        &ParamValues::new(),
        &Control::new(),
    );
    memory::set_limit(None);
    // A stack that windows of planes can run: the least limit that does, not the whole
    // job's.
    let msg = tiny_budget.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("raise the limit ({}) to ", memory::LIMIT_ENV))
            && msg.contains("or more, which runs it in windows of planes (")
            && msg.contains(" holds it whole)"),
        "{msg}"
    );
    let least: f64 = msg
        .split("to ")
        .nth(1)
        .and_then(|t| t.split(" MiB").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    // The figure as printed is enough: it is rounded up, never to nearest.
    memory::set_limit(Some((least * 1048576.0).ceil() as u64));
    let at_least = run("gaussian", img.view(), &ParamValues::new(), &Control::new());
    memory::set_limit(None);
    at_least.unwrap();
    let e = coupled.unwrap_err();
    assert!(matches!(e, DenoiseError::TooLarge { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("64x64x4"), "{msg}");
    assert!(msg.contains("more than the limit of 1.0 MiB"), "{msg}");
    // Fewer planes would not help under the fixed allowance.
    assert!(
        msg.contains(&format!("raise the limit ({}) to ", memory::LIMIT_ENV))
            && msg.contains("or more: every job needs 16.0 MiB besides its image")
            && !msg.contains("fewer planes"),
        "{msg}"
    );
    let msg = coupled_stack.unwrap_err().to_string();
    assert!(
        msg.contains("more than the limit of 20.0 MiB")
            && msg.contains("or process fewer planes: fourier_filter with these settings couples"),
        "{msg}"
    );
    for r in [one_plane, planes_apart] {
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.contains("more than the limit of 20.0 MiB")
                && msg.contains("or process a smaller part of each plane"),
            "{msg}"
        );
    }
    // And the library still works at the default budget.
    run("gaussian", img.view(), &ParamValues::new(), &Control::new()).unwrap();
}

#[test]
fn applying_saved_weights_states_the_saved_networks_need() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let img = scene((1, 256, 256));
    let path = std::env::temp_dir().join(format!("dk-memory-{}.json", std::process::id()));
    let model = ParamValues::new().set("noise_model", "gaussian");
    // A wide, deep network saved; the dialog left at a narrow, shallow one, which the
    // applying job does not use.
    let save = (model.clone())
        .set("steps", 1)
        .set("patch", 40)
        .set("width", 32)
        .set("layers", 8)
        .set("save_weights", path.display().to_string());
    run("zs_n2n", img.view(), &save, &Control::new()).unwrap();
    let apply = model
        .set("width", 4)
        .set("layers", 2)
        .set("weights", path.display().to_string());
    let m = denoisekit_core::find("zs_n2n").unwrap();
    let (stated, peak) = stated_and_allocated(m, &img, &apply);
    let _ = std::fs::remove_file(&path);
    let wrong = misstated("zs_n2n applying saved weights", stated, peak);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
