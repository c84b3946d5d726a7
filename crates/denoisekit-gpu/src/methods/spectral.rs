//! Shared GPU host for the spectral methods (kernel: `spectral.wgsl`): DCT-II along each
//! axis, multiplication by the method's transfer function, DCT-III back, all in one
//! submission. The CPU filters the mirrored extension with FFTs, which is the same linear
//! operator, so both evaluate the same `denoisekit_core::spectral::Filter`.
//!
//! Cost: each DCT is one complex FFT of the axis's length (Makhoul's reordering, as on the
//! CPU): mixed-radix Stockham passes (radix 4 where it can) when the length's prime
//! factors are at most `MAX_RADIX`, Bluestein's chirp-z (two FFTs of the next power of
//! two at least 2n − 1) otherwise, so O(log n) per value where the direct sums it replaced
//! cost O(n) (measured 18–40x faster on lavapipe at 512² to 1024²: docs/benchmarks.md).
//! The complex scratch holds a chunk of lines at a time, at most `SCRATCH_BYTES` per
//! buffer (two buffers beside the volume's own), so its size is bounded whatever the
//! volume. Planes filtered on their own are tiled freely; a z-coupled volume must fit the
//! device in one piece.

use super::{Pass, WG, chain, in_tiles, on_device, tile_planes};
use crate::context::{Binding, GpuContext, Pooled, groups};
use crate::error::GpuError;
use denoisekit_core::spectral::Filter;
use denoisekit_core::{Control, Volume, VolumeView};
use std::f64::consts::PI;

const WGSL: &str = include_str!("spectral.wgsl");

/// Workgroup width of the FFT entry points (one line per workgroup row).
const FFT_WG: u32 = 64;

/// The most bytes one complex scratch buffer may take, whatever the device allows: large
/// enough that a 2048-wide plane transforms in one chunk, small enough to leave the device
/// its memory for the volume itself.
const SCRATCH_BYTES: u64 = 64 << 20;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        depth: u32,
        axis: u32,
        n: u32,
        m: u32,
        line0: u32,
        radix: u32,
        span: u32,
        pre: u32,
        post: u32,
        spectrum: u32,
        inverse: u32,
        conj_after: u32,
        table_len: u32,
        complex: u32,
    }
}

/// The largest radix of a Stockham pass (`MAX_RADIX` in the kernel): lengths with a larger
/// prime factor go through Bluestein.
const MAX_RADIX: usize = 13;

/// The radices of a mixed-radix FFT of length `n` (4 first, then the primes up to
/// [`MAX_RADIX`]), or `None` when a larger prime divides it.
fn radices(mut n: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for r in [4, 2, 3, 5, 7, 11, MAX_RADIX] {
        while n.is_multiple_of(r) {
            out.push(r);
            n /= r;
        }
    }
    (n == 1).then_some(out)
}

/// `e^{iθ}` as the table's (re, im) pair, from an angle computed in f64.
fn unit(theta: f64) -> [f64; 2] {
    [theta.cos(), theta.sin()]
}

/// `e^{-iπ k² / n}`, with `k² mod 2n` taken exactly so that large `k` lose nothing.
fn chirp(k: usize, n: usize) -> [f64; 2] {
    let r = (k as u128 * k as u128 % (2 * n as u128)) as f64;
    unit(-PI * r / n as f64)
}

/// The DCTs of one axis length: the FFT length and the factors the kernel applies, laid
/// out in one table (complex values as (re, im) pairs, offsets in floats).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AxisPlan {
    pub(crate) n: usize,
    /// The FFT length: `n` when its prime factors are at most [`MAX_RADIX`], else
    /// Bluestein's `2^p >= 2n − 1`.
    pub(crate) m: usize,
    /// The Stockham passes' radices, whose product is `m`.
    pub(crate) radices: Vec<usize>,
    /// Twiddles `e^{-2πi t/m}` (t < m) at 0, then `pre` and `post` for the DCT-II and
    /// the DCT-III, then (Bluestein) the chirp's spectrum. Shared, not copied, by each
    /// tile's [`Tables`].
    pub(crate) table: std::sync::Arc<[f32]>,
    pre: [u32; 2],
    post: [u32; 2],
    spectrum: Option<u32>,
}

impl AxisPlan {
    pub(crate) fn new(n: usize) -> Self {
        let n = n.max(1);
        let direct = radices(n);
        let bluestein = direct.is_none();
        let m = if bluestein {
            (2 * n - 1).next_power_of_two()
        } else {
            n
        };
        let radices = direct.or_else(|| radices(m)).unwrap_or_default();
        let mut t: Vec<f64> = (0..m)
            .flat_map(|k| unit(-2.0 * PI * k as f64 / m as f64))
            .collect();
        let push = |t: &mut Vec<f64>, f: &dyn Fn(usize) -> [f64; 2]| {
            let at = t.len() as u32;
            t.extend((0..n).flat_map(f));
            at
        };
        let cmul =
            |a: [f64; 2], b: [f64; 2]| [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
        // The DCT's own twist e^{-iπk/(2n)}; Bluestein adds its chirp before the FFT and
        // after it (with 1/m for the inverse FFT it does as a forward one).
        let twist = |k: usize| unit(-PI * k as f64 / (2 * n) as f64);
        let chirp_in = |k| if bluestein { chirp(k, n) } else { [1.0, 0.0] };
        let chirp_out = |k| {
            let c = chirp_in(k);
            let scale = if bluestein { m as f64 } else { 1.0 };
            [c[0] / scale, c[1] / scale]
        };
        let pre_fwd = push(&mut t, &|k| chirp_in(k));
        let post_fwd = push(&mut t, &|k| cmul(chirp_out(k), twist(k)));
        let pre_inv = push(&mut t, &|k| cmul(chirp_in(k), twist(k)));
        let post_inv = push(&mut t, &|k| {
            let c = chirp_out(k);
            [c[0] / n as f64, c[1] / n as f64]
        });
        let spectrum = bluestein.then(|| {
            use rustfft::num_complex::Complex;
            // The conjugate chirp e^{+iπj²/n} at lags −(n−1)..n−1, wrapped to length m.
            let mut b = vec![Complex::new(0.0, 0.0); m];
            for j in 0..n {
                let c = chirp(j, n);
                b[j] = Complex::new(c[0], -c[1]);
                b[(m - j) % m] = b[j];
            }
            // `m` is a power of two: Radix4 alone, not the planner, which would compile
            // rustfft's whole SIMD algorithm set for f64 into this crate.
            rustfft::Fft::process(
                &rustfft::algorithm::Radix4::new(m, rustfft::FftDirection::Forward),
                &mut b,
            );
            let at = t.len() as u32;
            t.extend(b.iter().flat_map(|c| [c.re, c.im]));
            at
        });
        Self {
            n,
            m,
            radices,
            table: t.iter().map(|&v| v as f32).collect(),
            pre: [pre_fwd, pre_inv],
            post: [post_fwd, post_inv],
            spectrum,
        }
    }
}

/// Applies `filter` to `input` on the GPU.
///
/// # Errors
/// [`GpuError`] on any device failure; `TooLarge` when a plane, or a z-coupled volume,
/// exceeds the storage-binding limit (or `max_tile_bytes`).
pub fn apply(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    filter: &Filter,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = input.dim();
    let tile = tile_planes(ctx, (d, h, w), 1, 0, max_tile_bytes)?;
    if filter.use_z && tile < d {
        return Err(GpuError::TooLarge(format!(
            "a z-coupled spectral filter of {w}x{h}x{d} needs the whole volume on the GPU"
        )));
    }
    let kernel = kernel(ctx)?;
    // Every tile has the volume's planes (a z-coupled filter runs in one tile), so one
    // set of plans and one sampled transfer serve them all.
    let plans = Plans::new(filter, (d, h, w));
    in_tiles(input, (tile, 0, false), |sub| {
        ctl.checkpoint()?;
        let dims = sub.dim();
        on_device(ctx, sub, |host| {
            let a = ctx.upload("spectral.a", host);
            let b = ctx.storage("spectral.b", host.len());
            let tables = Tables::upload(ctx, &plans, dims, max_tile_bytes)?;
            // An odd number of passes: the input buffer can serve as the scratch.
            let passes = passes(ctx, &kernel, dims, &tables, &a, &b, &a);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            passes.iter().for_each(|p| p.record(&mut enc));
            ctx.queue.submit([enc.finish()]);
            ctx.read_back(&b, host.len())
        })
    })
}

/// The kernel, compiled once per process.
pub(crate) fn kernel(ctx: &GpuContext) -> Result<std::sync::Arc<crate::context::Kernel>, GpuError> {
    ctx.kernel(
        "spectral",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadOnly,
            Binding::Uniform,
        ],
        &["pack", "butterfly", "convolve", "unpack", "multiply"],
    )
}

/// One transformed axis on the device: its plan's table and how many lines one chunk of
/// the complex scratch holds.
struct Axis<'a> {
    plan: AxisPlan,
    table: Pooled<'a>,
    lines: usize,
    chunk: usize,
}

/// What one filter needs on the device for a `(d, h, w)` block: each transformed axis's
/// tables, the sampled transfer, and two complex scratch buffers shared by the axes.
pub(crate) struct Tables<'a> {
    /// x, y, then z when the filter couples planes.
    axes: Vec<Axis<'a>>,
    transfer: Pooled<'a>,
    transfer_len: usize,
    scratch: [Pooled<'a>; 2],
}

/// The host side of a filter's tables: each transformed axis's plan and the transfer
/// sampled for one block (a plane, or the whole volume when the filter couples planes).
pub(crate) struct Plans {
    /// x, y, then z when the filter couples planes.
    axes: Vec<AxisPlan>,
    transfer: Vec<f32>,
}

impl Plans {
    pub(crate) fn new(filter: &Filter, (d, h, w): (usize, usize, usize)) -> Self {
        let mut lengths = vec![w, h];
        if filter.use_z {
            lengths.push(d);
        }
        Self {
            axes: lengths.into_iter().map(AxisPlan::new).collect(),
            transfer: filter.dct_table((d, h, w)),
        }
    }
}

impl<'a> Tables<'a> {
    /// Tables for `filter` on a `(d, h, w)` block; see [`Tables::upload`].
    pub(crate) fn for_filter(
        ctx: &'a GpuContext,
        filter: &Filter,
        dims: (usize, usize, usize),
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        Self::upload(ctx, &Plans::new(filter, dims), dims, max_bytes)
    }

    /// `plans` on the device for a `(d, h, w)` block, with complex scratch of at most
    /// [`SCRATCH_BYTES`] per buffer (or `max_bytes`: the tile limit, which tests lower to
    /// force several chunks).
    ///
    /// # Errors
    /// `TooLarge` when one line's FFT alone exceeds the scratch limit, or needs more
    /// workgroups than a dispatch allows.
    pub(crate) fn upload(
        ctx: &'a GpuContext,
        plans: &Plans,
        (d, h, w): (usize, usize, usize),
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        let lines = [d * h, d * w, h * w];
        let axes = (plans.axes.iter().zip(lines))
            .map(|(plan, lines)| Axis::on_device(ctx, plan.clone(), lines, max_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            transfer_len: plans.transfer.len(),
            transfer: ctx.upload("spectral.transfer", &plans.transfer),
            scratch: scratch(ctx, axes.iter()),
            axes,
        })
    }
}

impl<'a> Axis<'a> {
    /// `plan` on the device for `lines` lines, in chunks whose complex scratch is at most
    /// [`SCRATCH_BYTES`] (or `max_bytes`).
    ///
    /// # Errors
    /// `TooLarge` when one line's FFT alone exceeds the scratch limit, or needs more
    /// workgroups than a dispatch allows.
    fn on_device(
        ctx: &'a GpuContext,
        plan: AxisPlan,
        lines: usize,
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        let limit = ctx.buffer_limit(max_bytes).min(SCRATCH_BYTES);
        let max_rows = ctx.limits.max_compute_workgroups_per_dimension as usize;
        let (n, line_bytes) = (plan.n, (plan.m * 8) as u64);
        if line_bytes > limit || groups(plan.m, FFT_WG) as usize > max_rows {
            return Err(GpuError::TooLarge(format!(
                "an FFT along an axis of {n} needs {line_bytes} bytes of \
                 scratch per line, over {limit}, or more workgroups than a dispatch allows"
            )));
        }
        let chunk = ((limit / line_bytes) as usize)
            .min(lines)
            .min(max_rows)
            .max(1);
        Ok(Axis {
            table: ctx.upload("spectral.axis", &plan.table),
            plan,
            lines,
            chunk,
        })
    }
}

/// Two complex scratch buffers, each large enough for any of `axes`' chunks.
fn scratch<'a, 'b>(
    ctx: &'a GpuContext,
    axes: impl Iterator<Item = &'b Axis<'b>>,
) -> [Pooled<'a>; 2] {
    let floats = axes.map(|a| a.chunk * a.plan.m * 2).max().unwrap_or(1);
    [
        ctx.storage("spectral.c0", floats),
        ctx.storage("spectral.c1", floats),
    ]
}

/// Plain forward FFTs, in place, along some axes of a complex `(d, h, w)` volume
/// (interleaved re, im): the convolution with a measured PSF (`convolve`), whose padded
/// lengths factor into the Stockham passes' radices.
pub(crate) struct Ffts<'a> {
    /// (axis: 0 = x, 1 = y, 2 = z; its plan on the device).
    axes: Vec<(u32, Axis<'a>)>,
    scratch: [Pooled<'a>; 2],
    dims: (usize, usize, usize),
}

impl<'a> Ffts<'a> {
    /// FFTs along the axes of `along` (x, y, z) of a complex `(d, h, w)` volume.
    ///
    /// # Errors
    /// `TooLarge` as [`Tables::upload`]; `Validation` for a length with a prime factor
    /// over [`MAX_RADIX`] (the convolution's padded lengths never have one).
    pub(crate) fn new(
        ctx: &'a GpuContext,
        (d, h, w): (usize, usize, usize),
        along: [bool; 3],
        max_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        let mut axes = Vec::new();
        for (a, (n, lines)) in [(w, d * h), (h, d * w), (d, h * w)].into_iter().enumerate() {
            if !along[a] {
                continue;
            }
            if radices(n).is_none() {
                return Err(GpuError::Validation(format!(
                    "an FFT of length {n} has a prime factor over {MAX_RADIX}"
                )));
            }
            axes.push((
                a as u32,
                Axis::on_device(ctx, AxisPlan::new(n), lines, max_bytes)?,
            ));
        }
        let scratch = scratch(ctx, axes.iter().map(|(_, a)| a));
        Ok(Self {
            axes,
            scratch,
            dims: (d, h, w),
        })
    }

    /// The passes that transform `v` in place.
    pub(crate) fn passes(
        &self,
        ctx: &GpuContext,
        kernel: &std::sync::Arc<crate::context::Kernel>,
        v: &wgpu::Buffer,
    ) -> Vec<Pass> {
        let (d, h, w) = self.dims;
        let base = Uniforms {
            complex: 1,
            ..Uniforms::volume((d, h, w), 1)
        };
        let scratch = [&*self.scratch[0], &*self.scratch[1]];
        let mut out = Vec::new();
        for (a, axis) in &self.axes {
            let chunks = axis_passes(ctx, kernel, (*a, axis), &base, false, [v, v], scratch);
            out.extend(chunks);
        }
        out
    }
}

impl Uniforms {
    /// The parameters every pass over a `(d, h, w)` volume shares.
    fn volume((d, h, w): (usize, usize, usize), table_len: usize) -> Self {
        Uniforms {
            width: w as u32,
            height: h as u32,
            depth: d as u32,
            axis: 0,
            n: 0,
            m: 0,
            line0: 0,
            radix: 0,
            span: 0,
            pre: 0,
            post: 0,
            spectrum: 0,
            inverse: 0,
            conj_after: 0,
            table_len: table_len as u32,
            complex: 0,
        }
    }
}

/// One dispatch of `entry` on `bind` (source, destination, table) with parameters `u`.
fn pass(
    ctx: &GpuContext,
    kernel: &std::sync::Arc<crate::context::Kernel>,
    entry: &'static str,
    u: &Uniforms,
    bind: [&wgpu::Buffer; 3],
    groups: (u32, u32, u32),
) -> Pass {
    let ub = ctx.uniform("spectral.params", bytemuck::bytes_of(u));
    let bind_group = ctx.bind(kernel, entry, &[bind[0], bind[1], bind[2], &ub]);
    Pass {
        kernel: kernel.clone(),
        entry,
        bind_group,
        groups,
        _uniform: ub,
    }
}

/// The passes of one transform along axis `a` (0 = x, 1 = y, 2 = z) from `src` into
/// `dst`, chunk by chunk of lines: pack into the scratch, the FFT (Bluestein's two when
/// the plan has a chirp) ping-ponging between the two scratch buffers, unpack.
fn axis_passes(
    ctx: &GpuContext,
    kernel: &std::sync::Arc<crate::context::Kernel>,
    (a, axis): (u32, &Axis<'_>),
    base: &Uniforms,
    inverse: bool,
    [src, dst]: [&wgpu::Buffer; 2],
    [c0, c1]: [&wgpu::Buffer; 2],
) -> Vec<Pass> {
    let plan = &axis.plan;
    let (n, m) = (plan.n, plan.m);
    let table = &*axis.table;
    let mut out = Vec::new();
    for line0 in (0..axis.lines).step_by(axis.chunk) {
        let rows = axis.chunk.min(axis.lines - line0) as u32;
        let u = Uniforms {
            axis: a,
            n: n as u32,
            m: m as u32,
            line0: line0 as u32,
            pre: plan.pre[usize::from(inverse)],
            post: plan.post[usize::from(inverse)],
            spectrum: plan.spectrum.unwrap_or(0),
            inverse: u32::from(inverse),
            conj_after: u32::from(plan.spectrum.is_some()),
            ..*base
        };
        let over = |count: usize| (groups(count, FFT_WG), rows, 1);
        out.push(pass(ctx, kernel, "pack", &u, [src, c0, table], over(m)));
        // `cur.0` holds the latest.
        let mut cur = (c0, c1);
        for round in 0..if plan.spectrum.is_some() { 2 } else { 1 } {
            if round == 1 {
                let bind = [cur.0, cur.1, table];
                out.push(pass(ctx, kernel, "convolve", &u, bind, over(m)));
                cur = (cur.1, cur.0);
            }
            let mut span = 1;
            for &radix in &plan.radices {
                let u = Uniforms {
                    radix: radix as u32,
                    span: span as u32,
                    ..u
                };
                let bind = [cur.0, cur.1, table];
                out.push(pass(ctx, kernel, "butterfly", &u, bind, over(m / radix)));
                cur = (cur.1, cur.0);
                span *= radix;
            }
        }
        out.push(pass(
            ctx,
            kernel,
            "unpack",
            &u,
            [cur.0, dst, table],
            over(n),
        ));
    }
    out
}

/// The passes that filter `x` into `y` (DCT per axis, multiply, inverse DCT per axis in
/// reverse order), alternating with the scratch `s`; always an odd number of real-to-real
/// steps, so `s` may be `x`.
pub(crate) fn passes(
    ctx: &GpuContext,
    kernel: &std::sync::Arc<crate::context::Kernel>,
    (d, h, w): (usize, usize, usize),
    t: &Tables<'_>,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: &wgpu::Buffer,
) -> Vec<Pass> {
    // `Some((axis, inverse))` for a DCT, `None` for the product with the transfer.
    let forward = (0..t.axes.len()).map(|a| Some((a, false)));
    let inverse = (0..t.axes.len()).rev().map(|a| Some((a, true)));
    let steps: Vec<Option<(usize, bool)>> = forward.chain([None]).chain(inverse).collect();
    let bufs = chain(steps.len(), x, y, s);
    let base = Uniforms::volume((d, h, w), t.transfer_len);
    let scratch = [&*t.scratch[0], &*t.scratch[1]];
    let mut out = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        let (src, dst) = (bufs[k], bufs[k + 1]);
        let Some((a, inverse)) = *step else {
            let groups = (groups(w, WG), groups(h, WG), d as u32);
            out.push(pass(
                ctx,
                kernel,
                "multiply",
                &base,
                [src, dst, &t.transfer],
                groups,
            ));
            continue;
        };
        let axis = (a as u32, &t.axes[a]);
        out.extend(axis_passes(
            ctx,
            kernel,
            axis,
            &base,
            inverse,
            [src, dst],
            scratch,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::AxisPlan;

    /// The DCT-II and DCT-III the kernel computes, replayed on the host in f64 from the
    /// plan's own tables (Stockham passes and all), against the direct sums they replace.
    fn run_plan(plan: &AxisPlan, input: &[f64], inverse: bool) -> Vec<f64> {
        let (n, m) = (plan.n, plan.m);
        let t: Vec<f64> = plan.table.iter().map(|&v| f64::from(v)).collect();
        let f = |off: u32, k: usize| [t[off as usize + 2 * k], t[off as usize + 2 * k + 1]];
        let cmul =
            |a: [f64; 2], b: [f64; 2]| [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
        let inv = usize::from(inverse);
        let mut c: Vec<[f64; 2]> = (0..m)
            .map(|k| {
                if k >= n {
                    return [0.0, 0.0];
                }
                let v = if inverse {
                    [input[k], if k > 0 { input[n - k] } else { 0.0 }]
                } else if k < n.div_ceil(2) {
                    [input[2 * k], 0.0]
                } else {
                    [input[2 * (n - 1 - k) + 1], 0.0]
                };
                cmul(v, f(plan.pre[inv], k))
            })
            .collect();
        let fft = |c: &mut Vec<[f64; 2]>| {
            let mut span = 1;
            for &r in &plan.radices {
                let stride = m / r;
                let mut out = vec![[0.0; 2]; m];
                for i in 0..stride {
                    let k = i % span;
                    let u: Vec<[f64; 2]> = (0..r)
                        .map(|j| cmul(c[i + j * stride], f(0, j * k * (stride / span))))
                        .collect();
                    for s in 0..r {
                        let acc = (0..r).fold([0.0, 0.0], |a, j| {
                            let v = cmul(u[j], f(0, (j * s % r) * stride));
                            [a[0] + v[0], a[1] + v[1]]
                        });
                        out[(i - k) * r + k + s * span] = acc;
                    }
                }
                *c = out;
                span *= r;
            }
        };
        fft(&mut c);
        if let Some(s) = plan.spectrum {
            for (k, v) in c.iter_mut().enumerate() {
                let p = cmul(*v, f(s, k));
                *v = [p[0], -p[1]];
            }
            fft(&mut c);
        }
        (0..n)
            .map(|j| {
                let k = match (inverse, j % 2) {
                    (false, _) => j,
                    (true, 0) => j / 2,
                    (true, _) => n - 1 - j / 2,
                };
                let mut v = c[k];
                if plan.spectrum.is_some() {
                    v[1] = -v[1];
                }
                let p = f(plan.post[inv], k);
                v[0] * p[0] - v[1] * p[1]
            })
            .collect()
    }

    #[test]
    fn the_kernel_has_the_hosts_workgroup_width() {
        let decl = format!("@workgroup_size({}, 1, 1)", super::FFT_WG);
        let entries = ["pack", "butterfly", "convolve", "unpack"];
        for entry in entries {
            let at = super::WGSL.find(&format!("fn {entry}(")).unwrap();
            let before = &super::WGSL[..at];
            let attr = before.rfind("@workgroup_size").unwrap();
            assert!(
                before[attr..].starts_with(&decl),
                "{entry}: {}",
                &before[attr..]
            );
        }
    }

    #[test]
    fn the_kernel_holds_the_largest_radix() {
        let decl = format!("const MAX_RADIX: u32 = {}u;", super::MAX_RADIX);
        assert!(super::WGSL.contains(&decl), "spectral.wgsl lacks `{decl}`");
    }

    #[test]
    fn fft_dcts_equal_the_direct_sums_at_every_kind_of_length() {
        use std::f64::consts::PI;
        // Powers of two, products of small primes (mixed radix), lengths with a larger
        // prime factor (Bluestein: 17, 31, 127, 2·53), and 1.
        for n in [
            1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 17, 31, 64, 100, 106, 127, 416, 1001,
        ] {
            let plan = AxisPlan::new(n);
            let x: Vec<f64> = (0..n).map(|j| ((j * 37 + 11) % 23) as f64 - 9.5).collect();
            let c = |k: usize, j: usize| (PI * (k * (2 * j + 1)) as f64 / (2 * n) as f64).cos();
            let direct: Vec<f64> = (0..n)
                .map(|k| (0..n).map(|j| x[j] * c(k, j)).sum())
                .collect();
            let scale = direct.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let dct = run_plan(&plan, &x, false);
            let idct = run_plan(&plan, &direct, true);
            for k in 0..n {
                // The tables are f32: errors of a few ulps of the largest value.
                assert!(
                    (dct[k] - direct[k]).abs() < 1e-5 * scale,
                    "n={n} k={k}: {} vs {}",
                    dct[k],
                    direct[k]
                );
                assert!(
                    (idct[k] - x[k]).abs() < 1e-5 * 12.0,
                    "n={n} j={k}: {} vs {}",
                    idct[k],
                    x[k]
                );
            }
            let direct = [17, 31, 106, 127].iter().all(|&p| p != n);
            let m = if direct {
                n
            } else {
                (2 * n - 1).next_power_of_two()
            };
            assert_eq!(plan.m, m, "n={n}");
            assert_eq!(plan.radices.iter().product::<usize>(), m, "n={n}");
        }
    }
}
