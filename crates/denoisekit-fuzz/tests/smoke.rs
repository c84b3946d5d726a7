//! A short smoke run of each fuzz target on stable Rust: the committed corpora (seeds and
//! every input that once found a bug, under `fuzz/corpus/<target>/`), then seeded
//! mutations of them. The long runs are `cargo +nightly fuzz run <target>` in `fuzz/`.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "{}: only {} inputs",
        dir.display(),
        files.len()
    );
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// xorshift: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, overwrites, inserts and truncates bytes, as libFuzzer's simplest mutators do.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = *[0u8, 1, 0x7f, 0x80, 0xff].get(rng.below(5)).unwrap();
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => v.truncate(rng.below(v.len())),
            _ => {}
        }
    }
    v
}

fn smoke(target: &str, body: fn(&[u8]), mutations: usize) {
    let seeds = corpus(target);
    for s in &seeds {
        body(s);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..mutations {
        let s = &seeds[rng.below(seeds.len())];
        let input = mutate(s, &mut rng);
        if std::panic::catch_unwind(|| body(&input)).is_err() {
            // Keep the input, to replay it and to commit it to the corpus once fixed.
            let path = std::env::temp_dir().join(format!("denoisekit-smoke-{target}-failure"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{target}: a mutated input failed; saved to {}",
                path.display()
            );
        }
    }
}

#[test]
fn tiff_read() {
    smoke("tiff_read", denoisekit_fuzz::tiff, 20_000);
}

#[test]
fn params() {
    smoke("params", denoisekit_fuzz::params, 20_000);
}

#[test]
fn run_method() {
    smoke("run_method", denoisekit_fuzz::run, 20_000);
}
