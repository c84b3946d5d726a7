//! The memory budget every job must fit: set by the program, by the environment, or
//! taken from what the machine has available.

use crate::error::{DenoiseError, Result};
use crate::format::parse_size;
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::error::MEMORY_LIMIT_ENV as LIMIT_ENV;

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
