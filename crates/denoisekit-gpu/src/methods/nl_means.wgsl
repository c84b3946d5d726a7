// Non-local means (denoisekit_core nl_means.rs) by box sums over shifts, as on the CPU:
// one workgroup per 16x16 tile of a plane walks every shift of the search window. For each
// shift it computes the squared differences (summed over the patch's planes) once for the
// tile grown by the patch radius, in workgroup memory; sums them along x into row sums,
// also in workgroup memory; and sums those along y for each pixel. A pixel's patch
// distance is thereby summed in the same order whatever tile it falls in (a preview region
// equals the full result there), and each difference is computed once per shift rather
// than (2r + 1)^2 times.
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

const TILE: u32 = 16u;
// The descriptor's largest patch radius (a test in nl_means.rs checks they agree).
const MAX_PATCH_RADIUS: u32 = 10u;
const MAX_SIDE: u32 = TILE + 2u * MAX_PATCH_RADIUS;
// Squared differences on the tile grown by the patch radius (side x side, row-major).
var<workgroup> diffs: array<f32, MAX_SIDE * MAX_SIDE>;
// Their sums along x: the grown tile's rows, TILE columns each.
var<workgroup> row_sums: array<f32, MAX_SIDE * TILE>;
// Without a z search or z patch (every 2D job), the pixels every shift of the tile reads:
// the tile grown by the patch plus search radius, read from the image once instead of
// twice per shift, when that fits. The three arrays stay under the 16 KiB of workgroup
// memory every device offers.
const MAX_CACHE_REACH: u32 = 15u;
const MAX_CACHE_SIDE: u32 = TILE + 2u * MAX_CACHE_REACH;
var<workgroup> cache: array<f32, MAX_CACHE_SIDE * MAX_CACHE_SIDE>;

fn at(z: i32, y: i32, x: i32) -> f32 {
    let zz = border_index(z, i32(p.depth), BORDER_REPLICATE);
    let yy = border_index(y, i32(p.height), BORDER_REPLICATE);
    let xx = border_index(x, i32(p.width), BORDER_REPLICATE);
    return src[(u32(zz) * p.height + u32(yy)) * p.width + u32(xx)];
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    // Invocations past the image's edge still take part in the sums and barriers; they
    // only write nothing.
    let z = i32(id.z);
    let y = i32(id.y);
    let x = i32(id.x);
    let pr = i32(p.patch_radius);
    let sr = i32(p.search_radius);
    let prz = i32(p.patch_radius_z);
    let srz = i32(p.search_radius_z);
    let side = TILE + 2u * p.patch_radius;
    let top = i32(wid.y * TILE) - pr;
    let left = i32(wid.x * TILE) - pr;
    let me = lid.y * TILE + lid.x;
    let reach = p.patch_radius + p.search_radius;
    // From uniforms only, so the barriers below stay in uniform control flow.
    let cached = prz == 0 && srz == 0 && reach <= MAX_CACHE_REACH;
    let cside = TILE + 2u * reach;
    let step_rows = (TILE * TILE) / side;
    let step_cols = (TILE * TILE) % side;
    let first_row = me / side;
    let first_col = me % side;
    if (cached) {
        let ctop = i32(wid.y * TILE) - i32(reach);
        let cleft = i32(wid.x * TILE) - i32(reach);
        for (var i = me; i < cside * cside; i += TILE * TILE) {
            cache[i] = at(z, ctop + i32(i / cside), cleft + i32(i % cside));
        }
    }
    workgroupBarrier();
    var num = 0.0;
    var den = 0.0;
    for (var sz = -srz; sz <= srz; sz++) {
        for (var sy = -sr; sy <= sr; sy++) {
            for (var sx = -sr; sx <= sr; sx++) {
                if (cached) {
                    // Walks this invocation's elements of the grown tile by (row, column)
                    // steps: an integer division per element and shift cost more than
                    // the difference itself.
                    let shift = sy * i32(cside) + sx;
                    var row = first_row;
                    var col = first_col;
                    for (var i = me; i < side * side; i += TILE * TILE) {
                        // The cache starts the search radius further up and left.
                        let c = (row + p.search_radius) * cside + col + p.search_radius;
                        let t = cache[c] - cache[u32(i32(c) + shift)];
                        diffs[i] = t * t;
                        row += step_rows;
                        col += step_cols;
                        if (col >= side) {
                            col -= side;
                            row += 1u;
                        }
                    }
                }
                for (var i = me; i < side * side && !cached; i += TILE * TILE) {
                    let yy = top + i32(i / side);
                    let xx = left + i32(i % side);
                    var s = 0.0;
                    for (var a = -prz; a <= prz; a++) {
                        let t = at(z + a, yy, xx) - at(z + sz + a, yy + sy, xx + sx);
                        s += t * t;
                    }
                    diffs[i] = s;
                }
                workgroupBarrier();
                for (var r = lid.y; r < side; r += TILE) {
                    var s = 0.0;
                    for (var c = 0u; c <= 2u * p.patch_radius; c++) {
                        s += diffs[r * side + lid.x + c];
                    }
                    row_sums[r * TILE + lid.x] = s;
                }
                // The next shift rewrites the differences only after this barrier, and
                // the row sums only after its first one, when all have been read.
                workgroupBarrier();
                var dist = 0.0;
                for (var b = 0u; b <= 2u * p.patch_radius; b++) {
                    dist += row_sums[(lid.y + b) * TILE + lid.x];
                }
                let wt = exp(-max(dist * p.inv_n - p.thr, 0.0) * p.inv_h2);
                var v: f32;
                if (cached) {
                    v = cache[u32(i32(lid.y + reach) + sy) * cside + u32(i32(lid.x + reach) + sx)];
                } else {
                    v = at(z + sz, y + sy, x + sx);
                }
                num += wt * v;
                den += wt;
            }
        }
    }
    if (id.x < p.width && id.y < p.height && id.z < p.depth) {
        dst[(id.z * p.height + id.y) * p.width + id.x] = num / den;
    }
}
