//! Running a job in windows of planes, for stacks whose working memory exceeds the budget.
//!
//! A method that reaches `h` planes in z (its descriptor's support) gives, on the planes
//! `a..b`, exactly the same result from the input planes `a-h..b+h` as from the whole
//! stack: the windows are processed one after the other, each with its halo, and only
//! their central planes are kept. Parameters are resolved once for the whole stack, so a
//! noise-derived default is the same in every window. `tests/properties.rs` checks the
//! seam-free claim for every method against the untiled result.

use crate::control::Control;
use crate::descriptor::{GLOBAL_SUPPORT, MethodDescriptor, Resolved};
use crate::error::Result;
use crate::job::with_noise_model;
use crate::memory;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use ndarray::{Array3, Axis, s};
use std::ops::Range;

/// How a stack is split: output planes per window and the z halo read around each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Output planes per window.
    pub window: usize,
    /// Planes read on each side of a window (clamped at the stack's ends, or wrapped
    /// around them where the method's border wraps: [`crate::BorderMode::wraps_in`]).
    pub halo: usize,
}

/// The runs of planes, in order, that make up planes `lo..hi` of a stack of `depth`
/// around which indices wrap (`lo` may be negative, `hi` beyond the stack): the halo of a
/// window under a periodic border.
fn wrapped_runs(lo: isize, hi: isize, depth: usize) -> Vec<Range<usize>> {
    let n = depth.max(1) as isize;
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut k = lo;
    while k < hi {
        let at = k.rem_euclid(n);
        let len = (n - at).min(hi - k);
        runs.push(at as usize..(at + len) as usize);
        k += len;
    }
    runs
}

/// One window of planes: what it reads and which of its planes it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The runs of the stack's planes read, in order: one, but for a wrapped halo.
    pub read: Vec<Range<usize>>,
    /// Where the kept planes start in what was read.
    pub skip: usize,
    /// The stack's planes this window computes.
    pub keep: Range<usize>,
}

/// The windows of `window` planes that cover a stack of `depth`, each reading `halo`
/// planes on either side: clamped at the stack's ends, or read around them when `wrap`
/// (a periodic border), so that the method's own wrap applies only within the halo,
/// never to a kept plane. One window when it holds the whole stack.
pub fn spans(depth: usize, window: usize, halo: usize, wrap: bool) -> impl Iterator<Item = Span> {
    let window = window.max(1);
    (0..depth).step_by(window).map(move |a| {
        let b = (a + window).min(depth);
        if wrap && window < depth {
            let (from, to) = (a as isize - halo as isize, (b + halo) as isize);
            Span {
                read: wrapped_runs(from, to, depth),
                skip: halo,
                keep: a..b,
            }
        } else {
            let lo = a.saturating_sub(halo);
            Span {
                read: std::iter::once(lo..(b + halo).min(depth)).collect(),
                skip: a - lo,
                keep: a..b,
            }
        }
    })
}

/// The largest window whose input (with halo), output and working memory fit in
/// `budget` bytes; `extra_per_plane` is what the caller keeps per window plane besides
/// (its own read buffer, say). `None` when the method couples the whole stack or not
/// even one plane fits.
///
/// # Errors
/// The parameter errors of the method's support function.
pub fn plan(
    m: &MethodDescriptor,
    shape: Shape,
    r: &Resolved,
    budget: u64,
    extra_per_plane: u64,
) -> Result<Option<Plan>> {
    let halo = (m.support)(r)?[0];
    if halo >= GLOBAL_SUPPORT {
        return Ok(None);
    }
    let fits = |window: usize| -> Result<bool> {
        Ok(window_need(m, shape, r, window, halo, extra_per_plane)? <= budget)
    };
    if !fits(1)? {
        return Ok(None);
    }
    // The need grows with the window: bisect for the largest that fits.
    let (mut lo, mut hi) = (1, shape.depth.max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(Plan { window: lo, halo }))
}

/// What a window of `window` planes (with its `halo`) takes: its input, its output and
/// the method's working memory, and `extra_per_plane` per plane read.
fn window_need(
    m: &MethodDescriptor,
    shape: Shape,
    r: &Resolved,
    window: usize,
    halo: usize,
    extra_per_plane: u64,
) -> Result<u64> {
    let plane_bytes = (shape.height as u64)
        .saturating_mul(shape.width as u64)
        .saturating_mul(4);
    // A wrapped halo may repeat planes when the stack is shallow.
    let planes = if crate::BorderMode::wraps_in(r) && window < shape.depth {
        window + 2 * halo
    } else {
        (window + 2 * halo).min(shape.depth)
    };
    let sub = Shape {
        depth: planes,
        ..shape
    };
    Ok(memory::need(m, sub, r)?
        .saturating_add(plane_bytes.saturating_mul(planes as u64))
        .saturating_add(extra_per_plane.saturating_mul(planes as u64)))
}

/// The least budget [`plan`] finds a window for (one plane and its halo); `None` when
/// the method couples the whole stack.
///
/// # Errors
/// The parameter errors of the method's support function.
pub fn one_plane_need(
    m: &MethodDescriptor,
    shape: Shape,
    r: &Resolved,
    extra_per_plane: u64,
) -> Result<Option<u64>> {
    let halo = (m.support)(r)?[0];
    if halo >= GLOBAL_SUPPORT {
        return Ok(None);
    }
    window_need(m, shape, r, 1, halo, extra_per_plane).map(Some)
}

/// Runs `m` window by window: `read(range)` returns the input planes of `range`, the
/// result's planes are handed to `write(first_plane, planes)` in order. The caller has
/// judged the noise model ([`crate::judge_noise_model`]); the windows do not. Progress is
/// reported per window; cancellation is honoured inside each.
///
/// `read` and `write` report in their own error type (a file's I/O error stays one), into
/// which the method's errors convert.
///
/// # Errors
/// Whatever `read`, `write` or the method return, and [`crate::DenoiseError::InvalidInput`]
/// for non-finite pixels in a window.
pub fn run_windows<E: From<crate::DenoiseError>>(
    m: &MethodDescriptor,
    r: &Resolved,
    depth: usize,
    plan: Plan,
    mut read: impl FnMut(Range<usize>) -> std::result::Result<Volume, E>,
    mut write: impl FnMut(usize, VolumeView<'_>) -> std::result::Result<(), E>,
    ctl: &Control,
) -> std::result::Result<(), E> {
    // The caller judged the noise model on the stack or its sample: a window mostly of
    // background would fail it alone.
    let inner = ctl.quiet().with_model_judged();
    let wraps = crate::BorderMode::wraps_in(r);
    for Span {
        read: runs,
        skip,
        keep,
    } in spans(depth, plan.window, plan.halo, wraps)
    {
        let first = runs[0].start;
        let input = if let [one] = runs.as_slice() {
            read(one.clone())?
        } else {
            let parts = runs
                .into_iter()
                .map(&mut read)
                .collect::<std::result::Result<Vec<_>, E>>()?;
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            ndarray::concatenate(Axis(0), &views).map_err(|e| {
                crate::DenoiseError::InvalidInput {
                    reason: format!("planes read for a window do not join: {e}"),
                }
            })?
        };
        let window = Window {
            first,
            planes: input.dim().0,
            depth,
        };
        // Streamed planes were never seen whole: check each window as `run` checks a stack.
        check_input(&input.view()).map_err(|e| window.said_of_stack(e))?;
        let out: Volume = with_noise_model(input.view(), r, &inner, |v, ctl| (m.run)(v, r, ctl))
            .map_err(|e| window.said_of_stack(e))?;
        write(keep.start, out.slice(s![skip..skip + keep.len(), .., ..]))?;
        ctl.advance(keep.len() as u64, depth as u64)?;
    }
    Ok(())
}

/// The planes a window read: `planes` from `first` on, around the end of a stack of
/// `depth` where they wrap.
struct Window {
    first: usize,
    planes: usize,
    depth: usize,
}

impl Window {
    /// An error about this window's planes, said of the stack: its pixel positions count
    /// z from the window's first plane, and its measurements are the window's.
    fn said_of_stack(&self, e: crate::DenoiseError) -> crate::DenoiseError {
        let (lo, last) = (
            self.first,
            (self.first + self.planes - 1) % self.depth.max(1),
        );
        let planes = if last < lo {
            format!("planes {lo} to {last} of the stack, read around its end")
        } else {
            format!("planes {lo} to {last} of the stack")
        };
        match e {
            crate::DenoiseError::InvalidInput { reason } => crate::DenoiseError::InvalidInput {
                reason: format!("{reason} (in {planes}; z counted from plane {lo})"),
            },
            crate::DenoiseError::InvalidParamValue {
                name,
                value,
                expected,
            } => crate::DenoiseError::InvalidParamValue {
                name,
                value,
                expected: format!("{expected} (in {planes})"),
            },
            other => other,
        }
    }
}

/// [`run_windows`] over a stack in memory, into a new output volume.
///
/// # Errors
/// [`crate::DenoiseError::TooLarge`] when no window fits in `budget`, and whatever the
/// method returns.
pub fn run_in_memory(
    m: &MethodDescriptor,
    r: &Resolved,
    input: VolumeView<'_>,
    budget: u64,
    ctl: &Control,
) -> Result<Volume> {
    let shape = Shape::of(&input);
    let whole = memory::need(m, shape, r)?;
    // The output is allocated whole up front; windows share what is left.
    let out_bytes = (input.len() as u64).saturating_mul(4);
    let Some(plan) = plan(m, shape, r, budget.saturating_sub(out_bytes), 0)? else {
        let least = one_plane_need(m, shape, r, 0)?.map(|n| n.saturating_add(out_bytes));
        return Err(memory::too_large(m, shape, r, whole, budget, least));
    };
    log::info!(
        "{} on {shape}: {} needed, budget {}: running in windows of {} planes (halo {})",
        m.id,
        memory::fmt_bytes(whole),
        memory::fmt_bytes(budget),
        plan.window,
        plan.halo
    );
    // A part of an image judged already (a Dask chunk over its task's budget) is not
    // judged again; otherwise the whole stack is, as an untiled run would judge it.
    if !ctl.model_judged() {
        crate::judge_noise_model(input.view(), r)?;
    }
    let mut out = Array3::<f32>::zeros(input.raw_dim());
    run_windows(
        m,
        r,
        shape.depth,
        plan,
        |range| Ok(input.slice_axis(Axis(0), range.into()).to_owned()),
        |z, planes| {
            out.slice_mut(s![z..z + planes.len_of(Axis(0)), .., ..])
                .assign(&planes);
            Ok(())
        },
        ctl,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Span, spans, wrapped_runs};
    use ndarray::s;

    /// A Gaussian blur under a camera model whose offset is 50, resolved for `stack`.
    fn gaussian_under_an_offset_of_50(
        stack: &crate::Volume,
    ) -> (&'static crate::MethodDescriptor, crate::Resolved) {
        let values = crate::ParamValues::new()
            .set("noise_model", "poisson_gaussian")
            .set("gain", 1)
            .set("offset", 50)
            .set("read_noise", 1)
            .set("sigma", 1);
        crate::prepare("gaussian", &stack.view(), &values).unwrap()
    }

    #[test]
    fn a_window_of_background_is_not_judged_apart_from_the_stack() {
        use crate::Control;
        // Photon counts over an offset of 50, but the first two planes are the dark
        // frame below it: alone, a window of them fails the offset's judgement.
        let mut stack = crate::Volume::from_shape_fn((8, 24, 20), |(z, y, x)| {
            let ripple = ((y * 7 + x * 13 + z * 5) % 11) as f32;
            if z < 2 {
                10.0 + ripple * 0.2
            } else {
                150.0 + ripple
            }
        });
        stack[(0, 0, 0)] = 0.0;
        let (m, r) = gaussian_under_an_offset_of_50(&stack);
        let whole = crate::run_resolved(m, stack.view(), &r, &Control::new()).unwrap();
        let mut windowed = crate::Volume::zeros(stack.raw_dim());
        let plan = super::Plan { window: 2, halo: 0 };
        super::run_windows::<crate::DenoiseError>(
            m,
            &r,
            8,
            plan,
            |planes| Ok(stack.slice(s![planes, .., ..]).to_owned()),
            |z, planes| {
                let n = planes.dim().0;
                windowed.slice_mut(s![z..z + n, .., ..]).assign(&planes);
                Ok(())
            },
            &Control::new(),
        )
        .unwrap();
        assert_eq!(whole, windowed);
    }

    #[test]
    fn a_stack_in_windows_judges_its_model_as_a_whole_run_unless_judged_already() {
        use crate::Control;
        // Dark frames below the offset, but for a bright block in the middle: the model
        // fits the central sample and not the stack.
        let stack = crate::Volume::from_shape_fn((4, 600, 40), |(z, y, x)| {
            let ripple = ((y * 7 + x * 13 + z * 5) % 11) as f32;
            if (200..400).contains(&y) {
                150.0 + ripple
            } else {
                10.0 + ripple * 0.2
            }
        });
        let (m, r) = gaussian_under_an_offset_of_50(&stack);
        let whole = crate::run_resolved(m, stack.view(), &r, &Control::new()).unwrap_err();
        let windowed = super::run_in_memory(m, &r, stack.view(), u64::MAX, &Control::new());
        assert_eq!(windowed.unwrap_err(), whole);
        // A Dask chunk of an image whose sample was judged: not judged again.
        let judged = Control::new().with_model_judged();
        assert!(super::run_in_memory(m, &r, stack.view(), u64::MAX, &judged).is_ok());
    }

    #[test]
    fn wrapped_runs_read_around_the_ends() {
        assert_eq!(wrapped_runs(2, 5, 8), vec![2..5]);
        assert_eq!(wrapped_runs(-2, 3, 8), vec![6..8, 0..3]);
        assert_eq!(wrapped_runs(6, 10, 8), vec![6..8, 0..2]);
        // A halo deeper than the stack repeats it.
        assert_eq!(wrapped_runs(-4, 6, 3), vec![2..3, 0..3, 0..3, 0..3]);
    }

    #[test]
    // A window reads one run of planes: a one-range Vec is meant.
    #[allow(clippy::single_range_in_vec_init)]
    fn spans_keep_every_plane_once_and_read_their_halo() {
        let span = |read: Vec<std::ops::Range<usize>>, skip, keep| Span { read, skip, keep };
        let clamped: Vec<_> = spans(7, 3, 2, false).collect();
        assert_eq!(
            clamped,
            [
                span(vec![0..5], 0, 0..3),
                span(vec![1..7], 2, 3..6),
                span(vec![4..7], 2, 6..7),
            ]
        );
        let wrapped: Vec<_> = spans(7, 3, 2, true).collect();
        assert_eq!(wrapped[0], span(vec![5..7, 0..5], 2, 0..3));
        assert_eq!(wrapped[2], span(vec![4..7, 0..2], 2, 6..7));
        // A window that holds the stack reads it once, wrapped or not.
        for wrap in [false, true] {
            assert_eq!(
                spans(4, 9, 2, wrap).collect::<Vec<_>>(),
                [span(vec![0..4], 0, 0..4)]
            );
        }
    }
}
