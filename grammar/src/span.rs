//! Source locations. Offsets are byte offsets into the Dockerfile's text;
//! lines and columns are 1-based, columns counted in characters.

use serde::Serialize;

/// A range of the source text with its start and end positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub start_line: usize,
    pub start_column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

/// Turns byte offsets into line/column positions.
#[derive(Debug, Clone)]
pub struct SourceMap {
    line_starts: Vec<usize>,
    text_len: usize,
}

impl SourceMap {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            line_starts,
            text_len: text.len(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line, column + 1)
    }

    pub fn span(&self, text: &str, start: usize, end: usize) -> Span {
        let (start_line, start_column) = self.position(text, start);
        let (end_line, end_column) = self.position(text, end.max(start));
        Span {
            start,
            end: end.max(start),
            start_line,
            start_column,
            end_line,
            end_column,
        }
    }

    /// The span of the whole physical line `line` (1-based), without its newline.
    pub fn line_span(&self, text: &str, line: usize) -> Span {
        let line = line.clamp(1, self.line_starts.len());
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map(|s| s - 1)
            .unwrap_or(self.text_len);
        self.span(text, start, end)
    }

    /// The text of physical line `line` (1-based), without line ending.
    pub fn line_text<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let s = self.line_span(text, line);
        text.get(s.start..s.end)
            .unwrap_or("")
            .trim_end_matches(['\r', '\n'])
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

/// Maps offsets in a logical line (continuation lines joined) back to the
/// source: each kept piece of a physical line is one segment.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    /// (offset in the logical line, offset in the source), sorted.
    segments: Vec<(usize, usize)>,
}

impl OffsetMap {
    pub fn push(&mut self, logical: usize, source: usize) {
        self.segments.push((logical, source));
    }

    pub fn to_source(&self, logical: usize) -> usize {
        let i = self.segments.partition_point(|&(l, _)| l <= logical);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(&(l, s)) => s + (logical - l),
            None => self.segments.first().map(|&(_, s)| s).unwrap_or(0),
        }
    }

    /// The source range of a logical range; the end of a range that stops at
    /// a joint maps to the end of the earlier piece.
    pub fn range_to_source(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.to_source(start);
        let e = if end > start {
            self.to_source(end - 1) + 1
        } else {
            s
        };
        (s, e.max(s))
    }
}
