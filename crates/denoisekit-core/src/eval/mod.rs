//! Evaluation: a seeded synthetic scene with known truth (`phantom`) and image-quality
//! metrics (`metrics`), for tests, benchmarks and the demo. Nothing below uses them
//! outside tests.

pub mod metrics;
pub mod phantom;
