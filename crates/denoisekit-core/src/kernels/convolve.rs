//! Convolution with a sampled kernel (a measured PSF) through the FFT.
//!
//! The image is mirrored beyond its borders (the `symmetric` rule, as the optical PSFs of
//! [`crate::spectral`] use) by at least the kernel's reach on each side, so the circular
//! convolution of the padded block equals the linear convolution of the mirrored image
//! inside it. Padded lengths are rounded up to products of 2, 3, 5 and 7, where the FFT is
//! fast. The kernel's centre is the sample at `size / 2` on each axis (scipy.ndimage's
//! and scikit-image's convention), so a kernel of even size shifts by half a pixel the
//! way theirs does.
//!
//! A kernel of one plane convolves each plane of a stack on its own; a kernel of several
//! planes couples them. The adjoint (Richardson–Lucy's `Kᵀ`) is the exact transpose of
//! "mirror, convolve, crop": embed in zeros, correlate (the conjugate transfer
//! function), and add every mirrored position back onto the sample it mirrors. For a
//! kernel even along each axis the operator is a symmetric matrix and `Kᵀ = K`.
//!
//! Working memory: the kernel's spectrum, one block's spectrum, the columns being
//! transformed and the adjoint's real-space block, each about as large as the padded
//! image (or plane) in `f32`, kept between calls.

use crate::control::Control;
use crate::error::{DenoiseError, Result};
use crate::spectral::C32;
use crate::volume::{Volume, VolumeView};
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use std::sync::{Arc, Mutex};

/// The smallest length `≥ n` whose only prime factors are 2, 3, 5 and 7.
pub fn fast_len(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut r = m;
        for p in [2, 3, 5, 7] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}

/// Padding, padded length and (for the transformed axes) the FFTs of one axis.
struct Axis {
    /// Image samples along the axis.
    n: usize,
    /// Mirrored samples added before (and at least as many after) the image.
    pad: usize,
    /// Padded length: the transform's.
    len: usize,
    /// The image sample each padded position mirrors.
    source: Vec<usize>,
    /// For each image sample, the padded positions within the kernel's reach
    /// (`0..n + 2 pad`) that mirror it: what the adjoint folds back onto it.
    targets: Vec<Vec<usize>>,
}

impl Axis {
    fn new(n: usize, kernel: usize) -> Self {
        // The kernel reaches `size / 2` samples one way and `(size - 1) / 2` the other.
        let pad = kernel / 2;
        let len = if kernel > 1 { fast_len(n + 2 * pad) } else { n };
        let source = (0..len)
            .map(|i| {
                crate::BorderMode::Symmetric
                    .index(i as isize - pad as isize, n)
                    .unwrap_or(0)
            })
            .collect::<Vec<usize>>();
        let mut targets = vec![Vec::new(); n];
        for (p, &i) in source.iter().enumerate().take(n + 2 * pad) {
            targets[i].push(p);
        }
        Self {
            n,
            pad,
            len,
            source,
            targets,
        }
    }
}

/// One axis of a [`Convolver`]: what a device needs to pad, crop and fold as it does.
#[derive(Debug, Clone, Copy)]
pub struct AxisLayout<'a> {
    /// Image samples along the axis.
    pub n: usize,
    /// Mirrored samples before the image in the padded block.
    pub pad: usize,
    /// Padded length (the transform's; its prime factors are at most 7).
    pub len: usize,
    /// The image sample each padded position mirrors (`len` of them).
    pub source: &'a [usize],
    /// For each image sample, the padded positions that mirror it (the adjoint's fold).
    pub targets: &'a [Vec<usize>],
}

/// Complex samples [`fft_columns`] gathers per task (64 KiB): enough neighbouring columns
/// that rows move in runs of several cache lines, few enough to stay in the core's cache.
const GATHER: usize = 8192;

/// Transforms every column of `a`, which holds `outer` blocks of `len x inner` samples
/// (row-major), in place. Columns are gathered in groups of neighbours (8 to 64, so that
/// a group holds about [`GATHER`] samples) into a small buffer, transformed there, and written back row by row through `t`, so that
/// both passes move memory in runs instead of one sample per cache line (a plain
/// transpose of a whole stack read each line of it several times over).
fn fft_columns(
    a: &mut [C32],
    (outer, len, inner): (usize, usize, usize),
    fft: &dyn Fft<f32>,
    t: &mut Vec<C32>,
) {
    let group = (GATHER / len.max(1)).clamp(8, 64);
    let groups = inner.div_ceil(group);
    let size = outer * groups * len * group;
    if t.len() < size {
        t.resize(size, C32::default());
    }
    let from: &[C32] = a;
    t[..size]
        .par_chunks_mut(len * group)
        .enumerate()
        .for_each_init(
            || {
                (
                    vec![C32::default(); len * group],
                    vec![C32::default(); fft.get_inplace_scratch_len()],
                )
            },
            |(lines, scratch), (g, chunk)| {
                let (o, x0) = (g / groups, (g % groups) * group);
                let width = group.min(inner - x0);
                let base = o * len * inner + x0;
                for i in 0..len {
                    for (b, &v) in from[base + i * inner..][..width].iter().enumerate() {
                        lines[b * len + i] = v;
                    }
                }
                for line in lines.chunks_mut(len).take(width) {
                    fft.process_with_scratch(line, scratch);
                }
                for i in 0..len {
                    for b in 0..width {
                        chunk[i * group + b] = lines[b * len + i];
                    }
                }
            },
        );
    let t: &[C32] = t;
    a.par_chunks_mut(inner).enumerate().for_each(|(r, row)| {
        let (o, i) = (r / len, r % len);
        for c in 0..groups {
            let x0 = c * group;
            let width = group.min(inner - x0);
            row[x0..x0 + width]
                .copy_from_slice(&t[((o * groups + c) * len + i) * group..][..width]);
        }
    });
}

/// Buffers reused by every [`Convolver::apply_into`] call: fresh multi-megabyte
/// allocations are page-faulted in each time, which cost as much as the transforms.
#[derive(Default)]
struct Work {
    spec: Vec<C32>,
    columns: Vec<C32>,
    /// The adjoint's padded result in real space, before folding.
    real: Vec<f32>,
}

/// A kernel's transfer function for one image shape, ready to convolve images of it.
pub struct Convolver {
    axes: [Axis; 3],
    /// Whether the kernel spans planes (the z axis is transformed).
    use_z: bool,
    /// Whether the kernel equals its mirror image: then the operator is a symmetric
    /// matrix and its adjoint is the correlation of the mirrored image, like itself.
    symmetric: bool,
    /// The kernel's spectrum, scaled by the inverse transforms' `1 / N`; shape
    /// `(len_z, len_y, len_x / 2 + 1)` (len_z = depth when planes are independent).
    otf: Vec<C32>,
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    /// Forward and inverse FFTs across rows, then across planes.
    y: [Arc<dyn Fft<f32>>; 2],
    z: [Arc<dyn Fft<f32>>; 2],
    work: Mutex<Work>,
}

impl Convolver {
    /// The convolver of `kernel` (used as it is: normalise it first if it should keep
    /// the flux) for images of `dims` = (depth, height, width).
    ///
    /// # Errors
    /// [`DenoiseError::InvalidInput`] when the kernel spans planes but the image is one
    /// plane.
    pub fn new(kernel: &VolumeView<'_>, dims: (usize, usize, usize)) -> Result<Self> {
        let (kd, kh, kw) = kernel.dim();
        let (d, h, w) = dims;
        if kd > 1 && d == 1 {
            return Err(DenoiseError::invalid(format!(
                "the kernel has {kd} planes but the image is a single plane: give a \
                 single-plane kernel"
            )));
        }
        let axes = [Axis::new(d, kd), Axis::new(h, kh), Axis::new(w, kw)];
        let use_z = kd > 1;
        let mut real = RealFftPlanner::<f32>::new();
        let mut planner = FftPlanner::<f32>::new();
        // Even along each axis on its own about its centre sample (size / 2): then the
        // DCT diagonalises the mirrored operator, which makes it a symmetric matrix. Point
        // symmetry is not enough in 2D and 3D, and an even-sized kernel never qualifies,
        // since its mirror image is centred half a sample away.
        let odd = kd % 2 == 1 && kh % 2 == 1 && kw % 2 == 1;
        let symmetric = odd
            && kernel.indexed_iter().all(|((z, y, x), &v)| {
                v == kernel[(kd - 1 - z, y, x)]
                    && v == kernel[(z, kh - 1 - y, x)]
                    && v == kernel[(z, y, kw - 1 - x)]
            });
        let mut c = Self {
            use_z,
            symmetric,
            otf: Vec::new(),
            r2c: real.plan_fft_forward(axes[2].len),
            c2r: real.plan_fft_inverse(axes[2].len),
            y: [
                planner.plan_fft_forward(axes[1].len),
                planner.plan_fft_inverse(axes[1].len),
            ],
            z: [
                planner.plan_fft_forward(axes[0].len),
                planner.plan_fft_inverse(axes[0].len),
            ],
            axes,
            work: Mutex::new(Work::default()),
        };
        let [ly, lx] = [c.axes[1].len, c.axes[2].len];
        let placed = c.wrapped(kernel);
        let planes = c.block_planes();
        let mut otf = Vec::new();
        c.forward(planes, &mut otf, &mut Vec::new(), |z, y, row| {
            row.copy_from_slice(&placed[(z * ly + y) * lx..][..lx]);
        });
        let scale = 1.0 / (lx * ly * planes) as f32;
        otf.par_iter_mut().for_each(|v| *v *= scale);
        c.otf = otf;
        Ok(c)
    }

    /// Whether the kernel equals its mirror image (then `Kᵀ = K`).
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Whether the kernel spans planes: the block transformed is then the whole padded
    /// stack, otherwise each plane on its own.
    pub fn couples_planes(&self) -> bool {
        self.use_z
    }

    /// Planes in one transformed block: the padded depth, or 1.
    pub fn block_planes(&self) -> usize {
        if self.use_z { self.axes[0].len } else { 1 }
    }

    /// How axis `a` (0 = z, 1 = y, 2 = x) is padded and folded, for a device that
    /// convolves as this does.
    pub fn axis(&self, a: usize) -> AxisLayout<'_> {
        let ax = &self.axes[a];
        AxisLayout {
            n: ax.n,
            pad: ax.pad,
            len: ax.len,
            source: &ax.source,
            targets: &ax.targets,
        }
    }

    /// `kernel` (the one this convolver was built from) wrapped around the origin of one
    /// block, its centre sample at index 0: the block whose spectrum is the transfer
    /// function, `block_planes x len_y x len_x`, (z, y, x) order.
    pub fn wrapped(&self, kernel: &VolumeView<'_>) -> Vec<f32> {
        let (kd, kh, kw) = kernel.dim();
        let [lz, ly, lx] = [self.axes[0].len, self.axes[1].len, self.axes[2].len];
        let mut placed = vec![0.0f32; self.block_planes() * ly * lx];
        for ((z, y, x), &v) in kernel.indexed_iter() {
            let wrap = |i: usize, k: usize, len: usize| (i + len - k / 2) % len;
            let zz = if self.use_z { wrap(z, kd, lz) } else { 0 };
            placed[(zz * ly + wrap(y, kh, ly)) * lx + wrap(x, kw, lx)] = v;
        }
        placed
    }

    /// Complex samples per row of a spectrum.
    fn half(&self) -> usize {
        self.axes[2].len / 2 + 1
    }

    /// Into `spec`: the spectrum of a `planes x len_y x len_x` block whose rows
    /// `fill(z, y, row)` writes.
    fn forward(
        &self,
        planes: usize,
        spec: &mut Vec<C32>,
        columns: &mut Vec<C32>,
        fill: impl Fn(usize, usize, &mut [f32]) + Sync,
    ) {
        let (ly, lx, half) = (self.axes[1].len, self.axes[2].len, self.half());
        // Every sample is written below: a reused buffer needs no clearing.
        spec.resize(planes * ly * half, C32::default());
        spec.par_chunks_mut(half).enumerate().for_each_init(
            || (vec![0.0f32; lx], self.r2c.make_scratch_vec()),
            |(row, scratch), (i, out)| {
                fill(i / ly, i % ly, row);
                // Lengths match by construction: the plan is for `lx`.
                let _ = self.r2c.process_with_scratch(row, out, scratch);
            },
        );
        fft_columns(spec, (planes, ly, half), &*self.y[0], columns);
        if self.use_z {
            fft_columns(spec, (1, planes, ly * half), &*self.z[0], columns);
        }
    }

    /// `K u` (or `Kᵀ u` when `adjoint`) into `out`, both of the image's shape (`out` in
    /// standard layout, as a fresh volume is).
    ///
    /// `K` is "mirror the image, convolve, keep the image's part". Its exact transpose
    /// is "embed in zeros, correlate, add each mirrored position back onto the sample it
    /// mirrors": that is what `adjoint` computes, except for a symmetric kernel, whose
    /// operator is a symmetric matrix (`Kᵀ = K`, taken the cheaper way).
    ///
    /// # Errors
    /// [`DenoiseError::Cancelled`].
    pub fn apply_into(
        &self,
        u: &Volume,
        adjoint: bool,
        out: &mut Volume,
        ctl: &Control,
    ) -> Result<()> {
        let fold = adjoint && !self.symmetric;
        let [az, ay, ax] = &self.axes;
        let (ly, lx, half) = (ay.len, ax.len, self.half());
        let (d, h, w) = (az.n, ay.n, ax.n);
        // Without z coupling every plane is its own block against the same plane spectrum.
        let blocks: Vec<(usize, usize)> = if self.use_z {
            vec![(0, az.len)]
        } else {
            (0..d).map(|z| (z, 1)).collect()
        };
        let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
        let Work {
            spec,
            columns,
            real,
        } = &mut *work;
        for (z0, planes) in blocks {
            ctl.checkpoint()?;
            self.forward(planes, spec, columns, |z, y, row| {
                let zi = if self.use_z { az.source[z] } else { z0 };
                let line = u.slice(ndarray::s![zi, ay.source[y], ..]);
                if !fold {
                    for (r, &x) in row.iter_mut().zip(&ax.source) {
                        *r = line[x];
                    }
                    return;
                }
                row.fill(0.0);
                let inside_z = !self.use_z || (az.pad..az.pad + d).contains(&z);
                if inside_z && (ay.pad..ay.pad + h).contains(&y) {
                    for (r, &v) in row[ax.pad..ax.pad + w].iter_mut().zip(line) {
                        *r = v;
                    }
                }
            });
            let otf_plane = ly * half;
            spec.par_chunks_mut(otf_plane)
                .zip(self.otf.par_chunks(otf_plane))
                .for_each(|(s, k)| {
                    for (s, k) in s.iter_mut().zip(k) {
                        *s *= if adjoint { k.conj() } else { *k };
                    }
                });
            if self.use_z {
                fft_columns(spec, (1, planes, ly * half), &*self.z[1], columns);
            }
            // Back to real space: the planes and rows inside the image, or, to fold, every
            // one within the kernel's reach.
            let (z_range, y_range) = match (self.use_z, fold) {
                (false, false) => (0..1, ay.pad..ay.pad + h),
                (false, true) => (0..1, 0..h + 2 * ay.pad),
                (true, false) => (az.pad..az.pad + d, ay.pad..ay.pad + h),
                (true, true) => (0..d + 2 * az.pad, 0..h + 2 * ay.pad),
            };
            let sub = &mut spec[z_range.start * ly * half..z_range.end * ly * half];
            fft_columns(sub, (z_range.len(), ly, half), &*self.y[1], columns);
            let sub: &[C32] = sub;
            let (nz, ny) = (z_range.len(), y_range.len());
            // One real row per (plane, row) of the ranges, in parallel.
            let inverse =
                |i: usize, row: &mut [f32], scratch: &mut Vec<C32>, buf: &mut Vec<C32>| {
                    let at = ((i / ny) * ly + y_range.start + i % ny) * half;
                    buf.copy_from_slice(&sub[at..at + half]);
                    // A real signal's spectrum: these are real up to rounding.
                    buf[0].im = 0.0;
                    if lx.is_multiple_of(2) {
                        buf[half - 1].im = 0.0;
                    }
                    let _ = self.c2r.process_with_scratch(buf, row, scratch);
                };
            let init = || (self.c2r.make_scratch_vec(), vec![C32::default(); half]);
            let first_plane = if self.use_z { 0 } else { z0 };
            let n_planes = if self.use_z { d } else { 1 };
            let out_rows = &mut out.as_slice_mut().expect("a fresh volume")
                [first_plane * h * w..(first_plane + n_planes) * h * w];
            if !fold {
                out_rows.par_chunks_mut(w).enumerate().for_each_init(
                    || (vec![0.0f32; lx], init()),
                    |(row, (scratch, buf)), (i, o)| {
                        inverse(i, row, scratch, buf);
                        o.copy_from_slice(&row[ax.pad..ax.pad + w]);
                    },
                );
                continue;
            }
            real.resize(nz * ny * lx, 0.0);
            real.par_chunks_mut(lx)
                .enumerate()
                .for_each_init(init, |(scratch, buf), (i, row)| {
                    inverse(i, row, scratch, buf)
                });
            let real: &[f32] = real;
            out_rows.par_chunks_mut(w).enumerate().for_each(|(i, o)| {
                let (zi, yi) = (first_plane + i / h, i % h);
                let zs: &[usize] = if self.use_z { &az.targets[zi] } else { &[0] };
                o.fill(0.0);
                for &zp in zs {
                    for &yp in &ay.targets[yi] {
                        let row = &real[(zp * ny + yp) * lx..][..lx];
                        for (x, o) in o.iter_mut().enumerate() {
                            for &xp in &ax.targets[x] {
                                *o += row[xp];
                            }
                        }
                    }
                }
            });
        }
        Ok(())
    }

    /// Floats the convolver keeps plus those one [`Convolver::apply_into`] call needs at
    /// its peak, in units of the image's voxel count.
    pub fn memory_ratio(kernel: (usize, usize, usize), dims: (usize, usize, usize)) -> f32 {
        let (d, h, w) = dims;
        let [az, ay, ax] = [
            Axis::new(d, kernel.0),
            Axis::new(h, kernel.1),
            Axis::new(w, kernel.2),
        ];
        let planes = if kernel.0 > 1 { az.len } else { 1 };
        // One spectrum (2 floats per complex sample, half a row of them) per block.
        let block = (planes * ay.len * (ax.len / 2 + 1) * 2) as f32;
        let image = (d * h * w).max(1) as f32;
        // The kernel's spectrum, the block's, the gathered columns and the adjoint's
        // real-space block.
        (4.0 * block) / image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// The convolution of the mirrored image, summed directly in f64.
    fn direct(u: &Volume, k: &Volume) -> Volume {
        let (d, h, w) = u.dim();
        let (kd, kh, kw) = k.dim();
        let sym = |i: isize, n: usize| crate::BorderMode::Symmetric.index(i, n).unwrap();
        Array3::from_shape_fn((d, h, w), |(z, y, x)| {
            let mut s = 0.0f64;
            for ((a, b, c), &kv) in k.indexed_iter() {
                let off = |i: usize, m: usize| i as isize - (m / 2) as isize;
                let (oz, oy, ox) = (-off(a, kd), -off(b, kh), -off(c, kw));
                let v = u[(
                    sym(z as isize + oz, d),
                    sym(y as isize + oy, h),
                    sym(x as isize + ox, w),
                )];
                s += f64::from(kv) * f64::from(v);
            }
            s as f32
        })
    }

    fn noise(dims: (usize, usize, usize), seed: u64) -> Volume {
        let mut s = seed;
        Array3::from_shape_fn(dims, |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
    }

    #[test]
    fn fast_lengths_have_small_factors() {
        assert_eq!(fast_len(1), 1);
        assert_eq!(fast_len(11), 12);
        assert_eq!(fast_len(270), 270);
        assert_eq!(fast_len(271), 280);
    }

    /// Kernel shapes: odd and even sizes, planes alone and coupled, as large as the image,
    /// and larger than it (mirrored more than once).
    type Dims = (usize, usize, usize);

    const CASES: [(Dims, Dims); 5] = [
        ((1, 13, 17), (1, 5, 4)),
        ((3, 9, 10), (1, 3, 7)),
        ((5, 8, 11), (3, 4, 5)),
        ((4, 6, 7), (4, 6, 7)),
        ((2, 5, 4), (5, 9, 11)),
    ];

    #[test]
    fn equals_direct_convolution_of_the_mirrored_image() {
        for (dims, kdims) in CASES {
            let u = noise(dims, 1);
            let k = noise(kdims, 2);
            let c = Convolver::new(&k.view(), dims).unwrap();
            let mut out = Volume::zeros(dims);
            c.apply_into(&u, false, &mut out, &Control::new()).unwrap();
            let want = direct(&u, &k);
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-5 * k.sum() + 1e-6, "{dims:?} {kdims:?}: {err}");
        }
    }

    #[test]
    fn adjoint_is_the_transpose() {
        // <K x, y> = <x, Kᵀ y> for asymmetric kernels (the folded correlation), for
        // point-symmetric ones (which still need it) and for kernels even along every axis
        // (taken as K itself).
        for (dims, kdims) in CASES {
            let k = noise(kdims, 2);
            let point = &k + &k.slice(ndarray::s![..;-1, ..;-1, ..;-1]);
            let even = {
                let a = &k + &k.slice(ndarray::s![..;-1, .., ..]);
                let b = &a + &a.slice(ndarray::s![.., ..;-1, ..]);
                &b + &b.slice(ndarray::s![.., .., ..;-1])
            };
            for kernel in [k.clone(), point, even] {
                let c = Convolver::new(&kernel.view(), dims).unwrap();
                let (x, y) = (noise(dims, 3), noise(dims, 4));
                let (mut kx, mut kty) = (Volume::zeros(dims), Volume::zeros(dims));
                c.apply_into(&x, false, &mut kx, &Control::new()).unwrap();
                c.apply_into(&y, true, &mut kty, &Control::new()).unwrap();
                let dot = |a: &Volume, b: &Volume| -> f64 {
                    a.iter()
                        .zip(b)
                        .map(|(&p, &q)| f64::from(p) * f64::from(q))
                        .sum()
                };
                let (left, right) = (dot(&kx, &y), dot(&x, &kty));
                assert!(
                    (left - right).abs() < 1e-5 * left.abs(),
                    "{dims:?} {kdims:?} symmetric={}: {left} vs {right}",
                    c.symmetric
                );
            }
        }
    }

    #[test]
    fn refuses_planes_for_a_plane() {
        let e = Convolver::new(&Volume::ones((3, 3, 3)).view(), (1, 8, 8))
            .err()
            .unwrap();
        assert!(e.to_string().contains("single plane"), "{e}");
    }
}
