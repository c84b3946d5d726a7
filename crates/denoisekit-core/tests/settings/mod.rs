//! Parameter settings shared by the table-driven tests.
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use denoisekit_core::{MethodDescriptor, ParamKind, ParamValues};

/// The settings a table-driven test runs method `m` with on an input of shape `dims`:
/// `base`, then `base` with each image input (a measured PSF) selected and given the
/// descriptor's example image.
pub fn with_image_inputs(
    m: &MethodDescriptor,
    base: &ParamValues,
    dims: (usize, usize, usize),
) -> Vec<ParamValues> {
    let mut all = vec![m.with_example_images(base, dims)];
    for input in m.images {
        let (key, option) = input.when;
        all.push(m.with_example_images(&base.clone().set(key, option), dims));
    }
    all
}

/// Parameters that switch on every z neighbourhood a method has (those its descriptor marks
/// `along_z`). By convention a z choice (such as `z_mode`) lists its 3D option last.
pub fn three_d_values(id: &str) -> ParamValues {
    let m = denoisekit_core::find(id).unwrap();
    let mut v = ParamValues::new();
    for p in m.params {
        if p.along_z {
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
