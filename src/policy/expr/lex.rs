//! Lexer: source text -> tokens with byte spans.

use super::*;
use std::str::FromStr;

use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn scan_while(bytes: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while bytes.get(i).is_some_and(|b| pred(*b)) {
        i += 1;
    }
    i
}

pub(super) fn slice(src: &str, start: usize, end: usize) -> &str {
    src.get(start..end).unwrap_or("")
}

pub(super) fn describe_char_at(src: &str, at: usize) -> String {
    match src.get(at..).and_then(|rest| rest.chars().next()) {
        None => "the end of the expression".to_owned(),
        Some(c) if c.is_whitespace() => "a space".to_owned(),
        Some(c) => format!("`{c}`"),
    }
}

pub(super) fn keyword(word: &str) -> Option<Tok> {
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

pub(super) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
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
pub(super) fn lex_string(
    src: &str,
    start: usize,
    quote: char,
) -> Result<(String, usize), ExprError> {
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
pub(super) fn describe(src: &str, token: &Token) -> String {
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
