//! Shared by the GPU test binaries.

/// The shared GPU context, or `None` (the test then skips) when there is no adapter;
/// with `DENOISEKIT_REQUIRE_GPU` set (CI sets it) a missing adapter fails the test instead.
pub use denoisekit_gpu::context::test_context as context;
