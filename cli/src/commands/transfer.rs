//! How pulls and pushes show their progress: one bar per blob (bytes, rate)
//! on a terminal, docker's plain status lines otherwise.

use berth_engine::{ProgressEvent, ProgressSink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct TransferView {
    /// "Pulling fs layer" or "Preparing": what a started blob says.
    starting: &'static str,
    quiet: bool,
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl TransferView {
    pub fn new(starting: &'static str, quiet: bool) -> TransferView {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        TransferView {
            starting,
            quiet,
            bars,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let _ = m.println(s);
            }
            None => println!("{s}"),
        }
    }
}

impl TransferView {
    fn start(&self, id: &str, size: u64) {
        match &self.bars {
            Some(m) => {
                let bar = m.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(id.to_string());
                if let Ok(mut a) = self.active.lock() {
                    a.insert(id.to_string(), bar);
                }
            }
            None => self.line(&format!("{id}: {}", self.starting)),
        }
    }

    fn advance(&self, id: &str, n: u64) {
        if let Some(bar) = self.active.lock().ok().and_then(|a| a.get(id).cloned()) {
            bar.inc(n);
        }
    }

    fn finish(&self, id: &str, status: &str) {
        if let Some(bar) = self.active.lock().ok().and_then(|mut a| a.remove(id)) {
            bar.finish_and_clear();
        }
        self.line(&format!("{id}: {status}"));
    }
}

impl ProgressSink for TransferView {
    fn event(&self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::Started { id, size } => self.start(id, size),
            ProgressEvent::Advanced { id, bytes } => self.advance(id, bytes),
            ProgressEvent::Finished { id, status } => self.finish(id, status),
            ProgressEvent::Note(line) => self.line(line),
            // A build's steps: shown by the build's view.
            _ => {}
        }
    }
}
