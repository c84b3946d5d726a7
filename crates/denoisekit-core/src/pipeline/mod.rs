//! The top of the library: running a job (`job`), sizing it against the memory budget
//! (`memory`), splitting it into windows of planes (`tiling`) and self-supervised tuning
//! (`tune`). It calls down into the methods through the registry.

pub mod job;
pub mod memory;
pub mod tiling;
pub mod tune;
