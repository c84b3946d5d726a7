//! Criterion timings of every registered method at its defaults, on a fixed 2D and a
//! fixed 3D phantom. Ratios against peer tools come from `denoisekit bench` beside
//! `../shared/bench/peers.py` (see docs/benchmarks.md); no timing is asserted anywhere.
//! `noise_model` times what `noise_model=auto` costs every run that leaves it at its
//! default: the choice between the Gaussian and the Poisson-Gaussian model.

use criterion::{Criterion, criterion_group, criterion_main};
use denoisekit_core::noise::choose_noise_model;
use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::{Control, ParamValues, registry, run};
use std::hint::black_box;

fn methods(c: &mut Criterion) {
    let inputs = [("2d_512", (1, 512, 512)), ("3d_16x128x128", (16, 128, 128))];
    for (tag, shape) in inputs {
        let img = phantom(&PhantomSpec {
            shape,
            seed: 3,
            ..Default::default()
        })
        .noisy;
        let mut group = c.benchmark_group(tag);
        group.sample_size(10);
        for m in registry() {
            // 3D inputs switch on every z neighbourhood (the descriptor's three_d values;
            // a name-based guess once ran four methods plane by plane), so the benchmark
            // times true 3D.
            let values = if shape.0 > 1 {
                m.three_d_values()
            } else {
                ParamValues::new()
            };
            group.bench_function(m.id, |b| {
                b.iter(|| run(m.id, black_box(img.view()), &values, &Control::new()).unwrap())
            });
        }
        group.finish();
    }
}

fn noise_model(c: &mut Criterion) {
    let mut group = c.benchmark_group("noise_model");
    group.sample_size(20);
    for n in [512, 2048] {
        // Photon-limited (50 photons at intensity 1) with some read noise: the fit is kept.
        let img = phantom(&PhantomSpec {
            shape: (1, n, n),
            seed: 3,
            photons: 50.0,
            read_noise: 0.02,
            ..Default::default()
        })
        .noisy;
        group.bench_function(format!("choose_{n}"), |b| {
            b.iter(|| choose_noise_model(black_box(&img.view())).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, methods, noise_model);
criterion_main!(benches);
