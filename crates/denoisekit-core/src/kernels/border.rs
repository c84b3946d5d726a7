//! How pixels outside the image are defined.
//!
//! Pictured on a row `a b c d` (the bars mark the image edge), padded by three:
//!
//! ```text
//! Replicate   a a a | a b c d | d d d      ImageJ, scikit-image "nearest", the default
//! Symmetric   c b a | a b c d | d c b      half-sample symmetric, pywt "symmetric"
//! Reflect     d c b | a b c d | c b a      whole-sample symmetric, OpenCV REFLECT_101
//! Periodic    b c d | a b c d | a b c      wrap around
//! Zero        0 0 0 | a b c d | 0 0 0      pad with zeros
//! ```
//!
//! There is deliberately no mode called "constant": numpy means "pad with a value" by it,
//! pywt means "replicate the edge". The WGSL helper `border_index` in the GPU crate
//! implements the same mapping and is tested against [`BorderMode::index`].

use crate::volume::{Volume, VolumeView};
use rayon::prelude::*;

crate::choice_enum! {
    /// Rule for pixels outside the image; see the module docs for pictures.
    pub enum BorderMode {
        /// Repeat the edge pixel (ImageJ's convention).
        Replicate = "replicate",
        /// Mirror including the edge pixel.
        Symmetric = "symmetric",
        /// Mirror about the edge pixel, which is not repeated.
        Reflect = "reflect",
        /// Wrap around to the other side.
        Periodic = "periodic",
        /// Zeros outside.
        Zero = "zero",
    }
}

impl BorderMode {
    /// Whether these settings' border rule wraps around (periodic): the result near the
    /// first plane then depends on the last ones, so a window's z halo wraps too.
    pub fn wraps_in(r: &crate::descriptor::Resolved) -> bool {
        r.chose(Self::NAMES, Self::Periodic.name())
    }

    /// Maps a possibly out-of-range index `i` on an axis of length `n > 0` to the index
    /// of the pixel that stands there, or `None` where [`BorderMode::Zero`] gives 0.
    pub fn index(self, i: isize, n: usize) -> Option<usize> {
        let n = n as isize;
        if (0..n).contains(&i) {
            return Some(i as usize);
        }
        let j = match self {
            Self::Replicate => i.clamp(0, n - 1),
            Self::Periodic => i.rem_euclid(n),
            Self::Symmetric => {
                let p = i.rem_euclid(2 * n);
                if p < n { p } else { 2 * n - 1 - p }
            }
            Self::Reflect => {
                if n == 1 {
                    0
                } else {
                    let p = i.rem_euclid(2 * n - 2);
                    if p < n { p } else { 2 * n - 2 - p }
                }
            }
            Self::Zero => return None,
        };
        Some(j as usize)
    }
}

/// A copy of `v` padded by `(pz, py, px)` pixels on both sides of each axis by `mode`.
pub fn pad(v: &VolumeView<'_>, pz: usize, py: usize, px: usize, mode: BorderMode) -> Volume {
    let (d, h, w) = v.dim();
    let (pd, ph, pw) = (d + 2 * pz, h + 2 * py, w + 2 * px);
    let mut out = Volume::zeros((pd, ph, pw));
    let src = v.as_standard_layout();
    // Invariant: `as_standard_layout` and `zeros` give contiguous arrays.
    let (Some(src), Some(dst)) = (src.as_slice(), out.as_slice_mut()) else {
        unreachable!("pad works on standard-layout arrays")
    };
    dst.par_chunks_mut(pw).enumerate().for_each(|(row, o)| {
        let (z, y) = (row / ph, row % ph);
        let (Some(sz), Some(sy)) = (
            mode.index(z as isize - pz as isize, d),
            mode.index(y as isize - py as isize, h),
        ) else {
            return; // a zero row: `out` is already zeroed
        };
        let line = &src[(sz * h + sy) * w..][..w];
        o[px..px + w].copy_from_slice(line);
        for x in (0..px).chain(px + w..pw) {
            o[x] = mode
                .index(x as isize - px as isize, w)
                .map_or(0.0, |j| line[j]);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mode: BorderMode) -> String {
        let px = ['a', 'b', 'c', 'd'];
        (-3..7)
            .map(|i| mode.index(i, 4).map_or('0', |j| px[j]))
            .collect()
    }

    #[test]
    fn index_matches_module_pictures() {
        assert_eq!(row(BorderMode::Replicate), "aaaabcdddd");
        assert_eq!(row(BorderMode::Symmetric), "cbaabcddcb");
        assert_eq!(row(BorderMode::Reflect), "dcbabcdcba");
        assert_eq!(row(BorderMode::Periodic), "bcdabcdabc");
        assert_eq!(row(BorderMode::Zero), "000abcd000");
    }

    #[test]
    fn far_outside_stays_in_range() {
        for m in BorderMode::ALL {
            for n in 1..5 {
                for i in -40..40 {
                    if let Some(j) = m.index(i, n) {
                        assert!(j < n, "{m:?} {i} {n} -> {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for m in BorderMode::ALL {
            assert_eq!(BorderMode::from_name("border", m.name()).unwrap(), m);
        }
        assert!(BorderMode::from_name("border", "constant").is_err());
    }
}
