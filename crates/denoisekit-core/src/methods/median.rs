//! Median filter over a box window in 2D or 3D.
//!
//! Each output pixel is the median of its (2r+1)² · (2rz+1) neighbourhood. The median
//! removes isolated outliers (hot pixels, salt-and-pepper noise, zingers in EM) without
//! averaging them into their surroundings, and keeps step edges; it rounds corners and
//! erases lines thinner than the window. For Gaussian-like noise prefer `nl_means` or
//! `total_variation`.
//!
//! Cost: the 3×3 window uses an exact column-sort network (about 20 min/max operations per
//! pixel, vectorised); larger windows select the median of the gathered window,
//! O(N · window).
//! Window: a square (cube) of half-width `radius`, as scipy's `median_filter(size=2r+1)`;
//! ImageJ's Median uses a circular kernel instead.
//! Border: the `border` parameter (replicate by default; `symmetric` is scipy's `reflect`).
//!
//! # References
//! J. W. Tukey, "Exploratory data analysis", Addison-Wesley 1977.
//! A. W. Paeth, "Median finding on a 3×3 grid", in Graphics Gems, Academic Press 1990,
//! doi:10.1016/B978-0-08-050753-8.50045-6.

use crate::border::{BorderMode, pad};
use crate::control::Control;
use crate::descriptor::{Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Unit};
use crate::error::Result;
use crate::memory::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::Array3;
use rayon::prelude::*;

crate::method_params! {
    /// Parameters of [`denoise_median`].
    pub struct MedianParams {
        /// Half-width of the window in x and y, in pixels (1 = 3×3). Larger = removes
        /// bigger specks, loses more detail; 0 leaves planes unfiltered.
        radius: usize = ParamSpec::int("Radius", 0, 25, 1).unit(Unit::Pixels),
        /// Half-width across planes; 0 filters each plane on its own.
        radius_z: usize = ParamSpec::int("Radius (z)", 0, 10, 0).unit(Unit::Pixels),
        /// What lies beyond the image edge: replicate (ImageJ), symmetric (scipy's
        /// "reflect"), reflect, periodic or zero.
        border: BorderMode = ParamSpec::choice("Border", BorderMode::NAMES, "replicate"),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "median",
    name: "Median",
    category: "Rank",
    summary: "Median over a square (or cubic) window: removes outliers such as hot pixels and \
              salt-and-pepper noise and keeps step edges, but erases structures thinner \
              than the window.",
    references: &[
        "J. W. Tukey, Exploratory data analysis, Addison-Wesley 1977",
        "A. W. Paeth, Median finding on a 3x3 grid, Graphics Gems, Academic Press 1990, \
         doi:10.1016/B978-0-08-050753-8.50045-6",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: MedianParams::SPECS,
    gpu_tolerance: Some(0.0),
    identity: &[("radius", "0"), ("radius_z", "0")],
    support,
    memory: Memory {
        volume: 2.0,
        plane: 0.25,
    },
    run,
};

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = MedianParams::from_resolved(r)?;
    Ok([p.radius_z, p.radius, p.radius])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_median(v, &MedianParams::from_resolved(r)?, ctl)
}

/// Median filter; see the module docs.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_median, BorderMode, Control, MedianParams};
/// use ndarray::Array3;
/// let mut img = Array3::<f32>::from_elem((1, 5, 5), 10.0);
/// img[(0, 2, 2)] = 1000.0; // a hot pixel
/// let p = MedianParams { radius: 1, radius_z: 0, border: BorderMode::Replicate };
/// let out = denoise_median(img.view(), &p, &Control::new()).unwrap();
/// assert_eq!(out[(0, 2, 2)], 10.0);
/// ```
pub fn denoise_median(input: VolumeView<'_>, p: &MedianParams, ctl: &Control) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let s = Shape::of(&input);
    let rz = if s.depth > 1 { p.radius_z } else { 0 };
    let r = p.radius;
    if r == 0 && rz == 0 {
        return Ok(input.to_owned());
    }
    let padded = pad(&input, rz, r, r, p.border);
    let (_, ph, pw) = padded.dim();
    // Invariant: `pad` builds a standard-layout array.
    let src = padded.as_slice().unwrap_or(&[]);
    let w = s.width;
    let total = (s.depth * s.height) as u64;
    let mut out = Array3::<f32>::zeros((s.depth, s.height, s.width));
    // Invariant: freshly allocated, standard layout.
    let dst = out.as_slice_mut().unwrap_or(&mut []);
    let at = |z: usize, y: usize| (z * ph + y) * pw;
    dst.par_chunks_mut(w)
        .enumerate()
        .with_min_len(4)
        .try_for_each(|(row, o)| {
            let (z, y) = (row / s.height, row % s.height);
            if r == 1 && rz == 0 {
                let rows = [
                    &src[at(z, y)..][..pw],
                    &src[at(z, y + 1)..][..pw],
                    &src[at(z, y + 2)..][..pw],
                ];
                crate::simd::with_scratch(3 * pw, |buf| median3x3_row(rows, buf, o));
            } else {
                let k = (2 * r + 1) * (2 * r + 1) * (2 * rz + 1);
                crate::simd::with_scratch(k, |win| {
                    for (x, ov) in o.iter_mut().enumerate() {
                        let mut n = 0;
                        for dz in 0..=2 * rz {
                            for dy in 0..=2 * r {
                                let start = at(z + dz, y + dy) + x;
                                win[n..n + 2 * r + 1]
                                    .copy_from_slice(&src[start..start + 2 * r + 1]);
                                n += 2 * r + 1;
                            }
                        }
                        let (_, m, _) = win.select_nth_unstable_by(k / 2, f32::total_cmp);
                        *ov = *m;
                    }
                });
            }
            ctl.advance(1, total)
        })?;
    Ok(out)
}

crate::simd_dispatch! {
    /// Exact 3×3 median of one output row from three padded rows (`w + 2` long): sort each
    /// column's three values, then the median is med3(max of the lows, med3 of the mids,
    /// min of the highs) over three neighbouring columns (Paeth 1990).
    fn median3x3_row(rows: [&[f32]; 3], buf: &mut [f32], out: &mut [f32]) {
        let pw = rows[0].len();
        let (lo, rest) = buf.split_at_mut(pw);
        let (mid, hi) = rest.split_at_mut(pw);
        for i in 0..pw {
            let (a, b, c) = (rows[0][i], rows[1][i], rows[2][i]);
            let (a, b) = (a.min(b), a.max(b));
            let (b, c) = (b.min(c), b.max(c));
            let (a, b) = (a.min(b), a.max(b));
            lo[i] = a;
            mid[i] = b;
            hi[i] = c;
        }
        for (x, o) in out.iter_mut().enumerate() {
            let max_lo = lo[x].max(lo[x + 1]).max(lo[x + 2]);
            let min_hi = hi[x].min(hi[x + 1]).min(hi[x + 2]);
            let med_mid = med3(mid[x], mid[x + 1], mid[x + 2]);
            *o = med3(max_lo, med_mid, min_hi);
        }
    }
}

#[inline(always)]
fn med3(a: f32, b: f32, c: f32) -> f32 {
    a.min(b).max(a.max(b).min(c))
}

#[cfg(test)]
mod tests {
    use super::med3;

    #[test]
    fn med3_of_every_order() {
        for (a, b, c) in [
            (1.0, 2.0, 3.0),
            (1.0, 3.0, 2.0),
            (2.0, 1.0, 3.0),
            (2.0, 3.0, 1.0),
            (3.0, 1.0, 2.0),
            (3.0, 2.0, 1.0),
        ] {
            assert_eq!(med3(a, b, c), 2.0);
        }
        assert_eq!(med3(5.0, 5.0, 1.0), 5.0);
    }
}
