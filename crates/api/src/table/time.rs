//! Timestamps and ages: an RFC 3339 parser (what `metav1.Time` accepts) and
//! apimachinery's `duration.HumanDuration`, the "5m", "3h2m", "2d5h" of every Age column.

/// Nanoseconds since the Unix epoch. `i128` so that any four-digit year fits.
pub(crate) type Nanos = i128;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECOND: i64 = NANOS_PER_SECOND;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Formats a duration as upstream `duration.HumanDuration` does: about two or three
/// significant figures, `0s` for small negatives (clock skew up to two seconds is
/// tolerated) and `<invalid>` below that.
pub fn human_duration(seconds: i64) -> String {
    human_duration_nanos(seconds.saturating_mul(NANOS_PER_SECOND))
}

/// [`human_duration`] over a Go-style `time.Duration` in nanoseconds.
pub(crate) fn human_duration_nanos(d: i64) -> String {
    // Go truncates `d.Seconds()` toward zero, so -1.9s counts as -1 and is tolerated.
    let seconds = d / SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{}h", hours / 24, h) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{}d", hours / 24 / 365, dy) };
    }
    format!("{}y", hours / 24 / 365)
}

/// The difference `later - earlier` as a Go `time.Duration`, which saturates instead of
/// overflowing (so a timestamp in year 1 reads as "292y", as upstream prints it).
pub(crate) fn duration_between(later: Nanos, earlier: Nanos) -> i64 {
    let d = later - earlier;
    d.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Upstream `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub(crate) fn since(timestamp: Option<Nanos>, now: Nanos) -> String {
    match timestamp {
        Some(t) => human_duration_nanos(duration_between(now, t)),
        None => "<unknown>".to_string(),
    }
}

pub(crate) use crate::time::parse_rfc3339_nanos as parse_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    #[test]
    fn human_duration_matches_upstream_examples() {
        for (d, want) in [
            (SECOND, "1s"),
            (70 * SECOND, "70s"),
            (190 * SECOND, "3m10s"),
            (70 * MINUTE, "70m"),
            (47 * HOUR, "47h"),
            (49 * HOUR, "2d1h"),
            ((8 * 24 + 2) * HOUR, "8d"),
            (367 * DAY, "367d"),
            (2 * YEAR + 25 * HOUR, "2y1d"),
            (8 * YEAR + 2 * HOUR, "8y"),
        ] {
            assert_eq!(human_duration_nanos(d), want, "{d}ns");
        }
    }

    #[test]
    fn human_duration_boundaries_match_upstream() {
        for (d, want) in [
            (-2 * SECOND, "<invalid>"),
            (-2 * SECOND + 1, "0s"),
            (0, "0s"),
            (SECOND - MS, "0s"),
            (2 * MINUTE - MS, "119s"),
            (2 * MINUTE, "2m"),
            (2 * MINUTE + SECOND, "2m1s"),
            (10 * MINUTE - MS, "9m59s"),
            (10 * MINUTE, "10m"),
            (10 * MINUTE + SECOND, "10m"),
            (3 * HOUR - MS, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + MINUTE, "3h1m"),
            (8 * HOUR - MS, "7h59m"),
            (8 * HOUR, "8h"),
            (8 * HOUR + 59 * MINUTE, "8h"),
            (2 * DAY - MS, "47h"),
            (2 * DAY, "2d"),
            (2 * DAY + HOUR, "2d1h"),
            (8 * DAY - MS, "7d23h"),
            (8 * DAY, "8d"),
            (8 * DAY + 23 * HOUR, "8d"),
            (2 * YEAR - MS, "729d"),
            (2 * YEAR, "2y"),
            (2 * YEAR + 23 * HOUR, "2y"),
            (2 * YEAR + 23 * HOUR + 59 * MINUTE, "2y"),
            (2 * YEAR + DAY - MS, "2y"),
            (2 * YEAR + DAY, "2y1d"),
            (3 * YEAR, "3y"),
            (4 * YEAR, "4y"),
            (5 * YEAR, "5y"),
            (6 * YEAR, "6y"),
            (7 * YEAR, "7y"),
            (8 * YEAR - MS, "7y364d"),
            (8 * YEAR, "8y"),
            (8 * YEAR + 364 * DAY, "8y"),
            (9 * YEAR, "9y"),
        ] {
            assert_eq!(human_duration_nanos(d), want, "{d}ns");
        }
    }

    #[test]
    fn human_duration_in_seconds() {
        assert_eq!(human_duration(-2), "<invalid>");
        assert_eq!(human_duration(-1), "0s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(2 * 86_400 + 5 * 3600), "2d5h");
        assert_eq!(human_duration(i64::MAX), "292y");
    }

    #[test]
    fn parses_rfc3339_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-06-01T12:00:00Z"), Some(1_748_779_200 * NANOS_PER_SECOND as i128));
        assert_eq!(parse_rfc3339("2025-06-01T14:00:00+02:00"), Some(1_748_779_200 * NANOS_PER_SECOND as i128));
        assert_eq!(parse_rfc3339("2025-06-01T11:30:00-00:30"), Some(1_748_779_200 * NANOS_PER_SECOND as i128));
        assert_eq!(
            parse_rfc3339("2025-06-01T12:00:00.123456Z"),
            Some(1_748_779_200 * NANOS_PER_SECOND as i128 + 123_456_000)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800 * NANOS_PER_SECOND as i128));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-NANOS_PER_SECOND as i128));
    }

    #[test]
    fn rejects_malformed_and_zero_timestamps() {
        for bad in [
            "",
            "2025-06-01",
            "2025-06-01 12:00:00Z",
            "2025-06-01T12:00:00",
            "2025-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01T12:00:60Z",
            "2025-06-01T12:00:00.Z",
            "2025-06-01T12:00:00+0200",
            "2025-06-01T12:00:00Zjunk",
            "20x5-06-01T12:00:00Z",
            "0001-01-01T00:00:00Z",
            "2025-06-01T12:00:00.é",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_reports_unknown_for_unset() {
        let now = 1_000 * NANOS_PER_SECOND as i128;
        assert_eq!(since(None, now), "<unknown>");
        assert_eq!(since(Some(now - 90 * NANOS_PER_SECOND as i128), now), "90s");
        assert_eq!(since(Some(0), now), "16m");
        assert_eq!(since(Some(now - 190 * NANOS_PER_SECOND as i128), now), "3m10s");
    }
}
