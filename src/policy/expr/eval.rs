//! The compiled, typed tree and its evaluation.

use super::parse::{ArithOp, CmpOp};
use super::*;
use rust_decimal::Decimal;
use std::cmp::Ordering;

/// A bool-typed node; evaluates to `Some(bool)` or `None` (null).
#[derive(Debug, Clone)]
pub(super) enum BNode {
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
pub(super) enum NNode {
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
pub(super) enum SNode {
    Const(Option<Box<str>>),
    Field(FieldId),
    Lower(Box<SNode>),
}

#[derive(Debug, Clone)]
pub(super) enum AnyNode {
    B(BNode),
    N(NNode),
    S(SNode),
}

impl BNode {
    pub(super) fn eval(&self, rec: &dyn Record) -> Option<bool> {
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

    pub(super) fn is_const(&self) -> bool {
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
    pub(super) fn folded(self) -> BNode {
        if !matches!(self, BNode::Const(_)) && self.is_const() {
            BNode::Const(self.eval(&NullRecord))
        } else {
            self
        }
    }
}

impl NNode {
    pub(super) fn eval(&self, rec: &dyn Record) -> Option<Decimal> {
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

    pub(super) fn is_const(&self) -> bool {
        match self {
            NNode::Const(_) => true,
            NNode::Field(_) => false,
            NNode::Neg(x) | NNode::Abs(x) => x.is_const(),
            NNode::Arith(_, pair) | NNode::Min(pair) | NNode::Max(pair) => {
                pair.iter().all(NNode::is_const)
            }
        }
    }

    pub(super) fn folded(self) -> NNode {
        if !matches!(self, NNode::Const(_)) && self.is_const() {
            NNode::Const(self.eval(&NullRecord))
        } else {
            self
        }
    }
}

impl SNode {
    pub(super) fn eval<'a>(&'a self, rec: &'a dyn Record) -> Option<SVal<'a>> {
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

    pub(super) fn is_const(&self) -> bool {
        match self {
            SNode::Const(_) => true,
            SNode::Field(_) => false,
            SNode::Lower(x) => x.is_const(),
        }
    }

    pub(super) fn folded(self) -> SNode {
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
    pub(super) fn is_null(&self, rec: &dyn Record) -> bool {
        match self {
            AnyNode::B(b) => b.eval(rec).is_none(),
            AnyNode::N(n) => n.eval(rec).is_none(),
            AnyNode::S(s) => s.eval(rec).is_none(),
        }
    }
}

/// A string seen either as is or lowercased, without allocating.
#[derive(Debug, Clone, Copy)]
pub(super) struct SVal<'a> {
    pub(super) text: &'a str,
    pub(super) lower: bool,
}

impl<'a> SVal<'a> {
    pub(super) fn plain(text: &'a str) -> Self {
        SVal { text, lower: false }
    }

    pub(super) fn chars(self) -> Folded<'a> {
        Folded {
            chars: self.text.chars(),
            lower: self.lower,
            pending: None,
        }
    }
}

/// The characters of an [`SVal`], lowercased on the fly when asked to.
#[derive(Clone)]
pub(super) struct Folded<'a> {
    pub(super) chars: std::str::Chars<'a>,
    pub(super) lower: bool,
    pub(super) pending: Option<std::char::ToLowercase>,
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

pub(super) fn str_cmp(a: SVal<'_>, b: SVal<'_>) -> Ordering {
    if a.lower || b.lower {
        a.chars().cmp(b.chars())
    } else {
        a.text.cmp(b.text)
    }
}

/// True when `prefix` yields a prefix of `s`.
pub(super) fn is_prefix(mut s: Folded<'_>, prefix: Folded<'_>) -> bool {
    for c in prefix {
        if s.next() != Some(c) {
            return false;
        }
    }
    true
}

pub(super) fn str_starts_with(s: SVal<'_>, prefix: SVal<'_>) -> bool {
    if s.lower || prefix.lower {
        is_prefix(s.chars(), prefix.chars())
    } else {
        s.text.starts_with(prefix.text)
    }
}

pub(super) fn str_contains(hay: SVal<'_>, needle: SVal<'_>) -> bool {
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
