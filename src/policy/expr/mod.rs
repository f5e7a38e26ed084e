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
//!
//! # Layout
//!
//! One file a phase, each feeding the next: [`lex`] (text -> tokens), [`parse`]
//! (tokens -> untyped syntax tree with spans), [`check`] (syntax tree -> typed,
//! constant-folded tree, all type and name errors) and [`eval`] (the typed tree
//! and its three-valued evaluation). This file holds the public surface
//! ([`Expr`], [`Schema`], [`Record`], [`ExprError`]) and the message helpers the
//! phases share.

mod check;
mod eval;
mod lex;
mod parse;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use rust_decimal::Decimal;

use check::Checker;
use eval::BNode;
use lex::lex;
use parse::Parser;

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
