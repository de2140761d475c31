//! Parse errors that say where and why, with the offending line and a caret.

use crate::span::Span;
use std::fmt;

/// A Dockerfile that cannot be parsed. The details are boxed so that results
/// stay small on the happy path; fields are reached through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError(Box<ErrorDetails>);

/// What a [`ParseError`] knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetails {
    /// What is wrong, in docker's words where docker has words for it.
    pub message: String,
    /// Where: the smallest piece of source that shows the problem.
    pub span: Span,
    /// The physical source line of `span.start_line`.
    pub line_text: String,
    /// A hint, such as the nearest instruction name for a misspelling.
    pub help: Option<String>,
    /// The file name, when the caller knows it.
    pub file: Option<String>,
}

impl std::ops::Deref for ParseError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for ParseError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl ParseError {
    pub fn new(message: impl Into<String>, span: Span, line_text: impl Into<String>) -> Self {
        ParseError(Box::new(ErrorDetails {
            message: message.into(),
            span,
            line_text: line_text.into(),
            help: None,
            file: None,
        }))
    }

    /// Names the file the error is in.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("Dockerfile");
        let (line, col) = (self.span.start_line, self.span.start_column);
        writeln!(f, "{file}:{line}:{col}: {}", self.message)?;
        let gutter = line.to_string().len();
        let shown: String = self
            .line_text
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{line} | {shown}")?;
        let width = if self.span.end_line == self.span.start_line {
            self.span.end_column.saturating_sub(col).max(1)
        } else {
            shown.chars().count().saturating_sub(col - 1).max(1)
        };
        write!(
            f,
            "{:gutter$} | {:pad$}{}",
            "",
            "",
            "^".repeat(width),
            pad = col - 1
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n{:gutter$} = help: {help}", "")?;
        }
        Ok(())
    }
}
