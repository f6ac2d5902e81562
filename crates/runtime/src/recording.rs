//! A [`Runtime`] that runs nothing: it records every call and keeps container states
//! in memory, for unit tests of the agent's decisions without privileges.

use crate::container::{ContainerState, CreateOptions, ExitStatus, Runtime, RuntimeError, Status, validate_id};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create { id: String, options: CreateOptions },
    Start(String),
    State(String),
    Kill { id: String, signal: i32, all: bool },
    Delete { id: String, force: bool },
    List,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    containers: BTreeMap<String, ContainerState>,
    /// Errors to return from the next create of an id (e.g. a missing executable).
    create_errors: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct RecordingRuntime {
    inner: Mutex<Inner>,
}

impl RecordingRuntime {
    pub fn new() -> RecordingRuntime {
        RecordingRuntime::default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes the next `create` of `id` fail with `message`, as runc would.
    pub fn fail_create(&self, id: &str, message: &str) {
        self.lock().create_errors.insert(id.to_string(), message.to_string());
    }

    /// Ends a running container's process with an exit code, as if it exited.
    pub fn exit(&self, id: &str, code: i32, oom_killed: bool) {
        let mut inner = self.lock();
        if let Some(c) = inner.containers.get_mut(id) {
            c.status = Status::Stopped;
            c.pid = 0;
            c.exit = Some(ExitStatus { code, signal: None, oom_killed, finished_at: now() });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now() -> String {
    crate::logfile::rfc3339_nanos(std::time::SystemTime::now())
}

#[async_trait::async_trait]
impl Runtime for RecordingRuntime {
    async fn create(&self, id: &str, options: &CreateOptions) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let mut inner = self.lock();
        inner.calls.push(Call::Create { id: id.into(), options: options.clone() });
        if let Some(message) = inner.create_errors.remove(id) {
            return Err(RuntimeError::Runc { op: "create", id: id.into(), message });
        }
        if inner.containers.contains_key(id) {
            return Err(RuntimeError::AlreadyExists(id.into()));
        }
        let pid = 1000 + inner.containers.len() as u32;
        inner.containers.insert(
            id.into(),
            ContainerState {
                id: id.into(),
                status: Status::Created,
                pid,
                bundle: options.bundle.clone(),
                created_at: now(),
                started_at: None,
                exit: None,
            },
        );
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::Start(id.into()));
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.status != Status::Created {
            return Err(RuntimeError::Runc {
                op: "start",
                id: id.into(),
                message: "cannot start a container that is not created".into(),
            });
        }
        c.status = Status::Running;
        c.started_at = Some(now());
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::State(id.into()));
        inner.containers.get(id).cloned().ok_or_else(|| RuntimeError::NotFound(id.into()))
    }

    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::Kill { id: id.into(), signal, all });
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.status != Status::Stopped {
            c.status = Status::Stopped;
            c.pid = 0;
            c.exit =
                Some(ExitStatus { code: 128 + signal, signal: Some(signal), oom_killed: false, finished_at: now() });
        }
        Ok(())
    }

    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::Delete { id: id.into(), force });
        match inner.containers.get(id) {
            Some(c) if c.status == Status::Running && !force => Err(RuntimeError::Runc {
                op: "delete",
                id: id.into(),
                message: "cannot delete a running container".into(),
            }),
            _ => {
                inner.containers.remove(id);
                Ok(())
            }
        }
    }

    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::List);
        Ok(inner.containers.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_and_follows_the_lifecycle() {
        let rt = RecordingRuntime::new();
        let opts = CreateOptions { bundle: "/b".into(), log_path: "/l".into(), ..CreateOptions::default() };
        rt.create("c1", &opts).await.unwrap();
        assert!(matches!(rt.create("c1", &opts).await, Err(RuntimeError::AlreadyExists(_))));
        assert_eq!(rt.state("c1").await.unwrap().status, Status::Created);
        rt.start("c1").await.unwrap();
        assert!(rt.delete("c1", false).await.is_err());
        rt.kill("c1", 15, false).await.unwrap();
        let s = rt.state("c1").await.unwrap();
        assert_eq!((s.status, s.exit.unwrap().code), (Status::Stopped, 143));
        rt.delete("c1", false).await.unwrap();
        assert!(matches!(rt.state("c1").await, Err(RuntimeError::NotFound(_))));
        rt.fail_create("c2", "exec: \"nope\": executable file not found in $PATH");
        assert!(rt.create("c2", &opts).await.unwrap_err().to_string().contains("executable file not found"));
        rt.create("c2", &opts).await.unwrap();
        rt.start("c2").await.unwrap();
        rt.exit("c2", 0, true);
        assert!(rt.list().await.unwrap()[0].exit.as_ref().unwrap().oom_killed);
        assert_eq!(rt.calls()[0], Call::Create { id: "c1".into(), options: opts });
    }
}
