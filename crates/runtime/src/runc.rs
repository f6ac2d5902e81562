//! The runc driver: [`Runtime`] over the real `runc` binary, with its state under one
//! `--root` (`DATA_DIR/runc`) and each container's output and exit status kept by a
//! log shim ([`crate::shim`]) that is started for `create` and outlives the agent.

use crate::attach_lock::AttachLock;
use crate::container::{
    AttachIo, ContainerState, CreateOptions, ExecOptions, ExecProcess, ProcessReader, ProcessWriter, Resizer, Runtime,
    RuntimeError, Status, bundle_files, read_exit, validate_id,
};
use crate::launcher::Launcher;
use crate::logfile::rfc3339_nanos;
use crate::shim::ShimArgs;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncBufReadExt;

/// How long a runc command (or the shim's report) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `state` waits for the shim to write the exit status of a stopped
/// container (the shim drains the output first).
const EXIT_FILE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct RuncConfig {
    /// The runc binary.
    pub runc: PathBuf,
    /// runc's state directory (`--root`), e.g. `DATA_DIR/runc`.
    pub root: PathBuf,
    /// How to start the shim: a program and its leading arguments (`rudder shim`);
    /// the shim's own flags follow.
    pub shim: Vec<OsString>,
}

impl RuncConfig {
    /// runc from `PATH`, state under `root`, and this executable's `shim` verb.
    pub fn new(root: &Path) -> Result<RuncConfig, RuntimeError> {
        let exe = std::env::current_exe().map_err(|source| RuntimeError::Io {
            op: "finding",
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        Ok(RuncConfig { runc: PathBuf::from("runc"), root: root.to_path_buf(), shim: vec![exe.into(), "shim".into()] })
    }
}

/// The runc driver.
pub struct Runc {
    config: RuncConfig,
    runc: PathBuf,
    /// Bundles by container id, so `start` need not ask runc where a bundle is.
    bundles: Mutex<HashMap<String, PathBuf>>,
    attach_lock: AttachLock,
    /// The shim launcher ([`crate::launcher`]), once started.
    launcher: Arc<Mutex<Option<Launcher>>>,
    /// The launcher is being started (on a blocking thread).
    launcher_starting: Arc<AtomicBool>,
}

#[derive(serde::Deserialize)]
struct RuncState {
    id: String,
    #[serde(default)]
    pid: u32,
    status: String,
    #[serde(default)]
    bundle: PathBuf,
    #[serde(default)]
    created: String,
}

impl Runc {
    pub fn new(config: RuncConfig) -> Result<Runc, RuntimeError> {
        std::fs::create_dir_all(&config.root).map_err(|source| RuntimeError::Io {
            op: "creating",
            path: config.root.clone(),
            source,
        })?;
        let runc = find_in_path(&config.runc).unwrap_or_else(|| config.runc.clone());
        let driver = Runc {
            config,
            runc,
            bundles: Mutex::new(HashMap::new()),
            attach_lock: AttachLock::new(),
            launcher: Arc::new(Mutex::new(None)),
            launcher_starting: Arc::new(AtomicBool::new(false)),
        };
        // Ready before the first container, where there is a runtime to start it on.
        driver.keep_launcher();
        Ok(driver)
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.runc);
        cmd.arg("--root").arg(&self.config.root);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs runc and returns its stdout, or its error message.
    async fn run(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let mut cmd = self.command();
        cmd.args(args);
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Err(_) => {
                return Err(RuntimeError::Runc {
                    op,
                    id: id.into(),
                    message: format!("no answer in {COMMAND_TIMEOUT:?}"),
                });
            }
            Ok(Err(source)) => return Err(RuntimeError::Io { op: "running", path: self.runc.clone(), source }),
            Ok(Ok(o)) => o,
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        let message = runc_message(&out.stderr);
        if message.contains("does not exist") {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Err(RuntimeError::Runc { op, id: id.to_string(), message })
    }

    fn remember(&self, id: &str, bundle: &Path) {
        self.bundles.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), bundle.to_path_buf());
    }

    async fn bundle_of(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        if let Some(b) = self.bundles.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(b.clone());
        }
        Ok(self.raw_state(id).await?.bundle)
    }

    async fn raw_state(&self, id: &str) -> Result<RuncState, RuntimeError> {
        let out = self.run("state", id, &["state", id]).await?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::Runc {
            op: "state",
            id: id.to_string(),
            message: format!("unreadable answer: {e}"),
        })
    }

    /// runc's view plus what the shim and `start` left in the bundle.
    async fn to_state(&self, raw: RuncState) -> ContainerState {
        self.remember(&raw.id, &raw.bundle);
        let status = match raw.status.as_str() {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            _ => Status::Stopped,
        };
        let mut exit = None;
        if status == Status::Stopped {
            // The shim writes the exit status once the output is drained; give it a
            // moment if it is still alive.
            let deadline = tokio::time::Instant::now() + EXIT_FILE_WAIT;
            loop {
                exit = read_exit(&raw.bundle);
                if exit.is_some() || !shim_alive(&raw.bundle) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let started_at =
            std::fs::read_to_string(raw.bundle.join(bundle_files::STARTED)).ok().map(|s| s.trim().to_string());
        ContainerState {
            id: raw.id,
            status,
            pid: if status == Status::Stopped { 0 } else { raw.pid },
            bundle: raw.bundle,
            created_at: raw.created,
            started_at,
            exit,
        }
    }
}

impl Runc {
    /// Starts a shim for the container (which creates it, and starts it too if
    /// `start`) and waits for its report.
    async fn spawn_shim(&self, id: &str, options: &CreateOptions, start: bool) -> Result<(), RuntimeError> {
        validate_id(id)?;
        if self.config.root.join(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.to_string()));
        }
        // Leftovers of an earlier container with this id would be misread as ours.
        for f in [
            bundle_files::EXIT,
            bundle_files::STARTED,
            bundle_files::INIT_PID,
            bundle_files::RUNC_LOG,
            bundle_files::STDIN,
            bundle_files::RESIZE,
        ] {
            let _ = std::fs::remove_file(options.bundle.join(f));
        }
        set_terminal(&options.bundle, options.tty)?;
        let args = ShimArgs {
            runc: self.runc.clone(),
            root: self.config.root.clone(),
            id: id.to_string(),
            bundle: options.bundle.clone(),
            log: options.log_path.clone(),
            start,
            stdin: options.stdin,
            tty: options.tty,
        };
        let began = std::time::Instant::now();
        let mut how = "launcher";
        let report = match self.launched(&args) {
            Some(report) => report,
            None => {
                how = "exec";
                self.exec_shim(id, &args).await?
            }
        };
        let mut spawned = began.elapsed();
        let mut read = read_report(report).await;
        if how == "launcher"
            && read.as_deref().is_ok_and(str::is_empty)
            && !options.bundle.join(bundle_files::SHIM_PID).exists()
        {
            // The launcher took the request and ended before forking (the report pipe
            // went with its socket): no shim ever ran, so one started by exec may.
            tracing::warn!(container = id, "the shim launcher ended with a request; the shim is started by exec");
            self.forget_launcher();
            how = "exec after the launcher";
            let report = self.exec_shim(id, &args).await?;
            spawned = began.elapsed();
            read = read_report(report).await;
        }
        tracing::debug!(
            container = id,
            how,
            spawn_ms = spawned.as_secs_f64() * 1e3,
            report_ms = began.elapsed().as_secs_f64() * 1e3,
            report = read.as_deref().map_or("", str::trim),
            "shim reported"
        );
        match read {
            Err(message) => Err(RuntimeError::Shim { id: id.into(), message }),
            Ok(line) => {
                let line = line.trim();
                if line.starts_with("ok") {
                    self.remember(id, &options.bundle);
                    Ok(())
                } else if let Some(message) = line.strip_prefix("error ") {
                    let op = if start { "run" } else { "create" };
                    Err(RuntimeError::Runc { op, id: id.into(), message: message.to_string() })
                } else {
                    let diag = std::fs::read_to_string(options.bundle.join(bundle_files::SHIM_LOG)).unwrap_or_default();
                    Err(RuntimeError::Shim {
                        id: id.into(),
                        message: format!("ended without a report: {}", diag.lines().last().unwrap_or("")),
                    })
                }
            }
        }
    }
}

/// Where a shim reports: its stdout, or the pipe the launcher gave it.
type Report = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The shim's one-line report (empty if it ended without one), or why it could not
/// be read.
async fn read_report(report: Report) -> Result<String, String> {
    let mut line = String::new();
    match tokio::time::timeout(COMMAND_TIMEOUT, tokio::io::BufReader::new(report).read_line(&mut line)).await {
        Err(_) => Err(format!("no report in {COMMAND_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("reading its report: {e}")),
        Ok(Ok(_)) => Ok(line),
    }
}

/// Starts a shim (`shim`: program and leading arguments) that waits for its
/// arguments on stdin ([`crate::shim::ARGS_ON_STDIN`]).
fn start_shim(shim: &[OsString]) -> Result<tokio::process::Child, String> {
    let Some((program, lead)) = shim.split_first() else {
        return Err("no shim command configured".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(lead).arg(crate::shim::ARGS_ON_STDIN);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd.spawn().map_err(|e| format!("starting {}: {e}", program.to_string_lossy()))
}

impl Runc {
    /// A shim forked by the launcher, if one runs and answers: the read end of the
    /// pipe it reports on.
    fn launched(&self, args: &ShimArgs) -> Option<Report> {
        let slot = self.launcher.lock().unwrap_or_else(|e| e.into_inner());
        let launcher = slot.as_ref()?;
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        let report = tokio::net::unix::pipe::Receiver::from_owned_fd(read).ok()?;
        match launcher.launch(args, write) {
            Ok(()) => Some(Box::new(report)),
            Err(e) => {
                tracing::warn!(error = %e, "the shim launcher is gone: this shim is started by exec, and a new launcher");
                drop(slot);
                self.forget_launcher();
                None
            }
        }
    }

    /// Drops the launcher (it ended) and starts a new one.
    fn forget_launcher(&self) {
        *self.launcher.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.keep_launcher();
    }

    /// A shim started by exec, given its arguments: its stdout, which it reports on.
    async fn exec_shim(&self, id: &str, args: &ShimArgs) -> Result<Report, RuntimeError> {
        let mut child =
            start_shim(&self.config.shim).map_err(|message| RuntimeError::Shim { id: id.into(), message })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(RuntimeError::Shim { id: id.into(), message: "no pipe to the shim".into() });
        };
        {
            use tokio::io::AsyncWriteExt;
            // Dropping stdin afterwards is the end of the arguments.
            stdin
                .write_all(&args.to_stdin_bytes())
                .await
                .map_err(|e| RuntimeError::Shim { id: id.into(), message: format!("sending its arguments: {e}") })?;
        }
        drop(stdin);
        // The shim lives on; reap it whenever it ends (a restarted agent leaves that
        // to init).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(Box::new(stdout))
    }

    /// Makes sure the shim launcher runs or is being started (needs a tokio runtime,
    /// as the driver does). The exec goes to a blocking thread: on a pod worker it
    /// would hold up the token request and volumes for ~2 ms.
    fn keep_launcher(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        {
            let mut slot = self.launcher.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_mut().is_some_and(Launcher::alive) {
                return;
            }
        }
        if self.launcher_starting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (shim, slot, starting) = (self.config.shim.clone(), self.launcher.clone(), self.launcher_starting.clone());
        handle.spawn_blocking(move || {
            match Launcher::spawn(&shim) {
                Ok(launcher) => *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(launcher),
                Err(e) => tracing::warn!(error = %e, "starting the shim launcher failed; shims are started by exec"),
            }
            starting.store(false, Ordering::Release);
        });
    }

    /// The shim launcher's process id, while one runs.
    pub fn launcher_pid(&self) -> Option<u32> {
        let mut slot = self.launcher.lock().unwrap_or_else(|e| e.into_inner());
        let launcher = slot.as_mut()?;
        if launcher.alive() { launcher.pid() } else { None }
    }
}

#[async_trait::async_trait]
impl Runtime for Runc {
    async fn create(&self, id: &str, options: &CreateOptions) -> Result<(), RuntimeError> {
        self.spawn_shim(id, options, false).await
    }

    async fn run(&self, id: &str, options: &CreateOptions) -> Result<(), RuntimeError> {
        self.spawn_shim(id, options, true).await
    }

    fn warm_up(&self) {
        let _ = self.attach_lock.warm();
        self.keep_launcher();
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        self.run("start", id, &["start", id]).await?;
        let bundle = self.bundle_of(id).await?;
        let path = bundle.join(bundle_files::STARTED);
        std::fs::write(&path, rfc3339_nanos(SystemTime::now())).map_err(|source| RuntimeError::Io {
            op: "writing",
            path,
            source,
        })?;
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        validate_id(id)?;
        let raw = self.raw_state(id).await?;
        Ok(self.to_state(raw).await)
    }

    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        match self.run("kill", id, &args).await {
            // Already stopped is what a kill wants.
            Err(RuntimeError::Runc { message, .. })
                if message.contains("not running") || message.contains("process already finished") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        let result = match self.run("delete", id, &args).await {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other.map(|_| ()),
        };
        if result.is_ok() {
            self.bundles.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
        result
    }

    async fn exec(&self, id: &str, options: &ExecOptions) -> Result<ExecProcess, RuntimeError> {
        self.exec_process(id, options).await
    }

    async fn attach(&self, id: &str) -> Result<AttachIo, RuntimeError> {
        self.attach_io(id).await
    }

    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        let out = self.run("list", "", &["list", "--format", "json"]).await?;
        let raws: Option<Vec<RuncState>> = serde_json::from_slice(&out).map_err(|e| RuntimeError::Runc {
            op: "list",
            id: String::new(),
            message: format!("unreadable answer: {e}"),
        })?;
        let mut out = Vec::new();
        for raw in raws.unwrap_or_default() {
            out.push(self.to_state(raw).await);
        }
        Ok(out)
    }
}

/// Sets `process.terminal` in the bundle's `config.json` as the container's `tty`
/// says (runc insists the two agree with the console socket).
fn set_terminal(bundle: &Path, tty: bool) -> Result<(), RuntimeError> {
    let path = bundle.join("config.json");
    let Ok(bytes) = std::fs::read(&path) else {
        // runc reports a missing config better than we could.
        return Ok(());
    };
    let mut spec: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Ok(()),
    };
    if spec.pointer("/process/terminal").and_then(serde_json::Value::as_bool).unwrap_or(false) == tty {
        return Ok(());
    }
    if let Some(process) = spec.get_mut("process").and_then(serde_json::Value::as_object_mut) {
        process.insert("terminal".into(), serde_json::Value::Bool(tty));
    }
    let out = serde_json::to_vec_pretty(&spec).unwrap_or(bytes);
    std::fs::write(&path, out).map_err(|source| RuntimeError::Io { op: "writing", path, source })
}

/// A pseudo-terminal: the master we keep and the other side runc gets as stdio.
fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, slave))
}

/// Reads a terminal's master side; EIO (nobody holds the other side any more) is the
/// end of the output.
struct TerminalReader(tokio::fs::File);

impl tokio::io::AsyncRead for TerminalReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl Runc {
    /// `runc exec` in the foreground: runc passes its stdio to the process (or, with a
    /// terminal on its stdin, relays between that terminal and the container's own)
    /// and exits with the process's exit code.
    async fn exec_process(&self, id: &str, options: &ExecOptions) -> Result<ExecProcess, RuntimeError> {
        validate_id(id)?;
        if options.argv.is_empty() {
            return Err(RuntimeError::Runc { op: "exec", id: id.into(), message: "no command given".into() });
        }
        let state = self.raw_state(id).await?;
        if state.status != "running" {
            return Err(RuntimeError::Runc {
                op: "exec",
                id: id.into(),
                message: format!("container is {}, not running", state.status),
            });
        }
        let mut cmd = tokio::process::Command::new(&self.runc);
        cmd.arg("--root").arg(&self.config.root).arg("exec");
        if options.tty {
            cmd.arg("--tty");
        }
        for e in &options.env {
            cmd.arg("--env").arg(e);
        }
        // Flags end at the container id; runc takes everything after it as the command.
        cmd.arg(id).args(&options.argv);
        let io = |op: &'static str| {
            let path = self.runc.clone();
            move |source| RuntimeError::Io { op, path, source }
        };
        let (mut stdin, mut stdout, mut stderr): (Option<ProcessWriter>, Option<ProcessReader>, Option<ProcessReader>) =
            (None, None, None);
        let mut resizer = None;
        let child = if options.tty {
            let (master, slave) = open_pty().map_err(io("opening a terminal for"))?;
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(io("duplicating a terminal for"));
            cmd.stdin(Stdio::from(dup(&slave)?)).stdout(Stdio::from(dup(&slave)?)).stderr(Stdio::from(slave));
            let child = cmd.spawn().map_err(io("running"))?;
            // Our copies of the terminal's other side go with `cmd`, so that reading the
            // master ends when runc and the process are gone.
            drop(cmd);
            let relay = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32));
            if options.stdin {
                stdin = Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(dup(&master)?))));
            }
            if options.stdout {
                stdout = Some(Box::new(TerminalReader(tokio::fs::File::from_std(std::fs::File::from(dup(&master)?)))));
            }
            resizer = Some(Resizer::pty(master, relay));
            child
        } else {
            let pick = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
            cmd.stdin(pick(options.stdin)).stdout(pick(options.stdout)).stderr(pick(options.stderr));
            let mut child = cmd.spawn().map_err(io("running"))?;
            stdin = child.stdin.take().map(|s| Box::new(s) as ProcessWriter);
            stdout = child.stdout.take().map(|s| Box::new(s) as ProcessReader);
            stderr = child.stderr.take().map(|s| Box::new(s) as ProcessReader);
            child
        };
        let mut child = child;
        let runc = self.runc.clone();
        let exit = Box::pin(async move {
            let status =
                child.wait().await.map_err(|source| RuntimeError::Io { op: "waiting for", path: runc, source })?;
            use std::os::unix::process::ExitStatusExt;
            Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
        });
        Ok(ExecProcess { stdin, stdout, stderr, resizer, exit })
    }

    async fn attach_io(&self, id: &str) -> Result<AttachIo, RuntimeError> {
        validate_id(id)?;
        let bundle = self.bundle_of(id).await?;
        let (stdin_path, resize_path) = (bundle.join(bundle_files::STDIN), bundle.join(bundle_files::RESIZE));
        let stdin = if stdin_path.exists() {
            let sender = tokio::net::unix::pipe::OpenOptions::new()
                .open_sender(&stdin_path)
                .map_err(|source| RuntimeError::Io { op: "opening", path: stdin_path, source })?;
            Some(Box::new(sender) as ProcessWriter)
        } else {
            None
        };
        let resizer = if resize_path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&resize_path)
                .map_err(|source| RuntimeError::Io { op: "opening", path: resize_path, source })?;
            Some(Resizer::fifo(f))
        } else {
            None
        };
        let tty = resizer.is_some();
        Ok(AttachIo { stdin, resizer, tty })
    }
}

fn shim_alive(bundle: &Path) -> bool {
    std::fs::read_to_string(bundle.join(bundle_files::SHIM_PID))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| {
            // A zombie still answers signal 0; read its state instead.
            std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
                .is_some_and(|zombie| !zombie)
        })
}

/// runc's error text: its stderr, which in JSON log mode may be log lines.
fn runc_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut messages = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v["msg"].is_string() => {
                if v["level"] == "error" {
                    messages.push(v["msg"].as_str().unwrap_or("").to_string());
                }
            }
            _ => {
                let l = line.trim();
                if !l.is_empty() {
                    messages.push(l.to_string());
                }
            }
        }
    }
    messages.last().cloned().unwrap_or_else(|| "failed without a message".into())
}

fn find_in_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_messages() {
        assert_eq!(runc_message(b"container \"x\" does not exist\n"), "container \"x\" does not exist");
        assert_eq!(
            runc_message(b"{\"level\":\"error\",\"msg\":\"container not running\",\"time\":\"t\"}\n"),
            "container not running"
        );
        assert_eq!(runc_message(b""), "failed without a message");
    }

    #[test]
    fn the_terminal_flag_follows_tty() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"process":{"terminal":false,"args":["sh"]}}"#).unwrap();
        set_terminal(dir.path(), true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert_eq!(v["process"]["terminal"], true);
        assert_eq!(v["process"]["args"][0], "sh");
        set_terminal(dir.path(), false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert_eq!(v["process"]["terminal"], false);
        // No config: runc will say so.
        set_terminal(&dir.path().join("missing"), true).unwrap();
    }

    #[tokio::test]
    async fn a_terminal_reports_its_end_as_eof() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (master, slave) = open_pty().unwrap();
        let mut w = tokio::fs::File::from_std(std::fs::File::from(slave));
        w.write_all(b"hi\n").await.unwrap();
        w.flush().await.unwrap();
        drop(w);
        let mut r = TerminalReader(tokio::fs::File::from_std(std::fs::File::from(master)));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hi\r\n");
        let (master, _slave) = open_pty().unwrap();
        Resizer::pty(master, None).resize(100, 30).unwrap();
    }

    #[tokio::test]
    async fn one_shim_launcher_runs_and_ends_with_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in launcher that reads its socket (stdin) until the driver closes it.
        let shim = ["sh", "-c", "cat >/dev/null", "shim"].map(OsString::from).to_vec();
        let runc = Runc::new(RuncConfig { runc: "runc".into(), root: dir.path().join("runc"), shim }).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = runc.launcher_pid() {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "no launcher");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.ends_with(b"shim\0--launcher\0"), "{:?}", String::from_utf8_lossy(&cmdline));
        // Warming up while it runs starts no second one.
        runc.warm_up();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runc.launcher_pid(), Some(pid));
        // The driver's end of the socket is the launcher's end of input.
        drop(runc);
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
            assert!(std::time::Instant::now() < deadline, "the launcher outlived its driver");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn runc_is_found_on_the_path_or_in_sbin() {
        assert_eq!(find_in_path(Path::new("/x/runc")), Some(PathBuf::from("/x/runc")));
        assert!(find_in_path(Path::new("sh")).is_some());
        assert!(find_in_path(Path::new("no-such-binary-here")).is_none());
    }
}
