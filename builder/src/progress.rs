//! Build progress on stderr, in BuildKit's plain format: `#N title`, then
//! `#N 0.123 output line`, then `#N DONE 0.2s` or `#N CACHED` — what CI logs
//! need, every RUN's output streamed with its step prefix.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Every line, as BuildKit's `--progress=plain`.
    Plain,
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
    next: AtomicUsize,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        Progress::to(mode, Box::new(std::io::stderr()))
    }

    pub fn to(mode: ProgressMode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                mode,
                next: AtomicUsize::new(1),
                out: Mutex::new(out),
            }),
        }
    }

    fn print(&self, line: &str) {
        if self.inner.mode == ProgressMode::Quiet {
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
        self.print(&format!("#{n} {title}"));
        Step {
            progress: self.clone(),
            n,
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

    /// One line of the step's output.
    pub fn line(&self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.print(format!(
            "#{} {t:.3} {}",
            self.n,
            text.trim_end_matches('\r')
        ));
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
        self.print(format!("#{} CACHED", self.n));
    }

    pub fn done(&self) {
        let t = self.start.elapsed().as_secs_f64();
        self.print(format!("#{} DONE {t:.1}s", self.n));
    }

    pub fn error(&self, message: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.print(format!("#{} ERROR: {message} ({t:.1}s)", self.n));
    }

    /// The last output lines, for the error report.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().map(|t| t.clone()).unwrap_or_default()
    }
}
