//! The shim launcher: one small process per driver (`rudder shim --launcher`) that
//! forks a log shim ([`crate::shim`]) for each container the driver creates.
//!
//! Starting a shim by `exec` of the `rudder` binary costs ~1.4 ms of CPU before it
//! does anything (the dynamic loader relocating a 30 MiB executable, glibc probing the
//! CPU with `cpuid`, which traps in a VM, ~400 page faults), and ~2.6 ms under a burst
//! of pod starts: as much as the agent's own work per pod. A fork of a process that has
//! done nothing else is a fraction of that, the shim it makes runs code already in
//! memory, and the shims share their pages with it (PSS 0.3 MiB per shim against 1.5
//! exec'd). The launcher is exec'd once, so it has one thread: a fork copies only the
//! calling thread, so forking the agent itself (many threads, their locks) would not do.
//!
//! The protocol is one `SOCK_SEQPACKET` socket pair, the launcher's end its stdin. A
//! request is one message: the shim's arguments as [`ShimArgs::to_stdin_bytes`] makes
//! them, with one descriptor (`SCM_RIGHTS`): the write end of the pipe the shim reports
//! on, which becomes its stdout. The launcher forks, the child runs the shim, and the
//! launcher closes its copy of the descriptor and waits for the next. It ends when the
//! socket does (the driver's process ended); the shims it made live on, in sessions
//! of their own, as exec'd ones do.

use crate::shim::{ShimArgs, split_nul};
use std::ffi::{CStr, OsString};
use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;

/// The shim's argument that makes it the launcher instead.
pub const LAUNCHER_FLAG: &str = "--launcher";
/// The name the launcher shows in `ps` and `top` (`/proc/PID/comm`).
pub const LAUNCHER_NAME: &CStr = c"shim-launcher";
/// The name the shims it forks show (their command line is the launcher's).
pub const SHIM_NAME: &CStr = c"rudder-shim";
/// A request larger than this is refused (arguments are paths and an id: ~1 KiB).
const MAX_REQUEST: usize = 64 * 1024;

/// The driver's end of a running launcher.
#[derive(Debug)]
pub struct Launcher {
    socket: OwnedFd,
    child: tokio::process::Child,
}

impl Launcher {
    /// Starts a launcher: `shim` is the shim's program and leading arguments (as
    /// `RuncConfig::shim`), to which [`LAUNCHER_FLAG`] is added. Needs a tokio runtime
    /// (the child is reaped by it).
    pub fn spawn(shim: &[OsString]) -> io::Result<Launcher> {
        let Some((program, lead)) = shim.split_first() else {
            return Err(io::Error::other("no shim command configured"));
        };
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        let child = tokio::process::Command::new(program)
            .args(lead)
            .arg(LAUNCHER_FLAG)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Launcher { socket: ours, child })
    }

    /// The launcher's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks for a shim with these arguments that reports on `report` (the write end
    /// of a pipe). Fails when the launcher is gone.
    pub fn launch(&self, args: &ShimArgs, report: OwnedFd) -> io::Result<()> {
        let bytes = args.to_stdin_bytes();
        let fds = [report.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
        loop {
            match rustix::net::sendmsg(
                &self.socket,
                &[IoSlice::new(&bytes)],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

/// The launcher's process (`shim --launcher`): one shim per request on stdin, until
/// it ends. Must be called before the process starts a second thread.
pub fn serve_stdin() -> i32 {
    let socket = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(s) => s,
        Err(_) => return 2,
    };
    serve(socket)
}

fn serve(mut socket: OwnedFd) -> ! {
    let _ = rustix::thread::set_name(LAUNCHER_NAME);
    // Out of the agent's session: a terminal's ^C is for the agent, which ends us by
    // closing the socket.
    let _ = rustix::process::setsid();
    // The socket has its own descriptor now; the shims get /dev/null as stdin.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    // Shims that end are reaped by the kernel: nobody here waits for them.
    sys::reap_children_unasked(true);
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            &socket,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        );
        let msg = match received {
            Ok(m) => m,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => std::process::exit(0),
        };
        let mut report = None;
        for message in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = message {
                report = report.or(fds.next());
            }
        }
        // End of the socket: the driver is gone.
        if msg.bytes == 0 && report.is_none() {
            std::process::exit(0);
        }
        let Some(report) = report else { continue };
        let parsed = if msg.flags.contains(rustix::net::ReturnFlags::TRUNC) {
            Err(format!("the shim's arguments are over {MAX_REQUEST} bytes"))
        } else {
            ShimArgs::parse_list(split_nul(&buf[..msg.bytes])).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(args) => fork_shim(&mut socket, &args, report),
            Err(message) => say_error(report, &message),
        }
    }
}

/// Forks one shim that reports on `report`.
fn fork_shim(socket: &mut OwnedFd, args: &ShimArgs, report: OwnedFd) {
    // The launcher has one thread: the child is a whole copy of it.
    match sys::fork() {
        Err(e) => say_error(report, &format!("forking the shim: {e}")),
        Ok(sys::Forked::Child) => {
            // The shim waits for its container's process.
            sys::reap_children_unasked(false);
            let _ = rustix::thread::set_name(SHIM_NAME);
            // The launcher's end of the socket: were it left open here, requests the
            // driver sends after the launcher died would wait in it unanswered instead
            // of failing. Replacing it with /dev/null closes it.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = rustix::io::dup2(&null, socket);
            }
            let _ = rustix::stdio::dup2_stdout(&report);
            drop(report);
            std::process::exit(crate::shim::run(args));
        }
        Ok(sys::Forked::Parent) => drop(report),
    }
}

/// Reports a failure to start the shim as the shim reports its own.
fn say_error(report: OwnedFd, message: &str) {
    let mut f = std::fs::File::from(report);
    let _ = writeln!(f, "error {}", message.replace('\n', " "));
}

/// The two calls rustix leaves to libc: the one place here that needs `unsafe`.
#[allow(unsafe_code)]
mod sys {
    use std::io;

    pub enum Forked {
        Parent,
        Child,
    }

    /// `fork(2)`. Only the launcher calls it, which never starts a second thread:
    /// with more, the child could find a lock held by a thread that does not exist
    /// in it.
    pub fn fork() -> io::Result<Forked> {
        // SAFETY: single-threaded (above), so the child is a whole copy of the
        // parent; both go on in safe code.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(Forked::Child),
            _ => Ok(Forked::Parent),
        }
    }

    /// Whether children that end are reaped by the kernel (SIGCHLD ignored) or wait
    /// for `wait` (the default).
    pub fn reap_children_unasked(on: bool) {
        let disposition = if on { libc::SIG_IGN } else { libc::SIG_DFL };
        // SAFETY: SIG_IGN and SIG_DFL install no handler.
        unsafe { libc::signal(libc::SIGCHLD, disposition) };
    }
}
