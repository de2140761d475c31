//! A container's log in docker's json-file format: one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanoseconds"}`, so
//! `berth logs` can give each stream back on its own and with times.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Now, as docker writes log times.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Appends entries to a log; shared by the threads that read each stream.
#[derive(Clone)]
pub struct LogWriter {
    file: Arc<Mutex<File>>,
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn entry(&self, stream: &str, text: &[u8]) {
        let e = Entry {
            log: String::from_utf8_lossy(text).into_owned(),
            stream: stream.into(),
            time: now(),
        };
        if let (Ok(mut line), Ok(mut f)) = (serde_json::to_vec(&e), self.file.lock()) {
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    }

    /// Copies `from` to the log as `stream` until it ends, a line an entry
    /// (a line longer than 16 KiB in pieces, as docker splits them), and to
    /// `echo` as it arrives.
    pub fn copy(
        &self,
        stream: &str,
        mut from: impl io::Read,
        mut echo: Option<Box<dyn Write + Send>>,
    ) {
        let mut buf = [0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A terminal's master reports EIO once the container closed it.
                Err(_) => break,
            };
            if let Some(w) = echo.as_mut() {
                let _ = w.write_all(&buf[..n]);
                let _ = w.flush();
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                self.entry(stream, &line);
            }
            if pending.len() >= 16 * 1024 {
                self.entry(stream, &pending);
                pending.clear();
            }
        }
        if !pending.is_empty() {
            self.entry(stream, &pending);
        }
    }
}

/// What `berth logs` prints.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Only entries written at or after this time (ns since the epoch).
    pub since: Option<i64>,
    /// Only entries written before this time (ns since the epoch).
    pub until: Option<i64>,
}

fn nanos(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as i64)
}

/// Writes the log's entries to `out` (stdout) and `err` (stderr); with
/// `follow`, goes on until `running` says the container stopped and the
/// log has no more.
pub fn read(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &dyn Fn() -> bool,
) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !opts.follow => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let print = |line: &str, out: &mut dyn Write, err: &mut dyn Write| -> io::Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        if opts.since.is_some() || opts.until.is_some() {
            let t = nanos(&e.time).unwrap_or(0);
            if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t >= u) {
                return Ok(());
            }
        }
        let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
        if opts.timestamps {
            write!(w, "{} ", e.time)?;
        }
        w.write_all(e.log.as_bytes())?;
        w.flush()
    };
    if let Some(n) = opts.tail {
        let lines: Vec<String> = (&mut reader).lines().collect::<io::Result<_>>()?;
        for l in &lines[lines.len().saturating_sub(n)..] {
            print(l, out, err)?;
        }
    }
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n > 0 && line.ends_with('\n') {
            print(line.trim_end_matches('\n'), out, err)?;
            continue;
        }
        if n > 0 {
            // Half a line: the writer is in the middle of it.
            reader.seek_relative(-(n as i64))?;
        }
        if !opts.follow {
            return Ok(());
        }
        if !running() {
            // One last look: the supervisor may have written its last lines
            // after our read and before it said the container stopped.
            let mut rest = String::new();
            io::Read::read_to_string(&mut reader, &mut rest)?;
            for l in rest.lines() {
                print(l, out, err)?;
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
