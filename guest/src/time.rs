//! Time as the policy sees it: epoch milliseconds from the host, RFC 3339 in Kubernetes objects,
//! Go-style durations in settings and messages.

use chrono::{DateTime, Datelike, Timelike};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// Parses an RFC 3339 timestamp (as in `metav1.Time`) to epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Formats epoch milliseconds as a Kubernetes timestamp: RFC 3339, UTC, whole seconds
/// (`2026-01-01T00:00:00Z`). Sub-second parts are truncated, as the API server does.
///
/// The text is what chrono's `to_rfc3339_opts(SecondsFormat::Secs, true)` writes, put together
/// here: chrono's formatter is a large part of the component, and this runs for every condition
/// written.
pub fn format_timestamp(millis: Millis) -> String {
    // Whole seconds, without multiplying back to milliseconds (which overflows near i64::MIN).
    let Some(t) = DateTime::from_timestamp(millis.div_euclid(1000), 0) else {
        return "1970-01-01T00:00:00Z".to_owned();
    };
    let mut out = String::with_capacity(20);
    let year = t.year();
    match u32::try_from(year) {
        Ok(year) if year <= 9999 => push_digits(&mut out, year, 4),
        // ISO 8601 requires the explicit sign for out-of-range years.
        _ => out.push_str(&format!("{year:+05}")),
    }
    for (separator, value) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(separator);
        push_digits(&mut out, value, 2);
    }
    out.push('Z');
    out
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Parses a Go-style duration (`90s`, `15m`, `1h30m`, `500ms`, `1.5h`) to milliseconds.
/// Negative durations are rejected: every duration of this policy is a wait.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid =
        || format!("invalid duration \"{text}\" (expected e.g. \"90s\", \"15m\", \"1h30m\")");
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => SECOND as f64,
            "m" => MINUTE as f64,
            "h" => HOUR as f64,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    if total > u64::MAX as f64 / 2.0 {
        return Err(invalid());
    }
    Ok(total.round() as u64)
}

/// Formats milliseconds as a compact Go-style duration: `15m`, `1h30m`, `1m30s`, `500ms`.
pub fn format_duration(millis: u64) -> String {
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
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "15", "m", "15x", "-5m", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_format_compactly_and_round_trip() {
        for (ms, text) in [
            (900_000, "15m"),
            (5_400_000, "1h30m"),
            (90_000, "1m30s"),
            (500, "500ms"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration(ms), text);
            assert_eq!(parse_duration(text), Ok(ms));
        }
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let t = parse_timestamp("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(t, 1_767_225_600_000);
        assert_eq!(format_timestamp(t + 999), "2026-01-01T00:00:00Z");
        assert_eq!(parse_timestamp("2026-01-01T09:00:00+09:00"), Some(t));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn timestamps_format_as_chrono_does() {
        use chrono::SecondsFormat;
        for millis in [
            0,
            999,
            -1,
            -1_000,
            1_767_225_600_000,
            951_782_400_000,
            4_102_444_799_999,
            253_402_300_799_000,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
            8_210_266_876_799_999,
            i64::MAX / 2,
            i64::MIN / 2,
            // Found by the property tests (`fuzz`): the first overflowed.
            i64::MIN,
            i64::MAX,
        ] {
            let chrono = DateTime::from_timestamp(millis.div_euclid(1000), 0)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
            assert_eq!(format_timestamp(millis), chrono, "{millis}");
        }
    }
}
