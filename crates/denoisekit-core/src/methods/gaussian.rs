//! Gaussian smoothing, separable in x, y and z.
//!
//! The fastest and most predictable denoiser: every pixel becomes a weighted mean of its
//! neighbourhood, so noise drops by a factor ~1/(2σ√π) per axis, and so does resolution.
//! Pick it for a quick look, before a segmentation threshold, or when structures are much
//! larger than σ. For detail-preserving denoising use `bilateral` or `nl_means`.
//!
//! Cost: O(N · r) with r = ⌈4σ⌉ taps per axis (three 1D passes).
//! Truncation: the kernel is cut at 4σ (scikit-image's `truncate=4.0`, OpenCV's float
//! kernel size for σ ≥ 0.8) and renormalised to sum 1, so the mean intensity is kept.
//! Border: the `border` parameter ([`BorderMode`]), replicate by default, as in ImageJ.
//! Planes: `sigma_z = 0` blurs each plane on its own (time series, thick sections);
//! for a true 3D blur on anisotropic voxels use `sigma_z = sigma · (xy pixel / z step)`.
//!
//! # References
//! T. Lindeberg, "Scale-space theory in computer vision", Springer 1994,
//! doi:10.1007/978-1-4757-6465-9.

use crate::border::BorderMode;
use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, MethodDescriptor, MethodKind, ParamSpec, Resolved, Unit,
};
use crate::error::Result;
use crate::descriptor::Memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::Array3;
use rayon::prelude::*;

/// Kernel half-width in units of σ.
pub const TRUNCATE: f64 = 4.0;

crate::method_params! {
    /// Parameters of [`denoise_gaussian`].
    pub struct GaussianParams {
        /// Standard deviation in x and y, in pixels. Larger = smoother; 0 leaves planes
        /// unblurred.
        sigma: f64 = ParamSpec::float("Sigma (xy)", 0.0, 50.0, DefaultValue::Fixed(1.5))
            .unit(Unit::Pixels).tunable(),
        /// Standard deviation across planes, in planes. 0 blurs each plane on its own;
        /// ignored for single images.
        sigma_z: f64 = ParamSpec::float("Sigma (z)", 0.0, 50.0, DefaultValue::Fixed(0.0)).three_d(crate::descriptor::ParamValue::Float(1.0))
            .unit(Unit::Pixels),
        /// What lies beyond the image edge: replicate (ImageJ), symmetric, reflect
        /// (OpenCV), periodic or zero.
        border: BorderMode = ParamSpec::choice("Border", BorderMode::NAMES, "replicate"),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "gaussian",
    name: "Gaussian",
    category: "Smoothing",
    summary: "Separable Gaussian blur in 2D or 3D. Fast and predictable, but it blurs edges \
              as much as noise: use it for a quick look or for large structures.",
    references: &[
        "T. Lindeberg, Scale-space theory in computer vision, Springer 1994, \
                   doi:10.1007/978-1-4757-6465-9",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: GaussianParams::SPECS,
    images: &[],
    gpu_tolerance: Some(1e-5),
    identity: &[("sigma", "0"), ("sigma_z", "0")],
    quick: &[],
    support,
    memory: Memory {
        volume: 2.0,
        plane: 0.25,
    },
    memory_for: None,
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

fn support(r: &Resolved) -> Result<[usize; 3]> {
    let p = GaussianParams::from_resolved(r)?;
    let reach = |s: f64| {
        if s > 0.0 {
            gaussian_kernel(s).len() / 2
        } else {
            0
        }
    };
    Ok([reach(p.sigma_z), reach(p.sigma), reach(p.sigma)])
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    denoise_gaussian(v, &GaussianParams::from_resolved(r)?, ctl)
}

/// The blur's separable kernels for a stack of some depth: the one derivation that the
/// CPU kernel and the GPU host both run.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernels {
    /// The kernel along x and y, or `None` for no blur in the plane.
    pub xy: Option<Vec<f32>>,
    /// The kernel along z, or `None` for no blur across planes (always on one plane).
    pub z: Option<Vec<f32>>,
}

/// The kernels for a stack of `depth` planes.
pub fn kernels(p: &GaussianParams, depth: usize) -> Kernels {
    let sz = if depth > 1 { p.sigma_z } else { 0.0 };
    Kernels {
        xy: (p.sigma > 0.0).then(|| gaussian_kernel(p.sigma)),
        z: (sz > 0.0).then(|| gaussian_kernel(sz)),
    }
}

/// The normalised 1D kernel for `sigma` (> 0): `2⌈4σ⌉ + 1` taps.
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let r = (TRUNCATE * sigma).ceil().max(1.0) as isize;
    // The centre tap is 1 even when 2σ² underflows to 0 for absurdly small sigma.
    let k: Vec<f64> = (-r..=r)
        .map(|i| {
            if i == 0 {
                1.0
            } else {
                (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()
            }
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.iter().map(|x| (x / s) as f32).collect()
}

/// Blurs `input` with a Gaussian of standard deviation `sigma` in x/y and `sigma_z` in z.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`] for a parameter outside its range,
/// [`crate::DenoiseError::InvalidInput`] for an empty, tiny or non-finite image,
/// [`crate::DenoiseError::Cancelled`] if `ctl` was cancelled.
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_gaussian, BorderMode, Control, GaussianParams};
/// use ndarray::Array3;
/// let mut img = Array3::<f32>::zeros((1, 7, 7));
/// img[(0, 3, 3)] = 9.0;
/// let p = GaussianParams { sigma: 0.5, sigma_z: 0.0, border: BorderMode::Zero };
/// let out = denoise_gaussian(img.view(), &p, &Control::new()).unwrap();
/// // The spike spreads out (the kernel reaches ⌈4σ⌉ = 2 pixels) but its total is kept.
/// assert!(out[(0, 3, 3)] < 9.0 && out[(0, 3, 1)] > 0.0 && out[(0, 3, 0)] == 0.0);
/// assert!((out.sum() - 9.0).abs() < 1e-3 * 9.0);
/// ```
pub fn denoise_gaussian(
    input: VolumeView<'_>,
    p: &GaussianParams,
    ctl: &Control,
) -> Result<Volume> {
    p.validate()?;
    check_input(&input)?;
    let s = Shape::of(&input);
    let k = kernels(p, s.depth);
    let mut out = match &k.xy {
        Some(kxy) => blur_xy(&input, kxy, p.border, ctl)?,
        // `convolve` below needs standard layout, whatever the caller's strides.
        None => input.as_standard_layout().into_owned(),
    };
    if let Some(kz) = &k.z {
        ctl.checkpoint()?;
        let mut z = Array3::<f32>::zeros((s.depth, s.height, s.width));
        convolve(&out, &mut z, Axis::Z, kz, p.border);
        out = z;
    }
    ctl.checkpoint()?;
    Ok(out)
}

/// Rows per band of the fused x/y pass: the band's row-filtered copy stays in cache.
const BAND: usize = 64;

/// The x and y passes fused per band of rows: each band filters its rows (plus a halo of
/// `r` rows, resolved by the border rule) along x into a small buffer, then along y into
/// the output, so no full-size intermediate image is written.
fn blur_xy(input: &VolumeView<'_>, k: &[f32], border: BorderMode, ctl: &Control) -> Result<Volume> {
    let mut out = Array3::<f32>::zeros(input.dim());
    blur_xy_into(input, k, border, &mut out, ctl)?;
    Ok(out)
}

/// [`blur_xy`] into an existing standard-layout volume of the input's shape (iterative
/// methods blur twice per iteration; fresh multi-megabyte outputs cost page faults).
fn blur_xy_into(
    input: &VolumeView<'_>,
    k: &[f32],
    border: BorderMode,
    out: &mut Volume,
    ctl: &Control,
) -> Result<()> {
    let (d, h, w) = input.dim();
    let r = k.len() / 2;
    let src = input.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let src = src.as_slice().unwrap_or(&[]);
    assert_eq!(
        out.dim(),
        (d, h, w),
        "blur_xy_into needs an output of the input's shape"
    );
    // Invariant: callers pass owned standard-layout arrays.
    let dst = out.as_slice_mut().unwrap_or(&mut []);
    let mut bands: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (z, plane) in dst.chunks_mut(h * w).enumerate() {
        for (b, band) in plane.chunks_mut(BAND * w).enumerate() {
            bands.push((z, b * BAND, band));
        }
    }
    let total = bands.len() as u64;
    bands.into_par_iter().try_for_each(|(z, y0, band)| {
        crate::simd::with_scratch(w + 2 * r + (BAND + 2 * r) * w, |scratch| {
            let (pad, tmp) = scratch.split_at_mut(w + 2 * r);
            let bh = band.len() / w;
            let plane = &src[z * h * w..][..h * w];
            for j in 0..bh + 2 * r {
                let row = &mut tmp[j * w..][..w];
                match border.index(y0 as isize + j as isize - r as isize, h) {
                    Some(y) => filter_row(&plane[y * w..][..w], pad, row, k, border),
                    None => row.fill(0.0),
                }
            }
            for (j, o) in band.chunks_mut(w).enumerate() {
                filter_column_band(&tmp[j * w..(j + 2 * r + 1) * w], w, k, o);
            }
        });
        ctl.advance(1, total)
    })?;
    Ok(())
}

/// A 2D Gaussian blur (x and y only) of `input` into `out`, reusing its memory.
///
/// # Errors
/// [`crate::DenoiseError::Cancelled`].
pub(crate) fn blur_plane_into(
    input: &VolumeView<'_>,
    sigma: f64,
    border: BorderMode,
    out: &mut Volume,
    ctl: &Control,
) -> Result<()> {
    blur_xy_into(input, &gaussian_kernel(sigma), border, out, ctl)
}

/// Output pixels computed together, held in registers across all taps.
const LANES: usize = 16;

/// `out[i] = k[r]·c[i] + Σ_{t<r} k[t]·(lo_t[i] + hi_t[i])` for one block of `LANES`,
/// where `tap(t)` returns the two input blocks at distance `r - t` on either side and
/// `tap(r)` the centre block. Accumulating in a fixed-size array lets the compiler keep
/// the block in vector registers instead of re-reading the output once per tap.
#[inline(always)]
fn symmetric_block<'a>(
    k: &[f32],
    out: &mut [f32; LANES],
    tap: impl Fn(usize) -> (&'a [f32; LANES], &'a [f32; LANES]),
) {
    let r = k.len() / 2;
    let (c, _) = tap(r);
    let mut acc = [0.0f32; LANES];
    for i in 0..LANES {
        acc[i] = k[r] * c[i];
    }
    for (t, &kt) in k.iter().enumerate().take(r) {
        let (lo, hi) = tap(t);
        for i in 0..LANES {
            acc[i] += kt * (lo[i] + hi[i]);
        }
    }
    *out = acc;
}

fn block(s: &[f32], at: usize) -> &[f32; LANES] {
    // Invariant: callers pass `at + LANES <= s.len()`; the conversion then cannot fail.
    s[at..at + LANES].try_into().unwrap_or(&[0.0; LANES])
}

crate::simd_dispatch! {
    /// One row filtered along x with the symmetric kernel `k`, borders from `border`.
    fn filter_row(row: &[f32], pad: &mut [f32], out: &mut [f32], k: &[f32], border: BorderMode) {
        let w = row.len();
        let r = k.len() / 2;
        pad[r..r + w].copy_from_slice(row);
        for i in (0..r).chain(r + w..w + 2 * r) {
            pad[i] = border.index(i as isize - r as isize, w).map_or(0.0, |j| row[j]);
        }
        let pad = &pad[..w + 2 * r];
        let full = w / LANES * LANES;
        for (bi, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
            let x = bi * LANES;
            let o: &mut [f32; LANES] = o.try_into().unwrap_or_else(|_| unreachable!());
            symmetric_block(k, o, |t| (block(pad, x + t), block(pad, x + 2 * r - t)));
        }
        for x in full..w {
            let mut acc = k[r] * pad[x + r];
            for t in 0..r {
                acc += k[t] * (pad[x + t] + pad[x + 2 * r - t]);
            }
            out[x] = acc;
        }
    }
}

crate::simd_dispatch! {
    /// One output row from `2r + 1` consecutive row-filtered rows (`rows`, each `w` long).
    fn filter_column_band(rows: &[f32], w: usize, k: &[f32], out: &mut [f32]) {
        let r = k.len() / 2;
        let full = w / LANES * LANES;
        for (bi, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
            let x = bi * LANES;
            let o: &mut [f32; LANES] = o.try_into().unwrap_or_else(|_| unreachable!());
            symmetric_block(k, o, |t| (block(rows, t * w + x), block(rows, (2 * r - t) * w + x)));
        }
        for x in full..w {
            let mut acc = k[r] * rows[r * w + x];
            for t in 0..r {
                acc += k[t] * (rows[t * w + x] + rows[(2 * r - t) * w + x]);
            }
            out[x] = acc;
        }
    }
}

/// One axis of a (z, y, x) volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Columns (contiguous).
    X,
    /// Rows.
    Y,
    /// Planes.
    Z,
}

/// Correlates every line of `src` along `axis` with the odd-length kernel `k` (centre in
/// the middle), writing into `dst` of the same shape. Both must be in standard layout.
pub fn convolve(src: &Volume, dst: &mut Volume, axis: Axis, k: &[f32], border: BorderMode) {
    let (d, h, w) = src.dim();
    let r = k.len() / 2;
    // Invariant: both arrays are freshly built in standard layout by the callers.
    let (Some(src), Some(dst)) = (src.as_slice(), dst.as_slice_mut()) else {
        unreachable!("convolve needs standard-layout volumes")
    };
    match axis {
        Axis::X => dst
            .par_chunks_mut(w)
            .zip(src.par_chunks(w))
            .with_min_len(16)
            .for_each_init(
                || vec![0.0f32; w + 2 * r],
                |pad, (out, row)| {
                    pad[r..r + w].copy_from_slice(row);
                    for i in (0..r).chain(r + w..w + 2 * r) {
                        pad[i] = border
                            .index(i as isize - r as isize, w)
                            .map_or(0.0, |j| row[j]);
                    }
                    out.fill(0.0);
                    for (t, &kt) in k.iter().enumerate() {
                        for (o, &v) in out.iter_mut().zip(&pad[t..t + w]) {
                            *o += kt * v;
                        }
                    }
                },
            ),
        Axis::Y | Axis::Z => {
            // Lines run across rows (stride w) or planes (stride h*w); each output row is
            // a weighted sum of whole input rows, which vectorises along x.
            let (n, inner) = if axis == Axis::Y { (h, w) } else { (d, h * w) };
            dst.par_chunks_mut(w)
                .enumerate()
                .with_min_len(8)
                .for_each(|(c, out)| {
                    let off = c * w;
                    let o = off / (n * inner);
                    let i = (off % (n * inner)) / inner;
                    let j = off % inner;
                    out.fill(0.0);
                    for (t, &kt) in k.iter().enumerate() {
                        let Some(ii) = border.index(i as isize + t as isize - r as isize, n) else {
                            continue;
                        };
                        let base = o * n * inner + ii * inner + j;
                        for (ov, &v) in out.iter_mut().zip(&src[base..base + w]) {
                            *ov += kt * v;
                        }
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        for s in [0.3, 1.0, 1.5, 7.0] {
            let k = gaussian_kernel(s);
            assert_eq!(k.len(), 2 * (4.0 * s).ceil().max(1.0) as usize + 1);
            assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            for i in 0..k.len() {
                assert_eq!(k[i], k[k.len() - 1 - i]);
            }
        }
    }

    #[test]
    fn each_axis_matches_a_direct_sum() {
        let v = Volume::from_shape_fn((4, 5, 6), |(z, y, x)| {
            ((z * 31 + y * 7 + x * 3) % 11) as f32
        });
        let k = [0.25f32, 0.5, 0.25];
        for (axis, border) in [
            (Axis::X, BorderMode::Replicate),
            (Axis::Y, BorderMode::Reflect),
            (Axis::Z, BorderMode::Zero),
        ] {
            let mut out = Volume::zeros(v.dim());
            convolve(&v, &mut out, axis, &k, border);
            for ((z, y, x), o) in out.indexed_iter() {
                let mut e = 0.0;
                for (t, kt) in k.iter().enumerate() {
                    let off = t as isize - 1;
                    let (zz, yy, xx) = match axis {
                        Axis::X => (Some(z), Some(y), border.index(x as isize + off, 6)),
                        Axis::Y => (Some(z), border.index(y as isize + off, 5), Some(x)),
                        Axis::Z => (border.index(z as isize + off, 4), Some(y), Some(x)),
                    };
                    if let (Some(zz), Some(yy), Some(xx)) = (zz, yy, xx) {
                        e += kt * v[(zz, yy, xx)];
                    }
                }
                assert!((o - e).abs() < 1e-5, "{axis:?} at {z},{y},{x}: {o} vs {e}");
            }
        }
    }
}
