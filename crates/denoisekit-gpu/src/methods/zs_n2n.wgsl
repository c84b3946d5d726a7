// Zero-shot Noise2Noise's network applied to one normalised plane (denoisekit_core
// zs_n2n/net.rs): two 3x3 convolutions of `c` channels with leaky ReLUs, a 1x1 convolution
// to the predicted noise, subtracted from the input. The CPU averages `x - net(x)` over
// the plane's four mirror images, mirrored back; mirroring the image and back is the same
// as mirroring the kernels, so each pass reads its taps mirrored (`flip_y`, `flip_x`) and
// adds a quarter of `x - net(x)` to `out` in the CPU's order of mirror images. Sums run in
// the CPU's order (taps row by row, then input channels), zero outside the plane.
//
// A plane runs in bands of rows: `layer1` fills `a1` for the band's rows and one more on
// each side, `layer2` computes four channels of the second layer per invocation
// (the hidden channels padded to a multiple of 4 with zero weights, which add exact zeros),
// and `layer3` projects them to the noise and accumulates the result.
//
// Bindings (group 0):
//   0  src      array<f32>  read        the normalised plane, `width` x `height`
//   1  hidden   array<f32>  read_write  first layer, (rows + 2) x width x c, channels last;
//                                       from `a2_at`, second layer, rows x width x c4
//   2  weights  array<f32>  read        w1 (9c), b1 (c), w2 (9·c·c4: [k][ci][co], co padded
//                                       to c4), b2 (c4), w3 (c4), b3 (1)
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
    // Where the second layer starts in `hidden`.
    a2_at: u32,
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

@compute @workgroup_size(16, 16, 1)
fn layer1(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.rows + 2u) {
        return;
    }
    let c = p.c;
    let y = i32(p.y0) + i32(id.y) - 1;
    let x = i32(id.x);
    let at = (id.y * p.width + id.x) * c;
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
    if (id.x >= p.width || id.y >= p.rows || id.z >= quads) {
        return;
    }
    let c = p.c;
    let c4 = p.c4;
    let y = p.y0 + id.y;
    let co = 4u * id.z;
    let w2 = 10u * c;
    let b2 = w2 + 9u * c * c4;
    var acc = vec4<f32>(weights[b2 + co], weights[b2 + co + 1u], weights[b2 + co + 2u], weights[b2 + co + 3u]);
    for (var ky = 0u; ky < 3u; ky++) {
        for (var kx = 0u; kx < 3u; kx++) {
            let dy = tap(ky, p.flip_y);
            let dx = tap(kx, p.flip_x);
            if (!inside(i32(y) + dy, i32(id.x) + dx)) {
                continue;
            }
            // Row `id.y + 1 + dy` of the band's first layer, which starts one row above.
            let at = (u32(i32(id.y) + 1 + dy) * p.width + u32(i32(id.x) + dx)) * c;
            let wk = w2 + (ky * 3u + kx) * c * c4 + co;
            for (var ci = 0u; ci < c; ci++) {
                let w = wk + ci * c4;
                acc += hidden[at + ci] * vec4<f32>(weights[w], weights[w + 1u], weights[w + 2u], weights[w + 3u]);
            }
        }
    }
    let o = p.a2_at + (id.y * p.width + id.x) * c4 + co;
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
    let w3 = 10u * c + 9u * c * p.c4 + p.c4;
    let at = p.a2_at + (id.y * p.width + id.x) * p.c4;
    var noise = weights[w3 + p.c4];
    for (var co = 0u; co < c; co++) {
        noise += hidden[at + co] * weights[w3 + co];
    }
    let i = (p.y0 + id.y) * p.width + id.x;
    out[i] += 0.25 * (src[i] - noise);
}
