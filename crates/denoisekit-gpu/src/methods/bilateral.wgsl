// Exact bilateral filter (denoisekit_core bilateral.rs), one invocation per output pixel.
//
// Bindings (group 0):
//   0  src  array<f32>  read        the volume, (z, y, x) order
//   1  dst  array<f32>  read_write  same shape
//   2  p    Params      uniform
// Border: replicate in x, y and z (border_index, identical to border.rs). Offsets whose
// spatial log-weight is below -30 are skipped, as on the CPU. The centre has weight 1, so
// the denominator is never 0.

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    radius: u32,
    radius_z: u32,
    inv_2ss: f32,
    inv_2sz: f32,
    inv_2sr: f32,
    x0: u32,
    y0: u32,
    z0: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    // One box of the output (see `per_pixel` in mod.rs): the dispatch starts at the origin.
    let id = gid + vec3<u32>(p.x0, p.y0, p.z0);
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let w = i32(p.width);
    let h = i32(p.height);
    let d = i32(p.depth);
    let r = i32(p.radius);
    let rz = i32(p.radius_z);
    let c = src[(id.z * p.height + id.y) * p.width + id.x];
    var num = 0.0;
    var den = 0.0;
    for (var dz = -rz; dz <= rz; dz++) {
        let zz = border_index(i32(id.z) + dz, d, BORDER_REPLICATE);
        for (var dy = -r; dy <= r; dy++) {
            let yy = border_index(i32(id.y) + dy, h, BORDER_REPLICATE);
            let row = (zz * h + yy) * w;
            for (var dx = -r; dx <= r; dx++) {
                let lw = -f32(dx * dx + dy * dy) * p.inv_2ss - f32(dz * dz) * p.inv_2sz;
                if (lw <= -30.0) {
                    continue;
                }
                let q = src[row + border_index(i32(id.x) + dx, w, BORDER_REPLICATE)];
                let diff = q - c;
                let wt = exp(lw - diff * diff * p.inv_2sr);
                num += wt * q;
                den += wt;
            }
        }
    }
    dst[(id.z * p.height + id.y) * p.width + id.x] = num / den;
}
