//! The part of Go's text/template that docker users type in `--format`:
//! text, `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`,
//! `{{index .Map "key"}}`, `{{lower .X}}`, `{{upper .X}}`, and a leading
//! `table` that prints a header and aligns the columns.

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// A function (or none) applied to a path of fields (`.` is empty) and
    /// string arguments.
    Action {
        func: Option<String>,
        path: Vec<String>,
        args: Vec<String>,
    },
}

/// A parsed `--format`.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    /// `table ...`: a header, then rows aligned by their tabs.
    pub table: bool,
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

impl Template {
    pub fn parse(format: &str) -> anyhow::Result<Template> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        let mut pieces = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(unescape(&rest[..start])));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("template: unclosed action in {format:?}"))?;
            let action = after[..end]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            pieces.push(parse_action(action, format)?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(unescape(rest)));
        }
        Ok(Template { pieces, table })
    }

    /// The template applied to `v`.
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { func, path, args } => {
                    let mut field = v;
                    for name in path {
                        field = field.get(name).unwrap_or(&Value::Null);
                    }
                    match func.as_deref() {
                        Some("json") => out.push_str(&field.to_string()),
                        Some("index") => {
                            let key = args.first().map(String::as_str).unwrap_or("");
                            out.push_str(&text(field.get(key).unwrap_or(&Value::Null)));
                        }
                        Some("lower") => out.push_str(&text(field).to_lowercase()),
                        Some("upper") => out.push_str(&text(field).to_uppercase()),
                        _ => out.push_str(&text(field)),
                    }
                }
            }
        }
        out
    }

    /// The header row of a table: each action's field name, as docker's
    /// headers for them (`header` maps a field to its column title).
    pub fn header(&self, header: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { path, .. } => {
                    let name = path.last().map(String::as_str).unwrap_or("");
                    out.push_str(&header(name));
                }
            }
        }
        out
    }
}

fn parse_action(action: &str, format: &str) -> anyhow::Result<Piece> {
    let words = split_words(action);
    let (func, operand, args) = match words.as_slice() {
        [one] => (None, one.clone(), Vec::new()),
        [f, operand, rest @ ..] if matches!(f.as_str(), "json" | "index" | "lower" | "upper") => (
            Some(f.clone()),
            operand.clone(),
            rest.iter()
                .map(|a| a.trim_matches('"').to_string())
                .collect(),
        ),
        _ => bail!("template: unsupported action {{{{{action}}}}} in {format:?}"),
    };
    let Some(path) = operand.strip_prefix('.') else {
        bail!("template: {operand:?} is not a field (fields start with a dot) in {format:?}");
    };
    Ok(Piece::Action {
        func,
        path: path
            .split('.')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        args,
    })
}

/// Words of an action; a quoted string is one word.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// How Go prints a value in a template.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Lines whose cells are separated by tabs, aligned as docker's tabwriter
/// does it (columns padded to the widest cell plus three spaces).
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints `items` with the template `format`: one line each, or a table
/// with a header.
pub fn print(format: &str, items: &[Value], header: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    let t = Template::parse(format)?;
    let mut lines = Vec::new();
    if t.table {
        lines.push(t.header(header));
    }
    lines.extend(items.iter().map(|v| t.render(v)));
    let text = if t.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_json_index_and_tables() {
        let v = json!({"ID": "abc", "Actor": {"Attributes": {"name": "web"}}, "N": 3});
        let t = Template::parse("{{.ID}} {{.Actor.Attributes.name}}\\t{{.N}}").unwrap();
        assert_eq!(t.render(&v), "abc web\t3");
        let t = Template::parse("{{json .Actor}}").unwrap();
        assert_eq!(t.render(&v), r#"{"Attributes":{"name":"web"}}"#);
        let t = Template::parse(r#"{{index .Actor.Attributes "name"}}"#).unwrap();
        assert_eq!(t.render(&v), "web");
        assert_eq!(
            Template::parse("{{.Missing}}").unwrap().render(&v),
            "<no value>"
        );
        let t = Template::parse("table {{.ID}}\\t{{.N}}").unwrap();
        assert!(t.table);
        assert_eq!(t.header(&|f| f.to_uppercase()), "ID\tN");
        assert_eq!(
            align(&["ID\tN".into(), "abcdef\t3".into()]),
            "ID       N\nabcdef   3\n"
        );
        assert!(Template::parse("{{.ID").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
    }
}
