//! Filtering by a real transfer function in the Fourier domain, shared by the spectral
//! methods (`fourier_filter`, `tikhonov`).
//!
//! The image is extended by mirroring to twice its size along each transformed axis (an
//! even extension, as a DCT does) before the FFT, so opposite edges do not leak into each
//! other, a constant image stays constant, and finite-difference operators have the
//! Neumann boundary rule. Frequencies are in cycles per pixel (per plane for z), signed,
//! in [-0.5, 0.5].

use crate::border::BorderMode;
use crate::control::Control;
use crate::error::Result;
use crate::volume::{Volume, VolumeView};
use ndarray::Array3;
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

type C32 = Complex<f32>;

/// A real, even transfer function of (fz, fy, fx) in cycles per plane/pixel.
pub type Transfer = dyn Fn(f64, f64, f64) -> f64 + Sync;

/// A spectral method's filter for one job: its transfer function and whether it couples
/// planes. Both the CPU ([`apply`]) and the GPU backend (a DCT, which is what a transform of
/// the mirrored image amounts to) evaluate the same `transfer`.
pub struct Filter {
    /// Whether the volume is filtered as a whole (else each plane on its own).
    pub use_z: bool,
    /// The transfer function.
    pub transfer: Box<dyn Fn(f64, f64, f64) -> f64 + Send + Sync>,
}

impl Filter {
    /// Runs the filter on the CPU.
    ///
    /// # Errors
    /// [`crate::DenoiseError::Cancelled`].
    pub fn apply(&self, input: &VolumeView<'_>, ctl: &Control) -> Result<Volume> {
        apply(input, self.use_z, ctl, &*self.transfer)
    }

    /// The transfer function sampled at the frequencies of the mirrored extension that a
    /// DCT-II of a `(d, h, w)` block sees: `k / (2n)` for `k < n` along each transformed
    /// axis, in (z, y, x) order; one plane's worth (`h · w`) unless `use_z`.
    pub fn dct_table(&self, (d, h, w): (usize, usize, usize)) -> Vec<f32> {
        let dz = if self.use_z { d } else { 1 };
        let mut t = vec![0.0f32; dz * h * w];
        t.par_chunks_mut(w).enumerate().for_each(|(row, r)| {
            let (z, y) = (row / h, row % h);
            let fz = if self.use_z {
                z as f64 / (2 * d) as f64
            } else {
                0.0
            };
            let fy = y as f64 / (2 * h) as f64;
            for (x, o) in r.iter_mut().enumerate() {
                *o = (self.transfer)(fz, fy, x as f64 / (2 * w) as f64) as f32;
            }
        });
        t
    }
}

/// Multiplies the spectrum of `input` by `transfer`: the whole volume at once when
/// `use_z`, else each plane on its own (then `fz` is always 0).
///
/// # Errors
/// [`crate::DenoiseError::Cancelled`].
pub fn apply(
    input: &VolumeView<'_>,
    use_z: bool,
    ctl: &Control,
    transfer: &Transfer,
) -> Result<Volume> {
    let (d, h, w) = input.dim();
    let src = input.as_standard_layout();
    let mut out = Array3::<f32>::zeros((d, h, w));
    if use_z {
        out.assign(&filter_block(&src.view(), true, ctl, transfer)?);
    } else {
        for (z, mut plane_out) in out.outer_iter_mut().enumerate() {
            ctl.checkpoint()?;
            let one = src.slice(ndarray::s![z..z + 1, .., ..]);
            let v = filter_block(&one, false, ctl, transfer)?;
            plane_out.assign(&v.index_axis(ndarray::Axis(0), 0));
        }
    }
    ctl.checkpoint()?;
    Ok(out)
}

/// Filters one block (a plane, or the whole volume when `use_z`) through its mirrored
/// extension: real FFT along x, complex FFTs along y (and z), transfer, and back.
fn filter_block(
    v: &VolumeView<'_>,
    use_z: bool,
    ctl: &Control,
    transfer: &Transfer,
) -> Result<Volume> {
    let (d, h, w) = v.dim();
    let (ed, eh, ew) = (if use_z { 2 * d } else { 1 }, 2 * h, 2 * w);
    let k = ew / 2 + 1;
    let sym = BorderMode::Symmetric;
    // Mirror extension: index i of the extended axis reads sym.index(i) of the image.
    let mut ext = vec![0.0f32; ed * eh * ew];
    ext.par_chunks_mut(ew).enumerate().for_each(|(row, r)| {
        let (z, y) = (row / eh, row % eh);
        let zz = if use_z {
            sym.index(z as isize, d).unwrap_or(0)
        } else {
            0
        };
        let yy = sym.index(y as isize, h).unwrap_or(0);
        for (x, o) in r.iter_mut().enumerate() {
            *o = v[(zz, yy, sym.index(x as isize, w).unwrap_or(0))];
        }
    });
    let mut rplan = RealFftPlanner::<f32>::new();
    let (r2c, c2r) = (rplan.plan_fft_forward(ew), rplan.plan_fft_inverse(ew));
    let mut spec = vec![C32::default(); ed * eh * k];
    ext.par_chunks_mut(ew)
        .zip(spec.par_chunks_mut(k))
        .for_each(|(r, c)| {
            // Invariant: the buffers have the planned lengths, so process cannot fail.
            let _ = r2c.process(r, c);
        });
    ctl.checkpoint()?;
    let mut cplan = FftPlanner::<f32>::new();
    fft_axis(&mut spec, (ed, eh, k), 1, &cplan.plan_fft_forward(eh));
    if use_z {
        fft_axis(&mut spec, (ed, eh, k), 0, &cplan.plan_fft_forward(ed));
    }
    ctl.checkpoint()?;
    let freq = |i: usize, n: usize| {
        let signed = if i <= n / 2 {
            i as f64
        } else {
            i as f64 - n as f64
        };
        signed / n as f64
    };
    let norm = 1.0 / (ed * eh * ew) as f64;
    spec.par_chunks_mut(k).enumerate().for_each(|(row, r)| {
        let (z, y) = (row / eh, row % eh);
        let (fz, fy) = (if use_z { freq(z, ed) } else { 0.0 }, freq(y, eh));
        for (x, v) in r.iter_mut().enumerate() {
            *v *= (transfer(fz, fy, x as f64 / ew as f64) * norm) as f32;
        }
    });
    if use_z {
        fft_axis(&mut spec, (ed, eh, k), 0, &cplan.plan_fft_inverse(ed));
    }
    fft_axis(&mut spec, (ed, eh, k), 1, &cplan.plan_fft_inverse(eh));
    ctl.checkpoint()?;
    ext.par_chunks_mut(ew)
        .zip(spec.par_chunks_mut(k))
        .for_each(|(r, c)| {
            // The image is real and the mask symmetric: DC and Nyquist are real up to rounding,
            // which the inverse real FFT requires exactly.
            c[0].im = 0.0;
            c[k - 1].im = 0.0;
            let _ = c2r.process(c, r);
        });
    let out = Array3::from_shape_fn((d, h, w), |(z, y, x)| ext[(z * eh + y) * ew + x]);
    Ok(out)
}

/// In-place FFT of `data` (shape `dims`, row-major) along axis 0 or 1, through a
/// transposed copy so that each transform runs on contiguous memory.
fn fft_axis(
    data: &mut [C32],
    (n0, n1, n2): (usize, usize, usize),
    axis: usize,
    fft: &std::sync::Arc<dyn rustfft::Fft<f32>>,
) {
    // View as (outer, len, inner): the transform runs along `len`.
    let (outer, len, inner) = if axis == 1 {
        (n0, n1, n2)
    } else {
        (1, n0, n1 * n2)
    };
    for block in data.chunks_mut(len * inner).take(outer) {
        let mut t = vec![C32::default(); len * inner];
        t.par_chunks_mut(len).enumerate().for_each(|(j, col)| {
            for (i, c) in col.iter_mut().enumerate() {
                *c = block[i * inner + j];
            }
        });
        t.par_chunks_mut(len).for_each(|col| fft.process(col));
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
