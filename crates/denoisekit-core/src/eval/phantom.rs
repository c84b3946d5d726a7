//! A seeded synthetic fluorescence-like scene with known clean truth.
//!
//! Dots (sub-resolution beads), rings (membranes, shells in 3D) and curved filaments on a
//! dim background, blurred by a Gaussian PSF, then degraded by Poisson–Gaussian noise:
//! `noisy = Poisson(photons · clean) / photons + N(0, read_noise²)`. Everything is
//! driven by one `u64` seed through a SplitMix64 generator, so a test or a benchmark
//! gets the same image on every machine. Used by the property tests, the demo and the
//! benches; `../shared/bench/synth_fluo.py` is the Python cousin used for the peers.

pub use crate::rng::Rng;
use crate::volume::Volume;

/// Parameters of [`phantom`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSpec {
    /// (depth, height, width); depth 1 gives a 2D image.
    pub shape: (usize, usize, usize),
    /// Seed of the scene and of the noise.
    pub seed: u64,
    /// Standard deviation of the Gaussian PSF in pixels (xy, and z for stacks).
    pub psf_sigma: f64,
    /// Expected photons at clean intensity 1; `f64::INFINITY` means no shot noise.
    pub photons: f64,
    /// Standard deviation of additive Gaussian noise, in clean-intensity units.
    pub read_noise: f64,
}

impl Default for PhantomSpec {
    fn default() -> Self {
        Self {
            shape: (1, 256, 256),
            seed: 1,
            psf_sigma: 1.2,
            photons: f64::INFINITY,
            read_noise: 0.1,
        }
    }
}

/// The clean scene in [0, ~1] and its noisy observation.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// Noise-free scene (after the PSF).
    pub clean: Volume,
    /// `clean` with Poisson–Gaussian noise.
    pub noisy: Volume,
}

/// Builds the scene and its noisy copy. See the module docs.
pub fn phantom(spec: &PhantomSpec) -> Phantom {
    let mut rng = Rng::new(spec.seed);
    let clean = scene_with(spec, &mut rng);
    let mut noisy = clean.clone();
    for p in noisy.iter_mut() {
        let mut v = *p as f64;
        if spec.photons.is_finite() {
            v = rng.poisson(v.max(0.0) * spec.photons) / spec.photons;
        }
        v += spec.read_noise * rng.normal();
        *p = v as f32;
    }
    Phantom { clean, noisy }
}

/// The clean scene, drawing from `rng` (which [`phantom`] goes on drawing its noise from).
fn scene_with(spec: &PhantomSpec, rng: &mut Rng) -> Volume {
    crate::methods::scene::draw(spec.shape, spec.psf_sigma, rng)
}

/// Adds white Gaussian noise of standard deviation `sigma` (seeded) to a copy of `v`.
pub fn add_gaussian_noise(v: &Volume, sigma: f64, seed: u64) -> Volume {
    let mut rng = Rng::new(seed);
    v.mapv(|p| (p as f64 + sigma * rng.normal()) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_image() {
        let s = PhantomSpec {
            shape: (1, 64, 64),
            ..Default::default()
        };
        assert_eq!(phantom(&s).noisy, phantom(&s).noisy);
        let other = PhantomSpec {
            seed: 2,
            ..s.clone()
        };
        assert_ne!(phantom(&s).noisy, phantom(&other).noisy);
    }

    #[test]
    fn gaussian_noise_has_requested_sigma() {
        let v = Volume::zeros((1, 200, 200));
        let n = add_gaussian_noise(&v, 0.5, 3);
        let var = n.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / n.len() as f64;
        assert!((var.sqrt() - 0.5).abs() < 0.01, "{}", var.sqrt());
    }

    #[test]
    fn poisson_mean_and_variance() {
        let mut r = Rng::new(7);
        for lambda in [3.0, 50.0] {
            let xs: Vec<f64> = (0..20000).map(|_| r.poisson(lambda)).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
            assert!((m - lambda).abs() < 0.05 * lambda, "mean {m}");
            assert!((v - lambda).abs() < 0.1 * lambda, "var {v}");
        }
    }
}
