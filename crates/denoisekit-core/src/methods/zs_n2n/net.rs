//! The network of zero-shot Noise2Noise and its gradients, written out by hand: two 3x3
//! convolutions of `c` channels with leaky ReLUs and a 1x1 convolution to one channel.
//! Feature maps are stored channels last, one row after another, so that the inner loops
//! run along the channels (`axpy` over contiguous weights), which the compiler
//! vectorises. Every sum runs in a fixed order and the parallel loops split work by rows
//! of fixed count, never by thread count, so results do not depend on the machine.

use crate::rng::Rng;
use rayon::prelude::*;

/// Slope of the leaky ReLU on negative inputs (as Mansour & Heckel).
pub const SLOPE: f32 = 0.2;

/// Rows per parallel band of the weight-gradient sums (fixed, so the order of the partial
/// sums does not depend on the number of threads).
const BAND: usize = 8;

/// The weights: `w1[k][co]` (k = 3·ky + kx, one input channel), `w2[k][ci][co]`, `w3[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    /// Hidden channels.
    pub c: usize,
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
    pub fn init(c: usize, rng: &mut Rng) -> Self {
        let mut draw = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                .collect()
        };
        Self {
            c,
            w1: draw(9 * c, 9),
            b1: draw(c, 9),
            w2: draw(9 * c * c, 9 * c),
            b2: draw(c, 9 * c),
            w3: draw(c, c),
            b3: draw(1, c),
        }
    }

    /// Zeros of the same shape (for gradients and Adam's moments).
    pub fn zeros_like(&self) -> Self {
        let z = |v: &Vec<f32>| vec![0.0; v.len()];
        Self {
            c: self.c,
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

    /// The number of weights of a network of width `c`: the length of its [`Net::flat`].
    pub const fn count(c: usize) -> usize {
        9 * c + c + 9 * c * c + c + c + 1
    }

    /// The network of width `c` whose [`Net::flat`] is `flat`, or `None` if its length is
    /// not that of width `c`.
    pub fn from_flat(c: usize, flat: &[f32]) -> Option<Self> {
        if flat.len() != Self::count(c) {
            return None;
        }
        let mut net = Self {
            c,
            w1: vec![0.0; 9 * c],
            b1: vec![0.0; c],
            w2: vec![0.0; 9 * c * c],
            b2: vec![0.0; c],
            w3: vec![0.0; c],
            b3: vec![0.0; 1],
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

    /// `w2` transposed to `[k][co][ci]`, for the gradient with respect to the input
    /// ([`backward`]; computed once per step, shared by its passes).
    pub(super) fn w2_transposed(&self) -> Vec<f32> {
        let c = self.c;
        let mut t = vec![0.0; 9 * c * c];
        for k in 0..9 {
            for ci in 0..c {
                for co in 0..c {
                    t[(k * c + co) * c + ci] = self.w2[(k * c + ci) * c + co];
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

crate::simd_dispatch! {
    /// One output row of a 3x3 convolution: `src` holds the three input rows it reads
    /// (`cols + 2` pixels of `ci` channels each), `out` gets `cols` pixels of `co`
    /// channels, bias plus the sums, through the leaky ReLU, on columns `[lo, hi)` (the
    /// others stay 0: outside the image).
    fn conv_row(src: &[f32], ci: usize, w: &[f32], b: &[f32], out: &mut [f32], lo: usize, hi: usize) {
        let co = b.len();
        let src_cols = out.len() / co + 2;
        for x in lo..hi {
            let o = &mut out[x * co..(x + 1) * co];
            o.copy_from_slice(b);
            for ky in 0..3 {
                for kx in 0..3 {
                    let s = &src[(ky * src_cols + x + kx) * ci..][..ci];
                    let wk = &w[(ky * 3 + kx) * ci * co..][..ci * co];
                    for (i, &v) in s.iter().enumerate() {
                        for (o, w) in o.iter_mut().zip(&wk[i * co..(i + 1) * co]) {
                            *o += v * w;
                        }
                    }
                }
            }
            for v in o.iter_mut() {
                if *v < 0.0 {
                    *v *= SLOPE;
                }
            }
        }
    }
}

/// A 3x3 convolution with bias and leaky ReLU of map `a` into a map two rows and two
/// columns smaller, zero outside the image.
fn conv3x3(a: &Map, w: &[f32], b: &[f32], (h, wd): (usize, usize)) -> Map {
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
    a1: Map,
    a2: Map,
    /// `net(x)` on the pass's rows and all columns.
    pub net: Vec<f32>,
    h: usize,
    w: usize,
}

/// `net(x)` on rows `[y0, y1)` of the `h` x `w` image `img` (row-major), which reads two
/// rows beyond them where the image has them.
pub(super) fn forward(net: &Net, img: &[f32], (h, w): (usize, usize), (y0, y1): (usize, usize)) -> Pass {
    let mut x = Map::zeros(y0 as isize - 2, -2, y1 - y0 + 4, w + 4, 1);
    for r in 0..x.rows {
        let y = x.y0 + r as isize;
        if y >= 0 && y < h as isize {
            let y = y as usize;
            x.data[r * (w + 4) + 2..r * (w + 4) + 2 + w].copy_from_slice(&img[y * w..(y + 1) * w]);
        }
    }
    let a1 = conv3x3(&x, &net.w1, &net.b1, (h, w));
    let a2 = conv3x3(&a1, &net.w2, &net.b2, (h, w));
    let out = project(&a2, &net.w3, net.b3[0]);
    Pass {
        x,
        a1,
        a2,
        net: out,
        h,
        w,
    }
}

crate::simd_dispatch! {
    /// Adds one output row's contribution to the weight and bias gradients of a 3x3
    /// convolution: `src` the three input rows, `g` the row's gradient before the
    /// activation.
    fn grad_w_row(src: &[f32], ci: usize, g: &[f32], gw: &mut [f32], gb: &mut [f32]) {
        let co = gb.len();
        let cols = g.len() / co;
        let src_cols = cols + 2;
        for x in 0..cols {
            let gx = &g[x * co..(x + 1) * co];
            for (b, v) in gb.iter_mut().zip(gx) {
                *b += v;
            }
            for ky in 0..3 {
                for kx in 0..3 {
                    let s = &src[(ky * src_cols + x + kx) * ci..][..ci];
                    let gk = &mut gw[(ky * 3 + kx) * ci * co..][..ci * co];
                    for (i, &v) in s.iter().enumerate() {
                        for (o, g) in gk[i * co..(i + 1) * co].iter_mut().zip(gx) {
                            *o += v * g;
                        }
                    }
                }
            }
        }
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
            for r in band * BAND..((band + 1) * BAND).min(g.rows) {
                let grow = &g.data[r * n_g..(r + 1) * n_g];
                grad_w_row(&a.data[r * n_in..(r + 3) * n_in], a.ch, grow, &mut gw, &mut gb);
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
    let (ci, co) = (a.ch, g.ch);
    let mut ga = Map::zeros(a.y0, a.x0, a.rows, a.cols, ci);
    ga.data
        .par_chunks_mut(a.cols * ci)
        .enumerate()
        .for_each(|(r, grow)| {
            // Output row `r - ky` reads input row `r` through kernel row `ky`.
            for ky in 0..3 {
                let Some(gr) = r.checked_sub(ky).filter(|&gr| gr < g.rows) else {
                    continue;
                };
                let grow_g = g.row(gr);
                for kx in 0..3 {
                    let wk = &wt[(ky * 3 + kx) * co * ci..][..co * ci];
                    for c in kx..(g.cols + kx).min(a.cols) {
                        let gv = &grow_g[(c - kx) * co..(c - kx + 1) * co];
                        let o = &mut grow[c * ci..(c + 1) * ci];
                        for (j, &v) in gv.iter().enumerate() {
                            axpy(o, v, &wk[j * ci..(j + 1) * ci]);
                        }
                    }
                }
            }
        });
    ga
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
    let a2 = &pass.a2;
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
    through_activation(&mut g2, a2, dims);
    // Second convolution.
    let (gw2, gb2) = grad_w(&pass.a1, &g2, net.w2.len());
    let mut g1 = grad_input(&pass.a1, &g2, wt);
    through_activation(&mut g1, &pass.a1, dims);
    // First convolution.
    let (gw1, gb1) = grad_w(&pass.x, &g1, net.w1.len());
    let add = |to: &mut [f32], from: &[f32]| to.iter_mut().zip(from).for_each(|(a, b)| *a += b);
    add(&mut grads.w1, &gw1);
    add(&mut grads.b1, &gb1);
    add(&mut grads.w2, &gw2);
    add(&mut grads.b2, &gb2);
}
