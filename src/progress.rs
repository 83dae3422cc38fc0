//! Progress display: a spinner naming the current stage, on a terminal only. In CI and other
//! non-TTY contexts nothing is shown but the final summary.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// The stage display of one command.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when `enabled` (the caller checks that stderr is a terminal).
    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { bar }
    }

    /// Shows the current stage.
    pub fn stage(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
