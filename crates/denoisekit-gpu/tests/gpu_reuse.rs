//! A preview re-run on an image of the same size allocates no new device buffers (they
//! come back from the context's pool), and reused buffers never leak old contents into a
//! result: every run of a method gives the same pixels as its first run. One test in its
//! own binary, because the allocation counter is process-wide.
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

mod common;

use denoisekit_core::phantom::{PhantomSpec, phantom};
use denoisekit_core::{Backend, Control, ParamValues};
use denoisekit_gpu::{GPU_METHODS, Ran, run};

#[test]
fn same_size_reruns_reuse_buffers_and_give_the_same_pixels() {
    let Some(ctx) = common::context() else { return };
    let img = |shape, seed| {
        phantom(&PhantomSpec {
            shape,
            seed,
            ..Default::default()
        })
        .noisy
    };
    let (a, b) = (img((2, 48, 40), 21), img((1, 30, 52), 22));
    for m in GPU_METHODS {
        let values = match m.id {
            "richardson_lucy" => ParamValues::new().set("tv", 0.002).set("iterations", 5),
            "total_variation" => ParamValues::new().set("z_weight", 0.5),
            "zs_n2n" => denoisekit_core::find(m.id).unwrap().quick_values(),
            _ => ParamValues::new(),
        };
        let go = |v: &denoisekit_core::Volume| {
            let r = run(m.id, v.view(), &values, Backend::Gpu, &Control::new()).unwrap();
            assert!(matches!(r.device, Ran::Gpu(_)), "{}: {}", m.id, r.device);
            r.volume
        };
        let first = go(&a);
        let before = ctx.buffers_created();
        let again = go(&a);
        let created = ctx.buffers_created() - before;
        assert_eq!(
            created, 0,
            "{}: a same-size re-run created {created} buffers",
            m.id
        );
        assert_eq!(
            again, first,
            "{}: a re-run with pooled buffers differs",
            m.id
        );
        // Another size in between (other buffers, possibly evicting), then the first again.
        let _ = go(&b);
        assert_eq!(go(&a), first, "{}: differs after another size", m.id);
        eprintln!("{}: re-run allocated nothing, same pixels", m.id);
    }
}
