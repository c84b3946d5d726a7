//! Every WGSL kernel parses and validates with naga (no GPU needed), prefixed with the
//! shared helpers exactly as at pipeline creation. The files checked must be exactly the
//! kernels the GPU methods declare, so an empty or moved folder fails instead of passing
//! vacuously.
#![cfg(feature = "wgpu")] // The GPU backend itself; without it there is nothing to test here.

use denoisekit_core::registry;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::path::Path;

#[test]
fn every_wgsl_file_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/methods");
    let common = std::fs::read_to_string(dir.join("common.wgsl")).expect("common.wgsl");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/methods exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".wgsl") || name == "common.wgsl" {
            continue;
        }
        let src = format!(
            "{common}{}",
            std::fs::read_to_string(&path).expect("read wgsl")
        );
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        Validator::new(ValidationFlags::all(), Capabilities::default())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        checked.push(name.trim_end_matches(".wgsl").to_string());
    }
    checked.sort();
    let mut used: Vec<String> = denoisekit_gpu::GPU_METHODS
        .iter()
        .flat_map(|m| m.kernels.iter().map(|k| k.to_string()))
        .collect();
    used.sort();
    used.dedup();
    assert_eq!(
        checked, used,
        "every WGSL file is used by a GPU method, and exists"
    );
    // Every method with a GPU tolerance in its descriptor has a GPU implementation.
    for m in registry().iter().filter(|m| m.gpu_tolerance.is_some()) {
        assert!(denoisekit_gpu::gpu_method(m.id).is_some(), "{}", m.id);
    }
    assert!(!checked.is_empty());
}
