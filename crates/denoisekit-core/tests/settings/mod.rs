//! Parameter settings shared by the table-driven tests.
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use denoisekit_core::{MethodDescriptor, ParamValues, VolumeView};

/// The settings a table-driven test runs method `m` with on `input`: `base`, then `base`
/// with each image input (a measured PSF, a training target) selected and given the
/// descriptor's example image, and with each other choice that the method's own
/// parameters depend on (training on synthetic scenes) selected.
pub fn with_image_inputs(
    m: &MethodDescriptor,
    base: &ParamValues,
    input: VolumeView<'_>,
) -> Vec<ParamValues> {
    let mut conditions: Vec<(&str, &str)> = m.images.iter().map(|i| i.when).collect();
    for when in m.params.iter().filter_map(|p| p.when) {
        if !conditions.contains(&when) {
            conditions.push(when);
        }
    }
    let mut all = vec![m.with_example_images(base, input)];
    for (key, option) in conditions {
        all.push(m.with_example_images(&base.clone().set(key, option), input));
    }
    all
}

/// Parameters that switch on every z neighbourhood a method has (its descriptor's
/// [`denoisekit_core::ParamSpec::three_d`] values).
pub fn three_d_values(id: &str) -> ParamValues {
    denoisekit_core::find(id).unwrap().three_d_values()
}

/// `base` over the method's [`MethodDescriptor::quick`] settings: for the tests that check
/// structure (shapes, determinism, seams, crops) rather than quality, where a trained or
/// iterated method's full default budget would only cost time.
pub fn quick(m: &MethodDescriptor, base: &ParamValues) -> ParamValues {
    let mut v = m.quick_values();
    for (k, val) in base.pairs() {
        v.insert(k.clone(), val);
    }
    v
}
