//! Go's `time.Duration` text forms: parsed as `time.ParseDuration` reads flags (`15s`, `1m30s`,
//! `500ms`, `1.5h`) and printed as `Duration.String` writes them, which is how `metav1.Duration`
//! travels in JSON. The metrics server takes upstream's duration flags with this parser; the
//! CLI's own settings accept the same syntax plus a bare number of seconds.

use std::time::Duration;

/// A duration text that Go's `time.ParseDuration` would refuse too. Each variant carries the
/// whole input; the messages are the ones the metrics server's flags have always printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("{0:?}: missing unit (e.g. 15s)")]
    MissingUnit(String),
    #[error("{input:?}: invalid number {number:?}")]
    InvalidNumber { input: String, number: String },
    #[error("{input:?}: unknown unit {unit:?}")]
    UnknownUnit { input: String, unit: String },
    #[error("{0:?}: out of range")]
    OutOfRange(String),
}

/// Go-style durations as upstream flags take them: `15s`, `1m30s`, `500ms`, `1h`.
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::MissingUnit(s.to_string()))?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().map_err(|_| DurationError::InvalidNumber {
            input: s.to_string(),
            number: num.to_string(),
        })?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: s.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        total += Duration::try_from_secs_f64(value * secs)
            .map_err(|_| DurationError::OutOfRange(s.to_string()))?;
        rest = next;
    }
    Ok(total)
}

/// A duration the way Go's `time.Duration.String` prints it (`"15s"`, `"1m0.5s"`, `"20.037s"`,
/// `"500ms"`, `"1h0m0s"`), which is how `metav1.Duration` travels in JSON.
pub fn go_duration(d: Duration) -> String {
    let total_ns = d.as_nanos();
    if total_ns == 0 {
        return "0s".to_string();
    }
    if total_ns < 1_000_000_000 {
        // Sub-second durations use the largest unit that keeps an integer part.
        let (unit_ns, unit) = if total_ns < 1_000 {
            (1, "ns")
        } else if total_ns < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", fixed_point(total_ns, unit_ns));
    }
    let secs_ns = total_ns % 60_000_000_000;
    let total_minutes = total_ns / 60_000_000_000;
    let hours = total_minutes / 60;
    let minutes = total_minutes % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if total_minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fixed_point(secs_ns, 1_000_000_000));
    out.push('s');
    out
}

/// `value / unit` in decimal with trailing fractional zeros removed (Go's `fmtFrac`).
fn fixed_point(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = unit.to_string().len() - 1;
    let frac_text = format!("{frac:0digits$}");
    format!("{whole}.{}", frac_text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_go_duration("15"),
            Err(DurationError::MissingUnit("15".into()))
        );
        assert_eq!(
            parse_go_duration("15x").unwrap_err().to_string(),
            "\"15x\": unknown unit \"x\""
        );
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
    }

    #[test]
    fn durations_match_go_string() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_millis(20_037), "20.037s"),
            (Duration::from_millis(60_500), "1m0.5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(61), "1m1s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(100), "100ns"),
            (Duration::from_nanos(10_000_000_001), "10.000000001s"),
        ];
        for (input, want) in cases {
            assert_eq!(go_duration(input), want, "{input:?}");
        }
    }
}
