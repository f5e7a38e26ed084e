//! Fast text for evidence, titles and recommendations.
//!
//! Evidence is written for every exception of a scan (tens of thousands on a large
//! snapshot). Two costs dominate there: `Decimal`'s own `Display` after `normalize()` or
//! `round_dp()` divides its 96-bit mantissa digit by digit, and `format!` itself (the
//! `core::fmt` machinery, padding checks, and a `String` grown by doubling).
//!
//! [`Num`] and [`Money`] take the common case — a mantissa that fits in 64 bits — through
//! integer formatting instead, and fall back otherwise. The [`text!`](crate::text) macro
//! builds a `String` from [`Put`] pieces: it sizes the string once from the pieces' length
//! bounds and appends each piece directly, with hand-written integer, decimal and date
//! writers. Its output is byte-identical to the `format!` it replaces (tests below).

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;

/// A quantity or amount without trailing zeros (`12`, `12.5`).
#[derive(Clone, Copy)]
pub struct Num(pub Decimal);

/// An amount rounded to two decimals, keeping them (`12.50`).
#[derive(Clone, Copy)]
pub struct Money(pub Decimal);

fn write_scaled(
    f: &mut fmt::Formatter<'_>,
    negative: bool,
    mantissa: u64,
    scale: u32,
    trim: bool,
) -> fmt::Result {
    let pow = 10u64.checked_pow(scale);
    let Some(pow) = pow else {
        return Err(fmt::Error);
    };
    let int = mantissa / pow;
    let mut frac = mantissa % pow;
    let mut digits = scale;
    if trim {
        while digits > 0 && frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
    }
    if negative && (int != 0 || frac != 0) {
        f.write_str("-")?;
    }
    if digits == 0 {
        write!(f, "{int}")
    } else {
        write!(f, "{int}.{frac:0width$}", width = digits as usize)
    }
}

fn mantissa_u64(d: &Decimal) -> Option<u64> {
    u64::try_from(d.mantissa().unsigned_abs()).ok()
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match mantissa_u64(&self.0) {
            Some(m) if self.0.scale() <= 18 => {
                write_scaled(f, self.0.is_sign_negative(), m, self.0.scale(), true)
            }
            _ => write!(f, "{}", self.0.normalize()),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = if self.0.scale() == 2 {
            self.0
        } else {
            self.0.round_dp(2)
        };
        match mantissa_u64(&d) {
            Some(m) if d.scale() <= 2 => {
                // Always two decimals: rescale to exactly 2.
                let m = m.saturating_mul(10u64.pow(2 - d.scale()));
                write_scaled(f, d.is_sign_negative(), m, 2, false)
            }
            _ => write!(f, "{d}"),
        }
    }
}

/// A decimal exactly as its `Display` shows it (all `scale` digits kept), for values
/// already rounded with `round_dp`.
#[derive(Clone, Copy)]
pub struct Plain(pub Decimal);

/// A date as `YYYY-MM-DD`, like `{:04}-{:02}-{:02}` of its year, month and day.
#[derive(Clone, Copy)]
pub struct Day(pub DateTime<Utc>);

/// A date as [`Day`], or the text when there is none.
#[derive(Clone, Copy)]
pub struct DayOr(pub Option<DateTime<Utc>>, pub &'static str);

/// A piece of text that can append itself to a `String` without `core::fmt`.
pub trait Put {
    /// An upper bound of the bytes [`Put::put`] appends (used to size the string once).
    fn max_len(&self) -> usize;
    /// Append the text.
    fn put(&self, out: &mut String);
}

/// Build a `String` from [`Put`] pieces, like `format!` with only `{}` placeholders:
/// `text!("net ", Money(x), " for ", name)`. Each piece is evaluated once; the string is
/// allocated once, from the sum of the pieces' length bounds. Up to 24 pieces.
#[macro_export]
macro_rules! text {
    ($($piece:expr),+ $(,)?) => {{
        let pieces = ($(&$piece,)+);
        let mut out =
            ::std::string::String::with_capacity($crate::core::fmt::Put::max_len(&pieces));
        $crate::core::fmt::Put::put(&pieces, &mut out);
        out
    }};
}

/// A tuple of pieces is a piece: what [`text!`](crate::text) builds.
macro_rules! put_tuple {
    ($($p:ident)+) => {
        #[allow(non_snake_case)]
        impl<$($p: Put),+> Put for ($($p,)+) {
            fn max_len(&self) -> usize {
                let ($($p,)+) = self;
                0 $(+ $p.max_len())+
            }
            fn put(&self, out: &mut String) {
                let ($($p,)+) = self;
                $($p.put(out);)+
            }
        }
    };
}
put_tuple!(P0);
put_tuple!(P0 P1);
put_tuple!(P0 P1 P2);
put_tuple!(P0 P1 P2 P3);
put_tuple!(P0 P1 P2 P3 P4);
put_tuple!(P0 P1 P2 P3 P4 P5);
put_tuple!(P0 P1 P2 P3 P4 P5 P6);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19 P20);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19 P20 P21);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19 P20 P21 P22);
put_tuple!(P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19 P20 P21 P22 P23);

impl<T: Put + ?Sized> Put for &T {
    fn max_len(&self) -> usize {
        (**self).max_len()
    }
    fn put(&self, out: &mut String) {
        (**self).put(out)
    }
}

impl Put for str {
    fn max_len(&self) -> usize {
        self.len()
    }
    fn put(&self, out: &mut String) {
        out.push_str(self)
    }
}

impl Put for String {
    fn max_len(&self) -> usize {
        self.len()
    }
    fn put(&self, out: &mut String) {
        out.push_str(self)
    }
}

impl Put for char {
    fn max_len(&self) -> usize {
        self.len_utf8()
    }
    fn put(&self, out: &mut String) {
        out.push(*self)
    }
}

/// Append `v` in decimal, at least `width` digits (zero-padded).
fn put_u64(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.push('0');
    }
    for &b in buf.get(i..).unwrap_or(&[]) {
        out.push(char::from(b));
    }
}

fn put_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    put_u64(out, v.unsigned_abs(), 0);
}

/// Digits of `v` in decimal.
fn digits(v: u64) -> usize {
    v.checked_ilog10().unwrap_or(0) as usize + 1
}

macro_rules! put_int {
    ($($t:ty),*) => {$(
        impl Put for $t {
            fn max_len(&self) -> usize {
                let v = i64::from(*self);
                digits(v.unsigned_abs()) + usize::from(v < 0)
            }
            fn put(&self, out: &mut String) {
                put_i64(out, i64::from(*self))
            }
        }
    )*};
}
put_int!(u8, u16, u32, i32, i64);

impl Put for u64 {
    fn max_len(&self) -> usize {
        digits(*self)
    }
    fn put(&self, out: &mut String) {
        put_u64(out, *self, 0)
    }
}

impl Put for usize {
    fn max_len(&self) -> usize {
        digits(*self as u64)
    }
    fn put(&self, out: &mut String) {
        put_u64(out, *self as u64, 0)
    }
}

/// Append `mantissa / 10^scale` like [`write_scaled`].
fn put_scaled(out: &mut String, negative: bool, mantissa: u64, scale: u32, trim: bool) -> bool {
    let Some(pow) = 10u64.checked_pow(scale) else {
        return false;
    };
    let int = mantissa / pow;
    let mut frac = mantissa % pow;
    let mut digits = scale;
    if trim {
        while digits > 0 && frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
    }
    if negative && (int != 0 || frac != 0) {
        out.push('-');
    }
    put_u64(out, int, 0);
    if digits > 0 {
        out.push('.');
        put_u64(out, frac, digits as usize);
    }
    true
}

/// Fall back to `Display` for what the fast paths do not cover.
fn put_display(out: &mut String, v: impl fmt::Display) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// Bytes a decimal can take in text: 29 digits, a sign, a point and a leading zero.
const DECIMAL_MAX_LEN: usize = 32;

/// A bound of the text of `d` with at least `min_scale` decimals: its digits (or its
/// scale's, for a leading `0.`), a sign, a point and a zero — tight for the common case,
/// so strings are not over-allocated.
fn decimal_len(d: &Decimal, min_scale: u32) -> usize {
    match mantissa_u64(d) {
        Some(m) => digits(m).max(d.scale() as usize + 1) + min_scale as usize + 3,
        None => DECIMAL_MAX_LEN,
    }
}

impl Put for Num {
    fn max_len(&self) -> usize {
        decimal_len(&self.0, 0)
    }
    fn put(&self, out: &mut String) {
        let done = match mantissa_u64(&self.0) {
            Some(m) if self.0.scale() <= 18 => {
                put_scaled(out, self.0.is_sign_negative(), m, self.0.scale(), true)
            }
            _ => false,
        };
        if !done {
            put_display(out, self);
        }
    }
}

impl Put for Money {
    fn max_len(&self) -> usize {
        // Rounding to two decimals can add a digit (9.999 → 10.00) and pad to two.
        decimal_len(&self.0, 2) + 1
    }
    fn put(&self, out: &mut String) {
        let d = if self.0.scale() == 2 {
            self.0
        } else {
            self.0.round_dp(2)
        };
        let done = match mantissa_u64(&d) {
            Some(m) if d.scale() <= 2 => {
                let m = m.saturating_mul(10u64.pow(2 - d.scale()));
                put_scaled(out, d.is_sign_negative(), m, 2, false)
            }
            _ => false,
        };
        if !done {
            put_display(out, self);
        }
    }
}

impl Put for Plain {
    fn max_len(&self) -> usize {
        decimal_len(&self.0, 0)
    }
    fn put(&self, out: &mut String) {
        // `Decimal`'s Display shows the sign of a negative zero too, and every scale digit.
        match mantissa_u64(&self.0) {
            Some(m) if self.0.scale() <= 18 => {
                if self.0.is_sign_negative() {
                    out.push('-');
                }
                put_scaled(out, false, m, self.0.scale(), false);
            }
            _ => put_display(out, self.0),
        }
    }
}

impl Put for Decimal {
    fn max_len(&self) -> usize {
        decimal_len(self, 0)
    }
    fn put(&self, out: &mut String) {
        Plain(*self).put(out)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.date_naive();
        write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

impl Put for Day {
    fn max_len(&self) -> usize {
        // A year beyond 9999 falls back to Display, which may be longer than 10 bytes.
        16
    }
    fn put(&self, out: &mut String) {
        let d = self.0.date_naive();
        match u64::try_from(d.year()) {
            Ok(y) if y <= 9999 => {
                put_u64(out, y, 4);
                out.push('-');
                put_u64(out, u64::from(d.month()), 2);
                out.push('-');
                put_u64(out, u64::from(d.day()), 2);
            }
            _ => put_display(out, self),
        }
    }
}

impl Put for DayOr {
    fn max_len(&self) -> usize {
        match self.0 {
            Some(t) => Day(t).max_len(),
            None => self.1.len(),
        }
    }
    fn put(&self, out: &mut String) {
        match self.0 {
            Some(t) => Day(t).put(out),
            None => out.push_str(self.1),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const SAMPLES: [&str; 16] = [
        "0",
        "12",
        "12.50",
        "-3.250",
        "0.001",
        "100",
        "1234567.8900",
        "-0.0",
        "-0",
        "0.00",
        "12.345",
        "12.355",
        "-0.005",
        "99999999999999999999.5",
        "18446744073709551615",
        "18446744073709551616.25",
    ];

    #[test]
    fn put_matches_display() {
        let mut all: Vec<Decimal> = SAMPLES.iter().map(|s| d(s)).collect();
        all.extend([Decimal::MAX, Decimal::MIN, Decimal::new(5, 28)]);
        for x in all {
            assert_eq!(text!(Num(x)), Num(x).to_string(), "{x}");
            assert!(Num(x).to_string().len() <= Num(x).max_len(), "{x}");
            assert!(Money(x).to_string().len() <= Money(x).max_len(), "{x}");
            assert_eq!(text!(Money(x)), Money(x).to_string(), "{x}");
            for dp in 0..4 {
                let r = x.round_dp(dp);
                assert_eq!(text!(Plain(r)), r.to_string(), "{r}");
                assert_eq!(text!(r), r.to_string(), "{r}");
            }
        }
    }

    #[test]
    fn put_integers_and_text() {
        for v in [0i64, 7, -7, 10, 99, 100, i64::MAX, i64::MIN] {
            assert_eq!(text!(v), v.to_string());
        }
        assert_eq!(
            text!(u64::MAX, "/", 0u32, '×', usize::MAX),
            format!("{}/0×{}", u64::MAX, usize::MAX)
        );
        let name = String::from("S00042");
        assert_eq!(text!(name, ": ", &name, 3u8), "S00042: S000423");
    }

    #[test]
    fn put_days() {
        use chrono::TimeZone;
        for (y, m, dd) in [
            (2026, 1, 5),
            (2026, 12, 31),
            (999, 3, 4),
            (10000, 1, 1),
            (-5, 6, 7),
        ] {
            let t = Utc.with_ymd_and_hms(y, m, dd, 13, 0, 0).unwrap();
            assert_eq!(text!(Day(t)), Day(t).to_string());
            assert_eq!(
                Day(t).to_string(),
                format!("{:04}-{:02}-{:02}", y, m, dd),
                "{y}"
            );
        }
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn num_trims_like_normalize() {
        for s in [
            "0",
            "12",
            "12.50",
            "-3.250",
            "0.001",
            "100",
            "1234567.8900",
            "-0.0",
        ] {
            assert_eq!(Num(d(s)).to_string(), d(s).normalize().to_string(), "{s}");
        }
        let big = Decimal::MAX;
        assert_eq!(Num(big).to_string(), big.normalize().to_string());
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(Money(d("12.5")).to_string(), "12.50");
        assert_eq!(Money(d("12")).to_string(), "12.00");
        assert_eq!(
            Money(d("12.345")).to_string(),
            d("12.345").round_dp(2).to_string()
        ); // banker's, like round_dp
        assert_eq!(Money(d("12.355")).to_string(), "12.36");
        assert_eq!(Money(d("-0.5")).to_string(), "-0.50");
        assert_eq!(Money(d("1234567.891")).to_string(), "1234567.89");
        assert_eq!(
            Money(Decimal::MAX).to_string(),
            Decimal::MAX.round_dp(2).to_string()
        );
    }
}
