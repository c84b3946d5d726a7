// Non-local means (denoisekit_core nl_means.rs), one invocation per output pixel, with
// patch distances summed directly (the CPU uses box sums over shifts; the per-pixel sums
// are the same, in another order).
//
// Bindings (group 0):
//   0  src  array<f32>  read        the volume, (z, y, x) order
//   1  dst  array<f32>  read_write  same shape
//   2  p    Params      uniform
// Border: replicate in x, y and z (border_index, identical to border.rs). Weight:
// exp(-max(mean squared patch difference - 2 sigma^2, 0) / h^2); the centre has weight 1.

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    patch_radius: u32,
    search_radius: u32,
    patch_radius_z: u32,
    search_radius_z: u32,
    _pad: u32,
    inv_n: f32,
    thr: f32,
    inv_h2: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn at(z: i32, y: i32, x: i32) -> f32 {
    let zz = border_index(z, i32(p.depth), BORDER_REPLICATE);
    let yy = border_index(y, i32(p.height), BORDER_REPLICATE);
    let xx = border_index(x, i32(p.width), BORDER_REPLICATE);
    return src[(u32(zz) * p.height + u32(yy)) * p.width + u32(xx)];
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let z = i32(id.z);
    let y = i32(id.y);
    let x = i32(id.x);
    let pr = i32(p.patch_radius);
    let sr = i32(p.search_radius);
    let prz = i32(p.patch_radius_z);
    let srz = i32(p.search_radius_z);
    var num = 0.0;
    var den = 0.0;
    for (var sz = -srz; sz <= srz; sz++) {
        for (var sy = -sr; sy <= sr; sy++) {
            for (var sx = -sr; sx <= sr; sx++) {
                var dist = 0.0;
                for (var a = -prz; a <= prz; a++) {
                    for (var b = -pr; b <= pr; b++) {
                        for (var c = -pr; c <= pr; c++) {
                            let t = at(z + a, y + b, x + c) - at(z + sz + a, y + sy + b, x + sx + c);
                            dist += t * t;
                        }
                    }
                }
                let wt = exp(-max(dist * p.inv_n - p.thr, 0.0) * p.inv_h2);
                num += wt * at(z + sz, y + sy, x + sx);
                den += wt;
            }
        }
    }
    dst[(id.z * p.height + id.y) * p.width + id.x] = num / den;
}
