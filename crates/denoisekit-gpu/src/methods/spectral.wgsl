// Filtering by a real, even transfer function (denoisekit_core spectral.rs), shared by
// `tikhonov`, `fourier_filter` and Richardson-Lucy's optical PSFs. The CPU transforms the
// mirrored (even) extension of the image with FFTs; on that extension the transform is
// exactly a DCT-II, so the GPU runs a DCT-II along each axis, multiplies by the transfer
// sampled at k / (2n), and inverts with a DCT-III:
//   forward  X_k = sum_j x_j cos(pi k (2j + 1) / (2n))
//   inverse  x_j = (2 / n) (X_0 / 2 + sum_{k >= 1} X_k cos(pi k (2j + 1) / (2n)))
//
// Each DCT is one complex DFT of length n (Makhoul's reordering, as on the CPU), so it
// costs O(log n) per value instead of the direct sum's O(n):
//   DCT-II:  v = x[0], x[2], x[4], ..., x[5], x[3], x[1];  X_k = Re(e^{-i pi k/(2n)} DFT(v)_k)
//   DCT-III: W_k = e^{-i pi k/(2n)} (X_k + i X_{n-k});     x in v's order = Re(DFT(W)) / n
// (the second is the inverse DFT of the conjugate, whose result is real). A length whose
// prime factors are all at most MAX_RADIX runs as mixed-radix Stockham passes (radix 4
// where it can); any other length by Bluestein's chirp-z: a circular convolution with the
// chirp of length m = 2^p >= 2n - 1, done as a forward FFT, a product with the chirp's
// spectrum, and another forward FFT of the conjugate (an inverse FFT up to a conjugate and
// 1/m, which the unpacking applies). So only forward passes exist, and every factor
// (twiddles, chirps, 1/m, 1/n) comes from a table computed in f64 on the host: no
// approximate GPU sine or cosine.
//
// One line per workgroup row: `line0 + global_id.y` indexes the lines along `axis`; the
// complex scratch holds the lines of one chunk, m complex values (2 floats) each.
//
// With `complex` set, `pack` and `unpack` instead move lines of a complex (z, y, x)
// volume (interleaved re, im) as they are, without reordering or factors: plain FFTs
// along each axis, for the convolution with a measured PSF (convolve.wgsl), whose padded
// lengths always factor into radices the Stockham passes have.
//
// Bindings (group 0):
//   0  src    array<f32>  read        a real (z, y, x) volume or a complex scratch
//   1  dst    array<f32>  read_write  the same, per entry point
//   2  table  array<f32>  read        `multiply`: the sampled transfer, `table_len` long,
//                                     repeated every `table_len` values; otherwise the
//                                     axis's tables (twiddles, pre, post, chirp spectrum)
//   3  p      Params      uniform

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    axis: u32,
    // Length of the transformed axis and of its FFT.
    n: u32,
    m: u32,
    // First line of this chunk.
    line0: u32,
    // `butterfly`: the pass's radix and the length of the sub-transforms it merges.
    radix: u32,
    span: u32,
    // Offsets in `table` (in floats) of the complex factors applied when packing and
    // unpacking, and of the chirp's spectrum.
    pre: u32,
    post: u32,
    spectrum: u32,
    // 1 for the DCT-III.
    inverse: u32,
    // 1 when unpacking conjugates first (after Bluestein's second FFT).
    conj_after: u32,
    table_len: u32,
    // 1: `pack` and `unpack` move complex lines as they are (plain FFTs).
    complex: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn factor(offset: u32, k: u32) -> vec2<f32> {
    return vec2<f32>(table[offset + 2u * k], table[offset + 2u * k + 1u]);
}

fn load_c(i: u32) -> vec2<f32> {
    return vec2<f32>(src[2u * i], src[2u * i + 1u]);
}

fn store_c(i: u32, v: vec2<f32>) {
    dst[2u * i] = v.x;
    dst[2u * i + 1u] = v.y;
}

// Index in the real volume of position `j` along line `line` of the axis.
fn real_index(line: u32, j: u32) -> u32 {
    if (p.axis == 0u) {
        return line * p.width + j;
    }
    if (p.axis == 1u) {
        let plane = line / p.width;
        let x = line % p.width;
        return (plane * p.height + j) * p.width + x;
    }
    return j * p.width * p.height + line;
}

// Real line -> complex scratch, reordered (DCT-II) or paired (DCT-III), times `pre`,
// zero-padded to m.
@compute @workgroup_size(64, 1, 1)
fn pack(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if (k >= p.m) {
        return;
    }
    let local = id.y;
    let line = p.line0 + local;
    var v = vec2<f32>(0.0, 0.0);
    if (p.complex == 1u) {
        if (k < p.n) {
            let at = real_index(line, k);
            v = vec2<f32>(src[2u * at], src[2u * at + 1u]);
        }
        store_c(local * p.m + k, v);
        return;
    }
    if (k < p.n) {
        if (p.inverse == 0u) {
            var j = 2u * k;
            if (k >= (p.n + 1u) / 2u) {
                j = 2u * (p.n - 1u - k) + 1u;
            }
            v = vec2<f32>(src[real_index(line, j)], 0.0);
        } else {
            var partner = 0.0;
            if (k > 0u) {
                partner = src[real_index(line, p.n - k)];
            }
            v = vec2<f32>(src[real_index(line, k)], partner);
        }
        v = cmul(v, factor(p.pre, k));
    }
    store_c(local * p.m + k, v);
}

const MAX_RADIX: u32 = 13u;

// One Stockham pass of radix `radix` (natural order in and out after the last pass):
// merges `radix` sub-transforms of length `span` into one of length `radix` * `span`.
// Twiddles and the small DFT's roots both come from the table of e^{-2 pi i t / m}.
@compute @workgroup_size(64, 1, 1)
fn butterfly(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = p.radix;
    let stride = p.m / r;
    let i = id.x;
    if (i >= stride) {
        return;
    }
    let base = id.y * p.m;
    let k = i % p.span;
    // e^{-2 pi i j k / (span r)} = e^{-2 pi i t / m} with t = j k m / (span r).
    let step = k * (stride / p.span);
    let out = base + (i - k) * r + k;
    // Radix 2 and 4 (every power of two) spelled out: their roots are ±1 and ±i.
    if (r == 2u) {
        let a0 = load_c(base + i);
        let a1 = cmul(load_c(base + i + stride), factor(0u, step));
        store_c(out, a0 + a1);
        store_c(out + p.span, a0 - a1);
        return;
    }
    if (r == 4u) {
        let a0 = load_c(base + i);
        let a1 = cmul(load_c(base + i + stride), factor(0u, step));
        let a2 = cmul(load_c(base + i + 2u * stride), factor(0u, 2u * step));
        let a3 = cmul(load_c(base + i + 3u * stride), factor(0u, 3u * step));
        let t0 = a0 + a2;
        let t1 = a0 - a2;
        let t2 = a1 + a3;
        // -i (a1 - a3)
        let t3 = vec2<f32>(a1.y - a3.y, a3.x - a1.x);
        store_c(out, t0 + t2);
        store_c(out + p.span, t1 + t3);
        store_c(out + 2u * p.span, t0 - t2);
        store_c(out + 3u * p.span, t1 - t3);
        return;
    }
    var u: array<vec2<f32>, MAX_RADIX>;
    for (var j = 0u; j < r; j++) {
        u[j] = cmul(load_c(base + i + j * stride), factor(0u, j * step));
    }
    for (var s = 0u; s < r; s++) {
        var acc = u[0];
        for (var j = 1u; j < r; j++) {
            acc += cmul(u[j], factor(0u, ((j * s) % r) * stride));
        }
        store_c(out + s * p.span, acc);
    }
}

// Bluestein: the conjugate of the product with the chirp's spectrum, so that the next
// forward FFT computes the (conjugated, m times) inverse.
@compute @workgroup_size(64, 1, 1)
fn convolve(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if (k >= p.m) {
        return;
    }
    let i = id.y * p.m + k;
    let v = cmul(load_c(i), factor(p.spectrum, k));
    store_c(i, vec2<f32>(v.x, -v.y));
}

// Complex scratch -> real line: the real part of the value times `post`, placed back in
// the natural order (DCT-III) or as is (DCT-II).
@compute @workgroup_size(64, 1, 1)
fn unpack(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    if (j >= p.n) {
        return;
    }
    let local = id.y;
    if (p.complex == 1u) {
        let v = load_c(local * p.m + j);
        let at = real_index(p.line0 + local, j);
        dst[2u * at] = v.x;
        dst[2u * at + 1u] = v.y;
        return;
    }
    var k = j;
    if (p.inverse == 1u) {
        k = j / 2u;
        if (j % 2u == 1u) {
            k = p.n - 1u - j / 2u;
        }
    }
    var v = load_c(local * p.m + k);
    if (p.conj_after == 1u) {
        v.y = -v.y;
    }
    let f = factor(p.post, k);
    dst[real_index(p.line0 + local, j)] = v.x * f.x - v.y * f.y;
}

@compute @workgroup_size(16, 16, 1)
fn multiply(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let i = (id.z * p.height + id.y) * p.width + id.x;
    dst[i] = src[i] * table[i % p.table_len];
}
