//! BuildKit's parser-test dump format: one `(keyword ["--flag"] "arg" ...)`
//! line per instruction, strings quoted as Go's `strconv.Quote` does.

use crate::syntax::{Args, SyntaxNode, SyntaxTree};
use std::fmt::Write as _;
use unicode_general_category::{get_general_category, GeneralCategory as G};

impl SyntaxTree {
    /// The dump of every instruction, each line ending in `\n`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }
}

impl SyntaxNode {
    /// The dump of one instruction, without the outer parentheses.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.value.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(&f.value)).collect();
            let _ = write!(out, " [{}]", flags.join(" "));
        }
        dump_args(&self.args, &mut out);
        out.trim().to_string()
    }
}

fn dump_args(args: &Args, out: &mut String) {
    let mut push = |s: &str| {
        out.push(' ');
        out.push_str(&go_quote(s));
    };
    match args {
        Args::Empty => {}
        Args::Json(words) | Args::Words(words) => words.iter().for_each(|w| push(&w.value)),
        Args::Text(w) => push(&w.value),
        Args::Pairs { pairs, legacy } => {
            for (k, v) in pairs {
                push(&k.value);
                push(&v.value);
                push(if *legacy { "" } else { "=" });
            }
        }
        Args::Health { kind, command } => {
            push(&kind.value);
            dump_args(command, out);
        }
        Args::Sub(child) => {
            out.push_str(" (");
            out.push_str(&child.dump());
            out.push(')');
        }
        Args::Ignored => push(""),
    }
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        G::Control
            | G::Format
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
            | G::SpaceSeparator
            | G::LineSeparator
            | G::ParagraphSeparator
    )
}

/// Quotes a string exactly as Go's `strconv.Quote` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\u{7f}\t"), r#""\x00\x7f\t""#);
        assert_eq!(go_quote("♥ \u{a0}\u{2028}"), "\"♥ \\u00a0\\u2028\"");
        assert_eq!(go_quote("\u{e0001}"), "\"\\U000e0001\"");
    }
}
