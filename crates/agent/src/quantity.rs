//! Kubernetes resource quantities (`500m`, `64Mi`, `1.5`, `2e3`) as exact fractions,
//! for cgroup limits and the downward API, which round up as upstream does.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// `numerator / denominator`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    numerator: i128,
    denominator: i128,
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(s.to_string());
        let t = s.trim();
        let (sign, t) = match t.strip_prefix('-') {
            Some(rest) => (-1i128, rest),
            None => (1, t.strip_prefix('+').unwrap_or(t)),
        };
        let digits_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, suffix) = t.split_at(digits_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') || fraction.len() > 18 {
            return Err(err());
        }
        let mut numerator: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            numerator = numerator.checked_mul(10).and_then(|n| n.checked_add((b - b'0') as i128)).ok_or_else(err)?;
        }
        let mut denominator: i128 = 10i128.pow(fraction.len() as u32);
        let (mul, div): (i128, i128) = match suffix {
            "" => (1, 1),
            "n" => (1, 1_000_000_000),
            "u" => (1, 1_000_000),
            "m" => (1, 1000),
            "k" => (1000, 1),
            "M" => (1_000_000, 1),
            "G" => (1_000_000_000, 1),
            "T" => (1_000_000_000_000, 1),
            "P" => (1_000_000_000_000_000, 1),
            "E" => (1_000_000_000_000_000_000, 1),
            "Ki" => (1 << 10, 1),
            "Mi" => (1 << 20, 1),
            "Gi" => (1 << 30, 1),
            "Ti" => (1 << 40, 1),
            "Pi" => (1 << 50, 1),
            "Ei" => (1 << 60, 1),
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().map_err(|_| err())?;
                if exp.abs() > 30 {
                    return Err(err());
                }
                if exp >= 0 { (10i128.pow(exp as u32), 1) } else { (1, 10i128.pow((-exp) as u32)) }
            }
            _ => return Err(err()),
        };
        numerator = numerator.checked_mul(mul).ok_or_else(err)? * sign;
        denominator = denominator.checked_mul(div).ok_or_else(err)?;
        Ok(Quantity { numerator, denominator })
    }

    /// The value in thousandths, rounded up (`MilliValue`).
    pub fn milli_ceil(&self) -> i64 {
        ceil_div(self.numerator.saturating_mul(1000), self.denominator)
    }

    /// The value, rounded up (`Value`).
    pub fn ceil(&self) -> i64 {
        ceil_div(self.numerator, self.denominator)
    }

    /// `ceil(self / divisor)`, as the downward API divides (a zero divisor counts as one).
    pub fn ceil_div_by(&self, divisor: &Quantity) -> i64 {
        if divisor.numerator == 0 {
            return self.ceil();
        }
        let n = self.numerator.saturating_mul(divisor.denominator);
        let d = self.denominator.saturating_mul(divisor.numerator);
        ceil_div(n, d)
    }

    pub fn is_zero(&self) -> bool {
        self.numerator == 0
    }
}

fn ceil_div(n: i128, d: i128) -> i64 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    let r = n % d;
    let q = if r != 0 && ((r > 0) == (d > 0)) { q + 1 } else { q };
    q.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn suffixes_and_rounding() {
        assert_eq!(q("500m").milli_ceil(), 500);
        assert_eq!(q("1.5").milli_ceil(), 1500);
        assert_eq!(q("2").milli_ceil(), 2000);
        assert_eq!(q("64Mi").ceil(), 64 << 20);
        assert_eq!(q("1G").ceil(), 1_000_000_000);
        assert_eq!(q("1.5Gi").ceil(), 3 << 29);
        assert_eq!(q("100n").milli_ceil(), 1, "rounds up");
        assert_eq!(q("2e3").ceil(), 2000);
        assert_eq!(q("1E-3").milli_ceil(), 1);
        assert_eq!(q(".5").milli_ceil(), 500);
        assert_eq!(q("0").ceil(), 0);
        assert_eq!(q("-1").ceil(), -1);
        for bad in ["", "m", "1.2.3", "1 Gi", "1GB", "abc", "1e99"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn division_as_the_downward_api_does() {
        assert_eq!(q("250m").ceil_div_by(&q("1")), 1);
        assert_eq!(q("250m").ceil_div_by(&q("1m")), 250);
        assert_eq!(q("64Mi").ceil_div_by(&q("1Mi")), 64);
        assert_eq!(q("100M").ceil_div_by(&q("1Mi")), 96);
        assert_eq!(q("5").ceil_div_by(&q("0")), 5);
    }
}
