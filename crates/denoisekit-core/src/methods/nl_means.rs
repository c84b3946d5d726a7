//! Non-local means: average pixels whose surrounding patches look alike.
//!
//! For each pixel p and each shift s in the search window, the mean squared difference
//! between the patch around p and the patch around p + s gives a weight
//! `exp(-max(d² - 2σ², 0) / h²)`; the output is the weighted mean of the shifted pixels.
//! Subtracting 2σ² (the expected distance between two noisy copies of the same patch)
//! gives similar patches full weight, as in scikit-image's `denoise_nl_means(sigma=...)`.
//! Pick it for textured or repetitive structure (membranes, organelles, lattices) at
//! medium to high noise; it keeps fine detail that `gaussian` and `bilateral` lose.
//!
//! Cost: O(N · (2s+1)² · (2sz+1)) and independent of the patch size: for each shift the
//! squared differences are summed over patches with box sums (Darbon et al. 2008), in
//! bands of rows small enough to stay in cache.
//! Border: replicate. Units: `h` and `sigma` are in the image's own grey levels.
//! Accuracy: weights use [`crate::fastmath::fast_exp`] (relative error < 4e-7).
//!
//! # References
//! A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image denoising",
//! CVPR 2005, doi:10.1109/CVPR.2005.38.
//! J. Darbon, A. Cunha, T. F. Chan, S. Osher, G. J. Jensen, "Fast nonlocal filtering
//! applied to electron cryomicroscopy", ISBI 2008, doi:10.1109/ISBI.2008.4541250.

use crate::border::{BorderMode, pad};
use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Scale, Unit,
};
use crate::error::Result;
use crate::fastmath::fast_exp;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::Array3;
use rayon::prelude::*;

/// Rows per band: large enough that the patch halo adds little work, small enough that
/// the band's distance buffer stays in L2 cache for images up to ~4k wide.
const BAND: usize = 64;

crate::method_params! {
    /// Parameters of [`denoise_nl_means`].
    pub struct NlMeansParams {
        /// Filtering strength in grey levels: how different two patches may be and still be
        /// averaged. Larger = smoother; 0 leaves the image unchanged. By default 0.8 × the
        /// estimated noise.
        h: f64 = ParamSpec::float("Strength h", 0.0, f64::INFINITY, DefaultValue::TimesNoise(0.8))
            .unit(Unit::Intensity).scale(Scale::Log).tunable(),
        /// Noise standard deviation in grey levels; 2·sigma² is subtracted from patch
        /// distances. By default the estimated noise; 0 disables the correction.
        sigma: f64 = ParamSpec::float("Noise sigma", 0.0, f64::INFINITY, DefaultValue::TimesNoise(1.0))
            .unit(Unit::Intensity).scale(Scale::Log),
        /// Patch half-width in pixels (patch = 2r+1 wide). Larger patches match
        /// structure more reliably at high noise.
        patch_radius: usize = ParamSpec::int("Patch radius", 0, 10, 2).unit(Unit::Pixels),
        /// Search window half-width in pixels. Larger = more candidates, slower
        /// (cost grows with its square).
        search_radius: usize = ParamSpec::int("Search radius", 0, 30, 6).unit(Unit::Pixels),
        /// Patch half-width across planes; 0 uses 2D patches.
        patch_radius_z: usize = ParamSpec::int("Patch radius (z)", 0, 5, 0).three_d(crate::descriptor::ParamValue::Int(1)).unit(Unit::Pixels),
        /// Search half-width across planes; 0 searches each plane on its own.
        search_radius_z: usize = ParamSpec::int("Search radius (z)", 0, 10, 0).three_d(crate::descriptor::ParamValue::Int(1)).unit(Unit::Pixels),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "nl_means",
    name: "Non-local means",
    category: "Patch-based",
    summary: "Averages pixels whose neighbourhoods look alike, wherever they are in the search \
              window. Keeps fine and repetitive structure at medium to high noise.",
    references: &[
        "A. Buades, B. Coll, J.-M. Morel, A non-local algorithm for image denoising, \
         CVPR 2005, doi:10.1109/CVPR.2005.38",
        "J. Darbon et al., Fast nonlocal filtering applied to electron cryomicroscopy, \
         ISBI 2008, doi:10.1109/ISBI.2008.4541250",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: NlMeansParams::SPECS,
    images: &[],
    // The GPU sums each patch distance along x then y (the CPU along y then x) and uses
    // its own exp; measured 3.7e-7 of the range on lavapipe.
    gpu_tolerance: Some(1e-5),
    identity: &[("h", "0")],
    quick: &[],
    support,
    memory: Memory {
        volume: 2.5,
        plane: 1.0,
    },
    memory_for: None,
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = NlMeansParams::from_resolved(r)?;
    let xy = p.patch_radius + p.search_radius;
    Ok([p.patch_radius_z + p.search_radius_z, xy, xy])
}

/// What the filter does to a stack of some depth: the one derivation of its radii and
/// weights, which the CPU kernel and the GPU host both run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Patch half-width in the plane.
    pub patch_radius: usize,
    /// Search half-width in the plane.
    pub search_radius: usize,
    /// Patch half-width across planes (0 on a single plane).
    pub patch_radius_z: usize,
    /// Search half-width across planes (0 on a single plane).
    pub search_radius_z: usize,
    /// One over the number of pixels in a patch.
    pub inv_n: f32,
    /// `2σ²`: the mean squared patch distance that pure noise gives, subtracted first.
    pub thr: f32,
    /// `1 / h²`, capped so that a tiny h gives 0·MAX = 0 for identical patches, not NaN.
    pub inv_h2: f32,
}

/// The plan for a stack of `depth` planes, or `None` where the result is the input.
pub fn plan(p: &NlMeansParams, depth: usize) -> Option<Plan> {
    let (prz, srz) = if depth > 1 {
        (p.patch_radius_z, p.search_radius_z)
    } else {
        (0, 0)
    };
    if p.h == 0.0 || (p.search_radius == 0 && srz == 0) {
        return None;
    }
    let pr = p.patch_radius;
    Some(Plan {
        patch_radius: pr,
        search_radius: p.search_radius,
        patch_radius_z: prz,
        search_radius_z: srz,
        inv_n: 1.0 / ((2 * pr + 1).pow(2) * (2 * prz + 1)) as f32,
        thr: (2.0 * p.sigma * p.sigma).min(f32::MAX as f64) as f32,
        inv_h2: (1.0 / (p.h * p.h)).min(f32::MAX as f64) as f32,
    })
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_nl_means(v, &NlMeansParams::from_resolved(r)?, ctl)
}

/// Applies non-local means.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_nl_means, Control, NlMeansParams};
/// use ndarray::Array3;
/// let img = Array3::from_shape_fn((1, 16, 16), |(_, y, x)| ((x / 4 + y / 4) % 2) as f32);
/// let p = NlMeansParams { h: 0.1, sigma: 0.0, patch_radius: 1, search_radius: 3,
///                         patch_radius_z: 0, search_radius_z: 0 };
/// // A noise-free checkerboard is a fixed point: only identical patches get weight.
/// let out = denoise_nl_means(img.view(), &p, &Control::new()).unwrap();
/// assert!(out.iter().zip(img.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
/// ```
pub fn denoise_nl_means(input: VolumeView<'_>, p: &NlMeansParams, ctl: &Control) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let s = Shape::of(&input);
    let Some(plan) = plan(p, s.depth) else {
        return Ok(input.to_owned());
    };
    let (pr, sr, prz, srz) = (
        plan.patch_radius,
        plan.search_radius,
        plan.patch_radius_z,
        plan.search_radius_z,
    );
    let (pz, py, px) = (prz + srz, pr + sr, pr + sr);
    let padded = pad(&input, pz, py, px, BorderMode::Replicate);
    let (_, ph, pw) = padded.dim();
    // Invariant: `pad` builds a standard-layout array.
    let src = padded.as_slice().unwrap_or(&[]);
    let geo = Geometry {
        ctl,
        src,
        ph,
        pw,
        w: s.width,
        pr,
        prz,
        sr,
        srz,
        inv_n: plan.inv_n,
        thr: plan.thr,
        inv_h2: plan.inv_h2,
    };
    let mut out = Array3::<f32>::zeros((s.depth, s.height, s.width));
    // Invariant: freshly allocated, standard layout.
    let dst = out.as_slice_mut().unwrap_or(&mut []);
    let bands_per_plane = s.height.div_ceil(BAND);
    let total = (s.depth * bands_per_plane) as u64;
    // Split the output into bands of BAND rows that never straddle two planes.
    let mut bands: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(total as usize);
    for (z, plane) in dst.chunks_mut(s.height * s.width).enumerate() {
        for (b, band) in plane.chunks_mut(BAND * s.width).enumerate() {
            bands.push((z, b * BAND, band));
        }
    }
    bands.into_par_iter().try_for_each(|(z, y0, band)| {
        crate::simd::with_scratch(geo.scratch_len(), |scratch| {
            nlm_band(&geo, scratch, z, y0, band)
        });
        ctl.advance(1, total)
    })?;
    Ok(out)
}

struct Geometry<'a> {
    ctl: &'a Control,
    src: &'a [f32],
    ph: usize,
    pw: usize,
    w: usize,
    pr: usize,
    prz: usize,
    sr: usize,
    srz: usize,
    inv_n: f32,
    thr: f32,
    inv_h2: f32,
}

crate::simd_dispatch! {
    fn nlm_band(g: &Geometry<'_>, scratch: &mut [f32], z: usize, y0: usize, out: &mut [f32]) {
        g.band(scratch, z, y0, out)
    }
}

impl Geometry<'_> {
    /// Floats of working memory per band: distances, box sums, numerator, denominator.
    fn scratch_len(&self) -> usize {
        let dw = self.w + 2 * self.pr;
        (BAND + 2 * self.pr) * dw + dw + self.w + 2 * BAND * self.w
    }

    fn at(&self, z: usize, y: usize, x: usize) -> usize {
        (z * self.ph + y) * self.pw + x
    }

    /// Denoises rows `y0..y0 + out.len() / w` of plane `z` into `out`.
    #[inline(always)]
    fn band(&self, scratch: &mut [f32], z: usize, y0: usize, out: &mut [f32]) {
        let (w, pr, sr) = (self.w, self.pr, self.sr);
        let bh = out.len() / w;
        let dw = w + 2 * pr;
        let drows = bh + 2 * pr;
        let zc = z + self.prz + self.srz;
        let (dist_all, rest) = scratch.split_at_mut((BAND + 2 * pr) * dw);
        let (vsum_all, rest) = rest.split_at_mut(dw);
        let (hsum_all, rest) = rest.split_at_mut(w);
        let (num_all, den_all) = rest.split_at_mut(BAND * w);
        num_all[..bh * w].fill(0.0);
        den_all[..bh * w].fill(0.0);
        for sz in -(self.srz as isize)..=self.srz as isize {
            for sy in -(sr as isize)..=sr as isize {
                // A band with a large search window takes long: look for a cancel between
                // shift rows so that a stale preview stops within milliseconds. The
                // partial band is discarded with the whole job.
                if self.ctl.is_cancelled() {
                    return;
                }
                for sx in -(sr as isize)..=sr as isize {
                    // Squared differences over the band plus the patch halo, summed over
                    // the patch's planes. Padded row of band row rr: y0 + rr + sr.
                    let dist = &mut dist_all[..drows * dw];
                    dist.fill(0.0);
                    for dz in -(self.prz as isize)..=self.prz as isize {
                        let za = (zc as isize + dz) as usize;
                        let zb = (za as isize + sz) as usize;
                        for rr in 0..drows {
                            let ya = y0 + rr + sr;
                            let yb = (ya as isize + sy) as usize;
                            let a = &self.src[self.at(za, ya, sr)..][..dw];
                            let b0 = self.at(zb, yb, (sr as isize + sx) as usize);
                            let b = &self.src[b0..][..dw];
                            let d = &mut dist[rr * dw..][..dw];
                            for ((d, a), b) in d.iter_mut().zip(a).zip(b) {
                                let t = a - b;
                                *d += t * t;
                            }
                        }
                    }
                    // Vertical box sums, summed afresh for every row (not a running sum):
                    // each pixel's distance then has the same rounding wherever its band
                    // starts, so a crop with a halo reproduces the full result exactly.
                    let vsum = &mut vsum_all[..dw];
                    for j in 0..bh {
                        vsum.copy_from_slice(&dist[j * dw..][..dw]);
                        for rr in 1..2 * pr + 1 {
                            for (v, d) in vsum.iter_mut().zip(&dist[(j + rr) * dw..][..dw]) {
                                *v += d;
                            }
                        }
                        // Horizontal box sums as whole-row adds, so that they vectorise.
                        let hsum = &mut hsum_all[..w];
                        hsum.copy_from_slice(&vsum[..w]);
                        for t in 1..=2 * pr {
                            for (h, v) in hsum.iter_mut().zip(&vsum[t..t + w]) {
                                *h += v;
                            }
                        }
                        let yv = ((y0 + j + pr + sr) as isize + sy) as usize;
                        let zv = (zc as isize + sz) as usize;
                        let xv = (pr as isize + sr as isize + sx) as usize;
                        let val = &self.src[self.at(zv, yv, xv)..][..w];
                        let num = &mut num_all[j * w..][..w];
                        let den = &mut den_all[j * w..][..w];
                        let (inv_n, thr, inv_h2) = (self.inv_n, self.thr, self.inv_h2);
                        for (((n, d), &v), &h) in
                            num.iter_mut().zip(den.iter_mut()).zip(val).zip(hsum.iter())
                        {
                            let excess = (h * inv_n - thr).max(0.0);
                            let wt = fast_exp(-excess * inv_h2);
                            *n += wt * v;
                            *d += wt;
                        }
                    }
                }
            }
        }
        for (o, (n, d)) in out.iter_mut().zip(num_all.iter().zip(den_all.iter())) {
            *o = n / d;
        }
    }
}
