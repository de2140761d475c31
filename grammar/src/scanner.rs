//! From physical lines to logical instruction lines.
//!
//! This part is a small state machine rather than grammar rules because what a
//! line means depends on what came before it: the `# escape=` directive changes
//! the continuation character, and a heredoc's terminator is named on the
//! instruction line that precedes its body. It follows BuildKit's line rules
//! (see `shared/conformance/README.md`, sections 1.3 to 1.5).

use crate::error::ParseError;
use crate::span::{OffsetMap, SourceMap, Span};
use crate::syntax::{parse_directive, Directive};

/// BuildKit reads lines with a 64 KiB buffer and rejects longer ones.
const MAX_LINE: usize = 65535;

/// Continuation lines joined into one instruction line.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    pub text: String,
    pub map: OffsetMap,
    /// 1-based physical lines the instruction spans (heredoc bodies not yet read).
    pub start_line: usize,
    pub end_line: usize,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

/// A heredoc body as read from the source.
#[derive(Debug, Clone)]
pub(crate) struct HeredocBody {
    pub content: String,
    pub span: Span,
}

/// Something docker accepts but warns about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub message: String,
    pub span: Span,
}

pub(crate) struct Scanner<'a> {
    pub text: &'a str,
    pub map: SourceMap,
    /// Physical lines: (start, end) byte offsets, `end` past the newline.
    lines: Vec<(usize, usize)>,
    next: usize,
    pub escape: char,
    directives_done: bool,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
    comments: Vec<String>,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    trim_newline(s).trim_start().starts_with('#')
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, _) in text.match_indices('\n') {
            lines.push((start, i + 1));
            start = i + 1;
        }
        if start < text.len() {
            lines.push((start, text.len()));
        }
        // A UTF-8 byte-order mark is not part of the first line.
        if let Some(first) = lines.first_mut() {
            if text.starts_with('\u{feff}') {
                first.0 += '\u{feff}'.len_utf8();
            }
        }
        Scanner {
            text,
            map: SourceMap::new(text),
            lines,
            next: 0,
            escape: '\\',
            directives_done: false,
            directives: Vec::new(),
            warnings: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// Builds an error located at a byte range of the source.
    pub fn error_at(&self, start: usize, end: usize, message: impl Into<String>) -> ParseError {
        let span = self.map.span(self.text, start, end);
        ParseError::new(
            message,
            span,
            self.map.line_text(self.text, span.start_line),
        )
    }

    /// Builds an error covering a whole physical line (1-based).
    pub fn error_on_line(&self, line: usize, message: impl Into<String>) -> ParseError {
        let s = self.map.line_span(self.text, line);
        let start =
            s.start + (s.end - s.start - self.map.line_text(self.text, line).trim_start().len());
        self.error_at(start, s.end.max(start), message)
    }

    /// The raw text of physical line `i` (0-based), newline included, and its
    /// start offset.
    fn raw_line(&self, i: usize) -> Result<(&'a str, usize), ParseError> {
        let (s, e) = self.lines[i];
        if e - s > MAX_LINE + 1 {
            return Err(self.error_at(
                s,
                s,
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            ));
        }
        Ok((&self.text[s..e], s))
    }

    /// Removes a continuation escape (and the blanks after it) from the end of
    /// `s`. Returns how much of `s` to keep and whether the line continues. Two
    /// escapes in a row are an escaped escape, not a continuation.
    fn trim_continuation(&self, s: &str) -> (usize, bool) {
        let t = s.trim_end_matches([' ', '\t']);
        if let Some(before) = t.strip_suffix(self.escape) {
            if !before.ends_with(self.escape) {
                return (before.len(), true);
            }
        }
        (s.len(), false)
    }

    /// Handles a possible parser directive on a top-level line. Directives are
    /// only read until the first line that is not one.
    fn directive(&mut self, text: &str, offset: usize) -> Result<bool, ParseError> {
        if self.directives_done {
            return Ok(false);
        }
        let Some((name, value, name_at, value_at)) = parse_directive(text) else {
            self.directives_done = true;
            return Ok(false);
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(false);
        }
        let name_span = (offset + name_at, offset + name_at + name.len());
        if self.directives.iter().any(|d| d.name == key) {
            return Err(self.error_at(
                name_span.0,
                name_span.1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        let value_span = (offset + value_at, offset + value_at + value.len());
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(self.error_at(
                        value_span.0,
                        value_span.1,
                        format!("invalid escape token '{other}' does not match ` or \\"),
                    ))
                }
            };
        }
        self.directives.push(Directive {
            name: key,
            value: value.to_string(),
            span: self.map.span(self.text, offset, value_span.1),
        });
        Ok(true)
    }

    /// The next instruction line, or `None` at the end of the file.
    pub fn next_logical(&mut self) -> Result<Option<LogicalLine>, ParseError> {
        while self.next < self.lines.len() {
            let (raw, raw_start) = self.raw_line(self.next)?;
            self.next += 1;
            let start_line = self.next;
            let trimmed = trim_newline(raw);
            let text = trimmed.trim_start();
            let text_at = raw_start + (trimmed.len() - text.len());
            if self.directive(text, text_at)? {
                continue;
            }
            let first = if let Some(comment) = text.strip_prefix('#') {
                self.comments.push(comment.trim().to_string());
                ""
            } else {
                text
            };
            let (keep, mut cont) = self.trim_continuation(first);
            if !cont && first.is_empty() {
                continue;
            }
            let mut line = String::from(&first[..keep]);
            let mut map = OffsetMap::default();
            map.push(0, text_at);
            let mut empty_continuation = false;
            while cont && self.next < self.lines.len() {
                let (raw, raw_start) = self.raw_line(self.next)?;
                self.next += 1;
                if is_comment(raw) {
                    continue;
                }
                let piece = trim_newline(raw);
                if piece.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (keep, more) = self.trim_continuation(piece);
                map.push(line.len(), raw_start);
                line.push_str(&piece[..keep]);
                cont = more;
            }
            let end_line = self.next;
            if empty_continuation {
                let s = self.map.line_span(self.text, start_line);
                self.warnings.push(Warning {
                    message: format!("Empty continuation line found in: {}", line.trim()),
                    span: s,
                });
            }
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(LogicalLine {
                text: line,
                map,
                start_line,
                end_line,
                comments: std::mem::take(&mut self.comments),
            }));
        }
        Ok(None)
    }

    /// Reads a heredoc body up to its terminator line. `None` if the file ends
    /// first.
    pub fn read_heredoc(
        &mut self,
        name: &str,
        chomp: bool,
    ) -> Result<Option<HeredocBody>, ParseError> {
        let mut content = String::new();
        let body_start = self
            .lines
            .get(self.next)
            .map(|l| l.0)
            .unwrap_or(self.text.len());
        let mut body_end = body_start;
        while self.next < self.lines.len() {
            let (raw, raw_start) = self.raw_line(self.next)?;
            self.next += 1;
            let mut candidate = trim_newline(raw);
            if chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == name {
                return Ok(Some(HeredocBody {
                    content,
                    span: self.map.span(self.text, body_start, body_end),
                }));
            }
            content.push_str(raw);
            body_end = raw_start + raw.len();
        }
        Ok(None)
    }

    /// The 1-based number of the last line consumed.
    pub fn current_line(&self) -> usize {
        self.next
    }
}
