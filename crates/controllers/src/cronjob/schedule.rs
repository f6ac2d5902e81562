//! Cron schedules as upstream reads them (`robfig/cron/v3`'s `ParseStandard`): five
//! fields (minute, hour, day of month, month, day of week) with lists, ranges, steps
//! and names, the `@hourly`-style descriptors, `@every <duration>`, and a `TZ=` or
//! `CRON_TZ=` prefix. [`Schedule::next`] is robfig's `Next`: the first matching
//! minute strictly after a time, searched in the schedule's time zone.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Why a schedule or time zone could not be read; the messages are robfig's and Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty spec string")]
    Empty,
    #[error("provided bad location {0}: unknown time zone {0}")]
    BadLocation(String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {0}")]
    Duration(String),
    #[error("expected exactly 5 fields, found {0}: [{1}]")]
    FieldCount(usize, String),
    #[error("{0}")]
    Field(String),
}

/// The set bit that marks a field written as `*` or `?` (robfig's `starBit`): a day
/// of month or week written that way does not widen the other into an OR.
const STAR: u64 = 1 << 63;

#[derive(Debug, Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
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
pub fn load_location(name: &str) -> Result<TimeZone, ScheduleError> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    // `Local` is refused by validation; treating it as UTC keeps the server's own
    // zone from leaking into schedules.
    if name == "Local" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| ScheduleError::BadLocation(name.to_string()))
}

impl Schedule {
    /// `cron.ParseStandard`.
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut tz = TimeZone::UTC;
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let Some(space) = spec.find(' ') else {
                return Err(ScheduleError::BadLocation(spec.to_string()));
            };
            let eq = spec.find('=').unwrap_or(0);
            tz = load_location(&spec[eq + 1..space])?;
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
                    if !has(month, dt.month() as u32) {
                        dt = first_of_next_month(dt.date())?;
                        continue;
                    }
                    if !day_matches(dom, dow, dt.date()) {
                        dt = dt.date().tomorrow().ok()?.to_datetime(jiff::civil::Time::midnight());
                        continue;
                    }
                    if !has(hour, dt.hour() as u32) {
                        dt = dt.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
                        continue;
                    }
                    if !has(minute, dt.minute() as u32) {
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
    Some(first.to_datetime(jiff::civil::Time::midnight()))
}

fn has(bits: u64, v: u32) -> bool {
    v < 63 && bits & (1u64 << v) != 0
}

/// Day of month and day of week combine with AND when either is written `*`,
/// otherwise with OR (cron's classic rule).
fn day_matches(dom: u64, dow: u64, d: Date) -> bool {
    let dom_match = has(dom, d.day() as u32);
    let dow_match = has(dow, d.weekday().to_sunday_zero_offset() as u32);
    if dom & STAR != 0 || dow & STAR != 0 { dom_match && dow_match } else { dom_match || dow_match }
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut out = 0u64;
    let mut i = min;
    while i <= max && i < 63 {
        out |= 1 << i;
        i += step;
    }
    out
}

fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

fn descriptor(spec: &str) -> Result<Kind, ScheduleError> {
    let one = |_: &Bounds, v: u32| 1u64 << v;
    let kind = match spec {
        "@yearly" | "@annually" => Kind::Spec {
            minute: one(&MINUTES, 0),
            hour: one(&HOURS, 0),
            dom: one(&DOM, 1),
            month: one(&MONTHS, 1),
            dow: all(&DOW),
        },
        "@monthly" => Kind::Spec {
            minute: one(&MINUTES, 0),
            hour: one(&HOURS, 0),
            dom: one(&DOM, 1),
            month: all(&MONTHS),
            dow: all(&DOW),
        },
        "@weekly" => Kind::Spec {
            minute: one(&MINUTES, 0),
            hour: one(&HOURS, 0),
            dom: all(&DOM),
            month: all(&MONTHS),
            dow: one(&DOW, 0),
        },
        "@daily" | "@midnight" => Kind::Spec {
            minute: one(&MINUTES, 0),
            hour: one(&HOURS, 0),
            dom: all(&DOM),
            month: all(&MONTHS),
            dow: all(&DOW),
        },
        "@hourly" => Kind::Spec {
            minute: one(&MINUTES, 0),
            hour: all(&HOURS),
            dom: all(&DOM),
            month: all(&MONTHS),
            dow: all(&DOW),
        },
        _ => match spec.strip_prefix("@every ") {
            Some(d) => {
                let nanos = go_duration_nanos(d).ok_or_else(|| ScheduleError::Duration(spec.to_string()))?;
                // Shorter than a second runs every second; sub-second parts are dropped.
                let secs = (nanos / 1_000_000_000).max(1);
                Kind::Every(i64::try_from(secs).unwrap_or(i64::MAX))
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
        out |= range(expr, b).map_err(ScheduleError::Field)?;
    }
    Ok(out)
}

fn parse_int(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("failed to parse int from {expr}"));
    }
    let n: i64 = expr.parse().map_err(|_| format!("failed to parse int from {expr}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| format!("end of range ({n}) above maximum: {expr}"))
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => parse_int(expr),
    }
}

/// robfig's `getRange`: `*`, `?`, `N`, `N-M`, each optionally `/step`.
fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
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
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!("beginning of range ({start}) below minimum ({}): {expr}", b.min));
    }
    if end > b.max {
        return Err(format!("end of range ({end}) above maximum ({}): {expr}", b.max));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

/// Go's `time.ParseDuration` in nanoseconds, clamped at zero (a negative `@every`
/// runs every second, as robfig rounds it up).
fn go_duration_nanos(s: &str) -> Option<u128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body == "0" {
        return Some(0);
    }
    if body.is_empty() {
        return None;
    }
    let b = body.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = body[start..i].parse().ok()?;
        let us = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit = match &body[us..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * unit;
    }
    if neg || !total.is_finite() {
        return Some(0);
    }
    // Saturates on absurd values; `as` from f64 clamps rather than wrapping.
    Some(total as u128)
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
        assert_eq!(next("@every 10ms", "2024-05-01T10:00:00Z"), "2024-05-01T10:00:01Z");
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
        }
        assert!(matches!(load_location("Mars/Olympus"), Err(ScheduleError::BadLocation(_))));
    }

    #[test]
    fn bad_specs_are_refused_with_robfigs_messages() {
        assert_eq!(Schedule::parse("").unwrap_err(), ScheduleError::Empty);
        assert_eq!(Schedule::parse("* * *").unwrap_err().to_string(), "expected exactly 5 fields, found 3: [* * *]");
        assert_eq!(Schedule::parse("61 * * * *").unwrap_err().to_string(), "end of range (61) above maximum (59): 61");
        assert_eq!(Schedule::parse("@often").unwrap_err().to_string(), "unrecognized descriptor: @often");
        assert!(Schedule::parse("* * * * 7").is_err());
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("TZ=Nowhere/Land * * * * *").is_err());
    }

    #[test]
    fn impossible_dates_have_no_next_time() {
        assert_eq!(Schedule::parse("0 0 31 2 *").unwrap().next(ts("2024-01-01T00:00:00Z")), None);
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next(ts("2024-01-01T00:00:00Z")), None);
    }
}
