//! Build progress on stderr. Plain mode is BuildKit's plain format: `#N
//! title`, then `#N 0.123 output line`, then `#N DONE 0.2s` or `#N CACHED` —
//! what CI logs need, every RUN's output streamed with its step prefix. Tty
//! mode is a live view (indicatif): one line per running step with its time
//! and the last line of its output; finished steps stay as one line each.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Every line, as BuildKit's `--progress=plain`.
    Plain,
    /// The live view on a terminal (`--progress=tty`, `auto` on a tty).
    Tty,
    /// Nothing but errors (`-q`, `--progress=quiet`).
    Quiet,
}

/// Output lines kept per step for the error report of a failing step.
const TAIL_LINES: usize = 20;

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    mode: ProgressMode,
    multi: Option<indicatif::MultiProgress>,
    next: AtomicUsize,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        Progress::to(mode, Box::new(std::io::stderr()))
    }

    pub fn to(mode: ProgressMode, out: Box<dyn Write + Send>) -> Progress {
        let multi = (mode == ProgressMode::Tty).then(|| {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
        });
        Progress {
            inner: Arc::new(Inner {
                mode,
                multi,
                next: AtomicUsize::new(1),
                out: Mutex::new(out),
            }),
        }
    }

    fn print(&self, line: &str) {
        if self.inner.mode == ProgressMode::Quiet {
            return;
        }
        if let Some(m) = &self.inner.multi {
            let _ = m.println(line);
            return;
        }
        if let Ok(mut out) = self.inner.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// Starts a numbered step: `#N title`.
    pub fn step(&self, title: &str) -> Step {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let bar = self.inner.multi.as_ref().map(|m| {
            let bar = m.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner:.blue} {prefix} {elapsed:>4} {wide_msg:.dim}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(title.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        if bar.is_none() {
            self.print(&format!("#{n} {title}"));
        }
        Step {
            progress: self.clone(),
            n,
            title: title.to_string(),
            bar,
            silent: false,
            start: Instant::now(),
            tail: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A step BuildKit does not show (ENV, CMD, LABEL, ...).
    pub fn quiet_step(&self) -> Step {
        Step {
            progress: self.clone(),
            n: 0,
            title: String::new(),
            bar: None,
            silent: true,
            start: Instant::now(),
            tail: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A warning line, as BuildKit prints them after the build.
    pub fn warn(&self, message: &str) {
        if self.inner.mode == ProgressMode::Quiet {
            return;
        }
        self.print(&format!("WARNING: {message}"));
    }
}

/// One step in progress.
#[derive(Clone)]
pub struct Step {
    progress: Progress,
    n: usize,
    title: String,
    /// The step's live line in tty mode.
    bar: Option<indicatif::ProgressBar>,
    silent: bool,
    start: Instant,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Step {
    fn print(&self, line: String) {
        if !self.silent {
            self.progress.print(&line);
        }
    }

    /// Ends the live line with `status`, leaving one line behind.
    fn finish(&self, status: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            let t = self.start.elapsed().as_secs_f64();
            self.progress
                .print(&format!("=> {} {status} {t:.1}s", self.title));
        }
    }

    /// One line of the step's output.
    pub fn line(&self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        if let Some(bar) = &self.bar {
            bar.set_message(text.trim_end_matches('\r').to_string());
        } else {
            self.print(format!(
                "#{} {t:.3} {}",
                self.n,
                text.trim_end_matches('\r')
            ));
        }
        if let Ok(mut tail) = self.tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.remove(0);
            }
            tail.push(text.to_string());
        }
    }

    /// A line about the step that is not its output (`#N writing layer ...`).
    pub fn note(&self, text: &str) {
        self.print(format!("#{} {text}", self.n));
    }

    pub fn cached(&self) {
        if self.bar.is_some() {
            return self.finish("CACHED");
        }
        self.print(format!("#{} CACHED", self.n));
    }

    pub fn done(&self) {
        if self.bar.is_some() {
            return self.finish("DONE");
        }
        let t = self.start.elapsed().as_secs_f64();
        self.print(format!("#{} DONE {t:.1}s", self.n));
    }

    pub fn error(&self, message: &str) {
        if self.bar.is_some() {
            return self.finish(&format!("ERROR: {message}"));
        }
        let t = self.start.elapsed().as_secs_f64();
        self.print(format!("#{} ERROR: {message} ({t:.1}s)", self.n));
    }

    /// The last output lines, for the error report.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().map(|t| t.clone()).unwrap_or_default()
    }
}
