//! Errors of the GPU backend. None of them reaches a user as a failure on its own:
//! [`crate::run`] falls back to the CPU, except when the GPU was explicitly required.

use thiserror::Error;

/// What went wrong on the GPU side.
#[derive(Debug, Clone, Error, PartialEq)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter on Vulkan, Metal or DX12.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("cannot create a GPU device: {0}")]
    Device(String),
    /// A shader, pipeline or dispatch failed validation.
    #[error("GPU validation error: {0}")]
    Validation(String),
    /// The device ran out of memory.
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    /// Reading results back failed.
    #[error("GPU read-back failed: {0}")]
    Map(String),
    /// The job does not fit the device's buffer limits even when tiled.
    #[error("image too large for the GPU: {0}")]
    TooLarge(String),
    /// These settings have no GPU kernel (the method has one for others): the job runs
    /// on the CPU, with this reason, whatever the backend asked for.
    #[error("{0}")]
    Unsupported(String),
    /// The job itself is invalid (a parameter combination the method refuses): reported
    /// as it is, never retried on the CPU.
    #[error(transparent)]
    Job(#[from] denoisekit_core::DenoiseError),
    /// A lock was poisoned by a panic in another thread.
    #[error("GPU context lock poisoned")]
    Poisoned,
}
