//! GPU hosts, one module per method id, each beside its WGSL kernel.

pub mod bilateral;
pub mod gaussian;
