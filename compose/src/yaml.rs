//! Compose files as YAML trees, read as compose-go reads them (go-yaml v3,
//! YAML 1.2): anchors and aliases (with a bound on what aliases expand
//! to), `<<` merge keys, duplicate keys refused, scalars typed by the
//! core schema (`8000:8000` is a string, only `true`/`false` are
//! booleans), and the positions of keys kept for error messages.
//!
//! compose's own tags survive as marks in the tree: a value tagged
//! `!reset` or `!override` becomes a one-key object under [`RESET`] or
//! [`OVERRIDE`], so that the marks travel with the values aliases copy.
//! [`crate::tags`] takes them out again.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// The key under which a `!reset` value sits until the tags are taken out.
pub const RESET: &str = "\u{0}!reset";
/// The key under which an `!override` value sits.
pub const OVERRIDE: &str = "\u{0}!override";

/// How many nodes aliases may expand to in one document: enough for any
/// real file, far below what an alias bomb asks for.
const ALIAS_BUDGET: usize = 1_000_000;

/// A position in a file: line (from 1) and column (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One YAML document: its tree and where each key was written.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub tree: Value,
    /// Keyed by the dotted path of a mapping key (`services.web.ports`).
    pub positions: HashMap<String, Position>,
}

impl Document {
    /// Where the value at `path` (or its nearest written parent) is.
    pub fn position(&self, path: &[String]) -> Option<Position> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.positions.get(&path[..n].join(".")).copied())
    }
}

/// Why a file is not YAML compose can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub position: Option<Position>,
}

fn error(message: impl Into<String>, position: Option<Position>) -> YamlError {
    YamlError {
        message: message.into(),
        position,
    }
}

fn position(span: &Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Every document of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    for next in parser.by_ref() {
        let (event, span) = next.map_err(|e| {
            error(
                format!("line {}: {}", e.marker().line(), e.info()),
                Some(Position {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                }),
            )
        })?;
        match event {
            Event::DocumentStart(_) => builder = Builder::default(),
            Event::DocumentEnd => {
                let b = std::mem::take(&mut builder);
                docs.push(b.finish());
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            other => builder.event(other, &span)?,
        }
    }
    Ok(docs)
}

/// A collection being built.
enum Open {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        tag: Option<String>,
        size: usize,
    },
    Map {
        entries: Map<String, Value>,
        /// Where each key was written, for the duplicate check.
        lines: HashMap<String, usize>,
        /// `<<` values, merged under the explicit keys at the end.
        merges: Vec<Value>,
        pending: Option<Key>,
        anchor: usize,
        tag: Option<String>,
        size: usize,
    },
}

struct Key {
    name: String,
    line: usize,
    merge: bool,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    /// The path of keys to the collection on top of the stack.
    path: Vec<String>,
    /// Anchors: the finished value and its node count.
    anchors: HashMap<usize, (Value, usize)>,
    /// Anchors still being built, with their paths (for the cycle error).
    open_anchors: HashMap<usize, String>,
    expanded: usize,
    root: Option<Value>,
    positions: HashMap<String, Position>,
}

fn tag_name(tag: &Option<std::borrow::Cow<'_, Tag>>) -> Option<String> {
    tag.as_ref().map(|t| format!("{}{}", t.handle, t.suffix))
}

/// The value of a scalar under the YAML 1.2 core schema, as go-yaml v3
/// types it.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let plain = style == ScalarStyle::Plain;
    match tag {
        Some("tag:yaml.org,2002:str") | Some("!!str") => return Ok(Value::String(text.into())),
        Some("tag:yaml.org,2002:int") | Some("!!int") => {
            return int(text)
                .map(Value::from)
                .ok_or_else(|| format!("cannot decode !!int `{text}`"))
        }
        Some("tag:yaml.org,2002:float") | Some("!!float") => {
            return float(text)
                .or_else(|| int(text).map(|i| i as f64))
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("cannot decode !!float `{text}`"))
        }
        Some("tag:yaml.org,2002:bool") | Some("!!bool") => {
            return match text {
                "true" | "True" | "TRUE" => Ok(Value::Bool(true)),
                "false" | "False" | "FALSE" => Ok(Value::Bool(false)),
                _ => Err(format!("cannot decode !!bool `{text}`")),
            }
        }
        Some("tag:yaml.org,2002:null") | Some("!!null") => return Ok(Value::Null),
        _ => {}
    }
    if !plain {
        return Ok(Value::String(text.into()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::from(f64::MAX),
        "-.inf" | "-.Inf" | "-.INF" => Value::from(f64::MIN),
        _ => {
            if let Some(i) = int(text) {
                Value::from(i)
            } else if let Some(f) = float(text).and_then(Number::from_f64) {
                Value::Number(f)
            } else {
                Value::String(text.into())
            }
        }
    })
}

fn int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        // YAML 1.1's octal (`mode: 0440`), which go-yaml v3 still reads.
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    let body = body.replace('_', "");
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(&body, radix).ok()?;
    Some(if neg { -v } else { v })
}

fn float(text: &str) -> Option<f64> {
    // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let whole = i - start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if whole == 0 && i == f {
            return None;
        }
    } else if whole == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    (i == b.len()).then(|| text.parse().ok()).flatten()
}

/// A value under compose's tag, if it has one.
fn tagged(value: Value, tag: Option<&str>) -> Value {
    match tag {
        Some("!reset") => Value::Object(Map::from_iter([(RESET.to_string(), value)])),
        Some("!override") => Value::Object(Map::from_iter([(OVERRIDE.to_string(), value)])),
        _ => value,
    }
}

impl Builder {
    fn finish(self) -> Document {
        Document {
            tree: self.root.unwrap_or(Value::Null),
            positions: self.positions,
        }
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), YamlError> {
        let at = position(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag_name(&tag);
                // A key: the first half of a mapping entry.
                if let Some(Open::Map {
                    pending: pending @ None,
                    ..
                }) = self.stack.last_mut()
                {
                    let merge = text == "<<" && style == ScalarStyle::Plain;
                    *pending = Some(Key {
                        name: text.to_string(),
                        line: at.line,
                        merge,
                    });
                    let mut p = self.path.clone();
                    p.push(text.to_string());
                    self.positions.entry(p.join(".")).or_insert(at);
                    return Ok(());
                }
                let value = scalar(&text, style, tag.as_deref())
                    .map_err(|m| error(format!("line {}: {m}", at.line), Some(at)))?;
                let value = tagged(value, tag.as_deref());
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.push(value, 1, at)
            }
            Event::Alias(id) => {
                if let Some(path) = self.open_anchors.get(&id) {
                    let here = self.path.join(".");
                    let into = here
                        .strip_prefix(path.as_str())
                        .and_then(|r| r.trim_start_matches('.').split('.').next())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_default();
                    return Err(error(
                        format!(
                            "cycle detected: node at path {here}.{into} references node at path {here}"
                        ),
                        Some(at),
                    ));
                }
                if self.is_key_position() {
                    return Err(error(
                        format!("line {}: an alias cannot be a mapping key here", at.line),
                        Some(at),
                    ));
                }
                let (value, n) =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        error(format!("line {}: unknown anchor", at.line), Some(at))
                    })?;
                self.expanded += n;
                if self.expanded > ALIAS_BUDGET {
                    return Err(error("document contains excessive aliasing", Some(at)));
                }
                self.push(value, n, at)
            }
            Event::SequenceStart(anchor, tag) => {
                self.key_required(at)?;
                if anchor > 0 {
                    self.open_anchors.insert(anchor, self.child_path());
                }
                self.enter();
                self.stack.push(Open::Seq {
                    items: Vec::new(),
                    anchor,
                    tag: tag_name(&tag),
                    size: 1,
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.key_required(at)?;
                if anchor > 0 {
                    self.open_anchors.insert(anchor, self.child_path());
                }
                self.enter();
                self.stack.push(Open::Map {
                    entries: Map::new(),
                    lines: HashMap::new(),
                    merges: Vec::new(),
                    pending: None,
                    anchor,
                    tag: tag_name(&tag),
                    size: 1,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.stack.pop() else {
                    return Ok(());
                };
                if !self.stack.is_empty() {
                    self.path.pop();
                }
                let (value, anchor, tag, n) = match open {
                    Open::Seq {
                        items,
                        anchor,
                        tag,
                        size,
                    } => (Value::Array(items), anchor, tag, size),
                    Open::Map {
                        entries,
                        merges,
                        anchor,
                        tag,
                        size,
                        ..
                    } => (merged(entries, merges), anchor, tag, size),
                };
                let value = tagged(value, tag.as_deref());
                if anchor > 0 {
                    self.open_anchors.remove(&anchor);
                    self.anchors.insert(anchor, (value.clone(), n));
                }
                self.push(value, n, at)
            }
            _ => Ok(()),
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Open::Map { pending: None, .. }))
    }

    /// Collections as keys are not compose's.
    fn key_required(&self, at: Position) -> Result<(), YamlError> {
        if self.is_key_position() {
            return Err(error(
                format!("line {}: a mapping key must be a scalar", at.line),
                Some(at),
            ));
        }
        Ok(())
    }

    /// The path of the value about to be pushed.
    fn child_path(&self) -> String {
        let mut p = self.path.clone();
        match self.stack.last() {
            Some(Open::Map {
                pending: Some(k), ..
            }) => p.push(k.name.clone()),
            Some(Open::Seq { items, .. }) => p.push(items.len().to_string()),
            _ => {}
        }
        p.join(".")
    }

    fn enter(&mut self) {
        let seg = match self.stack.last() {
            Some(Open::Map {
                pending: Some(k), ..
            }) => Some(k.name.clone()),
            Some(Open::Seq { items, .. }) => Some(items.len().to_string()),
            _ => None,
        };
        if let Some(s) = seg {
            self.path.push(s);
        }
    }

    fn push(&mut self, value: Value, n: usize, at: Position) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Open::Seq { items, size, .. }) => {
                items.push(value);
                *size += n;
                Ok(())
            }
            Some(Open::Map {
                entries,
                lines,
                merges,
                pending,
                size,
                ..
            }) => {
                let Some(key) = pending.take() else {
                    return Ok(());
                };
                *size += n;
                if key.merge {
                    let ok = match &value {
                        Value::Object(_) => true,
                        Value::Array(a) => a.iter().all(Value::is_object),
                        _ => false,
                    };
                    if !ok {
                        return Err(error(
                            format!(
                                "line {}: map merge requires map or sequence of maps as the value",
                                key.line
                            ),
                            Some(at),
                        ));
                    }
                    merges.push(value);
                    return Ok(());
                }
                if let Some(first) = lines.get(&key.name) {
                    return Err(error(
                        format!(
                            "line {}: mapping key \"{}\" already defined at line {first}",
                            key.line, key.name
                        ),
                        Some(at),
                    ));
                }
                lines.insert(key.name.clone(), key.line);
                entries.insert(key.name, value);
                Ok(())
            }
        }
    }
}

/// A mapping with its `<<` values under it: explicit keys win, then the
/// merged maps in the order given.
fn merged(entries: Map<String, Value>, merges: Vec<Value>) -> Value {
    if merges.is_empty() {
        return Value::Object(entries);
    }
    let mut out = Map::new();
    let sources = merges.into_iter().flat_map(|m| match m {
        Value::Array(a) => a,
        other => vec![other],
    });
    for source in sources {
        if let Value::Object(m) = source {
            for (k, v) in m {
                out.entry(k).or_insert(v);
            }
        }
    }
    for (k, v) in entries {
        out.insert(k, v);
    }
    Value::Object(out)
}
