//! Cron schedules as upstream reads them (`robfig/cron/v3`'s `ParseStandard`): five
//! fields (minute, hour, day of month, month, day of week) with lists, ranges, steps
//! and names, the `@hourly`-style descriptors, `@every <duration>`, and a `TZ=` or
//! `CRON_TZ=` prefix.
//!
//! One parser serves both sides: CronJob validation reports a [`ScheduleError`]
//! verbatim under `spec.schedule` (so its messages are robfig's and Go's, byte for
//! byte), and the CronJob controller asks [`Schedule::next`] (robfig's `Next`: the
//! first matching minute strictly after a time, searched in the schedule's zone).

use crate::validation::field::go_quote;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Why a schedule could not be read; each message is what upstream reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty spec string")]
    Empty,
    /// A `TZ=` prefix with no schedule after it. robfig slices out of bounds here
    /// (the Go API server answers 500); this message stands in for that.
    #[error("provided bad location {0}: unknown time zone")]
    LocationWithoutSchedule(String),
    #[error("provided bad location {0}: {1}")]
    BadLocation(String, UnknownTimeZone),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {0}: {1}")]
    Duration(String, DurationError),
    #[error("expected exactly 5 fields, found {0}: [{1}]")]
    FieldCount(usize, String),
    /// `strconv.Atoi` refused the text; `reason` is `invalid syntax` or
    /// `value out of range`.
    #[error("failed to parse int from {expr}: strconv.Atoi: parsing {quoted}: {reason}", quoted = go_quote(.expr))]
    Int { expr: String, reason: &'static str },
    #[error("negative number ({n}) not allowed: {expr}")]
    Negative { n: i64, expr: String },
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum { start: u64, min: u64, expr: String },
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum { end: u64, max: u64, expr: String },
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    StartBeyondEnd { start: u64, end: u64, expr: String },
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
}

/// Go's `time.LoadLocation` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0}")]
pub struct UnknownTimeZone(pub String);

/// Go's `time.ParseDuration` errors; each carries the whole text that was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {}", time_quote(.0))]
    Invalid(String),
    #[error("time: missing unit in duration {}", time_quote(.0))]
    MissingUnit(String),
    #[error("time: unknown unit {} in duration {}", time_quote(.unit), time_quote(.duration))]
    UnknownUnit { unit: String, duration: String },
}

/// The set bit that marks a field written as `*` or `?` (robfig's `starBit`): a day
/// of month or week written that way does not widen the other into an OR.
const STAR: u64 = 1 << 63;

#[derive(Debug, Clone, Copy)]
struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds { min: 0, max: 59, names: &[] };
const HOURS: Bounds = Bounds { min: 0, max: 23, names: &[] };
const DOM: Bounds = Bounds { min: 1, max: 31, names: &[] };
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)],
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Bit sets per field; seconds are always 0 in the standard (5-field) form.
    Spec { minute: u64, hour: u64, dom: u64, month: u64, dow: u64 },
    /// `@every`: a whole number of seconds, at least one.
    Every(i64),
}

/// A parsed schedule with the time zone it is evaluated in.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

/// Go's `time.LoadLocation` for the names a CronJob may carry: `""` and `UTC` are
/// UTC, anything else comes from the system's zoneinfo database (which also has the
/// fixed offsets `Etc/GMT+5` and the like).
pub fn load_location(name: &str) -> Result<TimeZone, UnknownTimeZone> {
    // `Local` is refused by validation for `spec.timeZone`; treating it as UTC keeps
    // the server's own zone from leaking into schedules.
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_string()))
}

impl Schedule {
    /// `cron.ParseStandard`. Without a `TZ=` prefix the schedule runs in UTC.
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut tz = TimeZone::UTC;
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let Some(space) = spec.find(' ') else {
                return Err(ScheduleError::LocationWithoutSchedule(spec.to_string()));
            };
            // The prefix puts an `=` before any space, so the slice is in order.
            let name = &spec[spec.find('=').map_or(0, |eq| eq + 1)..space];
            tz = load_location(name).map_err(|e| ScheduleError::BadLocation(name.to_string(), e))?;
            spec = spec[space..].trim();
        }
        let kind = if spec.starts_with('@') { descriptor(spec)? } else { fields(spec)? };
        Ok(Schedule { kind, tz })
    }

    /// A schedule with an explicit time zone, as the controller builds it from
    /// `spec.timeZone` (upstream prefixes `TZ=` to the schedule).
    pub fn with_time_zone(mut self, tz: TimeZone) -> Schedule {
        self.tz = tz;
        self
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first activation strictly after `t`, or `None` if there is none within
    /// five years (robfig returns the zero time then).
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match self.kind {
            Kind::Every(secs) => {
                let floor = Timestamp::from_second(t.as_second()).ok()?;
                floor.checked_add(SignedDuration::from_secs(secs)).ok()
            }
            Kind::Spec { minute, hour, dom, month, dow } => {
                let local = self.tz.to_datetime(t);
                let truncated = local.with().second(0).subsec_nanosecond(0).build().ok()?;
                let mut dt = truncated.checked_add(1.minute()).ok()?;
                let year_limit = dt.year() + 5;
                loop {
                    if dt.year() > year_limit {
                        return None;
                    }
                    if !has(month, dt.month()) {
                        dt = first_of_next_month(dt.date())?;
                        continue;
                    }
                    if !day_matches(dom, dow, dt.date()) {
                        dt = dt.date().tomorrow().ok()?.to_datetime(Time::midnight());
                        continue;
                    }
                    if !has(hour, dt.hour()) {
                        dt = dt.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
                        continue;
                    }
                    if !has(minute, dt.minute()) {
                        dt = dt.checked_add(1.minute()).ok()?;
                        continue;
                    }
                    match self.instant(dt, t) {
                        Some(ts) => return Some(ts),
                        None => dt = dt.checked_add(1.minute()).ok()?,
                    }
                }
            }
        }
    }

    /// The instant a matching local time stands for, if it is after `after`. A time
    /// skipped by a DST jump maps forward (Go's behaviour); of a repeated hour the
    /// first occurrence after `after` is taken.
    fn instant(&self, dt: DateTime, after: Timestamp) -> Option<Timestamp> {
        let amb = self.tz.to_ambiguous_timestamp(dt);
        [amb.compatible().ok(), amb.later().ok()].into_iter().flatten().find(|ts| *ts > after)
    }
}

fn first_of_next_month(d: Date) -> Option<DateTime> {
    let first = d.first_of_month().checked_add(1.month()).ok()?;
    Some(first.to_datetime(Time::midnight()))
}

fn has(bits: u64, v: i8) -> bool {
    (0..63).contains(&v) && bits & (1u64 << v) != 0
}

/// Day of month and day of week combine with AND when either is written `*`,
/// otherwise with OR (cron's classic rule).
fn day_matches(dom: u64, dow: u64, d: Date) -> bool {
    let dom_match = has(dom, d.day());
    let dow_match = has(dow, d.weekday().to_sunday_zero_offset());
    if dom & STAR != 0 || dow & STAR != 0 { dom_match && dow_match } else { dom_match || dow_match }
}

fn bits(min: u64, max: u64, step: u64) -> u64 {
    let mut out = 0u64;
    let mut i = min;
    while i <= max && i < 63 {
        out |= 1 << i;
        i = i.saturating_add(step);
    }
    out
}

fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

/// Midnight-style descriptors: minute 0, hour 0 unless every hour is meant.
fn at_zero(hour: u64, dom: u64, month: u64, dow: u64) -> Kind {
    Kind::Spec { minute: 1, hour, dom, month, dow }
}

fn descriptor(spec: &str) -> Result<Kind, ScheduleError> {
    let kind = match spec {
        "@yearly" | "@annually" => at_zero(1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => at_zero(1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => at_zero(1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => at_zero(1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => at_zero(all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => {
                let nanos = parse_go_duration(d).map_err(|e| ScheduleError::Duration(spec.to_string(), e))?;
                // robfig's `Every`: shorter than a second runs every second, and the
                // sub-second part is dropped.
                Kind::Every((nanos / 1_000_000_000).max(1))
            }
            None => return Err(ScheduleError::Descriptor(spec.to_string())),
        },
    };
    Ok(kind)
}

fn fields(spec: &str) -> Result<Kind, ScheduleError> {
    let f: Vec<&str> = spec.split_whitespace().collect();
    if f.len() != 5 {
        return Err(ScheduleError::FieldCount(f.len(), f.join(" ")));
    }
    Ok(Kind::Spec {
        minute: field(f[0], &MINUTES)?,
        hour: field(f[1], &HOURS)?,
        dom: field(f[2], &DOM)?,
        month: field(f[3], &MONTHS)?,
        dow: field(f[4], &DOW)?,
    })
}

fn field(f: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let mut out = 0;
    for expr in f.split(',').filter(|e| !e.is_empty()) {
        out |= range(expr, b)?;
    }
    Ok(out)
}

/// Go's `strconv.Atoi` (64-bit `int`) followed by robfig's sign check.
fn must_parse_int(expr: &str) -> Result<u64, ScheduleError> {
    let int_err = |reason| ScheduleError::Int { expr: expr.to_string(), reason };
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(int_err("invalid syntax"));
    }
    // Only overflow is left to fail.
    let n: i64 = expr.parse().map_err(|_| int_err("value out of range"))?;
    u64::try_from(n).map_err(|_| ScheduleError::Negative { n, expr: expr.to_string() })
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    // Go's `strings.ToLower` is Unicode-aware, hence not the ASCII variant.
    let lower = expr.to_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => must_parse_int(expr),
    }
}

/// robfig's `getRange`: `*`, `?`, `N`, `N-M`, each optionally `/step`.
fn range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        extra = STAR;
        (b.min, b.max)
    } else {
        let start = int_or_name(low_and_high[0], b)?;
        match low_and_high.len() {
            1 => (start, start),
            2 => (start, int_or_name(low_and_high[1], b)?),
            _ => return Err(ScheduleError::TooManyHyphens(expr.to_string())),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(ScheduleError::TooManySlashes(expr.to_string())),
    };
    let expr = expr.to_string();
    if start < b.min {
        return Err(ScheduleError::BelowMinimum { start, min: b.min, expr });
    }
    if end > b.max {
        return Err(ScheduleError::AboveMaximum { end, max: b.max, expr });
    }
    if start > end {
        return Err(ScheduleError::StartBeyondEnd { start, end, expr });
    }
    if step == 0 {
        return Err(ScheduleError::ZeroStep(expr));
    }
    Ok(bits(start, end, step) | extra)
}

const GO_DURATION_LIMIT: u64 = 1 << 63;

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, in nanoseconds.
fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(s.to_string());
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > GO_DURATION_LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > GO_DURATION_LIMIT {
                return Err(invalid());
            }
        }
        let mut i = int_len;
        // The fraction keeps as many digits as fit and skips the rest, as Go does.
        let (mut frac, mut scale, mut has_frac) = (0u64, 1f64, false);
        if b.get(i) == Some(&b'.') {
            i += 1;
            let mut overflow = false;
            while let Some(c) = b.get(i).copied().filter(u8::is_ascii_digit) {
                i += 1;
                has_frac = true;
                if overflow || frac > (GO_DURATION_LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = frac * 10 + u64::from(c - b'0');
                if y > GO_DURATION_LIMIT {
                    overflow = true;
                    continue;
                }
                frac = y;
                scale *= 10.0;
            }
        }
        if int_len == 0 && !has_frac {
            return Err(invalid());
        }
        let unit_len = b[i..].iter().take_while(|c| !(c.is_ascii_digit() || **c == b'.')).count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        // Units end at an ASCII byte or at the end, so these are char boundaries.
        let unit_text = &rest[i..i + unit_len];
        rest = &rest[i + unit_len..];
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit { unit: unit_text.to_string(), duration: s.to_string() });
            }
        };
        if v > GO_DURATION_LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            // Go adds the fraction through float64; `as` saturates where Go would wrap,
            // and the limit check below refuses both.
            v = v.saturating_add((frac as f64 * (unit as f64 / scale)) as u64);
            if v > GO_DURATION_LIMIT {
                return Err(invalid());
            }
        }
        total = total.saturating_add(v);
        if total > GO_DURATION_LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // 2^63 negates to i64::MIN, as in Go.
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// The `time` package's own `quote`: unlike `strconv.Quote`, every byte of a
/// non-ASCII or control character is written as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c < ' ' || !c.is_ascii() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_offset(hours: i8) -> TimeZone {
        TimeZone::fixed(jiff::tz::Offset::constant(hours))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, from: &str) -> String {
        Schedule::parse(spec).unwrap().next(ts(from)).unwrap().to_string()
    }

    fn err(spec: &str) -> String {
        Schedule::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn every_minute_fires_at_the_next_whole_minute() {
        assert_eq!(next("* * * * *", "2024-05-01T10:00:00Z"), "2024-05-01T10:01:00Z");
        assert_eq!(next("* * * * *", "2024-05-01T10:00:59.5Z"), "2024-05-01T10:01:00Z");
        assert_eq!(next("* * * * *", "2024-12-31T23:59:30Z"), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        assert_eq!(next("*/15 * * * *", "2024-05-01T10:16:00Z"), "2024-05-01T10:30:00Z");
        assert_eq!(next("5,35 9-17 * * *", "2024-05-01T17:40:00Z"), "2024-05-02T09:05:00Z");
        assert_eq!(next("0 0 * * MON", "2024-05-01T00:00:00Z"), "2024-05-06T00:00:00Z");
        assert_eq!(next("0 12 1 jan-mar/2 *", "2024-01-01T12:00:00Z"), "2024-03-01T12:00:00Z");
        assert_eq!(next("30 2 29 2 *", "2024-03-01T00:00:00Z"), "2028-02-29T02:30:00Z");
        assert_eq!(next("10/20 * * * *", "2024-05-01T10:31:00Z"), "2024-05-01T10:50:00Z");
        assert_eq!(next("0 0 ? * SUN", "2024-05-01T00:00:00Z"), "2024-05-05T00:00:00Z");
        assert_eq!(next("0 0 1 1 *", "2024-05-01T00:00:00Z"), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn day_of_month_and_week_or_unless_one_is_a_star() {
        // 13th or any Friday: May 2024's first Friday is the 3rd.
        assert_eq!(next("0 0 13 * 5", "2024-05-01T00:00:00Z"), "2024-05-03T00:00:00Z");
        // `*/1` keeps the star, so this is "Fridays" only.
        assert_eq!(next("0 0 */1 * 5", "2024-05-04T00:00:00Z"), "2024-05-10T00:00:00Z");
        // `*/2` drops it: odd days OR Fridays.
        assert_eq!(next("0 0 */2 * 5", "2024-05-01T00:00:00Z"), "2024-05-03T00:00:00Z");
        assert_eq!(next("0 0 */2 * 0", "2024-05-03T00:00:00Z"), "2024-05-05T00:00:00Z");
    }

    #[test]
    fn descriptors_and_every() {
        assert_eq!(next("@hourly", "2024-05-01T10:00:00Z"), "2024-05-01T11:00:00Z");
        assert_eq!(next("@daily", "2024-05-01T10:00:00Z"), "2024-05-02T00:00:00Z");
        assert_eq!(next("@midnight", "2024-05-01T10:00:00Z"), "2024-05-02T00:00:00Z");
        assert_eq!(next("@weekly", "2024-05-01T10:00:00Z"), "2024-05-05T00:00:00Z");
        assert_eq!(next("@monthly", "2024-05-01T10:00:00Z"), "2024-06-01T00:00:00Z");
        assert_eq!(next("@yearly", "2024-05-01T10:00:00Z"), "2025-01-01T00:00:00Z");
        assert_eq!(next("@annually", "2024-05-01T10:00:00Z"), "2025-01-01T00:00:00Z");
        assert_eq!(next("@every 90s", "2024-05-01T10:00:00.7Z"), "2024-05-01T10:01:30Z");
        assert_eq!(next("@every 1.5h", "2024-05-01T10:00:00Z"), "2024-05-01T11:30:00Z");
        assert_eq!(next("@every 1h30m", "2024-05-01T10:00:00Z"), "2024-05-01T11:30:00Z");
        assert_eq!(next("@every 10ms", "2024-05-01T10:00:00Z"), "2024-05-01T10:00:01Z");
        assert_eq!(next("@every -5m", "2024-05-01T10:00:00Z"), "2024-05-01T10:00:01Z");
    }

    #[test]
    fn time_zone_prefixes_and_fixed_offsets() {
        // 09:00 at UTC+5 is 04:00 UTC.
        let s = Schedule::parse("0 9 * * *").unwrap().with_time_zone(fixed_offset(5));
        assert_eq!(s.next(ts("2024-05-01T05:00:00Z")).unwrap().to_string(), "2024-05-02T04:00:00Z");
        assert_eq!(next("TZ=UTC 0 9 * * *", "2024-05-01T05:00:00Z"), "2024-05-01T09:00:00Z");
        assert_eq!(next("CRON_TZ=UTC 0 9 * * *", "2024-05-01T10:00:00Z"), "2024-05-02T09:00:00Z");
        // Etc/GMT+5 is five hours *behind* UTC (POSIX sign).
        if let Ok(tz) = load_location("Etc/GMT+5") {
            let s = Schedule::parse("0 9 * * *").unwrap().with_time_zone(tz);
            assert_eq!(s.next(ts("2024-05-01T05:00:00Z")).unwrap().to_string(), "2024-05-01T14:00:00Z");
            assert_eq!(next("TZ=Etc/GMT+5 0 9 * * *", "2024-05-01T05:00:00Z"), "2024-05-01T14:00:00Z");
        }
        assert_eq!(load_location("Mars/Olympus").unwrap_err().to_string(), "unknown time zone Mars/Olympus");
        assert_eq!(
            err("TZ=Nowhere/Land * * * * *"),
            "provided bad location Nowhere/Land: unknown time zone Nowhere/Land"
        );
        assert_eq!(err("TZ=UTC"), "provided bad location TZ=UTC: unknown time zone");
    }

    #[test]
    fn bad_specs_are_refused_with_robfigs_messages() {
        assert_eq!(Schedule::parse("").unwrap_err(), ScheduleError::Empty);
        assert_eq!(err(""), "empty spec string");
        assert_eq!(err("* * *"), "expected exactly 5 fields, found 3: [* * *]");
        assert_eq!(err("@sometimes"), "unrecognized descriptor: @sometimes");
        assert_eq!(err("x * * * *"), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(
            err("99999999999999999999 * * * *"),
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(err("-5 * * * *"), "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
        assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(err("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(err("61 * * * *"), "end of range (61) above maximum (59): 61");
        assert_eq!(err("5000000000 * * * *"), "end of range (5000000000) above maximum (59): 5000000000");
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(err("5-1 * * * *"), "beginning of range (5) beyond end of range (1): 5-1");
        assert_eq!(err("*/0 * * * *"), "step of range should be a positive number: */0");
        assert_eq!(err("*/-1 * * * *"), "negative number (-1) not allowed: -1");
        assert_eq!(err("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
    }

    #[test]
    fn every_durations_fail_as_go_parses_them() {
        assert_eq!(err("@every 5"), "failed to parse duration @every 5: time: missing unit in duration \"5\"");
        assert_eq!(err("@every "), "failed to parse duration @every : time: invalid duration \"\"");
        assert_eq!(err("@every ."), "failed to parse duration @every .: time: invalid duration \".\"");
        assert_eq!(
            err("@every 1.2.3s"),
            "failed to parse duration @every 1.2.3s: time: missing unit in duration \"1.2.3s\""
        );
        assert_eq!(err("@every 5d"), "failed to parse duration @every 5d: time: unknown unit \"d\" in duration \"5d\"");
        assert_eq!(
            err("@every 5é"),
            "failed to parse duration @every 5é: time: unknown unit \"\\xc3\\xa9\" in duration \"5\\xc3\\xa9\""
        );
        assert_eq!(
            err("@every 9999999999h"),
            "failed to parse duration @every 9999999999h: time: invalid duration \"9999999999h\""
        );
    }

    #[test]
    fn go_durations_in_nanoseconds() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-0"), Ok(0));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1.s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("3µs"), Ok(3_000));
        assert_eq!(parse_go_duration("3μs"), Ok(3_000));
        assert_eq!(parse_go_duration("-2ms"), Ok(-2_000_000));
        assert_eq!(parse_go_duration("+2ns"), Ok(2));
        assert_eq!(parse_go_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert!(parse_go_duration("9223372036854775808ns").is_err());
        assert_eq!(parse_go_duration("-9223372036854775808ns"), Ok(i64::MIN));
        // Fractions finer than a nanosecond round down; digits beyond 2^63 are read and ignored.
        assert_eq!(parse_go_duration("1.00000000000000000000000000001s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("0.18446744073709551619s"), Ok(184_467_440));
    }

    #[test]
    fn impossible_dates_have_no_next_time() {
        assert_eq!(Schedule::parse("0 0 31 2 *").unwrap().next(ts("2024-01-01T00:00:00Z")), None);
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next(ts("2024-01-01T00:00:00Z")), None);
    }
}
