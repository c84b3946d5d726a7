//! The check behind `uniforms!`: a host's uniform struct against naga's reflection of its
//! kernel's `var<uniform>`.

use naga::{AddressSpace, ScalarKind, TypeInner};

/// WGSL's name for a type, with vectors and fixed arrays written as Rust arrays
/// (`vec2<u32>` and `array<u32, 2>` as `[u32; 2]`), so it compares with the Rust field.
fn type_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    let scalar = |s: naga::Scalar| {
        let kind = match s.kind {
            ScalarKind::Uint => "u",
            ScalarKind::Sint => "i",
            ScalarKind::Float => "f",
            other => return format!("{other:?}"),
        };
        format!("{kind}{}", u32::from(s.width) * 8)
    };
    match &module.types[ty].inner {
        TypeInner::Scalar(s) => scalar(*s),
        TypeInner::Vector { size, scalar: s } => format!("[{}; {}]", scalar(*s), *size as u8),
        TypeInner::Array {
            base,
            size: naga::ArraySize::Constant(n),
            ..
        } => format!("[{}; {n}]", type_name(module, *base)),
        other => format!("{other:?}"),
    }
}

/// Panics unless the uniform block declared in `wgsl` (prefixed with the shared helpers,
/// as at pipeline creation) has the fields `rust` lists as `(name, offset, type)`, in that
/// order, and spans `size` bytes. Padding (names starting with `_`) is left out on both
/// sides: the offsets of the rest and the total size already pin what it covers.
pub(crate) fn check(wgsl: &str, rust: &[(&str, usize, &str)], size: usize) {
    let src = [crate::context::COMMON_WGSL, wgsl].concat();
    let module = naga::front::wgsl::parse_str(&src).expect("the kernel parses");
    let uniforms: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == AddressSpace::Uniform)
        .collect();
    assert_eq!(uniforms.len(), 1, "one var<uniform> per kernel");
    let ty = uniforms[0].1.ty;
    let TypeInner::Struct { members, span } = &module.types[ty].inner else {
        panic!("the uniform is a struct");
    };
    let wgsl_fields: Vec<(String, usize, String)> = members
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_default();
            (name, m.offset as usize, type_name(&module, m.ty))
        })
        .filter(|(name, ..)| !name.starts_with('_'))
        .collect();
    let rust_fields: Vec<(String, usize, String)> = rust
        .iter()
        .filter(|(name, ..)| !name.starts_with('_'))
        .map(|&(name, offset, ty)| {
            (
                name.to_string(),
                offset,
                ty.replace(' ', "").replace(';', "; "),
            )
        })
        .collect();
    assert_eq!(
        rust_fields, wgsl_fields,
        "the Rust uniform struct and the WGSL one: (name, offset, type) of each field"
    );
    assert_eq!(
        size, *span as usize,
        "the Rust uniform struct's size and the WGSL one's"
    );
}

#[test]
fn a_drifted_layout_is_caught() {
    const WGSL: &str = "struct Params { width: u32, sigma: f32, _pad: vec2<u32> }
        @group(0) @binding(0) var<uniform> p: Params;
        @compute @workgroup_size(1) fn main() { _ = p.width; }";
    check(
        WGSL,
        &[
            ("width", 0, "u32"),
            ("sigma", 4, "f32"),
            ("_pad", 8, "[u32; 2]"),
        ],
        16,
    );
    for (rust, size) in [
        // Swapped, renamed, retyped, moved, resized.
        (vec![("sigma", 0, "f32"), ("width", 4, "u32")], 16),
        (vec![("width", 0, "u32"), ("sigma2", 4, "f32")], 16),
        (vec![("width", 0, "u32"), ("sigma", 4, "u32")], 16),
        (vec![("width", 0, "u32"), ("sigma", 8, "f32")], 16),
        (vec![("width", 0, "u32"), ("sigma", 4, "f32")], 32),
    ] {
        let caught = std::panic::catch_unwind(|| check(WGSL, &rust, size)).is_err();
        assert!(caught, "{rust:?}, {size}");
    }
}
