//! Cooperative cancellation and progress reporting.
//!
//! Kernels call [`Control::checkpoint`] between units of work (an iteration, a plane, a
//! band of rows). A preview that the user has already moved past is thereby stopped
//! within one unit of work, the equivalent of ImageJ's `Thread.isInterrupted()` checks.

use crate::error::{DenoiseError, Result};
use crate::volume::Volume;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type ProgressFn = dyn Fn(f64) + Send + Sync;

/// Where progress goes, and how far it has been shown.
struct Progress {
    f: Box<ProgressFn>,
    /// The most units passed to `f` in this job. Parallel workers finish their units out
    /// of order (one adds its units, another adds more and reports first), so a report
    /// that is not beyond it is dropped: a bar never moves back.
    shown: Mutex<u64>,
    /// Whether 1 was passed to `f` in this job ([`Control::finish`]).
    full: AtomicBool,
}
type InterimMap = dyn Fn(Volume) -> Volume + Send + Sync;

/// A job's latest intermediate result, handed from the job to whoever watches it.
#[derive(Default)]
struct Interim {
    /// Set by the first [`Control::take_interim`]: only a watched job spends time on them.
    wanted: AtomicBool,
    latest: Mutex<Option<Volume>>,
}

/// A cancel flag plus an optional progress callback, shared by reference with a job.
#[derive(Clone, Default)]
pub struct Control {
    cancel: Arc<AtomicBool>,
    progress: Option<Arc<Progress>>,
    done: Arc<AtomicU64>,
    memory_limit: Option<u64>,
    note: Arc<Mutex<String>>,
    interim: Arc<Interim>,
    /// What turns a method's intermediate result into the job's (the noise model's
    /// inverse transform), as the job's final result is turned.
    interim_map: Option<Arc<InterimMap>>,
    /// Whether the noise model was judged already, on the whole image or its sample
    /// ([`Control::model_judged`]).
    model_judged: bool,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Control {
    /// A control that is never cancelled and reports nowhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// A control whose progress in [0, 1] is passed to `f` (from any worker thread).
    pub fn with_progress(f: impl Fn(f64) + Send + Sync + 'static) -> Self {
        Self {
            progress: Some(Arc::new(Progress {
                f: Box::new(f),
                shown: Mutex::new(0),
                full: AtomicBool::new(false),
            })),
            ..Self::default()
        }
    }

    /// A control for a sub-step run many times inside a job (a blur inside an iteration):
    /// it stops when this job is cancelled but reports no progress of its own, so the job
    /// keeps one progress scale.
    pub fn quiet(&self) -> Self {
        Self {
            cancel: self.cancel.clone(),
            progress: None,
            done: Arc::default(),
            memory_limit: self.memory_limit,
            model_judged: self.model_judged,
            note: Arc::default(),
            interim: Arc::default(),
            interim_map: None,
        }
    }

    /// This control for a part of an image (a window of planes, a Dask chunk) whose noise
    /// model was judged on the whole image or on its sample
    /// ([`crate::judge_noise_model`]): a part mostly of background would fail the judgement
    /// that the image passes, so the part's run does not judge it again.
    pub fn with_model_judged(mut self) -> Self {
        self.model_judged = true;
        self
    }

    /// Whether [`Control::with_model_judged`] was set.
    pub fn model_judged(&self) -> bool {
        self.model_judged
    }

    /// This job's working-memory budget in bytes, in place of the process-wide one
    /// ([`crate::budget::limit`]): several jobs sharing a machine (Dask workers on one
    /// node) each get their share instead of each claiming most of it.
    #[must_use]
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes.max(1));
        self
    }

    /// The budget this job must fit: its own, else [`crate::budget::limit`].
    ///
    /// # Errors
    /// The errors of [`crate::budget::limit`].
    pub fn memory_limit(&self) -> Result<u64> {
        match self.memory_limit {
            Some(b) => Ok(b),
            None => crate::budget::limit(),
        }
    }

    /// A handle that cancels this job from another thread.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Asks the job to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Returns `Err(Cancelled)` once the job was cancelled.
    ///
    /// # Errors
    /// [`DenoiseError::Cancelled`] after [`Control::cancel`].
    pub fn checkpoint(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(DenoiseError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Records that `units` more of `total` units of work are finished, then checks for
    /// cancellation. Safe to call from parallel workers.
    ///
    /// # Errors
    /// [`DenoiseError::Cancelled`] after [`Control::cancel`].
    pub fn advance(&self, units: u64, total: u64) -> Result<()> {
        let done = self.done.fetch_add(units, Ordering::Relaxed) + units;
        if let Some(p) = &self.progress {
            // A worker never waits on another's report (a front end's callback may cross
            // into a JVM): while one is reporting, the others' reports are dropped, as a
            // later report carries their units. The last one is always shown.
            let shown = match p.shown.try_lock() {
                Ok(shown) => Some(shown),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if done >= total => {
                    Some(p.shown.lock().unwrap_or_else(|e| e.into_inner()))
                }
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut shown) = shown.filter(|shown| done > **shown) {
                *shown = done;
                let f = (done as f64 / total.max(1) as f64).min(1.0);
                (p.f)(f);
                if f >= 1.0 {
                    p.full.store(true, Ordering::Relaxed);
                }
            }
        }
        self.checkpoint()
    }

    /// Says that the job is finished: its progress is shown full, also when it found
    /// nothing to do (a constant image) and so reported none.
    pub fn finish(&self) {
        if let Some(p) = &self.progress {
            let _shown = p.shown.lock().unwrap_or_else(|e| e.into_inner());
            if !p.full.swap(true, Ordering::Relaxed) {
                (p.f)(1.0);
            }
        }
    }

    /// Starts a new job with this control: progress counts from zero again.
    pub fn reset_progress(&self) {
        self.done.store(0, Ordering::Relaxed);
        if let Some(p) = &self.progress {
            *p.shown.lock().unwrap_or_else(|e| e.into_inner()) = 0;
            p.full.store(false, Ordering::Relaxed);
        }
        self.set_note("");
        *self
            .interim
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Says in a few words how the job is going ("training loss 0.43 (from 0.61)"), for a
    /// front end to show beside its progress; replaces the previous note.
    pub fn set_note(&self, note: impl Into<String>) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = note.into();
    }

    /// The latest [`Control::set_note`], or "" when there is none.
    pub fn note(&self) -> String {
        self.note.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether someone watches this job's intermediate results (a preview showing a
    /// network's current weights while it trains): a job publishes them only then, as
    /// they cost it time.
    pub fn wants_interim(&self) -> bool {
        self.interim.wanted.load(Ordering::Relaxed)
    }

    /// Offers an intermediate result of the whole input, replacing any not yet taken.
    pub fn publish_interim(&self, v: Volume) {
        if !self.wants_interim() {
            return;
        }
        let v = match &self.interim_map {
            Some(f) => f(v),
            None => v,
        };
        *self
            .interim
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    /// The latest intermediate result not yet taken, if any; from the first call on, the
    /// job publishes them ([`Control::wants_interim`]).
    pub fn take_interim(&self) -> Option<Volume> {
        self.interim.wanted.store(true, Ordering::Relaxed);
        self.interim
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// This control, with intermediate results passed through `f` before they are
    /// published (after any mapping it already has): the job runs a method on a
    /// transformed image and turns the method's results back with `f`.
    #[must_use]
    pub fn map_interim(&self, f: impl Fn(Volume) -> Volume + Send + Sync + 'static) -> Self {
        let outer = self.interim_map.clone();
        Self {
            interim_map: Some(Arc::new(move |v| match &outer {
                Some(g) => g(f(v)),
                None => f(v),
            })),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn progress_from_parallel_workers_never_moves_back() {
        use rayon::prelude::*;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let ctl = Control::with_progress(move |p| log.lock().unwrap().push(p));
        for _ in 0..2 {
            ctl.reset_progress();
            (0..20_000)
                .into_par_iter()
                .try_for_each(|_| ctl.advance(1, 20_000))
                .unwrap();
            let mut seen = seen.lock().unwrap();
            assert!(seen.windows(2).all(|p| p[0] < p[1]), "moved back");
            assert_eq!(seen.last(), Some(&1.0));
            // The second job starts from zero again.
            seen.clear();
        }
    }

    #[test]
    fn a_worker_does_not_wait_on_another_workers_report() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let (entered, in_callback) = channel();
        let (release, released) = channel::<()>();
        let released = Mutex::new(released);
        let waited_out = Arc::new(AtomicBool::new(false));
        let flag = waited_out.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let ctl = Control::with_progress(move |p| {
            log.lock().unwrap().push(p);
            if p < 0.15 {
                // The first report holds its callback until the main thread lets it go.
                entered.send(()).unwrap();
                let released = released.lock().unwrap();
                if released.recv_timeout(Duration::from_secs(20)).is_err() {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        });
        let worker = ctl.clone();
        let first = std::thread::spawn(move || worker.advance(1, 10));
        in_callback.recv().unwrap();
        // Reported while the first is in its callback: dropped, and not waited for.
        ctl.advance(1, 10).unwrap();
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert!(
            !waited_out.load(Ordering::Relaxed),
            "the second report waited"
        );
        ctl.advance(8, 10).unwrap();
        assert_eq!(*seen.lock().unwrap(), [0.1, 1.0]);
    }

    #[test]
    fn interims_are_published_only_when_watched_and_mapped_innermost_first() {
        let ctl = Control::new();
        let one = || Array3::<f32>::from_elem((1, 2, 2), 1.0);
        ctl.publish_interim(one());
        assert!(ctl.take_interim().is_none(), "unwatched: not kept");
        // The job maps its method's results back (x + 1), a sub-step inside it maps its
        // own (x * 10) first: the watcher gets (1 * 10) + 1.
        let job = ctl.map_interim(|v| v + 1.0);
        let inner = job.map_interim(|v| v * 10.0);
        inner.publish_interim(one());
        assert_eq!(ctl.take_interim(), Some(Array3::from_elem((1, 2, 2), 11.0)));
        assert!(ctl.take_interim().is_none(), "taken once");
        // A quiet sub-step publishes nothing to the job's watcher.
        ctl.quiet().publish_interim(one());
        assert!(ctl.take_interim().is_none());
        inner.publish_interim(one());
        ctl.reset_progress();
        assert!(
            ctl.take_interim().is_none(),
            "a new run starts without the last one's"
        );
    }
}
