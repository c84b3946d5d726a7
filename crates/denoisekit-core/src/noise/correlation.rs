//! Spatial correlation of the noise: whether a pixel's noise is independent of its
//! neighbours', and if not, how far the correlation reaches.
//!
//! Camera noise after demosaicing, binning, interpolation or some sCMOS corrections is
//! often spatially correlated. Self-supervised tuning (the masked loss and SURE in
//! [`crate::tune`]) assumes independent noise: with correlated noise a method's output at
//! a hidden pixel still sees that pixel's noise through its neighbours, and the loss
//! rewards keeping the noise. Tuning asks this module, and hides the correlated
//! neighbours too (as StructN2V does) or weights SURE's divergence by the covariance.
//!
//! The estimate works on the image's smooth pixels. A high-pass residual `d = y − S(y)`,
//! with `S` the separable 7-point quadratic Savitzky–Golay smoother (blind to every
//! biquadratic surface, so smooth signal leaves no trace), is a fixed linear filter `K` of
//! the noise; the autocovariance of `d` at lag `k` is therefore `Σⱼ R(k − j) C(j)`, where
//! `R = K ⋆ K` and `C(j) = σ²ρ(j)` is the noise's autocovariance. `C` is modelled on lags
//! up to 2 pixels (Chebyshev distance); the measured autocovariances of `d` at lags up to
//! 4 give a linear least-squares problem in `σ²` and the `C(j)`, solved directly. The
//! result is the noise's own correlation coefficients and its pointwise variance — which,
//! unlike a wavelet detail estimate, is not shrunk by the correlation. Pixels near edges
//! (a 5×5 mean's slope beyond what noise explains), near clipped or saturated values, and
//! residuals beyond six standard deviations (hot pixels) are left out. Standard errors
//! come from leaving out each of 8 bands of rows in turn (jackknife). The estimate is
//! made twice, through the 7-point and the 5-point smoother, and each lag keeps the
//! smaller: fine texture leaks into the residual and looks like correlated noise, by an
//! amount that depends on the smoother; the noise's own correlation does not.
//!
//! The variance is assumed uniform: estimate on the variance-stabilised image when the
//! noise is photon noise (tuning does; `denoisekit noise --correlation` does when the
//! image's noise model is Poisson–Gaussian).

use crate::error::{DenoiseError, Result};
use crate::volume::{Shape, VolumeView};
use rayon::prelude::*;

/// A lag (dy, dx) of the half plane: `dy > 0`, or `dy = 0` and `dx > 0`.
pub type Lag = (i32, i32);

/// Largest lag (Chebyshev distance) of the noise correlation modelled.
pub const MAX_RADIUS: i32 = 2;
/// Largest lag of the residual's autocovariance measured.
const MEASURED: i32 = 2 * MAX_RADIUS;
/// Savitzky–Golay quadratic smoothing over 7 points, times 21.
const SG7: [f64; 7] = [-2.0, 3.0, 6.0, 7.0, 6.0, 3.0, -2.0];
/// The 5-point one, padded to 7 taps.
const SG5: [f64; 7] = [0.0, -3.0, 12.0, 17.0, 12.0, -3.0, 0.0];

/// Normalised smoother taps.
fn taps(c: [f64; 7]) -> [f64; 7] {
    let sum: f64 = c.iter().sum();
    c.map(|v| v / sum)
}
/// A correlation coefficient counts when it is at least this large...
const MIN_RHO: f64 = 0.1;
/// ...and this many standard errors from zero.
const SIGNIFICANCE: f64 = 4.0;
/// Bands of rows for the standard errors.
const BANDS: usize = 8;
/// Rows and columns measured at most: a larger plane is measured on its central part
/// (the residual's buffers take about 40 bytes a pixel).
const MAX_SIDE: usize = 1024;
/// Pixels measured at most; planes of a larger stack are sampled evenly. Standard errors
/// are then about 0.01 at most, and [`crate::estimate_sigma`], which measures the
/// correlation on every call, costs a fifth of a second on a large stack on 2 cores.
const MAX_PIXELS: usize = MAX_SIDE * MAX_SIDE;

/// The noise's spatial correlation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NoiseCorrelation {
    /// (lag, correlation coefficient, its standard error) for every lag of the half
    /// plane within [`MAX_RADIUS`].
    pub lags: Vec<(Lag, f64, f64)>,
    /// The noise's pointwise variance, grey levels², as the least-squares fit of the
    /// residual's autocovariances gives it on the smooth pixels measured.
    pub variance: f64,
    /// The noise's standard deviation, grey levels: [`crate::estimate_sigma`]'s wavelet
    /// estimate over the whole image, corrected for this correlation (what every
    /// noise-derived default scales with).
    pub sigma: f64,
    /// How far the significant correlation reaches, in pixels: 0 when the noise is
    /// independent between pixels.
    pub radius: usize,
    /// Pixels measured.
    pub pixels: usize,
}

impl NoiseCorrelation {
    /// The correlation coefficients that count (see [`NoiseCorrelation::radius`]), with
    /// both signs of each lag: what tuning uses.
    pub fn significant(&self) -> Vec<(Lag, f64)> {
        self.lags
            .iter()
            .filter(|(_, r, se)| counts(*r, *se))
            .flat_map(|&((dy, dx), r, _)| [((dy, dx), r), ((-dy, -dx), r)])
            .collect()
    }

    /// A few words for a dialog: independent, or how far and how strong.
    pub fn summary(&self) -> String {
        if self.radius == 0 {
            return "independent between pixels".to_string();
        }
        let nearest = self
            .lags
            .iter()
            .filter(|(l, _, _)| matches!(l, (0, 1) | (1, 0)))
            .map(|(_, r, _)| *r)
            .fold(0.0f64, |a, r| if r.abs() > a.abs() { r } else { a });
        format!(
            "correlated up to {} pixel{} ({nearest:.2} with the nearest neighbours)",
            self.radius,
            if self.radius == 1 { "" } else { "s" }
        )
    }

    /// One sentence for the user.
    pub fn describe(&self) -> String {
        let nearest: Vec<String> = self
            .lags
            .iter()
            .filter(|(l, _, _)| matches!(l, (0, 1) | (1, 0) | (1, 1) | (1, -1)))
            .map(|((dy, dx), r, se)| format!("({dy},{dx}) {r:+.3} ± {se:.3}"))
            .collect();
        let what = if self.radius == 0 {
            "independent between pixels".to_string()
        } else {
            format!(
                "spatially correlated up to {} pixel{}",
                self.radius,
                if self.radius == 1 { "" } else { "s" }
            )
        };
        format!(
            "noise {what} (correlation at lags (dy,dx): {}; from {} smooth pixels)",
            nearest.join(", "),
            self.pixels
        )
    }
}

/// [`estimate_correlation`] on the image as its noise model sees it: variance-stabilised
/// first when `choice` is Poisson–Gaussian, so that bright and dim regions weigh alike.
///
/// # Errors
/// As [`estimate_correlation`].
pub fn estimate_correlation_for(
    v: &VolumeView<'_>,
    choice: &crate::noise::NoiseChoice,
) -> Result<NoiseCorrelation> {
    if matches!(choice.model, crate::noise::NoiseModel::Gaussian { .. }) {
        return estimate_correlation(v);
    }
    let mut values = crate::ParamValues::new();
    for pair in choice.options().split_whitespace() {
        if let Some((k, val)) = pair.split_once('=') {
            values.insert(k, val);
        }
    }
    match crate::vst::Gat::from_values(&values)? {
        Some(g) => estimate_correlation(&g.forward(v).view()),
        None => estimate_correlation(v),
    }
}

/// [`estimate_correlation_for`] the model `noise_model=auto` chooses
/// ([`crate::noise::choose_noise_model`]), without measuring the Gaussian model's noise
/// level, which costs another correlation measurement.
///
/// # Errors
/// As [`estimate_correlation`].
pub fn estimate_correlation_auto(v: &VolumeView<'_>) -> Result<NoiseCorrelation> {
    crate::volume::check_input(v)?;
    match crate::noise::photon_model(v) {
        Ok((fit, reason)) => estimate_correlation_for(
            v,
            &crate::noise::NoiseChoice {
                model: crate::noise::NoiseModel::PoissonGaussian(fit),
                reason,
            },
        ),
        Err(_) => estimate_correlation(v),
    }
}

fn counts(r: f64, se: f64) -> bool {
    r.abs() >= MIN_RHO && r.abs() > SIGNIFICANCE * se
}

/// The lags of the half plane within Chebyshev distance `r`.
fn half_plane(r: i32) -> Vec<Lag> {
    let mut lags = Vec::new();
    for dy in 0..=r {
        for dx in -r..=r {
            if dy > 0 || dx > 0 {
                lags.push((dy, dx));
            }
        }
    }
    lags
}

/// Estimates the noise's spatial correlation in the (y, x) plane.
///
/// # Errors
/// [`DenoiseError::InvalidInput`] for an invalid image, one smaller than 16×16, or one with
/// too few smooth unclipped pixels (fewer than 2000) to measure.
pub fn estimate_correlation(v: &VolumeView<'_>) -> Result<NoiseCorrelation> {
    // Fine texture that the smoother cannot follow leaks into the residual and looks like
    // correlated noise (0.18 between neighbours on a smoothed ssTEM plane with white
    // noise); the 5-point smoother follows more of it (0.09 there) but measures less
    // precisely. Noise correlation is a property of the noise, the same through either
    // filter; leakage is not. Each lag keeps the smaller of the two estimates, so a
    // correlation counts only when both filters see it.
    let s = Shape::of(v);
    let centre = |n: usize| {
        let m = n.min(MAX_SIDE);
        (n - m) / 2..(n - m) / 2 + m
    };
    let part = v.slice(ndarray::s![.., centre(s.height), centre(s.width)]);
    let wide = estimate_with(&part, taps(SG7))?;
    let narrow = estimate_with(&part, taps(SG5))?;
    let lags: Vec<(Lag, f64, f64)> = wide
        .lags
        .iter()
        .zip(&narrow.lags)
        .map(|(&w, &n)| if n.1.abs() < w.1.abs() { n } else { w })
        .collect();
    let radius = lags
        .iter()
        .filter(|(_, r, se)| counts(*r, *se))
        .map(|((dy, dx), _, _)| dy.abs().max(dx.abs()) as usize)
        .max()
        .unwrap_or(0);
    let mut c = NoiseCorrelation {
        lags,
        variance: wide.variance,
        sigma: 0.0,
        radius,
        pixels: wide.pixels,
    };
    c.sigma = crate::noise::sigma_with(v, Some(&c));
    Ok(c)
}

/// What one smoother's residual gives: every lag's (coefficient, standard error), the
/// pointwise variance, and the pixels measured.
struct OneSmoother {
    lags: Vec<(Lag, f64, f64)>,
    variance: f64,
    pixels: usize,
}

/// [`estimate_correlation`] through the residual of one smoother.
fn estimate_with(v: &VolumeView<'_>, sg: [f64; 7]) -> Result<OneSmoother> {
    crate::volume::check_input(v)?;
    let s = Shape::of(v);
    let (h, w) = (s.height, s.width);
    if h < 16 || w < 16 {
        return Err(DenoiseError::invalid(format!(
            "a {w}x{h} image is too small to measure the noise's correlation: at least 16x16 \
             pixels needed"
        )));
    }
    let (lo, hi) = crate::volume::min_max(v);
    let src = v.as_standard_layout();
    let data = src.as_slice().expect("standard layout is contiguous");
    let planes = (MAX_PIXELS / (h * w)).max(1);
    let stride = s.depth.div_ceil(planes);
    let lags_k = half_plane(MEASURED);
    // Per band: sums of d_p·d_{p+k} for k = 0 and every lag, and their counts.
    let mut sums = vec![vec![0.0f64; lags_k.len() + 1]; BANDS];
    let mut counts_k = vec![vec![0usize; lags_k.len() + 1]; BANDS];
    let mut pixels = 0usize;
    // The sampled planes centred in the stack: one plane is the middle one, which is more
    // likely to show the specimen than the first.
    let last = (s.depth.div_ceil(stride) - 1) * stride;
    for z in ((s.depth - 1 - last) / 2..s.depth).step_by(stride) {
        let plane = &data[z * h * w..(z + 1) * h * w];
        let Some((d, smooth)) = residual(plane, h, w, lo, hi, sg) else {
            continue;
        };
        pixels += smooth.iter().filter(|&&m| m).count();
        // Bands of rows are independent sums: one task each.
        let per_band: Vec<(Vec<f64>, Vec<usize>)> = (0..BANDS)
            .into_par_iter()
            .map(|band| {
                let mut sum = vec![0.0f64; lags_k.len() + 1];
                let mut count = vec![0usize; lags_k.len() + 1];
                for y in band * h / BANDS..(band + 1) * h / BANDS {
                    for x in 0..w {
                        let i = y * w + x;
                        if !smooth[i] {
                            continue;
                        }
                        sum[0] += d[i] * d[i];
                        count[0] += 1;
                        for (n, &(dy, dx)) in lags_k.iter().enumerate() {
                            let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                            if yy >= h as i32 || xx < 0 || xx >= w as i32 {
                                continue;
                            }
                            let j = yy as usize * w + xx as usize;
                            if smooth[j] {
                                sum[n + 1] += d[i] * d[j];
                                count[n + 1] += 1;
                            }
                        }
                    }
                }
                (sum, count)
            })
            .collect();
        for (band, (sum, count)) in per_band.into_iter().enumerate() {
            for n in 0..sum.len() {
                sums[band][n] += sum[n];
                counts_k[band][n] += count[n];
            }
        }
    }
    if pixels < 2000 {
        return Err(DenoiseError::invalid(format!(
            "too few smooth pixels to measure the noise's correlation: {pixels} (at least \
             2000 away from edges, clipping and saturation)"
        )));
    }
    let moments = |bands: &[usize]| -> Option<Vec<f64>> {
        (0..=lags_k.len())
            .map(|n| {
                let (s, c) = bands.iter().fold((0.0, 0usize), |(s, c), &b| {
                    (s + sums[b][n], c + counts_k[b][n])
                });
                (c > 0).then(|| s / c as f64)
            })
            .collect()
    };
    let all: Vec<usize> = (0..BANDS).collect();
    let (variance, rho) = solve(
        &moments(&all).ok_or_else(|| {
            DenoiseError::invalid("too few smooth pixels to measure the noise's correlation")
        })?,
        sg,
    )?;
    // Leave-one-band-out (jackknife) standard errors.
    let mut jack: Vec<Vec<f64>> = Vec::new();
    for b in 0..BANDS {
        let rest: Vec<usize> = all.iter().copied().filter(|&c| c != b).collect();
        if let Some(m) = moments(&rest)
            && let Ok((_, r)) = solve(&m, sg)
        {
            jack.push(r);
        }
    }
    let lags_j = half_plane(MAX_RADIUS);
    let nj = jack.len() as f64;
    let lags: Vec<(Lag, f64, f64)> = lags_j
        .iter()
        .enumerate()
        .map(|(n, &lag)| {
            let se = if jack.len() >= 2 {
                let mean = jack.iter().map(|r| r[n]).sum::<f64>() / nj;
                ((nj - 1.0) / nj * jack.iter().map(|r| (r[n] - mean).powi(2)).sum::<f64>()).sqrt()
            } else {
                f64::INFINITY
            };
            (lag, rho[n], se)
        })
        .collect();
    Ok(OneSmoother {
        lags,
        variance,
        pixels,
    })
}

/// The residual of the Savitzky–Golay smoother at every pixel, and which pixels are
/// smooth (measured). `None` when the plane has no noise at all.
fn residual(
    plane: &[f32],
    h: usize,
    w: usize,
    lo: f32,
    hi: f32,
    sg: [f64; 7],
) -> Option<(Vec<f64>, Vec<bool>)> {
    let at = |y: usize, x: usize| f64::from(plane[y * w + x]);
    // Separable: rows first, then columns, on the valid region (3 pixels in).
    let mut rows = vec![0.0f64; h * w];
    rows.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, r) in row.iter_mut().enumerate().take(w - 3).skip(3) {
            *r = (0..7).map(|t| sg[t] * at(y, x + t - 3)).sum::<f64>();
        }
    });
    let mut d = vec![0.0f64; h * w];
    let mut valid = vec![false; h * w];
    for y in 3..h - 3 {
        for x in 3..w - 3 {
            let smooth = (0..7)
                .map(|t| sg[t] * rows[(y + t - 3) * w + x])
                .sum::<f64>();
            d[y * w + x] = at(y, x) - smooth;
            valid[y * w + x] = true;
        }
    }
    let mut abs: Vec<f64> = d
        .iter()
        .zip(&valid)
        .filter(|(_, v)| **v)
        .map(|(d, _)| d.abs())
        .collect();
    if abs.is_empty() {
        return None;
    }
    let n = abs.len();
    let (_, med, _) = abs.select_nth_unstable_by(n / 2, f64::total_cmp);
    let sd_d = *med / 0.674_489_750_196_081_7;
    if sd_d <= 0.0 {
        return None;
    }
    // The residual keeps 1 − (7/21)² of white noise's variance.
    let sigma2 = sd_d * sd_d / (1.0 - (sg[3] * sg[3]));
    // Integral images of values and of clipped pixels for 5x5 means and 7x7 checks.
    let (ih, iw) = (h + 1, w + 1);
    let mut sum = vec![0.0f64; ih * iw];
    let mut clip = vec![0u32; ih * iw];
    for y in 0..h {
        for x in 0..w {
            let v = plane[y * w + x];
            let i = (y + 1) * iw + x + 1;
            sum[i] = f64::from(v) + sum[i - 1] + sum[i - iw] - sum[i - iw - 1];
            clip[i] = u32::from(v <= lo || v >= hi) + clip[i - 1] + clip[i - iw] - clip[i - iw - 1];
        }
    }
    let boxed = |y0: usize, x0: usize, y1: usize, x1: usize| {
        sum[y1 * iw + x1] - sum[y0 * iw + x1] - sum[y1 * iw + x0] + sum[y0 * iw + x0]
    };
    let clipped = |y0: usize, x0: usize, y1: usize, x1: usize| {
        clip[y1 * iw + x1] + clip[y0 * iw + x0] - clip[y0 * iw + x1] - clip[y1 * iw + x0]
    };
    let mean5 = |y: usize, x: usize| boxed(y - 2, x - 2, y + 3, x + 3) / 25.0;
    // An edge's slope is many times what noise gives a 5x5 mean (each component has
    // standard deviation √20/50·σ on white noise); the limit is generous (four times the
    // 99% quantile's square) because correlated noise moves local means more than white
    // noise, and a tight test would keep only the pixels whose noise happened to be flat.
    let slope_var = 20.0 / 2500.0 * sigma2;
    let limit2 = 4.0 * 2.0 * 100f64.ln() * slope_var;
    let outlier = 6.0 * sd_d;
    let mut smooth = vec![false; h * w];
    for y in 3..h - 3 {
        for x in 3..w - 3 {
            let i = y * w + x;
            if d[i].abs() > outlier || clipped(y - 3, x - 3, y + 4, x + 4) > 0 {
                continue;
            }
            let gx = 0.5 * (mean5(y, x + 1) - mean5(y, x - 1));
            let gy = 0.5 * (mean5(y + 1, x) - mean5(y - 1, x));
            smooth[i] = gx * gx + gy * gy <= limit2;
        }
    }
    Some((d, smooth))
}

/// The residual filter `K = δ − S` (7×7, centred at (3, 3)).
fn kernel(sg: [f64; 7]) -> [[f64; 7]; 7] {
    let mut k = [[0.0; 7]; 7];
    for (y, row) in k.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = -sg[y] * sg[x];
        }
    }
    k[3][3] += 1.0;
    k
}

/// `R(k) = Σₘ K(m) K(m + k)`.
fn kernel_autocorrelation(k: &[[f64; 7]; 7], (dy, dx): Lag) -> f64 {
    let mut r = 0.0;
    for y in 0..7i32 {
        for x in 0..7i32 {
            let (yy, xx) = (y + dy, x + dx);
            if (0..7).contains(&yy) && (0..7).contains(&xx) {
                r += k[y as usize][x as usize] * k[yy as usize][xx as usize];
            }
        }
    }
    r
}

/// Solves for the noise variance and its correlation coefficients from the residual's
/// autocovariances `m` (lag 0, then [`half_plane`]`(MEASURED)`).
fn solve(m: &[f64], sg: [f64; 7]) -> Result<(f64, Vec<f64>)> {
    let k = kernel(sg);
    let measured = half_plane(MEASURED);
    let unknown = half_plane(MAX_RADIUS);
    let nu = unknown.len() + 1;
    let row = |lag: Lag| -> Vec<f64> {
        let mut r = vec![kernel_autocorrelation(&k, lag)];
        for &(jy, jx) in &unknown {
            r.push(
                kernel_autocorrelation(&k, (lag.0 - jy, lag.1 - jx))
                    + kernel_autocorrelation(&k, (lag.0 + jy, lag.1 + jx)),
            );
        }
        r
    };
    // Normal equations AᵀA u = Aᵀm.
    let mut ata = vec![vec![0.0f64; nu]; nu];
    let mut atm = vec![0.0f64; nu];
    for (lag, &mk) in std::iter::once((0, 0)).chain(measured).zip(m) {
        let r = row(lag);
        for a in 0..nu {
            atm[a] += r[a] * mk;
            for b in 0..nu {
                ata[a][b] += r[a] * r[b];
            }
        }
    }
    let u = solve_linear(ata, atm).ok_or_else(|| {
        DenoiseError::invalid("the noise's correlation could not be separated from the image")
    })?;
    if u[0] <= 0.0 || !u[0].is_finite() {
        return Err(DenoiseError::invalid(
            "the image has no measurable noise: its correlation cannot be estimated",
        ));
    }
    Ok((u[0], u[1..].iter().map(|c| c / u[0]).collect()))
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve_linear(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        let bc = b[c];
        let (upper, lower) = a.split_at_mut(c + 1);
        let pivot = &upper[c];
        for (row, br) in lower.iter_mut().zip(&mut b[c + 1..]) {
            let f = row[c] / pivot[c];
            for (v, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *v -= f * p;
            }
            *br -= f * bc;
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phantom::Rng;
    use crate::volume::Volume;

    /// A smooth scene with white noise of sd 5, optionally smoothed by `blur` (a 3x3
    /// kernel), which correlates it.
    fn scene(seed: u64, blur: Option<[[f64; 3]; 3]>) -> Volume {
        let n = 256;
        let mut rng = Rng::new(seed);
        let white: Vec<f64> = (0..(n + 2) * (n + 2)).map(|_| 5.0 * rng.normal()).collect();
        Volume::from_shape_fn((1, n, n), |(_, y, x)| {
            let signal = 100.0 + 40.0 * ((x as f64 / 37.0).sin() * (y as f64 / 29.0).cos());
            let noise = match blur {
                None => white[(y + 1) * (n + 2) + x + 1],
                Some(k) => {
                    let mut s = 0.0;
                    for (dy, row) in k.iter().enumerate() {
                        for (dx, c) in row.iter().enumerate() {
                            s += c * white[(y + dy) * (n + 2) + x + dx];
                        }
                    }
                    s
                }
            };
            (signal + noise) as f32
        })
    }

    fn rho(c: &NoiseCorrelation, lag: Lag) -> f64 {
        c.lags.iter().find(|l| l.0 == lag).unwrap().1
    }

    #[test]
    fn white_noise_is_independent() {
        let c = estimate_correlation(&scene(1, None).view()).unwrap();
        assert_eq!(c.radius, 0, "{c:?}");
        assert!((c.variance.sqrt() - 5.0).abs() < 0.25, "{c:?}");
        for (lag, r, se) in &c.lags {
            assert!(r.abs() < 0.05, "{lag:?}: {r} ± {se}");
        }
    }

    #[test]
    fn blurred_noise_is_correlated_with_the_right_coefficients_and_variance() {
        // Noise smoothed by [1 2 1]/4 in x only: ρ(0,1) = 4/6, ρ(0,2) = 1/6, zero across
        // rows; variance 25·6/16.
        let k = [[0.0, 0.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 0.0]];
        let c = estimate_correlation(&scene(2, Some(k)).view()).unwrap();
        assert_eq!(c.radius, 2, "{c:?}");
        assert!((rho(&c, (0, 1)) - 4.0 / 6.0).abs() < 0.05, "{c:?}");
        assert!((rho(&c, (0, 2)) - 1.0 / 6.0).abs() < 0.05, "{c:?}");
        assert!(rho(&c, (1, 0)).abs() < 0.08, "{c:?}");
        let var = 25.0 * 6.0 / 16.0;
        assert!((c.variance - var).abs() < 0.1 * var, "{c:?}");
        // A 2x2 box (binning-like): ρ = 1/2 at (0,1) and (1,0), 1/4 at (1,±1), nothing beyond.
        let k = [[0.0, 0.0, 0.0], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]];
        let c = estimate_correlation(&scene(3, Some(k)).view()).unwrap();
        assert_eq!(c.radius, 1, "{c:?}");
        assert!((rho(&c, (0, 1)) - 0.5).abs() < 0.05, "{c:?}");
        assert!((rho(&c, (1, 0)) - 0.5).abs() < 0.05, "{c:?}");
        assert!((rho(&c, (1, 1)) - 0.25).abs() < 0.05, "{c:?}");
        assert!((rho(&c, (1, -1)) - 0.25).abs() < 0.05, "{c:?}");
        assert!(rho(&c, (0, 2)).abs() < 0.05, "{c:?}");
        assert!(
            c.describe().contains("correlated up to 1 pixel"),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn the_noise_estimate_is_what_each_pixel_carries_when_neighbours_correlate() {
        // The finest wavelet details see a quarter of the x-blurred noise's variance and
        // under a third of the boxed one's: uncorrected, the estimate is about half.
        let x_blur = [[0.0, 0.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 0.0]];
        let boxed = [[0.0, 0.0, 0.0], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]];
        // Separable, 0.3 with edge neighbours: the diagonal's 0.09 is under the bar of a
        // correlation that counts, and leaving it out would put the estimate 16% high.
        let third = 1.0 / 3.0;
        let separable = [
            [0.0, 0.0, 0.0],
            [0.0, 1.0, third],
            [0.0, third, third * third],
        ];
        for (seed, k, sd) in [
            (1, None, 5.0),
            (2, Some(x_blur), (25.0f64 * 6.0 / 16.0).sqrt()),
            (3, Some(boxed), 2.5),
            (4, Some(separable), 5.0 * (1.0 + third * third)),
        ] {
            let s = crate::noise::estimate_sigma(&scene(seed, k).view()).unwrap();
            assert!(
                (s - sd).abs() < 0.1 * sd,
                "seed {seed}: estimated {s}, true {sd}"
            );
        }
    }

    #[test]
    fn a_large_plane_is_measured_on_its_centre() {
        // The residual's buffers take about 40 bytes a pixel: a whole 64-megapixel
        // montage would take 2.5 GB.
        let mut rng = Rng::new(5);
        let big = Volume::from_shape_fn((1, 1100, 2000), |_| (100.0 + 5.0 * rng.normal()) as f32);
        let c = estimate_correlation(&big.view()).unwrap();
        assert!(c.pixels <= MAX_PIXELS, "{} pixels measured", c.pixels);
        assert!((c.sigma - 5.0).abs() < 0.25, "{c:?}");
    }

    #[test]
    fn images_without_room_or_noise_are_refused_with_the_reason() {
        let tiny = Volume::from_elem((1, 8, 8), 1.0);
        let e = estimate_correlation(&tiny.view()).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
        let flat = Volume::from_elem((1, 64, 64), 1.0);
        let e = estimate_correlation(&flat.view()).unwrap_err();
        assert!(e.to_string().contains("too few smooth pixels"), "{e}");
    }
}
