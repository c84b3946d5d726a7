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
//! planes couples them. The kernel is real, so its adjoint (correlation, the mirrored
//! kernel: Richardson–Lucy's `Kᵀ`) multiplies by the conjugate transfer function.
//!
//! Working memory: the kernel's spectrum, one block's spectrum and the columns being
//! transformed, each about as large as the padded image (or plane) in `f32`, kept between
//! calls.

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
            .collect();
        Self {
            n,
            pad,
            len,
            source,
        }
    }
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
}

/// A kernel's transfer function for one image shape, ready to convolve images of it.
pub struct Convolver {
    axes: [Axis; 3],
    /// Whether the kernel spans planes (the z axis is transformed).
    use_z: bool,
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
        let mut c = Self {
            use_z,
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
        // The kernel wrapped around the origin: its centre goes to index 0.
        let [lz, ly, lx] = [c.axes[0].len, c.axes[1].len, c.axes[2].len];
        let mut placed = vec![0.0f32; if use_z { lz } else { 1 } * ly * lx];
        for ((z, y, x), &v) in kernel.indexed_iter() {
            let wrap = |i: usize, k: usize, len: usize| (i + len - k / 2) % len;
            let zz = if use_z { wrap(z, kd, lz) } else { 0 };
            placed[(zz * ly + wrap(y, kh, ly)) * lx + wrap(x, kw, lx)] = v;
        }
        let planes = if use_z { lz } else { 1 };
        let mut otf = Vec::new();
        c.forward(planes, &mut otf, &mut Vec::new(), |z, y, row| {
            row.copy_from_slice(&placed[(z * ly + y) * lx..][..lx]);
        });
        let scale = 1.0 / (lx * ly * if use_z { lz } else { 1 }) as f32;
        otf.par_iter_mut().for_each(|v| *v *= scale);
        c.otf = otf;
        Ok(c)
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

    /// `K u` (or `Kᵀ u` when `adjoint`) into `out`, both of the image's shape.
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
        let [az, ay, ax] = &self.axes;
        let (ly, lx, half) = (ay.len, ax.len, self.half());
        let d = az.n;
        // Without z coupling every plane is its own block against the same plane spectrum.
        let blocks: Vec<(usize, usize)> = if self.use_z {
            vec![(0, az.len)]
        } else {
            (0..d).map(|z| (z, 1)).collect()
        };
        let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
        let Work { spec, columns } = &mut *work;
        for (z0, planes) in blocks {
            ctl.checkpoint()?;
            self.forward(planes, spec, columns, |z, y, row| {
                let src = if self.use_z { az.source[z] } else { z0 };
                let line = u.slice(ndarray::s![src, ay.source[y], ..]);
                for (r, &x) in row.iter_mut().zip(&ax.source) {
                    *r = line[x];
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
            // Only the planes and rows inside the image come back to real space.
            let z_range = if self.use_z { az.pad..az.pad + d } else { 0..1 };
            let inside = &mut spec[z_range.start * ly * half..z_range.end * ly * half];
            fft_columns(inside, (z_range.len(), ly, half), &*self.y[1], columns);
            let z_range = 0..z_range.len();
            let spec: &[C32] = inside;
            let out_planes: Vec<_> = if self.use_z {
                out.outer_iter_mut().collect()
            } else {
                out.outer_iter_mut().skip(z0).take(1).collect()
            };
            out_planes
                .into_par_iter()
                .zip(z_range.into_par_iter())
                .for_each_init(
                    || {
                        (
                            vec![0.0f32; lx],
                            self.c2r.make_scratch_vec(),
                            vec![C32::default(); half],
                        )
                    },
                    |(row, scratch, buf), (mut plane, zp)| {
                        for (y, mut out_row) in plane.outer_iter_mut().enumerate() {
                            let i = (zp * ly + ay.pad + y) * half;
                            buf.copy_from_slice(&spec[i..i + half]);
                            // A real signal's spectrum: these are real up to rounding.
                            buf[0].im = 0.0;
                            if lx.is_multiple_of(2) {
                                buf[half - 1].im = 0.0;
                            }
                            let _ = self.c2r.process_with_scratch(buf, row, scratch);
                            for (o, &r) in out_row.iter_mut().zip(&row[ax.pad..]) {
                                *o = r;
                            }
                        }
                    },
                );
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
        // The kernel's spectrum, the block's, and the gathered columns.
        (3.0 * block) / image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn direct(u: &Volume, k: &Volume, adjoint: bool) -> Volume {
        let (d, h, w) = u.dim();
        let (kd, kh, kw) = k.dim();
        let sym = |i: isize, n: usize| crate::BorderMode::Symmetric.index(i, n).unwrap();
        Array3::from_shape_fn((d, h, w), |(z, y, x)| {
            let mut s = 0.0f64;
            for ((a, b, c), &kv) in k.indexed_iter() {
                let off = |i: usize, m: usize| i as isize - (m / 2) as isize;
                let (oz, oy, ox) = (off(a, kd), off(b, kh), off(c, kw));
                let (oz, oy, ox) = if adjoint {
                    (oz, oy, ox)
                } else {
                    (-oz, -oy, -ox)
                };
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

    #[test]
    fn equals_direct_convolution_of_the_mirrored_image() {
        // Asymmetric kernels of odd and even sizes, planes alone and coupled, and a
        // kernel as large as the image.
        for (dims, kdims) in [
            ((1, 13, 17), (1, 5, 4)),
            ((3, 9, 10), (1, 3, 7)),
            ((5, 8, 11), (3, 4, 5)),
            ((4, 6, 7), (4, 6, 7)),
            // Larger than the image: mirrored more than once.
            ((2, 5, 4), (5, 9, 11)),
        ] {
            let u = noise(dims, 1);
            let k = noise(kdims, 2);
            let c = Convolver::new(&k.view(), dims).unwrap();
            for adjoint in [false, true] {
                let mut out = Volume::zeros(dims);
                c.apply_into(&u, adjoint, &mut out, &Control::new())
                    .unwrap();
                let want = direct(&u, &k, adjoint);
                let err = out
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    err < 2e-5 * k.sum() as f32 + 1e-6,
                    "{dims:?} {kdims:?} {adjoint}: {err}"
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
