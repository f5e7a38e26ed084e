//! Fast, allocation-free display of decimals for evidence text.
//!
//! Evidence is written for every exception of a scan (tens of thousands on a large
//! snapshot); `Decimal`'s own `Display` after `normalize()` or `round_dp()` divides its
//! 96-bit mantissa digit by digit. These wrappers take the common case — a mantissa that
//! fits in 64 bits — through integer formatting instead, and fall back otherwise.

use std::fmt;

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
        while digits > 0 && frac % 10 == 0 {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

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
