//! docker's JSON message stream (`/images/create`, `/images/{name}/push`,
//! `/build`): the engine's progress events as one JSON object a line.

use berth_engine::{ProgressEvent, ProgressSink};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc::Sender;

/// Which way blobs move: the word for a blob under way.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Pull,
    Push,
}

pub struct JsonProgress {
    tx: Sender<Bytes>,
    direction: Direction,
    /// Bytes moved and the whole, per blob.
    sizes: Mutex<HashMap<String, (u64, u64)>>,
}

impl JsonProgress {
    pub fn new(tx: Sender<Bytes>, direction: Direction) -> JsonProgress {
        JsonProgress {
            tx,
            direction,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one message; a gone client is no error (the work finishes,
    /// and the store stays whole).
    pub fn send(&self, v: Value) {
        let mut line = v.to_string().into_bytes();
        line.push(b'\n');
        // Called from inside the registry's runtime too, where blocking
        // is refused: a full channel waits on a thread of its own.
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(b)) =
            self.tx.try_send(Bytes::from(line))
        {
            std::thread::scope(|s| {
                s.spawn(|| self.tx.blocking_send(b));
            });
        }
    }

    pub fn error(&self, message: &str) {
        self.send(json!({ "errorDetail": { "message": message }, "error": message }));
    }

    fn moving(&self) -> &'static str {
        match self.direction {
            Direction::Pull => "Downloading",
            Direction::Push => "Pushing",
        }
    }
}

impl ProgressSink for JsonProgress {
    fn event(&self, event: ProgressEvent<'_>) {
        let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            ProgressEvent::Started { id, size } => {
                sizes.insert(id.to_string(), (0, size));
                drop(sizes);
                let first = match self.direction {
                    Direction::Pull => "Pulling fs layer",
                    Direction::Push => "Preparing",
                };
                self.send(json!({ "status": first, "progressDetail": {}, "id": id }));
            }
            ProgressEvent::Advanced { id, bytes } => {
                let e = sizes.entry(id.to_string()).or_insert((0, 0));
                e.0 += bytes;
                let (current, total) = *e;
                drop(sizes);
                self.send(json!({
                    "status": self.moving(),
                    "progressDetail": { "current": current, "total": total },
                    "id": id,
                }));
            }
            ProgressEvent::Finished { id, status } => {
                drop(sizes);
                self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
            }
            ProgressEvent::Note(text) => {
                drop(sizes);
                self.send(json!({ "status": text }));
            }
            ProgressEvent::StepStarted { title, .. } => {
                drop(sizes);
                if let Some(step) = classic_step(title) {
                    self.send(json!({ "stream": format!("{step}\n") }));
                }
            }
            // BuildKit's notes (`writing image`, `naming to`) are not the
            // classic builder's.
            ProgressEvent::StepNote { .. } => {}
            ProgressEvent::StepOutput { text, .. } => {
                drop(sizes);
                let mut t = text.to_string();
                if !t.ends_with('\n') {
                    t.push('\n');
                }
                self.send(json!({ "stream": t }));
            }
            ProgressEvent::StepCached { .. } => {
                drop(sizes);
                self.send(json!({ "stream": " ---> Using cache\n" }));
            }
            ProgressEvent::Warning(text) => {
                drop(sizes);
                self.send(json!({ "stream": format!("[Warning] {text}\n") }));
            }
            ProgressEvent::StepDone { .. } | ProgressEvent::StepFailed { .. } => {}
        }
    }
}

/// A step's title as the classic builder prints it: BuildKit's
/// `[stage 2/3] RUN x` is `Step 2/3 : RUN x`; its own steps (loading the
/// definition, exporting) have none.
fn classic_step(title: &str) -> Option<String> {
    let (place, rest) = title.strip_prefix('[')?.split_once("] ")?;
    if place == "internal" {
        return None;
    }
    let n = place.rsplit(' ').next().unwrap_or(place);
    Some(format!("Step {n} : {rest}"))
}

/// The `X-Registry-Auth` header: base64 JSON in either alphabet, padded or
/// not; its `auth` field (base64 `user:password`) when it has no user.
pub fn registry_auth(headers: &hyper::HeaderMap) -> Option<berth_engine::registry::Credentials> {
    use base64::Engine as _;
    let raw = headers.get("X-Registry-Auth")?.to_str().ok()?.trim();
    if raw.is_empty() {
        return None;
    }
    let decode = |s: &str| -> Option<Vec<u8>> {
        let s = s.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
            .ok()
    };
    let v: Value = serde_json::from_slice(&decode(raw)?).ok()?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let (username, password) = match (field("username"), field("password")) {
        (Some(u), Some(p)) => (u, p),
        _ => {
            let pair = String::from_utf8(decode(&field("auth")?)?).ok()?;
            let (u, p) = pair.split_once(':')?;
            (u.to_string(), p.to_string())
        }
    };
    Some(berth_engine::registry::Credentials { username, password })
}

#[cfg(test)]
mod tests {
    use super::registry_auth;
    use base64::Engine as _;

    fn header(v: &str) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert("X-Registry-Auth", v.parse().unwrap());
        h
    }

    #[test]
    fn steps_as_the_classic_builder_numbers_them() {
        assert_eq!(
            super::classic_step("[stage-1 2/3] RUN echo hi").unwrap(),
            "Step 2/3 : RUN echo hi"
        );
        assert_eq!(
            super::classic_step("[1/2] FROM x").unwrap(),
            "Step 1/2 : FROM x"
        );
        assert_eq!(super::classic_step("[internal] load .dockerignore"), None);
        assert_eq!(super::classic_step("exporting to image"), None);
    }

    #[test]
    fn auth_in_both_alphabets_padded_or_not() {
        // `?>` makes a `/` in standard base64 and `_` in URL-safe.
        let json = r#"{"username":"u?>","password":"p?>?","serveraddress":"localhost:5000"}"#;
        for enc in [
            base64::engine::general_purpose::STANDARD.encode(json),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(json),
            base64::engine::general_purpose::URL_SAFE.encode(json),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
        ] {
            let c = registry_auth(&header(&enc)).expect(&enc);
            assert_eq!((c.username.as_str(), c.password.as_str()), ("u?>", "p?>?"));
        }
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let json = format!(r#"{{"auth":"{auth}"}}"#);
        let c = registry_auth(&header(
            &base64::engine::general_purpose::URL_SAFE.encode(json),
        ))
        .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "secret"));
        assert!(registry_auth(&header("e30")).is_none());
        assert!(registry_auth(&header("not base64!")).is_none());
    }
}
