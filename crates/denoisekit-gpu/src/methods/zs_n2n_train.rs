//! Training `zs_n2n`'s network on the GPU (kernel: `zs_n2n_train.wgsl`): forward passes,
//! the loss (zero-shot, or supervised towards a target: real pairs or synthetic scenes),
//! backward passes, weight gradients and Adam, one submission per step. The
//! host follows the core's [`Schedule`]: the same initial weights, patches and step sizes
//! as the CPU's `train`, so the two differ only by the rounding of their sums (the
//! `gpu_matches_cpu` tests state by how much after how many steps).
//!
//! Only each step's canvas (its patch and the patch's two diagonal sub-images: 25 kB at
//! 64² patches, 396 kB at the largest; its four chequerboard sub-images: 33 kB and
//! 528 kB; or the patch and its target's), and its step
//! sizes go up; the losses come back in batches, which is also where the job checks for
//! cancellation, so batches shrink on a slow device to keep Esc prompt.

use crate::context::{Binding, GpuContext, groups};
use crate::error::GpuError;
use denoisekit_core::methods::zs_n2n::net::{Net, SLOPE};
use denoisekit_core::methods::zs_n2n::{
    ADAM_B1, ADAM_B2, ADAM_EPS, Data, Schedule, StepDone, Subimages, ZsN2nParams, chequerboard,
    halves, patch_side,
};
use denoisekit_core::volume::Shape;
use std::time::{Duration, Instant};

const WGSL: &str = include_str!("zs_n2n_train.wgsl");
const WG: u32 = 16;
const WG_1D: u32 = 64;
/// Canvas rows per band of the weight-gradient sums (the kernel's `p.band`).
const BAND: usize = 8;
/// Floats per weight in `state`: the weight, Adam's two moments, the running average.
const STATE: usize = 4;
/// A step's scalars in `work`: learning rate, Adam's two bias corrections, the step's
/// index and its weight in the running average.
const STEP_SCALARS: usize = 5;
/// The most steps submitted before their losses are read back.
const RING: usize = 32;
/// A batch that takes longer than this is halved, one shorter than a quarter of it
/// doubled: cancellation and the progress line wait at most about this long.
const BATCH_TIME: Duration = Duration::from_millis(200);

const ENTRIES: [&str; 11] = [
    "forward1",
    "forward2",
    "forward3",
    "loss",
    "loss_supervised",
    "loss_pairs",
    "loss_sum",
    "backward2",
    "backward1",
    "grad",
    "adam",
];

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        cw: u32,
        ch: u32,
        s: u32,
        q: u32,
        c: u32,
        n: u32,
        bands: u32,
        map_len: u32,
        x_at: u32,
        net_at: u32,
        gout_at: u32,
        terms_at: u32,
        part_at: u32,
        step_at: u32,
        ring: u32,
        slope: f32,
        b1: f32,
        b2: f32,
        eps: f32,
        band: u32,
        terms: u32,
        target_at: u32,
        layers: u32,
        layer: u32,
        canvas: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// What a step's canvas holds, and so which loss scores it (see the kernel's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canvas {
    /// The patch and its two diagonal halves (`loss`).
    Halves,
    /// The patch alone, scored against a target (`loss_supervised`).
    Target,
    /// The patch's four chequerboard sub-images (`loss_pairs`).
    Chequerboard,
}

impl Canvas {
    /// The canvas of a job with parameters `p`, towards a target or not.
    fn of(p: &ZsN2nParams, supervised: bool) -> Self {
        match (supervised, p.subimages) {
            (true, _) => Self::Target,
            (false, Subimages::Diagonal) => Self::Halves,
            (false, Subimages::Chequerboard) => Self::Chequerboard,
        }
    }
}

/// Where everything lies in the trainer's buffers (see the kernel's header).
struct Layout {
    u: Uniforms,
    /// Floats in each of `maps` and `grads`.
    maps: usize,
    /// Floats in `work`.
    work: usize,
}

impl Layout {
    /// The layout for `side` x `side` patches on a `canvas`, and a network of width `c`
    /// with `layers` 3x3 convolutions.
    fn new(
        side: usize,
        (c, layers): (usize, usize),
        canvas: Canvas,
        limit: u64,
    ) -> Result<Self, GpuError> {
        let n = Net::count(c, layers);
        let (s, q) = (side, side / 2);
        let (ch, terms) = match canvas {
            Canvas::Target => (s, s * s),
            Canvas::Halves => (s + 1 + q, q * q),
            Canvas::Chequerboard => (2 * s + 2, 4 * s * q),
        };
        let supervised = canvas == Canvas::Target;
        let cw = s + 1;
        let px = cw * ch;
        let bands = ch.div_ceil(BAND);
        let x_at = RING;
        let net_at = x_at + px;
        let gout_at = net_at + px;
        let terms_at = gout_at + px;
        let part_at = terms_at + terms;
        let step_at = part_at + bands * n;
        let target_at = step_at + STEP_SCALARS;
        let target = if supervised { s * s } else { 0 };
        let (maps, work) = (layers * px * c, target_at + target);
        let largest = maps.max(work).max(STATE * n) as u64 * 4;
        if largest > limit || largest > u64::from(u32::MAX) {
            return Err(GpuError::TooLarge(format!(
                "training on {s}x{s} patches with {layers} layers of {c} channels needs a \
                 {largest}-byte buffer; the device allows {limit}"
            )));
        }
        let u32_of = |v: usize| v as u32;
        Ok(Self {
            u: Uniforms {
                cw: u32_of(cw),
                ch: u32_of(ch),
                s: u32_of(s),
                q: u32_of(q),
                c: u32_of(c),
                n: u32_of(n),
                bands: u32_of(bands),
                map_len: u32_of(px * c),
                x_at: u32_of(x_at),
                net_at: u32_of(net_at),
                gout_at: u32_of(gout_at),
                terms_at: u32_of(terms_at),
                part_at: u32_of(part_at),
                step_at: u32_of(step_at),
                ring: u32_of(RING),
                slope: SLOPE,
                b1: ADAM_B1 as f32,
                b2: ADAM_B2 as f32,
                eps: ADAM_EPS,
                band: u32_of(BAND),
                terms: u32_of(terms),
                target_at: u32_of(target_at),
                layers: u32_of(layers),
                layer: 0,
                canvas: if canvas == Canvas::Chequerboard { 2 } else { 0 },
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            },
            maps,
            work,
        })
    }
}

/// Writes a step's images from its `side` x `side` patch into the canvas (`cw` wide;
/// see the kernel's header); the gaps between them are never written, so stay zero.
fn fill(canvas: &mut [f32], kind: Canvas, patch: &[f32], (side, cw): (usize, usize)) {
    let q = side / 2;
    // `a` and `b`, `q` wide each, side by side on the rows from `first` on.
    let pair = |canvas: &mut [f32], first: usize, a: &[f32], b: &[f32]| {
        let rows = canvas[first * cw..].chunks_mut(cw);
        for ((row, a), b) in rows.zip(a.chunks(q)).zip(b.chunks(q)) {
            row[..q].copy_from_slice(a);
            row[q + 1..2 * q + 1].copy_from_slice(b);
        }
    };
    // `img`, `side` wide, on the rows from `first` on.
    let whole = |canvas: &mut [f32], first: usize, img: &[f32]| {
        for (row, src) in canvas[first * cw..].chunks_mut(cw).zip(img.chunks(side)) {
            row[..side].copy_from_slice(src);
        }
    };
    match kind {
        Canvas::Chequerboard => {
            let [even_r, odd_r, even_c, odd_c] = chequerboard(patch, side);
            pair(canvas, 0, &even_r, &odd_r);
            whole(canvas, side + 1, &even_c);
            whole(canvas, side + 2 + q, &odd_c);
        }
        Canvas::Halves => {
            whole(canvas, 0, patch);
            let (d1, d2) = halves(patch, side);
            pair(canvas, side + 1, &d1, &d2);
        }
        Canvas::Target => whole(canvas, 0, patch),
    }
}

/// Refuses, before any training, settings whose buffers the device cannot hold.
///
/// # Errors
/// `TooLarge`.
pub fn check_fits(s: Shape, p: &ZsN2nParams, limit: u64) -> Result<(), GpuError> {
    Layout::new(
        patch_side(s, p),
        (p.width, p.layers),
        Canvas::of(p, p.trains_supervised()),
        limit,
    )
    .map(|_| ())
}

/// Trains on `data` (of shape `s`) as the core's `train` does, on the GPU, calling
/// `step_done` after each step in order.
///
/// # Errors
/// [`GpuError`] on a device failure or `TooLarge`; what `step_done` returns (a
/// cancellation).
pub fn train(
    ctx: &GpuContext,
    data: Data<'_>,
    s: Shape,
    p: &ZsN2nParams,
    limit: u64,
    step_done: &mut StepDone<'_, GpuError>,
) -> Result<Net, GpuError> {
    let canvas_kind = Canvas::of(p, data.target.is_some());
    let (mut schedule, net) = Schedule::new(data, s, p)?;
    let (c, layers) = (net.c, net.layers);
    let flat = net.flat();
    let n = flat.len();
    let lay = Layout::new(schedule.side, (c, layers), canvas_kind, limit)?;
    let u = lay.u;
    let kernel = ctx.kernel(
        "zs_n2n_train",
        WGSL,
        &[
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Uniform,
        ],
        &ENTRIES,
    )?;
    let (maps, grads, work, state, uniforms) = ctx.scoped(|| {
        let mut state = flat;
        state.resize(STATE * n, 0.0);
        // One uniform per convolution between hidden maps (the passes run once for each,
        // `layer` saying which); the other passes read the first.
        let uniforms: Vec<_> = (0..layers - 1)
            .map(|l| {
                let u = Uniforms {
                    layer: l as u32,
                    ..u
                };
                ctx.uniform("zs_n2n.train", bytemuck::bytes_of(&u))
            })
            .collect();
        (
            ctx.storage("zs_n2n.maps", lay.maps),
            ctx.storage("zs_n2n.grads", lay.maps),
            ctx.storage("zs_n2n.work", lay.work),
            ctx.upload("zs_n2n.state", &state),
            uniforms,
        )
    })?;
    let binds: Vec<_> = (uniforms.iter())
        .map(|uniform| {
            let buffers = [&maps, &grads, &work, &state, uniform];
            ctx.bind(&kernel, "zs_n2n.train", &buffers)
        })
        .collect();
    let (cw, ch, q, side) = (u.cw as usize, u.ch as usize, u.q as usize, u.s as usize);
    let plane = (groups(cw, WG), groups(ch, WG));
    let loss = match canvas_kind {
        Canvas::Target => ("loss_supervised", (groups(side, WG), groups(side, WG), 1)),
        Canvas::Halves => ("loss", (groups(q, WG), groups(q, WG), 1)),
        Canvas::Chequerboard => ("loss_pairs", (plane.0, plane.1, 1)),
    };
    let hidden = (plane.0, plane.1, c as u32);
    let mut dispatches = vec![("forward1", hidden, &binds[0])];
    dispatches.extend(binds.iter().map(|b| ("forward2", hidden, b)));
    dispatches.extend([
        ("forward3", (plane.0, plane.1, 1), &binds[0]),
        (loss.0, loss.1, &binds[0]),
        ("loss_sum", (1, 1, 1), &binds[0]),
        ("backward2", hidden, &binds[0]),
    ]);
    dispatches.extend(binds.iter().rev().map(|b| ("backward1", hidden, b)));
    dispatches.extend([
        ("grad", (groups(n, WG_1D), u.bands, 1), &binds[0]),
        ("adam", (groups(n, WG_1D), 1, 1), &binds[0]),
    ]);
    // Gaps in the canvas are zero in `x` (rewritten each step) and must be in `gout`,
    // which the loss kernel never writes there.
    ctx.scoped(|| {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&work, 0, None);
        ctx.queue.submit([enc.finish()]);
    })?;
    let mut canvas = vec![0.0f32; cw * ch];
    let mut index = 0usize;
    let mut batch = 1usize;
    // Whether the last step submitted averaged: the network trained so far is then the
    // running average, after the weights and their moments.
    let mut averaging = false;
    let weights = |averaging: bool| -> Result<Net, GpuError> {
        // The weights lead `state`, their running average ends it.
        let at = if averaging { (STATE - 1) * n } else { 0 };
        let w = ctx.read_back_at(&state, at, n)?;
        Net::from_flat(c, layers, &w)
            .ok_or_else(|| GpuError::Validation("weights of the wrong size".into()))
    };
    loop {
        let started = Instant::now();
        let first = index;
        ctx.scoped(|| -> Result<(), GpuError> {
            while index - first < batch {
                let Some(step) = schedule.next() else { break };
                fill(&mut canvas, canvas_kind, &step.patch, (side, cw));
                if let Some(t) = &step.target {
                    let at = u64::from(u.target_at) * 4;
                    ctx.queue.write_buffer(&work, at, bytemuck::cast_slice(t));
                }
                let scalars: [f32; STEP_SCALARS] =
                    [step.lr, step.c1, step.c2, index as f32, step.average];
                averaging = step.average > 0.0;
                ctx.queue
                    .write_buffer(&work, u64::from(u.x_at) * 4, bytemuck::cast_slice(&canvas));
                ctx.queue.write_buffer(
                    &work,
                    u64::from(u.step_at) * 4,
                    bytemuck::cast_slice(&scalars),
                );
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                for &(entry, size, bind) in &dispatches {
                    crate::context::dispatch(&mut enc, &kernel, entry, bind, size);
                }
                ctx.queue.submit([enc.finish()]);
                index += 1;
            }
            Ok(())
        })??;
        if index == first {
            break;
        }
        let ring = ctx.scoped(|| ctx.read_back(&work, RING))??;
        for k in first..index {
            step_done(f64::from(ring[k % RING]), &mut || weights(averaging))?;
        }
        let took = started.elapsed();
        batch = if took > BATCH_TIME {
            (batch / 2).max(1)
        } else if took < BATCH_TIME / 4 {
            (batch * 2).min(RING)
        } else {
            batch
        };
    }
    weights(averaging)
}
