// Chambolle's projection algorithm for ROF total variation (denoisekit_core
// total_variation.rs), entirely on the GPU, with the CPU's stopping rule evaluated on the
// GPU too, so the host never waits for a reduction between iterations.
//
// One iteration = `divergence` (out = f + d, d the negative divergence of the dual p),
// `update` (gradient of out, its norm, projected update of p), `stop` (energy of the
// group, scikit-image's rule). A "group" is one plane when planes are solved on their
// own (z_weight 0), else the whole volume; each group stops on its own, as on the CPU.
// `divergence` and `update` reduce their energy terms per workgroup into `scratch`;
// `stop` sums a group's partials with one workgroup.
//
// Bindings (group 0):
//   0  f        array<f32>  read        the input, (z, y, x) order, n values
//   1  out      array<f32>  read_write  the result
//   2  dual     array<f32>  read_write  px (n), py (n), then pz (n) when wz > 0
//   3  scratch  array<f32>  read_write  per group [first, previous, stopped, iteration],
//                                       then partial sums: d² terms, then |grad| terms,
//                                       one per workgroup of the 16 x 16 grid per plane
//   4  p        Params      uniform

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    groups_x: u32,
    groups_y: u32,
    per_plane: u32,
    min_iterations: u32,
    _pad0: u32,
    tau: f32,
    k: f32,
    lambda: f32,
    wz: f32,
    tolerance: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<storage, read> f: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> dual: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG_SIZE: u32 = 256u;
var<workgroup> acc: array<f32, 256>;

fn group_of(z: u32) -> u32 {
    return select(0u, z, p.per_plane != 0u);
}

fn n_groups() -> u32 {
    return select(1u, p.depth, p.per_plane != 0u);
}

fn partials_per_plane() -> u32 {
    return p.groups_x * p.groups_y;
}

// Index of this workgroup's partial sum for `term` (0: d², 1: |grad|).
fn partial_index(wid: vec3<u32>, term: u32) -> u32 {
    let per_term = partials_per_plane() * p.depth;
    let wg = (wid.z * p.groups_y + wid.y) * p.groups_x + wid.x;
    return 4u * n_groups() + term * per_term + wg;
}

// Sums `v` over the workgroup into acc[0]. Every invocation must call it.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    acc[lid] = v;
    workgroupBarrier();
    for (var s = WG_SIZE / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            acc[lid] += acc[lid + s];
        }
        workgroupBarrier();
    }
    return acc[0];
}

// The group's state is only written by `stop`, in a later dispatch.
fn running(z: u32) -> bool {
    return scratch[4u * group_of(z) + 2u] == 0.0;
}

fn first_iteration(z: u32) -> bool {
    return scratch[4u * group_of(z) + 3u] == 0.0;
}

@compute @workgroup_size(16, 16, 1)
fn divergence(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = p.width * p.height * p.depth;
    let plane = p.width * p.height;
    var term = 0.0;
    if (id.x < p.width && id.y < p.height && running(id.z)) {
        let i = (id.z * p.height + id.y) * p.width + id.x;
        let fi = f[i];
        if (first_iteration(id.z)) {
            out[i] = fi;
        } else {
            var pxl = 0.0;
            if (id.x > 0u) {
                pxl = dual[i - 1u];
            }
            var up = 0.0;
            if (id.y > 0u) {
                up = dual[n + i - p.width];
            }
            var o = fi + (pxl - dual[i] - dual[n + i] + up);
            if (p.wz > 0.0) {
                var back = 0.0;
                if (id.z > 0u) {
                    back = dual[2u * n + i - plane];
                }
                o += p.wz * (back - dual[2u * n + i]);
            }
            out[i] = o;
            term = (o - fi) * (o - fi);
        }
    }
    let s = workgroup_sum(lid, term);
    if (lid == 0u) {
        scratch[partial_index(wid, 0u)] = s;
    }
}

@compute @workgroup_size(16, 16, 1)
fn update(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = p.width * p.height * p.depth;
    let plane = p.width * p.height;
    var term = 0.0;
    if (id.x < p.width && id.y < p.height && running(id.z)) {
        let i = (id.z * p.height + id.y) * p.width + id.x;
        let c = out[i];
        // The last column, row and plane have no neighbour: their gradient is 0.
        var r = c;
        if (id.x + 1u < p.width) {
            r = out[i + 1u];
        }
        var dn = c;
        if (id.y + 1u < p.height) {
            dn = out[i + p.width];
        }
        var bk = c;
        if (p.wz > 0.0 && id.z + 1u < p.depth) {
            bk = out[i + plane];
        }
        let gx = r - c;
        let gy = dn - c;
        let gz = p.wz * (bk - c);
        let norm = sqrt(gx * gx + gy * gy + gz * gz);
        let inv = 1.0 / (1.0 + norm * p.k);
        dual[i] = (dual[i] - p.tau * gx) * inv;
        dual[n + i] = (dual[n + i] - p.tau * gy) * inv;
        if (p.wz > 0.0) {
            dual[2u * n + i] = (dual[2u * n + i] - p.tau * gz) * inv;
        }
        term = norm;
    }
    let s = workgroup_sum(lid, term);
    if (lid == 0u) {
        scratch[partial_index(wid, 1u)] = s;
    }
}

// One workgroup per group: its energy from the partials, then the stopping rule.
@compute @workgroup_size(256, 1, 1)
fn stop(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let g = wid.x;
    let per_plane = partials_per_plane();
    var first_plane = 0u;
    var planes = p.depth;
    if (p.per_plane != 0u) {
        first_plane = g;
        planes = 1u;
    }
    let base = 4u * n_groups() + first_plane * per_plane;
    let count = planes * per_plane;
    let per_term = per_plane * p.depth;
    var sd = 0.0;
    var sg = 0.0;
    for (var j = lid; j < count; j += WG_SIZE) {
        sd += scratch[base + j];
        sg += scratch[base + per_term + j];
    }
    let e_d = workgroup_sum(lid, sd);
    workgroupBarrier();
    let e_g = workgroup_sum(lid, sg);
    if (lid != 0u) {
        return;
    }
    let s = 4u * g;
    if (scratch[s + 2u] != 0.0) {
        return;
    }
    let energy = (e_d + p.lambda * e_g) / f32(planes * p.width * p.height);
    let it = scratch[s + 3u];
    if (it == 0.0) {
        scratch[s] = energy;
    } else if (it >= f32(p.min_iterations) && abs(scratch[s + 1u] - energy) < p.tolerance * scratch[s]) {
        scratch[s + 2u] = 1.0;
        return;
    }
    scratch[s + 1u] = energy;
    scratch[s + 3u] = it + 1.0;
}
