//! Files written beside their target and renamed into place once whole: a reader (a batch
//! loading weights, Fiji opening an output, the run's own input when it is replaced) sees
//! the old file or the new one, never half of one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where to write `target`'s new contents before renaming them onto it:
/// `<name>.<pid>-<n>.part` in the same folder (a rename does not cross file systems).
/// Its own name per writer, so that jobs writing one target at once each rename a whole
/// file, the last one standing; visible, so that one left by a killed run is seen.
pub fn part_beside(target: &Path) -> PathBuf {
    static WRITERS: AtomicU64 = AtomicU64::new(0);
    let n = WRITERS.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!("{name}.{}-{n}.part", std::process::id()))
}
