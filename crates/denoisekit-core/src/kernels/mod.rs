//! Numerical building blocks the methods share: border rules and padding, convolution,
//! spectral (DCT) filtering and optical PSF models. Above the descriptors (a border rule
//! is a typed choice), below the methods.

pub mod border;
pub mod convolve;
pub mod psf;
pub mod spectral;
