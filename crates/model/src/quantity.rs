//! Text forms that clients compare byte for byte: Kubernetes quantities, parsed and in canonical
//! form, and RFC 3339 timestamps (Go durations are in [`crate::duration`]).
//!
//! `kubectl top`, the HPA and dashboards parse these with Go's `resource.ParseQuantity` and
//! `time.ParseDuration`, and people diff our output against upstream metrics-server. So the
//! formatting follows apimachinery's canonical rules exactly instead of "something parseable":
//! CPU is a DecimalSI quantity with scale -9 (nanocores), memory a BinarySI quantity of bytes.
//!
//! The parser ([`parse_quantity`], used by `kaddons top` on what any metrics server serves)
//! follows apimachinery's grammar and its round-up scaling. Both directions read one suffix
//! table. This stays hand-written: no crate reproduces kubectl's rounding, and the output must
//! match it byte for byte.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Every suffix apimachinery knows, with the power of ten and the power of two it stands for.
/// The one table behind both directions: [`parse_quantity`] reads it by suffix, the canonical
/// formatting by exponent.
const SUFFIXES: [(&str, i32, u32); 16] = [
    ("n", -9, 0),
    ("u", -6, 0),
    ("m", -3, 0),
    ("", 0, 0),
    ("k", 3, 0),
    ("M", 6, 0),
    ("G", 9, 0),
    ("T", 12, 0),
    ("P", 15, 0),
    ("E", 18, 0),
    ("Ki", 0, 10),
    ("Mi", 0, 20),
    ("Gi", 0, 30),
    ("Ti", 0, 40),
    ("Pi", 0, 50),
    ("Ei", 0, 60),
];

/// The decimal SI suffix for `10^exp10`, if there is one.
fn decimal_suffix(exp10: i32) -> Option<&'static str> {
    SUFFIXES
        .iter()
        .find(|&&(_, e, b)| b == 0 && e == exp10)
        .map(|&(s, _, _)| s)
}

/// The binary suffix for `2^exp2` (`""` for 2^0), if there is one.
fn binary_suffix(exp2: u32) -> Option<&'static str> {
    SUFFIXES
        .iter()
        .find(|&&(_, e, b)| e == 0 && b == exp2)
        .map(|&(s, _, _)| s)
}

/// Largest value a Go `int64` holds; apimachinery quantities are int64-backed.
const GO_INT64_MAX: u64 = i64::MAX as u64;

// ---------------------------------------------------------------------------------------------
// Parsing

/// A Kubernetes quantity string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("invalid quantity {0:?}: expected a number such as 250m, 1.5, 512Mi or 1e3")]
    Invalid(String),
    #[error("invalid quantity {quantity:?}: unknown suffix {suffix:?}")]
    UnknownSuffix { quantity: String, suffix: String },
    #[error("invalid quantity {0:?}: usage cannot be negative")]
    Negative(String),
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// Most significant digits a quantity may carry (u128 holds 38 decimal digits).
const MAX_DIGITS: usize = 38;
/// Exponents beyond this are nonsense for usage figures; refusing them keeps arithmetic small.
const MAX_EXPONENT: i32 = 1000;

/// A non-negative Kubernetes quantity: `mantissa × 10^exp10 × 2^exp2`, exactly.
///
/// Accepts apimachinery's forms: an optional `+`, digits with an optional decimal point, then
/// a decimal SI suffix (`n u m k M G T P E`), a binary suffix (`Ki Mi Gi Ti Pi Ei`) or a
/// decimal exponent (`e3`, `E-2`). Negative values are refused: usage is never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, QuantityError> {
        parse_quantity(s)
    }
}

/// Parses a Kubernetes quantity string; see [`Quantity`].
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(invalid());
    }

    let (suffix_exp10, exp2) = parse_suffix(suffix).ok_or_else(|| {
        if suffix.starts_with(['e', 'E']) {
            invalid()
        } else {
            QuantityError::UnknownSuffix {
                quantity: s.to_string(),
                suffix: suffix.to_string(),
            }
        }
    })?;

    // Significant digits: drop leading zeros, move trailing zeros into the exponent.
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    let trailing_zeros = significant.len() - trimmed.len();
    if trimmed.len() > MAX_DIGITS {
        return Err(QuantityError::OutOfRange(s.to_string()));
    }
    let mut mantissa: u128 = 0;
    for d in trimmed.bytes() {
        // Cannot overflow: at most 38 digits.
        mantissa = mantissa * 10 + u128::from(d - b'0');
    }
    if mantissa == 0 {
        return Ok(Quantity {
            mantissa: 0,
            exp10: 0,
            exp2: 0,
        });
    }
    if negative {
        return Err(QuantityError::Negative(s.to_string()));
    }
    // All terms are bounded (|suffix| <= MAX_EXPONENT, lengths <= input length), so i64 is
    // plenty; the result is range-checked before narrowing.
    let exp10 = i64::from(suffix_exp10) - frac_part.len() as i64 + trailing_zeros as i64;
    let exp10 = i32::try_from(exp10)
        .ok()
        .filter(|e| e.abs() <= 2 * MAX_EXPONENT)
        .ok_or_else(|| QuantityError::OutOfRange(s.to_string()))?;
    Ok(Quantity {
        mantissa,
        exp10,
        exp2,
    })
}

/// The power of ten and power of two a suffix stands for.
fn parse_suffix(suffix: &str) -> Option<(i32, u32)> {
    if let Some(&(_, exp10, exp2)) = SUFFIXES.iter().find(|(s, _, _)| *s == suffix) {
        return Some((exp10, exp2));
    }
    // Decimal exponent: e or E, an optional sign, at least one digit.
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i32 = exponent.parse().ok()?;
    (value.abs() <= MAX_EXPONENT).then_some((value, 0))
}

impl Quantity {
    /// `ceil(self / 10^scale)`, apimachinery's `ScaledValue` (which rounds up).
    pub fn scaled_ceil(&self, scale: i32) -> Option<u64> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let value = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let exp = i64::from(self.exp10) - i64::from(scale);
        let scaled = if exp >= 0 {
            value.checked_mul(10u128.checked_pow(u32::try_from(exp).ok()?)?)?
        } else {
            match 10u128.checked_pow(u32::try_from(-exp).ok()?) {
                Some(divisor) => value.div_ceil(divisor),
                // The divisor exceeds any u128 value: a positive fraction below one.
                None => 1,
            }
        };
        u64::try_from(scaled).ok()
    }

    /// The quantity in units of 10^-9, rounded up: nanocores for CPU.
    pub fn nano_value(&self) -> Option<u64> {
        self.scaled_ceil(-9)
    }

    /// The quantity as a whole number, rounded up: bytes for memory.
    pub fn value(&self) -> Option<u64> {
        self.scaled_ceil(0)
    }
}

/// CPU quantity to nanocores (rounded up, like apimachinery).
pub fn cpu_nanocores(quantity: &str) -> Result<u64, QuantityError> {
    parse_quantity(quantity)?
        .nano_value()
        .ok_or_else(|| QuantityError::OutOfRange(quantity.to_string()))
}

/// Memory quantity to bytes (rounded up, like apimachinery).
pub fn memory_bytes(quantity: &str) -> Result<u64, QuantityError> {
    parse_quantity(quantity)?
        .value()
        .ok_or_else(|| QuantityError::OutOfRange(quantity.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Canonical formatting

/// CPU usage in nanocores as the canonical DecimalSI string upstream metrics-server serves.
///
/// `123456789` → `"123456789n"`, `500_000_000` → `"500m"`, `2_000_000_000` → `"2"`.
pub fn cpu_quantity(nanocores: u64) -> String {
    let (value, scale) = fit_int64(nanocores, -9);
    decimal_si(value, scale)
}

/// Memory in bytes as the canonical BinarySI string upstream metrics-server serves.
///
/// `1024` → `"1Ki"`, `536870912` → `"512Mi"`, `1025` → `"1025"`, and below 1024 the decimal
/// form (`1000` → `"1k"`), because apimachinery switches small binary quantities to DecimalSI.
pub fn memory_quantity(bytes: u64) -> String {
    let (value, scale) = fit_int64(bytes, 0);
    if scale == 0 && value < 1024 {
        return decimal_si(value, scale);
    }
    if scale != 0 {
        // Only reachable above i64::MAX bytes, where the value lost a decimal order; the binary
        // form would not be exact, so apimachinery falls back to decimal notation too.
        return decimal_si(value, scale);
    }
    let (mut amount, mut power) = (value, 0u32);
    while amount >= 1024 && amount % 1024 == 0 && power < 6 {
        amount /= 1024;
        power += 1;
    }
    let suffix = binary_suffix(power * 10).expect("the table has every binary suffix up to Ei");
    format!("{amount}{suffix}")
}

/// Upstream stores usage as int64 quantities; a value above `i64::MAX` drops one decimal digit
/// and raises the scale by one (metrics-server's `uint64Quantity`). Kept for byte-identical output.
fn fit_int64(value: u64, scale: i32) -> (u64, i32) {
    if value > GO_INT64_MAX {
        (value / 10, scale + 1)
    } else {
        (value, scale)
    }
}

/// Canonical DecimalSI form of `value × 10^scale`: strip trailing zeros into the exponent, round
/// the exponent down to a multiple of three, then pick the SI suffix for it.
fn decimal_si(value: u64, scale: i32) -> String {
    if value == 0 {
        return "0".to_string();
    }
    let mut amount = u128::from(value);
    let mut exponent = scale;
    while amount >= 10 && amount % 10 == 0 {
        amount /= 10;
        exponent += 1;
    }
    let rem = exponent.rem_euclid(3);
    amount *= 10u128.pow(rem as u32);
    exponent -= rem;
    match decimal_suffix(exponent) {
        Some(suffix) => format!("{amount}{suffix}"),
        // Outside the SI table apimachinery writes a decimal exponent.
        None => format!("{amount}e{exponent}"),
    }
}

/// RFC 3339 in UTC with whole seconds, as `metav1.Time` marshals (`"2024-05-01T12:00:00Z"`).
/// Times before the epoch clamp to it (usage timestamps never precede 1970), times past
/// jiff's range (year 9999) to its end.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let max = jiff::Timestamp::MAX.as_second();
    let whole = i64::try_from(secs).map_or(max, |s| s.min(max));
    jiff::Timestamp::from_second(whole)
        .expect("clamped into jiff's range")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MI: u64 = 1024 * 1024;

    #[test]
    fn cpu_matches_apimachinery_canonical_form() {
        // Expected strings are what resource.NewScaledQuantity(v, -9) with DecimalSI prints.
        let cases = [
            (0, "0"),
            (1, "1n"),
            (123_456_789, "123456789n"),
            (10, "10n"),
            (1_000, "1u"),
            (1_500, "1500n"),
            (250_000, "250u"),
            (500_000_000, "500m"),
            (1_500_000_000, "1500m"),
            (2_000_000_000, "2"),
            (12_000_000_000, "12"),
            (2_000_000_000_000, "2k"),
            (1_234_000_000_000, "1234"),
            (100_000_000, "100m"),
            (10_000_000, "10m"),
            (u64::MAX, "18446744073709551610n"),
        ];
        for (input, want) in cases {
            assert_eq!(cpu_quantity(input), want, "cpu {input}");
        }
    }

    #[test]
    fn memory_matches_apimachinery_canonical_form() {
        let cases = [
            (0, "0"),
            (1, "1"),
            (100, "100"),
            (1_000, "1k"),
            (1_023, "1023"),
            (1_024, "1Ki"),
            (1_025, "1025"),
            (1_536, "1536"),
            (1_616_273_408, "1578392Ki"),
            (536_870_912, "512Mi"),
            (1_073_741_824, "1Gi"),
            (3 * 1_073_741_824, "3Gi"),
            (1_099_511_627_776, "1Ti"),
            (2_000_000, "2000000"),
        ];
        for (input, want) in cases {
            assert_eq!(memory_quantity(input), want, "memory {input}");
        }
    }

    // --- quantities -------------------------------------------------------------------------

    #[test]
    fn cpu_quantities_to_nanocores() {
        for (q, want) in [
            ("123456789n", 123_456_789),
            ("48500u", 48_500_000),
            ("250m", 250_000_000),
            ("1", 1_000_000_000),
            ("+1", 1_000_000_000),
            ("0.5", 500_000_000),
            (".5", 500_000_000),
            ("2.", 2_000_000_000),
            ("1.25", 1_250_000_000),
            ("0001.500", 1_500_000_000),
            ("1e3", 1_000_000_000_000),
            ("1E3", 1_000_000_000_000),
            ("1e+3", 1_000_000_000_000),
            ("1e-3", 1_000_000),
            ("25e-2", 250_000_000),
            ("0.000000001", 1),
            ("1k", 1_000_000_000_000),
            ("0", 0),
            ("-0", 0),
            ("0.0m", 0),
            // Finer than a nanocore rounds up, as apimachinery's ScaledValue does.
            ("0.1n", 1),
            ("1e-900", 1),
            ("1.0000000001", 1_000_000_001),
        ] {
            assert_eq!(cpu_nanocores(q), Ok(want), "{q}");
        }
    }

    #[test]
    fn memory_quantities_to_bytes() {
        for (q, want) in [
            ("1578392Ki", 1_578_392 * 1024),
            ("512Mi", 512 * MI),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1000k", 1_000_000),
            ("1M", 1_000_000),
            ("3G", 3_000_000_000),
            ("2T", 2_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1e3", 1000),
            ("1e0", 1),
            ("268435456", 268_435_456),
            ("0.5Ki", 512),
            // 102.4 bytes and 0.1 bytes round up.
            ("0.1Ki", 103),
            ("100m", 1),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(memory_bytes(q), Ok(want), "{q}");
        }
    }

    #[test]
    fn bad_quantities_are_typed_errors() {
        assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
        for q in [
            "abc", "Ki", ".", "+", "-", "1.2.3", "1e", "1e+", "1e1.5", "1E3i", " 1", "--1", "1ee3",
        ] {
            assert_eq!(
                parse_quantity(q),
                Err(QuantityError::Invalid(q.to_string())),
                "{q}"
            );
        }
        for (q, suffix) in [
            ("1K", "K"),
            ("1ki", "ki"),
            ("1 Mi", " Mi"),
            ("5MB", "MB"),
            ("1x", "x"),
        ] {
            assert_eq!(
                parse_quantity(q),
                Err(QuantityError::UnknownSuffix {
                    quantity: q.to_string(),
                    suffix: suffix.to_string()
                }),
                "{q}"
            );
        }
        assert_eq!(
            parse_quantity("-1m"),
            Err(QuantityError::Negative("-1m".into()))
        );
        for q in ["20E", "18446744073709551616", "1e400", "16Ei"] {
            assert_eq!(
                memory_bytes(q),
                Err(QuantityError::OutOfRange(q.to_string())),
                "{q}"
            );
        }
        let many_digits = "1".repeat(39);
        assert_eq!(
            parse_quantity(&many_digits),
            Err(QuantityError::OutOfRange(many_digits.clone()))
        );
        assert!(matches!(
            parse_quantity("1e1001"),
            Err(QuantityError::Invalid(_))
        ));
        let msg = parse_quantity("5MB").unwrap_err().to_string();
        assert!(msg.contains("\"MB\""), "{msg}");
    }

    #[test]
    fn equal_quantities_compare_equal_whatever_the_notation() {
        let a: Quantity = "1.50".parse().unwrap();
        let b: Quantity = "1500m".parse().unwrap();
        let c: Quantity = "15e-1".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.value(), Some(2), "1.5 rounds up to 2");
        assert_eq!(a.scaled_ceil(-3), Some(1500));
        assert_eq!(a.scaled_ceil(3), Some(1));
    }

    #[test]
    fn rfc3339_utc_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_999);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600); // 2000-02-29T12:00:00Z
        assert_eq!(rfc3339(leap), "2000-02-29T12:00:00Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            rfc3339(far),
            "9999-12-30T22:00:00Z",
            "jiff's last UTC second"
        );
    }

    /// Splits a formatted quantity into its digits and the (power of ten, power of two) of its
    /// suffix, for the shortest-form checks; values are read back by the real parser.
    fn digits_and_suffix(q: &str) -> (u128, i32, u32) {
        let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
        let (num, suffix) = q.split_at(split);
        let (e, b) = parse_suffix(suffix).unwrap_or_else(|| panic!("bad suffix in {q:?}"));
        (num.parse().unwrap(), e, b)
    }

    /// Values with many trailing decimal zeros (the interesting canonicalization cases) mixed
    /// with arbitrary ones.
    fn decimalish() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            0u64..=i64::MAX as u64,
            (0u64..100_000, 0u32..14).prop_map(|(m, k)| m * 10u64.pow(k)),
        ]
    }

    /// Same for binary multiples.
    fn binaryish() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            0u64..=i64::MAX as u64,
            (0u64..100_000, 0u32..5).prop_map(|(m, k)| m * 1024u64.pow(k)),
            0u64..5000,
        ]
    }

    proptest::proptest! {
        #[test]
        fn cpu_round_trips_and_is_shortest(n in decimalish()) {
            let q = cpu_quantity(n);
            proptest::prop_assert_eq!(cpu_nanocores(&q), Ok(n), "{}", q);
            let (m, e, b) = digits_and_suffix(&q);
            proptest::prop_assert_eq!(b, 0);
            // Canonical: a further factor of 1000 would have moved to the next suffix.
            if n != 0 && e < 18 {
                proptest::prop_assert!(m % 1000 != 0, "{} not shortest", q);
            }
        }

        #[test]
        fn memory_round_trips_and_is_shortest(n in binaryish()) {
            let q = memory_quantity(n);
            proptest::prop_assert_eq!(memory_bytes(&q), Ok(n), "{}", q);
            let (m, e, b) = digits_and_suffix(&q);
            if n >= 1024 {
                proptest::prop_assert_eq!(e, 0, "{} uses a decimal suffix", q);
                if b < 60 {
                    proptest::prop_assert!(m % 1024 != 0, "{} not shortest", q);
                }
            }
        }
    }
}
