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

use crate::descriptor::{GLOBAL_SUPPORT, MethodDescriptor, Resolved};
use crate::error::{DenoiseError, Result};
use crate::volume::Shape;
use std::sync::atomic::{AtomicU64, Ordering};

/// A method's working memory, in `f32` copies of the image (output included, input
/// excluded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// Copies of the whole volume (the output counts as one).
    pub volume: f32,
    /// Copies of one plane per plane in flight (transforms, padded buffers, per-thread
    /// aggregation).
    pub plane: f32,
}

/// Fixed allowance on top of the stated copies: thread stacks, kernels, lookup tables.
pub const FIXED: u64 = 16 << 20;

/// The environment variable that sets the budget, in bytes or with a K/M/G/T suffix
/// (binary units): `DENOISEKIT_MEMORY_LIMIT=8G`.
pub const LIMIT_ENV: &str = "DENOISEKIT_MEMORY_LIMIT";

/// 0 means "not set by the program": the environment, then the machine decide.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Sets the budget for every later job (`None`: back to the default).
pub fn set_limit(bytes: Option<u64>) {
    LIMIT.store(bytes.map_or(0, |b| b.max(1)), Ordering::Relaxed);
}

/// The budget in bytes: set by [`set_limit`], else by [`LIMIT_ENV`], else 80% of the
/// memory the operating system reports available now (Linux), else unlimited.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] when the environment variable cannot be read as a
/// size.
pub fn limit() -> Result<u64> {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {}
        set => return Ok(set),
    }
    if let Ok(s) = std::env::var(LIMIT_ENV) {
        return parse_size(&s).map_err(|expected| DenoiseError::InvalidParamValue {
            name: LIMIT_ENV.into(),
            value: s,
            expected,
        });
    }
    Ok(available().map_or(u64::MAX, |a| a / 5 * 4))
}

/// Memory the system can give without swapping (`MemAvailable`), where it says.
pub fn available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Parses `123`, `512M`, `8G`, `1.5T` (binary units; a trailing `B`/`iB` is accepted).
///
/// # Errors
/// A description of the accepted form.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let expected = || "a size in bytes such as 4000000000, 512M, 8G or 1.5T".to_string();
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let x: f64 = num.trim().parse().map_err(|_| expected())?;
    let bytes = x * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(expected());
    }
    Ok(bytes as u64)
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `17 bytes`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} bytes");
    }
    let mut x = b as f64 / 1024.0;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    format!("{x:.1} {}", UNITS[u])
}

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
/// Poisson-Gaussian model's transform.
pub fn noise_model_copies(r: &Resolved) -> f32 {
    match r.get::<crate::vst::NoiseModelChoice>("noise_model") {
        Ok(model) if model != crate::vst::NoiseModelChoice::Gaussian => 1.0,
        _ => 0.0,
    }
}

/// The `TooLarge` error for a job that needs `bytes` against `limit`.
pub fn too_large(m: &MethodDescriptor, shape: Shape, bytes: u64, limit: u64) -> DenoiseError {
    DenoiseError::TooLarge {
        job: format!("{} on a {shape} image", m.id),
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
    }
}
