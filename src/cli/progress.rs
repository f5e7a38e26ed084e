//! Progress on a terminal, silence when piped: long work (generating a large demo,
//! scanning a million lines) draws a bar on standard error only if it is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar that exists only on a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar labelled `label`; hidden unless standard error is a terminal.
    pub fn new(label: &'static str) -> Bar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(1);
            if let Ok(style) =
                ProgressStyle::with_template("{prefix} {msg:<10} [{bar:30}] {pos}/{len} {elapsed}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(label);
            b
        });
        Bar { bar }
    }

    /// Report progress of a phase.
    pub fn update(&mut self, phase: &str, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(phase.to_string());
            b.set_length(total.max(1));
            b.set_position(done);
        }
    }

    /// Remove the bar.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
