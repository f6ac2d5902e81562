//! Keeps the code a running server or agent does not use out of its resident set.
//!
//! One `rudder` binary carries the API server, the store, every controller, the
//! scheduler and the agent, 20 MiB of code; a process runs a slice of it. Yet the
//! idle server had 15 MiB of it mapped and the idle agent 11 (BENCHMARKS.md, "Start-up
//! and idle memory"): on a page fault in a file mapping the kernel also maps every
//! page of the 64 KiB around it that is in the page cache ("fault-around"), and the
//! binary is wholly in the page cache (it was just written or read), so each touched
//! 4 KiB page of code brought up to sixteen into the process. Measured on the idle
//! server (`/proc/PID/clear_refs`, then `Referenced:` in smaps), it executes 4.2 MiB
//! of distinct code pages in ten seconds.
//!
//! [`trim`], run by [`trim_once_settled`] once a verb has started, does two things to
//! the mappings of the executable and its shared libraries:
//! - registers them with a userfaultfd in asynchronous write-protect mode, which does
//!   nothing for these read-only mappings except what it is here for: the kernel
//!   does no fault-around in a range registered so (`uffd_disable_fault_around` in
//!   mm/memory.c), so from then on a page fault maps the one page that was touched
//!   (Linux 6.7 or later: `UFFD_FEATURE_WP_ASYNC` is what allows registering a
//!   file mapping);
//! - unmaps their pages (`MADV_DONTNEED`), so that only what runs from then on comes
//!   back. These are clean, private file pages: unmapping them loses nothing, they
//!   stay in the page cache, and a later access is a minor fault.
//!
//! Neither `MADV_RANDOM` nor `MADV_COLD` does this: fault-around ignores the first,
//! and since Linux 6.16 readahead does too for executable mappings (mm/filemap.c,
//! `do_sync_mmap_readahead`); the second only ages the pages, which stay mapped.
//!
//! Every step fails safe: an error is logged at debug and the next step runs (without
//! the userfaultfd the unmapping still helps, less). The cost is a minor fault per
//! 4 KiB page of code the first time it runs after [`trim`] instead of one per 64
//! KiB, in request paths not yet taken since; once taken they stay mapped.

use std::ops::Range;
use std::time::{Duration, Instant};

/// How long after start-up to trim. The controllers' and informers' first sync and
/// the agent's registration run just after the server says it is ready; code that
/// only they ran would otherwise stay mapped (1.5 MiB more code in an idle server with
/// an agent attached when trimmed at "ready" than two seconds later).
const SETTLE: Duration = Duration::from_secs(2);

/// One mapping of `/proc/self/smaps`, with what deciding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    range: Range<usize>,
    perms: String,
    path: String,
    /// `Anonymous:` in KiB: pages of the mapping that are no longer the file's
    /// (relocated RELRO, written data). Unmapping those would lose them.
    anonymous_kib: u64,
    rss_kib: u64,
}

/// Reads the mappings out of smaps text. Lines it does not know are skipped.
fn parse(smaps: &str) -> Vec<Mapping> {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(m) = header(line) {
            maps.push(m);
            continue;
        }
        let Some(last) = maps.last_mut() else { continue };
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else { continue };
        let Ok(kib) = value.parse::<u64>() else { continue };
        match key {
            "Anonymous:" => last.anonymous_kib = kib,
            "Rss:" => last.rss_kib = kib,
            _ => {}
        }
    }
    maps
}

/// `start-end perms offset dev inode [path]`; the path may hold spaces (" (deleted)").
fn header(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let range = usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let (_offset, _dev, _inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("").trim_start().to_string();
    Some(Mapping { range, perms: perms.to_string(), path, anonymous_kib: 0, rss_kib: 0 })
}

/// The mappings to trim: those of files the process executes from (the executable
/// and its shared libraries, not data files it may map), private and read-only, and
/// holding nothing but the file's own pages.
fn trimmable(maps: &[Mapping]) -> Vec<&Mapping> {
    let executed: std::collections::HashSet<&str> = maps
        .iter()
        .filter(|m| m.path.starts_with('/') && m.perms.as_bytes()[2] == b'x')
        .map(|m| m.path.as_str())
        .collect();
    maps.iter()
        .filter(|m| executed.contains(m.path.as_str()))
        .filter(|m| m.perms.as_bytes()[1] == b'-' && m.perms.as_bytes()[3] == b'p')
        .filter(|m| m.anonymous_kib == 0)
        .collect()
}

/// What [`trim`] did, for the log and the tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub mappings: usize,
    /// Resident before the trim, in KiB.
    pub resident_kib: u64,
    /// Whether fault-around is off for them from now on.
    pub fault_around_off: bool,
}

/// Trims once, [`SETTLE`] after the call, on a task of the current runtime. It takes
/// a millisecond or two (reading smaps, a few system calls), so it runs inline there.
pub fn trim_once_settled() {
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        trim();
    });
}

/// Trims once per process; later calls do nothing (see the module comment).
fn trim() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let started = Instant::now();
        let t = trim_now();
        tracing::debug!(
            mappings = t.mappings,
            resident_kib = t.resident_kib,
            fault_around_off = t.fault_around_off,
            took_us = started.elapsed().as_micros() as u64,
            "unmapped the executable's pages; they come back as they run"
        );
    });
}

fn trim_now() -> Trimmed {
    let smaps = match std::fs::read_to_string("/proc/self/smaps") {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "reading /proc/self/smaps; not trimming");
            return Trimmed::default();
        }
    };
    let maps = parse(&smaps);
    let chosen = trimmable(&maps);
    let ranges: Vec<Range<usize>> = chosen.iter().map(|m| m.range.clone()).collect();
    // Fault-around off first: pages unmapped before it would come back sixteen at a time.
    let fault_around_off = match sys::fault_around_off(&ranges) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "userfaultfd; fault-around stays on");
            false
        }
    };
    for r in &ranges {
        if let Err(e) = sys::unmap(r) {
            tracing::debug!(error = %e, start = r.start, len = r.len(), "madvise(MADV_DONTNEED)");
        }
    }
    Trimmed { mappings: chosen.len(), resident_kib: chosen.iter().map(|m| m.rss_kib).sum(), fault_around_off }
}

/// The system calls, the one place here that needs `unsafe`.
#[allow(unsafe_code)]
mod sys {
    use rustix::fd::OwnedFd;
    use rustix::ioctl::{Updater, opcode};
    use std::io;
    use std::ops::Range;
    use std::sync::OnceLock;

    /// `struct uffdio_api` (linux/userfaultfd.h).
    #[repr(C)]
    struct UffdioApi {
        api: u64,
        features: u64,
        ioctls: u64,
    }

    /// `struct uffdio_register`.
    #[repr(C)]
    struct UffdioRegister {
        start: u64,
        len: u64,
        mode: u64,
        ioctls: u64,
    }

    const UFFD_API: u64 = 0xaa;
    const UFFD_USER_MODE_ONLY: u32 = 1;
    const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
    const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
    const UFFDIO_API: rustix::ioctl::Opcode = opcode::read_write::<UffdioApi>(0xaa, 0x3f);
    const UFFDIO_REGISTER: rustix::ioctl::Opcode = opcode::read_write::<UffdioRegister>(0xaa, 0x00);

    /// The userfaultfd must stay open: closing it unregisters the ranges, which
    /// would turn fault-around back on.
    static UFFD: OnceLock<OwnedFd> = OnceLock::new();

    /// Registers the ranges for asynchronous write-protection, only so that the
    /// kernel does no fault-around in them. Nothing is ever write-protected and the
    /// descriptor is never read: asynchronous mode resolves write-protect faults in
    /// the kernel, and missing-page faults are not registered, so no thread waits on
    /// it. A child of `fork` does not inherit the registration.
    pub(super) fn fault_around_off(ranges: &[Range<usize>]) -> io::Result<()> {
        // User-mode faults only: allowed without privileges, and kernel accesses to
        // these pages are then never routed to the userfaultfd.
        let flags =
            rustix::mm::UserfaultfdFlags::CLOEXEC | rustix::mm::UserfaultfdFlags::from_bits_retain(UFFD_USER_MODE_ONLY);
        // SAFETY: creates a descriptor; the memory it can act on is only what is
        // registered below, in the modes chosen below.
        let fd = unsafe { rustix::mm::userfaultfd(flags) }?;
        let mut api = UffdioApi { api: UFFD_API, features: UFFD_FEATURE_WP_ASYNC, ioctls: 0 };
        // SAFETY: UFFDIO_API takes a `struct uffdio_api`, read and written in place.
        unsafe { rustix::ioctl::ioctl(&fd, Updater::<UFFDIO_API, UffdioApi>::new(&mut api)) }?;
        if api.features & UFFD_FEATURE_WP_ASYNC == 0 {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "no UFFD_FEATURE_WP_ASYNC (Linux < 6.7)"));
        }
        for r in ranges {
            let mut reg =
                UffdioRegister { start: r.start as u64, len: r.len() as u64, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 };
            // SAFETY: UFFDIO_REGISTER takes a `struct uffdio_register`; write-protect
            // mode in asynchronous mode changes no page's contents or permissions.
            unsafe { rustix::ioctl::ioctl(&fd, Updater::<UFFDIO_REGISTER, UffdioRegister>::new(&mut reg)) }?;
        }
        let _ = UFFD.set(fd);
        Ok(())
    }

    /// Unmaps the pages of a range chosen by `trimmable`.
    pub(super) fn unmap(r: &Range<usize>) -> io::Result<()> {
        // SAFETY: the range is a private, read-only mapping of a file with no
        // anonymous (modified) pages: every page reads back from the file as it was.
        // The executable and its libraries stay mapped for the life of the process
        // (nothing here unloads a library), so the range is still that mapping.
        unsafe { rustix::mm::madvise(r.start as *mut _, r.len(), rustix::mm::Advice::LinuxDontNeed) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55823cfad000-55823d806000 r--p 00000000 fe:00 5509731                    /usr/bin/rudder
Size:               8548 kB
Rss:                3212 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
55823d806000-55823ec0f000 r-xp 00858000 fe:00 5509731                    /usr/bin/rudder
Rss:               15316 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
55823ec0f000-55823ed1c000 r--p 01c60000 fe:00 5509731                    /usr/bin/rudder
Rss:                1076 kB
Anonymous:          1068 kB
VmFlags: rd mr mw me dw ac sd
55823ed1c000-55823ed25000 rw-p 01d6c000 fe:00 5509731                    /usr/bin/rudder
Rss:                  36 kB
Anonymous:             0 kB
VmFlags: rd wr mr mw me dw ac sd
558244339000-55824435a000 rw-p 00000000 00:00 0                          [heap]
Rss:                  64 kB
Anonymous:            64 kB
7fc0d9ca3000-7fc0d9df9000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 944 kB
Anonymous:             0 kB
7fc0d9e00000-7fc0d9e10000 r--p 00000000 fe:00 4242                       /var/lib/rudder/db/state.db
Rss:                  64 kB
Anonymous:             0 kB
7fc0d9e10000-7fc0d9e20000 r--s 00000000 fe:00 4243                       /usr/lib/x86_64-linux-gnu/libshared.so
Rss:                  64 kB
Anonymous:             0 kB
7fc0d9e20000-7fc0d9e30000 r-xs 00000000 fe:00 4243                       /usr/lib/x86_64-linux-gnu/libshared.so
Rss:                  64 kB
Anonymous:             0 kB
7fc0d9e30000-7fc0d9e40000 r-xp 00000000 fe:00 4244                       /opt/old rudder (deleted)
Rss:                   8 kB
Anonymous:             0 kB
7ffc44509000-7ffc4452b000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
";

    #[test]
    fn parses_headers_and_the_fields_that_decide() {
        let maps = parse(SMAPS);
        assert_eq!(maps.len(), 11);
        assert_eq!(maps[0].range, 0x55823cfad000..0x55823d806000);
        assert_eq!((maps[1].perms.as_str(), maps[1].rss_kib), ("r-xp", 15316));
        assert_eq!(maps[2].anonymous_kib, 1068);
        assert_eq!(maps[4].path, "[heap]");
        assert_eq!(maps[9].path, "/opt/old rudder (deleted)");
    }

    #[test]
    fn trims_only_clean_read_only_private_mappings_of_executed_files() {
        let maps = parse(SMAPS);
        let chosen: Vec<(&str, &str)> = trimmable(&maps).iter().map(|m| (m.path.as_str(), m.perms.as_str())).collect();
        assert_eq!(
            chosen,
            [
                // The executable's headers, read-only data and code; not its relocated
                // RELRO (anonymous pages) nor its data.
                ("/usr/bin/rudder", "r--p"),
                ("/usr/bin/rudder", "r-xp"),
                ("/usr/lib/x86_64-linux-gnu/libc.so.6", "r-xp"),
                // Replaced on disk while running: the mapping is still that file.
                ("/opt/old rudder (deleted)", "r-xp"),
            ],
            "not the heap, a data file, shared mappings or the vDSO"
        );
    }

    #[test]
    fn a_line_that_is_not_a_header_is_not_one() {
        assert_eq!(header("Rss:                3212 kB"), None);
        assert_eq!(header("VmFlags: rd ex mr mw me dw sd"), None);
        assert_eq!(parse("garbage\nRss: 4 kB\n"), vec![]);
    }

    #[test]
    fn trimming_this_process_leaves_it_running() {
        // The test binary maps itself and libc like `rudder` does: its code is
        // unmapped under the running tests, which carry on from the page cache.
        let t = trim_now();
        assert!(t.mappings >= 2, "{t:?}");
        assert!(t.resident_kib > 0, "{t:?}");
        let after = parse(&std::fs::read_to_string("/proc/self/smaps").unwrap());
        let resident_after: u64 = trimmable(&after).iter().map(|m| m.rss_kib).sum();
        assert!(resident_after < t.resident_kib, "{resident_after} KiB resident after, {t:?}");
    }
}
