//! The one file behind the embedded store: a header, then checksummed records.
//!
//! A record is `u32 length, u32 crc32(payload), payload`. Payloads are either a
//! transaction (its revision and changes) or, at the start of a rewritten file, a
//! snapshot header followed by one record per live key. A torn record at the tail (a
//! crash mid-append, never acknowledged) is cut off on open.
//!
//! The file is kept longer than its records, the rest zeros written ahead of time: an
//! append then overwrites blocks that already exist, so its `fdatasync` flushes data
//! only. Growing the file on every append made each sync write the inode as well
//! (about twice the kernel time per commit, and a far longer tail of slow syncs). A
//! zero length ends the records, as it cannot start one.

use super::mvcc::{Change, Mvcc};
use crate::StoreError;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RUDDERK1";
const TAG_TXN: u8 = 1;
const TAG_SNAPSHOT: u8 = 3;
const TAG_KV: u8 = 4;
/// No legitimate record comes near this; a larger length means a torn or corrupt tail.
const MAX_RECORD: u32 = 1 << 30;
/// Zeros are written ahead in steps of an eighth of the log, within these bounds: a
/// fresh store (every test makes some) stays small, and the batch whose sync also
/// flushes a step's zeros is not held long. (The store bench at 64 writers: 64 MiB
/// steps held a large log's writers tens of milliseconds now and then; 4 MiB steps
/// came so often that p99 rose to 13.7 ms; 16 MiB: p99 1.0 ms.)
const MIN_AHEAD: u64 = 1 << 20;
const MAX_AHEAD: u64 = 16 << 20;

pub(crate) struct Log {
    path: PathBuf,
    file: File,
    /// The end of the records: where the next append goes.
    pub size: u64,
    /// The file's length: `size` plus the zeros written ahead.
    allocated: u64,
    /// Makes writing zeros ahead fail as on a full disk.
    #[cfg(test)]
    refuse_zeros: bool,
}

impl Log {
    /// Opens (or creates) the file, replays it into a fresh index, and locks it against
    /// a second process.
    pub fn open(path: &Path) -> Result<(Log, Mvcc), StoreError> {
        let exists = path.exists();
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        file.try_lock().map_err(|_| StoreError::Corrupt {
            path: path.display().to_string(),
            detail: "the file is locked by another process (is another server running on this data dir?)".into(),
        })?;
        let mut mvcc = Mvcc::default();
        let len = file.metadata()?.len();
        if !exists || len == 0 {
            file.write_all(MAGIC)?;
            file.sync_all()?;
            sync_dir(path)?;
            let size = MAGIC.len() as u64;
            return Ok((Log::new(path, file, size), mvcc));
        }
        let (good, end) = replay(&mut file, len, path, &mut mvcc)?;
        if good < len {
            // Zeros written ahead are cut too (the next append writes new ones): one
            // shape of file after every open.
            if end == End::Torn {
                tracing::warn!(path = %path.display(), kept = good, dropped = len - good, "cutting a torn record off the store's tail");
            }
            file.set_len(good)?;
            file.sync_all()?;
        }
        // History before a restart is gone: watches from older revisions must relist.
        mvcc.compacted = mvcc.revision;
        Ok((Log::new(path, file, good), mvcc))
    }

    fn new(path: &Path, file: File, size: u64) -> Log {
        Log {
            path: path.to_path_buf(),
            file,
            size,
            allocated: size,
            #[cfg(test)]
            refuse_zeros: false,
        }
    }

    /// Appends encoded records; call [`Log::sync`] before acknowledging them.
    pub fn append(&mut self, records: &[u8]) -> Result<(), StoreError> {
        let end = self.size + records.len() as u64;
        if end > self.allocated
            && let Err(e) = self.write_ahead(end)
        {
            // No room for the zeros (a nearly full disk) is not yet no room for the
            // records: give back what the zeros took and append as before, trying
            // again a step later.
            tracing::warn!(error = %e, "could not write zeros ahead of the store's log; appending without them");
            self.file.set_len(self.allocated.max(self.size))?;
            self.allocated = end + MIN_AHEAD;
        }
        self.file.write_all_at(records, self.size)?;
        self.size = end;
        Ok(())
    }

    /// Extends the file with zeros past `end`; the next sync makes the new length
    /// durable along with the records written into it.
    fn write_ahead(&mut self, end: u64) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.refuse_zeros {
            return Err(StoreError::Io(std::io::Error::from_raw_os_error(28)));
        }
        let target = end + (end / 8).clamp(MIN_AHEAD, MAX_AHEAD);
        let zeros = vec![0u8; MIN_AHEAD as usize];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(MIN_AHEAD) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.allocated = target;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Replaces the file with a snapshot of the live keys (atomically, by rename).
    pub fn rewrite(&mut self, mvcc: &Mvcc) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("rewrite");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        let mut size = MAGIC.len() as u64;
        {
            let mut out = std::io::BufWriter::new(&mut file);
            out.write_all(MAGIC)?;
            let mut buf = Vec::new();
            encode_snapshot_header(&mut buf, mvcc.revision);
            for kv in mvcc.live() {
                encode_kv(&mut buf, &kv.key, &kv.value, kv.create_revision, kv.mod_revision);
                if buf.len() > 1 << 20 {
                    out.write_all(&buf)?;
                    size += buf.len() as u64;
                    buf.clear();
                }
            }
            out.write_all(&buf)?;
            size += buf.len() as u64;
            out.flush()?;
        }
        file.sync_all()?;
        // Lock the new file before it takes the old one's name, so no second process
        // can slip in between.
        file.try_lock().map_err(|_| StoreError::Corrupt {
            path: tmp.display().to_string(),
            detail: "could not lock the rewritten store file".into(),
        })?;
        std::fs::rename(&tmp, &self.path)?;
        // The new file has the name now: from here on it is the one to append to,
        // even if the directory's sync below fails.
        self.file = file;
        self.size = size;
        self.allocated = size;
        sync_dir(&self.path)
    }
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn frame(buf: &mut [u8], payload_start: usize) {
    let len = (buf.len() - payload_start) as u32;
    let crc = crc32fast::hash(&buf[payload_start..]);
    buf[payload_start - 8..payload_start - 4].copy_from_slice(&len.to_le_bytes());
    buf[payload_start - 4..payload_start].copy_from_slice(&crc.to_le_bytes());
}

fn begin(buf: &mut Vec<u8>) -> usize {
    buf.extend_from_slice(&[0; 8]);
    buf.len()
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

/// Encodes one transaction's changes.
pub(crate) fn encode_txn(buf: &mut Vec<u8>, revision: i64, changes: &[Change]) {
    let start = begin(buf);
    buf.push(TAG_TXN);
    buf.extend_from_slice(&revision.to_le_bytes());
    buf.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    for c in changes {
        match &c.value {
            Some(v) => {
                buf.push(1);
                put_bytes(buf, c.key.as_bytes());
                put_bytes(buf, v);
            }
            None => {
                buf.push(2);
                put_bytes(buf, c.key.as_bytes());
            }
        }
    }
    frame(buf, start);
}

fn encode_snapshot_header(buf: &mut Vec<u8>, revision: i64) {
    let start = begin(buf);
    buf.push(TAG_SNAPSHOT);
    buf.extend_from_slice(&revision.to_le_bytes());
    frame(buf, start);
}

fn encode_kv(buf: &mut Vec<u8>, key: &str, value: &[u8], create: i64, modr: i64) {
    let start = begin(buf);
    buf.push(TAG_KV);
    buf.extend_from_slice(&create.to_le_bytes());
    buf.extend_from_slice(&modr.to_le_bytes());
    put_bytes(buf, key.as_bytes());
    put_bytes(buf, value);
    frame(buf, start);
}

/// A cursor over one record's payload; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// How the records ended.
#[derive(Debug, PartialEq)]
enum End {
    /// At the end of the file or at zeros written ahead.
    Clean,
    /// At a record cut short or failing its checksum: a crash mid-append.
    Torn,
}

/// Replays every intact record; returns the offset after the last one.
fn replay(file: &mut File, len: u64, path: &Path, mvcc: &mut Mvcc) -> Result<(u64, End), StoreError> {
    file.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(1 << 20, &mut *file);
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(StoreError::Corrupt { path: path.display().to_string(), detail: "not a rudder store file".into() });
    }
    let mut offset = MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() {
            return Ok((offset, if offset == len { End::Clean } else { End::Torn }));
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 {
            return Ok((offset, if head == [0; 8] { End::Clean } else { End::Torn }));
        }
        if len > MAX_RECORD {
            return Ok((offset, End::Torn));
        }
        payload.resize(len as usize, 0);
        if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            return Ok((offset, End::Torn));
        }
        if apply_record(&payload, mvcc).is_none() {
            return Err(StoreError::Corrupt {
                path: path.display().to_string(),
                detail: format!("record at offset {offset} passed its checksum but does not decode"),
            });
        }
        offset += 8 + len as u64;
    }
}

fn apply_record(payload: &[u8], mvcc: &mut Mvcc) -> Option<()> {
    let mut c = Cursor { b: payload, pos: 0 };
    match c.u8()? {
        TAG_TXN => {
            let revision = c.i64()?;
            let n = c.u32()?;
            let mut changes = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                let op = c.u8()?;
                let key = c.string()?;
                let value = match op {
                    1 => Some(Bytes::copy_from_slice(c.bytes()?)),
                    2 => None,
                    _ => return None,
                };
                changes.push(Change { key, value });
            }
            mvcc.apply(revision, changes, false);
        }
        TAG_SNAPSHOT => {
            *mvcc = Mvcc::default();
            mvcc.revision = c.i64()?;
        }
        TAG_KV => {
            let create = c.i64()?;
            let modr = c.i64()?;
            let key = c.string()?;
            let value = Bytes::copy_from_slice(c.bytes()?);
            mvcc.load(key, value, create, modr);
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RangeRequest;

    fn put(k: &str, v: &str) -> Change {
        Change { key: k.into(), value: Some(Bytes::from(v.to_string())) }
    }

    /// Appends one transaction and syncs it, as the committer does.
    fn commit(log: &mut Log, revision: i64, changes: &[Change]) {
        let mut buf = Vec::new();
        encode_txn(&mut buf, revision, changes);
        log.append(&buf).unwrap();
        log.sync().unwrap();
    }

    /// Replays the file as it lies on disk, without cutting anything.
    fn replay_as_is(path: &Path) -> (u64, End, Mvcc) {
        let mut file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        let mut mvcc = Mvcc::default();
        let (good, end) = replay(&mut file, len, path, &mut mvcc).unwrap();
        (good, end, mvcc)
    }

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let (mut log, _) = Log::open(&path).unwrap();
            let mut buf = Vec::new();
            encode_txn(&mut buf, 1, &[put("a", "1"), put("b", "2")]);
            encode_txn(&mut buf, 2, &[Change { key: "a".into(), value: None }]);
            log.append(&buf).unwrap();
            // A torn third record: its header promises more than was written.
            let mut torn = Vec::new();
            encode_txn(&mut torn, 3, &[put("c", "3")]);
            log.append(&torn[..torn.len() - 2]).unwrap();
            log.sync().unwrap();
        }
        let (log, mvcc) = Log::open(&path).unwrap();
        assert_eq!(mvcc.revision, 2);
        assert!(mvcc.latest("a").is_none());
        assert_eq!(mvcc.latest("b").unwrap().value, "2");
        assert!(mvcc.latest("c").is_none());
        assert_eq!(log.size, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn appends_into_zeros_written_ahead_and_replays_across_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let value = "v".repeat(10_000);
        {
            let (mut log, _) = Log::open(&path).unwrap();
            // 300 records of ~10 KiB: past the first step of zeros and into others.
            for rev in 1..=300 {
                commit(&mut log, rev, &[put(&format!("k{rev}"), &value)]);
                let len = std::fs::metadata(&path).unwrap().len();
                assert!(len > log.size, "the file ({len}) ends past the records ({})", log.size);
            }
        }
        let (good, end, _) = replay_as_is(&path);
        assert_eq!(end, End::Clean, "zeros ahead are not a torn record");
        assert!(good < std::fs::metadata(&path).unwrap().len());
        let (log, mvcc) = Log::open(&path).unwrap();
        assert_eq!(mvcc.revision, 300);
        assert_eq!(mvcc.latest("k1").unwrap().value, value.as_str());
        assert_eq!(mvcc.latest("k300").unwrap().value, value.as_str());
        assert_eq!(log.size, good);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good, "the zeros are cut on open");
    }

    #[test]
    fn appends_without_zeros_ahead_when_they_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let (mut log, _) = Log::open(&path).unwrap();
            log.refuse_zeros = true;
            for rev in 1..=3 {
                commit(&mut log, rev, &[put(&format!("k{rev}"), "v")]);
            }
            assert_eq!(std::fs::metadata(&path).unwrap().len(), log.size, "no zeros, no lost space");
            // Zeros ahead again once they can be written, a step later.
            log.refuse_zeros = false;
            commit(&mut log, 4, &[put("big", &"v".repeat(2 << 20))]);
            assert!(std::fs::metadata(&path).unwrap().len() > log.size);
        }
        let (_, mvcc) = Log::open(&path).unwrap();
        assert_eq!(mvcc.revision, 4);
        assert_eq!(mvcc.latest("k3").unwrap().value, "v");
    }

    #[test]
    fn a_zero_length_with_a_checksum_is_torn_not_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let (mut log, _) = Log::open(&path).unwrap();
            let mut buf = Vec::new();
            encode_txn(&mut buf, 1, &[put("a", "1")]);
            buf.extend_from_slice(&[0, 0, 0, 0, 7, 0, 0, 0]);
            log.append(&buf).unwrap();
            log.sync().unwrap();
        }
        let (_, end, mvcc) = replay_as_is(&path);
        assert_eq!(end, End::Torn);
        assert_eq!(mvcc.revision, 1);
    }

    #[test]
    fn rewrite_keeps_live_keys_and_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let (mut log, mut mvcc) = Log::open(&path).unwrap();
            let mut buf = Vec::new();
            for rev in 1..=50 {
                let change = put(&format!("k{}", rev % 5), &rev.to_string());
                encode_txn(&mut buf, rev, std::slice::from_ref(&change));
                mvcc.apply(rev, vec![change], true);
            }
            log.append(&buf).unwrap();
            let before = log.size;
            log.rewrite(&mvcc).unwrap();
            assert!(log.size < before);
            let mut more = Vec::new();
            encode_txn(&mut more, 51, &[put("k9", "51")]);
            log.append(&more).unwrap();
            log.sync().unwrap();
        }
        let (_, mvcc) = Log::open(&path).unwrap();
        assert_eq!(mvcc.revision, 51);
        let all = mvcc.range(&RangeRequest::prefix("k")).unwrap();
        assert_eq!(all.kvs.len(), 6);
        assert_eq!(mvcc.latest("k0").unwrap().value, "50");
        assert_eq!(mvcc.latest("k0").unwrap().mod_revision, 50);
    }

    #[test]
    fn refuses_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        std::fs::write(&path, b"hello world, not a store").unwrap();
        assert!(matches!(Log::open(&path), Err(StoreError::Corrupt { .. })));
    }
}
