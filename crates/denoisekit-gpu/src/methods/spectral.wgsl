// Filtering by a real, even transfer function (denoisekit_core spectral.rs), shared by
// `tikhonov` and `fourier_filter`. The CPU transforms the mirrored (even) extension of
// the image with FFTs; on that extension the transform is exactly a DCT-II, so the GPU
// runs a DCT-II along each axis, multiplies by the transfer sampled at k / (2n), and
// inverts with a DCT-III. Each output is a direct sum over its line (O(n) per value),
// with cosines from a table of cos(pi m / (2n)), m < 4n, computed in f64 on the host:
// no approximate GPU cosine, and any length, not only powers of two.
//
// Bindings (group 0):
//   0  src    array<f32>  read        (z, y, x) order
//   1  dst    array<f32>  read_write  same shape
//   2  table  array<f32>  read        `dct`: the cosine table of the axis;
//                                     `multiply`: the sampled transfer, `table_len` long,
//                                     repeated every `table_len` values
//   3  p      Params      uniform

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    axis: u32,
    inverse: u32,
    table_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// Forward: X_k = sum_j x_j cos(pi k (2j + 1) / (2n)).
// Inverse: x_j = (2 / n) (X_0 / 2 + sum_{k >= 1} X_k cos(pi k (2j + 1) / (2n))).
@compute @workgroup_size(16, 16, 1)
fn dct(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let i = (id.z * p.height + id.y) * p.width + id.x;
    var n = p.width;
    var stride = 1u;
    var pos = id.x;
    if (p.axis == 1u) {
        n = p.height;
        stride = p.width;
        pos = id.y;
    } else if (p.axis == 2u) {
        n = p.depth;
        stride = p.width * p.height;
        pos = id.z;
    }
    let base = i - pos * stride;
    let period = 4u * n;
    var acc = 0.0;
    if (p.inverse == 0u) {
        // m = k (2j + 1) mod 4n with k = pos, advancing by 2k per j.
        let step = (2u * pos) % period;
        var m = pos % period;
        for (var j = 0u; j < n; j++) {
            acc += src[base + j * stride] * table[m];
            m = (m + step) % period;
        }
    } else {
        // m = k (2j + 1) mod 4n with j = pos, advancing by 2j + 1 per k.
        let step = (2u * pos + 1u) % period;
        var m = step;
        acc = 0.5 * src[base];
        for (var k = 1u; k < n; k++) {
            acc += src[base + k * stride] * table[m];
            m = (m + step) % period;
        }
        acc *= 2.0 / f32(n);
    }
    dst[i] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn multiply(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let i = (id.z * p.height + id.y) * p.width + id.x;
    dst[i] = src[i] * table[i % p.table_len];
}
