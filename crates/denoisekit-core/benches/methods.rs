//! Criterion timings of every registered method at its defaults, on a fixed 2D and a
//! fixed 3D phantom. Ratios against peer tools come from `denoisekit bench` beside
//! `../shared/bench/peers.py` (see docs/benchmarks.md); no timing is asserted anywhere.

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, methods);
criterion_main!(benches);
