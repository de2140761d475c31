//! The Dockerfile language: a pest grammar (`dockerfile.pest`), a typed AST
//! whose every node carries its source span, and docker's variable expansion.
//!
//! Parsing runs in two stages, as BuildKit's does:
//! 1. [`parse_syntax`]: lines → [`SyntaxTree`] (keyword, flags, arguments split
//!    by the instruction's rules). [`SyntaxTree::dump`] prints BuildKit's
//!    parser-test format.
//! 2. [`parse`]: the syntax tree → [`Dockerfile`], with every instruction typed
//!    and its flags checked.

pub mod ast;
mod dump;
pub mod error;
mod scanner;
pub mod shell;
pub mod span;
mod suggest;
mod syntax;
mod typed;

pub use ast::*;
pub use dump::go_quote;
pub use error::{ErrorDetails, ParseError};
pub use scanner::Warning;
pub use span::Span;
pub use syntax::{
    heredocs_in_line, parse_heredoc_marker, parse_syntax, Args, Directive, HeredocMarker,
    SyntaxNode, SyntaxTree,
};
pub use typed::{expand_mount, parse_mount};

/// Parses Dockerfile bytes into the typed AST. Bytes that are not UTF-8 are
/// replaced, as a text editor would show them.
pub fn parse_bytes(source: &[u8]) -> Result<Dockerfile, ParseError> {
    parse(&String::from_utf8_lossy(source))
}

/// Parses Dockerfile text into the typed AST.
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    let tree = parse_syntax(source)?;
    typed::lower(source, tree)
}
