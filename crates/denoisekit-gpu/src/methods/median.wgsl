// Exact median over a box window (denoisekit_core median.rs), one invocation per output
// pixel. Windows of up to 27 values are selected in registers; larger ones (up to
// 51x51x21, which would not fit in private memory) without a window buffer: the k-th
// smallest value is built bit by bit from the top over order-preserving
// 32-bit keys, each bit costing one pass over the window that counts keys below the
// candidate. The keys order floats as f32::total_cmp does, so the result is the CPU's
// value bit for bit.
//
// Bindings (group 0):
//   0  src  array<f32>  read        the volume, (z, y, x) order
//   1  dst  array<f32>  read_write  same shape
//   2  p    Params      uniform
// Border: `border` (BorderMode's numbering), in x, y and z; -1 from border_index is zero.

struct Params {
    width: u32,
    height: u32,
    depth: u32,
    radius: u32,
    radius_z: u32,
    border: u32,
    x0: u32,
    y0: u32,
    z0: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn value_of(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn sample(x: i32, y: i32, z: i32) -> u32 {
    let xx = border_index(x, i32(p.width), p.border);
    let yy = border_index(y, i32(p.height), p.border);
    let zz = border_index(z, i32(p.depth), p.border);
    if (xx < 0 || yy < 0 || zz < 0) {
        return key_of(0.0);
    }
    return key_of(src[(u32(zz) * p.height + u32(yy)) * p.width + u32(xx)]);
}

// Keys in the window strictly below `t`.
fn count_below(cx: i32, cy: i32, cz: i32, t: u32) -> u32 {
    let r = i32(p.radius);
    let rz = i32(p.radius_z);
    var n = 0u;
    for (var z = cz - rz; z <= cz + rz; z++) {
        for (var y = cy - r; y <= cy + r; y++) {
            for (var x = cx - r; x <= cx + r; x++) {
                n += select(0u, 1u, sample(x, y, z) < t);
            }
        }
    }
    return n;
}

// Windows of up to 27 values (3x3, 5x5, 3x3x3) fit in registers: select the rank-th key
// there, with no second pass over memory.
const SMALL: u32 = 27u;

fn small_median(cx: i32, cy: i32, cz: i32, n: u32) -> u32 {
    let r = i32(p.radius);
    let rz = i32(p.radius_z);
    var win: array<u32, 27>;
    var m = 0u;
    for (var z = cz - rz; z <= cz + rz; z++) {
        for (var y = cy - r; y <= cy + r; y++) {
            for (var x = cx - r; x <= cx + r; x++) {
                win[m] = sample(x, y, z);
                m++;
            }
        }
    }
    // Partial selection sort up to the middle.
    let rank = n / 2u;
    for (var i = 0u; i <= rank; i++) {
        var best = i;
        for (var j = i + 1u; j < n; j++) {
            if (win[j] < win[best]) {
                best = j;
            }
        }
        let t = win[i];
        win[i] = win[best];
        win[best] = t;
    }
    return win[rank];
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    // One box of the output (see `per_pixel` in mod.rs): the dispatch starts at the origin.
    let id = gid + vec3<u32>(p.x0, p.y0, p.z0);
    if (id.x >= p.width || id.y >= p.height || id.z >= p.depth) {
        return;
    }
    let cx = i32(id.x);
    let cy = i32(id.y);
    let cz = i32(id.z);
    let r = i32(p.radius);
    let rz = i32(p.radius_z);
    let size = u32((2 * r + 1) * (2 * r + 1) * (2 * rz + 1));
    if (size <= SMALL) {
        dst[(id.z * p.height + id.y) * p.width + id.x] = value_of(small_median(cx, cy, cz, size));
        return;
    }
    // The answer lies between the window's smallest and largest key: the bits above
    // their highest difference are known.
    var lo = 0xffffffffu;
    var hi = 0u;
    for (var z = cz - rz; z <= cz + rz; z++) {
        for (var y = cy - r; y <= cy + r; y++) {
            for (var x = cx - r; x <= cx + r; x++) {
                let k = sample(x, y, z);
                lo = min(lo, k);
                hi = max(hi, k);
            }
        }
    }
    let n = u32((2 * r + 1) * (2 * r + 1) * (2 * rz + 1));
    let rank = n / 2u;
    var result = lo;
    if (lo != hi) {
        let top = firstLeadingBit(lo ^ hi);
        // Keep lo's bits above `top`, clear the rest, then set bits greedily: the largest
        // key with fewer than rank + 1 window keys below it is the rank-th smallest key.
        // (For top = 31 the shift gives 0 and the mask clears every bit.)
        result = lo & ~((2u << top) - 1u);
        for (var b = i32(top); b >= 0; b--) {
            let cand = result | (1u << u32(b));
            if (count_below(cx, cy, cz, cand) <= rank) {
                result = cand;
            }
        }
    }
    dst[(id.z * p.height + id.y) * p.width + id.x] = value_of(result);
}
