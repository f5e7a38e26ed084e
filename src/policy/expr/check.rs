//! Type checker: syntax tree -> typed tree.

use super::eval::{AnyNode, BNode, NNode, SNode};
use super::parse::{Ast, AstKind, CmpOp};
use super::*;

pub(super) const FUNCTIONS: [(&str, usize); 7] = [
    ("abs", 1),
    ("min", 2),
    ("max", 2),
    ("is_null", 1),
    ("lower", 1),
    ("contains", 2),
    ("starts_with", 2),
];

pub(super) enum Typed {
    B(BNode),
    N(NNode),
    S(SNode),
    /// The `null` literal, which fits any type.
    Null,
}

impl Typed {
    pub(super) fn noun(&self) -> &'static str {
        match self {
            Typed::B(_) => FieldType::Bool.noun(),
            Typed::N(_) => FieldType::Number.noun(),
            Typed::S(_) => FieldType::String.noun(),
            Typed::Null => "null",
        }
    }
}

pub(super) struct Checker<'a> {
    pub(super) src: &'a str,
    pub(super) schema: &'a Schema,
    pub(super) used: Vec<FieldId>,
}

impl Checker<'_> {
    pub(super) fn err(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, at, message)
    }

    pub(super) fn snip(&self, ast: &Ast) -> String {
        snippet(self.src, ast.start, ast.end)
    }

    pub(super) fn mismatch(&self, ast: &Ast, what: &str, got: &Typed) -> ExprError {
        self.err(
            ast.start,
            format!("{what}, but `{}` is {}", self.snip(ast), got.noun()),
        )
    }

    pub(super) fn bool_operand(&mut self, ast: &Ast, what: &str) -> Result<BNode, ExprError> {
        match self.check(ast)? {
            Typed::B(b) => Ok(b),
            Typed::Null => Ok(BNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    pub(super) fn num_operand(&mut self, ast: &Ast, what: &str) -> Result<NNode, ExprError> {
        match self.check(ast)? {
            Typed::N(n) => Ok(n),
            Typed::Null => Ok(NNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    pub(super) fn str_operand(&mut self, ast: &Ast, what: &str) -> Result<SNode, ExprError> {
        match self.check(ast)? {
            Typed::S(s) => Ok(s),
            Typed::Null => Ok(SNode::Const(None)),
            other => Err(self.mismatch(ast, what, &other)),
        }
    }

    pub(super) fn num_pair(
        &mut self,
        a: &Ast,
        b: &Ast,
        what: &str,
    ) -> Result<Box<[NNode; 2]>, ExprError> {
        Ok(Box::new([
            self.num_operand(a, what)?,
            self.num_operand(b, what)?,
        ]))
    }

    pub(super) fn str_pair(
        &mut self,
        a: &Ast,
        b: &Ast,
        what: &str,
    ) -> Result<Box<[SNode; 2]>, ExprError> {
        Ok(Box::new([
            self.str_operand(a, what)?,
            self.str_operand(b, what)?,
        ]))
    }

    pub(super) fn root(&mut self, ast: &Ast) -> Result<BNode, ExprError> {
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

    pub(super) fn check(&mut self, ast: &Ast) -> Result<Typed, ExprError> {
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

    pub(super) fn field(&mut self, path: &str, at: usize) -> Result<Typed, ExprError> {
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

    pub(super) fn unknown_field(&self, path: &str, at: usize) -> ExprError {
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

    pub(super) fn compare(
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

    pub(super) fn null_comparison(&self, null: &Ast, sym: &str) -> ExprError {
        self.err(
            null.start,
            format!(
                "comparing with `null` using `{sym}` never matches (the result is always null); use `is_null(...)` to test for a missing value"
            ),
        )
    }

    pub(super) fn membership(
        &mut self,
        negated: bool,
        lhs: &Ast,
        items: &[Ast],
    ) -> Result<Typed, ExprError> {
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

    pub(super) fn call(&mut self, name: &str, at: usize, args: &[Ast]) -> Result<Typed, ExprError> {
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

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
pub(super) fn suggest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
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
