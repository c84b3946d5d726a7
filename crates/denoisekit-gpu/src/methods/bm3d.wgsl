// BM3D (denoisekit_core bm3d.rs) on one plane, one stage at a time, in the CPU's
// arithmetic order: the same matches, coefficients and weights up to the rounding of fused
// multiply-adds; only the aggregation adds in another (fixed) order.
//
// Entry points, per band of reference rows (`row0`, one dispatch row per reference row):
//   match_refs     one invocation per reference: scans the search window on the guide
//                  (the noisy plane, or the basic estimate for Wiener), keeps the closest
//                  patches under the threshold, and writes the group (size rounded down to
//                  a power of two, the reference first) to `groups`.
//   filter_groups  one workgroup of 64 per reference of one colour, a thread per patch
//                  pixel: 2D DCT of each patch (rows, then columns, through workgroup
//                  memory), the Haar transform across the group in each thread's
//                  registers, hard thresholding or Wiener shrinkage, the inverse
//                  transforms, and the Kaiser-weighted patches added to `acc` (numerator,
//                  then denominator) one patch after another.
// Per plane:
//   normalize      basic = numerator / denominator.
//
// Determinism: a colour is the references whose column and row (in the band) are
// (color_x, color_y) modulo `period`, and the host makes references of one colour so far
// apart that their groups cannot share a pixel. Colours run one dispatch after another,
// so every sum is added in one order, whatever the scheduling: a re-run gives the same
// pixels (float atomics would not).
//
// Bindings (group 0):
//   0  noisy   array<f32>  read        the plane minus its mean, width x height
//   1  basic   array<f32>  read_write  the stage's result (guide of the second)
//   2  acc     array<f32>  read_write  numerator and denominator, 2 x width x height
//   3  groups  array<u32>  read_write  GROUP_STRIDE per reference of the band
//   4  p       Params      uniform     one record per dispatch (a dynamic offset), with
//                                      the 8x8 DCT matrix and Kaiser window
// (Four storage buffers is what every device offers: the tables ride in the uniform.)

struct Params {
    width: u32,
    height: u32,
    refs_x: u32,
    refs_y: u32,
    row0: u32,
    step: u32,
    search_radius: u32,
    n_max: u32,
    wiener: u32,
    // Reference rows in this band.
    band_rows: u32,
    // This dispatch's colour: first reference column and band row, and their period.
    color_x: u32,
    color_y: u32,
    period: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // Matching threshold on the sum of squared differences over a patch.
    tau: f32,
    // Hard threshold on coefficients.
    threshold: f32,
    // sigma^2, the Wiener filter's noise power.
    noise_var: f32,
    // 1/sqrt(2) as the CPU rounds it.
    sqrt_half: f32,
    // Row-major, four values per element.
    dct: array<vec4<f32>, 16>,
    kaiser: array<vec4<f32>, 16>,
}

@group(0) @binding(0) var<storage, read> noisy: array<f32>;
@group(0) @binding(1) var<storage, read_write> basic: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@group(0) @binding(3) var<storage, read_write> groups: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const K: u32 = 8u;
// The final estimate's largest group (N_WIENER in bm3d.rs; a test checks).
const N_MAX: u32 = 32u;
const GROUP_STRIDE: u32 = N_MAX + 1u;
// f32::MIN_POSITIVE.
const MIN_POSITIVE: f32 = 1.17549435e-38;

// C[k][n] at k * 8 + n.
fn dct(i: u32) -> f32 {
    return p.dct[i / 4u][i % 4u];
}

// The plane the matching runs on.
fn guide(i: u32) -> f32 {
    if (p.wiener == 0u) {
        return noisy[i];
    }
    return basic[i];
}

// The grid of bm3d.rs's `grid`: every `step`, and the last position that fits a patch.
fn ref_at(i: u32, n: u32) -> u32 {
    return min(i * p.step, n - K);
}

@compute @workgroup_size(8, 8, 1)
fn match_refs(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = p.row0 + id.y;
    if (id.x >= p.refs_x || id.y >= p.band_rows || row >= p.refs_y) {
        return;
    }
    let x0 = ref_at(id.x, p.width);
    let y0 = ref_at(row, p.height);
    var reference: array<f32, 64>;
    for (var i = 0u; i < K; i++) {
        for (var j = 0u; j < K; j++) {
            reference[i * K + j] = guide((y0 + i) * p.width + x0 + j);
        }
    }
    // The closest candidates so far, by distance and then position. Candidates arrive in
    // increasing position, so one tying with the farthest kept one is never better: the
    // limit is strict, as on the CPU.
    var dist: array<f32, 31>;
    var pos: array<u32, 31>;
    let cap = p.n_max - 1u;
    var len = 0u;
    var limit = p.tau;
    let sr = i32(p.search_radius);
    let w = i32(p.width);
    let h = i32(p.height);
    for (var dy = -sr; dy <= sr; dy++) {
        let yc = i32(y0) + dy;
        if (yc < 0 || yc + i32(K) > h) {
            continue;
        }
        for (var dx = -sr; dx <= sr; dx++) {
            let xc = i32(x0) + dx;
            if ((dy == 0 && dx == 0) || xc < 0 || xc + i32(K) > w) {
                continue;
            }
            let at = u32(yc) * p.width + u32(xc);
            // Each column's squares summed down the rows, then the columns left to right:
            // the CPU's column and box sums.
            var d = 0.0;
            for (var j = 0u; j < K; j++) {
                var c = 0.0;
                for (var i = 0u; i < K; i++) {
                    let e = reference[i * K + j] - guide(at + i * p.width + j);
                    c += e * e;
                }
                d += c;
            }
            if (d < limit) {
                var k = len;
                if (len < cap) {
                    len++;
                } else {
                    k = cap - 1u;
                }
                while (k > 0u && dist[k - 1u] > d) {
                    dist[k] = dist[k - 1u];
                    pos[k] = pos[k - 1u];
                    k--;
                }
                dist[k] = d;
                pos[k] = at;
                if (len == cap) {
                    limit = dist[cap - 1u];
                }
            }
        }
    }
    let n = 1u << (31u - countLeadingZeros(len + 1u));
    let base = (id.y * p.refs_x + id.x) * GROUP_STRIDE;
    groups[base] = n;
    groups[base + 1u] = y0 * p.width + x0;
    for (var k = 1u; k < n; k++) {
        groups[base + 1u + k] = pos[k - 1u];
    }
}

var<workgroup> stack: array<f32, 2048>; // N_MAX patches of 64
var<workgroup> group_len: u32;
var<workgroup> kept: atomic<u32>;
var<workgroup> energy: array<f32, 8>;

fn source(wiener_guide: bool, i: u32) -> f32 {
    if (wiener_guide) {
        return basic[i];
    }
    return noisy[i];
}

// Thread t = (i, j) = (t / 8, t % 8) ends with coefficient (i, j) of each patch's 2D DCT in
// `out[m]`. Rows first, P C^T, each summed over n in order; then C (P C^T) over q in
// order: bm3d.rs's RowDct and matmul.
fn forward(t: u32, base: u32, n: u32, from_basic: bool, out: ptr<function, array<f32, 32>>) {
    let i = t / K;
    let j = t % K;
    for (var m = 0u; m < n; m++) {
        let at = groups[base + 1u + m] + i * p.width;
        var s = 0.0;
        for (var q = 0u; q < K; q++) {
            s += source(from_basic, at + q) * dct(j * K + q);
        }
        stack[m * 64u + t] = s;
    }
    workgroupBarrier();
    for (var m = 0u; m < n; m++) {
        var s = 0.0;
        for (var q = 0u; q < K; q++) {
            s += dct(i * K + q) * stack[m * 64u + q * K + j];
        }
        (*out)[m] = s;
    }
    workgroupBarrier();
}

// Orthonormal multi-level Haar across the group, as bm3d.rs's `haar`.
fn haar(g: ptr<function, array<f32, 32>>, n: u32) {
    let r = p.sqrt_half;
    var tmp: array<f32, 32>;
    var len = n;
    while (len > 1u) {
        let half = len / 2u;
        for (var i = 0u; i < half; i++) {
            let a = (*g)[2u * i];
            let b = (*g)[2u * i + 1u];
            tmp[i] = (a + b) * r;
            tmp[half + i] = (a - b) * r;
        }
        for (var i = 0u; i < len; i++) {
            (*g)[i] = tmp[i];
        }
        len = half;
    }
}

fn haar_inverse(g: ptr<function, array<f32, 32>>, n: u32) {
    let r = p.sqrt_half;
    var tmp: array<f32, 32>;
    var len = 1u;
    while (len < n) {
        for (var i = 0u; i < len; i++) {
            let a = (*g)[i];
            let d = (*g)[len + i];
            tmp[2u * i] = (a + d) * r;
            tmp[2u * i + 1u] = (a - d) * r;
        }
        for (var i = 0u; i < 2u * len; i++) {
            (*g)[i] = tmp[i];
        }
        len *= 2u;
    }
}

@compute @workgroup_size(64, 1, 1)
fn filter_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let base = ((p.color_y + wg.y * p.period) * p.refs_x + p.color_x + wg.x * p.period) * GROUP_STRIDE;
    if (t == 0u) {
        group_len = groups[base];
        atomicStore(&kept, 0u);
    }
    let n = workgroupUniformLoad(&group_len);
    let i = t / K;
    let j = t % K;
    var y: array<f32, 32>;
    var weight = 0.0;
    if (p.wiener == 0u) {
        forward(t, base, n, false, &y);
        haar(&y, n);
        var count = 0u;
        for (var m = 0u; m < n; m++) {
            if (abs(y[m]) <= p.threshold) {
                y[m] = 0.0;
            } else {
                count++;
            }
        }
        atomicAdd(&kept, count);
        workgroupBarrier();
        // Dabov's 1 / (sigma^2 kept); sigma^2 is the same for every group of the plane.
        weight = 1.0 / f32(max(atomicLoad(&kept), 1u));
    } else {
        var b: array<f32, 32>;
        forward(t, base, n, true, &b);
        haar(&b, n);
        forward(t, base, n, false, &y);
        haar(&y, n);
        for (var m = 0u; m < n; m++) {
            let bb = b[m] * b[m];
            let s = bb / (bb + p.noise_var);
            y[m] *= s;
            stack[m * 64u + t] = s * s;
        }
        workgroupBarrier();
        // The CPU's order: per column, over patches and then rows; then the columns.
        if (t < K) {
            var e = 0.0;
            for (var m = 0u; m < n; m++) {
                for (var q = 0u; q < K; q++) {
                    e += stack[m * 64u + q * K + t];
                }
            }
            energy[t] = e;
        }
        workgroupBarrier();
        var total = 0.0;
        for (var q = 0u; q < K; q++) {
            total += energy[q];
        }
        weight = 1.0 / max(total, MIN_POSITIVE);
    }
    haar_inverse(&y, n);
    // C^T D, then (C^T D) C: bm3d.rs's Dct::inverse.
    workgroupBarrier();
    for (var m = 0u; m < n; m++) {
        stack[m * 64u + t] = y[m];
    }
    workgroupBarrier();
    for (var m = 0u; m < n; m++) {
        var s = 0.0;
        for (var q = 0u; q < K; q++) {
            s += dct(q * K + i) * stack[m * 64u + q * K + j];
        }
        y[m] = s;
    }
    workgroupBarrier();
    for (var m = 0u; m < n; m++) {
        stack[m * 64u + t] = y[m];
    }
    workgroupBarrier();
    let wk = weight * p.kaiser[t / 4u][t % 4u];
    let plane = p.width * p.height;
    for (var m = 0u; m < n; m++) {
        var s = 0.0;
        for (var q = 0u; q < K; q++) {
            s += stack[m * 64u + i * K + q] * dct(q * K + j);
        }
        let at = groups[base + 1u + m] + i * p.width + j;
        acc[at] += wk * s;
        acc[plane + at] += wk;
        // Patches of a group may overlap: one at a time.
        storageBarrier();
    }
}

@compute @workgroup_size(16, 16, 1)
fn normalize(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let at = id.y * p.width + id.x;
    // Every pixel lies in its own reference patch's group: the denominator is positive.
    basic[at] = acc[at] / acc[p.width * p.height + at];
}
