//! Time as the policy sees it: epoch milliseconds from the host, RFC 3339 in Kubernetes objects.
//! Go-style durations (settings, messages) are [`capt_policy::duration`]'s.

use chrono::{DateTime, Datelike, Timelike};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

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

#[cfg(test)]
mod tests {
    use super::*;

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
