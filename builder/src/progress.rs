//! What a build reports while it runs: a stream of typed events (a step
//! started, a line of its output, cached, done, failed; warnings) that a
//! front end renders — the CLI as BuildKit's plain lines or a live view, an
//! API server as docker's JSON messages. The builder itself prints nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Output lines kept per step for the error report of a failing step.
const TAIL_LINES: usize = 20;

/// One thing that happened in a build. `n` numbers the step, as
/// BuildKit's `#N`; `elapsed` is the step's time so far, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent<'a> {
    Started {
        n: usize,
        title: &'a str,
    },
    Output {
        n: usize,
        elapsed: f64,
        text: &'a str,
    },
    /// A line about the step that is not its output (`writing layer ...`).
    Note {
        n: usize,
        text: &'a str,
    },
    Cached {
        n: usize,
        title: &'a str,
        elapsed: f64,
    },
    Done {
        n: usize,
        title: &'a str,
        elapsed: f64,
    },
    Failed {
        n: usize,
        title: &'a str,
        message: &'a str,
        elapsed: f64,
    },
    Warning(&'a str),
}

/// Where a build's events go.
pub trait BuildObserver: Send + Sync {
    fn event(&self, event: &BuildEvent<'_>);
}

/// Takes no notice.
pub struct Unobserved;

impl BuildObserver for Unobserved {
    fn event(&self, _: &BuildEvent<'_>) {}
}

#[derive(Clone)]
pub struct Progress {
    observer: Arc<dyn BuildObserver>,
    next: Arc<AtomicUsize>,
}

impl Progress {
    pub fn new(observer: Arc<dyn BuildObserver>) -> Progress {
        Progress {
            observer,
            next: Arc::new(AtomicUsize::new(1)),
        }
    }

    /// Starts a numbered step.
    pub fn step(&self, title: &str) -> Step {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.observer.event(&BuildEvent::Started { n, title });
        Step {
            progress: self.clone(),
            n,
            title: title.to_string(),
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
            silent: true,
            start: Instant::now(),
            tail: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A warning, as BuildKit prints them after the build.
    pub fn warn(&self, message: &str) {
        self.observer.event(&BuildEvent::Warning(message));
    }
}

/// One step in progress.
#[derive(Clone)]
pub struct Step {
    progress: Progress,
    n: usize,
    title: String,
    silent: bool,
    start: Instant,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Step {
    fn say(&self, event: BuildEvent<'_>) {
        if !self.silent {
            self.progress.observer.event(&event);
        }
    }

    fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// One line of the step's output.
    pub fn line(&self, text: &str) {
        self.say(BuildEvent::Output {
            n: self.n,
            elapsed: self.elapsed(),
            text: text.trim_end_matches('\r'),
        });
        if let Ok(mut tail) = self.tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.remove(0);
            }
            tail.push(text.to_string());
        }
    }

    /// A line about the step that is not its output (`#N writing layer ...`).
    pub fn note(&self, text: &str) {
        self.say(BuildEvent::Note { n: self.n, text });
    }

    pub fn cached(&self) {
        self.say(BuildEvent::Cached {
            n: self.n,
            title: &self.title,
            elapsed: self.elapsed(),
        });
    }

    pub fn done(&self) {
        self.say(BuildEvent::Done {
            n: self.n,
            title: &self.title,
            elapsed: self.elapsed(),
        });
    }

    pub fn error(&self, message: &str) {
        self.say(BuildEvent::Failed {
            n: self.n,
            title: &self.title,
            message,
            elapsed: self.elapsed(),
        });
    }

    /// The last output lines, for the error report.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().map(|t| t.clone()).unwrap_or_default()
    }
}
