// Zero-shot Noise2Noise's network applied to one normalised plane (denoisekit_core
// zs_n2n/net.rs): `layers` 3x3 convolutions of `c` channels with leaky ReLUs, a 1x1
// convolution to the predicted noise, subtracted from the input. The CPU averages
// `x - net(x)` over the plane's mirror images (four, or one when refined), mirrored back;
// mirroring the image and back is the same as mirroring the kernels, so each pass reads
// its taps mirrored (`flip_y`, `flip_x`) and adds `share` (one over the number of mirror
// images) of `x - net(x)` to `out` in the CPU's order of mirror images. Sums run in the
// CPU's order (taps row by row, then input channels), zero outside the plane.
//
// A plane runs in bands of rows. Each 3x3 convolution needs one more row on each side of
// its output than the next one reads, so `layer1` fills its map for the band's rows and
// `layers - 1` more on each side (`halo`), and each `layer2` dispatch (one per
// convolution between hidden maps, its weights from `w_at`) computes four channels per
// invocation with one row less on each side, alternating between two maps of `hidden`
// (`from_at`, `to_at`). The hidden channels are padded to a multiple of 4 (`c4`, also
// the maps' stride) with zero weights, which add exact zeros. `layer3` projects the last
// map to the noise (its weights from `w_at`) and accumulates the result.
//
// Bindings (group 0):
//   0  src      array<f32>  read        the normalised plane, `width` x `height`
//   1  hidden   array<f32>  read_write  two maps of (rows + 2 · (layers - 1)) x width x c4,
//                                       channels last
//   2  weights  array<f32>  read        w1 (9c), b1 (c), then per layer between hidden
//                                       maps w2 (9·c·c4: [k][ci][co], co padded to c4) and
//                                       b2 (c4), then w3 (c4), b3 (1)
//   3  out      array<f32>  read_write  the plane's result, accumulated over the passes
//   4  p        Params      uniform

struct Params {
    width: u32,
    height: u32,
    c: u32,
    // First row of the band and its number of rows.
    y0: u32,
    rows: u32,
    flip_y: u32,
    flip_x: u32,
    // `c` rounded up to a multiple of 4.
    c4: u32,
    // Where the pass's input and output maps start in `hidden`.
    from_at: u32,
    to_at: u32,
    // Rows of the output map beyond the band on each side.
    halo: u32,
    // Where the pass's weights start in `weights`.
    w_at: u32,
    // The pass's share of the average over mirror images.
    share: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const SLOPE: f32 = 0.2;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn leaky(v: f32) -> f32 {
    if (v < 0.0) {
        return v * SLOPE;
    }
    return v;
}

// The offset of tap `k` (0, 1, 2) along an axis, mirrored when `flip` is set.
fn tap(k: u32, flip: u32) -> i32 {
    if (flip == 1u) {
        return 1 - i32(k);
    }
    return i32(k) - 1;
}

fn inside(y: i32, x: i32) -> bool {
    return y >= 0 && y < i32(p.height) && x >= 0 && x < i32(p.width);
}

// Four consecutive weights: the biases or one tap's weights of four output channels.
fn weights4(at: u32) -> vec4<f32> {
    return vec4<f32>(weights[at], weights[at + 1u], weights[at + 2u], weights[at + 3u]);
}

@compute @workgroup_size(16, 16, 1)
fn layer1(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.rows + 2u * p.halo) {
        return;
    }
    let c = p.c;
    let y = i32(p.y0) + i32(id.y) - i32(p.halo);
    let x = i32(id.x);
    let at = p.to_at + (id.y * p.width + id.x) * p.c4;
    let row_inside = y >= 0 && y < i32(p.height);
    for (var co = 0u; co < c; co++) {
        var acc = 0.0;
        if (row_inside) {
            acc = weights[9u * c + co];
            for (var ky = 0u; ky < 3u; ky++) {
                for (var kx = 0u; kx < 3u; kx++) {
                    let sy = y + tap(ky, p.flip_y);
                    let sx = x + tap(kx, p.flip_x);
                    if (inside(sy, sx)) {
                        acc += src[u32(sy) * p.width + u32(sx)] * weights[(ky * 3u + kx) * c + co];
                    }
                }
            }
            acc = leaky(acc);
        }
        hidden[at + co] = acc;
    }
}

@compute @workgroup_size(16, 16, 1)
fn layer2(@builtin(global_invocation_id) id: vec3<u32>) {
    let quads = p.c4 / 4u;
    if (id.x >= p.width || id.y >= p.rows + 2u * p.halo || id.z >= quads) {
        return;
    }
    let c = p.c;
    let c4 = p.c4;
    let y = i32(p.y0) + i32(id.y) - i32(p.halo);
    let co = 4u * id.z;
    let o = p.to_at + (id.y * p.width + id.x) * c4 + co;
    if (y < 0 || y >= i32(p.height)) {
        // Outside the plane: never read (the next layer's taps skip it).
        return;
    }
    let b2 = p.w_at + 9u * c * c4;
    var acc = weights4(b2 + co);
    for (var ky = 0u; ky < 3u; ky++) {
        for (var kx = 0u; kx < 3u; kx++) {
            let dy = tap(ky, p.flip_y);
            let dx = tap(kx, p.flip_x);
            if (!inside(y + dy, i32(id.x) + dx)) {
                continue;
            }
            // Row `id.y + 1 + dy` of the input map, which starts one row above.
            let at = p.from_at + (u32(i32(id.y) + 1 + dy) * p.width + u32(i32(id.x) + dx)) * c4;
            let wk = p.w_at + (ky * 3u + kx) * c * c4 + co;
            for (var ci = 0u; ci < c; ci++) {
                let w = wk + ci * c4;
                acc += hidden[at + ci] * weights4(w);
            }
        }
    }
    hidden[o] = leaky(acc.x);
    hidden[o + 1u] = leaky(acc.y);
    hidden[o + 2u] = leaky(acc.z);
    hidden[o + 3u] = leaky(acc.w);
}

@compute @workgroup_size(16, 16, 1)
fn layer3(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.rows) {
        return;
    }
    let c = p.c;
    let at = p.from_at + (id.y * p.width + id.x) * p.c4;
    var noise = weights[p.w_at + p.c4];
    for (var co = 0u; co < c; co++) {
        noise += hidden[at + co] * weights[p.w_at + co];
    }
    let i = (p.y0 + id.y) * p.width + id.x;
    out[i] += p.share * (src[i] - noise);
}
