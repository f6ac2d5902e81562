//! Container logs as the kubelet serves them from CRI log files: the query options
//! (`follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`), the records they select, and a [`Follower`] that reads a log file
//! to its end and, when following, keeps reading as the container writes, across
//! rotations, until the container stops.

use runtime::logfile::{LogRecord, parse_record};
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(50);
/// How often an idle follower asks whether the container still runs.
const ALIVE_CHECK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u64>,
    /// Only records at or after this time (nanoseconds since the epoch).
    pub since_nanos: Option<i128>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

/// Go's `strconv.ParseBool`; a bare `?follow` counts as true.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value {v:?} for {name}: want true or false")),
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, String> {
    v.parse().map_err(|_| format!("invalid value {v:?} for {name}: want an integer"))
}

impl LogOptions {
    /// Reads the options from query pairs, validating them as upstream's
    /// `PodLogOptions` validation does.
    pub fn from_query(pairs: &[(String, String)], now: SystemTime) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        let (mut since_seconds, mut since_time) = (None, None);
        for (k, v) in pairs {
            match k.as_str() {
                "follow" => o.follow = parse_bool(k, v)?,
                "previous" => o.previous = parse_bool(k, v)?,
                "timestamps" => o.timestamps = parse_bool(k, v)?,
                "tailLines" => {
                    let n = parse_int(k, v)?;
                    if n < 0 {
                        return Err("tailLines: Invalid value: must be greater than or equal to 0".into());
                    }
                    o.tail_lines = Some(n as u64);
                }
                "limitBytes" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err("limitBytes: Invalid value: must be greater than 0".into());
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err("sinceSeconds: Invalid value: must be greater than 0".into());
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    since_time = Some(parse_rfc3339(v).ok_or_else(|| format!("sinceTime: invalid time {v:?}"))?);
                }
                _ => {}
            }
        }
        o.since_nanos = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into()),
            (Some(s), None) => Some(nanos(now) - i128::from(s) * 1_000_000_000),
            (None, t) => t,
        };
        Ok(o)
    }

    /// The file to read: the current restart's, or the one before with `previous`.
    pub fn file(&self, log_dir: &Path, restart_count: u32) -> Option<PathBuf> {
        let n = if self.previous { restart_count.checked_sub(1)? } else { restart_count };
        Some(log_dir.join(format!("{n}.log")))
    }
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 (`2024-01-02T03:04:05.123456789Z`, or with an offset) to nanoseconds
/// since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut at = 19;
    let mut frac: i128 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let digits = &s[start..at];
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.chars().take(9).collect::<String>();
        while padded.len() < 9 {
            padded.push('0');
        }
        frac = padded.parse().ok()?;
    }
    let offset = match &s[at..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let hh: i64 = tz[1..3].parse().ok()?;
            let mm: i64 = tz[4..6].parse().ok()?;
            let o = hh * 3600 + mm * 60;
            if tz.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

/// What one record writes to the client, or `None` when filtered out.
pub fn render(record: &LogRecord, opts: &LogOptions) -> Option<Vec<u8>> {
    if let Some(since) = opts.since_nanos {
        match parse_rfc3339(&record.timestamp) {
            Some(t) if t >= since => {}
            _ => return None,
        }
    }
    let mut out = Vec::with_capacity(record.content.len() + 40);
    if opts.timestamps {
        out.extend_from_slice(record.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(record.content.as_bytes());
    if !record.partial {
        out.push(b'\n');
    }
    Some(out)
}

/// Whether the container that writes a log still runs (so that following goes on).
#[async_trait::async_trait]
pub trait Alive: Send + Sync {
    async fn running(&self) -> bool;
}

/// A container that has stopped (or a log nobody writes any more).
pub struct Stopped;

#[async_trait::async_trait]
impl Alive for Stopped {
    async fn running(&self) -> bool {
        false
    }
}

/// Where a [`Follower`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Beginning,
    /// The current end (attach: only what comes from now on).
    End,
    /// The start of the last N records.
    Tail(u64),
}

/// Reads records from a log file, and with `follow` waits for more until the
/// container stops, reopening the file when it is rotated.
pub struct Follower {
    path: PathBuf,
    file: BufReader<tokio::fs::File>,
    ino: u64,
    pending: Vec<u8>,
    follow: bool,
    last_alive_check: Instant,
}

impl Follower {
    pub async fn open(path: &Path, start: Start, follow: bool) -> std::io::Result<Follower> {
        let mut file = tokio::fs::File::open(path).await?;
        let meta = file.metadata().await?;
        let offset = match start {
            Start::Beginning => 0,
            Start::End => meta.len(),
            Start::Tail(n) => tail_offset(&mut file, meta.len(), n).await?,
        };
        file.seek(SeekFrom::Start(offset)).await?;
        Ok(Follower {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(64 * 1024, file),
            ino: meta.ino(),
            pending: Vec::new(),
            follow,
            last_alive_check: Instant::now(),
        })
    }

    /// The next record, or `None` at the end.
    pub async fn next(&mut self, alive: &dyn Alive) -> std::io::Result<Option<LogRecord>> {
        loop {
            let Some(line) = self.next_line(alive).await? else { return Ok(None) };
            // Lines that are not records (a torn write, junk) are skipped.
            if let Some(r) = std::str::from_utf8(&line).ok().and_then(parse_record) {
                return Ok(Some(r));
            }
            if let Some(r) = parse_record(&String::from_utf8_lossy(&line)) {
                return Ok(Some(r));
            }
        }
    }

    async fn next_line(&mut self, alive: &dyn Alive) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            self.file.read_until(b'\n', &mut self.pending).await?;
            if self.pending.last() == Some(&b'\n') {
                let mut line = std::mem::take(&mut self.pending);
                line.pop();
                self.last_alive_check = Instant::now();
                return Ok(Some(line));
            }
            // At the end of what is written so far.
            if !self.follow {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.pending)));
            }
            if let Ok(meta) = tokio::fs::metadata(&self.path).await
                && meta.ino() != self.ino
            {
                // Rotated: the old file is read to its end; go on with the new one.
                if let Ok(f) = tokio::fs::File::open(&self.path).await {
                    self.file = BufReader::with_capacity(64 * 1024, f);
                    self.ino = meta.ino();
                    self.pending.clear();
                    continue;
                }
            }
            if self.last_alive_check.elapsed() >= ALIVE_CHECK {
                self.last_alive_check = Instant::now();
                if !alive.running().await {
                    // One last read for what was written before it stopped.
                    self.follow = false;
                    continue;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The offset of the start of the last `n` lines of a file.
async fn tail_offset(file: &mut tokio::fs::File, len: u64, n: u64) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(len);
    }
    const BLOCK: u64 = 64 * 1024;
    let mut end = len;
    let mut seen = 0u64;
    let mut buf = vec![0u8; BLOCK as usize];
    // The file's last newline ends the last line; it does not start one.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(chunk).await?;
        for i in (0..chunk.len()).rev() {
            if chunk[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last && start + i as u64 == len - 1 {
                skip_last = false;
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::logfile::LogWriter;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_as_upstream_validates_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let o = LogOptions::from_query(
            &q(&[("follow", "true"), ("tailLines", "10"), ("timestamps", "1"), ("sinceSeconds", "60")]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.since_nanos, Some(940 * 1_000_000_000));
        assert!(LogOptions::from_query(&q(&[("tailLines", "-1")]), now).is_err());
        assert!(LogOptions::from_query(&q(&[("limitBytes", "0")]), now).is_err());
        assert!(LogOptions::from_query(&q(&[("sinceSeconds", "0")]), now).is_err());
        assert!(LogOptions::from_query(&q(&[("follow", "yes")]), now).is_err());
        let both = LogOptions::from_query(&q(&[("sinceSeconds", "5"), ("sinceTime", "2024-01-02T03:04:05Z")]), now);
        assert_eq!(both.unwrap_err(), "at most one of `sinceTime` or `sinceSeconds` may be specified");
        let t = LogOptions::from_query(&q(&[("sinceTime", "2024-01-02T03:04:05Z"), ("previous", "")]), now).unwrap();
        assert!(t.previous);
        assert_eq!(t.since_nanos, Some(1_704_164_645 * 1_000_000_000));
    }

    #[test]
    fn previous_reads_the_file_before() {
        let o = LogOptions { previous: true, ..LogOptions::default() };
        assert_eq!(o.file(Path::new("/l"), 2), Some(PathBuf::from("/l/1.log")));
        assert_eq!(o.file(Path::new("/l"), 0), None);
        assert_eq!(LogOptions::default().file(Path::new("/l"), 0), Some(PathBuf::from("/l/0.log")));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05.123456789Z"), Some(1_704_164_645_123_456_789));
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05.5Z"), Some(1_704_164_645_500_000_000));
        assert_eq!(parse_rfc3339("2024-01-02T04:04:05+01:00"), Some(1_704_164_645 * 1_000_000_000));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400 * 1_000_000_000));
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "x024-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let now = SystemTime::now();
        let s = runtime::logfile::rfc3339_nanos(now);
        assert_eq!(parse_rfc3339(&s), Some(nanos(now)));
    }

    #[test]
    fn rendering_since_and_timestamps() {
        let r = |ts: &str, partial: bool, c: &str| LogRecord {
            timestamp: ts.into(),
            stream: "stdout".into(),
            partial,
            content: c.into(),
        };
        let o = LogOptions::default();
        assert_eq!(render(&r("2024-01-02T03:04:05Z", false, "a"), &o).unwrap(), b"a\n");
        assert_eq!(render(&r("2024-01-02T03:04:05Z", true, "a"), &o).unwrap(), b"a");
        let ts = LogOptions { timestamps: true, ..LogOptions::default() };
        assert_eq!(
            render(&r("2024-01-02T03:04:05.000000001Z", false, "x"), &ts).unwrap(),
            b"2024-01-02T03:04:05.000000001Z x\n"
        );
        let since = LogOptions { since_nanos: parse_rfc3339("2024-01-02T03:04:05Z"), ..LogOptions::default() };
        assert!(render(&r("2024-01-02T03:04:04.999999999Z", false, "old"), &since).is_none());
        assert!(render(&r("2024-01-02T03:04:05Z", false, "now"), &since).is_some());
        assert!(render(&r("garbage", false, "?"), &since).is_none());
    }

    fn write_log(path: &Path, lines: &[&str]) {
        let mut w = LogWriter::open(path).unwrap();
        for l in lines {
            w.write_record("stdout", false, l.as_bytes(), SystemTime::now()).unwrap();
        }
    }

    async fn read_all(path: &Path, start: Start) -> Vec<String> {
        let mut f = Follower::open(path, start, false).await.unwrap();
        let mut out = Vec::new();
        while let Some(r) = f.next(&Stopped).await.unwrap() {
            out.push(r.content);
        }
        out
    }

    #[tokio::test]
    async fn tails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        write_log(&p, &["one", "two", "three"]);
        assert_eq!(read_all(&p, Start::Tail(2)).await, ["two", "three"]);
        assert_eq!(read_all(&p, Start::Tail(3)).await, ["one", "two", "three"]);
        assert_eq!(read_all(&p, Start::Tail(10)).await, ["one", "two", "three"]);
        assert!(read_all(&p, Start::Tail(0)).await.is_empty());
        assert!(read_all(&p, Start::End).await.is_empty());
        assert_eq!(read_all(&p, Start::Beginning).await.len(), 3);
        // Across block boundaries.
        let big = dir.path().join("1.log");
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i} {}", "x".repeat(40))).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        write_log(&big, &refs);
        let got = read_all(&big, Start::Tail(3000)).await;
        assert_eq!(got.len(), 3000);
        assert_eq!(got[0], lines[2000]);
        let empty = dir.path().join("2.log");
        std::fs::write(&empty, "").unwrap();
        assert!(read_all(&empty, Start::Tail(5)).await.is_empty());
    }

    struct Flag(std::sync::atomic::AtomicBool);

    #[async_trait::async_trait]
    impl Alive for Flag {
        async fn running(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn following_sees_new_lines_rotation_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        write_log(&p, &["first"]);
        let alive = std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(true)));
        let mut f = Follower::open(&p, Start::Beginning, true).await.unwrap();
        assert_eq!(f.next(alive.as_ref()).await.unwrap().unwrap().content, "first");
        let writer = {
            let (p, dir, alive) = (p.clone(), dir.path().to_path_buf(), alive.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                write_log(&p, &["second"]);
                tokio::time::sleep(Duration::from_millis(100)).await;
                std::fs::rename(&p, dir.join("0.log.1")).unwrap();
                write_log(&p, &["after rotation"]);
                tokio::time::sleep(Duration::from_millis(200)).await;
                write_log(&p, &["last words"]);
                alive.0.store(false, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let mut got = Vec::new();
        let t = Instant::now();
        while let Some(r) = tokio::time::timeout(Duration::from_secs(5), f.next(alive.as_ref())).await.unwrap().unwrap()
        {
            got.push(r.content);
        }
        writer.await.unwrap();
        assert_eq!(got, ["second", "after rotation", "last words"]);
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
