//! How `berth build` shows its progress on stderr. Plain mode is BuildKit's
//! plain format: `#N title`, then `#N 0.123 output line`, then `#N DONE
//! 0.2s` or `#N CACHED` — what CI logs need, every RUN's output streamed
//! with its step prefix. Tty mode is a live view (indicatif): one line per
//! running step with its time and the last line of its output; finished
//! steps stay as one line each. The pushes after a build show as a pull or
//! push does.

use super::transfer::TransferView;
use berth_engine::{ProgressEvent, ProgressSink};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

pub struct BuildView {
    mode: Mode,
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<HashMap<usize, indicatif::ProgressBar>>,
    transfers: TransferView,
}

impl BuildView {
    pub fn new(mode: Mode) -> BuildView {
        let multi = (mode == Mode::Tty).then(|| {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
        });
        BuildView {
            mode,
            multi,
            bars: Mutex::new(HashMap::new()),
            transfers: TransferView::new("Preparing", mode == Mode::Quiet),
        }
    }

    fn print(&self, line: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        if let Some(m) = &self.multi {
            let _ = m.println(line);
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
    }

    fn bar(&self, n: usize) -> Option<indicatif::ProgressBar> {
        self.bars.lock().ok().and_then(|b| b.get(&n).cloned())
    }

    /// Ends a step's live line with `status`, leaving one line behind.
    fn finish(&self, n: usize, title: &str, status: &str, elapsed: f64) -> bool {
        let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&n)) else {
            return false;
        };
        bar.finish_and_clear();
        self.print(&format!("=> {title} {status} {elapsed:.1}s"));
        true
    }
}

impl ProgressSink for BuildView {
    fn event(&self, event: ProgressEvent<'_>) {
        if self.multi.is_none() {
            if let Some(line) = berth_engine::progress::plain_step_line(&event) {
                self.print(&line);
                return;
            }
        }
        match event {
            ProgressEvent::StepStarted { n, title } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner:.blue} {prefix} {elapsed:>4} {wide_msg:.dim}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(title.to_string());
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(n, bar);
                    }
                }
            }
            ProgressEvent::StepOutput { n, elapsed, text } => match self.bar(n) {
                Some(bar) => bar.set_message(text.to_string()),
                None => self.print(&format!("#{n} {elapsed:.3} {text}")),
            },
            ProgressEvent::StepNote { n, text } => self.print(&format!("#{n} {text}")),
            ProgressEvent::StepCached { n, title, elapsed } => {
                if !self.finish(n, title, "CACHED", elapsed) {
                    self.print(&format!("#{n} CACHED"));
                }
            }
            ProgressEvent::StepDone { n, title, elapsed } => {
                if !self.finish(n, title, "DONE", elapsed) {
                    self.print(&format!("#{n} DONE {elapsed:.1}s"));
                }
            }
            ProgressEvent::StepFailed {
                n,
                title,
                message,
                elapsed,
            } => {
                if !self.finish(n, title, &format!("ERROR: {message}"), elapsed) {
                    self.print(&format!("#{n} ERROR: {message} ({elapsed:.1}s)"));
                }
            }
            ProgressEvent::Warning(w) => self.print(&format!("WARNING: {w}")),
            transfer => self.transfers.event(transfer),
        }
    }
}
