//! Validation of a merged model against the compose JSON schema that
//! compose-go embeds (`schema/compose-spec.json`, written for draft 2020-12,
//! with Go's `duration` format), with errors in compose's words: the dotted path,
//! then what is wrong there.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::Validator;
use serde_json::Value;
use std::sync::OnceLock;

const SCHEMA: &str = include_str!("../schema/compose-spec.json");

/// Go's `time.ParseDuration`: `[-+]?(number unit)+`, or a bare `0`.
pub fn is_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num == 0 || rest[..num].chars().filter(|c| *c == '.').count() > 1 || &rest[..num] == "."
        {
            return false;
        }
        rest = &rest[num..];
        let Some(unit) = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

fn validator() -> Result<&'static Validator, String> {
    static V: OnceLock<Result<Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        // Compiled as draft 7: the schema uses no keyword draft 7 lacks and
        // no `$ref` with siblings, so the result is the same, and draft
        // 2020-12's meta-schema costs ~0.8 s to compile at every start.
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .with_format("duration", is_duration)
            .build(&schema)
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn type_name(kind: &TypeKind) -> String {
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_string(),
        "array" => "an array".to_string(),
        "integer" => "an integer".to_string(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        TypeKind::Multiple(ts) => ts.iter().map(|t| one(&t)).collect::<Vec<_>>().join(" or "),
    }
}

/// How a model breaks the schema: where (the keys to the value) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub path: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first way `model` breaks the schema, in compose's words.
pub fn validate(model: &Value) -> Result<(), SchemaError> {
    let v = validator().map_err(|message| SchemaError {
        path: Vec::new(),
        message,
    })?;
    let Some(e) = v.iter_errors(model).next() else {
        return Ok(());
    };
    let path: Vec<String> = e
        .instance_path
        .clone()
        .into_iter()
        .map(|seg| match seg {
            jsonschema::paths::LocationSegment::Property(p) => p.to_string(),
            jsonschema::paths::LocationSegment::Index(i) => i.to_string(),
        })
        .collect();
    let at = path.join(".");
    let fail = |message: String| SchemaError {
        path: path.clone(),
        message,
    };
    let what = match &e.kind {
        ValidationErrorKind::Type { kind } => format!("must be {}", type_name(kind)),
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let list = unexpected.join("', '");
            return Err(fail(if at.is_empty() {
                format!("additional properties '{list}' not allowed")
            } else {
                format!("{at} additional properties '{list}' not allowed")
            }));
        }
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            return Err(fail(if at.is_empty() {
                format!("{p} is required")
            } else {
                format!("{at}.{p} is required")
            }));
        }
        ValidationErrorKind::Format { format } => format!("must be a {format}"),
        ValidationErrorKind::Enum { options } => format!("must be one of {options}"),
        _ => e.to_string(),
    };
    Err(fail(if at.is_empty() {
        what
    } else {
        format!("{at} {what}")
    }))
}
