//! Go-style durations (`90s`, `15m`, `1h30m`, `1.5h`, `250ms`), as Go's `time.ParseDuration`
//! accepts them, without the sign: every duration of the contract is a wait or a step forward.
//! Guests read them in settings and write them in messages; hosts read them in scenarios.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (examples: 90s, 15m, 1h30m, 250ms)")]
pub struct InvalidDuration {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: DurationFault,
}

/// What is wrong with a duration's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationFault {
    /// Nothing was given.
    #[error("empty")]
    Empty,
    /// A number has no unit after it (`10`).
    #[error("missing unit")]
    MissingUnit,
    /// A unit has no number before it, or the number does not parse (`s`, `1..5s`).
    #[error("expected a number")]
    BadNumber,
    /// The unit is none of `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`.
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    /// Longer than a `u64` of nanoseconds.
    #[error("too large")]
    TooLarge,
}

/// Parses a Go duration: one or more `<number><unit>` pairs, units `ns`, `us` (or `µs`),
/// `ms`, `s`, `m`, `h`; the number may have a fraction. `0` alone is zero.
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = |reason| InvalidDuration {
        text: text.to_owned(),
        reason,
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid(DurationFault::Empty));
    }
    let mut rest = text;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid(DurationFault::MissingUnit))?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| invalid(DurationFault::BadNumber))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid(DurationFault::UnknownUnit(unit.to_owned()))),
        };
        total_nanos += value * nanos_per_unit;
        rest = tail;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(invalid(DurationFault::TooLarge));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats milliseconds as a compact Go duration that [`parse`] reads back: `15m`, `1h30m`,
/// `1m30s`, `1s500ms`; `0s` for zero.
pub fn format_millis(millis: u64) -> String {
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = millis;
    for (unit, name) in [(HOUR, "h"), (MINUTE, "m"), (SECOND, "s"), (1, "ms")] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let secs = Duration::from_secs;
        assert_eq!(parse("90s"), Ok(secs(90)));
        assert_eq!(parse("16m"), Ok(secs(16 * 60)));
        assert_eq!(parse("1h"), Ok(secs(3600)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("1.5h"), Ok(secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_rejected_with_a_reason() {
        let reason = |text| parse(text).unwrap_err().reason;
        assert_eq!(reason(""), DurationFault::Empty);
        assert_eq!(reason("10"), DurationFault::MissingUnit);
        assert_eq!(reason("s"), DurationFault::BadNumber);
        assert_eq!(reason(".s"), DurationFault::BadNumber);
        assert_eq!(reason("1d"), DurationFault::UnknownUnit("d".into()));
        assert_eq!(reason("1h 30m"), DurationFault::UnknownUnit("h ".into()));
        assert_eq!(reason("-5s"), DurationFault::BadNumber);
        assert_eq!(reason("99999999999999h"), DurationFault::TooLarge);
        assert!(
            parse("1d")
                .unwrap_err()
                .to_string()
                .contains("unknown unit \"d\"")
        );
    }

    #[test]
    fn millis_format_compactly_and_read_back() {
        assert_eq!(format_millis(0), "0s");
        assert_eq!(format_millis(90_000), "1m30s");
        assert_eq!(format_millis(900_000), "15m");
        assert_eq!(format_millis(3_600_000), "1h");
        assert_eq!(format_millis(1_500), "1s500ms");
        for millis in [0, 1, 1_500, 90_000, 5_430_000, 86_400_123] {
            assert_eq!(
                parse(&format_millis(millis)),
                Ok(Duration::from_millis(millis))
            );
        }
    }
}
