//! The TraceQL lexer (reference: `traceql.md` §2).
//!
//! Go-scanner-like tokens (identifiers, numbers, strings, raw strings, `//` and `/* */`
//! comments) plus TraceQL's own modes: durations (a number immediately followed by units),
//! attribute names after a scope prefix (`span.`, `.`, ...: a maximal run of attribute characters
//! with `"quoted"` segments), and `scope:` intrinsics.

use crate::ast::{AttrScope, IntrinsicScope, Span};
use crate::error::{Error, Phase, Result};

/// A reserved word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    True,
    False,
    Nil,
    Ok,
    Error,
    Unset,
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
    Duration,
    Name,
    Status,
    StatusMessage,
    Kind,
    RootName,
    RootServiceName,
    TraceDuration,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    Parent,
    ChildCount,
    RootService,
    Id,
    TraceId,
    SpanId,
    ParentId,
    TimeSinceStart,
    Version,
    Count,
    Avg,
    Min,
    Max,
    Sum,
    By,
    Coalesce,
    Select,
    Rate,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    AvgOverTime,
    SumOverTime,
    QuantileOverTime,
    HistogramOverTime,
    Compare,
    Topk,
    Bottomk,
    With,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("true", Kw::True),
    ("false", Kw::False),
    ("nil", Kw::Nil),
    ("ok", Kw::Ok),
    ("error", Kw::Error),
    ("unset", Kw::Unset),
    ("unspecified", Kw::Unspecified),
    ("internal", Kw::Internal),
    ("server", Kw::Server),
    ("client", Kw::Client),
    ("producer", Kw::Producer),
    ("consumer", Kw::Consumer),
    ("duration", Kw::Duration),
    ("name", Kw::Name),
    ("status", Kw::Status),
    ("statusMessage", Kw::StatusMessage),
    ("kind", Kw::Kind),
    ("rootName", Kw::RootName),
    ("rootServiceName", Kw::RootServiceName),
    ("traceDuration", Kw::TraceDuration),
    ("nestedSetLeft", Kw::NestedSetLeft),
    ("nestedSetRight", Kw::NestedSetRight),
    ("nestedSetParent", Kw::NestedSetParent),
    ("parent", Kw::Parent),
    ("childCount", Kw::ChildCount),
    ("rootService", Kw::RootService),
    ("id", Kw::Id),
    ("traceID", Kw::TraceId),
    ("spanID", Kw::SpanId),
    ("parentID", Kw::ParentId),
    ("timeSinceStart", Kw::TimeSinceStart),
    ("version", Kw::Version),
    ("count", Kw::Count),
    ("avg", Kw::Avg),
    ("min", Kw::Min),
    ("max", Kw::Max),
    ("sum", Kw::Sum),
    ("by", Kw::By),
    ("coalesce", Kw::Coalesce),
    ("select", Kw::Select),
    ("rate", Kw::Rate),
    ("count_over_time", Kw::CountOverTime),
    ("min_over_time", Kw::MinOverTime),
    ("max_over_time", Kw::MaxOverTime),
    ("avg_over_time", Kw::AvgOverTime),
    ("sum_over_time", Kw::SumOverTime),
    ("quantile_over_time", Kw::QuantileOverTime),
    ("histogram_over_time", Kw::HistogramOverTime),
    ("compare", Kw::Compare),
    ("topk", Kw::Topk),
    ("bottomk", Kw::Bottomk),
    ("with", Kw::With),
];

impl Kw {
    pub(crate) fn text(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(t, _)| t)
    }
}

/// Operators and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Re,
    NRe,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    Pipe,
    Desc,
    Anc,
    Tilde,
    NotChild,
    NotParent,
    NotDesc,
    NotAnc,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnc,
    UnionSibling,
}

const OPS: &[(&str, Op)] = &[
    ("{", Op::LBrace),
    ("}", Op::RBrace),
    ("(", Op::LParen),
    (")", Op::RParen),
    (",", Op::Comma),
    ("=", Op::Eq),
    ("!=", Op::Neq),
    ("<", Op::Lt),
    ("<=", Op::Lte),
    (">", Op::Gt),
    (">=", Op::Gte),
    ("=~", Op::Re),
    ("!~", Op::NRe),
    ("+", Op::Add),
    ("-", Op::Sub),
    ("*", Op::Mul),
    ("/", Op::Div),
    ("%", Op::Mod),
    ("^", Op::Pow),
    ("&&", Op::And),
    ("||", Op::Or),
    ("!", Op::Not),
    ("|", Op::Pipe),
    (">>", Op::Desc),
    ("<<", Op::Anc),
    ("~", Op::Tilde),
    ("!>", Op::NotChild),
    ("!<", Op::NotParent),
    ("!>>", Op::NotDesc),
    ("!<<", Op::NotAnc),
    ("&>", Op::UnionChild),
    ("&<", Op::UnionParent),
    ("&>>", Op::UnionDesc),
    ("&<<", Op::UnionAnc),
    ("&~", Op::UnionSibling),
];

impl Op {
    pub(crate) fn text(self) -> &'static str {
        OPS.iter().find(|(_, o)| *o == self).map_or("?", |(t, _)| t)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Op(Op),
    Kw(Kw),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    Str(String),
    /// A whole attribute reference: scope prefix and name.
    Attr {
        scope: AttrScope,
        parent: bool,
        name: String,
    },
    /// `trace:`, `span:`, `event:`, `link:`, `instrumentation:`.
    ScopeColon(IntrinsicScope),
    /// A word the grammar may accept in a few places (hint names) and reports otherwise.
    Ident(String),
    Eof,
}

impl Tok {
    /// How goyacc names the token in "unexpected ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Op(o) => o.text().to_string(),
            Tok::Kw(k) => k.text().to_string(),
            Tok::Int(_) => "INTEGER".into(),
            Tok::Float(_) => "FLOAT".into(),
            Tok::Duration(_) => "DURATION".into(),
            Tok::Str(_) => "STRING".into(),
            // The grammar sees the scope prefix first.
            Tok::Attr {
                scope,
                parent: true,
                ..
            } if *scope != AttrScope::None => "parent.".into(),
            Tok::Attr {
                scope,
                parent: false,
                ..
            } => scope.prefix().into(),
            Tok::Attr { .. } => "parent.".into(),
            Tok::ScopeColon(s) => format!("{}:", s.text()),
            Tok::Ident(_) => "IDENTIFIER".into(),
            Tok::Eof => "$end".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

/// Characters that end an unquoted attribute name.
fn ends_attribute(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

/// Splits the whole query into tokens (ending with `Eof`).
pub(crate) fn tokenize(q: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer {
        q,
        pos: 0,
        out: Vec::new(),
        hints: false,
    };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'a> {
    q: &'a str,
    pos: usize,
    out: Vec<Token>,
    /// After `with`: plain words are hint names.
    hints: bool,
}

impl Lexer<'_> {
    fn err(&self, phase: Phase, msg: impl Into<String>, start: usize, end: usize) -> Error {
        Error::new(phase, msg, Span::new(start, end), self.q)
    }

    fn peek(&self) -> Option<char> {
        self.q[self.pos..].chars().next()
    }

    fn peek_at(&self, off: usize) -> Option<char> {
        self.q.get(self.pos + off..).and_then(|s| s.chars().next())
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn skip_space_and_comments(&mut self) -> Result<()> {
        loop {
            let rest = &self.q[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(i) => self.pos += i + 4,
                    None => {
                        return Err(self.err(
                            Phase::Lex,
                            "comment not terminated",
                            self.pos,
                            self.q.len(),
                        ));
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn run(&mut self) -> Result<()> {
        loop {
            self.skip_space_and_comments()?;
            let start = self.pos;
            let Some(c) = self.peek() else {
                self.push(Tok::Eof, start);
                return Ok(());
            };
            if c.is_ascii_digit()
                || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()))
            {
                self.number()?;
            } else if c == '.' {
                self.pos += 1;
                self.attribute(AttrScope::None, false, start)?;
            } else if c == '"' || c == '`' {
                let s = self.string(c)?;
                self.push(Tok::Str(s), start);
            } else if c.is_alphabetic() || c == '_' {
                self.word()?;
            } else if c == '\'' {
                let end = self.q[start + 1..]
                    .find('\'')
                    .map_or(self.q.len(), |i| start + i + 2);
                return Err(self.err(
                    Phase::Lex,
                    format!("unknown identifier: {}", &self.q[start..end]),
                    start,
                    end,
                ));
            } else {
                self.operator(c)?;
            }
        }
    }

    fn operator(&mut self, c: char) -> Result<()> {
        let start = self.pos;
        let mut best: Option<(usize, Op)> = None;
        for len in 1..=3 {
            let Some(cand) = self.q.get(start..start + len) else {
                break;
            };
            match OPS.iter().find(|(t, _)| *t == cand) {
                Some((_, op)) => best = Some((len, *op)),
                // Longest match by growing one character while the result is still a token.
                None if OPS.iter().any(|(t, _)| t.starts_with(cand)) => continue,
                None => break,
            }
        }
        match best {
            Some((len, op)) => {
                self.pos += len;
                self.push(Tok::Op(op), start);
                Ok(())
            }
            None if c == '&' => {
                Err(self.err(Phase::Lex, "unknown identifier: &", start, start + 1))
            }
            None => {
                // Any other character reaches the grammar as an unexpected IDENTIFIER.
                self.pos += c.len_utf8();
                self.push(Tok::Ident(c.to_string()), start);
                Ok(())
            }
        }
    }

    fn word(&mut self) -> Result<()> {
        let start = self.pos;
        let len = self.q[start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.q.len() - start);
        let word = &self.q[start..start + len];
        self.pos += len;
        let next = self.peek();
        let attr_scope = match word {
            "span" => Some(AttrScope::Span),
            "resource" => Some(AttrScope::Resource),
            "event" => Some(AttrScope::Event),
            "link" => Some(AttrScope::Link),
            "instrumentation" => Some(AttrScope::Instrumentation),
            "parent" => Some(AttrScope::None),
            _ => None,
        };
        if next == Some('.')
            && let Some(scope) = attr_scope
        {
            self.pos += 1;
            if word == "parent" {
                // parent.span.x, parent.resource.x, or parent.x
                for (prefix, s) in [
                    ("span.", AttrScope::Span),
                    ("resource.", AttrScope::Resource),
                ] {
                    if self.q[self.pos..].starts_with(prefix) {
                        self.pos += prefix.len();
                        return self.attribute(s, true, start);
                    }
                }
                return self.attribute(AttrScope::None, true, start);
            }
            return self.attribute(scope, false, start);
        }
        if next == Some(':') {
            let scope = match word {
                "trace" => Some(IntrinsicScope::Trace),
                "span" => Some(IntrinsicScope::Span),
                "event" => Some(IntrinsicScope::Event),
                "link" => Some(IntrinsicScope::Link),
                "instrumentation" => Some(IntrinsicScope::Instrumentation),
                _ => None,
            };
            if let Some(s) = scope {
                self.pos += 1;
                self.push(Tok::ScopeColon(s), start);
                return Ok(());
            }
        }
        let tok = match word {
            "minInt" => Tok::Int(i64::MIN),
            "maxInt" => Tok::Int(i64::MAX),
            _ => match KEYWORDS.iter().find(|(t, _)| *t == word) {
                Some((_, Kw::With)) => {
                    self.hints = true;
                    Tok::Kw(Kw::With)
                }
                Some((_, kw)) => Tok::Kw(*kw),
                None => {
                    let prev = self.out.last().map(|t| &t.tok);
                    let after_scope = matches!(prev, Some(Tok::ScopeColon(_)));
                    let after_number =
                        matches!(prev, Some(Tok::Int(_) | Tok::Float(_) | Tok::Duration(_)));
                    let call = self.q[self.pos..].trim_start().starts_with('(');
                    if self.hints || after_scope || after_number || call {
                        Tok::Ident(word.to_string())
                    } else {
                        return Err(self.err(
                            Phase::Lex,
                            format!("unknown identifier: {word}"),
                            start,
                            self.pos,
                        ));
                    }
                }
            },
        };
        self.push(tok, start);
        Ok(())
    }

    /// An attribute name after its prefix (already consumed from `start`).
    fn attribute(&mut self, scope: AttrScope, parent: bool, start: usize) -> Result<()> {
        let mut name = String::new();
        let mut quoted = false;
        while let Some(c) = self.peek() {
            if c == '"' {
                quoted = true;
                let qstart = self.pos;
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => {
                            return Err(self.err(
                                Phase::Lex,
                                "unexpected EOF, expecting \"",
                                qstart,
                                self.pos,
                            ));
                        }
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') => {
                            match self.peek_at(1) {
                                Some(e @ ('"' | '\\')) => name.push(e),
                                _ => {
                                    return Err(self.err(
                                        Phase::Lex,
                                        "invalid escape sequence",
                                        self.pos,
                                        self.pos + 2,
                                    ));
                                }
                            }
                            self.pos += 2;
                        }
                        Some(ch) => {
                            name.push(ch);
                            self.pos += ch.len_utf8();
                        }
                    }
                }
            } else if ends_attribute(c) {
                break;
            } else {
                name.push(c);
                self.pos += c.len_utf8();
            }
        }
        if name.is_empty() && !quoted {
            return Err(self.err(
                Phase::Syntax,
                "syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER",
                self.pos,
                self.pos + 1,
            ));
        }
        self.push(
            Tok::Attr {
                scope,
                parent,
                name,
            },
            start,
        );
        Ok(())
    }

    fn number(&mut self) -> Result<()> {
        let start = self.pos;
        let rest = &self.q[start..];
        let b = rest.as_bytes();
        let mut i = 0;
        // Go scanner: a prefixed integer (0x, 0o, 0b) or digits with underscores.
        let prefixed =
            b.len() > 1 && b[0] == b'0' && matches!(b[1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B');
        if prefixed {
            i = 2;
            while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b'_') {
                i += 1;
            }
            let text = &rest[..i];
            self.pos += i;
            return Err(self.err(
                Phase::Lex,
                format!("strconv.Atoi: parsing {text:?}: invalid syntax"),
                start,
                self.pos,
            ));
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        let mut float = false;
        if i < b.len() && b[i] == b'.' {
            float = true;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                float = true;
                i = j;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        let text = &rest[..i];
        // A duration: the number immediately followed by a run of digits, '.' and unit letters.
        let unit_run = rest[i..]
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || "nsuµmhdwy".contains(*c)))
            .map_or(rest.len() - i, |(k, _)| k);
        if unit_run > 0
            && rest[i..].starts_with(|c: char| "nsuµmhdwy".contains(c))
            && let Some(ns) = parse_duration(&rest[..i + unit_run])
        {
            self.pos += i + unit_run;
            self.push(Tok::Duration(ns), start);
            return Ok(());
        }
        self.pos += i;
        let tok = if float {
            match text.replace('_', "").parse::<f64>() {
                Ok(f) if !text.contains('_') => Tok::Float(f),
                _ => {
                    return Err(self.err(
                        Phase::Lex,
                        format!("strconv.ParseFloat: parsing {text:?}: invalid syntax"),
                        start,
                        self.pos,
                    ));
                }
            }
        } else {
            if text.contains('_') {
                return Err(self.err(
                    Phase::Lex,
                    format!("strconv.Atoi: parsing {text:?}: invalid syntax"),
                    start,
                    self.pos,
                ));
            }
            if text.len() > 1
                && text.starts_with('0')
                && let Some(bad) = text.chars().find(|c| *c == '8' || *c == '9')
            {
                return Err(self.err(
                    Phase::Lex,
                    format!("invalid digit '{bad}' in octal literal"),
                    start,
                    self.pos,
                ));
            }
            match text.parse::<i64>() {
                Ok(v) => Tok::Int(v),
                Err(_) => {
                    return Err(self.err(
                        Phase::Lex,
                        format!("strconv.Atoi: parsing {text:?}: value out of range"),
                        start,
                        self.pos,
                    ));
                }
            }
        };
        self.push(tok, start);
        Ok(())
    }

    fn string(&mut self, quote: char) -> Result<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(Phase::Lex, "literal not terminated", start, self.pos));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if quote == '`' {
                out.push(c);
                continue;
            }
            match c {
                '\n' => {
                    return Err(self.err(Phase::Lex, "literal not terminated", start, self.pos));
                }
                '\\' => out.push(self.escape(start)?),
                _ => out.push(c),
            }
        }
    }

    /// A Go escape sequence after the backslash.
    fn escape(&mut self, start: usize) -> Result<char> {
        let esc_start = self.pos - 1;
        let bad = |lx: &Self| lx.err(Phase::Lex, "invalid char escape", esc_start, lx.pos);
        let Some(c) = self.peek() else {
            return Err(self.err(Phase::Lex, "literal not terminated", start, self.pos));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(bad(self)),
        };
        let text = self
            .q
            .get(self.pos..self.pos + digits)
            .ok_or_else(|| bad(self))?;
        let v = u32::from_str_radix(text, radix).map_err(|_| bad(self))?;
        self.pos += digits;
        char::from_u32(v).ok_or_else(|| bad(self))
    }
}

/// A duration literal in nanoseconds: Prometheus style (`1d12h`, integer amounts, `ms s m h d w
/// y`) first, then Go's `time.ParseDuration` (`1.5s`, `1ms500us`, units `ns us µs ms s m h`).
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    prometheus_duration(s).or_else(|| go_duration(s))
}

fn prometheus_duration(s: &str) -> Option<i64> {
    const UNITS: &[(&str, i64)] = &[
        ("y", 365 * 24 * 3_600_000_000_000),
        ("w", 7 * 24 * 3_600_000_000_000),
        ("d", 24 * 3_600_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let ulen = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..ulen];
        let rank = UNITS.iter().position(|(u, _)| *u == unit)?;
        // Units must go from larger to smaller, each at most once.
        if last_rank != usize::MAX && rank <= last_rank {
            return None;
        }
        last_rank = rank;
        total = total.checked_add(n.checked_mul(UNITS[rank].1)?)?;
        rest = &rest[ulen..];
    }
    Some(total)
}

fn go_duration(s: &str) -> Option<i64> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("μs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if s.is_empty() || s == "0" {
        return if s == "0" { Some(0) } else { None };
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let num = &rest[..num_len];
        if num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let ulen = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..ulen];
        let (_, mult) = UNITS.iter().find(|(u, _)| *u == unit)?;
        total += n * mult;
        rest = &rest[ulen..];
    }
    (total <= i64::MAX as f64).then_some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(q: &str) -> Vec<Tok> {
        tokenize(q).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1d12h"), Some(36 * 3_600_000_000_000));
        assert_eq!(parse_duration("1ms500us"), Some(1_500_000));
        assert_eq!(
            parse_duration("2h45m30.5s"),
            Some(((2 * 3600 + 45 * 60) as i64) * 1_000_000_000 + 30_500_000_000)
        );
        assert_eq!(parse_duration("1.5d"), None);
        assert_eq!(parse_duration("1h30"), None);
        assert_eq!(toks("100ms"), vec![Tok::Duration(100_000_000), Tok::Eof]);
        assert_eq!(toks(".24h"), vec![Tok::Duration(864_000_000_000), Tok::Eof]);
    }

    #[test]
    fn attributes_and_operators() {
        assert_eq!(
            toks("{span.a!=nil}"),
            vec![
                Tok::Op(Op::LBrace),
                Tok::Attr {
                    scope: AttrScope::Span,
                    parent: false,
                    name: "a".into()
                },
                Tok::Op(Op::Neq),
                Tok::Kw(Kw::Nil),
                Tok::Op(Op::RBrace),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("span.attribute.\"name with space\".x")[0],
            Tok::Attr {
                scope: AttrScope::Span,
                parent: false,
                name: "attribute.name with space.x".into()
            }
        );
        assert_eq!(
            toks("!>> &~ !~")[..3],
            [
                Tok::Op(Op::NotDesc),
                Tok::Op(Op::UnionSibling),
                Tok::Op(Op::NRe)
            ]
        );
    }
}
