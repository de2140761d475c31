//! How pulls and pushes show their progress: one bar per blob (bytes, rate)
//! on a terminal, docker's plain status lines otherwise.

use berth_registry::Progress;
use berth_store::Digest;
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

    fn short(d: &Digest) -> String {
        d.hex().chars().take(12).collect()
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

impl Progress for TransferView {
    fn start(&self, digest: &Digest, size: u64) {
        match &self.bars {
            Some(m) => {
                let bar = m.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(Self::short(digest));
                if let Ok(mut a) = self.active.lock() {
                    a.insert(digest.to_string(), bar);
                }
            }
            None => self.line(&format!("{}: {}", Self::short(digest), self.starting)),
        }
    }

    fn advance(&self, digest: &Digest, n: u64) {
        if let Some(bar) = self
            .active
            .lock()
            .ok()
            .and_then(|a| a.get(&digest.to_string()).cloned())
        {
            bar.inc(n);
        }
    }

    fn finish(&self, digest: &Digest, status: &str) {
        if let Some(bar) = self
            .active
            .lock()
            .ok()
            .and_then(|mut a| a.remove(&digest.to_string()))
        {
            bar.finish_and_clear();
        }
        self.line(&format!("{}: {status}", Self::short(digest)));
    }

    fn note(&self, line: &str) {
        self.line(line);
    }
}
