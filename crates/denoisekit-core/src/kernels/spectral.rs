//! Filtering by a real transfer function in the Fourier domain, shared by the spectral
//! methods (`fourier_filter`, `tikhonov`, the optical PSFs of `richardson_lucy`).
//!
//! The filter acts on the image extended by mirroring to twice its size along each
//! transformed axis (an even extension), so opposite edges do not leak into each other, a
//! constant image stays constant, and finite-difference operators have the Neumann
//! boundary rule. Frequencies are in cycles per pixel (per plane for z), in [0, 0.5].
//!
//! On that extension the Fourier transform is a DCT-II, so the filter runs as a DCT-II
//! along each axis, a multiplication by the transfer function at `k / (2n)`, and the
//! inverse DCT-III, each computed from one complex FFT of the line's own length (Makhoul
//! 1980): no doubled copy is ever built. Working memory: the block and one transposed copy.
//!
//! # References
//! J. Makhoul, "A fast cosine transform in one and multiple dimensions", IEEE TASSP 28(1),
//! 1980, doi:10.1109/TASSP.1980.1163351.

use crate::control::Control;
use crate::error::Result;
use crate::volume::{Volume, VolumeView};
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub(crate) type C32 = Complex<f32>;

/// A real, even transfer function of (fz, fy, fx) in cycles per plane/pixel.
pub type Transfer = dyn Fn(f64, f64, f64) -> f64 + Send + Sync;

/// A transfer function sampled for one block shape.
type SampledTable = ((usize, usize, usize), Arc<Vec<f32>>);

/// What a transfer function needs from one axis's frequency alone (sines, squares): the
/// first stage of a [`Filter::by_axis`].
pub type AxisTerms = dyn Fn(f64) -> [f64; 2] + Send + Sync;

/// The second stage of a [`Filter::by_axis`]: the transfer from the z, y and x terms.
pub type Combine = dyn Fn([f64; 2], [f64; 2], [f64; 2]) -> f64 + Send + Sync;

/// A spectral method's filter for one job: its transfer function and whether it couples
/// planes. Both the CPU ([`Filter::apply`]) and the GPU backend (a DCT, which is what a transform of
/// the mirrored image amounts to) evaluate the same `transfer`.
pub struct Filter {
    /// Whether the volume is filtered as a whole (else each plane on its own).
    pub use_z: bool,
    /// The transfer function.
    pub transfer: Box<Transfer>,
    /// The same function in two stages, when it has them (see [`Filter::by_axis`]).
    stages: Option<(Arc<AxisTerms>, Arc<Combine>)>,
    /// The last sampled table and its block shape: an iterative method (Richardson–Lucy)
    /// applies the same filter twice per iteration, and the transfer can be costly.
    cache: std::sync::Mutex<Option<SampledTable>>,
}

impl Filter {
    /// A filter from its transfer function.
    pub fn new(use_z: bool, transfer: Box<Transfer>) -> Self {
        Self {
            use_z,
            transfer,
            stages: None,
            cache: std::sync::Mutex::new(None),
        }
    }

    /// A filter whose transfer is `combine(axis(fz), axis(fy), axis(fx))`. Sampling it for
    /// a block evaluates `axis` once per index along each axis, not once per frequency:
    /// with three sines per frequency, Tikhonov's table took a third of its job's time at
    /// 2048x2048. The table holds exactly the values `transfer` gives.
    pub fn by_axis(
        use_z: bool,
        axis: impl Fn(f64) -> [f64; 2] + Send + Sync + 'static,
        combine: impl Fn([f64; 2], [f64; 2], [f64; 2]) -> f64 + Send + Sync + 'static,
    ) -> Self {
        let (axis, combine): (Arc<AxisTerms>, Arc<Combine>) = (Arc::new(axis), Arc::new(combine));
        let (a, c) = (axis.clone(), combine.clone());
        Self {
            use_z,
            transfer: Box::new(move |fz, fy, fx| c(a(fz), a(fy), a(fx))),
            stages: Some((axis, combine)),
            cache: std::sync::Mutex::new(None),
        }
    }

    /// Runs the filter on the CPU.
    ///
    /// # Errors
    /// [`crate::DenoiseError::Cancelled`].
    pub fn apply(&self, input: &VolumeView<'_>, ctl: &Control) -> Result<Volume> {
        let (d, h, w) = input.dim();
        let block = if self.use_z { (d, h, w) } else { (1, h, w) };
        let table = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match &*c {
                Some((dims, t)) if *dims == block => t.clone(),
                _ => {
                    let t = Arc::new(self.dct_table(block));
                    *c = Some((block, t.clone()));
                    t
                }
            }
        };
        apply_table(input, self.use_z, ctl, &table)
    }

    /// The transfer function sampled at the frequencies of the mirrored extension that a
    /// DCT-II of a `(d, h, w)` block sees: `k / (2n)` for `k < n` along each transformed
    /// axis, in (z, y, x) order; one plane's worth (`h · w`) unless `use_z`.
    pub fn dct_table(&self, (d, h, w): (usize, usize, usize)) -> Vec<f32> {
        let freqs = |n: usize| -> Vec<f64> { (0..n).map(|k| k as f64 / (2 * n) as f64).collect() };
        let fz = if self.use_z { freqs(d) } else { vec![0.0] };
        let (fy, fx) = (freqs(h), freqs(w));
        let Some((axis, combine)) = &self.stages else {
            return sample((fz.len(), h, w), |z, y, x| {
                (self.transfer)(fz[z], fy[y], fx[x])
            });
        };
        let terms = |f: &[f64]| -> Vec<[f64; 2]> { f.iter().map(|&f| axis(f)).collect() };
        let (tz, ty, tx) = (terms(&fz), terms(&fy), terms(&fx));
        sample((tz.len(), h, w), |z, y, x| combine(tz[z], ty[y], tx[x]))
    }
}

/// `value(z, y, x)` for every index of a `(d, h, w)` block, in (z, y, x) order, by rows on
/// every core.
fn sample(
    (d, h, w): (usize, usize, usize),
    value: impl Fn(usize, usize, usize) -> f64 + Sync,
) -> Vec<f32> {
    let mut t = vec![0.0f32; d * h * w];
    t.par_chunks_mut(w).enumerate().for_each(|(row, r)| {
        let (z, y) = (row / h, row % h);
        for (x, o) in r.iter_mut().enumerate() {
            *o = value(z, y, x) as f32;
        }
    });
    t
}

/// Filters `input` with the transfer already sampled by [`Filter::dct_table`] for one
/// block: the whole volume at once when `use_z`, else each plane on its own.
fn apply_table(
    input: &VolumeView<'_>,
    use_z: bool,
    ctl: &Control,
    table: &[f32],
) -> Result<Volume> {
    let (d, h, w) = input.dim();
    let mut out = input.as_standard_layout().into_owned();
    // Invariant: `into_owned` of a standard-layout view is contiguous.
    let a = out.as_slice_mut().unwrap_or(&mut []);
    // Each block's transforms, forward and back along each axis, are one unit each.
    let blocks = if use_z { 1 } else { d };
    let progress = (ctl, (blocks * 2 * axes(use_z).len()) as u64);
    if use_z {
        filter_block(a, (d, h, w), use_z, progress, table)?;
    } else {
        for plane in a.chunks_mut(h * w) {
            ctl.checkpoint()?;
            filter_block(plane, (1, h, w), false, progress, table)?;
        }
    }
    ctl.checkpoint()?;
    Ok(out)
}

/// The axes a block is transformed along, x first.
fn axes(use_z: bool) -> &'static [usize] {
    if use_z { &[2, 1, 0] } else { &[2, 1] }
}

/// Filters one block in place (a plane, or the whole volume when `use_z`): DCT-II along
/// x, y (and z), the sampled transfer, DCT-III back in reverse order; each transform
/// reports one unit of progress out of `total`.
fn filter_block(
    a: &mut [f32],
    (d, h, w): (usize, usize, usize),
    use_z: bool,
    (ctl, total): (&Control, u64),
    table: &[f32],
) -> Result<()> {
    let dims = (d, h, w);
    let axes = axes(use_z);
    let len = |axis: usize| [d, h, w][axis];
    for &axis in axes {
        let t = Dct::new(len(axis));
        along_axis(a, dims, axis, |line, buf| t.forward(line, buf));
        ctl.advance(1, total)?;
    }
    a.par_chunks_mut(w)
        .zip(table.par_chunks(w))
        .for_each(|(r, t)| r.iter_mut().zip(t).for_each(|(v, k)| *v *= k));
    for &axis in axes.iter().rev() {
        let t = Dct::new(len(axis));
        along_axis(a, dims, axis, |line, buf| t.inverse(line, buf));
        ctl.advance(1, total)?;
    }
    Ok(())
}

/// An unnormalised DCT-II of length `n` (`X_k = Σ x_j cos(π k (2j + 1) / (2n))`) and its
/// exact inverse, each through one complex FFT of length `n`.
struct Dct {
    n: usize,
    fft: Arc<dyn Fft<f32>>,
    ifft: Arc<dyn Fft<f32>>,
    /// `exp(−iπk / (2n))`, computed in f64.
    twiddle: Vec<C32>,
}

impl Dct {
    fn new(n: usize) -> Self {
        let mut planner = FftPlanner::<f32>::new();
        let twiddle = (0..n)
            .map(|k| {
                let a = -std::f64::consts::PI * k as f64 / (2 * n) as f64;
                C32::new(a.cos() as f32, a.sin() as f32)
            })
            .collect();
        Self {
            n,
            fft: planner.plan_fft_forward(n),
            ifft: planner.plan_fft_inverse(n),
            twiddle,
        }
    }

    /// In place; `buf` holds `n` complex values of scratch.
    fn forward(&self, x: &mut [f32], buf: &mut [C32]) {
        let n = self.n;
        // Even samples forward, odd samples backward (Makhoul's reordering).
        for j in 0..n.div_ceil(2) {
            buf[j] = C32::new(x[2 * j], 0.0);
        }
        for j in 0..n / 2 {
            buf[n - 1 - j] = C32::new(x[2 * j + 1], 0.0);
        }
        self.fft.process(buf);
        for (k, o) in x.iter_mut().enumerate() {
            *o = (buf[k] * self.twiddle[k]).re;
        }
    }

    /// The inverse of [`Dct::forward`], in place.
    fn inverse(&self, x: &mut [f32], buf: &mut [C32]) {
        let n = self.n;
        buf[0] = C32::new(x[0], 0.0);
        for k in 1..n {
            buf[k] = self.twiddle[k].conj() * C32::new(x[k], -x[n - k]);
        }
        self.ifft.process(buf);
        let scale = 1.0 / n as f32;
        for j in 0..n.div_ceil(2) {
            x[2 * j] = buf[j].re * scale;
        }
        for j in 0..n / 2 {
            x[2 * j + 1] = buf[n - 1 - j].re * scale;
        }
    }
}

/// Runs `op` on every line of `a` (shape `dims`, row-major) along `axis` (0 = z, 1 = y,
/// 2 = x), in parallel; lines across rows go through a transposed copy so that each runs
/// on contiguous memory. `op` gets the line and a complex scratch of its length.
fn along_axis(
    a: &mut [f32],
    (n0, n1, n2): (usize, usize, usize),
    axis: usize,
    op: impl Fn(&mut [f32], &mut [C32]) + Sync,
) {
    let len = [n0, n1, n2][axis];
    let scratch = || vec![C32::default(); len];
    if axis == 2 {
        a.par_chunks_mut(n2)
            .for_each_init(scratch, |buf, line| op(line, buf));
        return;
    }
    // View as (outer, len, inner): the transform runs along `len`.
    let (outer, inner) = if axis == 1 { (n0, n2) } else { (1, n1 * n2) };
    let mut t = vec![0.0f32; len * inner];
    for block in a.chunks_mut(len * inner).take(outer) {
        t.par_chunks_mut(len).enumerate().for_each(|(j, col)| {
            for (i, c) in col.iter_mut().enumerate() {
                *c = block[i * inner + j];
            }
        });
        t.par_chunks_mut(len)
            .for_each_init(scratch, |buf, line| op(line, buf));
        block
            .par_chunks_mut(inner)
            .enumerate()
            .for_each(|(i, row)| {
                for (j, c) in row.iter_mut().enumerate() {
                    *c = t[j * len + i];
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-stage filter's table holds what its transfer gives at each frequency, in 2D
    /// and z-coupled 3D, for the methods built that way and for an asymmetric toy.
    #[test]
    fn a_by_axis_table_is_its_transfer_sampled() {
        let toy = |use_z| {
            Filter::by_axis(
                use_z,
                |f| [f.sin(), f * 3.0],
                |z, y, x| x[0] * 2.0 + y[1] - z[0] * z[1] + x[1] * y[0],
            )
        };
        let tik = |depth| {
            let r = crate::find("tikhonov")
                .unwrap()
                .resolve(
                    &crate::ParamValues::new()
                        .set("lambda", 0.7)
                        .set("psf_sigma", 1.1)
                        .set("z_weight", 0.8)
                        .set("regulariser", "laplacian"),
                    || Ok(0.1),
                )
                .unwrap();
            let p = crate::methods::tikhonov::TikhonovParams::from_resolved(&r).unwrap();
            crate::methods::tikhonov::filter(&p, depth)
                .unwrap()
                .unwrap()
        };
        let lowpass = |depth| {
            let r = crate::find("fourier_filter")
                .unwrap()
                .resolve(
                    &crate::ParamValues::new()
                        .set("cutoff", 0.2)
                        .set("cutoff_z", 0.3),
                    || Ok(0.1),
                )
                .unwrap();
            let p = crate::methods::fourier_filter::FourierFilterParams::from_resolved(&r).unwrap();
            crate::methods::fourier_filter::filter(&p, depth).unwrap()
        };
        for (f, dims) in [
            (toy(false), (1, 7, 9)),
            (toy(true), (5, 6, 4)),
            (tik(1), (1, 11, 13)),
            (tik(4), (4, 9, 6)),
            (lowpass(1), (1, 12, 10)),
            (lowpass(3), (3, 8, 7)),
        ] {
            let (d, h, w) = dims;
            assert!(f.stages.is_some());
            let table = f.dct_table(dims);
            let dz = if f.use_z { d } else { 1 };
            assert_eq!(table.len(), dz * h * w);
            for z in 0..dz {
                for y in 0..h {
                    for x in 0..w {
                        let fz = if f.use_z {
                            z as f64 / (2 * d) as f64
                        } else {
                            0.0
                        };
                        let want =
                            (f.transfer)(fz, y as f64 / (2 * h) as f64, x as f64 / (2 * w) as f64);
                        let got = table[(z * h + y) * w + x];
                        assert_eq!(
                            got.to_bits(),
                            (want as f32).to_bits(),
                            "{dims:?} at {z},{y},{x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dct_matches_its_definition_and_inverts() {
        for n in [1usize, 2, 3, 8, 15, 64, 97] {
            let x: Vec<f32> = (0..n).map(|j| ((j * 37 + 11) % 17) as f32 - 8.0).collect();
            let t = Dct::new(n);
            let mut buf = vec![C32::default(); n];
            let mut y = x.clone();
            t.forward(&mut y, &mut buf);
            for (k, yk) in y.iter().enumerate() {
                let want: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        f64::from(v)
                            * (std::f64::consts::PI * (k * (2 * j + 1)) as f64 / (2 * n) as f64)
                                .cos()
                    })
                    .sum();
                assert!(
                    (f64::from(*yk) - want).abs() < 1e-4 * n as f64,
                    "n={n} k={k}"
                );
            }
            t.inverse(&mut y, &mut buf);
            for (a, b) in y.iter().zip(&x) {
                assert!((a - b).abs() < 1e-4, "n={n}: {a} vs {b}");
            }
        }
    }
}
