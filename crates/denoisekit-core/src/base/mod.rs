//! The bottom layer: images, errors, cancellation and progress, the memory budget, number
//! formatting, seeded random numbers and the SIMD helpers. It uses nothing else in the
//! crate.

pub mod budget;
pub mod control;
pub mod error;
pub mod fastmath;
pub mod files;
pub mod format;
pub mod rng;
pub mod simd;
pub mod volume;
