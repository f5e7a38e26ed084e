//! Rule conditions for custom exception policies (the `when = "..."` strings of a
//! policy TOML file).
//!
//! This module owns the whole life of such a condition: lexing and parsing the
//! source text, type-checking it against a [`Schema`] of known fields once, at
//! policy-load time (so a typo is a precise, human error before any scan starts),
//! compiling it into a compact typed tree whose field references are dense
//! [`FieldId`]s, and evaluating it with SQL-like three-valued logic against any
//! caller-supplied [`Record`]. Evaluation never allocates, never looks anything up
//! by name, and never panics; neither does compilation, on any input.
//!
//! It must not depend on anything but `std`, `rust_decimal` and `thiserror`: no
//! other module of the crate, no domain types, no I/O, no logging. Callers map
//! their own data onto field ids by implementing [`Record`].
//!
//! # Language
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := add ( ("=="|"!="|"<"|"<="|">"|">=") add
//!                | "in" list | "not" "in" list )?          -- never chained
//! add     := mul (("+"|"-") mul)*
//! mul     := unary (("*"|"/") unary)*
//! unary   := "-" unary | primary
//! primary := NUMBER | STRING | "true" | "false" | "null"
//!          | PATH | NAME "(" (expr ("," expr)*)? ")" | "(" expr ")"
//! list    := "[" (literal ("," literal)* ","?)? "]"     -- literal: ["-"] NUMBER | STRING | true | false
//! PATH    := NAME ("." NAME)*      NAME := [A-Za-z_][A-Za-z0-9_]*
//! STRING  := '...' | "..."  with escapes \\ \' \" \n \t
//! ```
//!
//! Functions: `abs(n)`, `min(n, n)`, `max(n, n)`, `is_null(x)`, `lower(s)`,
//! `contains(s, sub)`, `starts_with(s, prefix)`.
//!
//! Every value may be null (missing). Comparisons, arithmetic and functions other
//! than `is_null` yield null when an operand is null; division by zero and decimal
//! overflow yield null too. `and`/`or`/`not` use three-valued logic
//! (`false and null` is `false`, `true or null` is `true`). A rule fires only when
//! the whole condition is exactly `true`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// Longest accepted source text, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;

/// Deepest accepted nesting (parentheses, operators, function calls), in levels.
pub const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------
// Schema, field ids, values, records
// ---------------------------------------------------------------------------

/// The static type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A [`Decimal`].
    Number,
    /// A string.
    String,
    /// A boolean.
    Bool,
}

impl FieldType {
    fn noun(self) -> &'static str {
        match self {
            FieldType::Number => "a number",
            FieldType::String => "a string",
            FieldType::Bool => "a bool",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Number => "number",
            FieldType::String => "string",
            FieldType::Bool => "bool",
        })
    }
}

/// Dense id of a schema field: its position in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    /// The id as a `usize`, handy for indexing the caller's own per-field arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The fields an expression may reference, with their types.
///
/// Ids are assigned densely in insertion order. Declaring the same path again
/// replaces its type and keeps its id. A schema holds at most 65,536 fields;
/// further declarations are ignored.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    fields: Vec<(Box<str>, FieldType)>,
    index: HashMap<Box<str>, FieldId>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `path` (e.g. `order.amount_untaxed`) with type `ty`.
    #[must_use]
    pub fn field(mut self, path: &str, ty: FieldType) -> Self {
        if let Some(id) = self.index.get(path).copied() {
            if let Some(slot) = self.fields.get_mut(id.index()) {
                slot.1 = ty;
            }
            return self;
        }
        let Ok(raw) = u16::try_from(self.fields.len()) else {
            return self;
        };
        self.fields.push((path.into(), ty));
        self.index.insert(path.into(), FieldId(raw));
        self
    }

    /// The id of `path`, if declared.
    pub fn id(&self, path: &str) -> Option<FieldId> {
        self.index.get(path).copied()
    }

    /// All fields in id order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, FieldType)> + '_ {
        self.fields.iter().map(|(path, ty)| (&**path, *ty))
    }

    /// The path of `id`, if it belongs to this schema.
    pub fn name(&self, id: FieldId) -> Option<&str> {
        self.fields.get(id.index()).map(|(path, _)| &**path)
    }

    /// The type of `id`, if it belongs to this schema.
    pub fn field_type(&self, id: FieldId) -> Option<FieldType> {
        self.fields.get(id.index()).map(|(_, ty)| *ty)
    }

    /// Number of declared fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when no field is declared.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// A run-time field value. `Null` means missing.
///
/// A value whose variant does not match the field's declared type is treated as
/// null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Missing value.
    Null,
    /// A number.
    Num(Decimal),
    /// A string, borrowed from the record.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
}

impl From<Decimal> for Value<'_> {
    fn from(d: Decimal) -> Self {
        Value::Num(d)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Read access to one record (an order line, say), implemented by the caller.
pub trait Record {
    /// The value of `field`; return [`Value::Null`] for anything unknown.
    fn get(&self, field: FieldId) -> Value<'_>;
}

/// A slice indexed by [`FieldId::index`]; ids past the end read as null.
impl<'v> Record for [Value<'v>] {
    fn get(&self, field: FieldId) -> Value<'_> {
        <[Value<'v>]>::get(self, field.index())
            .copied()
            .unwrap_or(Value::Null)
    }
}

/// A vector indexed by [`FieldId::index`]; ids past the end read as null.
impl Record for Vec<Value<'_>> {
    fn get(&self, field: FieldId) -> Value<'_> {
        Record::get(self.as_slice(), field)
    }
}

/// A record with no values, used for constant folding.
struct NullRecord;

impl Record for NullRecord {
    fn get(&self, _field: FieldId) -> Value<'_> {
        Value::Null
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A compile error with its position in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", location(.line, .column))]
pub struct ExprError {
    /// What was expected and what was found.
    pub message: String,
    /// Byte offset into the source.
    pub offset: usize,
    /// 1-based line (only shown when the source spans several lines).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

fn location(line: &usize, column: &usize) -> String {
    if *line == 1 {
        format!("at column {column}")
    } else {
        format!("at line {line}, column {column}")
    }
}

impl ExprError {
    fn new(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = locate(src, offset);
        ExprError {
            message: message.into(),
            offset,
            line,
            column,
        }
    }
}

fn locate(src: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in src.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

fn too_deep() -> String {
    format!("the expression is nested too deeply (more than {MAX_DEPTH} levels); simplify it")
}

/// A short, single-line quote of `src[start..end]` for messages.
fn snippet(src: &str, start: usize, end: usize) -> String {
    let text = src.get(start..end).unwrap_or("");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 40 {
        let mut short: String = flat.chars().take(37).collect();
        short.push_str("...");
        short
    } else {
        flat
    }
}

const KEYWORDS: [&str; 7] = ["and", "or", "not", "in", "true", "false", "null"];

/// `Some("and")` for `AND`, `And`, ...: keywords are lowercase.
fn keyword_hint(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .find(|kw| word.eq_ignore_ascii_case(kw) && word != **kw)
        .copied()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = i;
        let mut left = i + 1;
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (cell, &cb) in row.iter_mut().skip(1).zip(&b) {
            let up = *cell;
            let value = (diag + usize::from(ca != cb)).min(up + 1).min(left + 1);
            diag = up;
            *cell = value;
            left = value;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The closest candidate when it is close enough to be a plausible typo.
fn suggest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let mut best: Option<(usize, &'c str)> = None;
    for candidate in candidates {
        let d = edit_distance(name, candidate);
        if best.is_none_or(|(best_d, _)| d < best_d) {
            best = Some((d, candidate));
        }
    }
    let (d, candidate) = best?;
    let longest = name.chars().count().max(candidate.chars().count());
    (d <= (longest / 3).max(1)).then_some(candidate)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Decimal),
    Str(String),
    /// A name or dotted path; its text is the token's source span.
    Ident,
    And,
    Or,
    Not,
    In,
    True,
    False,
    Null,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn scan_while(bytes: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while bytes.get(i).is_some_and(|b| pred(*b)) {
        i += 1;
    }
    i
}

fn slice(src: &str, start: usize, end: usize) -> &str {
    src.get(start..end).unwrap_or("")
}

fn describe_char_at(src: &str, at: usize) -> String {
    match src.get(at..).and_then(|rest| rest.chars().next()) {
        None => "the end of the expression".to_owned(),
        Some(c) if c.is_whitespace() => "a space".to_owned(),
        Some(c) => format!("`{c}`"),
    }
}

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "true" => Tok::True,
        "false" => Tok::False,
        "null" => Tok::Null,
        _ => return None,
    })
}

fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let next = bytes.get(i + 1).copied();
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' => {
                i = scan_while(bytes, i, |c| c.is_ascii_digit());
                if bytes.get(i) == Some(&b'.') {
                    if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        i = scan_while(bytes, i + 1, |c| c.is_ascii_digit());
                    } else {
                        return Err(ExprError::new(
                            src,
                            i + 1,
                            format!(
                                "expected digits after the decimal point in `{}`, found {}",
                                slice(src, start, i + 1),
                                describe_char_at(src, i + 1)
                            ),
                        ));
                    }
                }
                if bytes.get(i).is_some_and(|c| is_ident_char(*c)) {
                    let end = scan_while(bytes, i, is_ident_char);
                    return Err(ExprError::new(
                        src,
                        start,
                        format!(
                            "invalid number `{}`; names cannot start with a digit",
                            slice(src, start, end)
                        ),
                    ));
                }
                let text = slice(src, start, i);
                match Decimal::from_str(text) {
                    Ok(d) => Tok::Num(d),
                    Err(_) => {
                        return Err(ExprError::new(
                            src,
                            start,
                            format!(
                                "number `{}` does not fit in a decimal (at most 28 significant digits)",
                                snippet(src, start, i)
                            ),
                        ));
                    }
                }
            }
            c if is_ident_start(c) => {
                i = scan_while(bytes, i + 1, is_ident_char);
                let mut dotted = false;
                while bytes.get(i) == Some(&b'.') {
                    if bytes.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
                        i = scan_while(bytes, i + 2, is_ident_char);
                        dotted = true;
                    } else {
                        return Err(ExprError::new(
                            src,
                            i + 1,
                            format!(
                                "expected a field name after `{}.`, found {}",
                                snippet(src, start, i),
                                describe_char_at(src, i + 1)
                            ),
                        ));
                    }
                }
                if dotted {
                    Tok::Ident
                } else {
                    keyword(slice(src, start, i)).unwrap_or(Tok::Ident)
                }
            }
            b'\'' | b'"' => {
                let (text, end) = lex_string(src, start, char::from(b))?;
                i = end;
                Tok::Str(text)
            }
            b'(' | b')' | b'[' | b']' | b',' | b'+' | b'-' | b'*' | b'/' => {
                i += 1;
                match b {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b',' => Tok::Comma,
                    b'+' => Tok::Plus,
                    b'-' => Tok::Minus,
                    b'*' => Tok::Star,
                    _ => Tok::Slash,
                }
            }
            b'=' if next == Some(b'=') => {
                i += 2;
                Tok::Eq
            }
            b'=' => {
                return Err(ExprError::new(
                    src,
                    start,
                    "found `=`; use `==` to compare values",
                ));
            }
            b'!' if next == Some(b'=') => {
                i += 2;
                Tok::Ne
            }
            b'!' => {
                return Err(ExprError::new(
                    src,
                    start,
                    "found `!`; use `not` to negate a condition",
                ));
            }
            b'<' if next == Some(b'=') => {
                i += 2;
                Tok::Le
            }
            b'<' if next == Some(b'>') => {
                return Err(ExprError::new(
                    src,
                    start,
                    "found `<>`; use `!=` for \"not equal\"",
                ));
            }
            b'<' => {
                i += 1;
                Tok::Lt
            }
            b'>' if next == Some(b'=') => {
                i += 2;
                Tok::Ge
            }
            b'>' => {
                i += 1;
                Tok::Gt
            }
            b'&' => {
                return Err(ExprError::new(
                    src,
                    start,
                    "found `&`; use `and` to combine conditions",
                ));
            }
            b'|' => {
                return Err(ExprError::new(
                    src,
                    start,
                    "found `|`; use `or` to combine conditions",
                ));
            }
            _ => {
                return Err(ExprError::new(
                    src,
                    start,
                    format!("unexpected character {}", describe_char_at(src, start)),
                ));
            }
        };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// Lexes the string literal whose opening `quote` is at `start`; returns its
/// value and the offset just past the closing quote.
fn lex_string(src: &str, start: usize, quote: char) -> Result<(String, usize), ExprError> {
    let body_start = start + 1;
    let body = src.get(body_start..).unwrap_or("");
    let mut text = String::new();
    let mut chars = body.char_indices();
    while let Some((j, c)) = chars.next() {
        if c == quote {
            return Ok((text, body_start + j + 1));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '\\')) => text.push('\\'),
            Some((_, '\'')) => text.push('\''),
            Some((_, '"')) => text.push('"'),
            Some((_, 'n')) => text.push('\n'),
            Some((_, 't')) => text.push('\t'),
            Some((_, other)) => {
                return Err(ExprError::new(
                    src,
                    body_start + j,
                    format!(
                        "unknown escape `\\{other}` in string; use `\\\\`, `\\'`, `\\\"`, `\\n` or `\\t`"
                    ),
                ));
            }
            None => break,
        }
    }
    Err(ExprError::new(
        src,
        start,
        format!("unterminated string: no closing {quote} for the string that starts here"),
    ))
}

/// How a token reads in "found ..." messages.
fn describe(src: &str, token: &Token) -> String {
    let text = snippet(src, token.start, token.end);
    match &token.tok {
        Tok::Eof => "the end of the expression".to_owned(),
        Tok::Num(_) => format!("number `{text}`"),
        Tok::Str(_) => format!("string {text}"),
        Tok::Ident => match keyword_hint(&text) {
            Some(kw) => format!("`{text}` (keywords are lowercase: write `{kw}`)"),
            None => format!("`{text}`"),
        },
        Tok::And | Tok::Or | Tok::Not | Tok::In | Tok::True | Tok::False | Tok::Null => {
            format!("keyword `{text}`")
        }
        _ => format!("`{text}`"),
    }
}

// ---------------------------------------------------------------------------
// Parser: tokens -> untyped syntax tree with source spans
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn from_tok(tok: &Tok) -> Option<CmpOp> {
        Some(match tok {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn test(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }

    fn apply(self, a: Decimal, b: Decimal) -> Option<Decimal> {
        match self {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => a.checked_div(b),
        }
    }
}

#[derive(Debug)]
struct Ast {
    kind: AstKind,
    start: usize,
    end: usize,
    depth: usize,
}

#[derive(Debug)]
enum AstKind {
    Num(Decimal),
    Str(String),
    Bool(bool),
    Null,
    Field(String),
    Not(Box<Ast>),
    Neg(Box<Ast>),
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Cmp {
        op: CmpOp,
        op_at: usize,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
    },
    In {
        negated: bool,
        lhs: Box<Ast>,
        items: Vec<Ast>,
    },
    Arith {
        op: ArithOp,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
    },
    Call {
        name: String,
        args: Vec<Ast>,
    },
}

impl AstKind {
    fn child_depth(&self) -> usize {
        fn max_of(items: &[Ast]) -> usize {
            items.iter().map(|a| a.depth).max().unwrap_or(0)
        }
        match self {
            AstKind::Num(_)
            | AstKind::Str(_)
            | AstKind::Bool(_)
            | AstKind::Null
            | AstKind::Field(_) => 0,
            AstKind::Not(x) | AstKind::Neg(x) => x.depth,
            AstKind::And(xs) | AstKind::Or(xs) => max_of(xs),
            AstKind::Cmp { lhs, rhs, .. } | AstKind::Arith { lhs, rhs, .. } => {
                lhs.depth.max(rhs.depth)
            }
            AstKind::In { lhs, items, .. } => lhs.depth.max(max_of(items)),
            AstKind::Call { args, .. } => max_of(args),
        }
    }

    fn literal_noun(&self) -> &'static str {
        match self {
            AstKind::Num(_) => "a number",
            AstKind::Str(_) => "a string",
            AstKind::Bool(_) => "a bool",
            _ => "null",
        }
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    nesting: usize,
    eof: Token,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str, toks: Vec<Token>) -> Self {
        Parser {
            src,
            toks,
            pos: 0,
            nesting: 0,
            eof: Token {
                tok: Tok::Eof,
                start: src.len(),
                end: src.len(),
            },
        }
    }

    fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.eof)
    }

    fn peek_tok(&self) -> &Tok {
        &self.peek().tok
    }

    fn peek2_tok(&self) -> &Tok {
        self.toks
            .get(self.pos + 1)
            .map_or(&self.eof.tok, |t| &t.tok)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        token
    }

    fn err(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, at, message)
    }

    fn found(&self) -> String {
        describe(self.src, self.peek())
    }

    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            Err(self.err(at, too_deep()))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn node(&self, kind: AstKind, start: usize, end: usize, at: usize) -> Result<Ast, ExprError> {
        let depth = 1 + kind.child_depth();
        if depth > MAX_DEPTH {
            return Err(self.err(at, too_deep()));
        }
        Ok(Ast {
            kind,
            start,
            end,
            depth,
        })
    }

    fn parse_root(&mut self) -> Result<Ast, ExprError> {
        if matches!(self.peek_tok(), Tok::Eof) {
            return Err(self.err(
                0,
                "the expression is empty; expected a condition such as `order.amount_untaxed > 1000`",
            ));
        }
        let ast = self.parse_or()?;
        let next = self.peek();
        match next.tok {
            Tok::Eof => Ok(ast),
            Tok::RParen => Err(self.err(next.start, "found `)` without a matching `(`")),
            _ => Err(self.err(
                next.start,
                format!(
                    "expected an operator (such as `and`, `or`, `==`, `<`, `in` or `+`) or the end of the expression, found {}",
                    self.found()
                ),
            )),
        }
    }

    /// Parses `a op b op c ...` for `and`/`or` into one flattened n-ary node.
    fn parse_chain(
        &mut self,
        is_or: bool,
        operand: fn(&mut Self) -> Result<Ast, ExprError>,
    ) -> Result<Ast, ExprError> {
        let op = if is_or { Tok::Or } else { Tok::And };
        let first = operand(self)?;
        if *self.peek_tok() != op {
            return Ok(first);
        }
        let (start, mut end, mut op_at) = (first.start, first.end, first.start);
        let mut items = Vec::new();
        push_flat(&mut items, first, is_or);
        while *self.peek_tok() == op {
            op_at = self.bump().start;
            let next = operand(self)?;
            end = next.end;
            push_flat(&mut items, next, is_or);
        }
        let kind = if is_or {
            AstKind::Or(items)
        } else {
            AstKind::And(items)
        };
        self.node(kind, start, end, op_at)
    }

    fn parse_or(&mut self) -> Result<Ast, ExprError> {
        self.enter(self.peek().start)?;
        let ast = self.parse_chain(true, Self::parse_and)?;
        self.leave();
        Ok(ast)
    }

    fn parse_and(&mut self) -> Result<Ast, ExprError> {
        self.parse_chain(false, Self::parse_not)
    }

    fn parse_not(&mut self) -> Result<Ast, ExprError> {
        if !matches!(self.peek_tok(), Tok::Not) {
            return self.parse_cmp();
        }
        let not = self.bump();
        self.enter(not.start)?;
        let inner = self.parse_not()?;
        self.leave();
        let end = inner.end;
        self.node(AstKind::Not(Box::new(inner)), not.start, end, not.start)
    }

    fn at_comparison(&self) -> bool {
        let tok = self.peek_tok();
        CmpOp::from_tok(tok).is_some()
            || matches!(tok, Tok::In)
            || (matches!(tok, Tok::Not) && matches!(self.peek2_tok(), Tok::In))
    }

    fn parse_cmp(&mut self) -> Result<Ast, ExprError> {
        let lhs = self.parse_add()?;
        if !self.at_comparison() {
            return Ok(lhs);
        }
        let start = lhs.start;
        let op_token = self.bump();
        let op_at = op_token.start;
        let ast = if let Some(op) = CmpOp::from_tok(&op_token.tok) {
            let rhs = self.parse_add()?;
            let end = rhs.end;
            let kind = AstKind::Cmp {
                op,
                op_at,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
            self.node(kind, start, end, op_at)?
        } else {
            let negated = matches!(op_token.tok, Tok::Not);
            if negated {
                self.bump();
            }
            let (items, end) = self.parse_list(negated)?;
            let kind = AstKind::In {
                negated,
                lhs: Box::new(lhs),
                items,
            };
            self.node(kind, start, end, op_at)?
        };
        if self.at_comparison() {
            return Err(self.err(
                self.peek().start,
                format!(
                    "comparisons cannot be chained: found {} after a complete comparison; combine them with `and`, e.g. `a < b and b < c`",
                    self.found()
                ),
            ));
        }
        Ok(ast)
    }

    fn parse_add(&mut self) -> Result<Ast, ExprError> {
        let mut lhs = self.parse_mul()?;
        loop {
            let op = match self.peek_tok() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => return Ok(lhs),
            };
            lhs = self.parse_arith_rhs(lhs, op, Self::parse_mul)?;
        }
    }

    fn parse_mul(&mut self) -> Result<Ast, ExprError> {
        let mut lhs = self.parse_unary()?;
        loop {
            let op = match self.peek_tok() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                _ => return Ok(lhs),
            };
            lhs = self.parse_arith_rhs(lhs, op, Self::parse_unary)?;
        }
    }

    fn parse_arith_rhs(
        &mut self,
        lhs: Ast,
        op: ArithOp,
        operand: fn(&mut Self) -> Result<Ast, ExprError>,
    ) -> Result<Ast, ExprError> {
        let op_at = self.bump().start;
        let rhs = operand(self)?;
        let (start, end) = (lhs.start, rhs.end);
        let kind = AstKind::Arith {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        self.node(kind, start, end, op_at)
    }

    fn parse_unary(&mut self) -> Result<Ast, ExprError> {
        if !matches!(self.peek_tok(), Tok::Minus) {
            return self.parse_primary();
        }
        let minus = self.bump();
        self.enter(minus.start)?;
        let inner = self.parse_unary()?;
        self.leave();
        let end = inner.end;
        self.node(AstKind::Neg(Box::new(inner)), minus.start, end, minus.start)
    }

    fn parse_primary(&mut self) -> Result<Ast, ExprError> {
        let found = self.found();
        let token = self.bump();
        let (start, end) = (token.start, token.end);
        let kind = match token.tok {
            Tok::Num(d) => AstKind::Num(d),
            Tok::Str(s) => AstKind::Str(s),
            Tok::True => AstKind::Bool(true),
            Tok::False => AstKind::Bool(false),
            Tok::Null => AstKind::Null,
            Tok::Ident if matches!(self.peek_tok(), Tok::LParen) => {
                return self.parse_call(token);
            }
            Tok::Ident => AstKind::Field(slice(self.src, start, end).to_owned()),
            Tok::LParen => {
                let inner = self.parse_or()?;
                if !matches!(self.peek_tok(), Tok::RParen) {
                    return Err(self.err(
                        self.peek().start,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            locate(self.src, start).1,
                            self.found()
                        ),
                    ));
                }
                let close = self.bump();
                return Ok(Ast {
                    start,
                    end: close.end,
                    ..inner
                });
            }
            Tok::Not => {
                return Err(self.err(
                    start,
                    "expected an operand (a field, a literal, a function call or `(`), found keyword `not`; \
                     to negate part of a comparison, wrap it in parentheses: `(not ...)`",
                ));
            }
            _ => {
                return Err(self.err(
                    start,
                    format!(
                        "expected an operand (a field, a literal, a function call or `(`), found {found}"
                    ),
                ));
            }
        };
        self.node(kind, start, end, start)
    }

    fn parse_call(&mut self, name_token: Token) -> Result<Ast, ExprError> {
        let start = name_token.start;
        let name = slice(self.src, start, name_token.end).to_owned();
        self.bump(); // `(`
        let mut args = Vec::new();
        if matches!(self.peek_tok(), Tok::RParen) {
            let close = self.bump();
            return self.node(AstKind::Call { name, args }, start, close.end, start);
        }
        loop {
            args.push(self.parse_or()?);
            match self.peek_tok() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    let close = self.bump();
                    return self.node(AstKind::Call { name, args }, start, close.end, start);
                }
                _ => {
                    return Err(self.err(
                        self.peek().start,
                        format!(
                            "expected `,` or `)` after argument {} of `{name}(...)`, found {}",
                            args.len(),
                            self.found()
                        ),
                    ));
                }
            }
        }
    }

    /// Parses `[lit, ...]`; returns the items and the offset past `]`.
    fn parse_list(&mut self, negated: bool) -> Result<(Vec<Ast>, usize), ExprError> {
        let keyword = if negated { "not in" } else { "in" };
        if !matches!(self.peek_tok(), Tok::LBracket) {
            return Err(self.err(
                self.peek().start,
                format!(
                    "expected `[` to start a list after `{keyword}`, found {}",
                    self.found()
                ),
            ));
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            if matches!(self.peek_tok(), Tok::RBracket) {
                return Ok((items, self.bump().end));
            }
            items.push(self.parse_list_item()?);
            match self.peek_tok() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBracket => return Ok((items, self.bump().end)),
                _ => {
                    return Err(self.err(
                        self.peek().start,
                        format!("expected `,` or `]` in the list, found {}", self.found()),
                    ));
                }
            }
        }
    }

    fn parse_list_item(&mut self) -> Result<Ast, ExprError> {
        let found = self.found();
        let token = self.bump();
        let (start, end) = (token.start, token.end);
        let kind = match token.tok {
            Tok::Num(d) => AstKind::Num(d),
            Tok::Minus if matches!(self.peek_tok(), Tok::Num(_)) => {
                let number = self.bump();
                let Tok::Num(d) = number.tok else {
                    return Err(self.err(number.start, "expected a number after `-`"));
                };
                return self.node(AstKind::Num(-d), start, number.end, start);
            }
            Tok::Str(s) => AstKind::Str(s),
            Tok::True => AstKind::Bool(true),
            Tok::False => AstKind::Bool(false),
            Tok::Null => AstKind::Null,
            _ => {
                return Err(self.err(
                    start,
                    format!(
                        "expected a literal (a number, a string, `true` or `false`) in the list, found {found}"
                    ),
                ));
            }
        };
        self.node(kind, start, end, start)
    }
}

fn push_flat(items: &mut Vec<Ast>, ast: Ast, is_or: bool) {
    match ast.kind {
        AstKind::Or(inner) if is_or => items.extend(inner),
        AstKind::And(inner) if !is_or => items.extend(inner),
        kind => items.push(Ast { kind, ..ast }),
    }
}

// ---------------------------------------------------------------------------
// Compiled, typed tree and its evaluation
// ---------------------------------------------------------------------------

/// A bool-typed node; evaluates to `Some(bool)` or `None` (null).
#[derive(Debug, Clone)]
enum BNode {
    Const(Option<bool>),
    Field(FieldId),
    Not(Box<BNode>),
    And(Box<[BNode]>),
    Or(Box<[BNode]>),
    CmpNum(CmpOp, Box<[NNode; 2]>),
    CmpStr(CmpOp, Box<[SNode; 2]>),
    /// `==` (or `!=` when `ne`) between two bools.
    CmpBool {
        ne: bool,
        pair: Box<[BNode; 2]>,
    },
    InNum {
        negated: bool,
        lhs: Box<NNode>,
        set: Box<[Decimal]>,
    },
    InStr {
        negated: bool,
        lhs: Box<SNode>,
        set: Box<[Box<str>]>,
    },
    InBool {
        negated: bool,
        lhs: Box<BNode>,
        has_true: bool,
        has_false: bool,
    },
    IsNull(Box<AnyNode>),
    Contains(Box<[SNode; 2]>),
    StartsWith(Box<[SNode; 2]>),
}

/// A number-typed node; evaluates to `Some(Decimal)` or `None` (null).
#[derive(Debug, Clone)]
enum NNode {
    Const(Option<Decimal>),
    Field(FieldId),
    Neg(Box<NNode>),
    Arith(ArithOp, Box<[NNode; 2]>),
    Abs(Box<NNode>),
    Min(Box<[NNode; 2]>),
    Max(Box<[NNode; 2]>),
}

/// A string-typed node; evaluates to a borrowed string view or `None` (null).
#[derive(Debug, Clone)]
enum SNode {
    Const(Option<Box<str>>),
    Field(FieldId),
    Lower(Box<SNode>),
}

#[derive(Debug, Clone)]
enum AnyNode {
    B(BNode),
    N(NNode),
    S(SNode),
}

impl BNode {
    fn eval(&self, rec: &dyn Record) -> Option<bool> {
        match self {
            BNode::Const(v) => *v,
            BNode::Field(id) => match rec.get(*id) {
                Value::Bool(b) => Some(b),
                _ => None,
            },
            BNode::Not(x) => x.eval(rec).map(|b| !b),
            BNode::And(items) => {
                let mut unknown = false;
                for item in items.iter() {
                    match item.eval(rec) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                if unknown { None } else { Some(true) }
            }
            BNode::Or(items) => {
                let mut unknown = false;
                for item in items.iter() {
                    match item.eval(rec) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown { None } else { Some(false) }
            }
            BNode::CmpNum(op, pair) => {
                let [a, b] = &**pair;
                let a = a.eval(rec)?;
                let b = b.eval(rec)?;
                Some(op.test(a.cmp(&b)))
            }
            BNode::CmpStr(op, pair) => {
                let [a, b] = &**pair;
                let a = a.eval(rec)?;
                let b = b.eval(rec)?;
                Some(op.test(str_cmp(a, b)))
            }
            BNode::CmpBool { ne, pair } => {
                let [a, b] = &**pair;
                let a = a.eval(rec)?;
                let b = b.eval(rec)?;
                Some((a == b) != *ne)
            }
            BNode::InNum { negated, lhs, set } => {
                let v = lhs.eval(rec)?;
                Some(set.contains(&v) != *negated)
            }
            BNode::InStr { negated, lhs, set } => {
                let v = lhs.eval(rec)?;
                let found = set.iter().any(|k| str_cmp(v, SVal::plain(k)).is_eq());
                Some(found != *negated)
            }
            BNode::InBool {
                negated,
                lhs,
                has_true,
                has_false,
            } => {
                let v = lhs.eval(rec)?;
                let found = if v { *has_true } else { *has_false };
                Some(found != *negated)
            }
            BNode::IsNull(x) => Some(x.is_null(rec)),
            BNode::Contains(pair) => {
                let [hay, needle] = &**pair;
                let hay = hay.eval(rec)?;
                let needle = needle.eval(rec)?;
                Some(str_contains(hay, needle))
            }
            BNode::StartsWith(pair) => {
                let [s, prefix] = &**pair;
                let s = s.eval(rec)?;
                let prefix = prefix.eval(rec)?;
                Some(str_starts_with(s, prefix))
            }
        }
    }

    fn is_const(&self) -> bool {
        match self {
            BNode::Const(_) => true,
            BNode::Field(_) => false,
            BNode::Not(x) => x.is_const(),
            BNode::And(items) | BNode::Or(items) => items.iter().all(BNode::is_const),
            BNode::CmpNum(_, pair) => pair.iter().all(NNode::is_const),
            BNode::CmpStr(_, pair) | BNode::Contains(pair) | BNode::StartsWith(pair) => {
                pair.iter().all(SNode::is_const)
            }
            BNode::CmpBool { pair, .. } => pair.iter().all(BNode::is_const),
            BNode::InNum { lhs, .. } => lhs.is_const(),
            BNode::InStr { lhs, .. } => lhs.is_const(),
            BNode::InBool { lhs, .. } => lhs.is_const(),
            BNode::IsNull(x) => match &**x {
                AnyNode::B(b) => b.is_const(),
                AnyNode::N(n) => n.is_const(),
                AnyNode::S(s) => s.is_const(),
            },
        }
    }

    /// Replaces a field-free subtree by its value.
    fn folded(self) -> BNode {
        if !matches!(self, BNode::Const(_)) && self.is_const() {
            BNode::Const(self.eval(&NullRecord))
        } else {
            self
        }
    }
}

impl NNode {
    fn eval(&self, rec: &dyn Record) -> Option<Decimal> {
        match self {
            NNode::Const(v) => *v,
            NNode::Field(id) => match rec.get(*id) {
                Value::Num(d) => Some(d),
                _ => None,
            },
            NNode::Neg(x) => x.eval(rec).map(|d| -d),
            NNode::Arith(op, pair) => {
                let [a, b] = &**pair;
                let a = a.eval(rec)?;
                let b = b.eval(rec)?;
                op.apply(a, b)
            }
            NNode::Abs(x) => x.eval(rec).map(|d| d.abs()),
            NNode::Min(pair) => {
                let [a, b] = &**pair;
                Some(a.eval(rec)?.min(b.eval(rec)?))
            }
            NNode::Max(pair) => {
                let [a, b] = &**pair;
                Some(a.eval(rec)?.max(b.eval(rec)?))
            }
        }
    }

    fn is_const(&self) -> bool {
        match self {
            NNode::Const(_) => true,
            NNode::Field(_) => false,
            NNode::Neg(x) | NNode::Abs(x) => x.is_const(),
            NNode::Arith(_, pair) | NNode::Min(pair) | NNode::Max(pair) => {
                pair.iter().all(NNode::is_const)
            }
        }
    }

    fn folded(self) -> NNode {
        if !matches!(self, NNode::Const(_)) && self.is_const() {
            NNode::Const(self.eval(&NullRecord))
        } else {
            self
        }
    }
}

impl SNode {
    fn eval<'a>(&'a self, rec: &'a dyn Record) -> Option<SVal<'a>> {
        match self {
            SNode::Const(v) => v.as_deref().map(SVal::plain),
            SNode::Field(id) => match rec.get(*id) {
                Value::Str(s) => Some(SVal::plain(s)),
                _ => None,
            },
            SNode::Lower(x) => x.eval(rec).map(|v| SVal {
                text: v.text,
                lower: true,
            }),
        }
    }

    fn is_const(&self) -> bool {
        match self {
            SNode::Const(_) => true,
            SNode::Field(_) => false,
            SNode::Lower(x) => x.is_const(),
        }
    }

    fn folded(self) -> SNode {
        if !matches!(self, SNode::Const(_)) && self.is_const() {
            let value = self
                .eval(&NullRecord)
                .map(|v| v.chars().collect::<String>().into_boxed_str());
            SNode::Const(value)
        } else {
            self
        }
    }
}

impl AnyNode {
    fn is_null(&self, rec: &dyn Record) -> bool {
        match self {
            AnyNode::B(b) => b.eval(rec).is_none(),
            AnyNode::N(n) => n.eval(rec).is_none(),
            AnyNode::S(s) => s.eval(rec).is_none(),
        }
    }
}

/// A string seen either as is or lowercased, without allocating.
#[derive(Debug, Clone, Copy)]
struct SVal<'a> {
    text: &'a str,
    lower: bool,
}

impl<'a> SVal<'a> {
    fn plain(text: &'a str) -> Self {
        SVal { text, lower: false }
    }

    fn chars(self) -> Folded<'a> {
        Folded {
            chars: self.text.chars(),
            lower: self.lower,
            pending: None,
        }
    }
}

/// The characters of an [`SVal`], lowercased on the fly when asked to.
#[derive(Clone)]
struct Folded<'a> {
    chars: std::str::Chars<'a>,
    lower: bool,
    pending: Option<std::char::ToLowercase>,
}

impl Iterator for Folded<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(pending) = &mut self.pending {
                if let Some(c) = pending.next() {
                    return Some(c);
                }
                self.pending = None;
            }
            let c = self.chars.next()?;
            if !self.lower {
                return Some(c);
            }
            if c.is_ascii() {
                return Some(c.to_ascii_lowercase());
            }
            self.pending = Some(c.to_lowercase());
        }
    }
}

fn str_cmp(a: SVal<'_>, b: SVal<'_>) -> Ordering {
    if a.lower || b.lower {
        a.chars().cmp(b.chars())
    } else {
        a.text.cmp(b.text)
    }
}

/// True when `prefix` yields a prefix of `s`.
fn is_prefix(mut s: Folded<'_>, prefix: Folded<'_>) -> bool {
    for c in prefix {
        if s.next() != Some(c) {
            return false;
        }
    }
    true
}

fn str_starts_with(s: SVal<'_>, prefix: SVal<'_>) -> bool {
    if s.lower || prefix.lower {
        is_prefix(s.chars(), prefix.chars())
    } else {
        s.text.starts_with(prefix.text)
    }
}

fn str_contains(hay: SVal<'_>, needle: SVal<'_>) -> bool {
    if !hay.lower && !needle.lower {
        return hay.text.contains(needle.text);
    }
    let mut rest = hay.chars();
    loop {
        if is_prefix(rest.clone(), needle.chars()) {
            return true;
        }
        if rest.next().is_none() {
            return false;
        }
    }
}

// ---------------------------------------------------------------------------
// Type checker: syntax tree -> typed tree
// ---------------------------------------------------------------------------

const FUNCTIONS: [(&str, usize); 7] = [
    ("abs", 1),
    ("min", 2),
    ("max", 2),
    ("is_null", 1),
    ("lower", 1),
    ("contains", 2),
    ("starts_with", 2),
];

enum Typed {
    B(BNode),
    N(NNode),
    S(SNode),
    /// The `null` literal, which fits any type.
    Null,
}

impl Typed {
    fn noun(&self) -> &'static str {
        match self {
            Typed::B(_) => FieldType::Bool.noun(),
            Typed::N(_) => FieldType::Number.noun(),
            Typed::S(_) => FieldType::String.noun(),
            Typed::Null => "null",
        }
    }
}

struct Checker<'a> {
    src: &'a str,
    schema: &'a Schema,
    used: Vec<FieldId>,
}

impl Checker<'_> {
    fn err(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, at, message)
    }

    fn snip(&self, ast: &Ast) -> String {
        snippet(self.src, ast.start, ast.end)
    }

    fn mismatch(&self, ast: &Ast, what: &str, got: &Typed) -> ExprError {
        self.err(
            ast.start,
            format!("{what}, but `{}` is {}", self.snip(ast), got.noun()),
        )
    }

    fn bool_operand(&mut self, ast: &Ast, what: &str) -> Result<BNode, ExprError> {
        match self.check(ast)? {
            Typed::B(b) => Ok(b),
            Typed::Null => Ok(BNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    fn num_operand(&mut self, ast: &Ast, what: &str) -> Result<NNode, ExprError> {
        match self.check(ast)? {
            Typed::N(n) => Ok(n),
            Typed::Null => Ok(NNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    fn str_operand(&mut self, ast: &Ast, what: &str) -> Result<SNode, ExprError> {
        match self.check(ast)? {
            Typed::S(s) => Ok(s),
            Typed::Null => Ok(SNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    fn num_pair(&mut self, a: &Ast, b: &Ast, what: &str) -> Result<Box<[NNode; 2]>, ExprError> {
        Ok(Box::new([
            self.num_operand(a, what)?,
            self.num_operand(b, what)?,
        ]))
    }

    fn str_pair(&mut self, a: &Ast, b: &Ast, what: &str) -> Result<Box<[SNode; 2]>, ExprError> {
        Ok(Box::new([
            self.str_operand(a, what)?,
            self.str_operand(b, what)?,
        ]))
    }

    fn root(&mut self, ast: &Ast) -> Result<BNode, ExprError> {
        let hint = match self.check(ast)? {
            Typed::B(b) => return Ok(b),
            Typed::N(_) => "it is a number; compare it with something, e.g. `... > 0`",
            Typed::S(_) => "it is a string; compare it with something, e.g. `... == 'value'`",
            Typed::Null => "it is `null`",
        };
        Err(self.err(
            ast.start,
            format!("the expression must be a condition (true or false), but {hint}"),
        ))
    }

    fn check(&mut self, ast: &Ast) -> Result<Typed, ExprError> {
        Ok(match &ast.kind {
            AstKind::Num(d) => Typed::N(NNode::Const(Some(*d))),
            AstKind::Str(s) => Typed::S(SNode::Const(Some(s.as_str().into()))),
            AstKind::Bool(b) => Typed::B(BNode::Const(Some(*b))),
            AstKind::Null => Typed::Null,
            AstKind::Field(path) => self.field(path, ast.start)?,
            AstKind::Not(x) => {
                let x = self.bool_operand(x, "`not` needs a condition (bool)")?;
                Typed::B(BNode::Not(Box::new(x)).folded())
            }
            AstKind::Neg(x) => {
                let x = self.num_operand(x, "unary `-` needs a number")?;
                Typed::N(NNode::Neg(Box::new(x)).folded())
            }
            AstKind::And(items) | AstKind::Or(items) => {
                let is_or = matches!(ast.kind, AstKind::Or(_));
                let what = if is_or {
                    "`or` combines conditions (bools)"
                } else {
                    "`and` combines conditions (bools)"
                };
                let nodes = items
                    .iter()
                    .map(|item| self.bool_operand(item, what))
                    .collect::<Result<Box<[BNode]>, _>>()?;
                let node = if is_or {
                    BNode::Or(nodes)
                } else {
                    BNode::And(nodes)
                };
                Typed::B(node.folded())
            }
            AstKind::Arith { op, lhs, rhs } => {
                let what = format!("`{}` needs numbers on both sides", op.symbol());
                let pair = self.num_pair(lhs, rhs, &what)?;
                Typed::N(NNode::Arith(*op, pair).folded())
            }
            AstKind::Cmp {
                op,
                op_at,
                lhs,
                rhs,
            } => self.compare(*op, *op_at, lhs, rhs)?,
            AstKind::In {
                negated,
                lhs,
                items,
            } => self.membership(*negated, lhs, items)?,
            AstKind::Call { name, args } => self.call(name, ast.start, args)?,
        })
    }

    fn field(&mut self, path: &str, at: usize) -> Result<Typed, ExprError> {
        let found = self
            .schema
            .id(path)
            .and_then(|id| Some((id, self.schema.field_type(id)?)));
        let Some((id, ty)) = found else {
            return Err(self.unknown_field(path, at));
        };
        if !self.used.contains(&id) {
            self.used.push(id);
        }
        Ok(match ty {
            FieldType::Number => Typed::N(NNode::Field(id)),
            FieldType::String => Typed::S(SNode::Field(id)),
            FieldType::Bool => Typed::B(BNode::Field(id)),
        })
    }

    fn unknown_field(&self, path: &str, at: usize) -> ExprError {
        let mut message = format!("unknown field `{path}`");
        let names = || self.schema.fields().map(|(name, _)| name);
        if let Some(kw) = keyword_hint(path) {
            message.push_str(&format!(" (keywords are lowercase: write `{kw}`)"));
        } else if FUNCTIONS.iter().any(|(f, _)| *f == path) {
            message.push_str(&format!(
                " (`{path}` is a function: call it as `{path}(...)`)"
            ));
        } else if let Some(close) = suggest(path, names()).or_else(|| {
            let mut tails =
                names().filter(|n| n.strip_suffix(path).is_some_and(|head| head.ends_with('.')));
            match (tails.next(), tails.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }) {
            message.push_str(&format!(" (did you mean `{close}`?)"));
        } else if self.schema.is_empty() {
            message.push_str(" (no fields are declared)");
        }
        self.err(at, message)
    }

    fn compare(
        &mut self,
        op: CmpOp,
        op_at: usize,
        lhs: &Ast,
        rhs: &Ast,
    ) -> Result<Typed, ExprError> {
        let sym = op.symbol();
        let l = self.check(lhs)?;
        let r = self.check(rhs)?;
        let node = match (l, r) {
            (Typed::Null, _) => return Err(self.null_comparison(lhs, sym)),
            (_, Typed::Null) => return Err(self.null_comparison(rhs, sym)),
            (Typed::N(a), Typed::N(b)) => BNode::CmpNum(op, Box::new([a, b])),
            (Typed::S(a), Typed::S(b)) => BNode::CmpStr(op, Box::new([a, b])),
            (Typed::B(a), Typed::B(b)) => match op {
                CmpOp::Eq | CmpOp::Ne => BNode::CmpBool {
                    ne: op == CmpOp::Ne,
                    pair: Box::new([a, b]),
                },
                _ => {
                    return Err(self.err(
                        op_at,
                        format!(
                            "`{sym}` cannot order conditions (bools); only numbers and strings can be ordered"
                        ),
                    ));
                }
            },
            (a, b) => {
                return Err(self.err(
                    op_at,
                    format!(
                        "cannot compare `{}` ({}) with `{}` ({})",
                        self.snip(lhs),
                        a.noun(),
                        self.snip(rhs),
                        b.noun()
                    ),
                ));
            }
        };
        Ok(Typed::B(node.folded()))
    }

    fn null_comparison(&self, null: &Ast, sym: &str) -> ExprError {
        self.err(
            null.start,
            format!(
                "comparing with `null` using `{sym}` never matches (the result is always null); use `is_null(...)` to test for a missing value"
            ),
        )
    }

    fn membership(&mut self, negated: bool, lhs: &Ast, items: &[Ast]) -> Result<Typed, ExprError> {
        let l = self.check(lhs)?;
        let noun = l.noun();
        let mut nums = Vec::new();
        let mut strs = Vec::new();
        let (mut has_true, mut has_false) = (false, false);
        for item in items {
            match (&l, &item.kind) {
                (Typed::Null, _) => {
                    return Err(self.err(
                        lhs.start,
                        "testing `null` for list membership never matches (the result is always null); use `is_null(...)` to test for a missing value",
                    ));
                }
                (_, AstKind::Null) => {
                    return Err(self.err(
                        item.start,
                        "`null` in a list never matches; use `is_null(...)` to test for a missing value",
                    ));
                }
                (Typed::N(_), AstKind::Num(d)) => nums.push(*d),
                (Typed::S(_), AstKind::Str(s)) => strs.push(s.as_str().into()),
                (Typed::B(_), AstKind::Bool(true)) => has_true = true,
                (Typed::B(_), AstKind::Bool(false)) => has_false = true,
                (_, kind) => {
                    return Err(self.err(
                        item.start,
                        format!(
                            "list element `{}` is {}, but `{}` is {noun}; list elements must have the type of the value being tested",
                            self.snip(item),
                            kind.literal_noun(),
                            self.snip(lhs),
                        ),
                    ));
                }
            }
        }
        let node = match l {
            Typed::N(n) => BNode::InNum {
                negated,
                lhs: Box::new(n),
                set: nums.into_boxed_slice(),
            },
            Typed::S(s) => BNode::InStr {
                negated,
                lhs: Box::new(s),
                set: strs.into_boxed_slice(),
            },
            Typed::B(b) => BNode::InBool {
                negated,
                lhs: Box::new(b),
                has_true,
                has_false,
            },
            // `null in []`: nothing to complain about element-wise, still always null.
            Typed::Null => BNode::Const(None),
        };
        Ok(Typed::B(node.folded()))
    }

    fn call(&mut self, name: &str, at: usize, args: &[Ast]) -> Result<Typed, ExprError> {
        let Some(&(_, arity)) = FUNCTIONS.iter().find(|(f, _)| *f == name) else {
            let mut message = format!("unknown function `{name}`");
            match suggest(name, FUNCTIONS.iter().map(|(f, _)| *f)) {
                Some(close) => message.push_str(&format!(" (did you mean `{close}`?)")),
                None => {
                    let all: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
                    message.push_str(&format!("; the functions are {}", all.join(", ")));
                }
            }
            return Err(self.err(at, message));
        };
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            let verb = if args.len() == 1 { "was" } else { "were" };
            return Err(self.err(
                at,
                format!(
                    "`{name}` takes {arity} argument{plural}, but {} {verb} given",
                    args.len()
                ),
            ));
        }
        Ok(match (name, args) {
            ("abs", [x]) => {
                let x = self.num_operand(x, "`abs` needs a number")?;
                Typed::N(NNode::Abs(Box::new(x)).folded())
            }
            ("min", [a, b]) => {
                Typed::N(NNode::Min(self.num_pair(a, b, "`min` needs numbers")?).folded())
            }
            ("max", [a, b]) => {
                Typed::N(NNode::Max(self.num_pair(a, b, "`max` needs numbers")?).folded())
            }
            ("is_null", [x]) => {
                let inner = match self.check(x)? {
                    Typed::Null => return Ok(Typed::B(BNode::Const(Some(true)))),
                    Typed::B(b) => AnyNode::B(b),
                    Typed::N(n) => AnyNode::N(n),
                    Typed::S(s) => AnyNode::S(s),
                };
                Typed::B(BNode::IsNull(Box::new(inner)).folded())
            }
            ("lower", [x]) => {
                let x = self.str_operand(x, "`lower` needs a string")?;
                Typed::S(SNode::Lower(Box::new(x)).folded())
            }
            ("contains", [h, n]) => {
                Typed::B(BNode::Contains(self.str_pair(h, n, "`contains` needs strings")?).folded())
            }
            ("starts_with", [s, p]) => Typed::B(
                BNode::StartsWith(self.str_pair(s, p, "`starts_with` needs strings")?).folded(),
            ),
            _ => return Err(self.err(at, format!("unknown function `{name}`"))),
        })
    }
}

// ---------------------------------------------------------------------------
// Public compiled expression
// ---------------------------------------------------------------------------

/// A compiled, type-checked condition. Cheap to evaluate; clone and share freely.
#[derive(Debug, Clone)]
pub struct Expr {
    source: Box<str>,
    root: BNode,
    fields: Box<[FieldId]>,
}

impl Expr {
    /// Parses and type-checks `src` against `schema`.
    ///
    /// The whole expression must be a condition (bool). Errors carry the
    /// position and say what was expected and what was found.
    pub fn compile(src: &str, schema: &Schema) -> Result<Expr, ExprError> {
        if src.len() > MAX_SOURCE_LEN {
            return Err(ExprError::new(
                src,
                0,
                format!(
                    "the expression is too long: {} bytes, the limit is {MAX_SOURCE_LEN}",
                    src.len()
                ),
            ));
        }
        let tokens = lex(src)?;
        let ast = Parser::new(src, tokens).parse_root()?;
        let mut checker = Checker {
            src,
            schema,
            used: Vec::new(),
        };
        let root = checker.root(&ast)?;
        Ok(Expr {
            source: src.into(),
            root,
            fields: checker.used.into_boxed_slice(),
        })
    }

    /// Three-valued result: `Some(true)`, `Some(false)` or `None` (null).
    pub fn eval(&self, rec: &dyn Record) -> Option<bool> {
        self.root.eval(rec)
    }

    /// True only if the expression evaluates to exactly `true` (null does not fire).
    pub fn eval_bool(&self, rec: &dyn Record) -> bool {
        self.root.eval(rec) == Some(true)
    }

    /// Distinct fields referenced, in order of first appearance in the source.
    pub fn fields_used(&self) -> Vec<FieldId> {
        self.fields.to_vec()
    }

    /// The source text this expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn schema() -> Schema {
        Schema::new()
            .field("order.amount_untaxed", FieldType::Number)
            .field("order.state", FieldType::String)
            .field("customer.tier", FieldType::String)
            .field("customer.has_credit_limit", FieldType::Bool)
            .field("line.discount_pct", FieldType::Number)
            .field("line.margin_pct", FieldType::Number)
            .field("product.category", FieldType::String)
            .field("line.hours_to_promise", FieldType::Number)
            .field("line.open_qty", FieldType::Number)
            .field("t.a", FieldType::Bool)
            .field("t.b", FieldType::Bool)
            .field("t.n", FieldType::Number)
            .field("t.m", FieldType::Number)
            .field("t.s", FieldType::String)
    }

    fn compile(src: &str) -> Expr {
        Expr::compile(src, &schema()).unwrap_or_else(|e| panic!("`{src}` failed: {e}"))
    }

    fn err(src: &str) -> String {
        match Expr::compile(src, &schema()) {
            Ok(_) => panic!("`{src}` compiled but should not"),
            Err(e) => e.to_string(),
        }
    }

    fn row(pairs: &[(&str, Value<'static>)]) -> Vec<Value<'static>> {
        let s = schema();
        let mut values = vec![Value::Null; s.len()];
        for (path, value) in pairs {
            values[s.id(path).unwrap().index()] = *value;
        }
        values
    }

    fn eval_with(src: &str, pairs: &[(&str, Value<'static>)]) -> Option<bool> {
        compile(src).eval(&row(pairs))
    }

    fn ev(src: &str) -> Option<bool> {
        eval_with(src, &[])
    }

    fn tri(v: Option<bool>) -> Value<'static> {
        v.into()
    }

    // ---- schema & api ----

    #[test]
    fn schema_ids_are_dense_in_insertion_order() {
        let s = Schema::new()
            .field("a.x", FieldType::Number)
            .field("a.y", FieldType::String)
            .field("a.x", FieldType::Bool);
        assert_eq!(s.id("a.x"), Some(FieldId(0)));
        assert_eq!(s.id("a.y"), Some(FieldId(1)));
        assert_eq!(s.id("a.z"), None);
        assert_eq!(s.len(), 2);
        let fields: Vec<_> = s.fields().collect();
        assert_eq!(
            fields,
            vec![("a.x", FieldType::Bool), ("a.y", FieldType::String)]
        );
        assert_eq!(s.name(FieldId(1)), Some("a.y"));
        assert_eq!(s.field_type(FieldId(7)), None);
    }

    #[test]
    fn expr_is_clone_debug_send_sync() {
        fn assert_traits<T: Clone + fmt::Debug + Send + Sync + 'static>() {}
        assert_traits::<Expr>();
        assert_traits::<Schema>();
        assert_traits::<ExprError>();
    }

    #[test]
    fn source_fields_used_and_display() {
        let src =
            "line.open_qty > 0 and order.state == 'sale' and line.open_qty < 10 or is_null(t.n)";
        let e = compile(src);
        assert_eq!(e.source(), src);
        assert_eq!(e.to_string(), src);
        let s = schema();
        let expected: Vec<FieldId> = ["line.open_qty", "order.state", "t.n"]
            .iter()
            .map(|p| s.id(p).unwrap())
            .collect();
        assert_eq!(e.fields_used(), expected);
        assert!(compile("1 < 2").fields_used().is_empty());
    }

    #[test]
    fn product_examples() {
        let a = compile(
            "order.amount_untaxed > 50000 and customer.tier == 'C' and not customer.has_credit_limit",
        );
        let hit = row(&[
            ("order.amount_untaxed", Value::Num(d("60000"))),
            ("customer.tier", Value::Str("C")),
            ("customer.has_credit_limit", Value::Bool(false)),
        ]);
        assert!(a.eval_bool(&hit));
        let unknown_limit = row(&[
            ("order.amount_untaxed", Value::Num(d("60000"))),
            ("customer.tier", Value::Str("C")),
        ]);
        assert!(!a.eval_bool(&unknown_limit));
        assert_eq!(a.eval(&unknown_limit), None);

        let b = compile(
            "line.discount_pct >= 25 or (line.margin_pct < 8 and product.category in ['Fasteners', 'Safety'])",
        );
        assert!(b.eval_bool(&row(&[("line.discount_pct", Value::Num(d("25")))])));
        assert!(b.eval_bool(&row(&[
            ("line.discount_pct", Value::Num(d("3"))),
            ("line.margin_pct", Value::Num(d("7.99"))),
            ("product.category", Value::Str("Safety")),
        ])));
        assert!(!b.eval_bool(&row(&[
            ("line.discount_pct", Value::Num(d("3"))),
            ("line.margin_pct", Value::Num(d("7.99"))),
            ("product.category", Value::Str("Tools")),
        ])));
        // Null discount but the right-hand side is true: `null or true` = true.
        assert!(b.eval_bool(&row(&[
            ("line.margin_pct", Value::Num(d("1"))),
            ("product.category", Value::Str("Fasteners")),
        ])));

        let c =
            compile("line.hours_to_promise < 48 and line.open_qty > 0 and order.state == \"sale\"");
        assert!(c.eval_bool(&row(&[
            ("line.hours_to_promise", Value::Num(d("47.5"))),
            ("line.open_qty", Value::Num(d("1"))),
            ("order.state", Value::Str("sale")),
        ])));
        assert!(!c.eval_bool(&row(&[
            ("line.hours_to_promise", Value::Num(d("47.5"))),
            ("line.open_qty", Value::Num(d("0"))),
            ("order.state", Value::Str("sale")),
        ])));
    }

    // ---- precedence ----

    #[test]
    fn arithmetic_precedence_and_associativity() {
        assert_eq!(ev("1 + 2 * 3 == 7"), Some(true));
        assert_eq!(ev("(1 + 2) * 3 == 9"), Some(true));
        assert_eq!(ev("10 - 4 - 3 == 3"), Some(true));
        assert_eq!(ev("100 / 10 / 5 == 2"), Some(true));
        assert_eq!(ev("2 * 3 - 4 / 2 == 4"), Some(true));
        assert_eq!(ev("-2 * -3 == 6"), Some(true));
        assert_eq!(ev("- 2 - 3 == -5"), Some(true));
        assert_eq!(ev("--2 == 2"), Some(true));
        assert_eq!(ev("-(2 - 3) == 1"), Some(true));
        assert_eq!(ev("1 + 2 > 2 + 0"), Some(true));
        assert_eq!(ev("12.5 * 2 == 25"), Some(true));
        assert_eq!(ev("1.0 == 1"), Some(true));
    }

    #[test]
    fn logical_precedence() {
        // `and` binds tighter than `or`.
        assert_eq!(ev("true or false and false"), Some(true));
        assert_eq!(ev("(true or false) and false"), Some(false));
        // `not` binds tighter than `and`/`or`...
        assert_eq!(ev("not true or true"), Some(true));
        assert_eq!(ev("not false and false"), Some(false));
        // ...but looser than comparisons.
        assert_eq!(ev("not 1 > 2"), Some(true));
        assert_eq!(ev("not 1 + 1 == 2"), Some(false));
        assert_eq!(ev("not not true"), Some(true));
        // comparisons bind tighter than `and`.
        assert_eq!(ev("1 < 2 and 2 < 3"), Some(true));
        assert_eq!(ev("(1 < 2) == (2 < 3)"), Some(true));
        assert_eq!(ev("(not true) == false"), Some(true));
    }

    // ---- three-valued logic & null ----

    #[test]
    fn three_valued_logic_tables() {
        let vals = [Some(true), Some(false), None];
        for a in vals {
            for b in vals {
                let r = [("t.a", tri(a)), ("t.b", tri(b))];
                let and = match (a, b) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                let or = match (a, b) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
                assert_eq!(eval_with("t.a and t.b", &r), and, "{a:?} and {b:?}");
                assert_eq!(eval_with("t.a or t.b", &r), or, "{a:?} or {b:?}");
                assert_eq!(eval_with("not t.a", &r), a.map(|x| !x), "not {a:?}");
                let eq = a.zip(b).map(|(x, y)| x == y);
                assert_eq!(eval_with("t.a == t.b", &r), eq);
                assert_eq!(eval_with("t.a != t.b", &r), eq.map(|x| !x));
            }
        }
        assert_eq!(ev("false and null"), Some(false));
        assert_eq!(ev("null and false"), Some(false));
        assert_eq!(ev("true or null"), Some(true));
        assert_eq!(ev("null or true"), Some(true));
        assert_eq!(ev("true and null"), None);
        assert_eq!(ev("not null"), None);
    }

    #[test]
    fn null_propagates_through_comparisons_and_arithmetic() {
        let empty: [(&str, Value<'static>); 0] = [];
        for src in [
            "t.n > 5",
            "t.n <= 5",
            "t.n == t.n",
            "t.n + 1 > 0",
            "-t.n < 0",
            "abs(t.n) >= 0",
            "min(t.n, 1) < 10",
            "max(1, t.n) > 0",
            "t.s == 'x'",
            "lower(t.s) == 'x'",
            "contains(t.s, 'x')",
            "starts_with('abc', t.s)",
            "t.n in [1, 2]",
            "t.n not in [1, 2]",
            "t.s in ['a']",
            "t.s not in ['a']",
            "t.n + null > 0",
        ] {
            assert_eq!(eval_with(src, &empty), None, "{src}");
            // `not` of null stays null: the negated rule does not fire either.
            let negated = format!("not ({src})");
            assert_eq!(eval_with(&negated, &empty), None, "{negated}");
            assert!(!compile(&negated).eval_bool(&row(&empty)));
        }
    }

    #[test]
    fn is_null_tests_missingness() {
        assert_eq!(ev("is_null(t.n)"), Some(true));
        assert_eq!(ev("is_null(t.s) and is_null(t.a)"), Some(true));
        assert_eq!(
            eval_with("is_null(t.n)", &[("t.n", Value::Num(d("0")))]),
            Some(false)
        );
        assert_eq!(
            eval_with("not is_null(t.s)", &[("t.s", Value::Str(""))]),
            Some(true)
        );
        assert_eq!(ev("is_null(null)"), Some(true));
        assert_eq!(ev("is_null(1 / 0)"), Some(true));
        assert_eq!(ev("is_null(t.n > 1)"), Some(true));
        assert_eq!(
            eval_with("is_null(t.n) or t.n > 10", &[("t.n", Value::Num(d("11")))]),
            Some(true)
        );
    }

    #[test]
    fn division_by_zero_and_overflow_are_null() {
        assert_eq!(ev("1 / 0 > 0"), None);
        assert_eq!(ev("1 / 0 == 1 / 0"), None);
        assert_eq!(
            eval_with(
                "t.n / t.m > 0",
                &[("t.n", Value::Num(d("5"))), ("t.m", Value::Num(d("0")))]
            ),
            None
        );
        assert_eq!(ev("79228162514264337593543950335 + 1 > 0"), None);
        assert_eq!(ev("79228162514264337593543950335 * 2 > 0"), None);
        assert_eq!(ev("-79228162514264337593543950335 - 1 < 0"), None);
        assert_eq!(ev("-79228162514264337593543950335 < 0"), Some(true));
        let big = [
            ("t.n", Value::Num(Decimal::MAX)),
            ("t.m", Value::Num(Decimal::MAX)),
        ];
        assert_eq!(eval_with("t.n * t.m > 0", &big), None);
        assert_eq!(eval_with("t.n / 0.0000000001 > 0", &big), None);
        assert_eq!(eval_with("abs(-t.n) == t.n", &big), Some(true));
    }

    #[test]
    fn wrongly_typed_record_values_read_as_null() {
        assert_eq!(eval_with("t.n > 1", &[("t.n", Value::Str("5"))]), None);
        assert_eq!(eval_with("t.s == 'x'", &[("t.s", Value::Bool(true))]), None);
        assert_eq!(eval_with("t.a", &[("t.a", Value::Num(d("1")))]), None);
        // A record shorter than the schema reads as null too.
        let short: Vec<Value<'static>> = Vec::new();
        assert_eq!(compile("is_null(t.s)").eval(&short), Some(true));
    }

    // ---- in / not in ----

    #[test]
    fn membership() {
        let n = |v: &str| [("t.n", Value::Num(d(v)))];
        assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("2.50")), Some(true));
        assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("-3")), Some(true));
        assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("3")), Some(false));
        assert_eq!(eval_with("t.n not in [1, 2.5, -3]", &n("3")), Some(true));
        assert_eq!(eval_with("t.n not in [1, 2.5]", &n("1")), Some(false));
        assert_eq!(eval_with("t.n + 1 in [2]", &n("1")), Some(true));
        assert_eq!(eval_with("t.n in []", &n("1")), Some(false));
        assert_eq!(eval_with("t.n not in []", &n("1")), Some(true));
        assert_eq!(eval_with("t.n in [1, 2,]", &n("2")), Some(true));
        let s = |v: &'static str| [("t.s", Value::Str(v))];
        assert_eq!(eval_with("t.s in ['a', \"b\"]", &s("b")), Some(true));
        assert_eq!(eval_with("t.s in ['a', 'b']", &s("B")), Some(false));
        assert_eq!(eval_with("lower(t.s) in ['a', 'b']", &s("B")), Some(true));
        assert_eq!(eval_with("t.s not in ['a', 'b']", &s("c")), Some(true));
        let b = |v: bool| [("t.a", Value::Bool(v))];
        assert_eq!(eval_with("t.a in [true]", &b(true)), Some(true));
        assert_eq!(eval_with("t.a in [true]", &b(false)), Some(false));
        assert_eq!(eval_with("t.a not in [true]", &b(false)), Some(true));
        // `not in` vs prefix `not`: `not t.n in [1]` is `not (t.n in [1])`.
        assert_eq!(eval_with("not t.n in [1]", &n("1")), Some(false));
    }

    // ---- functions ----

    #[test]
    fn functions() {
        assert_eq!(ev("abs(-3.5) == 3.5"), Some(true));
        assert_eq!(ev("abs(2) == 2"), Some(true));
        assert_eq!(ev("min(2, -1) == -1"), Some(true));
        assert_eq!(ev("max(2, -1) == 2"), Some(true));
        assert_eq!(ev("lower('AbC') == 'abc'"), Some(true));
        assert_eq!(ev("lower('ÄÖÜ') == 'äöü'"), Some(true));
        assert_eq!(ev("contains('Fasteners', 'ten')"), Some(true));
        assert_eq!(ev("contains('Fasteners', 'TEN')"), Some(false));
        assert_eq!(ev("contains('abc', '')"), Some(true));
        assert_eq!(ev("starts_with('Fasteners', 'Fast')"), Some(true));
        assert_eq!(ev("starts_with('Fast', 'Fasteners')"), Some(false));
        assert_eq!(ev("'b' > 'a' and 'a' < 'ab'"), Some(true));

        let s = |v: &'static str| [("t.s", Value::Str(v))];
        assert_eq!(
            eval_with("lower(t.s) == 'safety'", &s("SaFeTy")),
            Some(true)
        );
        assert_eq!(
            eval_with("lower(t.s) == lower('SAFETY')", &s("Safety")),
            Some(true)
        );
        assert_eq!(eval_with("lower(t.s) < 'b'", &s("B")), Some(false));
        assert_eq!(eval_with("lower(t.s) < 'c'", &s("B")), Some(true));
        assert_eq!(
            eval_with("contains(lower(t.s), 'ten')", &s("FASTENERS")),
            Some(true)
        );
        assert_eq!(
            eval_with("contains(lower(t.s), 'xyz')", &s("FASTENERS")),
            Some(false)
        );
        assert_eq!(eval_with("contains(lower(t.s), '')", &s("")), Some(true));
        assert_eq!(
            eval_with("contains(t.s, lower('ERS'))", &s("fasteners")),
            Some(true)
        );
        assert_eq!(
            eval_with("starts_with(lower(t.s), 'fast')", &s("FASTENERS")),
            Some(true)
        );
        assert_eq!(
            eval_with("starts_with(lower(t.s), 'fasx')", &s("FASTENERS")),
            Some(false)
        );
        assert_eq!(
            eval_with("contains(lower(t.s), 'straße')", &s("GROSSE STRAßE")),
            Some(true)
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            eval_with(r#"t.s == 'it\'s'"#, &[("t.s", Value::Str("it's"))]),
            Some(true)
        );
        assert_eq!(
            eval_with(
                r#"t.s == "say \"hi\"""#,
                &[("t.s", Value::Str("say \"hi\""))]
            ),
            Some(true)
        );
        assert_eq!(
            eval_with(r"t.s == 'a\\b'", &[("t.s", Value::Str("a\\b"))]),
            Some(true)
        );
        assert_eq!(
            eval_with(r"t.s == 'a\tb\n'", &[("t.s", Value::Str("a\tb\n"))]),
            Some(true)
        );
        assert_eq!(
            eval_with("t.s == \"it's\"", &[("t.s", Value::Str("it's"))]),
            Some(true)
        );
    }

    // ---- errors ----

    #[test]
    fn unknown_field_suggests_the_closest() {
        assert_eq!(
            err("order.amount_untax > 5"),
            "at column 1: unknown field `order.amount_untax` (did you mean `order.amount_untaxed`?)"
        );
        assert_eq!(
            err("line.open_qty > 0 and customer.teir == 'C'"),
            "at column 23: unknown field `customer.teir` (did you mean `customer.tier`?)"
        );
        assert_eq!(
            err("amount_untaxed > 5"),
            "at column 1: unknown field `amount_untaxed` (did you mean `order.amount_untaxed`?)"
        );
        assert_eq!(
            err("warehouse.zone == 'A'"),
            "at column 1: unknown field `warehouse.zone`"
        );
        assert_eq!(
            err("t.a AND t.b"),
            "at column 5: expected an operator (such as `and`, `or`, `==`, `<`, `in` or `+`) or the end of the expression, found `AND` (keywords are lowercase: write `and`)"
        );
        assert_eq!(
            err("t.a == TRUE"),
            "at column 8: unknown field `TRUE` (keywords are lowercase: write `true`)"
        );
        assert_eq!(
            err("lower == 'x'"),
            "at column 1: unknown field `lower` (`lower` is a function: call it as `lower(...)`)"
        );
        let empty = Schema::new();
        assert_eq!(
            Expr::compile("x.y", &empty).unwrap_err().to_string(),
            "at column 1: unknown field `x.y` (no fields are declared)"
        );
    }

    #[test]
    fn unknown_function_and_arity() {
        assert_eq!(
            err("lowr(t.s) == 'a'"),
            "at column 1: unknown function `lowr` (did you mean `lower`?)"
        );
        assert_eq!(
            err("frobnicate(t.s)"),
            "at column 1: unknown function `frobnicate`; the functions are abs, min, max, is_null, lower, contains, starts_with"
        );
        assert_eq!(
            err("t.n > 0 and min(t.n) > 1"),
            "at column 13: `min` takes 2 arguments, but 1 was given"
        );
        assert_eq!(
            err("abs(1, 2) > 0"),
            "at column 1: `abs` takes 1 argument, but 2 were given"
        );
        assert_eq!(
            err("is_null()"),
            "at column 1: `is_null` takes 1 argument, but 0 were given"
        );
        assert_eq!(
            err("order.total(1) > 0"),
            "at column 1: unknown function `order.total`; the functions are abs, min, max, is_null, lower, contains, starts_with"
        );
    }

    #[test]
    fn type_errors() {
        assert_eq!(
            err("customer.tier == 5"),
            "at column 15: cannot compare `customer.tier` (a string) with `5` (a number)"
        );
        assert_eq!(
            err("t.n < 'x'"),
            "at column 5: cannot compare `t.n` (a number) with `'x'` (a string)"
        );
        assert_eq!(
            err("t.n and t.a"),
            "at column 1: `and` combines conditions (bools), but `t.n` is a number"
        );
        assert_eq!(
            err("t.a or t.s"),
            "at column 8: `or` combines conditions (bools), but `t.s` is a string"
        );
        assert_eq!(
            err("t.s + 1 > 0"),
            "at column 1: `+` needs numbers on both sides, but `t.s` is a string"
        );
        assert_eq!(
            err("(t.n + 1) * t.a > 0"),
            "at column 13: `*` needs numbers on both sides, but `t.a` is a bool"
        );
        assert_eq!(
            err("-t.s == 'x'"),
            "at column 2: unary `-` needs a number, but `t.s` is a string"
        );
        assert_eq!(
            err("not t.n"),
            "at column 5: `not` needs a condition (bool), but `t.n` is a number"
        );
        assert_eq!(
            err("t.a < t.b"),
            "at column 5: `<` cannot order conditions (bools); only numbers and strings can be ordered"
        );
        assert_eq!(
            err("abs('x') > 0"),
            "at column 5: `abs` needs a number, but `'x'` is a string"
        );
        assert_eq!(
            err("lower(t.n) == 'x'"),
            "at column 7: `lower` needs a string, but `t.n` is a number"
        );
        assert_eq!(
            err("contains(t.s, 1)"),
            "at column 15: `contains` needs strings, but `1` is a number"
        );
        assert_eq!(
            err("t.s in ['a', 5]"),
            "at column 14: list element `5` is a number, but `t.s` is a string; list elements must have the type of the value being tested"
        );
        assert_eq!(
            err("t.n in [1, null]"),
            "at column 12: `null` in a list never matches; use `is_null(...)` to test for a missing value"
        );
        assert_eq!(
            err("t.n == null"),
            "at column 8: comparing with `null` using `==` never matches (the result is always null); use `is_null(...)` to test for a missing value"
        );
        assert_eq!(
            err("null in [1]"),
            "at column 1: testing `null` for list membership never matches (the result is always null); use `is_null(...)` to test for a missing value"
        );
    }

    #[test]
    fn top_level_must_be_bool() {
        assert_eq!(
            err("order.amount_untaxed * 2"),
            "at column 1: the expression must be a condition (true or false), but it is a number; compare it with something, e.g. `... > 0`"
        );
        assert_eq!(
            err("lower(t.s)"),
            "at column 1: the expression must be a condition (true or false), but it is a string; compare it with something, e.g. `... == 'value'`"
        );
        assert_eq!(
            err("null"),
            "at column 1: the expression must be a condition (true or false), but it is `null`"
        );
        assert_eq!(ev("true"), Some(true));
        assert!(err("(null)").ends_with("but it is `null`"));
        assert_eq!(ev("null or false"), None);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            err(""),
            "at column 1: the expression is empty; expected a condition such as `order.amount_untaxed > 1000`"
        );
        assert_eq!(
            err("   "),
            "at column 1: the expression is empty; expected a condition such as `order.amount_untaxed > 1000`"
        );
        assert_eq!(
            err("t.s == 'abc"),
            "at column 8: unterminated string: no closing ' for the string that starts here"
        );
        assert_eq!(
            err(r"t.s == 'a\qb'"),
            r#"at column 10: unknown escape `\q` in string; use `\\`, `\'`, `\"`, `\n` or `\t`"#
        );
        assert_eq!(
            err("t.n = 5"),
            "at column 5: found `=`; use `==` to compare values"
        );
        assert_eq!(
            err("t.a && t.b"),
            "at column 5: found `&`; use `and` to combine conditions"
        );
        assert_eq!(
            err("t.a || t.b"),
            "at column 5: found `|`; use `or` to combine conditions"
        );
        assert_eq!(
            err("!t.a"),
            "at column 1: found `!`; use `not` to negate a condition"
        );
        assert_eq!(
            err("t.n <> 5"),
            "at column 5: found `<>`; use `!=` for \"not equal\""
        );
        assert_eq!(err("t.n > 5 $"), "at column 9: unexpected character `$`");
        assert_eq!(
            err("t.s == 'é' and t.n > 5 €"),
            "at column 24: unexpected character `€`"
        );
        assert_eq!(
            err("(t.n > 5 and t.a"),
            "at column 17: expected `)` to close the `(` at column 1, found the end of the expression"
        );
        assert_eq!(
            err("t.n > 5)"),
            "at column 8: found `)` without a matching `(`"
        );
        assert_eq!(
            err("t.n > "),
            "at column 7: expected an operand (a field, a literal, a function call or `(`), found the end of the expression"
        );
        assert_eq!(
            err("t.n > and"),
            "at column 7: expected an operand (a field, a literal, a function call or `(`), found keyword `and`"
        );
        assert_eq!(
            err("t.a == not t.b"),
            "at column 8: expected an operand (a field, a literal, a function call or `(`), found keyword `not`; to negate part of a comparison, wrap it in parentheses: `(not ...)`"
        );
        assert_eq!(
            err("t.n > 5 t.a"),
            "at column 9: expected an operator (such as `and`, `or`, `==`, `<`, `in` or `+`) or the end of the expression, found `t.a`"
        );
        assert_eq!(
            err("1 < t.n < 3"),
            "at column 9: comparisons cannot be chained: found `<` after a complete comparison; combine them with `and`, e.g. `a < b and b < c`"
        );
        assert_eq!(
            err("t.n == 1 in [1]"),
            "at column 10: comparisons cannot be chained: found keyword `in` after a complete comparison; combine them with `and`, e.g. `a < b and b < c`"
        );
        assert_eq!(
            err("t.n in 1, 2"),
            "at column 8: expected `[` to start a list after `in`, found number `1`"
        );
        assert_eq!(
            err("t.n not in (1)"),
            "at column 12: expected `[` to start a list after `not in`, found `(`"
        );
        assert_eq!(
            err("t.n in [1 2]"),
            "at column 11: expected `,` or `]` in the list, found number `2`"
        );
        assert_eq!(
            err("t.n in [t.m]"),
            "at column 9: expected a literal (a number, a string, `true` or `false`) in the list, found `t.m`"
        );
        assert_eq!(
            err("min(1 2) > 0"),
            "at column 7: expected `,` or `)` after argument 1 of `min(...)`, found number `2`"
        );
        assert_eq!(
            err("t.n > 12."),
            "at column 10: expected digits after the decimal point in `12.`, found the end of the expression"
        );
        assert_eq!(
            err("t.n > 12abc"),
            "at column 7: invalid number `12abc`; names cannot start with a digit"
        );
        assert_eq!(
            err("order. amount > 1"),
            "at column 7: expected a field name after `order.`, found a space"
        );
        assert_eq!(
            err("t.n > 1234567890123456789012345678901234567890"),
            "at column 7: number `1234567890123456789012345678901234567890` does not fit in a decimal (at most 28 significant digits)"
        );
    }

    #[test]
    fn error_positions_count_characters_and_lines() {
        let e = Expr::compile("t.s == 'ü' and bogus.f", &schema()).unwrap_err();
        assert_eq!(e.column, 16);
        assert_eq!(e.offset, 16);
        assert_eq!(e.line, 1);
        let e = Expr::compile("t.n > 1\n  and bogus.f", &schema()).unwrap_err();
        assert_eq!((e.line, e.column), (2, 7));
        assert_eq!(
            e.to_string(),
            "at line 2, column 7: unknown field `bogus.f`"
        );
        // Multi-line sources (TOML """ strings) otherwise compile fine.
        assert_eq!(ev("1 < 2\n\tand\r\n 2 < 3"), Some(true));
    }

    // ---- bounds ----

    #[test]
    fn length_limit() {
        let mut ok = String::from("t.n > 0");
        while ok.len() + " or t.n > 0".len() <= MAX_SOURCE_LEN {
            ok.push_str(" or t.n > 0");
        }
        ok.push_str(&" ".repeat(MAX_SOURCE_LEN - ok.len()));
        assert_eq!(ok.len(), MAX_SOURCE_LEN);
        assert!(Expr::compile(&ok, &schema()).is_ok());
        let too_long = format!("{ok} ");
        assert_eq!(
            err(&too_long),
            "at column 1: the expression is too long: 4097 bytes, the limit is 4096"
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| format!("{}t.a{}", "(".repeat(n), ")".repeat(n));
        assert!(Expr::compile(&nested(MAX_DEPTH - 1), &schema()).is_ok());
        let msg = err(&nested(MAX_DEPTH));
        assert!(
            msg.ends_with("the expression is nested too deeply (more than 64 levels); simplify it"),
            "{msg}"
        );

        let nots = |n: usize| format!("{}t.a", "not ".repeat(n));
        assert!(Expr::compile(&nots(MAX_DEPTH - 1), &schema()).is_ok());
        assert!(err(&nots(MAX_DEPTH)).contains("nested too deeply"));

        let negs = |n: usize| format!("{}1 > 0", "-".repeat(n));
        assert!(Expr::compile(&negs(MAX_DEPTH - 2), &schema()).is_ok());
        assert!(err(&negs(MAX_DEPTH)).contains("nested too deeply"));

        let calls = |n: usize| format!("{}1{} > 0", "abs(".repeat(n), ")".repeat(n));
        assert!(Expr::compile(&calls(30), &schema()).is_ok());
        assert!(err(&calls(MAX_DEPTH)).contains("nested too deeply"));

        // Long left-deep operator chains count as nesting too...
        let sum = |n: usize| format!("t.n{} > 0", " + 1".repeat(n));
        assert!(Expr::compile(&sum(MAX_DEPTH - 3), &schema()).is_ok());
        assert!(err(&sum(MAX_DEPTH)).contains("nested too deeply"));
        // ...but `and`/`or` chains are flat and only bounded by the length limit.
        let ors = vec!["t.n == 1"; 300].join(" or ");
        assert!(ors.len() <= MAX_SOURCE_LEN);
        assert_eq!(eval_with(&ors, &[("t.n", Value::Num(d("1")))]), Some(true));
    }

    #[test]
    fn adversarial_nesting_does_not_overflow_the_stack() {
        for src in [
            "(".repeat(100_000),
            "(".repeat(4000),
            "not ".repeat(1000),
            "-".repeat(4000),
            "abs(".repeat(1000),
            format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
            format!("t.n{}", "+1".repeat(2000)),
            format!("t.s{}", " in [1]".repeat(500)),
            "[".repeat(4000),
        ] {
            let _ = Expr::compile(&src, &schema());
        }
    }

    // ---- property tests ----

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        const NUM_FIELDS: [&str; 3] = ["o.n1", "o.n2", "c.n3"];
        const STR_FIELDS: [&str; 2] = ["o.s1", "c.s2"];
        const BOOL_FIELDS: [&str; 2] = ["o.b1", "c.b2"];

        fn prop_schema() -> Schema {
            let mut s = Schema::new();
            for f in NUM_FIELDS {
                s = s.field(f, FieldType::Number);
            }
            for f in STR_FIELDS {
                s = s.field(f, FieldType::String);
            }
            for f in BOOL_FIELDS {
                s = s.field(f, FieldType::Bool);
            }
            s
        }

        /// Generated expression tree, printed with minimal parentheses.
        #[derive(Debug, Clone)]
        enum T {
            Num(Decimal),
            Str(String),
            Bool(bool),
            Null,
            Field(&'static str),
            Not(Box<T>),
            Neg(Box<T>),
            And(Box<T>, Box<T>),
            Or(Box<T>, Box<T>),
            Cmp(&'static str, Box<T>, Box<T>),
            In(bool, Box<T>, Vec<T>),
            Arith(&'static str, Box<T>, Box<T>),
            Call(&'static str, Vec<T>),
            Paren(Box<T>),
        }

        fn b(t: T) -> Box<T> {
            Box::new(t)
        }

        fn prec(t: &T) -> u8 {
            match t {
                T::Or(..) => 1,
                T::And(..) => 2,
                T::Not(_) => 3,
                T::Cmp(..) | T::In(..) => 4,
                T::Arith("+" | "-", ..) => 5,
                T::Arith(..) => 6,
                T::Neg(_) => 7,
                T::Num(v) if v.is_sign_negative() => 7,
                _ => 8,
            }
        }

        fn print_child(t: &T, min: u8, out: &mut String) {
            if prec(t) < min {
                out.push('(');
                print(t, out);
                out.push(')');
            } else {
                print(t, out);
            }
        }

        fn print(t: &T, out: &mut String) {
            match t {
                T::Num(v) => out.push_str(&v.to_string()),
                T::Str(s) => {
                    out.push('\'');
                    out.push_str(&s.replace('\\', "\\\\").replace('\'', "\\'"));
                    out.push('\'');
                }
                T::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
                T::Null => out.push_str("null"),
                T::Field(f) => out.push_str(f),
                T::Not(a) => {
                    out.push_str("not ");
                    print_child(a, 3, out);
                }
                T::Neg(a) => {
                    out.push('-');
                    print_child(a, 7, out);
                }
                T::And(l, r) => {
                    print_child(l, 2, out);
                    out.push_str(" and ");
                    print_child(r, 3, out);
                }
                T::Or(l, r) => {
                    print_child(l, 1, out);
                    out.push_str(" or ");
                    print_child(r, 2, out);
                }
                T::Cmp(op, l, r) => {
                    print_child(l, 5, out);
                    out.push_str(&format!(" {op} "));
                    print_child(r, 5, out);
                }
                T::In(negated, l, items) => {
                    print_child(l, 5, out);
                    out.push_str(if *negated { " not in [" } else { " in [" });
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        print(item, out);
                    }
                    out.push(']');
                }
                T::Arith(op, l, r) => {
                    let p = prec(t);
                    print_child(l, p, out);
                    out.push_str(&format!(" {op} "));
                    print_child(r, p + 1, out);
                }
                T::Call(f, args) => {
                    out.push_str(f);
                    out.push('(');
                    for (i, a) in args.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        print(a, out);
                    }
                    out.push(')');
                }
                T::Paren(a) => {
                    out.push('(');
                    print(a, out);
                    out.push(')');
                }
            }
        }

        fn collect_fields(t: &T, out: &mut Vec<&'static str>) {
            match t {
                T::Field(f) => {
                    if !out.contains(f) {
                        out.push(f);
                    }
                }
                T::Num(_) | T::Str(_) | T::Bool(_) | T::Null => {}
                T::Not(a) | T::Neg(a) | T::Paren(a) => collect_fields(a, out),
                T::And(l, r) | T::Or(l, r) | T::Cmp(_, l, r) | T::Arith(_, l, r) => {
                    collect_fields(l, out);
                    collect_fields(r, out);
                }
                T::In(_, l, items) => {
                    collect_fields(l, out);
                    items.iter().for_each(|i| collect_fields(i, out));
                }
                T::Call(_, args) => args.iter().for_each(|a| collect_fields(a, out)),
            }
        }

        // ---- reference interpreter (allocating, obviously-correct) ----

        #[derive(Debug, Clone, PartialEq)]
        enum R {
            Null,
            N(Decimal),
            S(String),
            B(bool),
        }

        #[derive(Debug, Clone)]
        struct Data {
            n: [Option<Decimal>; 3],
            s: [Option<String>; 2],
            b: [Option<bool>; 2],
        }

        impl Data {
            fn lookup(&self, f: &str) -> R {
                if let Some(i) = NUM_FIELDS.iter().position(|x| *x == f) {
                    return self.n[i].map_or(R::Null, R::N);
                }
                if let Some(i) = STR_FIELDS.iter().position(|x| *x == f) {
                    return self.s[i].clone().map_or(R::Null, R::S);
                }
                let i = BOOL_FIELDS.iter().position(|x| *x == f).unwrap();
                self.b[i].map_or(R::Null, R::B)
            }

            fn values(&self) -> Vec<Value<'_>> {
                let mut v = Vec::new();
                v.extend(self.n.iter().map(|x| Value::from(*x)));
                v.extend(self.s.iter().map(|x| Value::from(x.as_deref())));
                v.extend(self.b.iter().map(|x| Value::from(*x)));
                v
            }
        }

        fn reference(t: &T, data: &Data) -> R {
            let ev = |x: &T| reference(x, data);
            match t {
                T::Num(v) => R::N(*v),
                T::Str(s) => R::S(s.clone()),
                T::Bool(v) => R::B(*v),
                T::Null => R::Null,
                T::Field(f) => data.lookup(f),
                T::Paren(a) => ev(a),
                T::Not(a) => match ev(a) {
                    R::B(v) => R::B(!v),
                    _ => R::Null,
                },
                T::Neg(a) => match ev(a) {
                    R::N(v) => R::N(-v),
                    _ => R::Null,
                },
                T::And(l, r) => match (ev(l), ev(r)) {
                    (R::B(false), _) | (_, R::B(false)) => R::B(false),
                    (R::B(true), R::B(true)) => R::B(true),
                    _ => R::Null,
                },
                T::Or(l, r) => match (ev(l), ev(r)) {
                    (R::B(true), _) | (_, R::B(true)) => R::B(true),
                    (R::B(false), R::B(false)) => R::B(false),
                    _ => R::Null,
                },
                T::Arith(op, l, r) => match (ev(l), ev(r)) {
                    (R::N(a), R::N(b)) => {
                        let v = match *op {
                            "+" => a.checked_add(b),
                            "-" => a.checked_sub(b),
                            "*" => a.checked_mul(b),
                            _ => a.checked_div(b),
                        };
                        v.map_or(R::Null, R::N)
                    }
                    _ => R::Null,
                },
                T::Cmp(op, l, r) => {
                    let ord = match (ev(l), ev(r)) {
                        (R::N(a), R::N(b)) => a.cmp(&b),
                        (R::S(a), R::S(b)) => a.cmp(&b),
                        (R::B(a), R::B(b)) => a.cmp(&b),
                        _ => return R::Null,
                    };
                    R::B(match *op {
                        "==" => ord.is_eq(),
                        "!=" => ord.is_ne(),
                        "<" => ord.is_lt(),
                        "<=" => ord.is_le(),
                        ">" => ord.is_gt(),
                        _ => ord.is_ge(),
                    })
                }
                T::In(negated, l, items) => {
                    let v = ev(l);
                    if v == R::Null {
                        return R::Null;
                    }
                    let found = items.iter().any(|i| ev(i) == v);
                    R::B(found != *negated)
                }
                T::Call(f, args) => {
                    let vals: Vec<R> = args.iter().map(ev).collect();
                    match (*f, vals.as_slice()) {
                        ("is_null", [v]) => R::B(*v == R::Null),
                        ("abs", [R::N(a)]) => R::N(a.abs()),
                        ("min", [R::N(a), R::N(b)]) => R::N(*a.min(b)),
                        ("max", [R::N(a), R::N(b)]) => R::N(*a.max(b)),
                        ("lower", [R::S(s)]) => R::S(s.to_lowercase()),
                        ("contains", [R::S(h), R::S(n)]) => R::B(h.contains(n.as_str())),
                        ("starts_with", [R::S(s), R::S(p)]) => R::B(s.starts_with(p.as_str())),
                        _ => R::Null,
                    }
                }
            }
        }

        // ---- generators ----

        const DECIMALS: [&str; 11] = [
            "0",
            "1",
            "2",
            "3",
            "-1",
            "0.5",
            "-2.25",
            "7.5",
            "100",
            "0.001",
            "100000000000000000000",
        ];
        const STRINGS: [&str; 12] = [
            "", "a", "A", "b", "ab", "aB", "Ab", "BA", "it's", "Ä", "ä", "x\\y",
        ];
        const CMP_OPS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];

        fn dec() -> impl Strategy<Value = Decimal> {
            select(DECIMALS.to_vec()).prop_map(d)
        }

        fn string() -> impl Strategy<Value = String> {
            select(STRINGS.to_vec()).prop_map(str::to_owned)
        }

        fn num_expr() -> BoxedStrategy<T> {
            let leaf = prop_oneof![
                dec().prop_map(T::Num),
                select(NUM_FIELDS.to_vec()).prop_map(T::Field)
            ];
            leaf.prop_recursive(5, 32, 2, |inner| {
                prop_oneof![
                    1 => inner.clone().prop_map(|a| T::Neg(b(a))),
                    6 => (select(vec!["+", "-", "*", "/"]), inner.clone(), inner.clone())
                        .prop_map(|(op, l, r)| T::Arith(op, b(l), b(r))),
                    1 => (select(vec!["+", "*"]), inner.clone()).prop_map(|(op, l)| T::Arith(op, b(l), b(T::Null))),
                    1 => inner.clone().prop_map(|a| T::Call("abs", vec![a])),
                    1 => (select(vec!["min", "max"]), inner.clone(), inner.clone())
                        .prop_map(|(f, l, r)| T::Call(f, vec![l, r])),
                    1 => inner.prop_map(|a| T::Paren(b(a))),
                ]
            })
            .boxed()
        }

        fn str_expr() -> BoxedStrategy<T> {
            let leaf = prop_oneof![
                string().prop_map(T::Str),
                select(STR_FIELDS.to_vec()).prop_map(T::Field)
            ];
            let lower = |a: T| T::Call("lower", vec![a]);
            prop_oneof![
                3 => leaf.clone(),
                3 => leaf.clone().prop_map(lower),
                1 => leaf.clone().prop_map(move |a| lower(lower(a))),
                1 => leaf.prop_map(move |a| T::Paren(b(lower(a)))),
            ]
            .boxed()
        }

        fn bool_expr() -> BoxedStrategy<T> {
            let leaf =
                prop_oneof![
                    any::<bool>().prop_map(T::Bool),
                    select(BOOL_FIELDS.to_vec()).prop_map(T::Field),
                    (select(CMP_OPS.to_vec()), num_expr(), num_expr())
                        .prop_map(|(op, l, r)| T::Cmp(op, b(l), b(r))),
                    (select(CMP_OPS.to_vec()), str_expr(), str_expr())
                        .prop_map(|(op, l, r)| T::Cmp(op, b(l), b(r))),
                    (
                        any::<bool>(),
                        num_expr(),
                        prop::collection::vec(dec().prop_map(T::Num), 0..4)
                    )
                        .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
                    (
                        any::<bool>(),
                        str_expr(),
                        prop::collection::vec(string().prop_map(T::Str), 0..4)
                    )
                        .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
                    (
                        select(vec!["contains", "starts_with"]),
                        str_expr(),
                        str_expr()
                    )
                        .prop_map(|(f, l, r)| T::Call(f, vec![l, r])),
                    prop_oneof![num_expr(), str_expr(), Just(T::Null)]
                        .prop_map(|a| T::Call("is_null", vec![a])),
                ];
            leaf.prop_recursive(4, 32, 2, |inner| {
                prop_oneof![
                    inner.clone().prop_map(|a| T::Not(b(a))),
                    (inner.clone(), inner.clone()).prop_map(|(l, r)| T::And(b(l), b(r))),
                    (inner.clone(), inner.clone()).prop_map(|(l, r)| T::Or(b(l), b(r))),
                    (select(vec!["==", "!="]), inner.clone(), inner.clone())
                        .prop_map(|(op, l, r)| T::Cmp(op, b(l), b(r))),
                    (
                        any::<bool>(),
                        inner.clone(),
                        prop::collection::vec(any::<bool>().prop_map(T::Bool), 0..3)
                    )
                        .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
                    inner.clone().prop_map(|a| T::And(b(a), b(T::Null))),
                    inner.clone().prop_map(|a| T::Or(b(T::Null), b(a))),
                    Just(T::Not(b(T::Null))),
                    inner.clone().prop_map(|a| T::Call("is_null", vec![a])),
                    inner.prop_map(|a| T::Paren(b(a))),
                ]
            })
            .boxed()
        }

        fn data() -> impl Strategy<Value = Data> {
            let num = prop::option::weighted(0.9, dec()).boxed();
            let text = prop_oneof![string(), "[aAbBÄä'\\\\]{0,4}"];
            let s = prop::option::weighted(0.9, text).boxed();
            let bl = prop::option::weighted(0.8, any::<bool>());
            (
                [num.clone(), num.clone(), num],
                [s.clone(), s],
                [bl.clone(), bl],
            )
                .prop_map(|(n, s, b)| Data { n, s, b })
        }

        const SOUP: [&str; 44] = [
            "o.n1",
            "o.s1",
            "c.b2",
            "zz",
            "1",
            "0",
            "2.5",
            "-",
            "+",
            "*",
            "/",
            "(",
            ")",
            "[",
            "]",
            ",",
            "and",
            "or",
            "not",
            "in",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "'x'",
            "\"y\"",
            "'",
            "abs(",
            "min(",
            "lower(",
            "is_null(",
            "contains(",
            "true",
            "false",
            "null",
            "=",
            "!",
            "&",
            ".",
            "é",
            "\\",
            "99999999999999999999999999999",
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn compile_never_panics_on_arbitrary_text(src in any::<String>()) {
                let _ = Expr::compile(&src, &prop_schema());
            }

            #[test]
            fn compile_never_panics_on_token_soup(
                toks in prop::collection::vec(select(SOUP.to_vec()), 0..40),
                spaced in any::<bool>(),
                rows in prop::collection::vec(data(), 1..3),
            ) {
                let src = toks.join(if spaced { " " } else { "" });
                match Expr::compile(&src, &prop_schema()) {
                    Ok(e) => {
                        for r in &rows {
                            let _ = e.eval_bool(&r.values());
                        }
                    }
                    Err(err) => {
                        prop_assert!(err.column >= 1 && err.line >= 1);
                        prop_assert!(err.offset <= src.len());
                        prop_assert!(!err.message.is_empty());
                    }
                }
            }

            #[test]
            fn compiled_arithmetic_matches_reference(
                tree in num_expr(),
                rows in prop::collection::vec(data(), 1..4),
            ) {
                let mut printed = String::new();
                print(&tree, &mut printed);
                let schema = prop_schema();
                for r in &rows {
                    // `<tree> == <reference value>` must hold exactly (or `is_null(<tree>)`).
                    let src = match reference(&tree, r) {
                        R::N(v) => format!("{printed} == {v}"),
                        R::Null => format!("is_null({printed})"),
                        other => return Err(TestCaseError::fail(format!("reference gave {other:?}"))),
                    };
                    let expr = match Expr::compile(&src, &schema) {
                        Ok(e) => e,
                        Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
                    };
                    prop_assert_eq!(expr.eval(&r.values()), Some(true), "`{}` on {:?}", src, r);
                }
            }

            #[test]
            fn string_operations_match_reference(
                op in select(vec!["contains", "starts_with", "==", "!=", "<", ">=", "in", "not in"]),
                l in str_expr(),
                r in str_expr(),
                extra in string(),
                rows in prop::collection::vec(data(), 1..4),
            ) {
                let tree = match op {
                    "contains" | "starts_with" => T::Call(op, vec![l, r]),
                    "in" | "not in" => match r {
                        T::Str(_) => T::In(op == "not in", b(l), vec![r, T::Str(extra)]),
                        _ => T::In(op == "not in", b(l), vec![T::Str(extra)]),
                    },
                    _ => T::Cmp(op, b(l), b(r)),
                };
                let mut src = String::new();
                print(&tree, &mut src);
                let expr = match Expr::compile(&src, &prop_schema()) {
                    Ok(e) => e,
                    Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
                };
                for r in &rows {
                    let expected = match reference(&tree, r) {
                        R::B(v) => Some(v),
                        _ => None,
                    };
                    prop_assert_eq!(expr.eval(&r.values()), expected, "`{}` on {:?}", src, r);
                }
            }

            #[test]
            fn compiled_evaluation_matches_reference(
                tree in bool_expr(),
                rows in prop::collection::vec(data(), 1..4),
            ) {
                let mut src = String::new();
                print(&tree, &mut src);
                prop_assume!(src.len() <= MAX_SOURCE_LEN);
                let schema = prop_schema();
                let expr = match Expr::compile(&src, &schema) {
                    Ok(e) => e,
                    Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
                };
                let mut names = Vec::new();
                collect_fields(&tree, &mut names);
                let ids: Vec<FieldId> = names.iter().map(|n| schema.id(n).unwrap()).collect();
                prop_assert_eq!(expr.fields_used(), ids);
                for r in &rows {
                    let expected = match reference(&tree, r) {
                        R::B(v) => Some(v),
                        R::Null => None,
                        other => return Err(TestCaseError::fail(format!("reference gave {other:?} for `{src}`"))),
                    };
                    let values = r.values();
                    prop_assert_eq!(expr.eval(&values), expected, "`{}` on {:?}", src, r);
                    prop_assert_eq!(expr.eval_bool(&values), expected == Some(true));
                }
            }
        }
    }
}
