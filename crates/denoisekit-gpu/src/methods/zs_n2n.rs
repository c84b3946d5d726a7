//! GPU host for `zs_n2n` (kernel: `zs_n2n.wgsl`): the network is trained on the GPU
//! ([`zs_n2n_train`], on the CPU's schedule and from the same teacher: the image alone,
//! a target or synthetic scenes) or its saved weights loaded, and applied to
//! each plane on the GPU: per band of rows and per mirror image (four, or the image alone
//! when refined: [`mirror_images`]), one pass per 3x3
//! convolution and one for the output layer. A watched training's intermediate
//! results are applied here too.

use crate::context::{Binding, GpuContext, groups};
use crate::error::GpuError;
use crate::methods::zs_n2n_train;
use denoisekit_core::methods::zs_n2n::net::Net;
use denoisekit_core::methods::zs_n2n::{
    FLIPS, ZsN2nParams, mirror_images, refine, train_or_load_with, with_teacher,
};
use denoisekit_core::volume::Shape;
use denoisekit_core::{Control, Resolved, Volume, VolumeView};

const WGSL: &str = include_str!("zs_n2n.wgsl");
const WG: u32 = 16;

/// The most bytes the band's two hidden maps may take together, whatever the device
/// allows.
const BAND_BYTES: u64 = 64 << 20;

uniforms! {
    wgsl = WGSL;
    struct Uniforms {
        width: u32,
        height: u32,
        c: u32,
        y0: u32,
        rows: u32,
        flip_y: u32,
        flip_x: u32,
        c4: u32,
        from_at: u32,
        to_at: u32,
        halo: u32,
        w_at: u32,
        share: f32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// Trains the network on the GPU (`zs_n2n_train`) following the CPU's schedule, or loads
/// saved weights, then applies it on the GPU. The teacher (a target seen through the noise
/// model, or the synthetic scenes) is prepared on the CPU, as for a CPU job.
///
/// # Errors
/// The core's parameter, input and weights-file errors and `Cancelled`; [`GpuError`] on
/// any device failure; `TooLarge` when a plane, the two hidden maps of the
/// `1 + 2·(layers − 1)` rows one output row needs, or the training's buffers exceed the storage-binding limit (or `max_tile_bytes`).
pub fn run(
    ctx: &GpuContext,
    input: VolumeView<'_>,
    r: &Resolved,
    ctl: &Control,
    max_tile_bytes: Option<u64>,
) -> Result<Volume, GpuError> {
    let p = ZsN2nParams::from_resolved(r)?;
    let s = Shape::of(&input);
    let limit = ctx.buffer_limit(max_tile_bytes);
    // Refused before any training, so that a job the device cannot hold does not train
    // first (loaded weights are checked again for their own width).
    if p.weights.get().is_none() {
        band_rows(s, p.width, p.layers, limit)?;
        zs_n2n_train::check_fits(s, &p, limit)?;
    }
    let trained = with_teacher(input, r, &p, |teacher| {
        train_or_load_with(
            input,
            teacher,
            &p,
            ctl,
            |data, s, p, step_done| zs_n2n_train::train(ctx, data, s, p, limit, step_done),
            |net, norm, s, mean_std| apply(ctx, net, norm, s, mean_std, &FLIPS, limit, None),
        )
    })??;
    let Some(t) = trained else {
        return Ok(input.to_owned());
    };
    let out = apply(
        ctx,
        &t.net,
        &t.norm,
        s,
        (t.mean, t.std),
        mirror_images(&p),
        limit,
        Some((ctl, t.total)),
    )?;
    let total = t.total;
    drop(t);
    // BM3D has no GPU path: the refinement runs on the CPU, as a CPU job's does.
    Ok(refine(input, out, &p, ctl, total)?)
}

/// Rows per band for a network of `c` channels and `layers` 3x3 convolutions.
fn band_rows(s: Shape, c: usize, layers: usize, limit: u64) -> Result<usize, GpuError> {
    let (h, w) = (s.height, s.width);
    // The two hidden maps of a row share one buffer.
    let row_bytes = (2 * w * c.next_multiple_of(4) * 4) as u64;
    let plane_bytes = (h * w * 4) as u64;
    let halo = 2 * (layers - 1);
    if plane_bytes > limit || (1 + halo) as u64 * row_bytes > limit {
        return Err(GpuError::TooLarge(format!(
            "a {w}x{h} plane with {layers} hidden layers of {c} channels exceeds {limit} bytes"
        )));
    }
    Ok(((limit.min(BAND_BYTES) / row_bytes) as usize)
        .saturating_sub(halo)
        .clamp(1, h))
}

/// `net` applied to every plane of the normalised stack `norm` on the mirror images
/// `flips`, on the image's scale (`v · std + mean`); each plane advances `progress`
/// (control, total units) when given.
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &GpuContext,
    net: &Net,
    norm: &[f32],
    s: Shape,
    (mean, std): (f64, f64),
    flips: &[(bool, bool)],
    limit: u64,
    progress: Option<(&Control, u64)>,
) -> Result<Volume, GpuError> {
    let (d, h, w) = (s.depth, s.height, s.width);
    let (c, layers) = (net.c, net.layers);
    let c4 = c.next_multiple_of(4);
    let band = band_rows(s, c, layers, limit)?;
    let kernel = ctx.kernel(
        "zs_n2n",
        WGSL,
        &[
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::Uniform,
        ],
        &["layer1", "layer2", "layer3"],
    )?;
    let (weights, w_at) = padded(net);
    let share = 1.0 / flips.len() as f32;
    let plane = h * w;
    let mut out = Vec::with_capacity(d * plane);
    let halo = layers - 1;
    let map_len = (band + 2 * halo) * w * c4;
    // The weights and the work buffers serve every plane.
    let (wb, hidden) = ctx.scoped(|| {
        (
            ctx.upload("zs_n2n.weights", &weights),
            ctx.storage("zs_n2n.hidden", 2 * map_len),
        )
    })?;
    for z in 0..d {
        if let Some((ctl, _)) = progress {
            ctl.checkpoint()?;
        }
        let norm = &norm[z * plane..(z + 1) * plane];
        let applied = ctx.scoped(|| -> Result<Vec<f32>, GpuError> {
            let src = ctx.upload("zs_n2n.src", norm);
            let dst = ctx.storage("zs_n2n.out", plane);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.clear_buffer(&dst, 0, None);
            // Bind groups and uniforms live until the submission is done.
            let (mut groups_kept, mut uniforms_kept) = (Vec::new(), Vec::new());
            for y0 in (0..h).step_by(band) {
                let rows = band.min(h - y0);
                for &(fy, fx) in flips {
                    // Pass k writes map k % 2 and reads the other; the output layer reads
                    // the last convolution's.
                    let map = |k: usize| (k % 2 * map_len) as u32;
                    let passes = (0..=layers).map(|k| {
                        let (entry, halo, depth) = match k {
                            0 => ("layer1", halo, 1),
                            k if k < layers => ("layer2", halo - k, c4 / 4),
                            _ => ("layer3", 0, 1),
                        };
                        let from = k.saturating_sub(1);
                        (entry, halo, depth, map(from), map(k), w_at[k])
                    });
                    for (entry, halo, depth, from_at, to_at, w_at) in passes {
                        let u = Uniforms {
                            width: w as u32,
                            height: h as u32,
                            c: c as u32,
                            y0: y0 as u32,
                            rows: rows as u32,
                            flip_y: u32::from(fy),
                            flip_x: u32::from(fx),
                            c4: c4 as u32,
                            from_at,
                            to_at,
                            halo: halo as u32,
                            w_at: w_at as u32,
                            share,
                            _pad0: 0,
                            _pad1: 0,
                            _pad2: 0,
                        };
                        let ub = ctx.uniform("zs_n2n.params", bytemuck::bytes_of(&u));
                        let bg = ctx.bind(&kernel, entry, &[&src, &hidden, &wb, &dst, &ub]);
                        crate::context::dispatch(
                            &mut enc,
                            &kernel,
                            entry,
                            &bg,
                            (groups(w, WG), groups(rows + 2 * halo, WG), depth as u32),
                        );
                        groups_kept.push(bg);
                        uniforms_kept.push(ub);
                    }
                }
            }
            ctx.queue.submit([enc.finish()]);
            ctx.read_back(&dst, plane)
        })??;
        out.extend(applied.iter().map(|&v| (f64::from(v) * std + mean) as f32));
        if let Some((ctl, total)) = progress {
            ctl.advance(1, total)?;
        }
    }
    denoisekit_core::volume_from_vec(d, h, w, out).map_err(|e| GpuError::Validation(e.to_string()))
}

/// The weights as the kernel reads them: the output channels of the convolutions between
/// hidden maps (and their biases and the output layer's weights) padded with zeros to a
/// multiple of 4; and where each pass's weights start (the first layer's, each
/// convolution's between hidden maps, the output layer's).
fn padded(net: &Net) -> (Vec<f32>, Vec<usize>) {
    let c = net.c;
    let c4 = c.next_multiple_of(4);
    let pad = |v: &[f32]| {
        let mut v = v.to_vec();
        v.resize(c4, 0.0);
        v
    };
    let [w1, b1, _, _, w3, b3] = net.tensors();
    let mut out = [w1, b1].concat();
    let mut at = vec![0];
    for l in 0..net.layers - 1 {
        at.push(out.len());
        let (w2, b2) = net.hidden(l);
        for row in w2.chunks(c) {
            out.extend(pad(row));
        }
        out.extend(pad(b2));
    }
    at.push(out.len());
    out.extend(pad(w3));
    out.extend(b3);
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use denoisekit_core::methods::zs_n2n::{Teacher, apply_all, train_or_load};
    use denoisekit_core::phantom::{PhantomSpec, phantom};

    /// The network on the image alone (what a refined job applies) and on its four mirror
    /// images (unrefined) gives the CPU's values: the kernel takes its share of the
    /// average from the number of mirror images. A refined job refines the network's
    /// output on the image alone.
    #[test]
    fn the_network_on_one_mirror_image_or_four_is_the_cpu_s() {
        let Some(ctx) = crate::context::test_context() else {
            return;
        };
        let img = phantom(&PhantomSpec {
            shape: (2, 33, 27),
            seed: 5,
            ..Default::default()
        })
        .noisy;
        let m = denoisekit_core::find("zs_n2n").unwrap();
        let file = std::env::temp_dir().join(format!("dk-gpu-mirrors-{}.json", std::process::id()));
        let path = file.display().to_string();
        let saving = m
            .quick_values()
            .set("steps", 20)
            .set("width", 6)
            .set("save_weights", path.as_str());
        denoisekit_core::run("zs_n2n", img.view(), &saving, &Control::new()).unwrap();
        let values = denoisekit_core::ParamValues::new().set("weights", path.as_str());
        let (_, resolved) = denoisekit_core::prepare("zs_n2n", &img.view(), &values).unwrap();
        let p = ZsN2nParams::from_resolved(&resolved).unwrap();
        assert_eq!(mirror_images(&p), &FLIPS[..1]);
        let ctl = Control::new();
        let t = train_or_load(img.view(), Teacher::None, &p, &ctl)
            .unwrap()
            .unwrap();
        let s = Shape::of(&img.view());
        let (lo, hi) = denoisekit_core::volume::min_max(&img.view());
        let mut outputs = Vec::new();
        for flips in [&FLIPS[..1], &FLIPS[..]] {
            let cpu = apply_all(&t.net, &t.norm, s, (t.mean, t.std), flips, None).unwrap();
            let gpu = apply(
                ctx,
                &t.net,
                &t.norm,
                s,
                (t.mean, t.std),
                flips,
                u64::MAX,
                None,
            )
            .unwrap();
            let d = cpu
                .iter()
                .zip(&gpu)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
                / (hi - lo);
            assert!(
                d <= 1e-5,
                "{} mirror images: GPU - CPU = {d:e} of the range",
                flips.len()
            );
            outputs.push(gpu);
        }
        let once = outputs.swap_remove(0);
        let job = run(ctx, img.view(), &resolved, &Control::new(), None).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(job, refine(img.view(), once, &p, &ctl, t.total).unwrap());
    }
}
