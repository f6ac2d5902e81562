//! Running a command in a container for exec probes and exec hooks: `runc exec`,
//! behind one function so that the runtime's own exec (with streams) can replace it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How to reach runc for a container.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub runc: PathBuf,
    pub root: PathBuf,
    pub container_id: String,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecResult {
    /// The exit code and the combined output (cut to 10 KiB, as the kubelet does).
    Exited {
        code: i32,
        output: String,
    },
    TimedOut,
    /// runc could not be run at all.
    Failed(String),
}

const MAX_OUTPUT: usize = 10 * 1024;

/// Runs `argv` in the container with a timeout.
pub async fn exec(target: &ExecTarget, argv: &[String], timeout: Duration) -> ExecResult {
    exec_with(&target.runc, &target.root, &target.container_id, argv, timeout).await
}

async fn exec_with(runc: &Path, root: &Path, id: &str, argv: &[String], timeout: Duration) -> ExecResult {
    let mut cmd = tokio::process::Command::new(runc);
    cmd.arg("--root").arg(root).arg("exec").arg(id).args(argv);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ExecResult::Failed(format!("running {}: {e}", runc.display())),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => ExecResult::TimedOut,
        Ok(Err(e)) => ExecResult::Failed(e.to_string()),
        Ok(Ok(out)) => {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            if output.len() > MAX_OUTPUT {
                let mut cut = MAX_OUTPUT;
                while !output.is_char_boundary(cut) {
                    cut -= 1;
                }
                output.truncate(cut);
            }
            ExecResult::Exited { code: out.status.code().unwrap_or(-1), output }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_codes_output_and_timeouts() {
        // `sh -c` stands in for runc: `sh --root R exec ID argv` is not what we run, so
        // use a script that prints its arguments.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-runc");
        std::fs::write(&fake, "#!/bin/sh\nshift 4\necho \"$@\"\n[ \"$1\" = sleep ] && sleep 5\nexit 3\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let t = ExecTarget { runc: fake, root: "/r".into(), container_id: "c".into() };
        let r = exec(&t, &["hello".into(), "world".into()], Duration::from_secs(5)).await;
        assert_eq!(r, ExecResult::Exited { code: 3, output: "hello world\n".into() });
        let r = exec(&t, &["sleep".into()], Duration::from_millis(200)).await;
        assert_eq!(r, ExecResult::TimedOut);
        let missing = ExecTarget { runc: "/nonexistent/runc".into(), ..t };
        assert!(matches!(exec(&missing, &[], Duration::from_secs(1)).await, ExecResult::Failed(_)));
    }
}
