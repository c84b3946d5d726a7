// Separable Gaussian blur: one entry point per axis (denoisekit_core gaussian.rs).
//
// Bindings (group 0):
//   0  src      array<f32>  read        tile of planes, (z, y, x) order
//   1  dst      array<f32>  read_write  same layout; for convolve_z, depth_out planes
//   2  weights  array<f32>  read        normalised kernel, 2 * radius + 1 taps
//   3  p        Params      uniform
// Borders: x and y use border_index (identical to border.rs); z is "valid" only, because
// the host builds each tile with radius halo planes already resolved by the border rule.
// Summation runs over taps in ascending order, as on the CPU.

struct Params {
    width: u32,
    height: u32,
    depth_out: u32,
    radius: u32,
    border: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(16, 16, 1)
fn convolve_x(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth_out) {
        return;
    }
    let row = (id.z * p.height + id.y) * p.width;
    var acc = 0.0;
    for (var t = 0u; t <= 2u * p.radius; t++) {
        let j = border_index(i32(id.x) + i32(t) - i32(p.radius), i32(p.width), p.border);
        if (j >= 0) {
            acc += weights[t] * src[row + u32(j)];
        }
    }
    dst[row + id.x] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn convolve_y(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth_out) {
        return;
    }
    let plane = id.z * p.height * p.width;
    var acc = 0.0;
    for (var t = 0u; t <= 2u * p.radius; t++) {
        let j = border_index(i32(id.y) + i32(t) - i32(p.radius), i32(p.height), p.border);
        if (j >= 0) {
            acc += weights[t] * src[plane + u32(j) * p.width + id.x];
        }
    }
    dst[plane + id.y * p.width + id.x] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn convolve_z(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth_out) {
        return;
    }
    let plane_len = p.height * p.width;
    let xy = id.y * p.width + id.x;
    var acc = 0.0;
    for (var t = 0u; t <= 2u * p.radius; t++) {
        acc += weights[t] * src[(id.z + t) * plane_len + xy];
    }
    dst[id.z * plane_len + xy] = acc;
}

// convolve_z for a volume held whole on the GPU (Richardson-Lucy's blur): the z border is
// resolved here by border_index, as convolve_x and convolve_y do in the plane, instead of
// by halo planes gathered on the host. `depth_out` is the volume's depth.
@compute @workgroup_size(16, 16, 1)
fn convolve_z_border(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth_out) {
        return;
    }
    let plane_len = p.height * p.width;
    let xy = id.y * p.width + id.x;
    var acc = 0.0;
    for (var t = 0u; t <= 2u * p.radius; t++) {
        let j = border_index(i32(id.z) + i32(t) - i32(p.radius), i32(p.depth_out), p.border);
        if (j >= 0) {
            acc += weights[t] * src[u32(j) * plane_len + xy];
        }
    }
    dst[id.z * plane_len + xy] = acc;
}
