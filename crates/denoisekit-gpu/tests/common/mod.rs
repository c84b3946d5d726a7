//! Shared by the GPU test binaries.

use denoisekit_gpu::{GpuContext, shared};

/// The shared GPU context, or `None` (the test then skips) when there is no adapter;
/// with `DENOISEKIT_REQUIRE_GPU` set (CI sets it) a missing adapter fails the test instead.
pub fn context() -> Option<&'static GpuContext> {
    match shared() {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os("DENOISEKIT_REQUIRE_GPU").is_some() => {
            panic!("DENOISEKIT_REQUIRE_GPU is set but no GPU is usable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}
