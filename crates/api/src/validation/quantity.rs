//! `resource.Quantity` from `k8s.io/apimachinery/pkg/api/resource`: parsing (`100m`, `1Gi`,
//! `1e3`, `0.5`), comparison, and the canonical string Go writes back (`0.5` is stored as
//! `500m`, `1024Mi` as `1Gi`), which describe output and template comparisons depend on.

use std::cmp::Ordering;
use std::fmt;

/// The regex upstream's decode error quotes.
pub const QUANTITY_FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a string is not a quantity, with upstream's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// Beyond what this implementation represents exactly (about 10^38).
    #[error("quantity is too large")]
    TooLarge,
}

/// How the quantity was written, which decides how it is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySI,
    /// `m`, `k`, `M`, ... or no suffix.
    DecimalSI,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// An exact decimal: `value * 10^scale`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    value: i128,
    scale: i32,
    pub format: Format,
}

const BINARY: &[(&str, u32)] = &[("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
const DECIMAL: &[(&str, i32)] =
    &[("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)];

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// Parses a quantity string as upstream's `ParseQuantity` does.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(QuantityError::Format);
        }
        let mut i = 0;
        let mut negative = false;
        if b[0] == b'+' || b[0] == b'-' {
            negative = b[0] == b'-';
            i = 1;
        }
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &s[int_start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &s[fs..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(QuantityError::Format);
        }
        // The suffix: letters from the allowed set, an optional sign, then digits.
        let suffix_start = i;
        while i < b.len() && b"eEinumkKMGTP".contains(&b[i]) {
            i += 1;
        }
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i != b.len() {
            return Err(QuantityError::Format);
        }
        let suffix = &s[suffix_start..];

        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 38 {
            return Err(QuantityError::TooLarge);
        }
        let mut value: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| QuantityError::Format)? };
        let mut scale = -(frac_part.len() as i32);

        let format = if let Some((_, shift)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            value = value.checked_mul(1i128 << shift).ok_or(QuantityError::TooLarge)?;
            Format::BinarySI
        } else if let Some((_, exp)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            scale += exp;
            Format::DecimalSI
        } else if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) {
            let exp: i32 = suffix[1..].parse().map_err(|_| QuantityError::Suffix)?;
            if exp.abs() > 1000 {
                return Err(QuantityError::TooLarge);
            }
            scale += exp;
            Format::DecimalExponent
        } else {
            return Err(QuantityError::Suffix);
        };
        if negative {
            value = -value;
        }
        Ok(Quantity { value, scale, format }.normalized())
    }

    /// A quantity from a JSON value: upstream accepts strings and plain numbers.
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, QuantityError> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => Err(QuantityError::Format),
        }
    }

    /// Strips trailing zeros into the scale so comparisons and formatting agree.
    fn normalized(mut self) -> Quantity {
        if self.value == 0 {
            self.scale = 0;
            return self;
        }
        while self.value % 10 == 0 {
            self.value /= 10;
            self.scale += 1;
        }
        self
    }

    pub fn is_zero(&self) -> bool {
        self.value == 0
    }

    pub fn is_negative(&self) -> bool {
        self.value < 0
    }

    /// The value in thousandths, rounded up (away from zero) like `MilliValue`;
    /// `None` when it does not fit.
    pub fn milli_value(&self) -> Option<i128> {
        self.scaled(-3)
    }

    /// The value at `10^scale` units, rounded away from zero.
    fn scaled(&self, scale: i32) -> Option<i128> {
        let diff = self.scale - scale;
        if diff >= 0 {
            self.value.checked_mul(pow10(diff as u32)?)
        } else {
            let d = pow10((-diff) as u32).unwrap_or(i128::MAX);
            let q = self.value / d;
            let r = self.value % d;
            Some(if r == 0 {
                q
            } else if self.value > 0 {
                q + 1
            } else {
                q - 1
            })
        }
    }

    /// Rounds up (away from zero) to at most three decimals, as `SetDefaults_ResourceList` does.
    pub fn round_up_to_milli(self) -> Quantity {
        if self.scale >= -3 {
            return self;
        }
        let v = self.scaled(-3).unwrap_or(self.value);
        Quantity { value: v, scale: -3, format: self.format }.normalized()
    }

    /// Exact comparison of two quantities.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let scale = self.scale.min(other.scale);
        match (self.exact_at(scale), other.exact_at(scale)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // One side overflows at the common scale: it is the larger in magnitude.
            (None, Some(_)) => {
                if self.value > 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(_), None) => {
                if other.value > 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (None, None) => self.value.cmp(&other.value),
        }
    }

    fn exact_at(&self, scale: i32) -> Option<i128> {
        let diff = u32::try_from(self.scale - scale).ok()?;
        self.value.checked_mul(pow10(diff)?)
    }

    /// The canonical string (`Quantity.String()`).
    pub fn canonical(&self) -> String {
        if self.value == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        let mut whole = None;
        if format == Format::BinarySI {
            let small = self.cmp_value(&Quantity { value: 1024, scale: 0, format }) == Ordering::Less
                && self.cmp_value(&Quantity { value: -1024, scale: 0, format }) == Ordering::Greater;
            whole = if self.scale >= 0 { self.exact_at(0) } else { None };
            if small || whole.is_none() {
                format = Format::DecimalSI;
            }
        }
        match (format, whole) {
            (Format::BinarySI, Some(mut n)) => {
                let mut exp = 0;
                while exp < 60 && n % 1024 == 0 {
                    n /= 1024;
                    exp += 10;
                }
                let suffix = BINARY.iter().find(|(_, s)| *s == exp).map(|(s, _)| *s).unwrap_or("");
                format!("{n}{suffix}")
            }
            _ => {
                // Already normalized: no trailing zeros. Bring the exponent to a multiple of 3.
                let (shift, factor) = match self.scale.rem_euclid(3) {
                    1 => (1, 10),
                    2 => (2, 100),
                    _ => (0, 1),
                };
                let Some(amount) = self.value.checked_mul(factor) else {
                    // Too many digits to shift: keep the exact mantissa and exponent.
                    return format!("{}e{}", self.value, self.scale);
                };
                let exp = self.scale - shift;
                if format == Format::DecimalExponent {
                    if exp == 0 { amount.to_string() } else { format!("{amount}e{exp}") }
                } else {
                    match DECIMAL.iter().find(|(_, e)| *e == exp) {
                        Some((s, _)) => format!("{amount}{s}"),
                        None => format!("{amount}e{exp}"),
                    }
                }
            }
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The value of a quantity string in thousandths (`"100m"` is 100, `"1"` is 1000),
/// rounded up like upstream's `MilliValue`; `None` if it does not parse.
pub fn parse_quantity(s: &str) -> Option<i128> {
    Quantity::parse(s).ok()?.milli_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_quantity("100m"), Some(100));
        assert_eq!(parse_quantity("1"), Some(1000));
        assert_eq!(parse_quantity("0.5"), Some(500));
        assert_eq!(parse_quantity("1e3"), Some(1_000_000));
        assert_eq!(parse_quantity("1Gi"), Some(1_073_741_824_000));
        assert_eq!(parse_quantity("1k"), Some(1_000_000));
        assert_eq!(parse_quantity("-2"), Some(-2000));
        assert_eq!(parse_quantity(".5"), Some(500));
        assert_eq!(parse_quantity("1n"), Some(1), "rounds up like MilliValue");
    }

    #[test]
    fn rejects_malformed_strings() {
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse(""), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Gb"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1K"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1 Gi"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("."), Err(QuantityError::Format));
        assert!(parse_quantity("12x").is_none());
    }

    #[test]
    fn canonical_forms_match_go() {
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("1000"), "1k");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("1500m"), "1500m");
        assert_eq!(canon("2000m"), "2");
        assert_eq!(canon("100M"), "100M");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("2048Ki"), "2Mi");
        assert_eq!(canon("0.5Ki"), "512");
        assert_eq!(canon("128974848"), "128974848");
        assert_eq!(canon("129e6"), "129e6");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("0Gi"), "0");
        assert_eq!(canon("64Mi"), "64Mi");
        assert_eq!(canon("250m"), "250m");
        assert_eq!(canon("0.1"), "100m");
        assert_eq!(canon("12e-1"), "1200e-3");
        assert_eq!(canon("1.2"), "1200m");
    }

    #[test]
    fn rounds_to_milli_and_compares_exactly() {
        let q = Quantity::parse("0.0001").unwrap().round_up_to_milli();
        assert_eq!(q.canonical(), "1m");
        let a = Quantity::parse("1Gi").unwrap();
        let b = Quantity::parse("1024Mi").unwrap();
        assert_eq!(a, b);
        assert_eq!(Quantity::parse("500m").unwrap().cmp_value(&Quantity::parse("1").unwrap()), Ordering::Less);
        assert_eq!(Quantity::parse("2").unwrap().cmp_value(&Quantity::parse("1500m").unwrap()), Ordering::Greater);
        assert!(Quantity::parse("-1").unwrap().is_negative());
        assert_eq!(Quantity::from_json(&serde_json::json!(2)).unwrap().canonical(), "2");
        assert_eq!(Quantity::from_json(&serde_json::json!(0.25)).unwrap().canonical(), "250m");
        let huge = Quantity::parse("99999999999999999999999999999999999999e1").unwrap();
        assert_eq!(huge.canonical(), "99999999999999999999999999999999999999e1");
        assert!(Quantity::parse(&"9".repeat(40)).is_err());
    }
}
