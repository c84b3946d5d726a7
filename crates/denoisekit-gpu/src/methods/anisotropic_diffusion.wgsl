// One explicit Perona-Malik step (denoisekit_core anisotropic_diffusion.rs), one
// invocation per pixel, ping-ponging between two buffers so that the image stays on the
// GPU for all iterations. Each invocation recomputes the fluxes across its own faces
// instead of reading a flux buffer: the same values in the same order as the CPU's
// `fx[i] - fx[i-1] + fy[i] - fy[i-w] (+ fz[i] - fz[i-plane])`, with no flux across the
// volume's edges (Neumann).
//
// Bindings (group 0):
//   0  src  array<f32>  read        u before the step, (z, y, x) order
//   1  dst  array<f32>  read_write  u after the step
//   2  p    Params      uniform

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    exponential: u32,
    inv_k2: f32,
    step: f32,
    wz: f32,
    _pad: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// g(|next - c|) * (next - c) * weight. t is capped where exp has long reached 0, so that
// an overflowing square cannot turn into inf * 0.
fn flux(c: f32, next: f32, weight: f32) -> f32 {
    let delta = next - c;
    let t = min(delta * delta * p.inv_k2, 1.0e4);
    let g = select(1.0 / (1.0 + t), exp(-t), p.exponential != 0u);
    return g * delta * weight;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let w = p.width;
    let plane = p.width * p.height;
    let i = (id.z * p.height + id.y) * w + id.x;
    let c = src[i];
    var right = 0.0;
    if (id.x + 1u < w) {
        right = flux(c, src[i + 1u], 1.0);
    }
    var left = 0.0;
    if (id.x > 0u) {
        left = flux(src[i - 1u], c, 1.0);
    }
    var div = right - left;
    var down = 0.0;
    if (id.y + 1u < p.height) {
        down = flux(c, src[i + w], 1.0);
    }
    var up = 0.0;
    if (id.y > 0u) {
        up = flux(src[i - w], c, 1.0);
    }
    div += down - up;
    if (p.wz > 0.0) {
        var back = 0.0;
        if (id.z + 1u < p.depth) {
            back = flux(c, src[i + plane], p.wz);
        }
        var front = 0.0;
        if (id.z > 0u) {
            front = flux(src[i - plane], c, p.wz);
        }
        div += back - front;
    }
    dst[i] = c + p.step * div;
}
