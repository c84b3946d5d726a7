// Zero-shot Noise2Noise's training step on the GPU (denoisekit_core zs_n2n: the loss in
// `loss_and_grad` or `chequerboard_loss_and_grad`, or `supervised_loss_and_grad` towards
// a target, the network and its gradients in net.rs, Adam in `Adam::step`). The host
// draws each step's patch from the core's `Schedule` and writes it, with its two diagonal
// half-resolution sub-images, into one canvas:
//
//   rows 0 .. s           the patch (s x s)
//   row s                 zeros
//   rows s+1 .. s+q       D1 at columns 0 .. q, zeros at column q, D2 at q+1 .. 2q
//
// so that one dispatch runs the network on all three images (canvas `cw` = s + 1 wide,
// `ch` = s + 1 + q high). Supervised training (`loss_supervised` instead of `loss`)
// needs no sub-images: its canvas is the patch's rows alone (`ch` = s), and the step's
// target patch is written to `work` from `target_at`. Chequerboard sub-images
// (`chequerboard_loss_and_grad`, `loss_pairs`; `canvas` 2) replace the patch:
//
//   rows 0 .. s           even-by-row at columns 0 .. q, zeros at q, odd-by-row q+1 .. 2q
//   row s                 zeros
//   rows s+1 .. s+1+q     even-by-column (q x s)
//   row s+1+q             zeros
//   rows s+2+q .. s+2+2q  odd-by-column (q x s)
//
// (`ch` = 2s + 2), each scored against its partner's input pixels. A layer is zero
// wherever `inside` is false, which is exactly the CPU's zero padding around each image;
// the gradients are zero there too, so the weight gradients sum over every canvas pixel
// as the CPU sums over each image's.
//
// WGSL has no floating-point atomics, and sums must not depend on scheduling: each weight's
// gradient is summed over bands of `band` canvas rows (`grad`, one invocation per weight
// and band, rows then columns in order), and `adam` adds the bands in order before its
// update. The loss of a step (for the progress line) is summed by one workgroup in a fixed
// tree. Every run gives the same bits; against the CPU, the sums' order differs.
//
// The network has `layers` 3x3 convolutions: `forward2` and `backward1` run once per
// convolution between hidden maps, `layer` (set per dispatch) saying which.
//
// Bindings (group 0):
//   0  maps   array<f32>  read_write  each 3x3 convolution's output map (canvas x c,
//                                     channels last), one after another, `map_len` apart
//   1  grads  array<f32>  read_write  the gradients before each map's activation, laid
//                                     out as `maps`
//   2  work   array<f32>  read_write  losses of the last `ring` steps (from 0), the canvas
//                                     input `x`, the network's output `net`, its gradient
//                                     `gout`, the loss terms, the bands' partial gradients,
//                                     the step's [lr, c1, c2, step index, average], and
//                                     for supervised training the target patch (s x s)
//   3  state  array<f32>  read_write  the weights (net.rs's `Net::flat` order), then Adam's
//                                     first moments from `n`, second from `2n`, and the
//                                     weights' running average from `3n`
//   4  p      Params      uniform

struct Params {
    cw: u32,
    ch: u32,
    s: u32,
    q: u32,
    c: u32,
    // Weights in all.
    n: u32,
    bands: u32,
    // Floats per map: canvas x c.
    map_len: u32,
    x_at: u32,
    net_at: u32,
    gout_at: u32,
    terms_at: u32,
    part_at: u32,
    step_at: u32,
    ring: u32,
    slope: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    // Canvas rows per band of the weight-gradient sums.
    band: u32,
    // Loss terms per step: q * q, s * s for supervised training, 4 * s * q for the
    // chequerboard.
    terms: u32,
    target_at: u32,
    // 3x3 convolutions, and which one between hidden maps a dispatch of `forward2` or
    // `backward1` is (0: the one reading the first map).
    layers: u32,
    layer: u32,
    // The canvas: 0 the patch and its diagonal halves (or the patch alone, supervised),
    // 2 the chequerboard sub-images.
    canvas: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> maps: array<f32>;
@group(0) @binding(1) var<storage, read_write> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Whether canvas pixel (y, x) belongs to one of the canvas's images.
fn inside(y: i32, x: i32) -> bool {
    let s = i32(p.s);
    let q = i32(p.q);
    if (y < 0 || x < 0) {
        return false;
    }
    if (p.canvas == 2u) {
        if (y < s) {
            return x < q || (x > q && x <= 2 * q);
        }
        let in_even = y > s && y <= s + q;
        let in_odd = y > s + 1 + q && y <= s + 1 + 2 * q;
        return (in_even || in_odd) && x < s;
    }
    if (y < s) {
        return x < s;
    }
    if (y <= s || y > s + q) {
        return false;
    }
    return x < q || (x > q && x <= 2 * q);
}

fn leaky(v: f32) -> f32 {
    if (v < 0.0) {
        return v * p.slope;
    }
    return v;
}

// The leaky ReLU's derivative at its output `a` (as net.rs's `through_activation`).
fn slope_at(a: f32) -> f32 {
    if (a <= 0.0) {
        return p.slope;
    }
    return 1.0;
}

fn input_at(y: i32, x: i32) -> f32 {
    if (!inside(y, x)) {
        return 0.0;
    }
    return work[p.x_at + u32(y) * p.cw + u32(x)];
}

// Offsets of the tensors in `state`, as `Net::flat`: the convolutions between hidden maps
// have their weights one after another in w2, their biases in b2.
fn w1_at() -> u32 { return 0u; }
fn b1_at() -> u32 { return 9u * p.c; }
fn w2_at() -> u32 { return 10u * p.c; }
fn b2_at() -> u32 { return 10u * p.c + (p.layers - 1u) * 9u * p.c * p.c; }
fn w3_at() -> u32 { return b2_at() + (p.layers - 1u) * p.c; }
fn b3_at() -> u32 { return w3_at() + p.c; }
// Where the last convolution's output map starts.
fn last_at() -> u32 { return (p.layers - 1u) * p.map_len; }

@compute @workgroup_size(16, 16, 1)
fn forward1(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch || id.z >= p.c) {
        return;
    }
    let y = i32(id.y);
    let x = i32(id.x);
    let co = id.z;
    var acc = 0.0;
    if (inside(y, x)) {
        acc = state[b1_at() + co];
        for (var ky = 0; ky < 3; ky++) {
            for (var kx = 0; kx < 3; kx++) {
                acc += input_at(y + ky - 1, x + kx - 1) * state[w1_at() + u32(ky * 3 + kx) * p.c + co];
            }
        }
        acc = leaky(acc);
    }
    maps[(id.y * p.cw + id.x) * p.c + co] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn forward2(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch || id.z >= p.c) {
        return;
    }
    let c = p.c;
    let y = i32(id.y);
    let x = i32(id.x);
    let co = id.z;
    var acc = 0.0;
    let l = p.layer;
    if (inside(y, x)) {
        acc = state[b2_at() + l * c + co];
        for (var ky = 0; ky < 3; ky++) {
            for (var kx = 0; kx < 3; kx++) {
                let sy = y + ky - 1;
                let sx = x + kx - 1;
                // a1 is zero outside the images (and there is no canvas beyond its edges).
                if (sy < 0 || sx < 0 || sy >= i32(p.ch) || sx >= i32(p.cw)) {
                    continue;
                }
                let at = l * p.map_len + (u32(sy) * p.cw + u32(sx)) * c;
                let wk = w2_at() + l * 9u * c * c + u32(ky * 3 + kx) * c * c + co;
                for (var ci = 0u; ci < c; ci++) {
                    acc += maps[at + ci] * state[wk + ci * c];
                }
            }
        }
        acc = leaky(acc);
    }
    maps[(l + 1u) * p.map_len + (id.y * p.cw + id.x) * c + co] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn forward3(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch) {
        return;
    }
    let i = id.y * p.cw + id.x;
    var out = 0.0;
    if (inside(i32(id.y), i32(id.x))) {
        out = state[b3_at()];
        let at = last_at() + i * p.c;
        for (var k = 0u; k < p.c; k++) {
            out += maps[at + k] * state[w3_at() + k];
        }
    }
    work[p.net_at + i] = out;
}

// One 2x2 block of the patch and its pixel in D1 and D2: the loss terms and the gradient
// with respect to the network's output at the six pixels (`loss_and_grad`).
@compute @workgroup_size(16, 16, 1)
fn loss(@builtin(global_invocation_id) id: vec3<u32>) {
    let q = p.q;
    if (id.x >= q || id.y >= q) {
        return;
    }
    let i = id.y;
    let j = id.x;
    let m = f32(q * q);
    let at_d1 = (p.s + 1u + i) * p.cw + j;
    let at_d2 = at_d1 + q + 1u;
    let f00 = (2u * i) * p.cw + 2u * j;
    let f01 = f00 + 1u;
    let f10 = f00 + p.cw;
    let f11 = f10 + 1u;
    let y1 = work[p.x_at + at_d1];
    let y2 = work[p.x_at + at_d2];
    let a = y1 - work[p.net_at + at_d1];
    let b = y2 - work[p.net_at + at_d2];
    let f1 = 0.5 * (denoised(f01) + denoised(f10));
    let f2 = 0.5 * (denoised(f00) + denoised(f11));
    let ra = a - y2;
    let rb = b - y1;
    let ca = a - f1;
    let cb = b - f2;
    work[p.terms_at + i * q + j] = 0.5 * (ra * ra + rb * rb + ca * ca + cb * cb);
    work[p.gout_at + at_d1] = -(ra + ca) / m;
    work[p.gout_at + at_d2] = -(rb + cb) / m;
    let g1 = 0.5 * (ca / m);
    let g2 = 0.5 * (cb / m);
    work[p.gout_at + f01] = g1;
    work[p.gout_at + f10] = g1;
    work[p.gout_at + f00] = g2;
    work[p.gout_at + f11] = g2;
}

// One pixel of the patch against the target's (`supervised_loss_and_grad`): half the
// squared difference between `x − net(x)` and the target, and the gradient with respect to
// the network's output.
@compute @workgroup_size(16, 16, 1)
fn loss_supervised(@builtin(global_invocation_id) id: vec3<u32>) {
    let s = p.s;
    if (id.x >= s || id.y >= s) {
        return;
    }
    let k = id.y * s + id.x;
    let i = id.y * p.cw + id.x;
    let r = denoised(i) - work[p.target_at + k];
    work[p.terms_at + k] = 0.5 * r * r;
    work[p.gout_at + i] = -r / f32(s * s);
}

// One pixel of a chequerboard sub-image against its partner's (`canvas` 2,
// `chequerboard_loss_and_grad`): half the squared difference between `x − net(x)` and
// the partner's input pixel, and the gradient with respect to the network's output. The
// loss terms are numbered as the CPU's passes: even-by-row, odd-by-row, even-by-column,
// odd-by-column.
@compute @workgroup_size(16, 16, 1)
fn loss_pairs(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch || !inside(i32(id.y), i32(id.x))) {
        return;
    }
    let s = p.s;
    let q = p.q;
    let y = id.y;
    let x = id.x;
    var partner = 0u;
    var k = 0u;
    if (y < s) {
        if (x < q) {
            partner = y * p.cw + x + q + 1u;
            k = y * q + x;
        } else {
            partner = y * p.cw + x - q - 1u;
            k = s * q + y * q + x - q - 1u;
        }
    } else if (y <= s + q) {
        partner = (y + q + 1u) * p.cw + x;
        k = 2u * s * q + (y - s - 1u) * s + x;
    } else {
        partner = (y - q - 1u) * p.cw + x;
        k = 3u * s * q + (y - s - q - 2u) * s + x;
    }
    let i = y * p.cw + x;
    let r = denoised(i) - work[p.x_at + partner];
    work[p.terms_at + k] = 0.5 * r * r;
    work[p.gout_at + i] = -r / f32(p.terms);
}

// `x − net(x)` at canvas index `i`.
fn denoised(i: u32) -> f32 {
    return work[p.x_at + i] - work[p.net_at + i];
}

var<workgroup> partial_loss: array<f32, 64>;

// The step's loss (the mean of its terms) into its slot of the ring.
@compute @workgroup_size(64, 1, 1)
fn loss_sum(@builtin(local_invocation_index) t: u32) {
    let count = p.terms;
    var acc = 0.0;
    for (var k = t; k < count; k += 64u) {
        acc += work[p.terms_at + k];
    }
    partial_loss[t] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (t < half) {
            partial_loss[t] += partial_loss[t + half];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        let step = u32(work[p.step_at + 3u]);
        work[step % p.ring] = partial_loss[0] / f32(count);
    }
}

// The gradient before the last map's activation: through the output layer.
@compute @workgroup_size(16, 16, 1)
fn backward2(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch || id.z >= p.c) {
        return;
    }
    let i = id.y * p.cw + id.x;
    let k = i * p.c + id.z;
    var g = 0.0;
    if (inside(i32(id.y), i32(id.x))) {
        g = work[p.gout_at + i] * state[w3_at() + id.z] * slope_at(maps[last_at() + k]);
    }
    grads[last_at() + k] = g;
}

// The gradient before map `layer`'s activation: through the transposed convolution
// `layer` between hidden maps, from the gradient before map `layer + 1`'s.
@compute @workgroup_size(16, 16, 1)
fn backward1(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.cw || id.y >= p.ch || id.z >= p.c) {
        return;
    }
    let c = p.c;
    let y = i32(id.y);
    let x = i32(id.x);
    let ci = id.z;
    let l = p.layer;
    let k = l * p.map_len + (id.y * p.cw + id.x) * c + ci;
    var g = 0.0;
    if (inside(y, x)) {
        for (var ky = 0; ky < 3; ky++) {
            for (var kx = 0; kx < 3; kx++) {
                // Output pixel (y − dy, x − dx) read this one through tap (ky, kx).
                let oy = y - (ky - 1);
                let ox = x - (kx - 1);
                if (oy < 0 || ox < 0 || oy >= i32(p.ch) || ox >= i32(p.cw)) {
                    continue;
                }
                let at = (l + 1u) * p.map_len + (u32(oy) * p.cw + u32(ox)) * c;
                let wk = w2_at() + l * 9u * c * c + (u32(ky * 3 + kx) * c + ci) * c;
                for (var co = 0u; co < c; co++) {
                    g += grads[at + co] * state[wk + co];
                }
            }
        }
        g *= slope_at(maps[k]);
    }
    grads[k] = g;
}

// One weight's gradient summed over one band of canvas rows.
@compute @workgroup_size(64, 1, 1)
fn grad(@builtin(global_invocation_id) id: vec3<u32>) {
    let widx = id.x;
    let band = id.y;
    if (widx >= p.n || band >= p.bands) {
        return;
    }
    let c = p.c;
    let y_lo = band * p.band;
    let y_hi = min(y_lo + p.band, p.ch);
    var acc = 0.0;
    if (widx < b1_at()) {
        // w1[k][co]: g1 · the input at the tap.
        let k = i32(widx / c);
        let co = widx % c;
        for (var y = y_lo; y < y_hi; y++) {
            for (var x = 0u; x < p.cw; x++) {
                acc += grads[(y * p.cw + x) * c + co] * input_at(i32(y) + k / 3 - 1, i32(x) + k % 3 - 1);
            }
        }
    } else if (widx < w2_at()) {
        let co = widx - b1_at();
        for (var y = y_lo; y < y_hi; y++) {
            for (var x = 0u; x < p.cw; x++) {
                acc += grads[(y * p.cw + x) * c + co];
            }
        }
    } else if (widx < b2_at()) {
        // w2[l][k][ci][co]: the gradient before map l + 1 · map l at the tap.
        let l = (widx - w2_at()) / (9u * c * c);
        let r = (widx - w2_at()) % (9u * c * c);
        let k = i32(r / (c * c));
        let ci = (r / c) % c;
        let co = r % c;
        let dy = k / 3 - 1;
        let dx = k % 3 - 1;
        for (var y = y_lo; y < y_hi; y++) {
            let sy = i32(y) + dy;
            if (sy < 0 || sy >= i32(p.ch)) {
                continue;
            }
            for (var x = 0u; x < p.cw; x++) {
                let sx = i32(x) + dx;
                if (sx < 0 || sx >= i32(p.cw)) {
                    continue;
                }
                let g = grads[(l + 1u) * p.map_len + (y * p.cw + x) * c + co];
                acc += g * maps[l * p.map_len + (u32(sy) * p.cw + u32(sx)) * c + ci];
            }
        }
    } else if (widx < w3_at()) {
        let l = (widx - b2_at()) / c;
        let co = (widx - b2_at()) % c;
        for (var y = y_lo; y < y_hi; y++) {
            for (var x = 0u; x < p.cw; x++) {
                acc += grads[(l + 1u) * p.map_len + (y * p.cw + x) * c + co];
            }
        }
    } else if (widx < b3_at()) {
        let k = widx - w3_at();
        for (var y = y_lo; y < y_hi; y++) {
            for (var x = 0u; x < p.cw; x++) {
                let i = y * p.cw + x;
                acc += work[p.gout_at + i] * maps[last_at() + i * c + k];
            }
        }
    } else {
        for (var y = y_lo; y < y_hi; y++) {
            for (var x = 0u; x < p.cw; x++) {
                acc += work[p.gout_at + y * p.cw + x];
            }
        }
    }
    work[p.part_at + band * p.n + widx] = acc;
}

// Each weight's gradient (its bands added in order), Adam's update, and the running
// average of the weights (from the second half of training on: the step's `average` > 0).
@compute @workgroup_size(64, 1, 1)
fn adam(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= p.n) {
        return;
    }
    var g = 0.0;
    for (var band = 0u; band < p.bands; band++) {
        g += work[p.part_at + band * p.n + i];
    }
    let lr = work[p.step_at];
    let c1 = work[p.step_at + 1u];
    let c2 = work[p.step_at + 2u];
    let m = p.b1 * state[p.n + i] + (1.0 - p.b1) * g;
    let v = p.b2 * state[2u * p.n + i] + (1.0 - p.b2) * g * g;
    state[p.n + i] = m;
    state[2u * p.n + i] = v;
    state[i] -= lr * (m / c1) / (sqrt(v / c2) + p.eps);
    let average = work[p.step_at + 4u];
    if (average > 0.0) {
        state[3u * p.n + i] += average * (state[i] - state[3u * p.n + i]);
    }
}
