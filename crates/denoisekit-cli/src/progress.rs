//! A progress bar on the terminal for long jobs (a 4 GiB stack runs for minutes), fed by
//! the job's [`Control`]. Only when stderr is a terminal: scripts, pipes and CI logs get
//! the one result line and nothing else.

use denoisekit_core::Control;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// The bar of one job; cleared when dropped.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

/// Bar positions: fine enough for a smooth bar, coarse enough to draw cheaply.
const STEPS: u64 = 1000;

impl Progress {
    /// A control for a job described by `what`, reporting to a bar on a terminal.
    pub(crate) fn start(what: &str) -> (Control, Progress) {
        Self::start_on(what, std::io::stderr().is_terminal())
    }

    fn start_on(what: &str, terminal: bool) -> (Control, Progress) {
        if !terminal {
            return (Control::new(), Progress { bar: None });
        }
        let bar = ProgressBar::new(STEPS);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {percent:>3}%  {elapsed_precise}, about {eta} left",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        let feed = bar.clone();
        let ctl = Control::with_progress(move |f| {
            // Jobs made of several passes report each from 0: the bar never goes back.
            let pos = (f.clamp(0.0, 1.0) * STEPS as f64).round() as u64;
            if pos > feed.position() {
                feed.set_position(pos);
            }
        });
        (ctl, Progress { bar: Some(bar) })
    }

    /// Whether a bar is shown.
    #[cfg(test)]
    fn shown(&self) -> bool {
        self.bar.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bar_off_a_terminal_and_a_moving_one_on_it() {
        let (_, quiet) = Progress::start_on("job", false);
        assert!(!quiet.shown());
        let (ctl, shown) = Progress::start_on("job", true);
        assert!(shown.shown());
        ctl.advance(1, 4).unwrap();
        ctl.advance(1, 4).unwrap();
        let bar = shown.bar.as_ref().unwrap();
        assert_eq!(bar.position(), STEPS / 2);
    }
}
