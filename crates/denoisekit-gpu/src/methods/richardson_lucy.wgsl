// Richardson-Lucy's pointwise steps and its TV term (denoisekit_core richardson_lucy.rs).
// The blurs are the Gaussian kernel's passes or the spectral kernel's DCT passes, run
// between these entry points on buffers that stay on the GPU for every iteration.
//
// Bindings (group 0), by entry point:
//                 a (read)    b (read_write)           c (read)
//   ratio         f           K u, replaced by f / K u  -
//   update        K^T ratio   u                         div (if tv > 0)
//   tv_gradient   u           p: px, py, pz (3n)        -
//   tv_divergence p (3n)      div                       -
// Unused bindings hold a placeholder buffer.

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    use_z: u32,
    tiny: f32,
    eps2: f32,
    tv: f32,
    _pad: f32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn index(id: vec3<u32>) -> u32 {
    return (id.z * p.height + id.y) * p.width + id.x;
}

fn outside(id: vec3<u32>) -> bool {
    return id.x >= p.width || id.y >= p.height || id.z >= p.depth;
}

@compute @workgroup_size(16, 16, 1)
fn ratio(@builtin(global_invocation_id) id: vec3<u32>) {
    if (outside(id)) {
        return;
    }
    let i = index(id);
    let k = b[i];
    b[i] = select(1.0, a[i] / k, k > p.tiny);
}

@compute @workgroup_size(16, 16, 1)
fn update(@builtin(global_invocation_id) id: vec3<u32>) {
    if (outside(id)) {
        return;
    }
    let i = index(id);
    if (p.tv > 0.0) {
        // tv <= 0.005 and |div| <= 6 keep the denominator >= 0.97.
        b[i] = b[i] * a[i] / (1.0 - p.tv * c[i]);
    } else {
        b[i] = b[i] * a[i];
    }
}

// Forward differences (0 across the last column, row, plane), normalised with eps2.
@compute @workgroup_size(16, 16, 1)
fn tv_gradient(@builtin(global_invocation_id) id: vec3<u32>) {
    if (outside(id)) {
        return;
    }
    let n = p.width * p.height * p.depth;
    let i = index(id);
    let u = a[i];
    var gx = 0.0;
    if (id.x + 1u < p.width) {
        gx = a[i + 1u] - u;
    }
    var gy = 0.0;
    if (id.y + 1u < p.height) {
        gy = a[i + p.width] - u;
    }
    var gz = 0.0;
    if (p.use_z != 0u && id.z + 1u < p.depth) {
        gz = a[i + p.width * p.height] - u;
    }
    let norm = sqrt(gx * gx + gy * gy + gz * gz + p.eps2);
    b[i] = gx / norm;
    b[n + i] = gy / norm;
    b[2u * n + i] = gz / norm;
}

// Backward differences with p = 0 outside: the adjoint of the forward gradient.
@compute @workgroup_size(16, 16, 1)
fn tv_divergence(@builtin(global_invocation_id) id: vec3<u32>) {
    if (outside(id)) {
        return;
    }
    let n = p.width * p.height * p.depth;
    let i = index(id);
    var bx = a[i];
    if (id.x > 0u) {
        bx -= a[i - 1u];
    }
    var by = a[n + i];
    if (id.y > 0u) {
        by -= a[n + i - p.width];
    }
    var bz = 0.0;
    if (p.use_z != 0u) {
        bz = a[2u * n + i];
        if (id.z > 0u) {
            bz -= a[2u * n + i - p.width * p.height];
        }
    }
    b[i] = bx + by + bz;
}
