//! `.env` files as compose reads them (compose-go's fork of godotenv):
//! `KEY=value`, `export KEY=value`, YAML-like `KEY: value`, a bare `KEY`
//! taken from the caller's environment, comments, single quotes (literal
//! but for `\'`), double quotes (escapes and `${VAR}` expanded, several
//! lines allowed) and unquoted values (expanded, ` #` starts a comment).
//!
//! A `${VAR}` in a value is looked up in the caller's environment first,
//! then among the keys the same input defined before it.

use crate::interpolate::{substitute, Variables};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// The caller's environment: a lookup by name.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expansion sees the caller's environment, then the keys so far.
struct Scope<'a> {
    lookup: Lookup<'a>,
    defined: &'a BTreeMap<String, String>,
    unset: RefCell<Vec<String>>,
}

impl Variables for Scope<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).or_else(|| self.defined.get(name).cloned())
    }
    fn unset(&self, name: &str) {
        self.unset.borrow_mut().push(name.to_string());
    }
}

fn is_blank(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{a0}'
    )
}

/// A parser over one input, keeping the line it is on.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn line(&self) -> usize {
        self.src[..self.pos].matches('\n').count() + 1
    }

    fn error(&self, line: usize, message: impl Into<String>) -> DotenvError {
        DotenvError::Syntax {
            line,
            message: message.into(),
        }
    }

    /// Past blanks, newlines and comment lines; false at the end.
    fn next_statement(&mut self) -> bool {
        loop {
            let r = self.rest();
            let skipped = r.len() - r.trim_start().len();
            self.pos += skipped;
            let r = self.rest();
            if r.is_empty() {
                return false;
            }
            if r.starts_with('#') {
                self.pos += r.find('\n').unwrap_or(r.len());
                continue;
            }
            return true;
        }
    }

    fn skip_blanks(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start_matches(is_blank).len();
    }

    /// The key, and whether a value follows (`=` or `:`) or the line ends
    /// with the key alone (a value from the caller's environment).
    fn key(&mut self) -> Result<(String, bool), DotenvError> {
        let line = self.line();
        let r = self.rest();
        if let Some(after) = r.strip_prefix("export") {
            if after.starts_with([' ', '\t']) {
                self.pos += "export".len();
                self.skip_blanks();
            }
        }
        let r = self.rest();
        let line_text = r.split('\n').next().unwrap_or(r);
        for (i, c) in r.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    let key = r[..i].trim_end_matches(is_blank);
                    if key.contains(is_blank) {
                        return Err(self.error(line, "key cannot contain a space"));
                    }
                    self.pos += i + c.len_utf8();
                    return Ok((key.to_string(), c != '\n'));
                }
                c if is_blank(c) => {}
                c if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']') => {}
                other => {
                    return Err(self.error(
                        line,
                        format!(
                            "unexpected character {:?} in variable name {line_text:?}",
                            other.to_string()
                        ),
                    ))
                }
            }
        }
        let key = r.trim_end_matches(is_blank);
        if key.contains(is_blank) {
            return Err(self.error(line, "key cannot contain a space"));
        }
        self.pos = self.src.len();
        Ok((key.to_string(), false))
    }

    /// The value after `=`: quoted or not, expanded as its quoting says.
    fn value(&mut self, scope: &Scope<'_>) -> Result<String, DotenvError> {
        self.skip_blanks();
        let line = self.line();
        let r = self.rest();
        let quote = match r.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let end = r.find('\n').unwrap_or(r.len());
                let text = &r[..end];
                // An inline comment needs a blank before its `#`.
                let cut = text
                    .char_indices()
                    .find(|&(i, c)| c == '#' && i > 0 && text[..i].ends_with(is_blank))
                    .map(|(i, _)| i)
                    .unwrap_or(text.len());
                let value = text[..cut].trim_end_matches(is_blank);
                self.pos += end;
                return expand(value, scope, line);
            }
        };
        let body = &r[1..];
        let mut raw = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == quote {
                end = Some(i);
                break;
            }
            if c == '\\' {
                match chars.next() {
                    Some((_, n)) => {
                        raw.push('\\');
                        raw.push(n);
                    }
                    None => break,
                }
                continue;
            }
            raw.push(c);
        }
        let Some(end) = end else {
            let shown = r.split('\n').next().unwrap_or(r);
            return Err(self.error(line, format!("unterminated quoted value {shown}")));
        };
        self.pos += 1 + end + 1;
        // What follows the closing quote on its line is a comment at most.
        let r = self.rest();
        self.pos += r.find('\n').unwrap_or(r.len());
        if quote == '\'' {
            return Ok(raw.replace("\\'", "'"));
        }
        expand(&unescape(&raw), scope, line)
    }
}

/// Double quotes' escapes; a `\$` becomes `$$`, which expansion turns into
/// a literal `$`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(n) = chars.next() else {
            out.push('\\');
            break;
        };
        match n {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '$' => out.push_str("$$"),
            '0' => {
                let mut digits = String::new();
                while digits.len() < 3 {
                    match chars.peek() {
                        Some(d @ '0'..='7') => {
                            digits.push(*d);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                match u32::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

fn expand(value: &str, scope: &Scope<'_>, line: usize) -> Result<String, DotenvError> {
    substitute(value, scope).map_err(|e| DotenvError::Syntax {
        line,
        message: e.to_string(),
    })
}

/// One `.env` text: its keys and values (a key given twice: the last).
pub fn parse(text: &str, lookup: Lookup<'_>) -> Result<BTreeMap<String, String>, DotenvError> {
    parse_into(text, lookup, BTreeMap::new())
}

fn parse_into(
    text: &str,
    lookup: Lookup<'_>,
    mut out: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser { src: text, pos: 0 };
    while p.next_statement() {
        let (key, has_value) = p.key()?;
        if !has_value {
            if let Some(v) = lookup(&key) {
                out.insert(key, v);
            }
            continue;
        }
        let value = {
            let scope = Scope {
                lookup,
                defined: &out,
                unset: RefCell::new(Vec::new()),
            };
            p.value(&scope)?
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, DotenvError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(DotenvError::File {
            message: format!("{shown} is a directory"),
            path: shown,
        });
    }
    std::fs::read_to_string(path).map_err(|e| DotenvError::File {
        path: shown,
        message: e.to_string(),
    })
}

/// One `.env` file (`env_file:`, `--env-file`): as `parse`, less the keys
/// that start with a digit.
pub fn read(path: &Path, lookup: Lookup<'_>) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut vars = parse(&read_text(path)?, lookup)?;
    vars.retain(|k, _| !k.starts_with(|c: char| c.is_ascii_digit()));
    Ok(vars)
}

/// Several files into one map, later files over earlier ones; a `${VAR}`
/// sees `current` (the caller's environment) first, then what the files
/// defined so far.
pub fn env_from_files(
    current: &BTreeMap<String, String>,
    files: &[&Path],
) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut out = BTreeMap::new();
    for f in files {
        let text = read_text(f)?;
        let lookup = |k: &str| current.get(k).cloned();
        let mut vars = parse_into(&text, &lookup, out.clone())?;
        vars.retain(|k, _| !k.starts_with(|c: char| c.is_ascii_digit()));
        out = vars;
    }
    Ok(out)
}
