//! TraceQL errors: what went wrong, in which phase, and where in the query.

use std::fmt;

use crate::ast::Span;

/// The phase that rejected a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    /// The lexer: unknown characters or words, bad literals.
    Lex,
    /// The grammar.
    Syntax,
    /// Constant folding while parsing (division by zero, durations in scalar arithmetic).
    Fold,
    /// Type and semantic checks.
    Validate,
    /// Valid TraceQL that Tempo (and vivace) does not support yet.
    Unsupported,
}

/// A rejected query. `span` is the byte range of the offending part of the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub phase: Phase,
    pub message: String,
    pub span: Span,
    /// 1-based line and column (in characters) of `span.start`.
    pub line: usize,
    pub col: usize,
}

impl Error {
    pub(crate) fn new(phase: Phase, message: impl Into<String>, span: Span, query: &str) -> Error {
        let (line, col) = line_col(query, span.start);
        Error {
            phase,
            message: message.into(),
            span,
            line,
            col,
        }
    }

    /// The error followed by the query line it points at and a caret under the spot, for
    /// terminals.
    pub fn render(&self, query: &str) -> String {
        let line_text = query.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let width =
            (self.span.end.saturating_sub(self.span.start)).clamp(1, line_text.len().max(1));
        format!(
            "{self}\n  {line_text}\n  {}{}",
            " ".repeat(self.col.saturating_sub(1)),
            "^".repeat(width.min(80))
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            Phase::Lex | Phase::Syntax | Phase::Fold => {
                write!(
                    f,
                    "parse error at line {}, col {}: {}",
                    self.line, self.col, self.message
                )
            }
            Phase::Validate | Phase::Unsupported => {
                write!(
                    f,
                    "{} (at line {}, col {})",
                    self.message, self.line, self.col
                )
            }
        }
    }
}

/// 1-based line and character column of byte offset `at`.
pub(crate) fn line_col(query: &str, at: usize) -> (usize, usize) {
    let at = at.min(query.len());
    let before = &query[..floor_char_boundary(query, at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub type Result<T> = std::result::Result<T, Error>;
