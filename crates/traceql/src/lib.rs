//! TraceQL, the language of Tempo's search and metrics queries (reference: `traceql.md`),
//! without any I/O.
//!
//! [`parse`] turns text into a [`ast::Query`] whose every node carries its byte span, folds
//! constant operations as Tempo does, and validates types and semantic rules. A rejection is an
//! [`Error`] with its [`Phase`] and a line and column that point at the mistake:
//! `parse error at line 1, col 24: syntax error: unexpected }`. The tree prints back as
//! canonical TraceQL (`Display`), and `parse(print(q))` gives the same tree. [`visit`] answers
//! what the engine needs to know about a query.
//!
//! Invariants: parsing never panics and never recurses deeper than [`parser::MAX_DEPTH`] levels
//! of nesting, whatever the input.

pub mod ast;
pub mod batch;
mod error;
pub mod eval;
mod fold;
mod lexer;
pub mod metrics;
pub mod parser;
mod printer;
pub mod spans;
mod validate;
pub mod visit;

pub use error::{Error, Phase, Result};

/// Parses, folds and validates a query.
pub fn parse(query: &str) -> Result<ast::Query> {
    let q = parse_unvalidated(query)?;
    validate::Validator { q: query }.query(&q)?;
    Ok(q)
}

/// Parses and folds without validating (for tools that want the tree of an invalid query).
pub fn parse_unvalidated(query: &str) -> Result<ast::Query> {
    parser::parse_query(query)
}
