//! Text forms that clients compare byte for byte: Kubernetes canonical quantities and RFC 3339
//! timestamps (Go durations are in [`crate::duration`]).
//!
//! `kubectl top`, the HPA and dashboards parse these with Go's `resource.ParseQuantity` and
//! `time.ParseDuration`, and people diff our output against upstream metrics-server. So the
//! formatting follows apimachinery's canonical rules exactly instead of "something parseable":
//! CPU is a DecimalSI quantity with scale -9 (nanocores), memory a BinarySI quantity of bytes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Largest value a Go `int64` holds; apimachinery quantities are int64-backed.
const GO_INT64_MAX: u64 = i64::MAX as u64;

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
    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power as usize];
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
    let suffix = match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        // Outside the SI table apimachinery writes a decimal exponent.
        other => return format!("{amount}e{other}"),
    };
    format!("{amount}{suffix}")
}

/// RFC 3339 in UTC with whole seconds, as `metav1.Time` marshals (`"2024-05-01T12:00:00Z"`).
/// Times before the epoch clamp to it; usage timestamps never precede 1970.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), so we need
/// no date crate for one format.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[test]
    fn rfc3339_utc_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_999);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600); // 2000-02-29T12:00:00Z
        assert_eq!(rfc3339(leap), "2000-02-29T12:00:00Z");
    }

    /// Reads a quantity string back: (mantissa, multiplier) with the multiplier as a rational
    /// power of ten or 1024, so the value can be compared exactly.
    fn parse(q: &str) -> (u128, i32, u32) {
        let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
        let (num, suffix) = q.split_at(split);
        let n: u128 = num.parse().unwrap();
        // (decimal exponent, binary power)
        let (e, b) = match suffix {
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "" => (0, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            other => panic!("unexpected suffix {other:?} in {q:?}"),
        };
        (n, e, b)
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
            let (m, e, b) = parse(&q);
            proptest::prop_assert_eq!(b, 0);
            // value in nanocores = m * 10^(e+9)
            let nanos = m * 10u128.pow((e + 9) as u32);
            proptest::prop_assert_eq!(nanos, u128::from(n), "{}", q);
            // Canonical: a further factor of 1000 would have moved to the next suffix.
            if n != 0 && e < 18 {
                proptest::prop_assert!(m % 1000 != 0, "{} not shortest", q);
            }
        }

        #[test]
        fn memory_round_trips_and_is_shortest(n in binaryish()) {
            let q = memory_quantity(n);
            let (m, e, b) = parse(&q);
            let value = m * 10u128.pow(e as u32) * 1024u128.pow(b);
            proptest::prop_assert_eq!(value, u128::from(n), "{}", q);
            if n >= 1024 {
                proptest::prop_assert_eq!(e, 0, "{} uses a decimal suffix", q);
                if b < 6 {
                    proptest::prop_assert!(m % 1024 != 0, "{} not shortest", q);
                }
            }
        }
    }
}
