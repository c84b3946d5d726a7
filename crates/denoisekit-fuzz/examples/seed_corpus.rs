//! Writes the seed corpora under `fuzz/corpus/` (run once from the repository root:
//! `cargo run -p denoisekit-fuzz --example seed_corpus`); the files are committed.

use denoisekit_core::registry;
use denoisekit_tiff::{Bits, PageWriter};
use std::path::Path;

fn main() {
    let root = Path::new("fuzz/corpus");
    let tiff = root.join("tiff_read");
    std::fs::create_dir_all(&tiff).unwrap();
    let px: Vec<f32> = (0..15).map(|i| i as f32 * 17.0).collect();
    for (bits, big, pages) in [
        (Bits::U8, false, 1),
        (Bits::U16, false, 3),
        (Bits::F32, false, 2),
        (Bits::U16, true, 2),
    ] {
        let path = tiff.join(format!(
            "{bits:?}-{}-{pages}.tif",
            if big { "big" } else { "classic" }
        ));
        let mut w = PageWriter::create_as(&path, bits, big).unwrap();
        for _ in 0..pages {
            w.write_page(5, 3, &px).unwrap();
        }
        w.finish().unwrap();
    }
    let params = root.join("params");
    let run = root.join("run_method");
    std::fs::create_dir_all(&params).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    for (i, m) in registry().iter().enumerate() {
        let mut p = vec![i as u8];
        p.extend(format!("{}={} noise_model=gaussian", m.params[0].key, "1").bytes());
        std::fs::write(params.join(m.id), p).unwrap();
        // Method, finite pixels, a 2x9x11 shape, then parameter and pixel bytes.
        let mut r = vec![i as u8, 1, 2, 9, 11];
        r.extend((0..400u32).map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8));
        std::fs::write(run.join(m.id), r).unwrap();
    }
}
