//! `${VAR}` substitution, as compose applies it to every string of a
//! Compose file before anything else: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`,
//! `${VAR+alt}`, nested expressions and `$$` for a literal `$`.
//!
//! The operator is the one right after the name; what follows it is the
//! default, message or alternative text, itself substituted, and only when
//! it is used (an unused default neither warns nor fails).

use serde_json::Value;
use std::collections::BTreeMap;

/// Why a template cannot be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("Invalid template: {template:?}")]
    Invalid { template: String },
    #[error("required variable {variable} is missing a value{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    MissingRequired { variable: String, reason: String },
}

/// Why a tree cannot be interpolated: the error at the dotted path of the
/// string that has it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{template}")]
    Invalid { path: String, template: String },
    #[error("error while interpolating {path}: {source}")]
    Failed {
        path: String,
        #[source]
        source: TemplateError,
    },
}

/// Where variables come from, and who hears of a plain `$VAR` that is not
/// set (compose warns, and substitutes the empty string).
pub trait Variables {
    fn get(&self, name: &str) -> Option<String>;
    fn unset(&self, _name: &str) {}
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl Variables for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// The operator of a braced expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `:-`: the default when unset or empty.
    DefaultIfEmpty,
    /// `-`: the default when unset.
    DefaultIfUnset,
    /// `:?`: an error when unset or empty.
    RequiredNonEmpty,
    /// `?`: an error when unset.
    Required,
    /// `:+`: the alternative when set and not empty.
    AltIfNonEmpty,
    /// `+`: the alternative when set.
    AltIfSet,
}

impl Operator {
    pub fn text(self) -> &'static str {
        match self {
            Operator::DefaultIfEmpty => ":-",
            Operator::DefaultIfUnset => "-",
            Operator::RequiredNonEmpty => ":?",
            Operator::Required => "?",
            Operator::AltIfNonEmpty => ":+",
            Operator::AltIfSet => "+",
        }
    }
}

/// A braced expression's parts: `NAME`, or `NAME` OP `ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression<'a> {
    pub name: &'a str,
    pub op: Option<(Operator, &'a str)>,
}

fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    b.iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// The text between `${` and `}`, split; none when it is not a name with
/// at most one operator after it.
pub fn parse_expression(inner: &str) -> Option<Expression<'_>> {
    let n = name_len(inner);
    if n == 0 {
        return None;
    }
    let (name, rest) = inner.split_at(n);
    if rest.is_empty() {
        return Some(Expression { name, op: None });
    }
    const OPS: [Operator; 6] = [
        Operator::DefaultIfEmpty,
        Operator::RequiredNonEmpty,
        Operator::AltIfNonEmpty,
        Operator::DefaultIfUnset,
        Operator::Required,
        Operator::AltIfSet,
    ];
    OPS.iter().find_map(|op| {
        rest.strip_prefix(op.text()).map(|arg| Expression {
            name,
            op: Some((*op, arg)),
        })
    })
}

/// The index of the `}` that closes the `${` at the start of `s`: braces
/// inside balance (a JSON default `{"a":1}` is part of the expression).
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            depth += 1;
            i += 1;
            continue;
        }
        if b[i] == b'}' {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// One piece of a template.
enum Piece<'a> {
    Text(&'a str),
    /// `$NAME`.
    Named(&'a str),
    /// `${...}`, its inner text.
    Braced(&'a str),
}

/// The template cut into text, `$NAME` and `${...}` pieces (`$$` is a `$`
/// of text; a `$` before anything else is text too).
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let invalid = || TemplateError::Invalid {
        template: template.to_string(),
    };
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        let after = &rest[i + 1..];
        if let Some(next) = after.strip_prefix('$') {
            out.push(Piece::Text("$"));
            rest = next;
        } else if after.starts_with('{') {
            let close = closing_brace(&rest[i..]).ok_or_else(invalid)?;
            out.push(Piece::Braced(&rest[i + 2..i + close]));
            rest = &rest[i + close + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                out.push(Piece::Text("$"));
                rest = after;
            } else {
                out.push(Piece::Named(&after[..n]));
                rest = &after[n..];
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// `template` with every expression replaced.
pub fn substitute(template: &str, vars: &dyn Variables) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for p in pieces(template)? {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Named(name) => out.push_str(&plain(name, vars)),
            Piece::Braced(inner) => {
                let e = parse_expression(inner).ok_or_else(|| TemplateError::Invalid {
                    template: template.to_string(),
                })?;
                out.push_str(&evaluate(&e, vars)?);
            }
        }
    }
    Ok(out)
}

fn plain(name: &str, vars: &dyn Variables) -> String {
    vars.get(name).unwrap_or_else(|| {
        vars.unset(name);
        String::new()
    })
}

fn evaluate(e: &Expression<'_>, vars: &dyn Variables) -> Result<String, TemplateError> {
    let Some((op, arg)) = e.op else {
        return Ok(plain(e.name, vars));
    };
    let value = vars.get(e.name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let value = value.unwrap_or_default();
    match op {
        Operator::DefaultIfEmpty if !non_empty => substitute(arg, vars),
        Operator::DefaultIfUnset if !set => substitute(arg, vars),
        Operator::RequiredNonEmpty if !non_empty => Err(missing(e.name, arg, vars)?),
        Operator::Required if !set => Err(missing(e.name, arg, vars)?),
        Operator::AltIfNonEmpty => {
            if non_empty {
                substitute(arg, vars)
            } else {
                Ok(String::new())
            }
        }
        Operator::AltIfSet => {
            if set {
                substitute(arg, vars)
            } else {
                Ok(String::new())
            }
        }
        _ => Ok(value),
    }
}

fn missing(
    name: &str,
    message: &str,
    vars: &dyn Variables,
) -> Result<TemplateError, TemplateError> {
    Ok(TemplateError::MissingRequired {
        variable: name.to_string(),
        reason: substitute(message, vars)?,
    })
}

/// Every string of a YAML/JSON tree substituted; errors name the dotted
/// path of the string (list items as `[]`, as compose-go names them).
pub fn interpolate_tree(tree: &Value, vars: &dyn Variables) -> Result<Value, InterpolationError> {
    walk(tree, "", vars)
}

fn walk(v: &Value, path: &str, vars: &dyn Variables) -> Result<Value, InterpolationError> {
    Ok(match v {
        Value::String(s) => Value::String(substitute(s, vars).map_err(|e| match e {
            TemplateError::Invalid { .. } => InterpolationError::Invalid {
                path: path.to_string(),
                template: s.clone(),
            },
            other => InterpolationError::Failed {
                path: path.to_string(),
                source: other,
            },
        })?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| walk(i, &join(path, "[]"), vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| Ok((k.clone(), walk(i, &join(path, k), vars)?)))
                .collect::<Result<_, InterpolationError>>()?,
        ),
        other => other.clone(),
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A variable a Compose file uses (`docker compose config --variables`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub default_value: String,
    pub presence_value: String,
    pub required: bool,
}

/// Every variable the strings of `tree` name, with defaults kept as
/// written; names inside defaults count too.
pub fn extract_variables(tree: &Value) -> BTreeMap<String, Variable> {
    let mut out = BTreeMap::new();
    collect(tree, &mut out);
    out
}

fn collect(v: &Value, out: &mut BTreeMap<String, Variable>) {
    match v {
        Value::String(s) => collect_in(s, out),
        Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect(i, out)),
        _ => {}
    }
}

fn collect_in(s: &str, out: &mut BTreeMap<String, Variable>) {
    let Ok(ps) = pieces(s) else {
        return;
    };
    for p in ps {
        match p {
            Piece::Text(_) => {}
            Piece::Named(name) => {
                out.entry(name.to_string()).or_insert_with(|| Variable {
                    name: name.to_string(),
                    ..Default::default()
                });
            }
            Piece::Braced(inner) => {
                let Some(e) = parse_expression(inner) else {
                    continue;
                };
                let mut var = Variable {
                    name: e.name.to_string(),
                    ..Default::default()
                };
                if let Some((op, arg)) = e.op {
                    match op {
                        Operator::DefaultIfEmpty | Operator::DefaultIfUnset => {
                            var.default_value = arg.to_string()
                        }
                        Operator::RequiredNonEmpty | Operator::Required => var.required = true,
                        Operator::AltIfNonEmpty | Operator::AltIfSet => {
                            var.presence_value = arg.to_string()
                        }
                    }
                    collect_in(arg, out);
                }
                out.insert(var.name.clone(), var);
            }
        }
    }
}
