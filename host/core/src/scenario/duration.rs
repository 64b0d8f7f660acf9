//! Go-style durations (`90s`, `16m`, `1h30m`, `1.5h`, `250ms`), as `time.ParseDuration`
//! accepts them, without the sign: scenario times only move forward.

use std::time::Duration;

/// Parses a Go duration: one or more `<number><unit>` pairs, units `ns`, `us` (or `µs`),
/// `ms`, `s`, `m`, `h`; the number may have a fraction. `0` alone is zero.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid =
        |why: &str| format!("invalid duration {text:?}: {why} (examples: 90s, 16m, 1h30m, 250ms)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    let mut rest = text;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid("missing unit"))?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(invalid("expected a number"));
        }
        let value: f64 = number.parse().map_err(|_| invalid("bad number"))?;
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
            _ => return Err(invalid(&format!("unknown unit {unit:?}"))),
        };
        total_nanos += value * nanos_per_unit;
        rest = tail;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(invalid("too large"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats milliseconds compactly, the way a scenario would write them: `1h30m`, or `1500ms`
/// when not a whole number of seconds.
pub fn format_millis(millis: u64) -> String {
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let seconds = millis / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
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
        for bad in ["", "10", "s", "1d", "-5s", "1h 30m", ".s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse("1d").unwrap_err().contains("unknown unit \"d\""));
    }

    #[test]
    fn millis_format_compactly() {
        assert_eq!(format_millis(0), "0s");
        assert_eq!(format_millis(90_000), "1m30s");
        assert_eq!(format_millis(3_600_000), "1h");
        assert_eq!(format_millis(1_500), "1500ms");
        assert_eq!(
            parse(&format_millis(5_430_000)),
            Ok(Duration::from_millis(5_430_000))
        );
    }
}
