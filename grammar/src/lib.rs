//! The Dockerfile language: a pest grammar, a typed AST with source spans, and
//! docker's variable expansion.

pub mod shell;
