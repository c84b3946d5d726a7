//! Working memory: what a job needs, the budget it must fit, and how it is kept.
//!
//! Every method states its working memory in its descriptor ([`Memory`]) as a number of
//! `f32` copies of the whole image plus a number of copies of one plane per plane being
//! processed at once. A method whose planes are independent (z reach 0) or that reaches
//! only a few planes works on as many planes at once as there are worker threads; one
//! coupled through the whole stack (a 3D Fourier transform) works on the whole volume at
//! once. `tests/memory.rs` measures every method with a counting allocator and checks
//! that the statement is an upper bound that is not grossly pessimistic.
//!
//! [`crate::run`] compares the need with [`limit`]: a job over it is split into windows
//! of planes with a z halo ([`crate::tiling`]) when the method reaches finitely far in
//! z, which gives exactly the untiled result, and is otherwise refused with
//! [`DenoiseError::TooLarge`] naming the sizes: never an out-of-memory abort.

pub use crate::budget::{LIMIT_ENV, available, limit, set_limit};
pub use crate::descriptor::Memory;
use crate::descriptor::{GLOBAL_SUPPORT, MethodDescriptor, Resolved};
use crate::error::{DenoiseError, Result};
pub use crate::format::{fmt_bytes, fmt_bytes_up, parse_size};
use crate::volume::Shape;

/// Fixed allowance on top of the stated copies: thread stacks, kernels, lookup tables.
pub const FIXED: u64 = 16 << 20;

/// Bytes method `m` needs beyond its input to process an image of this shape
/// with these parameters (the noise model's transformed copy included).
///
/// # Errors
/// The parameter errors of the method's support function.
pub fn need(m: &MethodDescriptor, shape: Shape, r: &Resolved) -> Result<u64> {
    let [d, h, w] = [shape.depth, shape.height, shape.width].map(|n| n as u64);
    let plane = h.saturating_mul(w).saturating_mul(4);
    let volume = plane.saturating_mul(d);
    let coupled = (m.support)(r)?[0] >= GLOBAL_SUPPORT;
    let in_flight = if coupled {
        volume
    } else {
        plane.saturating_mul(d.min(rayon::current_num_threads() as u64).max(1))
    };
    let gat = noise_model_copies(r);
    let copies = |n: f32, of: u64| (f64::from(n) * of as f64).min(u64::MAX as f64 / 4.0) as u64;
    let mem = m.memory_for.map_or(m.memory, |f| f(r, shape));
    Ok(copies(mem.volume + gat, volume)
        .saturating_add(copies(mem.plane, in_flight))
        .saturating_add(FIXED))
}

/// Copies of the image that the noise model adds to any job: the stabilised copy of a
/// Poisson-Gaussian model's transform, and half a copy while its noise is measured
/// ([`crate::vst::Gat::check`]: a quarter of the pixels' wavelet coefficients in
/// f64).
pub fn noise_model_copies(r: &Resolved) -> f32 {
    match r.get::<crate::vst::NoiseModelChoice>("noise_model") {
        Ok(model) if model != crate::vst::NoiseModelChoice::Gaussian => 1.5,
        _ => 0.0,
    }
}

/// The `TooLarge` error for a job of method `m` with values `r` that needs `bytes` against
/// `limit`, with the way forward that can help: the least limit that runs a stack in
/// windows of planes (`windows`: what one plane's window takes, when the method can be
/// windowed), fewer planes only where the method couples the whole stack, a higher limit
/// where it is below what every job needs besides its image.
pub fn too_large(
    m: &MethodDescriptor,
    shape: Shape,
    r: &Resolved,
    bytes: u64,
    limit: u64,
    windows: Option<u64>,
) -> DenoiseError {
    let coupled = (m.support)(r).map_or(true, |s| s[0] >= GLOBAL_SUPPORT);
    let way = if let Some(least) = windows.filter(|&n| shape.depth > 1 && n < bytes) {
        // The whole job's need overstated what it takes (a reviewer was told 40.1 MiB
        // where 18 MiB streamed the stack).
        format!(
            "raise the limit ({LIMIT_ENV}) to {} or more, which runs it in windows of planes \
             ({} holds it whole), or process a smaller part of each plane",
            fmt_bytes_up(least),
            fmt_bytes(bytes)
        )
    } else if limit < FIXED {
        format!(
            "raise the limit ({LIMIT_ENV}) to {} or more: every job needs {} besides its \
             image",
            fmt_bytes_up(bytes),
            fmt_bytes(FIXED)
        )
    } else if coupled && shape.depth > 1 {
        format!(
            "set {LIMIT_ENV} to change it, or process fewer planes: {} with these settings \
             couples the whole stack",
            m.id
        )
    } else {
        format!("set {LIMIT_ENV} to change it, or process a smaller part of each plane")
    };
    DenoiseError::TooLarge {
        job: format!("{} on a {shape} image", m.id),
        way,
        bytes,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units_and_reject_nonsense() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("8g"), Ok(8 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 2 T "), Ok(2 << 40));
        for bad in ["", "G", "-1G", "0", "NaN", "1e300T", "12Q", "1.2.3"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(fmt_bytes(3 << 29), "1.5 GiB");
        assert_eq!(fmt_bytes(17), "17 bytes");
        // A limit to reach is rounded up: 18.0 MiB would fall a byte short.
        assert_eq!(fmt_bytes((18 << 20) + 1), "18.0 MiB");
        assert_eq!(fmt_bytes_up((18 << 20) + 1), "18.1 MiB");
        assert_eq!(fmt_bytes_up(18 << 20), "18.0 MiB");
    }
}
