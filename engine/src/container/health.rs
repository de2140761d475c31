//! Healthchecks, as docker's daemon runs them: the image's HEALTHCHECK
//! merged with the create request's, run inside the container (an exec)
//! by its supervisor every interval. The state is `health.json` in the
//! container's folder, written by the supervisor alone.

use crate::model::{HealthConfig, HealthLog};
use crate::units::rfc3339_nano;
use crate::Engine;
use berth_runner::container::Record;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATE: &str = "health.json";
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// docker keeps this much of a check's output, and this many results.
const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

/// The check a container runs: the request's fields, each zero one taken
/// from the image's (docker's merge). None when there is none, or `NONE`.
pub(crate) fn merged(
    image: Option<&HealthConfig>,
    request: Option<&HealthConfig>,
) -> Option<HealthConfig> {
    let mut h = image.cloned().unwrap_or_default();
    if let Some(r) = request {
        if r.test.as_ref().is_some_and(|t| !t.is_empty()) {
            h.test = r.test.clone();
        }
        for (mine, theirs) in [
            (&mut h.interval, r.interval),
            (&mut h.timeout, r.timeout),
            (&mut h.start_period, r.start_period),
            (&mut h.retries, r.retries),
        ] {
            if theirs != 0 {
                *mine = theirs;
            }
        }
    }
    match h.test.as_deref() {
        None | Some([]) => None,
        Some([first, ..]) if first == "NONE" => None,
        Some(_) => Some(h),
    }
}

/// The command of a check: `CMD args...`, `CMD-SHELL text`.
fn command(test: &[String]) -> Option<Vec<String>> {
    match test {
        [kind, rest @ ..] if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        [kind, cmd] if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
        }
        _ => None,
    }
}

fn duration(ns: i64, default: i64) -> Duration {
    Duration::from_nanos(if ns > 0 { ns } else { default } as u64)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Stops the checker when dropped (the container's run is over).
pub(crate) struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Engine {
    /// The health of a container that has a check.
    pub(crate) fn health(&self, rec: &Record) -> Option<crate::model::Health> {
        let data = std::fs::read(self.containers().dir(&rec.id).join(STATE)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    fn save_health(&self, id: &str, h: &crate::model::Health) {
        let dir = self.containers().dir(id);
        let tmp = dir.join(format!("{STATE}.tmp"));
        if let Ok(data) = serde_json::to_vec_pretty(h) {
            if std::fs::write(&tmp, data).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join(STATE));
            }
        }
    }

    /// Starts checking a container that just started; the checks stop with
    /// the returned checker.
    pub(crate) fn start_health_checks(&self, id: &str, check: HealthConfig) -> Option<Checker> {
        let cmd = command(check.test.as_deref().unwrap_or(&[]))?;
        let engine = self.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let id = id.to_string();
        let mut health = crate::model::Health {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        };
        engine.save_health(&id, &health);
        let thread = std::thread::spawn(move || {
            let interval = duration(check.interval, DEFAULT_INTERVAL);
            let timeout = duration(check.timeout, DEFAULT_TIMEOUT);
            let retries = if check.retries > 0 {
                check.retries
            } else {
                DEFAULT_RETRIES
            };
            let started = Instant::now();
            let start_period = duration(check.start_period, 0);
            let mut next = Instant::now() + interval;
            while !stopped.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                next = Instant::now() + interval;
                let Ok(rec) = engine.containers().load(&id) else {
                    return;
                };
                if !rec.running() {
                    return;
                }
                // A frozen container takes no exec: no probe while paused.
                if engine.paused(&id) {
                    continue;
                }
                let begin = now_nanos();
                let (code, mut output) = match engine.exec_captured(&rec, &cmd, timeout) {
                    Ok(Some(r)) => r,
                    Ok(None) => (-1, format!("Health check exceeded timeout ({timeout:?})")),
                    Err(e) => (-1, e.to_string()),
                };
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                if output.len() > MAX_OUTPUT {
                    let mut cut = MAX_OUTPUT;
                    while !output.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    output.truncate(cut);
                }
                health.log.push(HealthLog {
                    start: rfc3339_nano(begin),
                    end: rfc3339_nano(now_nanos()),
                    exit_code: code,
                    output,
                });
                if health.log.len() > MAX_LOG {
                    health.log.remove(0);
                }
                let before = health.status.clone();
                if code == 0 {
                    health.failing_streak = 0;
                    health.status = "healthy".into();
                } else if started.elapsed() >= start_period || health.status != "starting" {
                    // Failures in the start period do not count.
                    health.failing_streak += 1;
                    if health.failing_streak >= retries {
                        health.status = "unhealthy".into();
                    }
                }
                engine.save_health(&id, &health);
                if health.status != before {
                    engine.emit_container(&rec, &format!("health_status: {}", health.status), &[]);
                }
            }
        });
        Some(Checker {
            stop,
            thread: Some(thread),
        })
    }
}
