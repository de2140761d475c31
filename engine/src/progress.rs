//! What a long image operation (build, pull, push) reports while it runs: a
//! stream of typed events a front end renders — the CLI as BuildKit's lines,
//! bars or docker's status lines, an API server as docker's JSON messages.

use berth_store::Digest;
use std::sync::Arc;

/// One step of a transfer. `id` names the blob as docker's messages do:
/// the first 12 hex digits of its digest.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent<'a> {
    /// A blob of `size` bytes starts moving.
    Started { id: &'a str, size: u64 },
    /// `bytes` more of it moved.
    Advanced { id: &'a str, bytes: u64 },
    /// It is done; `status` says how, in docker's words ("Pull complete",
    /// "Already exists", "Pushed", "Layer already exists", "Mounted from x").
    Finished { id: &'a str, status: &'a str },
    /// A line of its own ("Pulling from library/busybox", "Digest: ...").
    Note(&'a str),
    /// A build step (BuildKit's `#N`) started.
    StepStarted { n: usize, title: &'a str },
    /// A line of a build step's output, `elapsed` seconds into it.
    StepOutput {
        n: usize,
        elapsed: f64,
        text: &'a str,
    },
    /// A line about a build step that is not its output.
    StepNote { n: usize, text: &'a str },
    StepCached {
        n: usize,
        title: &'a str,
        elapsed: f64,
    },
    StepDone {
        n: usize,
        title: &'a str,
        elapsed: f64,
    },
    StepFailed {
        n: usize,
        title: &'a str,
        message: &'a str,
        elapsed: f64,
    },
    /// A build warning.
    Warning(&'a str),
}

/// Where a transfer's events go.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: ProgressEvent<'_>);
}

/// Reports nothing.
pub struct Silent;

impl ProgressSink for Silent {
    fn event(&self, _: ProgressEvent<'_>) {}
}

/// The builder's events, as the engine's.
pub(crate) struct BuildProgress(pub Arc<dyn ProgressSink>);

impl berth_builder::BuildObserver for BuildProgress {
    fn event(&self, e: &berth_builder::BuildEvent<'_>) {
        use berth_builder::BuildEvent as B;
        let event = match *e {
            B::Started { n, title } => ProgressEvent::StepStarted { n, title },
            B::Output { n, elapsed, text } => ProgressEvent::StepOutput { n, elapsed, text },
            B::Note { n, text } => ProgressEvent::StepNote { n, text },
            B::Cached { n, title, elapsed } => ProgressEvent::StepCached { n, title, elapsed },
            B::Done { n, title, elapsed } => ProgressEvent::StepDone { n, title, elapsed },
            B::Failed {
                n,
                title,
                message,
                elapsed,
            } => ProgressEvent::StepFailed {
                n,
                title,
                message,
                elapsed,
            },
            B::Warning(w) => ProgressEvent::Warning(w),
        };
        self.0.event(event);
    }
}

/// The registry client's progress calls, as events.
pub(crate) struct RegistryProgress(pub Arc<dyn ProgressSink>);

impl berth_registry::Progress for RegistryProgress {
    fn start(&self, digest: &Digest, size: u64) {
        let id = short(digest);
        self.0.event(ProgressEvent::Started { id: &id, size });
    }
    fn advance(&self, digest: &Digest, n: u64) {
        let id = short(digest);
        self.0.event(ProgressEvent::Advanced { id: &id, bytes: n });
    }
    fn finish(&self, digest: &Digest, status: &str) {
        let id = short(digest);
        self.0.event(ProgressEvent::Finished { id: &id, status });
    }
    fn note(&self, line: &str) {
        self.0.event(ProgressEvent::Note(line));
    }
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// A build step's event as BuildKit's plain output prints it (`#3 DONE
/// 0.1s`); none for a transfer's events.
pub fn plain_step_line(event: &ProgressEvent<'_>) -> Option<String> {
    Some(match event {
        ProgressEvent::StepStarted { n, title } => format!("#{n} {title}"),
        ProgressEvent::StepOutput { n, elapsed, text } => format!("#{n} {elapsed:.3} {text}"),
        ProgressEvent::StepNote { n, text } => format!("#{n} {text}"),
        ProgressEvent::StepCached { n, .. } => format!("#{n} CACHED"),
        ProgressEvent::StepDone { n, elapsed, .. } => format!("#{n} DONE {elapsed:.1}s"),
        ProgressEvent::StepFailed {
            n,
            message,
            elapsed,
            ..
        } => format!("#{n} ERROR: {message} ({elapsed:.1}s)"),
        ProgressEvent::Warning(w) => format!("WARNING: {w}"),
        _ => return None,
    })
}
