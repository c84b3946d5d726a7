//! Self-supervised tuning against the oracle: the best setting found with the clean image.

use denoisekit_core::metrics::psnr;
use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::{Control, MethodKind, ParamKind, ParamValue, ParamValues, registry, run};

#[test]
fn self_supervised_parameters_are_within_half_a_db_of_the_oracle() {
    let p = phantom(&PhantomSpec {
        shape: (1, 128, 128),
        seed: 41,
        read_noise: 0.1,
        ..Default::default()
    });
    let range = 1.0;
    for m in registry().iter().filter(|m| m.kind == MethodKind::Denoise) {
        let Some(spec) = m.params.iter().find(|p| p.tunable) else {
            continue;
        };
        let tuned =
            denoisekit_core::tune::tune(m.id, p.noisy.view(), &ParamValues::new(), &Control::new())
                .unwrap();
        let out = run(m.id, p.noisy.view(), &tuned.values, &Control::new()).unwrap();
        let ours = psnr(&p.clean.view(), &out.view(), range).unwrap();
        // Oracle: 33 values over the same log range, scored against the clean image.
        let (_, resolved) =
            denoisekit_core::prepare(m.id, &p.noisy.view(), &ParamValues::new()).unwrap();
        let Some((_, ParamValue::Float(d))) = resolved.iter().find(|(k, _)| *k == spec.key) else {
            panic!("{}: tunable parameter is not a float", m.id)
        };
        let ParamKind::Float { min, max, .. } = spec.kind else {
            unreachable!()
        };
        let (lo, hi) = ((d / 8.0).max(min).ln(), (d * 8.0).min(max).ln());
        let oracle = (0..33)
            .map(|i| {
                let v = (lo + (hi - lo) * i as f64 / 32.0).exp();
                let out = run(
                    m.id,
                    p.noisy.view(),
                    &ParamValues::new().set(spec.key, v),
                    &Control::new(),
                )
                .unwrap();
                let q = psnr(&p.clean.view(), &out.view(), range).unwrap();
                if std::env::var("ORACLE").is_ok() {
                    eprintln!("  {} {v:.4} {q:.2}", m.id);
                }
                q
            })
            .fold(f64::MIN, f64::max);
        eprintln!(
            "{:<22} tuned {:.2} dB ({}={:.4}, {} runs), oracle {:.2} dB",
            m.id, ours, spec.key, tuned.tuned[0].1, tuned.evaluations, oracle
        );
        assert!(
            ours >= oracle - 0.5,
            "{}: self-supervised {ours:.2} dB vs oracle {oracle:.2} dB",
            m.id
        );
    }
}
