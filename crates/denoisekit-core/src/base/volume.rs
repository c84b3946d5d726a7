//! The image type: a 3D `f32` array ordered (z, y, x); a 2D image is a volume with z = 1.
//!
//! Pixels are always `f32` in the image's own intensity units: 8- and 16-bit data are
//! converted without rescaling, so an intensity parameter means the same grey levels
//! whatever the bit depth of the file.

use crate::error::{DenoiseError, Result};
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// An owned image or stack, shape (z, y, x).
pub type Volume = Array3<f32>;
/// A borrowed image or stack, shape (z, y, x). Methods take a view and return a new
/// [`Volume`], so the caller's pixels can never be modified.
pub type VolumeView<'a> = ArrayView3<'a, f32>;

/// Shape of a volume as (depth, height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Number of planes (1 for a 2D image).
    pub depth: usize,
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
}

impl Shape {
    /// `depth` planes of `height` rows by `width` columns.
    pub const fn new(depth: usize, height: usize, width: usize) -> Self {
        Self {
            depth,
            height,
            width,
        }
    }

    /// The shape of a view.
    pub fn of(v: &VolumeView<'_>) -> Self {
        let (depth, height, width) = v.dim();
        Self::new(depth, height, width)
    }

    /// 2 for a single plane, 3 for a stack.
    pub fn ndim(&self) -> usize {
        if self.depth > 1 { 3 } else { 2 }
    }

    /// Number of pixels, or `None` if it overflows `usize`.
    pub fn len(&self) -> Option<usize> {
        self.depth.checked_mul(self.height)?.checked_mul(self.width)
    }

    /// Whether any axis has length zero.
    pub fn is_empty(&self) -> bool {
        self.depth == 0 || self.height == 0 || self.width == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.depth > 1 {
            write!(f, "{}x{}x{}", self.width, self.height, self.depth)
        } else {
            write!(f, "{}x{}", self.width, self.height)
        }
    }
}

/// Builds a volume from a flat buffer in (z, y, x) order, checking that the lengths agree.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] when `data.len()` differs from `depth * height * width`
/// or that product overflows.
pub fn volume_from_vec(
    depth: usize,
    height: usize,
    width: usize,
    data: Vec<f32>,
) -> Result<Volume> {
    let shape = Shape::new(depth, height, width);
    let expected = shape
        .len()
        .ok_or_else(|| DenoiseError::invalid(format!("image size {shape} overflows")))?;
    if expected != data.len() {
        return Err(DenoiseError::invalid(format!(
            "image of {shape} needs {expected} pixels, got {}",
            data.len()
        )));
    }
    Array3::from_shape_vec((depth, height, width), data)
        .map_err(|e| DenoiseError::invalid(format!("cannot shape {shape}: {e}")))
}

/// The largest pixel magnitude accepted. Methods square differences and sum them over
/// patches and whole images in 32-bit float, which overflows to infinity somewhere past
/// 1e18; 1e12 leaves a wide margin and is far beyond any detector's range (a 32-bit
/// integer camera reaches 4.3e9).
pub const MAX_ABS_PIXEL: f32 = 1e12;

/// Why an image whose values span `lo` to `hi`, and which converting to 32-bit float
/// (the library's working type) moves by up to `moved`, cannot be denoised so: `None`
/// when it can. A conversion that moves values by over 1/1024 of their range (fewer than
/// 10 bits of it kept: a 32-bit camera's top with a few hundred levels, fine detail on a
/// large offset) would give a result in a few coarse levels, with no error; an offset
/// subtracted first keeps the detail. Exact conversions (`moved` 0) always pass.
pub fn float32_precision_loss(lo: f64, hi: f64, moved: f64) -> Option<String> {
    let range = hi - lo;
    let magnitude = lo.abs().max(hi.abs());
    if range.is_nan() || range <= 0.0 || magnitude > f64::from(MAX_ABS_PIXEL) {
        // Constant, NaN, or beyond the pixel limit: check_input names those.
        return None;
    }
    if range < MIN_RANGE {
        // Subtracting an offset would not help (the values would still flush to one
        // level as 32-bit floats, which check_input then takes for a constant image).
        return Some(format!(
            "its values span only {range:.3e}, below {MIN_RANGE:e}, the least range \
             DenoiseKit computes with in 32-bit floats: scale the image first (NumPy: \
             (image - image.min()) / (image.max() - image.min()))"
        ));
    }
    (moved * 1024.0 > range).then(|| {
        format!(
            "its values reach {magnitude:.3e} over a range of only {range:.3e}: as 32-bit \
             floats, which DenoiseKit computes in, they move by up to {moved:.3e} ({:.1}% of \
             the range), and the result would lose its detail. Subtract an offset first \
             (Fiji: Process > Math > Subtract; NumPy: image - image.min())",
            100.0 * moved / range
        )
    })
}

/// The smallest non-zero intensity range accepted: below it, squared noise levels
/// underflow 32-bit floats (1.2e-38) and estimates become 0/0. A constant image (range 0)
/// is fine.
pub const MIN_RANGE: f64 = 1e-15;

/// Checks what every method needs: at least 2×2 pixels per plane, finite values no
/// larger in magnitude than [`MAX_ABS_PIXEL`], and an intensity range that is 0 or at
/// least [`MIN_RANGE`].
///
/// # Errors
/// [`DenoiseError::InvalidInput`] naming the first offending pixel (z, y, x) and value,
/// or the size that is too small.
pub fn check_input(v: &VolumeView<'_>) -> Result<()> {
    let s = Shape::of(v);
    if s.is_empty() {
        return Err(DenoiseError::invalid(format!(
            "the image is empty ({}x{}x{} pixels)",
            s.width, s.height, s.depth
        )));
    }
    if s.width < 2 || s.height < 2 {
        return Err(DenoiseError::invalid(format!(
            "the image is {}x{} pixels; denoising needs at least 2x2",
            s.width, s.height
        )));
    }
    // NaN fails the comparison too. A vectorised, parallel scan first (which also finds
    // the range); the slow indexed search only runs on failure.
    let usable = |p: f32| p.abs() <= MAX_ABS_PIXEL;
    // Eight independent lanes of plain comparisons and arithmetic: this vectorises, where
    // one chain of f32::min/max (whose NaN rule fixes the order) ran at one pixel per few
    // cycles and was the largest cost of tuning a fast method (it runs before every
    // trial). `p * 0` is NaN exactly for NaN and ±inf; the range bounds the rest.
    let scan = |c: &[f32]| {
        let (mut probe, mut lo, mut hi) = ([0.0f32; 8], [f32::MAX; 8], [f32::MIN; 8]);
        let mut lanes = c.chunks_exact(8);
        for ch in &mut lanes {
            for k in 0..8 {
                let p = ch[k];
                probe[k] += p * 0.0;
                lo[k] = if p < lo[k] { p } else { lo[k] };
                hi[k] = if p > hi[k] { p } else { hi[k] };
            }
        }
        for &p in lanes.remainder() {
            probe[0] += p * 0.0;
            lo[0] = if p < lo[0] { p } else { lo[0] };
            hi[0] = if p > hi[0] { p } else { hi[0] };
        }
        let lo = lo.into_iter().fold(f32::MAX, f32::min);
        let hi = hi.into_iter().fold(f32::MIN, f32::max);
        let ok = probe.iter().all(|&q| q == 0.0) && usable(lo) && usable(hi);
        (ok, lo, hi)
    };
    let join = |a: (bool, f32, f32), b: (bool, f32, f32)| (a.0 & b.0, a.1.min(b.1), a.2.max(b.2));
    let (all_usable, lo, hi) = match v.as_slice() {
        Some(px) => px
            .par_chunks(1 << 16)
            .map(scan)
            .reduce(|| (true, f32::MAX, f32::MIN), join),
        None => scan(&v.iter().copied().collect::<Vec<_>>()),
    };
    if all_usable {
        let range = f64::from(hi) - f64::from(lo);
        if range > 0.0 && range < MIN_RANGE {
            return Err(DenoiseError::invalid(format!(
                "the image's intensity range is {range:.2e}, below {MIN_RANGE:e}: 32-bit \
                 arithmetic cannot tell its noise from rounding (scale the image first)"
            )));
        }
        return Ok(());
    }
    if let Some(((z, y, x), val)) = v.indexed_iter().find(|(_, p)| !usable(**p)) {
        return Err(DenoiseError::invalid(if val.is_finite() {
            format!(
                "pixel (x={x}, y={y}, z={z}) is {val:e}; pixel values must lie within \
                 ±{MAX_ABS_PIXEL:e} (rescale the image first)"
            )
        } else {
            format!(
                "pixel (x={x}, y={y}, z={z}) is {val}; all pixels must be finite numbers: \
                 fill them first, for example with the background level"
            )
        }));
    }
    Ok(())
}

/// Minimum and maximum pixel value (`(0, 0)` for an empty view).
pub fn min_max(v: &VolumeView<'_>) -> (f32, f32) {
    let mut it = v.iter().copied();
    let Some(first) = it.next() else {
        return (0.0, 0.0);
    };
    it.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_values_are_refused_only_where_32_bit_floats_lose_their_detail() {
        // The error of converting x to f32, as the TIFF reader and Python measure it.
        let moved = |x: f64| (x - f64::from(x as f32)).abs();
        // A 32-bit camera near its top (spacing 256 there) with 315 levels of signal; an
        // offset of a million with detail of a tenth (spacing 1/16).
        let top = (0..316)
            .map(|i| moved(4.0e9 + 1.0 + f64::from(i)))
            .fold(0.0, f64::max);
        let lost = float32_precision_loss(4.0e9, 4.0e9 + 315.0, top).unwrap();
        assert!(lost.contains("move by up to 1.280e2"), "{lost}");
        assert!(float32_precision_loss(1e6, 1e6 + 0.1, moved(1e6 + 0.03)).is_some());
        // Exact conversions pass whatever the offset: integers below 2^24, float64 values
        // that were float32; and ordinary ranges keep 10 bits or more.
        for (lo, hi, m) in [
            (60000.0, 60003.0, 0.0),
            (1e6, 1e6 + 39.0, 0.0),
            (0.0, 0.1, moved(0.03)),
            (0.0, 65535.0, 0.0),
            (-1e9, 4.3e9, moved(4.3e9 - 1.0)),
            (1e6, 1e6 + 70.0, moved(1e6 + 0.03)),
        ] {
            assert_eq!(float32_precision_loss(lo, hi, m), None, "{lo}..{hi}");
        }
        // Constant, NaN and beyond the pixel limit are left to check_input.
        for (lo, hi) in [
            (5.0, 5.0),
            (f64::NAN, 1.0),
            (0.0, 3.4e38),
            (1e13, 1e13 + 1.0),
        ] {
            assert_eq!(float32_precision_loss(lo, hi, 1.0), None, "{lo}..{hi}");
        }
        // A range below 32-bit floats' reach needs scaling: an offset subtracted (the
        // advice before) would be refused again, and a float32 copy is flat, which
        // check_input would take for a constant image.
        for (lo, hi) in [(0.0, 1e-298), (1.0, 1.0 + 5e-16)] {
            let said = float32_precision_loss(lo, hi, 1e-16).unwrap_or_default();
            assert!(said.contains("scale the image first"), "{lo}..{hi}: {said}");
        }
    }

    #[test]
    fn every_bad_pixel_is_found_wherever_it_lies() {
        // The scan runs in lanes of eight plus a remainder: try every position of sizes
        // that fill neither, and every kind of unusable value.
        for (h, w) in [(2, 3), (3, 5), (8, 9), (5, 13)] {
            let n = h * w;
            let good = Volume::from_shape_fn((1, h, w), |(_, y, x)| (y * w + x) as f32 - 7.5);
            assert!(check_input(&good.view()).is_ok());
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 2e12, -2e12] {
                for i in 0..n {
                    let mut img = good.clone();
                    img[(0, i / w, i % w)] = bad;
                    let e = check_input(&img.view()).unwrap_err().to_string();
                    let at = format!("pixel (x={}, y={}, z=0)", i % w, i / w);
                    assert!(e.contains(&at), "{bad} at {i} of {h}x{w}: {e}");
                }
            }
        }
        let flat = Volume::from_elem((1, 3, 5), -0.0);
        assert!(check_input(&flat.view()).is_ok());
    }
}
