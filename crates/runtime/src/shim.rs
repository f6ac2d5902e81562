//! The log shim: one small process per container (`rudder shim …`) that outlives the
//! agent.
//!
//! `runc create` hands the container its stdio and returns; somebody must hold the
//! other ends of those pipes for as long as the container runs, and collect its exit
//! status. The agent cannot (it may restart), so the shim does:
//!
//! 1. it leaves the agent's session, and becomes a child subreaper, so that the
//!    container's init process becomes its child once `runc create` exits;
//! 2. it runs `runc create` (or `runc run --detach`, to create and start at once)
//!    with pipes for stdout and stderr and reports `ok PID` (or `error MESSAGE`) as
//!    one line on its own stdout, which the driver reads;
//! 3. it copies both pipes into the CRI log file until they close;
//!    a container made with `--stdin` reads a FIFO in its bundle that `attach` writes
//!    to; one made with `--tty` gets a terminal whose master runc hands the shim over
//!    a socket (SCM_RIGHTS): the shim logs what the terminal prints as soon as it is
//!    printed (partial lines included, so that attached prompts show), copies the
//!    stdin FIFO into it, and applies sizes written to a resize FIFO;
//! 4. when the init process exits, it records `exit.json` in the bundle (exit code,
//!    signal, whether the cgroup saw an OOM kill, when) and exits.
//!
//! A restarted agent finds the container through `runc list` and the exit status in
//! the bundle, whether the container is still running or ended meanwhile.

use crate::container::{ExitStatus, bundle_files};
use crate::logfile::{LogWriter, pump, rfc3339_nanos};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long to wait for the output pipes to drain after the process exited (a
/// process outside the container's pid namespace could hold them open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim: missing argument --{0}")]
    Missing(&'static str),
    #[error("shim: unknown argument {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Failed(String),
}

/// The shim's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub runc: PathBuf,
    /// runc's `--root`.
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub log: PathBuf,
    /// Start the process too (`runc run --detach`), saving a runc call.
    pub start: bool,
    /// Keep stdin open through a FIFO in the bundle.
    pub stdin: bool,
    /// Give the container a terminal.
    pub tty: bool,
}

impl ShimArgs {
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out = Vec::new();
        for (flag, value) in [
            ("--runc", self.runc.as_os_str()),
            ("--root", self.root.as_os_str()),
            ("--id", self.id.as_ref()),
            ("--bundle", self.bundle.as_os_str()),
            ("--log", self.log.as_os_str()),
        ] {
            out.push(OsString::from(flag));
            out.push(value.to_os_string());
        }
        for (flag, on) in [("--start", self.start), ("--stdin", self.stdin), ("--tty", self.tty)] {
            if on {
                out.push(OsString::from(flag));
            }
        }
        out
    }

    /// The arguments as [`ARGS_ON_STDIN`] expects them: each followed by a NUL.
    pub fn to_stdin_bytes(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Vec::new();
        for a in self.to_args() {
            out.extend_from_slice(a.as_bytes());
            out.push(0);
        }
        out
    }

    /// Parses the command line; a lone [`ARGS_ON_STDIN`] reads the real arguments
    /// from stdin first (see there).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<ShimArgs, ShimError> {
        let args: Vec<OsString> = args.into_iter().collect();
        if args.len() == 1 && args[0] == ARGS_ON_STDIN {
            let mut bytes = Vec::new();
            io::stdin().lock().read_to_end(&mut bytes).map_err(|e| ShimError::Failed(format!("reading stdin: {e}")))?;
            // Nothing of ours should hold the driver's pipe from here on.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = rustix::stdio::dup2_stdin(&null);
            }
            return ShimArgs::parse_list(split_nul(&bytes));
        }
        ShimArgs::parse_list(args)
    }

    pub(crate) fn parse_list(args: impl IntoIterator<Item = OsString>) -> Result<ShimArgs, ShimError> {
        let (mut runc, mut root, mut id, mut bundle, mut log) = (None, None, None, None, None);
        let (mut start, mut stdin, mut tty) = (false, false, false);
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let slot = match flag.to_str() {
                Some("--start") => {
                    start = true;
                    continue;
                }
                Some("--stdin") => {
                    stdin = true;
                    continue;
                }
                Some("--tty") => {
                    tty = true;
                    continue;
                }
                Some("--runc") => &mut runc,
                Some("--root") => &mut root,
                Some("--id") => &mut id,
                Some("--bundle") => &mut bundle,
                Some("--log") => &mut log,
                _ => return Err(ShimError::Unknown(flag.to_string_lossy().into_owned())),
            };
            *slot = it.next();
        }
        Ok(ShimArgs {
            runc: runc.ok_or(ShimError::Missing("runc"))?.into(),
            root: root.ok_or(ShimError::Missing("root"))?.into(),
            id: id.ok_or(ShimError::Missing("id"))?.to_string_lossy().into_owned(),
            bundle: bundle.ok_or(ShimError::Missing("bundle"))?.into(),
            log: log.ok_or(ShimError::Missing("log"))?.into(),
            start,
            stdin,
            tty,
        })
    }
}

/// The shim's only flag when the driver starts it ahead of time: the process is
/// made (exec'd, loaded, relocated: ~2.5 ms of a 26 MB binary) while the agent still
/// prepares the container, and waits for its real arguments, NUL-terminated, on
/// stdin until end-of-file. End-of-file without arguments (the agent went away, or
/// never needed it) ends it quietly.
pub const ARGS_ON_STDIN: &str = "--args-on-stdin";

pub(crate) fn split_nul(bytes: &[u8]) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;
    let mut out: Vec<OsString> =
        bytes.split(|b| *b == 0).map(|a| std::ffi::OsStr::from_bytes(a).to_os_string()).collect();
    // Each argument ends with a NUL: the piece after the last one is empty.
    if out.last().is_some_and(|a| a.is_empty()) {
        out.pop();
    }
    out
}

/// The shim's process (`rudder shim ARGS`): the launcher ([`crate::launcher`]) when
/// the arguments are [`crate::launcher::LAUNCHER_FLAG`], else one shim. Call it first
/// thing in `main`, before anything starts a thread. Returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.len() == 1 && args[0] == crate::launcher::LAUNCHER_FLAG {
        return crate::launcher::serve_stdin();
    }
    match ShimArgs::parse(args) {
        Ok(a) => run(&a),
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// Runs the shim to the end; returns the process exit code.
pub fn run(args: &ShimArgs) -> i32 {
    let mut diag =
        std::fs::OpenOptions::new().create(true).append(true).open(args.bundle.join(bundle_files::SHIM_LOG)).ok();
    let mut reported = false;
    let result = run_inner(args, &mut reported, &mut diag);
    match result {
        Ok(()) => 0,
        Err(message) => {
            if let Some(d) = diag.as_mut() {
                let _ = writeln!(d, "{} {message}", rfc3339_nanos(SystemTime::now()));
            }
            if !reported {
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "error {}", message.replace('\n', " "));
                let _ = out.flush();
            }
            1
        }
    }
}

fn run_inner(args: &ShimArgs, reported: &mut bool, diag: &mut Option<std::fs::File>) -> Result<(), String> {
    // Out of the agent's session and process group: signals meant for the agent
    // (a terminal's ^C, a service manager stopping it) must not reach the shim.
    let _ = rustix::process::setsid();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("becoming a subreaper: {}", io::Error::from(e)))?;
    std::fs::write(args.bundle.join(bundle_files::SHIM_PID), rustix::process::getpid().as_raw_nonzero().to_string())
        .map_err(|e| format!("writing {}: {e}", bundle_files::SHIM_PID))?;
    let log = LogWriter::open(&args.log).map_err(|e| format!("opening log {}: {e}", args.log.display()))?;
    let log = Arc::new(Mutex::new(log));

    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {}", io::Error::from(e)))?;
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {}", io::Error::from(e)))?;
    let pid_file = args.bundle.join(bundle_files::INIT_PID);
    let runc_log = args.bundle.join(bundle_files::RUNC_LOG);
    // Opened read-write, so that the container never sees end-of-file when an
    // attached client goes away (upstream keeps stdin open too, unless stdinOnce).
    let stdin_fifo = if args.stdin { Some(open_fifo(&args.bundle.join(bundle_files::STDIN))?) } else { None };
    let console = if args.tty {
        let path = args.bundle.join(bundle_files::CONSOLE_SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("binding the console socket {}: {e}", path.display()))?;
        Some((listener, path))
    } else {
        None
    };
    let runc_began = std::time::Instant::now();
    let status = {
        // The command (and with it our copies of the write ends) is dropped right
        // after runc exits, so that the pipes close when the container's process does.
        let mut cmd = Command::new(&args.runc);
        cmd.arg("--root")
            .arg(&args.root)
            .arg("--log")
            .arg(&runc_log)
            .args(["--log-format", "json"])
            .args(if args.start { &["run", "--detach"][..] } else { &["create"][..] })
            .arg("--bundle")
            .arg(&args.bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some((_, path)) = &console {
            cmd.arg("--console-socket").arg(path);
        }
        cmd.arg(&args.id).stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        match (&stdin_fifo, args.tty) {
            (Some(f), false) => {
                cmd.stdin(Stdio::from(f.try_clone().map_err(|e| format!("duplicating the stdin FIFO: {e}"))?));
            }
            _ => {
                cmd.stdin(Stdio::null());
            }
        }
        cmd.status().map_err(|e| format!("running {}: {e}", args.runc.display()))?
    };
    if !status.success() {
        let mut message = runc_error(&runc_log);
        if message.is_empty() {
            message = read_available(err_r);
        }
        if message.is_empty() {
            message = format!("runc exited with {status}");
        }
        return Err(message);
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| "runc left no pid file".to_string())?;
    // runc sent the terminal's master before it exited; it waits in the socket.
    let master = match &console {
        Some((listener, path)) => {
            let master = receive_fd(listener).map_err(|e| format!("receiving the terminal from runc: {e}"))?;
            let _ = std::fs::remove_file(path);
            Some(master)
        }
        None => None,
    };
    if args.start {
        let _ = std::fs::write(args.bundle.join(bundle_files::STARTED), rfc3339_nanos(SystemTime::now()));
    }
    let oom = OomCounter::for_pid(pid);
    let oom_before = oom.as_ref().and_then(OomCounter::read).unwrap_or(0);

    {
        let mut out = io::stdout().lock();
        // How long runc took, for the driver's debug log (where a start's time goes).
        let _ = writeln!(out, "ok {pid} runc_ms={:.1}", runc_began.elapsed().as_secs_f64() * 1e3);
        let _ = out.flush();
    }
    *reported = true;
    // Nobody reads our stdout any more; keep a closed reader from hurting us.
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut pumps = 2;
    for (fd, stream) in [(out_r, "stdout"), (err_r, "stderr")] {
        let log = log.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::from(fd);
            let _ = pump(file, stream, log);
            let _ = done.send(());
        });
    }
    if let Some(master) = master {
        pumps += 1;
        serve_terminal(&args.bundle, master, stdin_fifo, log.clone(), done_tx.clone())?;
    }
    drop(done_tx);

    let wait = loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, status))) if p.as_raw_nonzero().get() == pid => break Some(status),
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                // ECHILD: the process was never ours (it should have been); say so.
                if let Some(d) = diag.as_mut() {
                    let _ = writeln!(d, "waiting for {pid}: {}", io::Error::from(e));
                }
                break None;
            }
        }
    };
    let finished_at = rfc3339_nanos(SystemTime::now());
    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let oom_killed = oom.as_ref().and_then(OomCounter::read).is_some_and(|after| after > oom_before);
    let (code, signal) = match wait {
        Some(w) => match (w.exit_status(), w.terminating_signal()) {
            (Some(c), _) => (c, None),
            (None, Some(s)) => (128 + s, Some(s)),
            _ => (255, None),
        },
        None => (255, None),
    };
    let exit = ExitStatus { code, signal, oom_killed, finished_at };
    let bytes = serde_json::to_vec(&exit).map_err(|e| e.to_string())?;
    let tmp = args.bundle.join(format!("{}.tmp", bundle_files::EXIT));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, args.bundle.join(bundle_files::EXIT)))
        .map_err(|e| format!("writing {}: {e}", bundle_files::EXIT))?;
    Ok(())
}

/// Makes (anew) and opens a FIFO read-write: opening never blocks, and it never
/// reports end-of-file while we hold it.
fn open_fifo(path: &Path) -> Result<std::fs::File, String> {
    let _ = std::fs::remove_file(path);
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| format!("making {}: {}", path.display(), io::Error::from(e)))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))
}

/// Accepts runc's connection on the console socket and takes the file descriptor it
/// sends (the terminal's master side).
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> io::Result<OwnedFd> {
    use std::mem::MaybeUninit;
    let _ = listener.set_nonblocking(false);
    let (conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    // runc sends the terminal's name as the data; we only need the descriptor.
    let mut name = [0u8; 4096];
    loop {
        match rustix::net::recvmsg(
            &conn,
            &mut [io::IoSliceMut::new(&mut name)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "runc sent no file descriptor"))
}

/// Serves a container's terminal: logs its output as it comes, feeds it the stdin
/// FIFO, and applies the sizes written to the resize FIFO. Signals `done` when the
/// terminal has no more output (every process holding it has exited).
fn serve_terminal(
    bundle: &Path,
    master: OwnedFd,
    stdin: Option<std::fs::File>,
    log: Arc<Mutex<LogWriter>>,
    done: std::sync::mpsc::Sender<()>,
) -> Result<(), String> {
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("duplicating the terminal: {e}"));
    let reader = std::fs::File::from(dup(&master)?);
    std::thread::spawn(move || {
        let _ = pump_terminal(reader, log);
        let _ = done.send(());
    });
    if let Some(mut fifo) = stdin {
        let mut writer = std::fs::File::from(dup(&master)?);
        std::thread::spawn(move || {
            let _ = io::copy(&mut fifo, &mut writer);
        });
    }
    let resize = open_fifo(&bundle.join(bundle_files::RESIZE))?;
    std::thread::spawn(move || {
        for line in io::BufRead::lines(io::BufReader::new(resize)) {
            let Ok(line) = line else { break };
            if let Some((w, h)) = parse_size(&line) {
                let size = rustix::termios::Winsize { ws_row: h, ws_col: w, ws_xpixel: 0, ws_ypixel: 0 };
                let _ = rustix::termios::tcsetwinsize(&master, size);
            }
        }
    });
    Ok(())
}

/// `"WIDTH HEIGHT"`.
fn parse_size(line: &str) -> Option<(u16, u16)> {
    let (w, h) = line.trim().split_once(' ')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// Copies a terminal's output into the log. Unlike pipe output, whatever a read
/// returns is written at once, the unterminated rest as a partial record: a shell's
/// prompt has no newline, and someone attached is waiting to see it.
fn pump_terminal(mut source: impl Read, log: Arc<Mutex<LogWriter>>) -> io::Result<()> {
    let mut buf = vec![0u8; crate::logfile::MAX_LINE];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO: the last process holding the terminal's other side has gone.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            w.write_record("stdout", false, &rest[..i], now)?;
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            w.write_record("stdout", true, rest, now)?;
        }
    }
}

/// The last error runc logged (its `--log` is JSON lines with `level` and `msg`).
pub fn runc_error(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else { return String::new() };
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Whatever is in a pipe right now, without waiting for more.
fn read_available(fd: OwnedFd) -> String {
    let _ = rustix::io::ioctl_fionbio(&fd, true);
    let mut f = std::fs::File::from(fd);
    let mut buf = vec![0u8; 8192];
    let n = f.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// The OOM-kill counter of a process's memory cgroup: `oom_kill` in `memory.events`
/// (cgroup v2) or in `memory.oom_control` (v1).
struct OomCounter {
    file: PathBuf,
}

impl OomCounter {
    fn for_pid(pid: i32) -> Option<OomCounter> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        OomCounter::from_proc_cgroup(&text, Path::new("/sys/fs/cgroup"))
    }

    fn from_proc_cgroup(text: &str, mount: &Path) -> Option<OomCounter> {
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            if controllers.split(',').any(|c| c == "memory") {
                let dir = mount.join("memory").join(path.trim_start_matches('/'));
                return Some(OomCounter { file: dir.join("memory.oom_control") });
            }
        }
        // A pure v2 host: the unified line, and the unified tree mounted at the root.
        let unified = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        if mount.join("cgroup.controllers").exists() {
            return Some(OomCounter { file: mount.join(unified.trim_start_matches('/')).join("memory.events") });
        }
        None
    }

    fn read(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            runc: "/usr/sbin/runc".into(),
            root: "/var/lib/rudder/runc".into(),
            id: "c1".into(),
            bundle: "/var/lib/rudder/containers/c1".into(),
            log: "/var/log/pods/x/c/0.log".into(),
            start: false,
            stdin: false,
            tty: false,
        };
        assert_eq!(ShimArgs::parse(a.to_args()).unwrap(), a);
        let started = ShimArgs { start: true, ..a.clone() };
        assert_eq!(ShimArgs::parse(started.to_args()).unwrap(), started);
        let interactive = ShimArgs { stdin: true, tty: true, ..a };
        assert_eq!(ShimArgs::parse(interactive.to_args()).unwrap(), interactive);
        assert!(matches!(ShimArgs::parse(vec![OsString::from("--nope")]), Err(ShimError::Unknown(_))));
        assert!(matches!(ShimArgs::parse(Vec::new()), Err(ShimError::Missing("runc"))));
    }

    #[test]
    fn args_through_stdin_bytes() {
        let a = ShimArgs {
            runc: "runc".into(),
            root: "/r".into(),
            id: "c 1".into(),
            bundle: "/b\nx".into(),
            log: "/l".into(),
            start: true,
            stdin: false,
            tty: true,
        };
        let bytes = a.to_stdin_bytes();
        assert_eq!(bytes.last(), Some(&0));
        assert_eq!(ShimArgs::parse_list(split_nul(&bytes)).unwrap(), a);
        // No arguments at all (the driver never sent any): missing, not a panic.
        assert!(split_nul(b"").is_empty());
        assert!(matches!(ShimArgs::parse_list(split_nul(b"")), Err(ShimError::Missing("runc"))));
        assert_eq!(split_nul(b"a\0\0b\0"), vec![OsString::from("a"), OsString::new(), OsString::from("b")]);
    }

    #[test]
    fn oom_counter_locations() {
        let v1 = "12:pids:/rudder/c1\n5:memory:/rudder/c1\n0::/\n";
        let c = OomCounter::from_proc_cgroup(v1, Path::new("/sys/fs/cgroup")).unwrap();
        assert_eq!(c.file, Path::new("/sys/fs/cgroup/memory/rudder/c1/memory.oom_control"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "memory").unwrap();
        let c = OomCounter::from_proc_cgroup("0::/rudder/c1\n", dir.path()).unwrap();
        assert_eq!(c.file, dir.path().join("rudder/c1/memory.events"));
        std::fs::create_dir_all(dir.path().join("rudder/c1")).unwrap();
        std::fs::write(&c.file, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(c.read(), Some(1));
        assert!(OomCounter::from_proc_cgroup("0::/x\n", Path::new("/nonexistent")).is_none());
    }

    #[test]
    fn terminal_output_is_logged_as_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let log = Arc::new(Mutex::new(LogWriter::open(&path).unwrap()));
        pump_terminal(&b"hello\r\n/ # "[..], log).unwrap();
        let records: Vec<_> = std::fs::read_to_string(&path)
            .unwrap()
            .split_terminator('\n')
            .map(|l| crate::logfile::parse_record(l).unwrap())
            .collect();
        let got: Vec<(bool, &str)> = records.iter().map(|r| (r.partial, r.content.as_str())).collect();
        assert_eq!(got, [(false, "hello\r"), (true, "/ # ")]);
    }

    #[test]
    fn sizes_and_fifos() {
        assert_eq!(parse_size("80 24\n"), Some((80, 24)));
        assert_eq!(parse_size("80"), None);
        assert_eq!(parse_size("a b"), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = open_fifo(&p).unwrap();
        use std::io::Write;
        f.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        f.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        // Made anew over whatever was there.
        open_fifo(&p).unwrap();
    }

    #[test]
    fn runc_errors_from_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runc.log");
        std::fs::write(
            &p,
            "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": executable file not found in $PATH\"}\n",
        )
        .unwrap();
        assert_eq!(runc_error(&p), "exec: \"nope\": executable file not found in $PATH");
        assert_eq!(runc_error(&dir.path().join("missing")), "");
    }
}
