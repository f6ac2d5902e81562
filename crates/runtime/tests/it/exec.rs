//! exec and attach with the real runc: exit codes, stdin, a terminal and its size,
//! and attaching to a container made with stdin and a terminal.

use crate::{Node, block_on};
use runtime::container::{CreateOptions, ExecOptions, Runtime, Status, wait_stopped};
use runtime::registries::RegistryConfig;
use runtime::testing::{Registry, busybox_image};
use runtime::{Image, Puller, Reference};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(30);

async fn pull(node: &Node) -> (Registry, Image) {
    let registry = Registry::start();
    registry.push("test/image", "v1", &busybox_image()).await.unwrap();
    let puller = Puller::new(node.store.clone(), RegistryConfig::default());
    let r = Reference::parse_normalized(&format!("{}/test/image:v1", registry.host)).unwrap();
    let pulled = puller.pull(&r, &[]).await.unwrap();
    (registry, pulled)
}

fn exec(argv: &[&str]) -> ExecOptions {
    ExecOptions {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdout: true,
        stderr: true,
        ..ExecOptions::default()
    }
}

async fn read_all(r: Option<runtime::container::ProcessReader>) -> String {
    let mut out = Vec::new();
    if let Some(mut r) = r {
        r.read_to_end(&mut out).await.unwrap();
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn exec_exit_codes_stdin_and_a_terminal() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node).await;
        let options = node.bundle("box", &image, &["sleep", "1000"], |_| {});
        node.start("box", &options).await;

        // Output on both streams and the exit code.
        let p = node.runc.exec("box", &exec(&["sh", "-c", "echo out; echo err >&2; exit 3"])).await.unwrap();
        let (out, err) = tokio::join!(read_all(p.stdout), read_all(p.stderr));
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(p.exit.await.unwrap(), 3);

        // stdin to the end.
        let mut o = exec(&["sh", "-c", "tr a-z A-Z"]);
        o.stdin = true;
        let mut p = node.runc.exec("box", &o).await.unwrap();
        let mut stdin = p.stdin.take().unwrap();
        stdin.write_all(b"hello\n").await.unwrap();
        drop(stdin);
        assert_eq!(read_all(p.stdout).await, "HELLO\n");
        assert_eq!(p.exit.await.unwrap(), 0);

        // Round trips through one process, to measure latency.
        let mut o = exec(&["cat"]);
        o.stdin = true;
        o.stderr = false;
        let mut p = node.runc.exec("box", &o).await.unwrap();
        let (mut stdin, mut stdout) = (p.stdin.take().unwrap(), p.stdout.take().unwrap());
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            stdin.write_all(b"x\n").await.unwrap();
            let mut b = [0u8; 2];
            stdout.read_exact(&mut b).await.unwrap();
            times.push(t.elapsed());
        }
        drop(stdin);
        assert_eq!(p.exit.await.unwrap(), 0);
        times.sort();
        println!("    figures: runtime exec stdin->stdout round trip p50 {:?}", times[times.len() / 2]);

        // A whole exec, start to exit.
        let mut starts = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let p = node.runc.exec("box", &exec(&["true"])).await.unwrap();
            assert_eq!(p.exit.await.unwrap(), 0);
            starts.push(t.elapsed());
        }
        starts.sort();
        println!("    figures: runtime exec of `true`, start to exit, median {:?}", starts[2]);

        // A terminal: its size, a prompt without a newline, and ^D ends the shell.
        let mut o = exec(&["sh"]);
        o.tty = true;
        o.stdin = true;
        o.stderr = false;
        let mut p = node.runc.exec("box", &o).await.unwrap();
        p.resizer.as_ref().unwrap().resize(123, 45).unwrap();
        let mut stdin = p.stdin.take().unwrap();
        let mut stdout = p.stdout.take().unwrap();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        stdin.write_all(b"stty size; tty; exit 7\n").await.unwrap();
        stdin.flush().await.unwrap();
        let code = tokio::time::timeout(LONG, p.exit).await.unwrap().unwrap();
        let out = tokio::time::timeout(LONG, reader).await.unwrap().unwrap();
        assert_eq!(code, 7, "{out}");
        assert!(out.contains("45 123"), "{out:?}");
        assert!(out.contains("/dev/pts/"), "{out:?}");

        // Not running: an error, not a hang.
        node.runc.kill("box", 9, false).await.unwrap();
        wait_stopped(&node.runc, "box", LONG).await.unwrap();
        assert!(node.runc.exec("box", &exec(&["true"])).await.is_err());
    })
}

async fn wait_for_log(node: &Node, id: &str, what: &str) -> String {
    let deadline = Instant::now() + LONG;
    loop {
        let raw = std::fs::read_to_string(node.log_path(id)).unwrap_or_default();
        let text: String = raw
            .split_terminator('\n')
            .filter_map(runtime::logfile::parse_record)
            .map(|r| if r.partial { r.content } else { format!("{}\n", r.content) })
            .collect();
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log of {id}: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn attach_to_stdin_and_a_terminal() {
    block_on(async {
        let node = Node::new();
        let (_registry, image) = pull(&node).await;

        // stdin without a terminal: lines in, lines out through the log.
        let script = "while read l; do echo got $l; done; echo stdin closed";
        let options = CreateOptions { stdin: true, ..node.bundle("reader", &image, &["sh", "-c", script], |_| {}) };
        node.start("reader", &options).await;
        let io = node.runc.attach("reader").await.unwrap();
        assert!(!io.tty && io.resizer.is_none());
        let mut stdin = io.stdin.unwrap();
        stdin.write_all(b"one\n").await.unwrap();
        wait_for_log(&node, "reader", "got one\n").await;
        // A client going away does not close the container's stdin; another can attach.
        drop(stdin);
        let mut stdin = node.runc.attach("reader").await.unwrap().stdin.unwrap();
        stdin.write_all(b"two\n").await.unwrap();
        let log = wait_for_log(&node, "reader", "got two\n").await;
        assert!(!log.contains("stdin closed"), "{log}");
        assert_eq!(node.runc.state("reader").await.unwrap().status, Status::Running);

        // A terminal: the prompt shows without a newline, sizes apply, and exit ends it.
        let options = CreateOptions { stdin: true, tty: true, ..node.bundle("term", &image, &["sh"], |_| {}) };
        node.start("term", &options).await;
        let io = node.runc.attach("term").await.unwrap();
        assert!(io.tty);
        io.resizer.as_ref().unwrap().resize(99, 33).unwrap();
        wait_for_log(&node, "term", "# ").await;
        let mut stdin = io.stdin.unwrap();
        stdin.write_all(b"stty size; exit 4\n").await.unwrap();
        let state = wait_stopped(&node.runc, "term", LONG).await.unwrap();
        let log = wait_for_log(&node, "term", "33 99").await;
        assert_eq!(state.exit.unwrap().code, 4, "{log}");

        // A container made without stdin has nothing to attach stdin to.
        let options = node.bundle("plain", &image, &["sleep", "1000"], |_| {});
        node.start("plain", &options).await;
        let io = node.runc.attach("plain").await.unwrap();
        assert!(io.stdin.is_none() && !io.tty);
    })
}
