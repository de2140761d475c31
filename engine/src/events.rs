//! The event log: every change of a container, image or volume, appended
//! as one JSON line (docker's `events.Message`) to `<root>/events.jsonl` by
//! whichever process made it (a command, a supervisor). `berth events`
//! and the API server's `/events` read and follow it.

use crate::error::{Error, Result};
use crate::model::{Actor, EventMessage};
use crate::Engine;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LOG: &str = "events.jsonl";

impl Engine {
    /// The exit code of container `id`'s last `die` event (a container
    /// removed since: `--rm`), from the log's last megabyte.
    pub(crate) fn last_exit_code(&self, id: &str) -> Option<i32> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.store().root().join(LOG)).ok()?;
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(1 << 20))).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        text.lines().rev().find_map(|l| {
            if !l.contains(id) || !l.contains("\"die\"") {
                return None;
            }
            let e: EventMessage = serde_json::from_str(l).ok()?;
            (e.actor.id == id && e.action == "die")
                .then(|| e.actor.attributes.get("exitCode")?.parse().ok())
                .flatten()
        })
    }
}
/// The log starts anew past this size; the one before is kept beside it.
const ROTATE_AT: u64 = 8 << 20;

/// Which events to print, as `docker events` takes them.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// Nanoseconds since the epoch; none for "from now on".
    pub since: Option<i64>,
    /// Stop at this time (nanoseconds); none to follow for ever.
    pub until: Option<i64>,
    /// docker's filters: type, event, container, image, volume, label.
    pub filters: BTreeMap<String, Vec<String>>,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Whether `e` passes every filter (one value of each filter must match).
pub fn matches(e: &EventMessage, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        let matches = |v: &String| match key.as_str() {
            "type" => e.kind == *v,
            "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
            "container" => {
                e.kind == "container"
                    && (e.actor.id.starts_with(v.as_str())
                        || e.actor.attributes.get("name") == Some(v))
            }
            "image" => {
                e.actor.attributes.get("image") == Some(v)
                    || (e.kind == "image"
                        && (e.actor.id == *v || e.actor.attributes.get("name") == Some(v)))
            }
            "volume" => e.kind == "volume" && e.actor.id == *v,
            "label" => match v.split_once('=') {
                Some((k, val)) => e.actor.attributes.get(k).map(String::as_str) == Some(val),
                None => e.actor.attributes.contains_key(v.as_str()),
            },
            _ => true,
        };
        // Every label given must be there (docker's rule).
        if key == "label" {
            values.iter().all(matches)
        } else {
            values.iter().any(matches)
        }
    })
}

fn path(root: &Path) -> PathBuf {
    root.join(LOG)
}

impl Engine {
    /// Appends one event. A full disk must not fail the operation that
    /// made the change: the event is then lost, and logged as lost.
    pub(crate) fn emit(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let t = now_nanos();
        let from = attributes.get("image").cloned().unwrap_or_default();
        let e = EventMessage {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: t / 1_000_000_000,
            time_nano: t,
            status: if kind == "container" || kind == "image" {
                action.into()
            } else {
                String::new()
            },
            id: if kind == "container" || kind == "image" {
                id.into()
            } else {
                String::new()
            },
            from: if kind == "container" {
                from
            } else {
                String::new()
            },
        };
        if let Err(err) = self.append_event(&e) {
            tracing::warn!("event {kind} {action} {id} not recorded: {err}");
        }
    }

    fn append_event(&self, e: &EventMessage) -> std::io::Result<()> {
        let p = path(self.root());
        if std::fs::metadata(&p).is_ok_and(|m| m.len() > ROTATE_AT) {
            let _ = std::fs::rename(&p, p.with_extension("1.jsonl"));
        }
        let mut line = serde_json::to_vec(e)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)?;
        // One write of the whole line: appends of concurrent writers do not
        // interleave within it.
        f.write_all(&line)
    }

    /// Events of a container, with its name, image and labels.
    pub(crate) fn emit_container(
        &self,
        rec: &berth_runner::container::Record,
        action: &str,
        extra: &[(&str, String)],
    ) {
        let mut attrs: BTreeMap<String, String> = rec.labels.clone();
        attrs.insert("image".into(), rec.image.clone());
        attrs.insert("name".into(), rec.name.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.emit("container", action, &rec.id, attrs);
    }

    /// Passes every event `opts` selects to `out`, oldest first, then
    /// follows the log until `opts.until` (for ever without it) or until
    /// `out` says stop (returns false).
    pub fn events(
        &self,
        opts: &EventsOptions,
        out: &mut dyn FnMut(&EventMessage) -> bool,
    ) -> Result<()> {
        self.events_while(opts, out, &|| true)
    }

    /// `events`, which also stops once `alive` says false (checked while
    /// no event comes: a client gone between events).
    pub fn events_while(
        &self,
        opts: &EventsOptions,
        out: &mut dyn FnMut(&EventMessage) -> bool,
        alive: &dyn Fn() -> bool,
    ) -> Result<()> {
        let p = path(self.root());
        let since = opts.since.unwrap_or_else(now_nanos);
        let io = |e: std::io::Error| Error::Failed(format!("cannot read the event log: {e}"));
        // The rotated log first, for a `since` that reaches back into it.
        if opts.since.is_some() {
            if let Ok(f) = std::fs::File::open(p.with_extension("1.jsonl")) {
                for line in BufReader::new(f).lines() {
                    if !self.pass(&line.map_err(io)?, since, opts, out) {
                        return Ok(());
                    }
                }
            }
        }
        // From now on only: what the log holds already is skipped unread.
        let mut offset = match opts.since {
            None => std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0),
            Some(_) => 0,
        };
        let mut partial = String::new();
        loop {
            if let Ok(mut f) = std::fs::File::open(&p) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len < offset {
                    // Rotated meanwhile: the new log from its start.
                    offset = 0;
                    partial.clear();
                }
                f.seek(SeekFrom::Start(offset)).map_err(io)?;
                let mut r = BufReader::new(f);
                loop {
                    let mut line = String::new();
                    let n = r.read_line(&mut line).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    if !line.ends_with('\n') {
                        // A writer is in the middle of it.
                        partial.push_str(&line);
                        continue;
                    }
                    let whole = std::mem::take(&mut partial) + line.trim_end();
                    if !self.pass(&whole, since, opts, out) {
                        return Ok(());
                    }
                }
            }
            if opts.until.is_some_and(|u| now_nanos() >= u) || !alive() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Hands one logged line to `out` if it is selected; false to stop.
    fn pass(
        &self,
        line: &str,
        since: i64,
        opts: &EventsOptions,
        out: &mut dyn FnMut(&EventMessage) -> bool,
    ) -> bool {
        let Ok(e) = serde_json::from_str::<EventMessage>(line) else {
            return true;
        };
        if e.time_nano < since {
            return true;
        }
        if let Some(u) = opts.until {
            if e.time_nano > u {
                return false;
            }
        }
        !matches(&e, &opts.filters) || out(&e)
    }
}
