//! Where a `run_method` fuzzing campaign spends its time: replays every input in the
//! given folders and prints the total and slowest time per method, slowest first.
//! `cargo run --release -p denoisekit-fuzz --example profile -- /tmp/fuzz/work-run_method`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() {
    let mut per: BTreeMap<&str, (usize, Duration, Duration, String)> = BTreeMap::new();
    for dir in std::env::args().skip(1) {
        for entry in std::fs::read_dir(&dir).expect("read the folder") {
            let data = std::fs::read(entry.expect("an entry").path()).expect("read an input");
            let (m, values, input) = denoisekit_fuzz::decode_job(&data);
            let t = Instant::now();
            let _ = denoisekit_core::run(
                m.id,
                input.view(),
                &values,
                &denoisekit_core::Control::new(),
            );
            let dt = t.elapsed();
            let e = per.entry(m.id).or_default();
            e.0 += 1;
            e.1 += dt;
            if dt > e.2 {
                e.2 = dt;
                e.3 = format!("{} on {:?}", values.to_options(), input.dim());
            }
        }
    }
    let mut rows: Vec<_> = per.into_iter().collect();
    rows.sort_by_key(|(_, (_, total, ..))| std::cmp::Reverse(*total));
    for (id, (n, total, worst, job)) in rows {
        println!(
            "{id:24} {n:6} inputs  mean {:8.3} ms  worst {:8.1} ms: {job}",
            total.as_secs_f64() * 1e3 / n as f64,
            worst.as_secs_f64() * 1e3
        );
    }
}
