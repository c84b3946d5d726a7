//! Parameter settings shared by the table-driven tests.

use denoisekit_core::{ParamKind, ParamValues};

/// Parameters that switch on every z neighbourhood a method has. By convention a z choice
/// (such as `z_mode`) lists its 3D option last.
pub fn three_d_values(id: &str) -> ParamValues {
    let m = denoisekit_core::find(id).unwrap();
    let mut v = ParamValues::new();
    for p in m.params {
        if p.key.ends_with("_z") || p.key.starts_with("z_") {
            match p.kind {
                ParamKind::Float { .. } => v.insert(p.key, 1.0),
                ParamKind::Int { .. } => v.insert(p.key, 1),
                ParamKind::Choice { options, .. } => {
                    v.insert(p.key, *options.last().expect("a choice has options"))
                }
            }
        }
    }
    v
}
