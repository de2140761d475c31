//! `docker logs`: a container's json-file log.

use crate::error::{Error, Result};
use crate::Engine;
use std::io::Write;

/// Which entries `logs` prints, and how.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Only entries from this time on (ns since the epoch).
    pub since: Option<i64>,
    /// Only entries before this time (ns since the epoch).
    pub until: Option<i64>,
}

impl Engine {
    /// Writes the container's log to `out` and `err` (its stdout and stderr
    /// streams); with `follow`, until it stops.
    pub fn container_logs(
        &self,
        key: &str,
        opts: &LogsOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let cs = self.containers();
        let rec = cs.find(key)?;
        let read = berth_runner::log::ReadOptions {
            follow: opts.follow,
            timestamps: opts.timestamps,
            tail: opts.tail,
            since: opts.since,
            until: opts.until,
        };
        let id = rec.id.clone();
        let running = || cs.load(&id).map(|r| r.running()).unwrap_or(false);
        berth_runner::log::read(&cs.log_path(&rec.id), &read, out, err, &running)
            .map_err(|e| Error::Failed(format!("cannot read the container's log: {e}")))
    }
}
