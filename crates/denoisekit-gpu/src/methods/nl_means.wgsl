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
    x0: u32,
    inv_n: f32,
    thr: f32,
    inv_h2: f32,
    _pad2: f32,
    y0: u32,
    z0: u32,
    _pad3: u32,
    _pad4: u32,
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

fn at(z: i32, y: i32, x: i32) -> f32 {
    let zz = border_index(z, i32(p.depth), BORDER_REPLICATE);
    let yy = border_index(y, i32(p.height), BORDER_REPLICATE);
    let xx = border_index(x, i32(p.width), BORDER_REPLICATE);
    return src[(u32(zz) * p.height + u32(yy)) * p.width + u32(xx)];
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wgid: vec3<u32>,
) {
    // One box of the output (see `per_pixel` in mod.rs): the dispatch starts at the
    // origin, whose x0 and y0 are multiples of TILE.
    let id = gid + vec3<u32>(p.x0, p.y0, p.z0);
    let wid = wgid + vec3<u32>(p.x0 / TILE, p.y0 / TILE, 0u);
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
    var num = 0.0;
    var den = 0.0;
    for (var sz = -srz; sz <= srz; sz++) {
        for (var sy = -sr; sy <= sr; sy++) {
            for (var sx = -sr; sx <= sr; sx++) {
                for (var i = me; i < side * side; i += TILE * TILE) {
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
                num += wt * at(z + sz, y + sy, x + sx);
                den += wt;
            }
        }
    }
    if (id.x < p.width && id.y < p.height && id.z < p.depth) {
        dst[(id.z * p.height + id.y) * p.width + id.x] = num / den;
    }
}

// `planar`: the entry point for jobs without a z patch or z search (every 2D job) whose
// search area fits workgroup memory (patch plus search radius at most PLANAR_MAX_REACH,
// nl_means.rs checks). The tile grown by that reach is read from the image once, and each
// round handles two shifts along x with one barrier, where `main` reads the image twice
// per element and shift and waits at two barriers per shift: barriers, not arithmetic,
// bound this kernel. The row sums are computed straight from the cached pixels, summed in
// the same order as `main`'s, and double-buffered, so a round's writes cannot overtake
// the previous round's reads.
const PLANAR_MAX_REACH: u32 = 13u;
const PLANAR_SIDE: u32 = TILE + 2u * PLANAR_MAX_REACH;
// The two arrays fill the 16 KiB of workgroup memory every device offers (4068 floats).
var<workgroup> plane: array<f32, PLANAR_SIDE * PLANAR_SIDE>;
// [buffer][shift of the pair][row of the grown tile][column]
var<workgroup> pair_sums: array<f32, 4u * MAX_SIDE * TILE>;

@compute @workgroup_size(16, 16, 1)
fn planar(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wgid: vec3<u32>,
) {
    // One box of the output (see `per_pixel` in mod.rs): the dispatch starts at the
    // origin, whose x0 and y0 are multiples of TILE.
    let id = gid + vec3<u32>(p.x0, p.y0, p.z0);
    let wid = wgid + vec3<u32>(p.x0 / TILE, p.y0 / TILE, 0u);
    let sr = i32(p.search_radius);
    let side = TILE + 2u * p.patch_radius;
    let width = 2u * p.patch_radius + 1u;
    let reach = p.patch_radius + p.search_radius;
    let cside = TILE + 2u * reach;
    let me = lid.y * TILE + lid.x;
    let top = i32(wid.y * TILE) - i32(reach);
    let left = i32(wid.x * TILE) - i32(reach);
    for (var i = me; i < cside * cside; i += TILE * TILE) {
        plane[i] = at(i32(id.z), top + i32(i / cside), left + i32(i % cside));
    }
    workgroupBarrier();
    // One shift's row sums; this pixel's own place in the cache.
    let block = side * TILE;
    let own = (lid.y + reach) * cside + lid.x + reach;
    var num = 0.0;
    var den = 0.0;
    var base = 0u;
    for (var sy = -sr; sy <= sr; sy++) {
        for (var sx = -sr; sx <= sr; sx += 2) {
            // From uniforms only: the barrier below stays in uniform control flow.
            let pair = sx < sr;
            let shift = sy * i32(cside) + sx;
            for (var r = lid.y; r < side; r += TILE) {
                // Row r of the grown tile starts the search radius into the cache.
                let c = (r + p.search_radius) * cside + lid.x + p.search_radius;
                var sa = 0.0;
                var sb = 0.0;
                for (var k = 0u; k < width; k++) {
                    let v = plane[c + k];
                    let ta = v - plane[u32(i32(c + k) + shift)];
                    sa += ta * ta;
                    if (pair) {
                        let tb = v - plane[u32(i32(c + k) + shift + 1)];
                        sb += tb * tb;
                    }
                }
                pair_sums[base + r * TILE + lid.x] = sa;
                pair_sums[base + block + r * TILE + lid.x] = sb;
            }
            workgroupBarrier();
            for (var j = 0; j < select(1, 2, pair); j++) {
                var dist = 0.0;
                for (var b = 0u; b < width; b++) {
                    dist += pair_sums[base + u32(j) * block + (lid.y + b) * TILE + lid.x];
                }
                let wt = exp(-max(dist * p.inv_n - p.thr, 0.0) * p.inv_h2);
                num += wt * plane[u32(i32(own) + shift + j)];
                den += wt;
            }
            base = 2u * block - base;
        }
    }
    if (id.x < p.width && id.y < p.height && id.z < p.depth) {
        dst[(id.z * p.height + id.y) * p.width + id.x] = num / den;
    }
}
