//! GPU host for `richardson_lucy` (kernel: `richardson_lucy.wgsl`, with the blurs from
//! `gaussian.wgsl`, `spectral.wgsl` or `convolve.wgsl`): the data, the estimate and every
//! work buffer stay on the GPU for all iterations; the estimate is read back once. The
//! start, the guards and the PSF come from the core (`richardson_lucy::setup`,
//! `psf_filter`, and for a PSF image `setup_measured`), so both devices iterate from the
//! same point.
//!
//! One iteration: (TV gradient and divergence), `K u` (three separable passes for a 3D
//! Gaussian, two for a plane; for the Airy PSF a DCT along x and y, the product with the
//! transfer and the inverse DCTs, each DCT an FFT of several dispatches; for a PSF image
//! FFTs of the mirrored, padded image, as the core's `Convolver`), the ratio, `Kᵀ` of the
//! ratio (the models' PSFs are symmetric; a PSF image's transpose folds the padding back
//! and divides by `Kᵀ 1` when it is asymmetric), the update. The Born–Wolf PSF, and a PSF
//! image of several planes, transform along z too. Every output depends on the whole
//! stack (the start and guards come from its mean), so the stack must fit the device in
//! one piece; otherwise the CPU runs it.
//!
//! Tolerance: 1e-4 of the range (measured at most 7.9e-6 after 100 iterations). With a
//! strong TV term (`tv` 0.005 and above) the iteration itself is ill-conditioned: in flat
//! regions the normalised gradient flips direction on rounding, and a one-ulp change of
//! the input moves the CPU's own result by about 1e-3 of the range at a few pixels. The
//! GPU then differs by the same order there (measured 6.5e-3 at most, 1.5e-6 on average,
//! for tv 0.01), which `tests/gpu_matches_cpu.rs` checks against that sensitivity.

use super::{Pass, WG, chain, convolve, gaussian, spectral, tile_planes};
use crate::context::{Binding, GpuContext, Pooled, groups};
use crate::error::GpuError;
use denoisekit_core::methods::gaussian::gaussian_kernel;
use denoisekit_core::methods::richardson_lucy::{
    MeasuredPsf, MeasuredStart, PSF_IMAGE, RichardsonLucyParams, Setup, Start, psf_filter, setup,
    setup_measured,
};
use denoisekit_core::{Control, PsfModel, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("richardson_lucy.wgsl");

/// Iterations per submission: between submissions the host checks cancel and reports
/// progress.
const ITERATIONS_PER_SUBMIT: usize = 8;

/// The same with a PSF image, whose iteration transforms a padded block several times
/// larger: Esc stays as prompt, and one submission as short for a driver's watchdog.
const MEASURED_ITERATIONS_PER_SUBMIT: usize = 2;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        use_z: u32,
        tiny: f32,
        eps2: f32,
        tv: f32,
        _pad: f32,
    }
}

/// Runs Richardson–Lucy deconvolution on the GPU from resolved parameters.
///
/// # Errors
/// [`GpuError::Job`] for the Airy PSF with a border other than symmetric, as on the CPU;
/// [`GpuError`] on any device failure; `TooLarge` when the stack does not fit the
/// storage-binding limit (or `max_tile_bytes`) in one piece.
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = RichardsonLucyParams::from_resolved(r)?;
    // A PSF image is checked, normalised and laid out by the core, as for the CPU.
    let (start, measured) = match (p.psf, r.image(PSF_IMAGE)) {
        (PsfModel::Image, Some(psf)) => match setup_measured(input.view(), &p, psf.view(), ctl)? {
            MeasuredStart::Done(v) => return Ok(v),
            MeasuredStart::Iterate(s, m) => (s, Some(*m)),
        },
        _ => match setup(input.view(), &p)? {
            Start::Done(v) => return Ok(v),
            Start::Iterate(s) => (s, None),
        },
    };
    let Setup {
        f,
        u,
        tiny,
        eps2,
        use_z_tv,
    } = start;
    let (d, h, w) = input.dim();
    let tv = p.tv > 0.0;
    if tile_planes(ctx, (d, h, w), if tv { 3 } else { 1 }, 0, max_tile_bytes)? < d {
        return Err(GpuError::TooLarge(format!(
            "Richardson-Lucy on {w}x{h}x{d} needs the whole stack on the GPU"
        )));
    }
    let n = d * h * w;
    let rl = ctx.kernel(
        "richardson_lucy",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadOnly,
            Binding::Uniform,
        ],
        &["ratio", "update", "tv_gradient", "tv_divergence"],
    )?;
    // Invariant: `setup` builds standard-layout arrays.
    let (f, u0) = (f.as_slice().unwrap_or(&[]), u.as_slice().unwrap_or(&[]));
    let grid = (groups(w, WG), groups(h, WG), d as u32);
    let out = ctx.scoped(|| -> Result<Vec<f32>, GpuError> {
        let fb = ctx.upload("rl.f", f);
        let ub = ctx.upload("rl.u", u0);
        let (t1, t2, s) = (
            ctx.storage("rl.t1", n),
            ctx.storage("rl.t2", n),
            ctx.storage("rl.scratch", n),
        );
        let none = ctx.storage("rl.placeholder", 1);
        let dual = tv.then(|| ctx.storage("rl.p", 3 * n));
        let div = tv.then(|| ctx.storage("rl.div", n));
        let params = Uniforms {
            width: w as u32,
            height: h as u32,
            depth: d as u32,
            use_z: u32::from(use_z_tv),
            tiny,
            eps2,
            tv: p.tv as f32,
            _pad: 0.0,
        };
        let step = |entry: &'static str, bufs: [&wgpu::Buffer; 3]| {
            let uniform = ctx.uniform("rl.params", bytemuck::bytes_of(&params));
            let bind_group = ctx.bind(&rl, entry, &[bufs[0], bufs[1], bufs[2], &uniform]);
            Pass {
                kernel: rl.clone(),
                entry,
                bind_group,
                groups: grid,
                _uniform: uniform,
            }
        };
        let per_submit = match measured {
            Some(_) => MEASURED_ITERATIONS_PER_SUBMIT,
            None => ITERATIONS_PER_SUBMIT,
        };
        // Takes the PSF image's host copies: they are freed once on the device.
        let blur = Blur::new(ctx, &p, measured, (d, h, w), max_tile_bytes)?;
        let mut iteration = Vec::new();
        if let (Some(dual), Some(div)) = (&dual, &div) {
            iteration.push(step("tv_gradient", [&ub, dual, &none]));
            iteration.push(step("tv_divergence", [dual, div, &none]));
        }
        iteration.extend(blur.passes(ctx, &ub, &t1, &s, false));
        iteration.push(step("ratio", [&fb, &t1, &none]));
        iteration.extend(blur.passes(ctx, &t1, &t2, &s, true));
        iteration.push(step("update", [&t2, &ub, div.as_ref().unwrap_or(&none)]));
        super::iterate(
            ctx,
            ctl,
            (p.iterations, per_submit),
            p.iterations as u64,
            |enc, _, count| {
                for _ in 0..count {
                    iteration.iter().for_each(|pass| pass.record(enc));
                }
            },
            || Ok(false),
        )?;
        ctx.read_back(&ub, n)
    })??;
    denoisekit_core::volume_from_vec(d, h, w, out).map_err(|e| GpuError::Validation(e.to_string()))
}

/// The PSF on the device: the Gaussian's taps per axis, or the optical PSF's tables.
enum Blur<'a> {
    Gaussian {
        kernel: std::sync::Arc<crate::context::Kernel>,
        /// Taps in the plane, then across planes if the PSF is 3D.
        taps: Vec<Pooled<'a>>,
        /// (entry point, index into `taps`, radius) per pass.
        axes: Vec<(&'static str, usize, u32)>,
        dims: (usize, usize, usize),
        border: u32,
    },
    /// The Airy (per plane) or Born–Wolf (whole stack) filter's tables.
    Spectral {
        kernel: std::sync::Arc<crate::context::Kernel>,
        tables: spectral::Tables<'a>,
        dims: (usize, usize, usize),
    },
    /// A measured PSF (`psf=image`), convolved through FFTs of the mirrored image.
    Measured(Box<convolve::Measured<'a>>),
}

impl<'a> Blur<'a> {
    fn new(
        ctx: &'a GpuContext,
        p: &RichardsonLucyParams,
        measured: Option<MeasuredPsf>,
        (d, h, w): (usize, usize, usize),
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        if let Some(m) = measured {
            let m = convolve::Measured::new(ctx, &m, (d, h, w), max_bytes)?;
            return Ok(Self::Measured(Box::new(m)));
        }
        if let Some(filter) = psf_filter(p, (d, h, w)) {
            return Ok(Self::Spectral {
                kernel: spectral::kernel(ctx)?,
                tables: spectral::Tables::for_filter(ctx, &filter, (d, h, w), None)?,
                dims: (d, h, w),
            });
        }
        let kernel = ctx.kernel(
            "gaussian",
            gaussian::WGSL,
            &[
                Binding::ReadOnly,
                Binding::ReadWrite,
                Binding::ReadOnly,
                Binding::Uniform,
            ],
            gaussian::ENTRY_POINTS,
        )?;
        let taps_of = |sigma| {
            let k = gaussian_kernel(sigma);
            ((k.len() / 2) as u32, ctx.upload("rl.taps", &k))
        };
        let (rxy, kxy) = taps_of(p.psf_sigma);
        let mut taps = vec![kxy];
        let mut axes = vec![("convolve_x", 0, rxy), ("convolve_y", 0, rxy)];
        if d > 1 && p.psf_sigma_z > 0.0 {
            let (rz, kz) = taps_of(p.psf_sigma_z);
            taps.push(kz);
            axes.push(("convolve_z_border", 1, rz));
        }
        Ok(Self::Gaussian {
            kernel,
            taps,
            axes,
            dims: (d, h, w),
            border: p.border as u32,
        })
    }

    /// The passes that blur `x` into `y` (by `Kᵀ` when `adjoint`: the models' PSFs are
    /// symmetric, so only a measured one differs), with `s` as scratch (distinct buffers).
    fn passes(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        s: &wgpu::Buffer,
        adjoint: bool,
    ) -> Vec<Pass> {
        match self {
            Self::Measured(m) => m.passes(ctx, x, y, adjoint),
            Self::Spectral {
                kernel,
                tables,
                dims,
            } => spectral::passes(ctx, kernel, *dims, tables, x, y, s),
            Self::Gaussian {
                kernel,
                taps,
                axes,
                dims: (d, h, w),
                border,
            } => {
                let bufs = chain(axes.len(), x, y, s);
                axes.iter()
                    .enumerate()
                    .map(|(k, (entry, which, radius))| {
                        let u = gaussian::Uniforms {
                            width: *w as u32,
                            height: *h as u32,
                            depth_out: *d as u32,
                            radius: *radius,
                            border: *border,
                            _pad: [0; 3],
                        };
                        let uniform = ctx.uniform("rl.blur", bytemuck::bytes_of(&u));
                        let bind_group = ctx.bind(
                            kernel,
                            entry,
                            &[bufs[k], bufs[k + 1], &taps[*which], &uniform],
                        );
                        Pass {
                            kernel: kernel.clone(),
                            entry,
                            bind_group,
                            groups: (groups(*w, WG), groups(*h, WG), *d as u32),
                            _uniform: uniform,
                        }
                    })
                    .collect()
            }
        }
    }
}
