//! The syntax stage: each logical line becomes a [`SyntaxNode`] — keyword,
//! flags and arguments split the way BuildKit's parser splits them, nothing
//! validated or expanded yet. This is what `berth parse --dump` prints, and
//! what the typed AST (`ast.rs`) is built from.

use crate::ast::{Heredoc, Word};
use crate::error::ParseError;
use crate::scanner::{LogicalLine, Scanner, Warning};
use crate::shell::ShellLex;
use crate::span::Span;
use pest::iterators::Pair;
use pest::Parser as _;
use serde::Serialize;

#[derive(pest_derive::Parser)]
#[grammar = "dockerfile.pest"]
struct DockerfileGrammar;

/// A parser directive from the top of the file (`# escape=`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    pub value: String,
    pub span: Span,
}

/// The arguments of an instruction, split as its keyword requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Nothing after the keyword and flags.
    Empty,
    /// A JSON array of strings (exec form).
    Json(Vec<Word>),
    /// The rest of the line as one piece (shell form and single-value instructions).
    Text(Word),
    /// Whitespace-separated words (FROM, EXPOSE, ADD/COPY/VOLUME shell form) or
    /// shell-like words with quotes kept (ARG).
    Words(Vec<Word>),
    /// ENV and LABEL: `key=value` pairs, or the legacy `key value` form.
    Pairs {
        pairs: Vec<(Word, Word)>,
        legacy: bool,
    },
    /// HEALTHCHECK: the type word, then a command like CMD's.
    Health { kind: Word, command: Box<Args> },
    /// ONBUILD: the wrapped instruction.
    Sub(Box<SyntaxNode>),
    /// An unknown instruction: kept so that the next stage can name it.
    Ignored,
}

/// One instruction as the parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxNode {
    /// The keyword as written.
    pub keyword: Word,
    /// Flags as `--name=value` or `--name`, quotes removed.
    pub flags: Vec<Word>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The joined instruction line.
    pub original: String,
    /// The span of the rest of the line after the flags.
    pub rest: Span,
    /// The whole instruction, continuation lines and heredoc bodies included.
    pub span: Span,
    /// Comment lines directly above it.
    pub comments: Vec<String>,
}

impl SyntaxNode {
    pub fn is_json(&self) -> bool {
        match &self.args {
            Args::Json(_) => true,
            Args::Health { command, .. } => matches!(**command, Args::Json(_)),
            _ => false,
        }
    }

    /// RUN, COPY and ADD in shell form (or wrapped in ONBUILD) may take heredocs.
    fn can_contain_heredoc(&self) -> bool {
        let node = match &self.args {
            Args::Sub(child) if self.keyword.value.eq_ignore_ascii_case("onbuild") => child,
            _ => self,
        };
        let kw = node.keyword.value.to_ascii_lowercase();
        matches!(kw.as_str(), "run" | "copy" | "add") && !node.is_json()
    }
}

/// The whole file at the syntax stage.
#[derive(Debug, Clone)]
pub struct SyntaxTree {
    pub directives: Vec<Directive>,
    pub escape: char,
    pub nodes: Vec<SyntaxNode>,
    pub warnings: Vec<Warning>,
}

/// Parses Dockerfile text into its syntax tree.
pub fn parse_syntax(text: &str) -> Result<SyntaxTree, ParseError> {
    let mut scanner = Scanner::new(text);
    let mut nodes = Vec::new();
    while let Some(line) = scanner.next_logical()? {
        let ctx = LineCtx {
            scanner: &scanner,
            line: &line,
        };
        let mut node = ctx.node(0, line.text.len())?;
        let mut end_line = line.end_line;
        if node.can_contain_heredoc() {
            let markers = heredocs_in_line(&line.text)
                .map_err(|e| ctx.error(0, line.text.len(), e.to_string()))?;
            for marker in markers {
                let Some(body) = scanner.read_heredoc(&marker.name, marker.chomp)? else {
                    let last = scanner.current_line();
                    return Err(scanner
                        .error_on_line(line.start_line, format!(
                            "unterminated heredoc: no line `{}` ends the heredoc started here (read to line {last})",
                            marker.name
                        )));
                };
                node.heredocs.push(Heredoc {
                    name: marker.name,
                    content: body.content,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    fd: marker.fd,
                    span: body.span,
                });
                end_line = scanner.current_line();
            }
        }
        let start = scanner.map.line_span(text, line.start_line).start;
        let end = scanner.map.line_span(text, end_line).end;
        node.span = scanner.map.span(text, start, end);
        node.comments = line.comments;
        nodes.push(node);
    }
    if nodes.is_empty() {
        let last = scanner.map.line_count();
        return Err(scanner.error_on_line(last, "file with no instructions"));
    }
    Ok(SyntaxTree {
        directives: scanner.directives,
        escape: scanner.escape,
        nodes,
        warnings: scanner.warnings,
    })
}

/// Parses `# name = value`; returns name, value and their offsets in `text`.
pub(crate) fn parse_directive(text: &str) -> Option<(&str, &str, usize, usize)> {
    let input = format!("\\{text}");
    let pairs = DockerfileGrammar::parse(Rule::directive, &input).ok()?;
    let mut name = None;
    let mut value = None;
    for p in pairs.flatten() {
        match p.as_rule() {
            Rule::directive_name => name = Some(p.as_span().start() - 1),
            Rule::directive_value => value = Some(p.as_span().start() - 1),
            _ => {}
        }
    }
    let (n, v) = (name?, value?);
    let name_len = text[n..]
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(text.len() - n);
    let value_str = text[v..].trim_end_matches([' ', '\t', '\n', '\u{0C}', '\r']);
    Some((&text[n..n + name_len], value_str, n, v))
}

/// Where a logical line's pieces come from, to give every word its span.
struct LineCtx<'s, 'a> {
    scanner: &'s Scanner<'a>,
    line: &'s LogicalLine,
}

/// A piece of text and where it is in the logical line.
type Piece = (String, usize, usize);

/// Runs an entry rule on `text`, with the escape character prefixed for PEEK.
fn run_rule(rule: Rule, escape: char, text: &str) -> Option<(String, Vec<PieceTree>)> {
    let input = format!("{escape}{text}");
    let pairs = DockerfileGrammar::parse(rule, &input).ok()?;
    let trees = pairs
        .map(|p| PieceTree::from_pair(p, escape.len_utf8()))
        .collect();
    Some((input, trees))
}

/// An owned copy of a pest pair tree, with offsets relative to the text
/// (the escape prefix removed).
#[derive(Debug)]
struct PieceTree {
    rule: Rule,
    text: String,
    start: usize,
    end: usize,
    children: Vec<PieceTree>,
}

impl PieceTree {
    fn from_pair(p: Pair<'_, Rule>, shift: usize) -> PieceTree {
        let span = p.as_span();
        PieceTree {
            rule: p.as_rule(),
            text: p.as_str().to_string(),
            start: span.start().saturating_sub(shift),
            end: span.end().saturating_sub(shift),
            children: p
                .into_inner()
                .map(|c| PieceTree::from_pair(c, shift))
                .collect(),
        }
    }

    fn find(&self, rule: Rule) -> Option<&PieceTree> {
        if self.rule == rule {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(rule))
    }

    fn all(&self, rule: Rule) -> Vec<&PieceTree> {
        let mut out = Vec::new();
        self.collect(rule, &mut out);
        out
    }

    fn collect<'t>(&'t self, rule: Rule, out: &mut Vec<&'t PieceTree>) {
        if self.rule == rule {
            out.push(self);
            return;
        }
        for c in &self.children {
            c.collect(rule, out);
        }
    }
}

/// What the exec-form check found.
enum ExecForm {
    NotJson,
    NonString(usize, usize),
    Strings(Vec<Piece>),
}

fn exec_form(escape: char, text: &str) -> ExecForm {
    let Some((_, trees)) = run_rule(Rule::exec_form, escape, text) else {
        return ExecForm::NotJson;
    };
    let Some(array) = trees.iter().find_map(|t| t.find(Rule::json_array)) else {
        return ExecForm::NotJson;
    };
    let mut out = Vec::new();
    for item in &array.children {
        match item.rule {
            Rule::json_string => out.push((decode_json_string(&item.text), item.start, item.end)),
            _ => return ExecForm::NonString(item.start, item.end),
        }
    }
    ExecForm::Strings(out)
}

/// Decodes a JSON string literal the grammar has already checked.
fn decode_json_string(lit: &str) -> String {
    let body = lit
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(lit);
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            if pending_high.take().is_some() {
                out.push('\u{fffd}');
            }
            out.push(c);
            continue;
        }
        let e = chars.next().unwrap_or('\\');
        if e != 'u' && pending_high.take().is_some() {
            out.push('\u{fffd}');
        }
        match e {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                match (pending_high.take(), unit) {
                    (Some(high), 0xdc00..=0xdfff) => {
                        let cp = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                    }
                    (prev, 0xd800..=0xdbff) => {
                        if prev.is_some() {
                            out.push('\u{fffd}');
                        }
                        pending_high = Some(unit);
                    }
                    (prev, unit) => {
                        if prev.is_some() {
                            out.push('\u{fffd}');
                        }
                        out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                    }
                }
            }
            other => out.push(other),
        }
    }
    if pending_high.is_some() {
        out.push('\u{fffd}');
    }
    out
}

fn blank_words(escape: char, text: &str) -> Vec<Piece> {
    run_rule(Rule::blank_words, escape, text)
        .map(|(_, trees)| {
            trees
                .iter()
                .flat_map(|t| t.all(Rule::blank_word))
                .map(|w| (w.text.clone(), w.start, w.end))
                .collect()
        })
        .unwrap_or_default()
}

/// Shell-like words with quotes and escapes kept, a dangling escape dropped.
fn shell_words(escape: char, text: &str) -> Vec<Piece> {
    let Some((_, trees)) = run_rule(Rule::shell_words, escape, text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for word in trees.iter().flat_map(|t| t.all(Rule::shell_word)) {
        let dangling = word.find(Rule::dangling_escape).map(|d| d.start);
        let quoted = word.find(Rule::sw_squoted).is_some() || word.find(Rule::sw_dquoted).is_some();
        let mut value = word.text.clone();
        if let Some(at) = dangling {
            value.truncate(at - word.start);
        }
        if !value.is_empty() || quoted {
            out.push((value, word.start, word.end));
        }
    }
    out
}

/// The split of an instruction line: keyword, flags and the rest.
struct Head {
    keyword: Piece,
    flags: Vec<Piece>,
    rest: (usize, usize),
}

fn split_instruction(escape: char, text: &str) -> Option<Head> {
    let (_, trees) = run_rule(Rule::instruction, escape, text)?;
    let root = trees.first()?;
    let kw = root.find(Rule::keyword)?;
    let flags = root
        .all(Rule::flag)
        .into_iter()
        .map(|f| {
            let mut value = String::new();
            for part in &f.children {
                match part.rule {
                    Rule::flag_escaped => {
                        if let Some(c) = part.children.first() {
                            value.push_str(&c.text);
                        }
                    }
                    _ => value.push_str(&part.text),
                }
            }
            (value, f.start, f.end)
        })
        .collect();
    let rest = match root.find(Rule::rest) {
        Some(r) => {
            let s = &text[r.start..r.end];
            let lead = s.len() - s.trim_start().len();
            (r.start + lead, r.start + lead + s.trim().len())
        }
        None => (text.len(), text.len()),
    };
    Some(Head {
        keyword: (kw.text.clone(), kw.start, kw.end),
        flags,
        rest,
    })
}

impl LineCtx<'_, '_> {
    fn span(&self, start: usize, end: usize) -> Span {
        let (s, e) = self.line.map.range_to_source(start, end);
        self.scanner.map.span(self.scanner.text, s, e)
    }

    fn word(&self, (value, start, end): Piece, base: usize) -> Word {
        Word {
            value,
            span: self.span(base + start, base + end),
        }
    }

    fn error(&self, start: usize, end: usize, message: impl Into<String>) -> ParseError {
        let (s, e) = self.line.map.range_to_source(start, end);
        self.scanner.error_at(s, e, message)
    }

    /// Parses the instruction in `line.text[from..to]`.
    fn node(&self, from: usize, to: usize) -> Result<SyntaxNode, ParseError> {
        let escape = self.scanner.escape;
        let full = &self.line.text[from..to];
        let lead = full.len() - full.trim_start().len();
        let text = full.trim();
        let base = from + lead;
        let Some(head) = split_instruction(escape, text) else {
            return Err(self.error(base, base + text.len(), "cannot parse instruction"));
        };
        let keyword = self.word(head.keyword, base);
        let flags = head.flags.into_iter().map(|f| self.word(f, base)).collect();
        let (rs, re) = (base + head.rest.0, base + head.rest.1);
        let rest = &self.line.text[rs..re];
        let args = self.args(&keyword.value.to_ascii_lowercase(), rest, rs)?;
        Ok(SyntaxNode {
            keyword,
            flags,
            args,
            heredocs: Vec::new(),
            original: text.to_string(),
            rest: self.span(rs, re),
            span: self.span(base, base + text.len()),
            comments: Vec::new(),
        })
    }

    fn args(&self, keyword: &str, rest: &str, at: usize) -> Result<Args, ParseError> {
        let escape = self.scanner.escape;
        let words = |pieces: Vec<Piece>| -> Vec<Word> {
            pieces.into_iter().map(|p| self.word(p, at)).collect()
        };
        Ok(match keyword {
            "add" | "copy" | "volume" => match self.maybe_json(rest, at)? {
                Some(args) => args,
                None if rest.is_empty() => Args::Empty,
                None => Args::Words(words(blank_words(escape, rest))),
            },
            "cmd" | "entrypoint" | "run" | "shell" => {
                if rest.is_empty() {
                    Args::Empty
                } else {
                    match self.maybe_json(rest, at)? {
                        Some(args) => args,
                        None => Args::Text(self.word((rest.to_string(), 0, rest.len()), at)),
                    }
                }
            }
            "from" | "expose" => match blank_words(escape, rest) {
                w if w.is_empty() => Args::Empty,
                w => Args::Words(words(w)),
            },
            "arg" => match shell_words(escape, rest) {
                w if w.is_empty() => Args::Empty,
                w => Args::Words(words(w)),
            },
            "env" | "label" => self.name_values(keyword, rest, at)?,
            "maintainer" | "stopsignal" | "user" | "workdir" => {
                if rest.is_empty() {
                    Args::Empty
                } else {
                    Args::Text(self.word((rest.to_string(), 0, rest.len()), at))
                }
            }
            "healthcheck" => {
                let sep = rest
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                if sep == 0 {
                    Args::Empty
                } else {
                    let after = &rest[sep..];
                    let next = sep
                        + (after.len()
                            - after
                                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                                .len());
                    let kind = self.word((rest[..sep].to_string(), 0, sep), at);
                    let cmd_text = &rest[next..];
                    let command = if cmd_text.is_empty() {
                        Args::Empty
                    } else {
                        match self.maybe_json(cmd_text, at + next)? {
                            Some(args) => args,
                            None => Args::Text(
                                self.word((cmd_text.to_string(), 0, cmd_text.len()), at + next),
                            ),
                        }
                    };
                    Args::Health {
                        kind,
                        command: Box::new(command),
                    }
                }
            }
            "onbuild" => {
                if rest.is_empty() {
                    Args::Empty
                } else {
                    Args::Sub(Box::new(self.node(at, at + rest.len())?))
                }
            }
            _ => Args::Ignored,
        })
    }

    /// `Some` when `rest` is a JSON array of strings; an error when it is a
    /// JSON array with anything else in it; `None` when it is no JSON array.
    fn maybe_json(&self, rest: &str, at: usize) -> Result<Option<Args>, ParseError> {
        if !rest.trim_start().starts_with('[') {
            return Ok(None);
        }
        match exec_form(self.scanner.escape, rest) {
            ExecForm::NotJson => Ok(None),
            ExecForm::NonString(s, e) => Err(self.error(
                at + s,
                at + e,
                "when using JSON array syntax, arrays must be comprised of strings only",
            )),
            ExecForm::Strings(items) => Ok(Some(Args::Json(
                items.into_iter().map(|p| self.word(p, at)).collect(),
            ))),
        }
    }

    /// ENV and LABEL: the legacy `KEY value` form when the first word has no
    /// `=`, otherwise `key=value` words.
    fn name_values(&self, keyword: &str, rest: &str, at: usize) -> Result<Args, ParseError> {
        let words = shell_words(self.scanner.escape, rest);
        let Some(first) = words.first() else {
            return Ok(Args::Empty);
        };
        if !first.0.contains('=') {
            let blanks = [' ', '\t', '\u{0B}', '\u{0C}', '\r'];
            let Some(cut) = rest.find(blanks) else {
                return Err(self.error(
                    at,
                    at + rest.len(),
                    format!("{} must have two arguments", keyword.to_ascii_uppercase()),
                ));
            };
            let value_at = cut + (rest.len() - cut - rest[cut..].trim_start_matches(blanks).len());
            let key = self.word((rest[..cut].to_string(), 0, cut), at);
            let value = self.word((rest[value_at..].to_string(), value_at, rest.len()), at);
            return Ok(Args::Pairs {
                pairs: vec![(key, value)],
                legacy: true,
            });
        }
        let mut pairs = Vec::new();
        for (word, s, e) in words {
            let Some(eq) = word.find('=') else {
                return Err(self.error(
                    at + s,
                    at + e,
                    format!(
                        "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                    ),
                ));
            };
            let key = self.word((word[..eq].to_string(), s, s + eq), at);
            let value = self.word((word[eq + 1..].to_string(), s + eq + 1, e), at);
            pairs.push((key, value));
        }
        Ok(Args::Pairs {
            pairs,
            legacy: false,
        })
    }
}

/// A heredoc marker found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
}

/// Classifies one word as a heredoc marker (`<<EOF`, `<<-'EOF'`, `3<<EOF`,
/// `<< EOF`). Unbalanced quotes in the name are an error.
pub fn parse_heredoc_marker(
    word: &str,
) -> Result<Option<HeredocMarker>, crate::shell::ExpandError> {
    let Some((_, trees)) = run_rule(Rule::heredoc_marker, '\\', word) else {
        return Ok(None);
    };
    let Some(root) = trees.first() else {
        return Ok(None);
    };
    let fd = root
        .find(Rule::heredoc_fd)
        .map(|p| p.text.parse::<u32>().unwrap_or(0))
        .unwrap_or(0);
    let chomp = root.find(Rule::heredoc_chomp).is_some();
    let rest = root
        .find(Rule::heredoc_name)
        .map(|p| p.text.as_str())
        .unwrap_or("");
    if rest.is_empty() {
        return Ok(None);
    }
    let vars: Vec<(String, String)> = Vec::new();
    let mut lex = ShellLex::new('\\');
    lex.skip_unset = true;
    let words = lex.process_words(rest, &vars)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &vars)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // A quoted name (any part of it) means the body is taken literally.
    let expand = raw.first().map(|r| quotes(r)) == Some(quotes(name));
    Ok(Some(HeredocMarker {
        name: name.clone(),
        expand,
        chomp,
        fd,
    }))
}

/// The heredoc markers of an instruction line, in order. A marker with its
/// name after blanks (`<< EOF`) takes the next word as its name.
pub fn heredocs_in_line(line: &str) -> Result<Vec<HeredocMarker>, crate::shell::ExpandError> {
    if !line.contains("<<") {
        return Ok(Vec::new());
    }
    let mut lex = ShellLex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset = true;
    let vars: Vec<(String, String)> = Vec::new();
    let Ok(words) = lex.process_words(line, &vars) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let bare = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let candidate = if (bare == "<<" || bare == "<<-") && i + 1 < words.len() {
            i += 1;
            format!("{w} {}", words[i])
        } else {
            w.clone()
        };
        if let Some(m) = parse_heredoc_marker(&candidate)? {
            out.push(m);
        }
        i += 1;
    }
    Ok(out)
}
