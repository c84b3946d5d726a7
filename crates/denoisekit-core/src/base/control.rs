//! Cooperative cancellation and progress reporting.
//!
//! Kernels call [`Control::checkpoint`] between units of work (an iteration, a plane, a
//! band of rows). A preview that the user has already moved past is thereby stopped
//! within one unit of work, the equivalent of ImageJ's `Thread.isInterrupted()` checks.

use crate::error::{DenoiseError, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type ProgressFn = dyn Fn(f64) + Send + Sync;

/// A cancel flag plus an optional progress callback, shared by reference with a job.
#[derive(Clone, Default)]
pub struct Control {
    cancel: Arc<AtomicBool>,
    progress: Option<Arc<ProgressFn>>,
    done: Arc<AtomicU64>,
    memory_limit: Option<u64>,
    note: Arc<Mutex<String>>,
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
            progress: Some(Arc::new(f)),
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
            note: Arc::default(),
        }
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
        if let Some(f) = &self.progress {
            f((done as f64 / total.max(1) as f64).min(1.0));
        }
        self.checkpoint()
    }

    /// Starts a new job with this control: progress counts from zero again.
    pub fn reset_progress(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.set_note("");
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
}
