//! Container log files in the CRI format the kubelet reads:
//!
//! ```text
//! 2024-01-02T03:04:05.123456789Z stdout F hello
//! 2024-01-02T03:04:05.123456789Z stderr P first 16 KiB of a long line…
//! ```
//!
//! `F` ends a line, `P` is a part of a longer one (lines over 16 KiB are split, as
//! containerd does). The writer reopens its file when the path stops naming it, so
//! rotating a log is: rename it away, and the next line starts a new file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// containerd's longest log line before it splits.
pub const MAX_LINE: usize = 16 * 1024;
const REOPEN_CHECK: Duration = Duration::from_millis(500);

/// RFC 3339 in UTC with nanoseconds (`2024-01-02T03:04:05.123456789Z`), the form Go's
/// `time.RFC3339Nano` parses.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// One log file shared by a container's stdout and stderr pumps.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    ino: u64,
    last_check: Instant,
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let ino = file.metadata()?.ino();
        Ok(LogWriter { path: path.to_path_buf(), file, ino, last_check: Instant::now() })
    }

    /// Writes one record; `line` excludes the newline.
    pub fn write_record(&mut self, stream: &str, partial: bool, line: &[u8], at: SystemTime) -> io::Result<()> {
        self.reopen_if_rotated()?;
        let tag = if partial { "P" } else { "F" };
        let mut buf = Vec::with_capacity(line.len() + 48);
        buf.extend_from_slice(rfc3339_nanos(at).as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(stream.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(tag.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.file.write_all(&buf)
    }

    fn reopen_if_rotated(&mut self) -> io::Result<()> {
        if self.last_check.elapsed() < REOPEN_CHECK {
            return Ok(());
        }
        self.last_check = Instant::now();
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current != Some(self.ino) {
            *self = LogWriter::open(&self.path)?;
        }
        Ok(())
    }
}

/// Copies a stream into the log until it ends, one record per line.
pub fn pump(mut source: impl Read, stream: &str, log: Arc<Mutex<LogWriter>>) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let write = |line: &[u8], partial: bool| -> io::Result<()> {
        let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
        w.write_record(stream, partial, line, SystemTime::now())
    };
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            let mut line = &pending[start..end];
            while line.len() > MAX_LINE {
                write(&line[..MAX_LINE], true)?;
                line = &line[MAX_LINE..];
            }
            write(line, false)?;
            start = end + 1;
        }
        pending.drain(..start);
        while pending.len() > MAX_LINE {
            write(&pending[..MAX_LINE], true)?;
            pending.drain(..MAX_LINE);
        }
    }
    // Output that ends without a newline ends with a partial record, as containerd
    // writes it: `kubectl logs` shows no newline that was never printed.
    if !pending.is_empty() {
        write(&pending, true)?;
    }
    Ok(())
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub timestamp: String,
    pub stream: String,
    pub partial: bool,
    pub content: String,
}

/// Parses a CRI log line (without its newline); `None` if it is not one.
pub fn parse_record(line: &str) -> Option<LogRecord> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?.to_string();
    let stream = parts.next()?.to_string();
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("").to_string();
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    Some(LogRecord { timestamp, stream, partial: tag.split(':').next() == Some("P"), content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::new(1_704_164_645, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2024-01-02T03:04:05.123456789Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339_nanos(leap)[..10], "2000-02-29");
        let end = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31T23:59:59
        assert_eq!(rfc3339_nanos(end), "2099-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn lines_partials_and_unterminated_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let log = Arc::new(Mutex::new(LogWriter::open(&path).unwrap()));
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("hello\n\nworld\n{long}\ntail");
        pump(input.as_bytes(), "stdout", log.clone()).unwrap();
        pump(&b"oops\n"[..], "stderr", log).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let records: Vec<LogRecord> = text.lines().map(|l| parse_record(l).unwrap()).collect();
        let summary: Vec<(&str, bool, usize)> =
            records.iter().map(|r| (r.stream.as_str(), r.partial, r.content.len())).collect();
        assert_eq!(
            summary,
            [
                ("stdout", false, 5),
                ("stdout", false, 0),
                ("stdout", false, 5),
                ("stdout", true, MAX_LINE),
                ("stdout", false, 10),
                ("stdout", true, 4),
                ("stderr", false, 4),
            ]
        );
        assert_eq!(records[0].content, "hello");
        assert_eq!(records[0].timestamp.len(), "2024-01-02T03:04:05.123456789Z".len());
    }

    #[test]
    fn a_rotated_file_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write_record("stdout", false, b"one", SystemTime::now()).unwrap();
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        w.last_check = Instant::now() - REOPEN_CHECK;
        w.write_record("stdout", false, b"two", SystemTime::now()).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with(" stdout F two\n"));
        assert!(std::fs::read_to_string(dir.path().join("0.log.1")).unwrap().ends_with(" stdout F one\n"));
    }

    #[test]
    fn parse_rejects_junk() {
        assert!(parse_record("").is_none());
        assert!(parse_record("ts notastream F x").is_none());
        let r = parse_record("ts stdout F a b  c").unwrap();
        assert_eq!(r.content, "a b  c");
    }
}
