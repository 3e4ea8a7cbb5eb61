//! Exact decimal arithmetic in SQL, for `hqx sql`: the functions of the
//! sqlite3 shell's `decimal` extension (`ext/misc/decimal.c`), built on
//! `rust_decimal`.
//!
//! The journal keeps every price, quantity and fee as TEXT, exactly as
//! written or received. SQLite's own `sum()` and `+` would turn them into
//! binary floats (`0.1 + 0.2` is `0.30000000000000004`); these functions
//! never do. They are registered on `hqx sql`'s read-only connection:
//!
//! | function | result |
//! |---|---|
//! | `decimal(X)` | X as a decimal, as text |
//! | `decimal_add(X, Y)`, `decimal_sub(X, Y)`, `decimal_mul(X, Y)` | X+Y, X−Y, X×Y, as text |
//! | `decimal_sum(X)` | the sum of a column, as text (aggregate and window function) |
//! | `decimal_cmp(X, Y)` | -1, 0 or 1 (an integer) |
//! | `COLLATE decimal` | orders text by its decimal value |
//!
//! The text of a result follows decimal.c: a sum keeps the most digits after
//! the point of its terms (`1.50 + 2` is `3.50`), a product drops trailing
//! zeros down to the fewer of its factors' (`1.5 × 2.00` is `3.0`). NULL in
//! gives NULL out; `decimal_sum` over no rows is NULL, over only NULLs `0`.
//!
//! Where hqx differs from decimal.c, it is on purpose, and always towards
//! an error rather than a wrong number:
//! - Input must be a decimal: optional sign, digits with an optional point,
//!   an optional exponent (`1.5e-3`), surrounding spaces. decimal.c skips
//!   any other character (`decimal('1.5x')` is `1.5`, `decimal('abc')` is
//!   `0`); here that is an SQL error naming the value. A REAL or a BLOB
//!   argument is an error too (a REAL has already been rounded in binary;
//!   write the decimal as text); INTEGERs are fine.
//! - rust_decimal holds a 96-bit integer and at most 28 digits after the
//!   point (trailing zeros don't count), so magnitudes up to
//!   79228162514264337593543950335 and 28-29 significant digits. A value
//!   or an exact result beyond that is an SQL error, never rounded:
//!   every result is checked to be exact. decimal.c has no limit.
//! - Zero has no sign (decimal.c can print `-0.0`).
//! - `decimal_cmp` compares values: `decimal_cmp('1.0', '1')` is 0
//!   (SQLite 3.40's decimal.c says 1: it counts trailing zeros).

use std::cmp::Ordering;
use std::fmt;

use rusqlite::functions::{Aggregate, Context, FunctionFlags, WindowAggregate};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use rust_decimal::Decimal;

/// Largest exponent accepted in `1e…` input: bounds the zeros a result
/// may be padded with (decimal.c bounds it at a million).
const MAX_EXPONENT: i64 = 1000;

/// Why a value is not a decimal hqx can compute with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalError(pub String);

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecimalError {}

fn out_of_range(what: &str) -> DecimalError {
    DecimalError(format!(
        "{what} is out of range: hqx's decimals hold at most 28 digits after the point and 29 significant digits (magnitude below 79228162514264337593543950336); the value was not rounded"
    ))
}

/// A decimal and how many digits after the point its text shows.
///
/// `value` is exact and normalized (no trailing zeros); `scale` is the
/// number of digits after the point the text keeps, which may be more
/// (`1.50` is the value 1.5 shown with scale 2), as decimal.c keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    value: Decimal,
    scale: u32,
}

impl Dec {
    /// Zero, shown as `0`.
    pub const ZERO: Dec = Dec {
        value: Decimal::ZERO,
        scale: 0,
    };

    /// Parse decimal text: `[spaces][+|-]digits[.digits][e[+|-]digits][spaces]`,
    /// or `.5`, `5.`. Anything else is an error, as is a value out of range.
    pub fn parse(text: &str) -> Result<Dec, DecimalError> {
        let not_a_decimal = || DecimalError(format!("'{text}' is not a decimal number"));
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let b = t.as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let digits_from = |mut i: usize| {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let int_end = digits_from(i);
        let int_digits = &t[i..int_end];
        i = int_end;
        let mut frac_digits = "";
        if b.get(i) == Some(&b'.') {
            let end = digits_from(i + 1);
            frac_digits = &t[i + 1..end];
            i = end;
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(not_a_decimal());
        }
        let mut exponent: i64 = 0;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            let exp_negative = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let end = digits_from(i);
            if end == i {
                return Err(not_a_decimal());
            }
            let e = &t[i..end];
            i = end;
            // More than 4 digits is beyond MAX_EXPONENT anyway.
            let e: i64 = if e.trim_start_matches('0').len() > 4 {
                i64::MAX
            } else {
                e.parse().map_err(|_| not_a_decimal())?
            };
            if e > MAX_EXPONENT {
                return Err(DecimalError(format!(
                    "'{text}': exponents beyond ±{MAX_EXPONENT} are not supported"
                )));
            }
            exponent = if exp_negative { -e } else { e };
        }
        if i != b.len() {
            return Err(not_a_decimal());
        }
        // Digits after the point in the text: what decimal.c shows.
        let mut scale = frac_digits.len() as i64 - exponent;
        let shown = scale.max(0) as u32;
        let mut digits: String = int_digits.chars().chain(frac_digits.chars()).collect();
        let significant = digits.trim_start_matches('0').len();
        digits.drain(..digits.len() - significant);
        while scale > 0 && digits.ends_with('0') {
            digits.pop();
            scale -= 1;
        }
        if digits.is_empty() {
            return Ok(Dec {
                value: Decimal::ZERO,
                scale: shown,
            });
        }
        if scale < 0 {
            if digits.len() as i64 - scale > 29 {
                return Err(out_of_range(&format!("'{text}'")));
            }
            digits.extend(std::iter::repeat_n('0', (-scale) as usize));
            scale = 0;
        }
        if scale > i64::from(Decimal::MAX_SCALE) || digits.len() > 29 {
            return Err(out_of_range(&format!("'{text}'")));
        }
        let mantissa: i128 = digits.parse().map_err(|_| not_a_decimal())?;
        let mantissa = if negative { -mantissa } else { mantissa };
        let value = Decimal::try_from_i128_with_scale(mantissa, scale as u32)
            .map_err(|_| out_of_range(&format!("'{text}'")))?;
        Ok(Dec {
            value,
            scale: shown,
        })
    }

    /// An integer, shown without a point.
    pub fn from_i64(n: i64) -> Dec {
        Dec {
            value: Decimal::from(n),
            scale: 0,
        }
    }

    /// The exact value.
    pub fn value(&self) -> Decimal {
        self.value
    }

    /// A rust_decimal value, shown with its own digits after the point.
    pub fn from_value(value: Decimal) -> Dec {
        Dec {
            value: value.normalize(),
            scale: value.scale(),
        }
    }

    /// `-self`, shown the same way.
    pub fn neg(&self) -> Dec {
        Dec {
            value: -self.value,
            scale: self.scale,
        }
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.value.is_sign_negative() && !self.value.is_zero()
    }

    /// `self + other`, exact, shown with the larger scale of the two.
    pub fn add(&self, other: &Dec) -> Result<Dec, DecimalError> {
        let r = self
            .value
            .checked_add(other.value)
            .filter(|r| {
                sum_is_exact(
                    self.value.mantissa() + other.value.mantissa(),
                    self,
                    other,
                    r,
                )
            })
            .ok_or_else(|| out_of_range(&format!("the sum of {self} and {other}")))?;
        Ok(Dec {
            value: r.normalize(),
            scale: self.scale.max(other.scale),
        })
    }

    /// `self - other`, exact, shown with the larger scale of the two.
    pub fn sub(&self, other: &Dec) -> Result<Dec, DecimalError> {
        let r = self
            .value
            .checked_sub(other.value)
            .filter(|r| {
                sum_is_exact(
                    self.value.mantissa() - other.value.mantissa(),
                    self,
                    other,
                    r,
                )
            })
            .ok_or_else(|| out_of_range(&format!("the difference of {self} and {other}")))?;
        Ok(Dec {
            value: r.normalize(),
            scale: self.scale.max(other.scale),
        })
    }

    /// `self × other`, exact; trailing zeros are dropped down to the
    /// smaller scale of the two (as decimal.c does).
    pub fn mul(&self, other: &Dec) -> Result<Dec, DecimalError> {
        let r = self
            .value
            .checked_mul(other.value)
            .filter(|r| product_is_exact(&self.value, &other.value, r))
            .ok_or_else(|| out_of_range(&format!("the product of {self} and {other}")))?;
        Ok(Dec {
            value: r.normalize(),
            scale: self.scale.min(other.scale),
        })
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dec {
    /// By value; the same value shown with more digits comes after, so
    /// that the order is total and agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .cmp(&other.value)
            .then(self.scale.cmp(&other.scale))
    }
}

impl fmt::Display for Dec {
    /// The decimal's text: no exponent, no sign on zero, at least `scale`
    /// digits after the point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.value.mantissa().unsigned_abs().to_string();
        let exact = self.value.scale() as usize;
        let (int, frac) = if exact == 0 {
            (digits.as_str(), String::new())
        } else if digits.len() > exact {
            let (i, fr) = digits.split_at(digits.len() - exact);
            (i, fr.to_string())
        } else {
            ("0", format!("{digits:0>exact$}"))
        };
        if self.value.is_sign_negative() && !self.value.is_zero() {
            f.write_str("-")?;
        }
        f.write_str(int)?;
        let shown = (self.scale as usize).max(exact);
        if shown > 0 {
            write!(f, ".{frac:0<shown$}")?;
        }
        Ok(())
    }
}

/// Whether rust_decimal's `r` is exactly the sum (or difference) of `a`
/// and `b`, given `same_scale_sum`: their mantissas added (or subtracted),
/// which is meaningful only when both have the same scale.
///
/// rust_decimal rounds only by dropping digits after the point, so a
/// result with the full scale is exact. Values are normalized (no trailing
/// zeros): with different scales the exact sum ends in the last, non-zero
/// digit of the finer one, so any scale lost was a rounding; with equal
/// scales the exact mantissa fits an i128 and is compared.
fn sum_is_exact(same_scale_sum: i128, a: &Dec, b: &Dec, r: &Decimal) -> bool {
    let (sa, sb) = (a.value.scale(), b.value.scale());
    let s = sa.max(sb);
    if r.scale() >= s {
        return true;
    }
    sa == sb
        && r.mantissa()
            .checked_mul(10i128.pow(s - r.scale()))
            .is_some_and(|m| m == same_scale_sum)
}

/// Whether rust_decimal's `r` is exactly `a × b`: compares the mantissas'
/// product with `r`'s mantissa scaled back, in 256-bit integers.
fn product_is_exact(a: &Decimal, b: &Decimal, r: &Decimal) -> bool {
    let s = a.scale() + b.scale();
    if r.scale() >= s {
        return true;
    }
    if (a.is_zero() || b.is_zero()) && r.is_zero() {
        return true;
    }
    let exact = wide_mul(a.mantissa().unsigned_abs(), b.mantissa().unsigned_abs());
    let mut got = (0u128, r.mantissa().unsigned_abs());
    for _ in 0..s - r.scale() {
        let (carry, lo) = wide_mul(got.1, 10);
        let Some(hi) = got.0.checked_mul(10).and_then(|h| h.checked_add(carry)) else {
            return false;
        };
        got = (hi, lo);
    }
    exact == got
}

/// `a × b` as (high, low) 128-bit halves.
fn wide_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// An SQL argument as a decimal: NULL is `None`; TEXT and INTEGER are
/// read; REAL and BLOB are refused.
fn arg(ctx: &Context<'_>, func: &str, i: usize) -> rusqlite::Result<Option<Dec>> {
    let fail = |m: String| rusqlite::Error::UserFunctionError(Box::new(DecimalError(m)));
    let n = i + 1;
    match ctx.get_raw(i) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(v) => Ok(Some(Dec::from_i64(v))),
        ValueRef::Text(t) => {
            let t = std::str::from_utf8(t)
                .map_err(|_| fail(format!("{func}(): argument {n} is not UTF-8 text")))?;
            Dec::parse(t)
                .map(Some)
                .map_err(|e| fail(format!("{func}(): argument {n}: {e}")))
        }
        ValueRef::Real(v) => Err(fail(format!(
            "{func}(): argument {n} is a REAL ({v}), already rounded in binary; pass the decimal as TEXT (e.g. '{v}') or an INTEGER"
        ))),
        ValueRef::Blob(_) => Err(fail(format!(
            "{func}(): argument {n} is a BLOB; pass the decimal as TEXT"
        ))),
    }
}

fn fail(func: &str, e: DecimalError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(DecimalError(format!("{func}(): {e}"))))
}

/// A two-argument decimal function: NULL if either argument is NULL.
fn binary(
    conn: &Connection,
    name: &'static str,
    op: fn(&Dec, &Dec) -> Result<Dec, DecimalError>,
) -> rusqlite::Result<()> {
    conn.create_scalar_function(name, 2, flags(), move |ctx| {
        match (arg(ctx, name, 0)?, arg(ctx, name, 1)?) {
            (Some(a), Some(b)) => op(&a, &b)
                .map(|r| Some(r.to_string()))
                .map_err(|e| fail(name, e)),
            _ => Ok(None),
        }
    })
}

fn flags() -> FunctionFlags {
    FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS
}

/// `decimal_sum`: starts at 0 on the first row (NULL or not), skips NULLs.
struct Sum;

impl Aggregate<Dec, Option<String>> for Sum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Dec> {
        Ok(Dec::ZERO)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Dec) -> rusqlite::Result<()> {
        if let Some(x) = arg(ctx, "decimal_sum", 0)? {
            *acc = acc.add(&x).map_err(|e| fail("decimal_sum", e))?;
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Dec>) -> rusqlite::Result<Option<String>> {
        Ok(acc.map(|d| d.to_string()))
    }
}

impl WindowAggregate<Dec, Option<String>> for Sum {
    fn value(&self, acc: Option<&mut Dec>) -> rusqlite::Result<Option<String>> {
        Ok(acc.map(|d| d.to_string()))
    }

    fn inverse(&self, ctx: &mut Context<'_>, acc: &mut Dec) -> rusqlite::Result<()> {
        if let Some(x) = arg(ctx, "decimal_sum", 0)? {
            *acc = acc.sub(&x).map_err(|e| fail("decimal_sum", e))?;
        }
        Ok(())
    }
}

/// The `decimal` collation: decimals by value (equal values are equal),
/// then text that is not a decimal, byte by byte. A collation cannot fail,
/// so it cannot refuse bad text; it puts it last.
fn collate(a: &str, b: &str) -> Ordering {
    match (Dec::parse(a), Dec::parse(b)) {
        (Ok(x), Ok(y)) => x.value.cmp(&y.value),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Register `decimal`, `decimal_add`, `decimal_sub`, `decimal_mul`,
/// `decimal_sum`, `decimal_cmp` and the `decimal` collation on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("decimal", 1, flags(), |ctx| {
        Ok(arg(ctx, "decimal", 0)?.map(|d| d.to_string()))
    })?;
    binary(conn, "decimal_add", Dec::add)?;
    binary(conn, "decimal_sub", Dec::sub)?;
    binary(conn, "decimal_mul", Dec::mul)?;
    conn.create_scalar_function("decimal_cmp", 2, flags(), |ctx| {
        Ok(
            match (arg(ctx, "decimal_cmp", 0)?, arg(ctx, "decimal_cmp", 1)?) {
                (Some(a), Some(b)) => Some(a.value.cmp(&b.value) as i64),
                _ => None,
            },
        )
    })?;
    conn.create_window_function("decimal_sum", 1, flags(), Sum)?;
    conn.create_collation("decimal", collate)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn text_keeps_the_digits_decimal_c_keeps() {
        for (input, text) in [
            ("1.50", "1.50"),
            ("00012.3400", "12.3400"),
            ("-0", "0"),
            ("-0.00", "0.00"),
            ("+3", "3"),
            (".5", "0.5"),
            ("5.", "5"),
            ("  1.5  ", "1.5"),
            ("1e3", "1000"),
            ("1E+2", "100"),
            ("1e-3", "0.001"),
            ("1.50e1", "15.0"),
            ("1.5e-2", "0.015"),
            ("0e-5", "0.00000"),
            ("-12.5", "-12.5"),
            (
                "0.0000000000000000000000000001",
                "0.0000000000000000000000000001",
            ),
            (
                "79228162514264337593543950335",
                "79228162514264337593543950335",
            ),
            (
                "1.0000000000000000000000000000000",
                "1.0000000000000000000000000000000",
            ),
        ] {
            assert_eq!(d(input).to_string(), text, "{input}");
        }
    }

    #[test]
    fn what_is_not_a_decimal_or_out_of_range_is_refused() {
        for bad in [
            "", "abc", "1.5x", "1.2.3", "--1", "1-2", "1e", ".", "-", "1,5", "0x10", "1e99999",
        ] {
            assert!(Dec::parse(bad).is_err(), "{bad:?} parsed");
        }
        for big in [
            "79228162514264337593543950336",
            "1e40",
            "0.00000000000000000000000000001",
            "123456789012345678901234567890.123",
        ] {
            let e = Dec::parse(big).unwrap_err();
            assert!(e.0.contains("out of range"), "{big}: {e}");
        }
    }

    #[test]
    fn arithmetic_is_exact_and_shown_like_decimal_c() {
        assert_eq!(d("0.1").add(&d("0.2")).unwrap().to_string(), "0.3");
        assert_eq!(d("1.50").add(&d("2")).unwrap().to_string(), "3.50");
        assert_eq!(d("2").sub(&d("1.50")).unwrap().to_string(), "0.50");
        assert_eq!(d("-1.5").add(&d("1.5")).unwrap().to_string(), "0.0");
        assert_eq!(d("1.5").mul(&d("2.00")).unwrap().to_string(), "3.0");
        assert_eq!(d("1.25").mul(&d("2.0")).unwrap().to_string(), "2.5");
        assert_eq!(d("0.10").mul(&d("0.10")).unwrap().to_string(), "0.01");
        assert_eq!(d("-0.5").mul(&d("0.2")).unwrap().to_string(), "-0.1");
        assert_eq!(d("1.5").mul(&d("2")).unwrap().to_string(), "3");
    }

    #[test]
    fn results_beyond_rust_decimal_are_errors_not_roundings() {
        let max = d("79228162514264337593543950335");
        assert!(max.add(&d("1")).is_err());
        // Exact at scale 1 needs 30 digits: rust_decimal would round.
        assert!(d("7922816251426433759354395040").add(&d("0.1")).is_err());
        assert!(d("0.0000000000000001")
            .mul(&d("0.0000000000000001"))
            .is_err());
        assert!(d("12345678901234.5678901")
            .mul(&d("98765432109876.5432109"))
            .is_err());
        // Needs its scale reduced, but the dropped digits are zeros: exact.
        let a = d("4000000000000000000000000000.5");
        assert_eq!(
            a.add(&a).unwrap().to_string(),
            "8000000000000000000000000001.0"
        );
        let half = d("0.5");
        assert_eq!(half.add(&half).unwrap().to_string(), "1.0");
        // 2^41 / 10^20 × 5^41 / 10^28 = 10^-7, though the mantissas' product
        // has 42 digits.
        let x = d("0.00000002199023255552");
        let y = d("4.5474735088646411895751953125");
        assert_eq!(x.value().scale() + y.value().scale(), 48);
        assert_eq!(x.mul(&y).unwrap().value(), d("0.0000001").value());
    }

    #[test]
    fn wide_mul_is_right_at_the_edges() {
        assert_eq!(wide_mul(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(wide_mul(1 << 64, 1 << 64), (1, 0));
        assert_eq!(wide_mul(12345, 67890), (0, 12345 * 67890));
    }

    #[test]
    fn the_functions_in_sql() {
        let c = Connection::open_in_memory().unwrap();
        register(&c).unwrap();
        let one = |sql: &str| -> Option<String> { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            one("SELECT decimal_sum(x) FROM (SELECT '1.5' x UNION ALL SELECT '2.25')"),
            Some("3.75".into())
        );
        assert_eq!(one("SELECT decimal_sum(x) FROM (SELECT 1 x WHERE 0)"), None);
        assert_eq!(one("SELECT decimal_sum(NULL)"), Some("0".into()));
        assert_eq!(one("SELECT decimal_add(NULL, '1')"), None);
        assert_eq!(
            one("SELECT decimal_cmp('1.0', '1') || ''"),
            Some("0".into())
        );
        assert_eq!(one("SELECT decimal_add(1, 2)"), Some("3".into()));
        assert_eq!(
            one("SELECT group_concat(x, ',') FROM (SELECT x FROM (SELECT '10' x UNION ALL SELECT '9.5' UNION ALL SELECT '-1') ORDER BY x COLLATE decimal)"),
            Some("-1,9.5,10".into())
        );
        assert_eq!(
            one("SELECT group_concat(s, ',') FROM (SELECT decimal_sum(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) s FROM (SELECT '1.5' x UNION ALL SELECT '2.25' UNION ALL SELECT '3'))"),
            Some("1.5,3.75,5.25".into())
        );
        let err = c
            .query_row("SELECT decimal_add('1', 0.5)", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("decimal_add(): argument 2 is a REAL"), "{err}");
        let err = c
            .query_row("SELECT decimal_sum(x) FROM (SELECT 'abc' x)", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("'abc' is not a decimal number"), "{err}");
    }
}
