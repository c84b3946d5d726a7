//! The network of zero-shot Noise2Noise and its gradients, written out by hand: `layers`
//! 3x3 convolutions of `c` channels with leaky ReLUs (two in the paper) and a 1x1
//! convolution to one channel.
//! Feature maps are stored channels last, one row after another, so that the inner loops
//! run along the channels over contiguous weights, which the compiler vectorises. The
//! convolution kernels keep a block of 8 pixels (or input channels) by 8 output channels
//! (input channels for the input gradient) in registers (by 16 where the CPU has AVX-512, which trains and applies about a fifth
//! faster: docs/benchmarks.md): summing one value at a time through memory ran at about a
//! fifth of the CPU's rate and took twice as long. Every sum runs in a fixed order
//! whatever the blocking and the lane width, and the parallel loops split work by rows of
//! fixed count, never by thread count, so results do not depend on the machine.

use crate::rng::Rng;
use rayon::prelude::*;

/// Slope of the leaky ReLU on negative inputs (as Mansour & Heckel).
pub const SLOPE: f32 = 0.2;

/// Rows per parallel band of the weight-gradient sums (fixed, so the order of the partial
/// sums does not depend on the number of threads).
const BAND: usize = 8;

/// The weights: `w1[k][co]` (k = 3·ky + kx, one input channel), then for each of the
/// `layers - 1` convolutions between hidden maps `w2[l][k][ci][co]` and `b2[l][co]`
/// (one after another in `w2` and `b2`, so that two layers keep the paper's layout),
/// and `w3[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    /// Hidden channels.
    pub c: usize,
    /// 3x3 convolutions, at least 2: the receptive field is `2·layers + 1` pixels wide.
    pub layers: usize,
    pub(super) w1: Vec<f32>,
    pub(super) b1: Vec<f32>,
    pub(super) w2: Vec<f32>,
    pub(super) b2: Vec<f32>,
    pub(super) w3: Vec<f32>,
    pub(super) b3: Vec<f32>,
}

impl Net {
    /// PyTorch's default initialisation (uniform in ±1/√fan_in for weights and biases),
    /// drawn from `rng`.
    pub fn init(c: usize, layers: usize, rng: &mut Rng) -> Self {
        let mut draw = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                .collect()
        };
        let hidden = layers - 1;
        Self {
            c,
            layers,
            w1: draw(9 * c, 9),
            b1: draw(c, 9),
            w2: draw(hidden * 9 * c * c, 9 * c),
            b2: draw(hidden * c, 9 * c),
            w3: draw(c, c),
            b3: draw(1, c),
        }
    }

    /// Zeros of the same shape (for gradients and Adam's moments).
    pub fn zeros_like(&self) -> Self {
        let z = |v: &Vec<f32>| vec![0.0; v.len()];
        Self {
            c: self.c,
            layers: self.layers,
            w1: z(&self.w1),
            b1: z(&self.b1),
            w2: z(&self.w2),
            b2: z(&self.b2),
            w3: z(&self.w3),
            b3: z(&self.b3),
        }
    }

    /// Every tensor, in a fixed order.
    pub fn tensors(&self) -> [&[f32]; 6] {
        [&self.w1, &self.b1, &self.w2, &self.b2, &self.w3, &self.b3]
    }

    /// Every weight, tensor after tensor in the order of [`Net::tensors`]: the layout the
    /// GPU trains in.
    pub fn flat(&self) -> Vec<f32> {
        self.tensors().concat()
    }

    /// The lengths of the tensors of a network of width `c` with `layers` 3x3
    /// convolutions, in the order of [`Net::tensors`].
    pub const fn lengths(c: usize, layers: usize) -> [usize; 6] {
        let hidden = layers - 1;
        [9 * c, c, hidden * 9 * c * c, hidden * c, c, 1]
    }

    /// The number of weights of a network of width `c` with `layers` 3x3 convolutions:
    /// the length of its [`Net::flat`].
    pub const fn count(c: usize, layers: usize) -> usize {
        let [a, b, d, e, f, g] = Self::lengths(c, layers);
        a + b + d + e + f + g
    }

    /// The network of width `c` with `layers` 3x3 convolutions whose [`Net::flat`] is
    /// `flat`, or `None` if its length is not that network's.
    pub fn from_flat(c: usize, layers: usize, flat: &[f32]) -> Option<Self> {
        if flat.len() != Self::count(c, layers) {
            return None;
        }
        let [n1, nb1, n2, nb2, n3, nb3] = Self::lengths(c, layers);
        let mut net = Self {
            c,
            layers,
            w1: vec![0.0; n1],
            b1: vec![0.0; nb1],
            w2: vec![0.0; n2],
            b2: vec![0.0; nb2],
            w3: vec![0.0; n3],
            b3: vec![0.0; nb3],
        };
        let mut rest = flat;
        for t in net.tensors_mut() {
            let (head, tail) = rest.split_at(t.len());
            t.copy_from_slice(head);
            rest = tail;
        }
        Some(net)
    }

    /// Every tensor, mutably, in the order of [`Net::tensors`].
    pub fn tensors_mut(&mut self) -> [&mut [f32]; 6] {
        [
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            &mut self.b2,
            &mut self.w3,
            &mut self.b3,
        ]
    }

    /// The weights and biases of the `l`-th convolution between hidden maps.
    pub fn hidden(&self, l: usize) -> (&[f32], &[f32]) {
        let (c, n) = (self.c, 9 * self.c * self.c);
        (&self.w2[l * n..(l + 1) * n], &self.b2[l * c..(l + 1) * c])
    }

    /// The weights and biases of the `l`-th convolution between hidden maps, mutably.
    pub fn hidden_mut(&mut self, l: usize) -> (&mut [f32], &mut [f32]) {
        let (c, n) = (self.c, 9 * self.c * self.c);
        (
            &mut self.w2[l * n..(l + 1) * n],
            &mut self.b2[l * c..(l + 1) * c],
        )
    }

    /// `w2` transposed to `[l][k][co][ci]`, for the gradient with respect to the input
    /// ([`backward`]; computed once per step, shared by its passes).
    pub(super) fn w2_transposed(&self) -> Vec<f32> {
        let c = self.c;
        let n = 9 * c * c;
        let mut t = vec![0.0; self.w2.len()];
        for (tl, wl) in t.chunks_mut(n).zip(self.w2.chunks(n)) {
            for k in 0..9 {
                for ci in 0..c {
                    for co in 0..c {
                        tl[(k * c + co) * c + ci] = wl[(k * c + ci) * c + co];
                    }
                }
            }
        }
        t
    }
}

/// A feature map of `ch` channels on rows `[y0, y0 + rows)` and columns
/// `[x0, x0 + cols)` of an image of `h` x `w` pixels (the coordinates may reach past it,
/// where every value is 0), channels last.
#[derive(Debug, Clone)]
pub(super) struct Map {
    y0: isize,
    x0: isize,
    rows: usize,
    cols: usize,
    ch: usize,
    data: Vec<f32>,
}

impl Map {
    fn zeros(y0: isize, x0: isize, rows: usize, cols: usize, ch: usize) -> Self {
        Self {
            y0,
            x0,
            rows,
            cols,
            ch,
            data: vec![0.0; rows * cols * ch],
        }
    }

    fn row(&self, r: usize) -> &[f32] {
        let n = self.cols * self.ch;
        &self.data[r * n..(r + 1) * n]
    }

    /// The range of local columns that lie inside an image `w` wide.
    fn inside_cols(&self, w: usize) -> (usize, usize) {
        let lo = (-self.x0).clamp(0, self.cols as isize) as usize;
        let hi = (w as isize - self.x0).clamp(0, self.cols as isize) as usize;
        (lo, hi.max(lo))
    }

    fn row_inside(&self, r: usize, h: usize) -> bool {
        let y = self.y0 + r as isize;
        y >= 0 && y < h as isize
    }
}

crate::simd_dispatch! {
    /// `o += a · x`.
    fn axpy(o: &mut [f32], a: f32, x: &[f32]) {
        for (o, x) in o.iter_mut().zip(x) {
            *o += a * x;
        }
    }
}

/// Lanes of the narrowest register of sums: one AVX2 register of `f32`. The kernels sum
/// channels in groups of their widest lanes (16 with AVX-512, see
/// [`crate::simd_dispatch_lanes`]), then of these, then one at a time.
const NARROW: usize = 8;

/// Pixels (or input channels) one blocked kernel keeps in registers at once: enough
/// independent sums to hide the latency of an addition.
const BLOCK: usize = 8;

/// `L` values from the start of `s`.
#[inline(always)]
fn lanes<const L: usize>(s: &[f32]) -> [f32; L] {
    s[..L].try_into().expect("a slice of L values")
}

/// `acc += v · w`, lane by lane, as a multiplication then an addition (never fused: the
/// sums must round the same on every machine).
#[inline(always)]
fn add_scaled<const L: usize>(acc: &mut [f32; L], v: f32, w: &[f32; L]) {
    for (a, w) in acc.iter_mut().zip(w) {
        *a += v * w;
    }
}

/// Splits `n` channels into groups for kernels whose widest registers hold `L` lanes:
/// `[0, wide)` in groups of `L`, `[wide, grouped)` of [`NARROW`], the rest one at a time.
#[inline(always)]
const fn channel_groups<const L: usize>(n: usize) -> (usize, usize) {
    let wide = n / L * L;
    (wide, wide + (n - wide) / NARROW * NARROW)
}

/// Runs `$block` (a kernel of blocks of `P` pixels by `lanes` channels) for each group
/// `c0` of `lanes` channels in `[c_lo, c_hi)` (a whole number of groups), over pixels
/// `[lo, hi)`: with `P` = [`BLOCK`] while a whole block fits, then with `P` = 1 pixel by
/// pixel. A macro rather than a function taking a
/// closure: a closure is compiled apart from the AVX-512 copy it sits in, without its
/// target features, and ran the 16-lane blocks at SSE2's width (the convolution's share of
/// an apply went from a quarter to almost half).
macro_rules! pixel_blocks {
    ($pixels:expr, ($c_lo:expr, $c_hi:expr), $lanes:expr, |$x:ident, $c0:ident, $p:ident| $block:expr) => {{
        let (lo, hi): (usize, usize) = $pixels;
        for $c0 in ($c_lo..$c_hi).step_by($lanes) {
            let mut $x = lo;
            while $x + BLOCK <= hi {
                const $p: usize = BLOCK;
                $block;
                $x += BLOCK;
            }
            for $x in $x..hi {
                const $p: usize = 1;
                $block;
            }
        }
    }};
}

crate::simd_dispatch_lanes! {
    /// One output row of a 3x3 convolution: `src` holds the three input rows it reads
    /// (`cols + 2` pixels of `ci` channels each), `out` gets `cols` pixels of `co`
    /// channels, bias plus the sums, through the leaky ReLU, on columns `[lo, hi)` (the
    /// others stay 0: outside the image).
    fn conv_row = conv_row_at(src: &[f32], ci: usize, w: &[f32], b: &[f32], out: &mut [f32], lo: usize, hi: usize);
}

/// [`conv_row`] with registers of `L` lanes. Each output value is its bias plus the
/// products in the order (ky, kx, input channel) whatever the blocking: blocks of
/// [`BLOCK`] pixels by `L` (then [`NARROW`]) output channels are summed in registers,
/// the channels past the last full group one at a time.
#[inline(always)]
fn conv_row_at<const L: usize>(src: &[f32], ci: usize, w: &[f32], b: &[f32], out: &mut [f32], lo: usize, hi: usize) {
    let co = b.len();
    let src_cols = out.len() / co + 2;
    let (wide, grouped) = channel_groups::<L>(co);
    let dims = (src_cols, ci);
    pixel_blocks!((lo, hi), (0, wide), L, |x, c0, P| conv_block::<P, L>(src, dims, w, b, out, (x, c0)));
    pixel_blocks!((lo, hi), (wide, grouped), NARROW, |x, c0, P| {
        conv_block::<P, NARROW>(src, dims, w, b, out, (x, c0))
    });
    for x in lo..hi {
        for o in grouped..co {
            let mut v = b[o];
            for ky in 0..3 {
                for kx in 0..3 {
                    let s = &src[(ky * src_cols + x + kx) * ci..][..ci];
                    let wk = &w[(ky * 3 + kx) * ci * co..][..ci * co];
                    for (i, &a) in s.iter().enumerate() {
                        v += a * wk[i * co + o];
                    }
                }
            }
            out[x * co + o] = v;
        }
    }
    for v in &mut out[lo * co..hi * co] {
        if *v < 0.0 {
            *v *= SLOPE;
        }
    }
}

/// Output channels `[c0, c0 + L)` of pixels `[x, x + P)` of [`conv_row_at`], before the
/// activation.
#[inline(always)]
fn conv_block<const P: usize, const L: usize>(
    src: &[f32],
    (src_cols, ci): (usize, usize),
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    (x, c0): (usize, usize),
) {
    let co = b.len();
    let mut acc = [lanes::<L>(&b[c0..]); P];
    for ky in 0..3 {
        for kx in 0..3 {
            let s = &src[(ky * src_cols + x + kx) * ci..][..P * ci];
            let wk = &w[(ky * 3 + kx) * ci * co..][..ci * co];
            for (i, wi) in wk.chunks_exact(co).enumerate() {
                let wv = lanes(&wi[c0..]);
                for (p, a) in acc.iter_mut().enumerate() {
                    add_scaled(a, s[p * ci + i], &wv);
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[(x + p) * co + c0..][..L].copy_from_slice(a);
    }
}

/// A 3x3 convolution with bias and leaky ReLU of map `a` into a map two rows and two
/// columns smaller, zero outside the image.
fn conv3x3(a: &Map, w: &[f32], b: &[f32], dims: (usize, usize)) -> Map {
    conv3x3_by(conv_row, a, w, b, dims)
}

/// The signature of [`conv_row`].
type ConvRow = fn(&[f32], usize, &[f32], &[f32], &mut [f32], usize, usize);

/// [`conv3x3`] one row at a time by `conv_row` (a kernel at one lane width, in tests).
fn conv3x3_by(conv_row: ConvRow, a: &Map, w: &[f32], b: &[f32], (h, wd): (usize, usize)) -> Map {
    let co = b.len();
    let mut out = Map::zeros(a.y0 + 1, a.x0 + 1, a.rows - 2, a.cols - 2, co);
    let (lo, hi) = out.inside_cols(wd);
    let n_in = a.cols * a.ch;
    let (y0, ch) = (out.y0, a.ch);
    out.data
        .par_chunks_mut(out.cols * co)
        .enumerate()
        .for_each(|(r, orow)| {
            let y = y0 + r as isize;
            if y >= 0 && y < h as isize {
                conv_row(&a.data[r * n_in..(r + 3) * n_in], ch, w, b, orow, lo, hi);
            }
        });
    out
}

/// The 1x1 output layer: `net(x)` at every pixel of `a`.
fn project(a: &Map, w3: &[f32], b3: f32) -> Vec<f32> {
    a.data
        .par_chunks(a.cols * a.ch)
        .flat_map_iter(|row| {
            row.chunks(a.ch)
                .map(|p| p.iter().zip(w3).fold(b3, |s, (x, w)| s + x * w))
        })
        .collect()
}

/// The activations of one forward pass, kept for the backward pass.
pub(super) struct Pass {
    x: Map,
    /// The output of each 3x3 convolution, first to last.
    acts: Vec<Map>,
    /// `net(x)` on the pass's rows and all columns.
    pub net: Vec<f32>,
    h: usize,
    w: usize,
}

/// `net(x)` on rows `[y0, y1)` of the `h` x `w` image `img` (row-major), which reads
/// `layers` rows beyond them where the image has them.
pub(super) fn forward(net: &Net, img: &[f32], (h, w): (usize, usize), (y0, y1): (usize, usize)) -> Pass {
    let m = net.layers;
    let mut x = Map::zeros(y0 as isize - m as isize, -(m as isize), y1 - y0 + 2 * m, w + 2 * m, 1);
    for r in 0..x.rows {
        let y = x.y0 + r as isize;
        if y >= 0 && y < h as isize {
            let y = y as usize;
            let row = r * (w + 2 * m) + m;
            x.data[row..row + w].copy_from_slice(&img[y * w..(y + 1) * w]);
        }
    }
    let mut acts = vec![conv3x3(&x, &net.w1, &net.b1, (h, w))];
    for l in 0..m - 1 {
        let (wl, bl) = net.hidden(l);
        let next = conv3x3(acts.last().expect("the first layer is there"), wl, bl, (h, w));
        acts.push(next);
    }
    let out = project(acts.last().expect("the first layer is there"), &net.w3, net.b3[0]);
    Pass {
        x,
        acts,
        net: out,
        h,
        w,
    }
}

crate::simd_dispatch_lanes! {
    /// Adds one output row's contribution to the weight and bias gradients of a 3x3
    /// convolution: `src` the three input rows, `g` the row's gradient before the
    /// activation, `t` room for a copy of `src`.
    fn grad_w_row = grad_w_row_at(src: &[f32], ci: usize, g: &[f32], gw: &mut [f32], gb: &mut [f32], t: &mut [f32]);
}

/// [`grad_w_row`] with registers of `L` lanes. Each gradient gets the row's products in
/// the order of its pixels whatever the blocking: blocks of [`BLOCK`] input channels by
/// `L` (then [`NARROW`]) output channels are summed in registers, the rest one at a time.
#[inline(always)]
fn grad_w_row_at<const L: usize>(src: &[f32], ci: usize, g: &[f32], gw: &mut [f32], gb: &mut [f32], t: &mut [f32]) {
    let co = gb.len();
    let cols = g.len() / co;
    let src_cols = cols + 2;
    for gx in g.chunks_exact(co) {
        for (b, v) in gb.iter_mut().zip(gx) {
            *b += v;
        }
    }
    debug_assert_eq!(t.len(), 3 * ci * src_cols, "room for the three input rows");
    let (wide, grouped_out) = channel_groups::<L>(co);
    // The input rows channel by channel (`[ky][i][x]`, in `t`), so that a block's input
    // values at one pixel are not adjacent and the compiler vectorises along the output
    // channels rather than shuffling across the inputs.
    for (ky, tk) in t.chunks_exact_mut(ci * src_cols).enumerate() {
        let row = &src[ky * src_cols * ci..][..src_cols * ci];
        for (x, px) in row.chunks_exact(ci).enumerate() {
            for (i, &v) in px.iter().enumerate() {
                tk[i * src_cols + x] = v;
            }
        }
    }
    for ky in 0..3 {
        for kx in 0..3 {
            let k = ky * 3 + kx;
            let tk = &t[ky * ci * src_cols..][..ci * src_cols];
            let gk = &mut gw[k * ci * co..][..ci * co];
            let dims = (src_cols, kx, co);
            grad_w_cols::<L>(tk, g, gk, dims, ci, (0, wide));
            grad_w_cols::<NARROW>(tk, g, gk, dims, ci, (wide, grouped_out));
            for i in 0..ci {
                let si = &tk[i * src_cols + kx..][..cols];
                for o in grouped_out..co {
                    let mut v = gk[i * co + o];
                    for (&sx, gx) in si.iter().zip(g.chunks_exact(co)) {
                        v += sx * gx[o];
                    }
                    gk[i * co + o] = v;
                }
            }
        }
    }
}

/// Output channels `[c_lo, c_hi)`, a whole number of groups of `L`, of one kernel tap's
/// weight gradient in [`grad_w_row_at`], for all `ci` input channels.
#[inline(always)]
fn grad_w_cols<const L: usize>(
    t: &[f32],
    g: &[f32],
    gk: &mut [f32],
    dims: (usize, usize, usize),
    ci: usize,
    (c_lo, c_hi): (usize, usize),
) {
    let grouped_in = ci / BLOCK * BLOCK;
    for c0 in (c_lo..c_hi).step_by(L) {
        for i0 in (0..grouped_in).step_by(BLOCK) {
            grad_w_block::<BLOCK, L>(t, g, gk, dims, (i0, c0));
        }
        for i0 in grouped_in..ci {
            grad_w_block::<1, L>(t, g, gk, dims, (i0, c0));
        }
    }
}

/// Input channels `[i0, i0 + I)` by output channels `[c0, c0 + L)` of one kernel tap's
/// weight gradient `gk` of [`grad_w_row_at`], from the tap's input row `t` (channel by
/// channel, each `src_cols` long, read from column `kx`).
#[inline(always)]
fn grad_w_block<const I: usize, const L: usize>(
    t: &[f32],
    g: &[f32],
    gk: &mut [f32],
    (src_cols, kx, co): (usize, usize, usize),
    (i0, c0): (usize, usize),
) {
    let cols = g.len() / co;
    let mut acc: [[f32; L]; I] = std::array::from_fn(|i| lanes(&gk[(i0 + i) * co + c0..]));
    let ts: [&[f32]; I] = std::array::from_fn(|i| &t[(i0 + i) * src_cols + kx..][..cols]);
    for (x, gx) in g.chunks_exact(co).enumerate() {
        let gv = lanes::<L>(&gx[c0..]);
        for (a, ti) in acc.iter_mut().zip(&ts) {
            add_scaled(a, ti[x], &gv);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        gk[(i0 + i) * co + c0..][..L].copy_from_slice(a);
    }
}

/// Weight and bias gradients of the 3x3 convolution from map `a` given `g`, the gradient
/// before the activation on the output map: sums over bands of [`BAND`] rows, added in
/// band order.
fn grad_w(a: &Map, g: &Map, len_w: usize) -> (Vec<f32>, Vec<f32>) {
    let co = g.ch;
    let n_in = a.cols * a.ch;
    let n_g = g.cols * co;
    let partial: Vec<(Vec<f32>, Vec<f32>)> = (0..g.rows.div_ceil(BAND))
        .into_par_iter()
        .map(|band| {
            let mut gw = vec![0.0; len_w];
            let mut gb = vec![0.0; co];
            let mut t = vec![0.0; 3 * n_in];
            for r in band * BAND..((band + 1) * BAND).min(g.rows) {
                let grow = &g.data[r * n_g..(r + 1) * n_g];
                let src = &a.data[r * n_in..(r + 3) * n_in];
                grad_w_row(src, a.ch, grow, &mut gw, &mut gb, &mut t);
            }
            (gw, gb)
        })
        .collect();
    let mut gw = vec![0.0; len_w];
    let mut gb = vec![0.0; co];
    for (w, b) in &partial {
        gw.iter_mut().zip(w).for_each(|(x, y)| *x += y);
        gb.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    }
    (gw, gb)
}

/// The gradient with respect to map `a` (the convolution's input) from `g`, the gradient
/// before the activation on the output map, through the transposed weights
/// `wt[k][co][ci]`.
fn grad_input(a: &Map, g: &Map, wt: &[f32]) -> Map {
    grad_input_by(grad_input_row, a, g, wt)
}

/// The signature of [`grad_input_row`].
type GradInputRow = fn(&[Option<&[f32]>; 3], usize, usize, &[f32], &mut [f32], usize);

/// [`grad_input`] one row at a time by `grad_input_row` (a kernel at one lane width, in
/// tests).
fn grad_input_by(grad_input_row: GradInputRow, a: &Map, g: &Map, wt: &[f32]) -> Map {
    let (ci, co) = (a.ch, g.ch);
    let mut ga = Map::zeros(a.y0, a.x0, a.rows, a.cols, ci);
    ga.data
        .par_chunks_mut(a.cols * ci)
        .enumerate()
        .for_each(|(r, grow)| {
            // Output row `r - ky` reads input row `r` through kernel row `ky`.
            let rows: [Option<&[f32]>; 3] =
                std::array::from_fn(|ky| r.checked_sub(ky).filter(|&gr| gr < g.rows).map(|gr| g.row(gr)));
            grad_input_row(&rows, g.cols, co, wt, grow, ci);
        });
    ga
}

crate::simd_dispatch_lanes! {
    /// One row of [`grad_input`]: `rows[ky]` is the output gradient's row that reads this
    /// input row through kernel row `ky`, if there is one.
    fn grad_input_row = grad_input_row_at(rows: &[Option<&[f32]>; 3], g_cols: usize, co: usize, wt: &[f32], out: &mut [f32], ci: usize);
}

/// [`grad_input_row`] with registers of `L` lanes. Each value gets the products in the
/// order (ky, kx, output channel) whatever the blocking: blocks of [`BLOCK`] pixels by
/// `L` (then [`NARROW`]) input channels whose every tap lies inside the output rows are
/// summed in registers, the others one at a time.
#[inline(always)]
fn grad_input_row_at<const L: usize>(
    rows: &[Option<&[f32]>; 3],
    g_cols: usize,
    co: usize,
    wt: &[f32],
    out: &mut [f32],
    ci: usize,
) {
    let cols = out.len() / ci;
    let (wide, grouped) = channel_groups::<L>(ci);
    // Columns [2, g_cols) read all three taps of a kernel row.
    let inner = (2, g_cols.min(cols));
    pixel_blocks!(inner, (0, wide), L, |x, c0, P| grad_input_block::<P, L>(rows, co, wt, out, (ci, x, c0)));
    pixel_blocks!(inner, (wide, grouped), NARROW, |x, c0, P| {
        grad_input_block::<P, NARROW>(rows, co, wt, out, (ci, x, c0))
    });
    let edge = |x: usize| x < inner.0 || x >= inner.1;
    for x in 0..cols {
        let lanes_here = if edge(x) { 0..ci } else { grouped..ci };
        for i in lanes_here {
            let mut v = 0.0f32;
            for (ky, row) in rows.iter().enumerate() {
                let Some(row) = row else { continue };
                for kx in 0..3 {
                    let Some(gx) = x.checked_sub(kx).filter(|&gx| gx < g_cols) else {
                        continue;
                    };
                    let wk = &wt[(ky * 3 + kx) * co * ci..][..co * ci];
                    for (j, &gv) in row[gx * co..(gx + 1) * co].iter().enumerate() {
                        v += gv * wk[j * ci + i];
                    }
                }
            }
            out[x * ci + i] = v;
        }
    }
}

/// Input channels `[c0, c0 + L)` of pixels `[x, x + P)` of [`grad_input_row_at`], all
/// of whose taps lie inside the output rows.
#[inline(always)]
fn grad_input_block<const P: usize, const L: usize>(
    rows: &[Option<&[f32]>; 3],
    co: usize,
    wt: &[f32],
    out: &mut [f32],
    (ci, x, c0): (usize, usize, usize),
) {
    let mut acc = [[0.0f32; L]; P];
    for (ky, row) in rows.iter().enumerate() {
        let Some(row) = row else { continue };
        for kx in 0..3 {
            let gs = &row[(x - kx) * co..][..P * co];
            let wk = &wt[(ky * 3 + kx) * co * ci..][..co * ci];
            for (j, wj) in wk.chunks_exact(ci).enumerate() {
                let wv = lanes::<L>(&wj[c0..]);
                for (p, a) in acc.iter_mut().enumerate() {
                    add_scaled(a, gs[p * co + j], &wv);
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[(x + p) * ci + c0..][..L].copy_from_slice(a);
    }
}

/// Multiplies `g` by the leaky ReLU's slope at `a` and zeroes it outside the image.
fn through_activation(g: &mut Map, a: &Map, (h, w): (usize, usize)) {
    let (lo, hi) = a.inside_cols(w);
    let n = a.cols * a.ch;
    let ch = a.ch;
    let inside: Vec<bool> = (0..a.rows).map(|r| a.row_inside(r, h)).collect();
    g.data
        .par_chunks_mut(n)
        .zip(a.data.par_chunks(n))
        .enumerate()
        .for_each(|(r, (gr, ar))| {
            for (x, (gp, ap)) in gr.chunks_mut(ch).zip(ar.chunks(ch)).enumerate() {
                if !inside[r] || x < lo || x >= hi {
                    gp.fill(0.0);
                    continue;
                }
                for (g, &a) in gp.iter_mut().zip(ap) {
                    if a <= 0.0 {
                        *g *= SLOPE;
                    }
                }
            }
        });
}

/// Adds to `grads` the gradient of a loss whose gradient with respect to `net(x)` on the
/// pass's pixels is `g_out`; `wt` is [`Net::w2_transposed`].
pub(super) fn backward(net: &Net, wt: &[f32], pass: &Pass, g_out: &[f32], grads: &mut Net) {
    let c = net.c;
    let a2 = pass.acts.last().expect("a pass has its layers");
    // Output layer.
    let mut g2 = Map::zeros(a2.y0, a2.x0, a2.rows, a2.cols, c);
    let partial: Vec<(Vec<f32>, f32)> = g2
        .data
        .par_chunks_mut(a2.cols * c * BAND)
        .zip(a2.data.par_chunks(a2.cols * c * BAND))
        .zip(g_out.par_chunks(a2.cols * BAND))
        .map(|((g2b, a2b), gob)| {
            let mut gw3 = vec![0.0f32; c];
            let mut gb3 = 0.0f32;
            for ((gp, ap), &go) in g2b.chunks_mut(c).zip(a2b.chunks(c)).zip(gob) {
                gb3 += go;
                axpy(&mut gw3, go, ap);
                axpy(gp, go, &net.w3);
            }
            (gw3, gb3)
        })
        .collect();
    for (gw3, gb3) in &partial {
        grads.w3.iter_mut().zip(gw3).for_each(|(x, y)| *x += y);
        grads.b3[0] += gb3;
    }
    let dims = (pass.h, pass.w);
    let add = |to: &mut [f32], from: &[f32]| to.iter_mut().zip(from).for_each(|(a, b)| *a += b);
    let mut g = g2;
    through_activation(&mut g, a2, dims);
    // The convolutions between hidden maps, last first: layer l reads acts[l].
    let n = 9 * c * c;
    debug_assert_eq!(wt.len(), net.w2.len(), "wt is the transposed w2");
    for (l, wt) in wt.chunks_exact(n).enumerate().rev() {
        let a = &pass.acts[l];
        let (gw, gb) = grad_w(a, &g, n);
        let mut ga = grad_input(a, &g, wt);
        through_activation(&mut ga, a, dims);
        let (to_w, to_b) = grads.hidden_mut(l);
        add(to_w, &gw);
        add(to_b, &gb);
        g = ga;
    }
    // First convolution.
    let (gw1, gb1) = grad_w(&pass.x, &g, net.w1.len());
    add(&mut grads.w1, &gw1);
    add(&mut grads.b1, &gb1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect()
    }

    fn map(y0: isize, x0: isize, (rows, cols, ch): (usize, usize, usize), rng: &mut Rng) -> Map {
        let mut m = Map::zeros(y0, x0, rows, cols, ch);
        m.data = random(rows * cols * ch, rng);
        m
    }

    /// The kernels as plain loops, summing in the order the blocked ones promise.
    fn conv_plain(a: &Map, w: &[f32], b: &[f32], (h, wd): (usize, usize)) -> Map {
        let (ci, co) = (a.ch, b.len());
        let mut out = Map::zeros(a.y0 + 1, a.x0 + 1, a.rows - 2, a.cols - 2, co);
        let (lo, hi) = out.inside_cols(wd);
        for r in 0..out.rows {
            if !out.row_inside(r, h) {
                continue;
            }
            for x in lo..hi {
                for o in 0..co {
                    let mut v = b[o];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            for i in 0..ci {
                                let s = a.data[((r + ky) * a.cols + x + kx) * ci + i];
                                v += s * w[((ky * 3 + kx) * ci + i) * co + o];
                            }
                        }
                    }
                    out.data[(r * out.cols + x) * co + o] = if v < 0.0 { v * SLOPE } else { v };
                }
            }
        }
        out
    }

    fn grad_w_row_plain(src: &[f32], ci: usize, g: &[f32], gw: &mut [f32], gb: &mut [f32]) {
        let co = gb.len();
        let cols = g.len() / co;
        for x in 0..cols {
            for o in 0..co {
                gb[o] += g[x * co + o];
            }
            for ky in 0..3 {
                for kx in 0..3 {
                    for i in 0..ci {
                        let s = src[(ky * (cols + 2) + x + kx) * ci + i];
                        for o in 0..co {
                            gw[((ky * 3 + kx) * ci + i) * co + o] += s * g[x * co + o];
                        }
                    }
                }
            }
        }
    }

    fn grad_input_plain(a: &Map, g: &Map, wt: &[f32]) -> Map {
        let (ci, co) = (a.ch, g.ch);
        let mut ga = Map::zeros(a.y0, a.x0, a.rows, a.cols, ci);
        for r in 0..a.rows {
            for x in 0..a.cols {
                for i in 0..ci {
                    let mut v = 0.0f32;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (Some(gr), Some(gx)) = (r.checked_sub(ky), x.checked_sub(kx)) else {
                                continue;
                            };
                            if gr >= g.rows || gx >= g.cols {
                                continue;
                            }
                            for j in 0..co {
                                let gv = g.data[(gr * g.cols + gx) * co + j];
                                v += gv * wt[((ky * 3 + kx) * co + j) * ci + i];
                            }
                        }
                    }
                    ga.data[(r * a.cols + x) * ci + i] = v;
                }
            }
        }
        ga
    }

    /// The blocked kernels sum in the same order as plain loops, so they agree bit for
    /// bit: at every lane width (each run here whatever the CPU, and as dispatched), at
    /// channel counts below, at and between multiples of the lanes, with maps reaching
    /// past the image's edges and rows shorter than a block.
    #[test]
    fn blocked_kernels_equal_plain_loops_bit_for_bit() {
        type GradWRow = fn(&[f32], usize, &[f32], &mut [f32], &mut [f32], &mut [f32]);
        let kernels: [(&str, ConvRow, GradWRow, GradInputRow); 3] = [
            ("dispatched", conv_row, grad_w_row, grad_input_row),
            ("8 lanes", conv_row_at::<8>, grad_w_row_at::<8>, grad_input_row_at::<8>),
            ("16 lanes", conv_row_at::<16>, grad_w_row_at::<16>, grad_input_row_at::<16>),
        ];
        let mut rng = Rng::new(7);
        // With 16 lanes, 29 and 57 are groups of 16, one of 8 and single channels.
        let channels = [
            (1, 24),
            (24, 24),
            (5, 5),
            (13, 8),
            (8, 13),
            (16, 17),
            (1, 1),
            (40, 33),
            (33, 40),
            (29, 25),
            (25, 57),
        ];
        for (ci, co) in channels {
            // (2, 1): a 2x2 patch's chequerboard sub-image, narrower than any block.
            for (h, wd) in [(9, 21), (4, 3), (12, 40), (2, 1), (1, 2)] {
                for (lanes, conv_row, grad_w_row, grad_input_row) in kernels {
                    let case = format!("{ci}->{co} on {h}x{wd}, {lanes}");
                    let a = map(-2, -2, (h + 4, wd + 4, ci), &mut rng);
                    let w = random(9 * ci * co, &mut rng);
                    let b = random(co, &mut rng);
                    let out = conv3x3_by(conv_row, &a, &w, &b, (h, wd));
                    let want = conv_plain(&a, &w, &b, (h, wd));
                    assert_eq!(out.data, want.data, "convolution {case}");

                    let g = map(-1, -1, (h + 2, wd + 2, co), &mut rng);
                    let src = &a.data[..3 * a.cols * ci];
                    let grow = &g.data[..g.cols * co];
                    let (mut gw, mut gb) = (random(9 * ci * co, &mut rng), random(co, &mut rng));
                    let (mut pw, mut pb) = (gw.clone(), gb.clone());
                    grad_w_row(src, ci, grow, &mut gw, &mut gb, &mut vec![0.0; src.len()]);
                    grad_w_row_plain(src, ci, grow, &mut pw, &mut pb);
                    assert_eq!((gw, gb), (pw, pb), "weight gradient {case}");

                    let wt = random(9 * ci * co, &mut rng);
                    let ga = grad_input_by(grad_input_row, &a, &g, &wt);
                    let want = grad_input_plain(&a, &g, &wt);
                    assert_eq!(ga.data, want.data, "input gradient {case}");
                }
            }
        }
    }
}
