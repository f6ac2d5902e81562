//! The narrow contract between the agent and an OCI runtime: create, start, state,
//! kill, delete, list, and the streaming verbs exec and attach.
//! [`crate::runc::Runc`] drives the real `runc`;
//! [`crate::recording::RecordingRuntime`] is a double for unit tests.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?} (letters, digits, '_', '+', '-', '.')")]
    InvalidId(String),
    #[error("runc {op} {id}: {message}")]
    Runc { op: &'static str, id: String, message: String },
    #[error("container {id}: log shim: {message}")]
    Shim { id: String, message: String },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("container {id}: {op} is not supported: {reason}")]
    Unsupported { op: &'static str, id: String, reason: String },
}

/// The lifecycle runc reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created: the process exists but waits for `start`.
    Created,
    Running,
    Paused,
    /// The process has exited (see [`ContainerState::exit`]).
    Stopped,
}

/// How a container's process ended, as the log shim recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal that killed it.
    pub code: i32,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed something in the container's cgroup.
    #[serde(default)]
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// A container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub status: Status,
    /// The init process (0 when not running).
    pub pid: u32,
    pub bundle: PathBuf,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once started.
    pub started_at: Option<String>,
    /// Once stopped, if the shim saw the exit (absent if it died first).
    pub exit: Option<ExitStatus>,
}

/// What `create` needs besides the id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The bundle directory: `config.json` and the root filesystem it names.
    pub bundle: PathBuf,
    /// Where stdout and stderr go, in the CRI log format.
    pub log_path: PathBuf,
    /// Keep the container's stdin open for `attach` (Kubernetes `stdin: true`): it
    /// reads from a FIFO in the bundle ([`bundle_files::STDIN`]) that attach writes to.
    pub stdin: bool,
    /// Give the container a terminal (Kubernetes `tty: true`); the shim holds its
    /// master side, logs what it prints and resizes it on request.
    pub tty: bool,
}

/// What `exec` runs in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub argv: Vec<String>,
    /// `NAME=value` pairs added to the container's environment.
    pub env: Vec<String>,
    /// Run under a terminal: stdout carries everything, there is no stderr.
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A byte stream into a process.
pub type ProcessWriter = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
/// A byte stream out of a process.
pub type ProcessReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
/// Resolves to the exit code once the process has ended.
pub type ExitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, RuntimeError>> + Send>>;

/// A process started by [`Runtime::exec`]. Dropping `stdin` closes the process's
/// standard input.
pub struct ExecProcess {
    pub stdin: Option<ProcessWriter>,
    pub stdout: Option<ProcessReader>,
    pub stderr: Option<ProcessReader>,
    /// Present with a terminal.
    pub resizer: Option<Resizer>,
    /// The exit code (128 + the signal when killed).
    pub exit: ExitFuture,
}

/// Changes the size of a terminal.
pub struct Resizer {
    target: ResizeTarget,
}

enum ResizeTarget {
    /// A terminal we hold the master of, relayed by a runc process that copies the
    /// size on to the container's terminal when it receives SIGWINCH.
    Pty { master: std::os::fd::OwnedFd, relay: Option<rustix::process::Pid> },
    /// The shim's resize FIFO: it applies `"WIDTH HEIGHT\n"` lines to the container's terminal.
    Fifo(std::fs::File),
}

impl Resizer {
    pub(crate) fn pty(master: std::os::fd::OwnedFd, relay: Option<rustix::process::Pid>) -> Resizer {
        Resizer { target: ResizeTarget::Pty { master, relay } }
    }

    pub(crate) fn fifo(file: std::fs::File) -> Resizer {
        Resizer { target: ResizeTarget::Fifo(file) }
    }

    /// Sets the terminal to `width` columns and `height` rows. A zero size (what
    /// kubectl sends when it has no terminal itself) is ignored.
    pub fn resize(&self, width: u16, height: u16) -> std::io::Result<()> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        match &self.target {
            ResizeTarget::Pty { master, relay } => {
                let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                rustix::termios::tcsetwinsize(master, size).map_err(std::io::Error::from)?;
                if let Some(pid) = relay {
                    rustix::process::kill_process(*pid, rustix::process::Signal::WINCH)
                        .map_err(std::io::Error::from)?;
                }
                Ok(())
            }
            ResizeTarget::Fifo(f) => {
                use std::io::Write;
                // One short write on a pipe is atomic, so lines never interleave.
                (&*f).write_all(format!("{width} {height}\n").as_bytes())
            }
        }
    }
}

/// The input side of an attach to a container made with [`CreateOptions::stdin`] or
/// [`CreateOptions::tty`]; its output is what it writes to its log file.
pub struct AttachIo {
    /// The container's stdin, if it was created with one.
    pub stdin: Option<ProcessWriter>,
    /// The container's terminal, if it has one.
    pub resizer: Option<Resizer>,
    pub tty: bool,
}

/// An OCI runtime. Every method is idempotent where that makes sense: killing a
/// stopped container or deleting a missing one succeeds.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Creates the container (its process waits for `start`), with its output going
    /// to the log file from the start.
    async fn create(&self, id: &str, options: &CreateOptions) -> Result<(), RuntimeError>;
    /// Runs the created container's process.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Creates and starts at once (one runc call instead of two, for pod start latency).
    async fn run(&self, id: &str, options: &CreateOptions) -> Result<(), RuntimeError> {
        self.create(id, options).await?;
        self.start(id).await
    }
    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError>;
    /// A container start is coming: begin now, in the background, what the start
    /// would otherwise wait for (runc: the cgroup attach lock's grace period, see
    /// [`crate::attach_lock`]). Returns at once; costs nothing when not needed.
    fn warm_up(&self) {}
    /// Sends a signal to the init process (or to every process, with `all`).
    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError>;
    /// Removes a stopped container (any container, with `force`).
    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;
    /// Every container, for adopting them after a restart.
    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError>;
    /// Starts another process in a running container.
    async fn exec(&self, id: &str, options: &ExecOptions) -> Result<ExecProcess, RuntimeError> {
        let _ = options;
        Err(RuntimeError::Unsupported { op: "exec", id: id.into(), reason: "this runtime runs no processes".into() })
    }
    /// Connects to the stdin and terminal of a running container.
    async fn attach(&self, id: &str) -> Result<AttachIo, RuntimeError> {
        Err(RuntimeError::Unsupported { op: "attach", id: id.into(), reason: "this runtime runs no processes".into() })
    }
}

/// runc's rule for container ids.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(RuntimeError::InvalidId(id.to_string())) }
}

/// Files the runtime keeps in a bundle directory beside `config.json`.
pub mod bundle_files {
    /// The shim's process id.
    pub const SHIM_PID: &str = "shim.pid";
    /// runc's pid file for the container's init process.
    pub const INIT_PID: &str = "init.pid";
    /// The exit status, written by the shim once the process ended ([`super::ExitStatus`]).
    pub const EXIT: &str = "exit.json";
    /// When `start` succeeded (RFC 3339).
    pub const STARTED: &str = "started";
    /// runc's own log (JSON lines), for error messages.
    pub const RUNC_LOG: &str = "runc.log";
    /// The shim's diagnostics.
    pub const SHIM_LOG: &str = "shim.log";
    /// The FIFO the container reads its stdin from (containers made with `stdin`).
    pub const STDIN: &str = "stdin.fifo";
    /// The FIFO the shim reads terminal sizes from (containers made with `tty`).
    pub const RESIZE: &str = "resize.fifo";
    /// The socket on which runc hands the shim the terminal's master side.
    pub const CONSOLE_SOCKET: &str = "console.sock";
}

/// Reads the exit status the shim left in a bundle, if any.
pub fn read_exit(bundle: &Path) -> Option<ExitStatus> {
    let bytes = std::fs::read(bundle.join(bundle_files::EXIT)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Polls until the container has stopped (with its exit status when the shim wrote
/// one), or the timeout passes.
pub async fn wait_stopped(
    runtime: &dyn Runtime,
    id: &str,
    timeout: std::time::Duration,
) -> Result<ContainerState, RuntimeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let state = runtime.state(id).await?;
        if state.status == Status::Stopped || tokio::time::Instant::now() >= deadline {
            return Ok(state);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-123_x.y+z").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exit_status_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_exit(dir.path()), None);
        let e = ExitStatus { code: 137, signal: Some(9), oom_killed: true, finished_at: "t".into() };
        std::fs::write(dir.path().join(bundle_files::EXIT), serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(read_exit(dir.path()), Some(e));
    }
}
