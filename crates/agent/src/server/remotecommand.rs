//! exec and attach over either transport: SPDY/3.1 (streams named by their
//! `streamtype` header) or WebSocket (channels 0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize, and in v5 255 to half-close one). The process (or the attached
//! container) is the same; only the framing of its streams differs. The end is a
//! Status on the error stream: JSON from v4 on (with the exit code as a cause),
//! plain text before.

use super::logs::{Alive, Follower, Start};
use super::spdy;
use super::websocket::{self, ChannelCodec, Message, Outgoing};
use bytes::Bytes;
use runtime::container::{ExecOptions, Resizer, Runtime};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes that channel (the client's stdin at its EOF).
pub const CLOSE: u8 = 255;

/// WebSocket subprotocols for exec and attach, newest first.
pub const WEBSOCKET_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// SPDY stream protocols (`X-Stream-Protocol-Version`). v5 is WebSocket-only: over
/// SPDY a client's FIN already half-closes stdin, so v4 is what a v5 client gets.
pub const SPDY_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// How long a SPDY client has to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output may still drain after the process ended (a background child
/// could hold the pipes open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the client asked for in the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    pub fn from_query(pairs: &[(String, String)], exec: bool) -> Result<StreamOptions, String> {
        let mut o = StreamOptions::default();
        for (k, v) in pairs {
            match k.as_str() {
                "command" => o.command.push(v.clone()),
                "stdin" | "input" => o.stdin = super::logs::parse_bool(k, v)?,
                "stdout" | "output" => o.stdout = super::logs::parse_bool(k, v)?,
                "stderr" | "error" => o.stderr = super::logs::parse_bool(k, v)?,
                "tty" => o.tty = super::logs::parse_bool(k, v)?,
                _ => {}
            }
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        if exec && o.command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        // As the kubelet: a terminal has no separate stderr.
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

/// What runs at the other end.
pub enum Target {
    Exec {
        container_id: String,
        argv: Vec<String>,
    },
    /// An attach follows the container's log file for its output.
    Attach {
        container_id: String,
        log: PathBuf,
    },
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// It could not run (message for the Status).
    Failed(String),
}

/// The Status the error stream carries: JSON for v4 and later, otherwise the
/// message alone (nothing on success).
pub fn status_message(outcome: &Outcome, argv: &[String], json_status: bool) -> Option<Vec<u8>> {
    let (status, text) = match outcome {
        Outcome::Exited(0) => (json!({"metadata": {}, "status": "Success"}), None),
        Outcome::Exited(code) => {
            let message = format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                argv.join(" ")
            );
            (
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": message,
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
                }),
                Some(message),
            )
        }
        Outcome::Failed(message) => (
            json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            }),
            Some(message.clone()),
        ),
    };
    if json_status { serde_json::to_vec(&status).ok() } else { text.map(String::into_bytes) }
}

/// The `{"Width":W,"Height":H}` messages of the resize stream (one or more, each on
/// its own line).
pub fn parse_sizes(data: &[u8]) -> Vec<(u16, u16)> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width", default)]
        width: u16,
        #[serde(rename = "Height", default)]
        height: u16,
    }
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Size>()
        .map_while(Result::ok)
        .map(|s| (s.width, s.height))
        .collect()
}

/// Where output goes.
#[derive(Clone)]
pub enum Sink {
    Spdy(spdy::StreamWriter),
    WebSocket { out: mpsc::Sender<Outgoing>, channel: u8, codec: ChannelCodec },
}

impl Sink {
    pub async fn write(&self, data: &[u8]) -> bool {
        match self {
            Sink::Spdy(w) => w.write(data).await,
            Sink::WebSocket { out, channel, codec } => {
                let (op, payload) = codec.encode(*channel, data);
                out.send(Outgoing::Message(op, payload)).await.is_ok()
            }
        }
    }

    /// Ends our side of the stream (SPDY FIN; channels have no end of their own).
    pub async fn finish(&self) {
        if let Sink::Spdy(w) = self {
            w.finish().await;
        }
    }
}

/// The streams of one exec or attach, whatever carries them.
pub struct Streams {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<Sink>,
    pub stderr: Option<Sink>,
    pub error: Sink,
    /// Turns true when the client has gone.
    pub closed: watch::Receiver<bool>,
}

struct Running {
    runtime: Arc<dyn Runtime>,
    id: String,
}

#[async_trait::async_trait]
impl Alive for Running {
    async fn running(&self) -> bool {
        self.runtime.state(&self.id).await.is_ok_and(|s| s.status == runtime::Status::Running)
    }
}

async fn copy_out(mut from: runtime::container::ProcessReader, to: Sink) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !to.write(&buf[..n]).await {
                    return;
                }
            }
        }
    }
}

fn spawn_resize(
    resize: Option<mpsc::Receiver<Bytes>>,
    resizer: Option<Resizer>,
) -> Option<tokio::task::JoinHandle<()>> {
    let (mut rx, resizer) = (resize?, resizer?);
    Some(tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            for (w, h) in parse_sizes(&m) {
                let _ = resizer.resize(w, h);
            }
        }
    }))
}

fn spawn_stdin(
    stdin: Option<mpsc::Receiver<Bytes>>,
    writer: Option<runtime::container::ProcessWriter>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut rx = stdin?;
    Some(tokio::spawn(async move {
        let mut writer = writer;
        while let Some(data) = rx.recv().await {
            if let Some(w) = writer.as_mut()
                && (w.write_all(&data).await.is_err() || w.flush().await.is_err())
            {
                writer = None;
            }
        }
        // The client's end of input: the process sees end-of-file (a container's
        // stdin FIFO stays open for the next attach, as without stdinOnce).
        if let Some(mut w) = writer {
            let _ = w.shutdown().await;
        }
    }))
}

/// Runs the target with the streams to its end.
pub async fn run(target: Target, runtime: Arc<dyn Runtime>, s: Streams, tty: bool) -> Outcome {
    match target {
        Target::Exec { container_id, argv } => exec(&container_id, argv, runtime, s, tty).await,
        Target::Attach { container_id, log } => attach(&container_id, log, runtime, s).await,
    }
}

async fn exec(id: &str, argv: Vec<String>, runtime: Arc<dyn Runtime>, s: Streams, tty: bool) -> Outcome {
    let options = ExecOptions {
        argv,
        env: Vec::new(),
        tty,
        stdin: s.stdin.is_some(),
        stdout: s.stdout.is_some(),
        stderr: s.stderr.is_some() && !tty,
    };
    let p = match runtime.exec(id, &options).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("error executing command in container: {e}")),
    };
    let stdin = spawn_stdin(s.stdin, p.stdin);
    let resize = spawn_resize(s.resize, p.resizer);
    let mut outputs = Vec::new();
    if let (Some(r), Some(sink)) = (p.stdout, s.stdout.clone()) {
        outputs.push(tokio::spawn(copy_out(r, sink)));
    }
    if let (Some(r), Some(sink)) = (p.stderr, s.stderr.clone()) {
        outputs.push(tokio::spawn(copy_out(r, sink)));
    }
    let outcome = match p.exit.await {
        Ok(code) => Outcome::Exited(code),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    let drained = async {
        for o in outputs {
            let _ = o.await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    for t in [stdin, resize].into_iter().flatten() {
        t.abort();
    }
    outcome
}

async fn attach(id: &str, log: PathBuf, runtime: Arc<dyn Runtime>, s: Streams) -> Outcome {
    let io = match runtime.attach(id).await {
        Ok(io) => io,
        Err(e) => return Outcome::Failed(format!("error attaching to container: {e}")),
    };
    let mut follower = match Follower::open(&log, Start::End, true).await {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("error attaching to container: reading {}: {e}", log.display())),
    };
    let stdin = spawn_stdin(s.stdin, io.stdin);
    let resize = spawn_resize(s.resize, io.resizer);
    let alive = Running { runtime, id: id.to_string() };
    let mut closed = s.closed.clone();
    let output = async {
        loop {
            let record = match follower.next(&alive).await {
                Ok(Some(r)) => r,
                _ => return,
            };
            let sink = if record.stream == "stderr" && !io.tty { &s.stderr } else { &s.stdout };
            let Some(sink) = sink else { continue };
            let mut data = record.content.into_bytes();
            if !record.partial {
                data.push(b'\n');
            }
            if !sink.write(&data).await {
                return;
            }
        }
    };
    tokio::select! {
        _ = output => {}
        _ = async { let _ = closed.wait_for(|c| *c).await; } => {}
    }
    for t in [stdin, resize].into_iter().flatten() {
        t.abort();
    }
    Outcome::Exited(0)
}

/// Serves exec or attach over a SPDY session: waits for the streams the options
/// call for, runs, then reports on the error stream.
pub async fn serve_spdy(
    mut session: spdy::Session,
    protocol: &str,
    options: StreamOptions,
    target: Target,
    runtime: Arc<dyn Runtime>,
) {
    let json_status = protocol == "v4.channel.k8s.io";
    let with_resize = options.tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io";
    let mut want = 1 + usize::from(options.stdin) + usize::from(options.stdout) + usize::from(options.stderr);
    want += usize::from(with_resize);
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    let mut got = 0;
    while got < want {
        let Ok(Some(stream)) = tokio::time::timeout_at(deadline, session.accept()).await else {
            tracing::debug!(got, want, "exec: the client did not open its streams");
            if let Some(e) = error.as_ref().map(|s: &spdy::Stream| s.writer.clone()) {
                let msg = format!("timed out waiting for client to create streams ({got} of {want})");
                let _ = e.write(&status_message(&Outcome::Failed(msg), &[], json_status).unwrap_or_default()).await;
                e.finish().await;
            }
            return;
        };
        let slot = match stream.header("streamtype") {
            Some("error") => &mut error,
            Some("stdin") => &mut stdin,
            Some("stdout") => &mut stdout,
            Some("stderr") => &mut stderr,
            Some("resize") => &mut resize,
            other => {
                tracing::debug!(streamtype = ?other, "exec: an unexpected stream");
                stream.writer.reset(spdy::RST_PROTOCOL_ERROR).await;
                continue;
            }
        };
        if slot.is_none() {
            got += 1;
        }
        *slot = Some(stream);
    }
    let Some(error) = error else { return };
    let argv = match &target {
        Target::Exec { argv, .. } => argv.clone(),
        Target::Attach { .. } => Vec::new(),
    };
    let streams = Streams {
        stdin: stdin.map(|s| s.data),
        resize: resize.map(|s| s.data),
        stdout: stdout.as_ref().map(|s| Sink::Spdy(s.writer.clone())),
        stderr: stderr.as_ref().map(|s| Sink::Spdy(s.writer.clone())),
        error: Sink::Spdy(error.writer.clone()),
        closed: session.closed(),
    };
    let (out, err) = (streams.stdout.clone(), streams.stderr.clone());
    let outcome = run(target, runtime, streams, options.tty).await;
    for sink in [out, err].into_iter().flatten() {
        sink.finish().await;
    }
    if let Some(m) = status_message(&outcome, &argv, json_status) {
        error.writer.write(&m).await;
    }
    error.writer.finish().await;
    session.close(Duration::from_secs(5)).await;
}

/// Serves exec or attach over a WebSocket connection with a channel subprotocol.
pub async fn serve_websocket(
    conn: websocket::Conn,
    protocol: &str,
    options: StreamOptions,
    target: Target,
    runtime: Arc<dyn Runtime>,
) {
    let codec = ChannelCodec::for_protocol(protocol);
    let json_status = protocol.starts_with("v4.") || protocol.starts_with("v5.");
    let close_signals = protocol.starts_with("v5.");
    let websocket::Conn { out, mut incoming, closed } = conn;
    let sink = |channel| Sink::WebSocket { out: out.clone(), channel, codec };
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(64);
    let (resize_tx, resize_rx) = mpsc::channel::<Bytes>(16);
    // Route what the client sends to its channel.
    tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(m) = incoming.recv().await {
            let Some((channel, data)) = codec.decode(&m) else {
                if let Message::Close(_) = m {
                    break;
                }
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(tx) = &stdin_tx
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        stdin_tx = None;
                    }
                }
                RESIZE => {
                    let _ = resize_tx.send(data).await;
                }
                CLOSE if close_signals && data.first() == Some(&STDIN) => stdin_tx = None,
                _ => {}
            }
        }
    });
    let stdout = options.stdout.then(|| sink(STDOUT));
    let stderr = options.stderr.then(|| sink(STDERR));
    // An empty message on the first writable channel tells the client the streams are ready.
    let first = stdout.clone().or_else(|| stderr.clone()).unwrap_or_else(|| sink(ERROR));
    first.write(&[]).await;
    let argv = match &target {
        Target::Exec { argv, .. } => argv.clone(),
        Target::Attach { .. } => Vec::new(),
    };
    let streams = Streams {
        stdin: options.stdin.then_some(stdin_rx),
        resize: options.tty.then_some(resize_rx),
        stdout,
        stderr,
        error: sink(ERROR),
        closed,
    };
    let error = streams.error.clone();
    let outcome = run(target, runtime, streams, options.tty).await;
    if let Some(m) = status_message(&outcome, &argv, json_status) {
        error.write(&m).await;
    }
    let _ = out.send(Outgoing::Close(websocket::CLOSE_NORMAL)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_from_the_query() {
        let o = StreamOptions::from_query(
            &q(&[("command", "sh"), ("command", "-c"), ("command", "exit 3"), ("stdout", "true"), ("stderr", "true")]),
            true,
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        let t = StreamOptions::from_query(
            &q(&[("command", "sh"), ("stdin", "1"), ("stderr", "true"), ("tty", "true")]),
            true,
        )
        .unwrap();
        assert!(t.tty && t.stdin && !t.stderr, "a terminal has no stderr");
        assert!(StreamOptions::from_query(&q(&[("command", "ls")]), true).is_err());
        assert!(StreamOptions::from_query(&q(&[("stdout", "true")]), true).is_err());
        assert!(StreamOptions::from_query(&q(&[("stdout", "true")]), false).is_ok());
    }

    #[test]
    fn statuses_per_protocol() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let ok: serde_json::Value =
            serde_json::from_slice(&status_message(&Outcome::Exited(0), &argv, true).unwrap()).unwrap();
        assert_eq!(ok, json!({"metadata": {}, "status": "Success"}));
        let three: serde_json::Value =
            serde_json::from_slice(&status_message(&Outcome::Exited(3), &argv, true).unwrap()).unwrap();
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(three["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
        assert!(three["message"].as_str().unwrap().starts_with("command terminated with non-zero exit code"));
        // Before v4: text, and nothing at all on success.
        assert_eq!(status_message(&Outcome::Exited(0), &argv, false), None);
        let text = String::from_utf8(status_message(&Outcome::Exited(3), &argv, false).unwrap()).unwrap();
        assert!(text.ends_with("exit code 3"), "{text}");
        let failed: serde_json::Value =
            serde_json::from_slice(&status_message(&Outcome::Failed("no such container".into()), &argv, true).unwrap())
                .unwrap();
        assert_eq!((failed["reason"].as_str(), failed["code"].as_i64()), (Some("InternalError"), Some(500)));
    }

    /// A runtime whose exec is `tr a-z A-Z; exit 3` in memory.
    struct Upcase;

    #[async_trait::async_trait]
    impl Runtime for Upcase {
        async fn create(&self, id: &str, _: &runtime::CreateOptions) -> Result<(), runtime::RuntimeError> {
            Err(runtime::RuntimeError::NotFound(id.into()))
        }
        async fn start(&self, id: &str) -> Result<(), runtime::RuntimeError> {
            Err(runtime::RuntimeError::NotFound(id.into()))
        }
        async fn state(&self, id: &str) -> Result<runtime::ContainerState, runtime::RuntimeError> {
            Err(runtime::RuntimeError::NotFound(id.into()))
        }
        async fn kill(&self, _: &str, _: i32, _: bool) -> Result<(), runtime::RuntimeError> {
            Ok(())
        }
        async fn delete(&self, _: &str, _: bool) -> Result<(), runtime::RuntimeError> {
            Ok(())
        }
        async fn list(&self) -> Result<Vec<runtime::ContainerState>, runtime::RuntimeError> {
            Ok(Vec::new())
        }
        async fn exec(&self, _: &str, o: &ExecOptions) -> Result<runtime::ExecProcess, runtime::RuntimeError> {
            let (stdin_ours, mut stdin_theirs) = tokio::io::duplex(1024);
            let (mut stdout_theirs, stdout_ours) = tokio::io::duplex(1024);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let mut input = Vec::new();
                let _ = stdin_theirs.read_to_end(&mut input).await;
                let _ = stdout_theirs.write_all(&input.to_ascii_uppercase()).await;
                drop(stdout_theirs);
                let _ = done_tx.send(3);
            });
            Ok(runtime::ExecProcess {
                stdin: o.stdin.then(|| Box::new(stdin_ours) as runtime::container::ProcessWriter),
                stdout: Some(Box::new(stdout_ours)),
                stderr: None,
                resizer: None,
                exit: Box::pin(async move { done_rx.await.map_err(|_| runtime::RuntimeError::NotFound("x".into())) }),
            })
        }
    }

    fn upcase_options() -> StreamOptions {
        StreamOptions { command: vec!["tr".into()], stdin: true, stdout: true, ..StreamOptions::default() }
    }

    fn target() -> Target {
        Target::Exec { container_id: "c".into(), argv: vec!["tr".into(), "a-z".into(), "A-Z".into()] }
    }

    /// Drives a WebSocket exec from the client side; returns stdout and the error channel.
    async fn ws_exec(protocol: &'static str, messages: Vec<(u8, Vec<u8>)>) -> (Vec<u8>, Vec<u8>) {
        use super::super::websocket::{Conn, Reader, encode};
        let (client, server) = tokio::io::duplex(1 << 16);
        let conn = Conn::start(server);
        let task = tokio::spawn(serve_websocket(conn, protocol, upcase_options(), target(), Arc::new(Upcase)));
        let (rd, mut wr) = tokio::io::split(client);
        let codec = ChannelCodec::for_protocol(protocol);
        for (ch, data) in messages {
            let (op, payload) = codec.encode(ch, &data);
            wr.write_all(&encode(op, &payload, Some([1, 2, 3, 4]))).await.unwrap();
        }
        let mut r = Reader::new(rd);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), r.next()).await.unwrap().unwrap();
            match m {
                Some(Message::Close(code)) => {
                    assert_eq!(code, Some(websocket::CLOSE_NORMAL));
                    break;
                }
                Some(m) => match codec.decode(&m) {
                    Some((STDOUT, d)) => out.extend_from_slice(&d),
                    Some((ERROR, d)) => err.extend_from_slice(&d),
                    _ => {}
                },
                None => break,
            }
        }
        task.await.unwrap();
        (out, err)
    }

    #[tokio::test]
    async fn websocket_v5_closes_stdin_with_a_signal_and_reports_json() {
        let (out, err) = ws_exec("v5.channel.k8s.io", vec![(STDIN, b"hello".to_vec()), (CLOSE, vec![STDIN])]).await;
        assert_eq!(out, b"HELLO");
        let status: serde_json::Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }

    /// Without stdin (v4 and older cannot end it but by closing the connection);
    /// returns the decoded messages up to the server's close.
    async fn ws_without_stdin(protocol: &'static str) -> Vec<(u8, Bytes)> {
        let (client, server) = tokio::io::duplex(1 << 16);
        let conn = websocket::Conn::start(server);
        let options = StreamOptions { stdin: false, ..upcase_options() };
        let task = tokio::spawn(serve_websocket(conn, protocol, options, target(), Arc::new(Upcase)));
        let mut r = websocket::Reader::new(client);
        let codec = ChannelCodec::for_protocol(protocol);
        let mut got = Vec::new();
        while let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(5), r.next()).await {
            if let Message::Close(_) = m {
                break;
            }
            got.extend(codec.decode(&m));
        }
        task.await.unwrap();
        got
    }

    #[tokio::test]
    async fn websocket_v4_base64_and_v1_text_status() {
        let got = ws_without_stdin("v4.base64.channel.k8s.io").await;
        // First an empty message on stdout (the streams are ready), then the status.
        assert_eq!(got[0], (STDOUT, Bytes::new()));
        let status = got.iter().find(|(c, _)| *c == ERROR).map(|(_, d)| d.clone()).unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        let got = ws_without_stdin("channel.k8s.io").await;
        let status = got.iter().find(|(c, _)| *c == ERROR).map(|(_, d)| d.clone()).unwrap();
        assert!(String::from_utf8_lossy(&status).starts_with("command terminated with non-zero exit code"));
    }

    #[tokio::test]
    async fn spdy_v4_exec_streams_and_status() {
        use super::super::spdy::tests::TestClient;
        use super::super::spdy::{FLAG_FIN, Frame};
        let (client, server) = tokio::io::duplex(1 << 16);
        let session = spdy::Session::start(server);
        let task = tokio::spawn(async move {
            serve_spdy(session, "v4.channel.k8s.io", upcase_options(), target(), Arc::new(Upcase)).await
        });
        let mut c = TestClient::new(client);
        for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout")] {
            let headers = vec![("streamtype".to_string(), kind.to_string())];
            c.send(Frame::SynStream { stream_id: id, associated: 0, priority: 0, flags: 0, headers }).await;
        }
        c.send(Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"spdy") }).await;
        c.send(Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::new() }).await;
        let (mut out, mut status, mut fins) = (Vec::new(), Vec::new(), Vec::new());
        while !fins.contains(&1) {
            match tokio::time::timeout(Duration::from_secs(5), c.recv()).await.unwrap().unwrap() {
                Frame::Data { stream_id, flags, data } => {
                    match stream_id {
                        5 => out.extend_from_slice(&data),
                        1 => status.extend_from_slice(&data),
                        _ => {}
                    }
                    if flags & FLAG_FIN != 0 {
                        fins.push(stream_id);
                    }
                }
                Frame::SynReply { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(out, b"SPDY");
        assert_eq!(fins, [5, 1], "stdout ends before the status");
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        c.send(Frame::GoAway { last_stream_id: 0, status: 0 }).await;
        task.await.unwrap();
    }

    #[test]
    fn resize_messages() {
        assert_eq!(parse_sizes(b"{\"Width\":80,\"Height\":24}\n"), [(80, 24)]);
        assert_eq!(
            parse_sizes(b"{\"Width\":80,\"Height\":24}\n{\"Width\":100,\"Height\":30}\n"),
            [(80, 24), (100, 30)]
        );
        assert_eq!(parse_sizes(b"{\"Width\":0,\"Height\":0}\n"), [(0, 0)]);
        assert!(parse_sizes(b"junk").is_empty());
    }
}
