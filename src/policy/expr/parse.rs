//! Parser: tokens -> untyped syntax tree with source spans.

use super::lex::{Tok, Token, describe, slice};
use super::*;
use rust_decimal::Decimal;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(super) fn from_tok(tok: &Tok) -> Option<CmpOp> {
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

    pub(super) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub(super) fn test(self, ord: Ordering) -> bool {
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
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }

    pub(super) fn apply(self, a: Decimal, b: Decimal) -> Option<Decimal> {
        match self {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => a.checked_div(b),
        }
    }
}

#[derive(Debug)]
pub(super) struct Ast {
    pub(super) kind: AstKind,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) depth: usize,
}

#[derive(Debug)]
pub(super) enum AstKind {
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
    pub(super) fn child_depth(&self) -> usize {
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

    pub(super) fn literal_noun(&self) -> &'static str {
        match self {
            AstKind::Num(_) => "a number",
            AstKind::Str(_) => "a string",
            AstKind::Bool(_) => "a bool",
            _ => "null",
        }
    }
}

pub(super) struct Parser<'s> {
    pub(super) src: &'s str,
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) nesting: usize,
    pub(super) eof: Token,
}

impl<'s> Parser<'s> {
    pub(super) fn new(src: &'s str, toks: Vec<Token>) -> Self {
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

    pub(super) fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.eof)
    }

    pub(super) fn peek_tok(&self) -> &Tok {
        &self.peek().tok
    }

    pub(super) fn peek2_tok(&self) -> &Tok {
        self.toks
            .get(self.pos + 1)
            .map_or(&self.eof.tok, |t| &t.tok)
    }

    pub(super) fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        token
    }

    pub(super) fn err(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, at, message)
    }

    pub(super) fn found(&self) -> String {
        describe(self.src, self.peek())
    }

    pub(super) fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            Err(self.err(at, too_deep()))
        } else {
            Ok(())
        }
    }

    pub(super) fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    pub(super) fn node(
        &self,
        kind: AstKind,
        start: usize,
        end: usize,
        at: usize,
    ) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_root(&mut self) -> Result<Ast, ExprError> {
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
    pub(super) fn parse_chain(
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

    pub(super) fn parse_or(&mut self) -> Result<Ast, ExprError> {
        self.enter(self.peek().start)?;
        let ast = self.parse_chain(true, Self::parse_and)?;
        self.leave();
        Ok(ast)
    }

    pub(super) fn parse_and(&mut self) -> Result<Ast, ExprError> {
        self.parse_chain(false, Self::parse_not)
    }

    pub(super) fn parse_not(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn at_comparison(&self) -> bool {
        let tok = self.peek_tok();
        CmpOp::from_tok(tok).is_some()
            || matches!(tok, Tok::In)
            || (matches!(tok, Tok::Not) && matches!(self.peek2_tok(), Tok::In))
    }

    pub(super) fn parse_cmp(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_add(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_mul(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_arith_rhs(
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

    pub(super) fn parse_unary(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_primary(&mut self) -> Result<Ast, ExprError> {
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

    pub(super) fn parse_call(&mut self, name_token: Token) -> Result<Ast, ExprError> {
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
    pub(super) fn parse_list(&mut self, negated: bool) -> Result<(Vec<Ast>, usize), ExprError> {
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

    pub(super) fn parse_list_item(&mut self) -> Result<Ast, ExprError> {
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

pub(super) fn push_flat(items: &mut Vec<Ast>, ast: Ast, is_or: bool) {
    match ast.kind {
        AstKind::Or(inner) if is_or => items.extend(inner),
        AstKind::And(inner) if !is_or => items.extend(inner),
        kind => items.push(Ast { kind, ..ast }),
    }
}
