//! One worker per pod: it brings the pod's containers to what the spec asks (init
//! containers in order, then the app containers, restarted per `restartPolicy` with
//! the crash back-off), runs the probes, writes the status, and on deletion stops
//! everything gracefully and finishes the deletion.
//!
//! The worker wakes on a new version of its pod, on a probe result, and on a timer
//! (1 s while containers run: a container's exit is seen through the exit file its
//! log shim writes, which costs a `stat`, not a runc call).

use crate::Ctx;
use crate::backoff::{Backoff, go_duration};
use crate::container::{self, ANNOTATION_CONTAINER_NAME, ContainerError, pod_desc};
use crate::env::{PodFacts, Sources};
use crate::network::{SandboxInfo, request_for};
use crate::probe::{self, Kind, Outcome, ProbeState, Target, Timing};
use crate::volumes::{self, VolumeSource};
use controllers::events::{EventType, event};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    LifecycleHandler, ObjectReference, Pod, PodSpec, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use runtime::container::{CreateOptions, ExitStatus, read_exit};
use runtime::policy::{PullDecision, PullPolicy};
use runtime::snapshot::RootfsDirs;
use runtime::{Image, Reference};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How often a worker looks at its running containers.
const POLL: Duration = Duration::from_secs(1);
/// How often volumes are refreshed and states asked of runc.
const RESYNC: Duration = Duration::from_secs(60);
/// The API's default grace period.
const DEFAULT_GRACE: i64 = 30;
/// How long to wait after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What a container shows, besides what the status derives.
#[derive(Debug, Clone)]
enum Shown {
    Waiting { reason: String, message: Option<String> },
    Running,
    Terminated(ContainerStateTerminated),
}

/// The container the runtime runs (or ran) for a spec container.
#[derive(Debug, Clone)]
struct Current {
    id: String,
    bundle: PathBuf,
    image_ref: String,
    image_id: String,
    started_at: Timestamp,
    exit: Option<ExitStatus>,
    /// Where its termination message comes from ([`termination_message`]).
    message: MessageSource,
}

/// Where a container's termination message comes from, as the kubelet reads it.
#[derive(Debug, Clone, Default)]
struct MessageSource {
    /// The file bind-mounted at its `terminationMessagePath`.
    file: Option<PathBuf>,
    /// Its log, read when the file says nothing and the container failed
    /// (`terminationMessagePolicy: FallbackToLogsOnError`).
    fallback_log: Option<PathBuf>,
}

/// The most of a termination message file that is read (upstream's 4 KiB).
const MESSAGE_FILE_BYTES: u64 = 4096;
/// The most of the log a fallback message takes: its last lines and bytes.
const MESSAGE_LOG_LINES: usize = 80;
const MESSAGE_LOG_BYTES: usize = 2048;

/// The termination message, as the kubelet's: what the container wrote to the file
/// (at most 4 KiB), or, that being empty, the end of its log if it failed and its
/// policy says so.
fn termination_message(source: &MessageSource, exit_code: i32) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    if let Some(file) = &source.file
        && let Ok(f) = std::fs::File::open(file)
    {
        let mut bytes = Vec::new();
        let _ = f.take(MESSAGE_FILE_BYTES).read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    if text.is_empty()
        && exit_code != 0
        && let Some(log) = &source.fallback_log
    {
        text = log_tail(log);
    }
    (!text.is_empty()).then_some(text)
}

/// How much of a log's end [`log_tail`] reads: [`MESSAGE_LOG_BYTES`] of content is
/// at most that many records of one byte, each with its ~40 bytes of timestamp,
/// stream and tag.
const MESSAGE_LOG_READ: u64 = 128 * 1024;

/// The content of a CRI log file's last [`MESSAGE_LOG_LINES`] lines, at most
/// [`MESSAGE_LOG_BYTES`] of it (its end). Reads only the file's end: a log may be
/// many MiB.
fn log_tail(log: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut raw = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(MESSAGE_LOG_READ);
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(MESSAGE_LOG_READ).read_to_end(&mut raw);
        }
        // Started mid-record: that one is not whole.
        if from > 0 {
            let first = raw.iter().position(|b| *b == b'\n').map_or(raw.len(), |i| i + 1);
            raw.drain(..first);
        }
    }
    let raw = String::from_utf8_lossy(&raw);
    let records: Vec<_> = raw.lines().filter_map(runtime::logfile::parse_record).collect();
    let mut lines = 0;
    let mut start = records.len();
    while start > 0 && lines < MESSAGE_LOG_LINES {
        start -= 1;
        if !records[start].partial {
            lines += 1;
        }
    }
    let mut text = String::new();
    for r in &records[start..] {
        text.push_str(&r.content);
        if !r.partial {
            text.push('\n');
        }
    }
    let mut cut = text.len().saturating_sub(MESSAGE_LOG_BYTES);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text.split_off(cut)
}

struct ProbeHandle {
    task: tokio::task::JoinHandle<()>,
    results: Arc<Mutex<ProbeResults>>,
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone)]
struct ProbeResults {
    started: bool,
    ready: bool,
    /// Set when liveness (or startup) gave up on the container: why.
    kill: Option<String>,
}

/// One spec container's record.
struct Record {
    init: bool,
    restart_count: i32,
    /// Whether a container ever ran for it (the next start is a restart).
    ran: bool,
    shown: Shown,
    last: Option<ContainerStateTerminated>,
    current: Option<Current>,
    /// An older container kept for its exit status (`logs --previous` reads files).
    previous: Option<Current>,
    /// When the last failure (exit, or failed start) happened.
    failed_at: Option<Instant>,
    backoff: Backoff,
    pull_backoff: Backoff,
    pull_failed_at: Option<Instant>,
    pull_message: String,
    probes: Option<ProbeHandle>,
}

impl Record {
    fn new(init: bool) -> Record {
        Record {
            init,
            restart_count: 0,
            ran: false,
            shown: Shown::Waiting { reason: "ContainerCreating".into(), message: None },
            last: None,
            current: None,
            previous: None,
            failed_at: None,
            backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            pull_failed_at: None,
            pull_message: String::new(),
            probes: None,
        }
    }

    fn running(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.exit.is_none())
    }
}

/// A container the runtime had when the agent started.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub id: String,
    pub bundle: PathBuf,
    pub name: String,
    pub attempt: i32,
    pub init: bool,
    pub image_ref: String,
    pub image_id: String,
    pub started_at: Option<String>,
    pub exit: Option<ExitStatus>,
    pub running: bool,
}

/// Why a start did not happen: the waiting reason and message.
struct StartFailure {
    reason: &'static str,
    message: String,
    /// Counts toward the crash back-off (image pulls have their own).
    backoff: bool,
}

enum Wake {
    After(Duration),
    /// Only a new version of the pod wakes the worker.
    Idle,
    Done,
}

/// A worker's held events ([`Worker::hold_events`]).
struct HeldEvents {
    events: Vec<(controllers::events::Event, ObjectReference)>,
    /// While events are held, this pod counts as starting on the node, and every
    /// pod's events wait ([`Ctx::starting`]).
    ///
    /// [`Ctx::starting`]: crate::Ctx::starting
    _starting: controllers::events::BusyGuard,
}

/// The log of a container's `attempt` (what `kubectl logs` reads).
fn log_file(pod_dir: &std::path::Path, container: &str, attempt: i32) -> PathBuf {
    pod_dir.join(container).join(format!("{attempt}.log"))
}

/// The termination message file of a container's `attempt`, beside its log.
fn message_file(pod_dir: &std::path::Path, container: &str, attempt: i32) -> PathBuf {
    pod_dir.join(container).join(format!("{attempt}.termination-log"))
}

/// Where the termination message of `pod`'s `container`, its `attempt`, comes from:
/// its file, and its log if its policy is `FallbackToLogsOnError`.
fn message_source(pod_dir: &std::path::Path, pod: &Pod, container: &str, attempt: i32) -> MessageSource {
    let spec = pod.spec.as_ref();
    let mut all = spec.into_iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
    let policy = all.find(|c| c.name == container).and_then(|c| c.termination_message_policy.as_deref());
    MessageSource {
        file: Some(message_file(pod_dir, container, attempt)),
        fallback_log: (policy == Some("FallbackToLogsOnError")).then(|| log_file(pod_dir, container, attempt)),
    }
}

fn parse_time(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|_| Timestamp::now())
}

fn terminated(c: &Current, exit: &ExitStatus) -> ContainerStateTerminated {
    let reason = if exit.oom_killed {
        "OOMKilled"
    } else if exit.code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: exit.code,
        reason: Some(reason.into()),
        started_at: Some(Time(c.started_at)),
        finished_at: Some(Time(parse_time(&exit.finished_at))),
        container_id: Some(format!("runc://{}", c.id)),
        message: termination_message(&c.message, exit.code),
        ..Default::default()
    }
}

pub struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    records: BTreeMap<String, Record>,
    sandbox: Option<SandboxInfo>,
    volumes: BTreeMap<String, VolumeSource>,
    etc_files: Option<(PathBuf, PathBuf, PathBuf)>,
    sources: Sources,
    last_resync: Option<Instant>,
    last_status: Option<PodStatus>,
    start_time: Timestamp,
    notify: Arc<Notify>,
    /// Events raised while containers start, held until the status is written (see
    /// [`Worker::hold_events`]); `None`: events go out at once.
    held_events: Mutex<Option<HeldEvents>>,
    /// The pod reached a terminal phase and its containers were released.
    released: bool,
    /// Root filesystems being mounted ahead of a new pod's first starts, by
    /// container id ([`Worker::mount_ahead`]).
    mounted_ahead: BTreeMap<String, MountAhead>,
}

/// A container's image as [`Worker::image_plan`] finds it.
struct ImagePlan {
    /// As the pod spec names it.
    image_name: String,
    reference: Reference,
    /// The normalized reference the image store knows it by.
    name: String,
    present: Option<Image>,
    decision: PullDecision,
}

/// A root filesystem mounted on a blocking thread before its container starts.
struct MountAhead {
    /// The image it is made of: the start uses it only if it starts that image.
    image_id: String,
    dirs: RootfsDirs,
    mount: tokio::task::JoinHandle<Result<PathBuf, runtime::snapshot::SnapshotError>>,
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, pod: &Pod, adopted: Vec<Adopted>) -> Worker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = ctx.config.pod_log_dir(&uid);
        let mut records: BTreeMap<String, Record> = BTreeMap::new();
        let mut sorted = adopted;
        sorted.sort_by_key(|a| a.attempt);
        for a in sorted {
            let r = records.entry(a.name.clone()).or_insert_with(|| Record::new(a.init));
            let current = Current {
                id: a.id.clone(),
                bundle: a.bundle.clone(),
                image_ref: a.image_ref.clone(),
                image_id: a.image_id.clone(),
                started_at: a.started_at.as_deref().map(parse_time).unwrap_or_else(Timestamp::now),
                exit: if a.running { None } else { a.exit.clone() },
                // Where this agent would have put it, as the start did.
                message: message_source(&pod_dir, pod, &a.name, a.attempt),
            };
            if let Some(old) = r.current.take() {
                if let Some(e) = &old.exit {
                    r.last = Some(terminated(&old, e));
                }
                r.previous = Some(old);
            }
            r.restart_count = a.attempt;
            r.ran = true;
            r.shown = match &current.exit {
                None => Shown::Running,
                Some(e) => Shown::Terminated(terminated(&current, e)),
            };
            if a.running || current.exit.is_some() {
                r.current = Some(current);
            }
        }
        Worker {
            ctx,
            uid,
            records,
            sandbox: None,
            volumes: BTreeMap::new(),
            etc_files: None,
            sources: Sources::default(),
            last_resync: None,
            last_status: None,
            start_time: Timestamp::now(),
            notify: Arc::new(Notify::new()),
            held_events: Mutex::new(None),
            released: false,
            mounted_ahead: BTreeMap::new(),
        }
    }

    /// Runs until the pod is finished (or the agent stops: the sender goes away).
    pub async fn run(mut self, mut rx: watch::Receiver<Option<Pod>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            let wake = match &pod {
                None => {
                    self.terminate(None).await;
                    Wake::Done
                }
                Some(p) => self.sync(p).await,
            };
            self.release_events();
            let notify = self.notify.clone();
            match wake {
                Wake::Done => return,
                Wake::Idle => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
                Wake::After(d) => {
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(d) => {}
                        _ = notify.notified() => {}
                    }
                }
            }
        }
    }

    fn reference(&self, pod: &Pod, container: Option<&str>) -> ObjectReference {
        let field_path = container.map(|name| {
            let init = pod.spec.as_ref().is_some_and(|s| s.init_containers.iter().flatten().any(|c| c.name == name));
            if init { format!("spec.initContainers{{{name}}}") } else { format!("spec.containers{{{name}}}") }
        });
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path,
        }
    }

    fn event(&self, pod: &Pod, container: Option<&str>, warning: bool, reason: &str, message: String) {
        let kind = if warning { EventType::Warning } else { EventType::Normal };
        let ev = event(kind, reason, reason, message);
        let reference = self.reference(pod, container);
        if let Some(held) = self.held_events.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            held.events.push((ev, reference));
            return;
        }
        let recorder = self.ctx.recorder.clone();
        tokio::spawn(async move {
            let _ = recorder.publish(&ev, &reference).await;
        });
    }

    /// Holds the events of container starts until [`Worker::release_events`]. Each
    /// event is an API write (a store commit with an fsync); written while `runc run`
    /// runs, they made it take half again as long on a quiet node, and written before
    /// the status they delayed the Running the pod's owner waits for. Their order
    /// stays; they go out right after the status write of the same pass.
    /// Meanwhile the pod counts as starting, and the node's events (other pods' too)
    /// wait for no pod to be starting, so that statuses go out first.
    fn hold_events(&self) {
        self.held_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| HeldEvents { events: Vec::new(), _starting: self.ctx.starting.enter() });
    }

    /// Publishes the held events, in order, and stops holding.
    fn release_events(&self) {
        let held = self.held_events.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Dropping the hold ends this pod's part in the node's starting work.
        let Some(held) = held.map(|h| h.events).filter(|h| !h.is_empty()) else { return };
        let recorder = self.ctx.recorder.clone();
        tokio::spawn(async move {
            for (ev, reference) in held {
                let _ = recorder.publish(&ev, &reference).await;
            }
        });
    }

    fn pod_dir(&self) -> PathBuf {
        self.ctx.config.pod_log_dir(&self.uid)
    }

    fn state_dir(&self) -> PathBuf {
        self.ctx.config.pod_state_dir(&self.uid)
    }

    /// The pod's files on the tmpfs: /etc files (hosts, hostname, resolv.conf),
    /// remade by every new agent, and volumes that hold credentials.
    fn run_dir(&self) -> PathBuf {
        self.ctx.config.pod_run_dir(&self.uid)
    }

    fn volume_dirs(&self) -> volumes::VolumeDirs {
        volumes::VolumeDirs {
            disk: self.state_dir().join("volumes"),
            memory: self.ctx.run_dir_in_memory.then(|| self.run_dir().join("volumes")),
        }
    }

    fn facts(&self, pod: &Pod) -> PodFacts {
        let machine = self.ctx.node.machine();
        let alloc = machine.allocatable();
        let host_ip = self.ctx.node.identity.ip.to_string();
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        let pod_ips = match &self.sandbox {
            _ if host_network => vec![host_ip.clone()],
            Some(s) => s.ips.iter().map(|ip| ip.to_string()).collect(),
            None => Vec::new(),
        };
        PodFacts {
            pod_ips,
            host_ips: vec![host_ip],
            node_cpu: alloc.get("cpu").map(|q| q.0.clone()),
            node_memory: alloc.get("memory").map(|q| q.0.clone()),
            node_ephemeral_storage: alloc.get("ephemeral-storage").map(|q| q.0.clone()),
        }
    }

    /// The configMaps and secrets the pod refers to, as the API has them now.
    async fn fetch_sources(&mut self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let (cms, secrets) = crate::env::referenced(pod);
        self.ctx.config_maps.register(&self.uid, &ns, &cms);
        self.ctx.secrets.register(&self.uid, &ns, &secrets);
        let mut sources = Sources::default();
        for name in cms {
            match self.ctx.config_maps.get(&ns, &name).await {
                Ok(Some(cm)) => {
                    let mut data: BTreeMap<String, Vec<u8>> =
                        cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
                    for (k, v) in cm.binary_data.iter().flatten() {
                        data.insert(k.clone(), v.0.clone());
                    }
                    sources.config_maps.insert(name, data);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(configmap = %name, error = %e, "reading a configmap failed"),
            }
        }
        for name in secrets {
            match self.ctx.secrets.get(&ns, &name).await {
                Ok(Some(s)) => {
                    let mut data: BTreeMap<String, Vec<u8>> =
                        s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
                    for (k, v) in s.string_data.iter().flatten() {
                        data.insert(k.clone(), v.clone().into_bytes());
                    }
                    sources.secrets.insert(name, data);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(secret = %name, error = %e, "reading a secret failed"),
            }
        }
        for source in volumes::token_sources(pod) {
            match self.ctx.tokens.token(pod, source).await {
                Ok(token) => {
                    sources.tokens.insert(volumes::token_key(source), token);
                }
                Err(e) => tracing::warn!(pod = %pod_desc(pod), error = %e, "requesting a service account token failed"),
            }
        }
        self.sources = sources;
    }

    /// Sets up every volume; returns the first failure as the kubelet's event says it.
    fn set_up_volumes(&mut self, pod: &Pod) -> Result<(), String> {
        let facts = self.facts(pod);
        let dirs = self.volume_dirs();
        let mut out = BTreeMap::new();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            match volumes::set_up(pod, v, &dirs, &self.sources, &facts) {
                Ok(src) => {
                    out.insert(v.name.clone(), src);
                }
                Err(e) => return Err(format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name)),
            }
        }
        self.volumes = out;
        Ok(())
    }

    /// One pass over the pod.
    async fn sync(&mut self, pod: &Pod) -> Wake {
        if pod.metadata.uid.as_deref() != Some(self.uid.as_str()) {
            return Wake::Idle;
        }
        self.ctx.lookup.update(pod, self.lookup_entries());
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(Some(pod)).await;
            return Wake::Done;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let terminal = matches!(phase, Some("Succeeded" | "Failed"));
        if terminal && (self.released || !self.records.values().any(Record::running)) {
            if !self.released {
                self.refresh_exits(pod);
                self.write_status(pod, false).await;
                self.release(pod).await;
            }
            return Wake::Idle;
        }
        let spec = match pod.spec.as_ref() {
            Some(s) => s.clone(),
            None => return Wake::Idle,
        };
        let host_network = spec.host_network.unwrap_or(false);
        if self.last_status.is_none() && !self.records.values().any(Record::running) {
            // A new pod: its containers start at the end of this pass. What runc will
            // wait for (the cgroup attach lock) is paid for meanwhile, while the
            // sandbox, the token and the volumes are made.
            self.hold_events();
            self.ctx.runtime.warm_up();
            if self.records.is_empty() {
                self.mount_ahead(&spec);
            }
        }
        let resync_due = self.last_resync.is_none_or(|t| t.elapsed() >= RESYNC);
        self.refresh_exits(pod);
        if resync_due {
            self.refresh_from_runtime().await;
        }
        // Wait for the node's pod network before anything that needs it.
        if !host_network && self.ctx.network.needs_pod_cidr() && self.ctx.node.pod_cidr.borrow().is_none() {
            self.write_status(pod, false).await;
            return Wake::After(POLL);
        }
        if self.sandbox.is_none() {
            match self.ctx.network.create(&request_for(pod)).await {
                Ok(s) => self.sandbox = Some(s),
                Err(e) => {
                    self.event(pod, None, true, "FailedCreatePodSandBox", format!("Failed to create pod sandbox: {e}"));
                    self.write_status(pod, false).await;
                    return Wake::After(Duration::from_secs(5));
                }
            }
        }
        if resync_due || self.etc_files.is_none() {
            let began = Instant::now();
            self.last_resync = Some(began);
            self.fetch_sources(pod).await;
            let fetched = Instant::now();
            if let Err(message) = self.set_up_volumes(pod) {
                self.event(pod, None, true, "FailedMount", message);
                self.last_resync = None;
                self.write_status(pod, false).await;
                return Wake::After(Duration::from_secs(2));
            }
            let ips = self.facts(pod).pod_ips;
            match crate::etc::write_pod_files(&self.run_dir(), pod, &ips, &self.ctx.config.dns) {
                Ok(files) => self.etc_files = Some(files),
                Err(e) => tracing::warn!(pod = %pod_desc(pod), error = %e, "writing /etc files failed"),
            }
            tracing::debug!(
                pod = %pod_desc(pod),
                sources_ms = (fetched - began).as_secs_f64() * 1e3,
                volumes_ms = fetched.elapsed().as_secs_f64() * 1e3,
                "pod sources and volumes"
            );
        }
        let mut wake = POLL;
        self.handle_probe_kills(pod).await;
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());

        // Init containers, one at a time, in order.
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let r = self.records.entry(c.name.clone()).or_insert_with(|| Record::new(true));
            match &r.shown {
                Shown::Terminated(t) if t.exit_code == 0 => continue,
                Shown::Running => {
                    initialized = false;
                    break;
                }
                Shown::Terminated(_) if policy == "Never" => {
                    initialized = false;
                    break;
                }
                _ => {
                    if let Some(w) = self.try_start(pod, c, true).await {
                        wake = wake.min(w);
                    }
                    initialized = false;
                    break;
                }
            }
        }
        for c in &spec.containers {
            let r = self.records.entry(c.name.clone()).or_insert_with(|| Record::new(false));
            if !initialized {
                if r.current.is_none() {
                    r.shown = Shown::Waiting { reason: "PodInitializing".into(), message: None };
                }
                continue;
            }
            let start = match &r.shown {
                Shown::Running => false,
                Shown::Terminated(t) => match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => t.exit_code != 0,
                    _ => true,
                },
                Shown::Waiting { .. } => true,
            };
            // A container a previous run of the agent started (adopted) has nobody
            // probing it yet; without that it would never be Ready again.
            let unprobed = matches!(r.shown, Shown::Running)
                && r.probes.is_none()
                && r.current.as_ref().is_some_and(|cur| cur.exit.is_none());
            if unprobed {
                self.start_probes(pod, c);
            }
            if start && let Some(w) = self.try_start(pod, c, false).await {
                wake = wake.min(w);
            }
        }
        self.write_status(pod, false).await;
        self.release_events();
        // Done for good: every container stopped and none will restart.
        let phase = self.last_status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            self.release(pod).await;
            return Wake::Idle;
        }
        Wake::After(wake)
    }

    /// Notices containers that exited, through their exit files.
    fn refresh_exits(&mut self, pod: &Pod) {
        let mut exited = Vec::new();
        for (name, r) in self.records.iter_mut() {
            let Some(c) = r.current.as_mut() else { continue };
            if c.exit.is_some() {
                continue;
            }
            if let Some(exit) = read_exit(&c.bundle) {
                c.exit = Some(exit.clone());
                let t = terminated(c, &exit);
                r.shown = Shown::Terminated(t);
                r.failed_at = Some(Instant::now());
                r.probes = None;
                exited.push((name.clone(), exit));
            }
        }
        for (name, exit) in exited {
            tracing::debug!(pod = %pod_desc(pod), container = %name, code = exit.code, "container exited");
        }
    }

    /// Asks runc about containers whose shim may have died without an exit file.
    async fn refresh_from_runtime(&mut self) {
        for r in self.records.values_mut() {
            let Some(c) = r.current.as_mut() else { continue };
            if c.exit.is_some() {
                continue;
            }
            match self.ctx.runtime.state(&c.id).await {
                Ok(s) if s.status == runtime::Status::Stopped => {
                    let exit = s.exit.unwrap_or(ExitStatus {
                        code: 255,
                        signal: None,
                        oom_killed: false,
                        finished_at: runtime::logfile::rfc3339_nanos(std::time::SystemTime::now()),
                    });
                    r.shown = Shown::Terminated(terminated(c, &exit));
                    c.exit = Some(exit);
                    r.failed_at = Some(Instant::now());
                    r.probes = None;
                }
                Err(runtime::RuntimeError::NotFound(_)) => {
                    let exit = ExitStatus {
                        code: 255,
                        signal: None,
                        oom_killed: false,
                        finished_at: runtime::logfile::rfc3339_nanos(std::time::SystemTime::now()),
                    };
                    r.shown = Shown::Terminated(terminated(c, &exit));
                    c.exit = Some(exit);
                    r.failed_at = Some(Instant::now());
                    r.probes = None;
                }
                _ => {}
            }
        }
    }

    /// Starts (or restarts) a container unless a back-off holds it; returns when to
    /// look again if it waits.
    async fn try_start(&mut self, pod: &Pod, c: &Container, init: bool) -> Option<Duration> {
        let desc = pod_desc(pod);
        let now = Instant::now();
        let r = self.records.get_mut(&c.name)?;
        if let Some(failed) = r.failed_at {
            if let Some(left) = r.backoff.remaining(failed, now) {
                let d = go_duration(r.backoff.delay());
                // The exited container's state moves to lastState while it waits.
                if let Shown::Terminated(t) = &r.shown {
                    r.last = Some(t.clone());
                }
                let was_backing_off = matches!(&r.shown, Shown::Waiting { reason, .. } if reason == "CrashLoopBackOff");
                r.shown = Shown::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!("back-off {d} restarting failed container={} pod={desc}", c.name)),
                };
                if !was_backing_off {
                    self.event(
                        pod,
                        Some(&c.name),
                        true,
                        "BackOff",
                        format!("Back-off restarting failed container {} in pod {desc}", c.name),
                    );
                }
                return Some(left);
            }
            r.backoff.next(now);
        }
        self.hold_events();
        // Restarts and later init containers too: the lock's wait overlaps the
        // root filesystem, the spec and the shim's start (a no-op if already warming).
        self.ctx.runtime.warm_up();
        match self.start(pod, c, init).await {
            Ok(()) => None,
            Err(f) => {
                let r = self.records.get_mut(&c.name)?;
                if let Shown::Terminated(t) = &r.shown {
                    r.last = Some(t.clone());
                }
                r.shown = Shown::Waiting { reason: f.reason.into(), message: Some(f.message.clone()) };
                if f.backoff {
                    r.failed_at = Some(Instant::now());
                }
                let left = r
                    .pull_failed_at
                    .and_then(|at| r.pull_backoff.remaining(at, Instant::now()))
                    .unwrap_or(Duration::from_secs(1));
                Some(left)
            }
        }
    }

    /// Makes sure the image is here, pulling per policy and its back-off.
    /// The image a container would start from without pulling, if that is what its
    /// pull policy says to do.
    fn local_image(&self, c: &Container) -> Option<Image> {
        let plan = self.image_plan(c).ok()?;
        (plan.decision == PullDecision::UseLocal).then_some(plan.present).flatten()
    }

    /// A container's image reference, the image if it is here, and what its pull
    /// policy makes of that.
    fn image_plan(&self, c: &Container) -> Result<ImagePlan, StartFailure> {
        let image_name = c.image.clone().unwrap_or_default();
        let reference = Reference::parse_normalized(&image_name).map_err(|e| StartFailure {
            reason: "InvalidImageName",
            message: format!(
                "Failed to apply default image tag {image_name:?}: couldn't parse image name {image_name:?}: {e}"
            ),
            backoff: true,
        })?;
        let name = reference.to_string();
        let present = self.ctx.puller.store().get(&name).ok().flatten();
        let policy = c
            .image_pull_policy
            .as_deref()
            .and_then(PullPolicy::parse)
            .unwrap_or_else(|| PullPolicy::default_for(&image_name));
        let decision = runtime::policy::decide(policy, present.is_some());
        Ok(ImagePlan { image_name, reference, name, present, decision })
    }

    /// Starts mounting the root filesystems of a new pod's first containers (its
    /// first init container, or else all of its containers) on blocking threads, so
    /// that the mounts overlap the wait for the pod's token, ConfigMaps and Secrets
    /// from the API server: a mount needs none of them. Only for images already
    /// present and not to be pulled again; `start` picks the mounts up by id.
    fn mount_ahead(&mut self, spec: &PodSpec) {
        let first: Vec<&Container> = match spec.init_containers.as_deref() {
            Some([c, ..]) => vec![c],
            _ => spec.containers.iter().collect(),
        };
        for c in first {
            let Some(image) = self.local_image(c) else { continue };
            let id = container::container_id(&self.uid, &c.name, 0);
            // Leftovers of an earlier run of this container: `start` clears them.
            if self.ctx.config.runc.root.join(&id).exists() {
                continue;
            }
            let dirs = self.ctx.config.rootfs_dirs(&id);
            let mount = self.mount_rootfs(&image, &dirs);
            self.mounted_ahead.insert(id, MountAhead { image_id: image.repo_digest(), dirs, mount });
        }
    }

    /// Mounts a container's root filesystem over `image`'s layers where `dirs` says,
    /// on a blocking thread (clearing what an earlier mount there left).
    fn mount_rootfs(
        &self,
        image: &Image,
        dirs: &RootfsDirs,
    ) -> tokio::task::JoinHandle<Result<PathBuf, runtime::snapshot::SnapshotError>> {
        let (snapshots, store) = (self.ctx.snapshots.clone(), self.ctx.puller.store().clone());
        let (image, dirs) = (image.clone(), dirs.clone());
        tokio::task::spawn_blocking(move || {
            let _ = runtime::snapshot::remove_rootfs_at(&dirs);
            let layers = snapshots.prepare(&store, &image)?;
            runtime::snapshot::mount_rootfs_at(&layers, &dirs)
        })
    }

    /// The root filesystem mounted ahead for container `id` of `image`, if there is
    /// one and it worked; a mount of another image is undone.
    async fn take_mounted_ahead(&mut self, id: &str, image: &Image) -> Option<PathBuf> {
        let ahead = self.mounted_ahead.remove(id)?;
        let mounted = ahead.mount.await.ok().and_then(Result::ok);
        if mounted.is_some() && ahead.image_id == image.repo_digest() {
            return mounted;
        }
        let _ = runtime::snapshot::remove_rootfs_at(&ahead.dirs);
        None
    }

    /// Undoes the mounts made ahead that no start used.
    async fn drop_mounted_ahead(&mut self) {
        for (_, ahead) in std::mem::take(&mut self.mounted_ahead) {
            let _ = ahead.mount.await;
            let _ = runtime::snapshot::remove_rootfs_at(&ahead.dirs);
            if let Some(bundle) = ahead.dirs.rootfs.parent() {
                let _ = std::fs::remove_dir_all(bundle);
            }
        }
    }

    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> Result<(Image, String), StartFailure> {
        let ImagePlan { image_name, reference, name, present, decision } = self.image_plan(c)?;
        match decision {
            PullDecision::UseLocal => {
                if let Some(img) = present {
                    self.event(
                        pod,
                        Some(&c.name),
                        false,
                        "Pulled",
                        format!("Container image {image_name:?} already present on machine"),
                    );
                    return Ok((img, name));
                }
                Err(StartFailure {
                    reason: "ErrImageNeverPull",
                    message: format!("Container image {image_name:?} is not present with pull policy of Never"),
                    backoff: true,
                })
            }
            PullDecision::NeverPullMissing => {
                self.event(
                    pod,
                    Some(&c.name),
                    true,
                    "ErrImageNeverPull",
                    format!("Container image {image_name:?} is not present with pull policy of Never"),
                );
                Err(StartFailure {
                    reason: "ErrImageNeverPull",
                    message: format!("Container image {image_name:?} is not present with pull policy of Never"),
                    backoff: true,
                })
            }
            PullDecision::Pull => {
                let now = Instant::now();
                if let Some(r) = self.records.get(&c.name)
                    && let Some(at) = r.pull_failed_at
                    && r.pull_backoff.remaining(at, now).is_some()
                {
                    let message = format!("Back-off pulling image {image_name:?}: ErrImagePull: {}", r.pull_message);
                    let first = !matches!(&r.shown, Shown::Waiting { reason, .. } if reason == "ImagePullBackOff");
                    if first {
                        self.event(
                            pod,
                            Some(&c.name),
                            false,
                            "BackOff",
                            format!("Back-off pulling image {image_name:?}"),
                        );
                        self.event(pod, Some(&c.name), true, "Failed", "Error: ImagePullBackOff".into());
                    }
                    return Err(StartFailure { reason: "ImagePullBackOff", message, backoff: false });
                }
                self.event(pod, Some(&c.name), false, "Pulling", format!("Pulling image {image_name:?}"));
                // A pull waits on the network: what happened so far is news now, and
                // the node's other events need not wait for it.
                self.release_events();
                let credentials = self.pull_credentials(pod, &reference).await;
                let started = Instant::now();
                let pulled = self.ctx.puller.pull(&reference, &credentials).await;
                self.hold_events();
                match pulled {
                    Ok(img) => {
                        let took = started.elapsed().as_secs_f64();
                        self.event(
                            pod,
                            Some(&c.name),
                            false,
                            "Pulled",
                            format!(
                                "Successfully pulled image {image_name:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                                img.size
                            ),
                        );
                        if let Some(r) = self.records.get_mut(&c.name) {
                            r.pull_backoff.reset();
                            r.pull_failed_at = None;
                        }
                        Ok((img, name))
                    }
                    Err(e) => {
                        let message = format!("failed to pull and unpack image {name:?}: {e}");
                        self.event(
                            pod,
                            Some(&c.name),
                            true,
                            "Failed",
                            format!("Failed to pull image {image_name:?}: {message}"),
                        );
                        self.event(pod, Some(&c.name), true, "Failed", "Error: ErrImagePull".into());
                        if let Some(r) = self.records.get_mut(&c.name) {
                            let now = Instant::now();
                            r.pull_backoff.next(now);
                            r.pull_failed_at = Some(now);
                            r.pull_message = message.clone();
                        }
                        Err(StartFailure { reason: "ErrImagePull", message, backoff: false })
                    }
                }
            }
        }
    }

    async fn pull_credentials(&self, pod: &Pod, reference: &Reference) -> Vec<runtime::Credentials> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        let mut out = Vec::new();
        for s in pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()) {
            let Ok(Some(secret)) = api.get_opt(&s.name).await else { continue };
            let data = secret.data.unwrap_or_default();
            for key in [".dockerconfigjson", ".dockercfg"] {
                if let Some(v) = data.get(key) {
                    out.extend(runtime::registries::docker_config_credentials(&v.0, reference));
                }
            }
        }
        out
    }

    /// Creates and starts one container.
    async fn start(&mut self, pod: &Pod, c: &Container, init: bool) -> Result<(), StartFailure> {
        // Where a start's time goes, for the pod start latency budget.
        let began = Instant::now();
        let (image, image_ref) = self.ensure_image(pod, c).await?;
        let image_done = Instant::now();
        let config_error =
            |message: String| StartFailure { reason: "CreateContainerConfigError", message, backoff: true };
        let facts = self.facts(pod);
        let env = match crate::env::resolve(pod, c, &self.sources, &facts) {
            Ok(e) => e,
            Err(e) => {
                self.event(pod, Some(&c.name), true, "Failed", format!("Error: {e}"));
                return Err(config_error(e.to_string()));
            }
        };
        let store = self.ctx.puller.store().clone();
        let image_config = store.config(&image).ok().and_then(|f| f.config).unwrap_or_default();
        let (ran, restart_count) = self.records.get(&c.name).map(|r| (r.ran, r.restart_count)).unwrap_or((false, 0));
        let attempt = if ran { restart_count + 1 } else { restart_count };
        let id = container::container_id(&self.uid, &c.name, attempt);
        let dir = self.ctx.config.bundle_dir(&id);
        let dirs = self.ctx.config.rootfs_dirs(&id);
        let create_error = |message: String| StartFailure { reason: "CreateContainerError", message, backoff: true };
        let rootfs = match self.take_mounted_ahead(&id, &image).await {
            Some(r) => r,
            None => {
                // Leftovers of a failed attempt with the same id. Only when runc has
                // one: a `runc delete` of nothing still costs a process (about 4 ms
                // of a start).
                if self.ctx.config.runc.root.join(&id).exists() {
                    let _ = self.ctx.runtime.delete(&id, true).await;
                }
                match self.mount_rootfs(&image, &dirs).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return Err(self.fail(pod, c, create_error(e.to_string()))),
                    Err(e) => return Err(self.fail(pod, c, create_error(e.to_string()))),
                }
            }
        };
        let rootfs_done = Instant::now();
        let (passwd, group) = runtime::spec::read_user_files(&rootfs);
        let user = match container::user(pod, c, &image_config, &passwd, &group) {
            Ok(u) => u,
            Err(e) => {
                let _ = runtime::snapshot::remove_rootfs_at(&dirs);
                return Err(self.fail(pod, c, config_error(e.to_string())));
            }
        };
        let mut mounts = match volumes::container_mounts(c, &self.volumes, &env) {
            Ok(m) => m,
            Err(e) => {
                let _ = runtime::snapshot::remove_rootfs_at(&dirs);
                return Err(self.fail(pod, c, config_error(e.to_string())));
            }
        };
        let log_dir = self.pod_dir().join(&c.name);
        let _ = std::fs::create_dir_all(&log_dir);
        // The termination message file, writable whatever user the container runs
        // as, at its terminationMessagePath (the kubelet's, on disk with the logs).
        let path = c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into());
        let message = message_source(&self.pod_dir(), pod, &c.name, attempt);
        let message_path = message_file(&self.pod_dir(), &c.name, attempt);
        let made = std::fs::write(&message_path, b"").and_then(|()| {
            std::fs::set_permissions(&message_path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        });
        if let Err(e) = made {
            let _ = runtime::snapshot::remove_rootfs_at(&dirs);
            return Err(self.fail(pod, c, create_error(format!("making the termination message file: {e}"))));
        }
        if !mounts.iter().any(|m| m.destination == path) {
            mounts.push(volumes::BindMount { source: message_path.clone(), destination: path, read_only: false });
        }
        let qos = crate::status::qos_class(pod.spec.as_ref().ok_or_else(|| config_error("no spec".into()))?);
        let default_sandbox =
            SandboxInfo { pod_uid: self.uid.clone(), ips: vec![], net_ns: None, ipc_ns: None, uts_ns: None };
        let input = container::ContainerInput {
            pod,
            container: c,
            init,
            attempt,
            rootfs,
            image: image_config,
            image_name: c.image.clone().unwrap_or_default(),
            image_ref: image_ref.clone(),
            image_id: image.repo_digest(),
            env,
            user,
            mounts,
            etc_files: self.etc_files.clone(),
            sandbox: self.sandbox.as_ref().unwrap_or(&default_sandbox),
            qos,
            cgroups_path: self.ctx.cgroups.as_ref().map(|q| q.path(qos, &id)),
            node_memory: self.ctx.node.machine().memory_bytes,
            oom_floor: std::fs::read_to_string("/proc/self/oom_score_adj")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1000),
        };
        let spec = match container::config(&input).and_then(|cfg| Ok(runtime::spec::generate(&cfg)?)) {
            Ok(s) => s,
            Err(e) => {
                let _ = runtime::snapshot::remove_rootfs_at(&dirs);
                let f = match e {
                    ContainerError::Config(m) => config_error(m),
                    ContainerError::Spec(e) => create_error(e.to_string()),
                };
                return Err(self.fail(pod, c, f));
            }
        };
        if let Err(e) = spec.write(&dir) {
            let _ = runtime::snapshot::remove_rootfs_at(&dirs);
            return Err(self.fail(pod, c, create_error(format!("writing the bundle: {e}"))));
        }
        let log_path = log_file(&self.pod_dir(), &c.name, attempt);
        let _ = std::fs::remove_file(&log_path);
        // stdin and tty as the spec asks, so that `kubectl attach` has something to
        // write to and a terminal to show (the runtime sets process.terminal).
        let options = CreateOptions {
            bundle: dir.clone(),
            log_path,
            stdin: c.stdin.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
        };
        let spec_done = Instant::now();
        let run_result = self.ctx.start_turns.run(self.ctx.runtime.run(&id, &options)).await;
        tracing::debug!(
            pod = %pod_desc(pod),
            container = %c.name,
            image_ms = (image_done - began).as_secs_f64() * 1e3,
            rootfs_ms = (rootfs_done - image_done).as_secs_f64() * 1e3,
            spec_ms = (spec_done - rootfs_done).as_secs_f64() * 1e3,
            run_ms = spec_done.elapsed().as_secs_f64() * 1e3,
            "container start steps"
        );
        if let Err(e) = run_result {
            let _ = self.ctx.runtime.delete(&id, true).await;
            let _ = runtime::snapshot::remove_rootfs_at(&dirs);
            let message = match &e {
                runtime::RuntimeError::Runc { message, .. } => message.clone(),
                other => other.to_string(),
            };
            self.event(pod, Some(&c.name), true, "Failed", format!("Error: {message}"));
            return Err(StartFailure { reason: "RunContainerError", message, backoff: true });
        }
        self.event(pod, Some(&c.name), false, "Created", format!("Created container: {}", c.name));
        self.event(pod, Some(&c.name), false, "Started", format!("Started container {}", c.name));
        let current = Current {
            id: id.clone(),
            bundle: dir,
            image_ref,
            image_id: image.repo_digest(),
            started_at: Timestamp::now(),
            exit: None,
            message,
        };
        // Keep the container that just ended; remove the one before it.
        let pod_dir = self.pod_dir();
        let r = self.records.get_mut(&c.name).ok_or_else(|| create_error("no record".into()))?;
        if let Some(prev) = r.current.take() {
            if let Some(e) = &prev.exit {
                r.last = Some(terminated(&prev, e));
            }
            if let Some(older) = r.previous.replace(prev) {
                remove_container(&self.ctx.config, &*self.ctx.runtime, &older).await;
            }
        }
        if ran {
            r.restart_count = attempt;
            let _ = std::fs::remove_file(log_file(&pod_dir, &c.name, attempt - 2));
            let _ = std::fs::remove_file(message_file(&pod_dir, &c.name, attempt - 2));
        }
        r.ran = true;
        r.current = Some(current);
        r.shown = Shown::Running;
        self.ctx.lookup.update(pod, self.lookup_entries());
        self.start_probes(pod, c);
        if c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some()) {
            // The hook may take a while; what happened so far is news now.
            self.release_events();
        }
        if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            && let Err(message) = self.run_hook(pod, c, &id, handler, Duration::from_secs(DEFAULT_GRACE as u64)).await
        {
            self.event(pod, Some(&c.name), true, "FailedPostStartHook", format!("PostStartHook failed: {message}"));
            let grace = grace_period(pod);
            self.kill(pod, &c.name, grace, false).await;
        }
        Ok(())
    }

    fn fail(&self, pod: &Pod, c: &Container, f: StartFailure) -> StartFailure {
        self.event(pod, Some(&c.name), true, "Failed", format!("Error: {}", f.message));
        f
    }

    fn probe_target(&self, pod: &Pod, container_id: &str) -> Target {
        let ip = self.facts(pod).pod_ips.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
        Target {
            pod_ip: ip,
            exec: probe::exec::ExecTarget {
                runc: self.ctx.config.runc.runc.clone(),
                root: self.ctx.config.runc.root.clone(),
                container_id: container_id.to_string(),
            },
        }
    }

    /// Runs a lifecycle hook (exec or httpGet).
    async fn run_hook(
        &self,
        pod: &Pod,
        c: &Container,
        id: &str,
        handler: &LifecycleHandler,
        timeout: Duration,
    ) -> Result<(), String> {
        let target = self.probe_target(pod, id);
        let as_probe = k8s_openapi::api::core::v1::Probe {
            exec: handler.exec.clone(),
            http_get: handler.http_get.clone(),
            tcp_socket: handler.tcp_socket.clone(),
            timeout_seconds: Some(timeout.as_secs().max(1) as i32),
            ..Default::default()
        };
        if let Some(s) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
            return Ok(());
        }
        match probe::run(&as_probe, c, &target).await {
            Outcome::Success => Ok(()),
            Outcome::Failure(m) | Outcome::Error(m) => Err(m),
        }
    }

    fn start_probes(&mut self, pod: &Pod, c: &Container) {
        let Some(id) = self.records.get(&c.name).and_then(|r| r.current.as_ref()).map(|c| c.id.clone()) else {
            return;
        };
        let results = Arc::new(Mutex::new(ProbeResults {
            started: c.startup_probe.is_none(),
            ready: c.readiness_probe.is_none(),
            kill: None,
        }));
        let task = if c.startup_probe.is_none() && c.readiness_probe.is_none() && c.liveness_probe.is_none() {
            tokio::spawn(async {})
        } else {
            let target = self.probe_target(pod, &id);
            let notify = self.notify.clone();
            let container = c.clone();
            let recorder = self.ctx.recorder.clone();
            let reference = self.reference(pod, Some(&c.name));
            let shared = results.clone();
            tokio::spawn(async move {
                run_probes(container, target, shared, notify, recorder, reference).await;
            })
        };
        if let Some(r) = self.records.get_mut(&c.name) {
            r.probes = Some(ProbeHandle { task, results });
        }
    }

    /// Kills containers whose liveness or startup probe gave up.
    async fn handle_probe_kills(&mut self, pod: &Pod) {
        let mut kills = Vec::new();
        for (name, r) in &self.records {
            if let Some(p) = &r.probes
                && let Some(why) = p.results.lock().unwrap_or_else(|e| e.into_inner()).kill.take()
            {
                kills.push((name.clone(), why));
            }
        }
        for (name, why) in kills {
            self.event(pod, Some(&name), false, "Killing", why);
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .and_then(|c| c.liveness_probe.as_ref())
                .and_then(|p| p.termination_grace_period_seconds)
                .unwrap_or_else(|| grace_period(pod));
            self.kill(pod, &name, grace, true).await;
            self.refresh_exits(pod);
        }
    }

    /// Stops one container: preStop hook, SIGTERM (or the image's stop signal),
    /// the grace period, SIGKILL.
    async fn kill(&mut self, pod: &Pod, name: &str, grace: i64, pre_stop: bool) {
        let Some(current) = self.records.get(name).and_then(|r| r.current.clone()) else { return };
        if current.exit.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
        if pre_stop
            && let Some(c) = pod.spec.as_ref().and_then(|s| crate::status::container(s, name)).cloned()
            && let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let hook = self.run_hook(pod, &c, &current.id, h, left.max(Duration::from_secs(1)));
            match tokio::time::timeout(left, hook).await {
                Ok(Ok(())) => {}
                Ok(Err(m)) => {
                    self.event(pod, Some(name), true, "FailedPreStopHook", format!("PreStopHook failed: {m}"))
                }
                Err(_) => {}
            }
        }
        stop_container(&*self.ctx.runtime, &current, deadline).await;
    }

    /// Finishes the pod: stops every container within the grace period, writes the
    /// final status, releases everything, and deletes the pod object.
    async fn terminate(&mut self, pod: Option<&Pod>) {
        if let Some(pod) = pod {
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or_else(|| grace_period(pod));
            let running: Vec<String> =
                self.records.iter().filter(|(_, r)| r.running()).map(|(n, _)| n.clone()).collect();
            for name in &running {
                self.event(pod, Some(name), false, "Killing", format!("Stopping container {name}"));
            }
            // All containers stop at once, each within the same grace period.
            let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
            let mut hooks = Vec::new();
            for name in &running {
                let Some(c) = pod.spec.as_ref().and_then(|s| crate::status::container(s, name)).cloned() else {
                    continue;
                };
                let Some(current) = self.records.get(name).and_then(|r| r.current.clone()) else { continue };
                let handler = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
                let target = self.probe_target(pod, &current.id);
                let runtime = self.ctx.runtime.clone();
                hooks.push(async move {
                    let mut failure = None;
                    if let Some(h) = handler {
                        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
                        let as_probe = k8s_openapi::api::core::v1::Probe {
                            exec: h.exec.clone(),
                            http_get: h.http_get.clone(),
                            tcp_socket: h.tcp_socket.clone(),
                            timeout_seconds: Some(left.as_secs().max(1) as i32),
                            ..Default::default()
                        };
                        if let Some(s) = &h.sleep {
                            tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(left)).await;
                        } else if let Ok(Outcome::Failure(m) | Outcome::Error(m)) =
                            tokio::time::timeout(left, probe::run(&as_probe, &c, &target)).await
                        {
                            failure = Some((c.name.clone(), m));
                        }
                    }
                    stop_container(&*runtime, &current, deadline).await;
                    failure
                });
            }
            for failure in futures_util::future::join_all(hooks).await.into_iter().flatten() {
                self.event(
                    pod,
                    Some(&failure.0),
                    true,
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {}", failure.1),
                );
            }
            for r in self.records.values_mut() {
                r.probes = None;
            }
            self.refresh_exits(pod);
            // Containers that never ran show as terminated too.
            self.write_status(pod, true).await;
        }
        self.release_all().await;
        for dir in self.ctx.config.pod_dirs(&self.uid) {
            volumes::remove_pod_dir(&dir);
        }
        self.ctx.lookup.remove(&self.uid);
        if let Some(pod) = pod {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => tracing::warn!(pod = %pod_desc(pod), error = %e, "finishing the pod's deletion failed"),
            }
        }
    }

    /// Releases the containers, volumes and sandbox of a pod that is done, keeping
    /// its status (and logs).
    async fn release(&mut self, pod: &Pod) {
        if self.released {
            return;
        }
        tracing::debug!(pod = %pod_desc(pod), "pod finished; releasing its containers");
        self.release_all().await;
        self.released = true;
    }

    async fn release_all(&mut self) {
        self.drop_mounted_ahead().await;
        for r in self.records.values_mut() {
            r.probes = None;
            for c in [r.current.as_ref(), r.previous.as_ref()].into_iter().flatten() {
                if c.exit.is_none() {
                    stop_container(&*self.ctx.runtime, c, Instant::now()).await;
                }
                remove_container(&self.ctx.config, &*self.ctx.runtime, c).await;
            }
        }
        // Containers of this pod the records do not know (a crash mid-start).
        if let Ok(all) = self.ctx.runtime.list().await {
            let prefix = format!("{}_", self.uid);
            for c in all.into_iter().filter(|c| c.id.starts_with(&prefix)) {
                let cur = Current {
                    id: c.id.clone(),
                    bundle: c.bundle.clone(),
                    image_ref: String::new(),
                    image_id: String::new(),
                    started_at: Timestamp::now(),
                    exit: None,
                    message: MessageSource::default(),
                };
                stop_container(&*self.ctx.runtime, &cur, Instant::now()).await;
                remove_container(&self.ctx.config, &*self.ctx.runtime, &cur).await;
            }
        }
        if let Err(e) = volumes::tear_down(&self.volume_dirs()) {
            tracing::warn!(pod_uid = %self.uid, error = %e, "tearing down volumes failed");
        }
        self.ctx.tokens.forget_pod(&self.uid);
        self.ctx.config_maps.unregister(&self.uid);
        self.ctx.secrets.unregister(&self.uid);
        if let Err(e) = self.ctx.network.remove(&self.uid).await {
            tracing::warn!(pod_uid = %self.uid, error = %e, "removing the pod sandbox failed");
        }
        self.sandbox = None;
    }

    fn container_status(&self, c: &Container, init: bool) -> ContainerStatus {
        let r = self.records.get(&c.name);
        let image = c.image.clone().unwrap_or_default();
        let Some(r) = r else {
            return ContainerStatus {
                name: c.name.clone(),
                image,
                image_id: String::new(),
                ready: false,
                restart_count: 0,
                started: Some(false),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(if init { "PodInitializing" } else { "ContainerCreating" }.into()),
                        message: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
        };
        let results = r.probes.as_ref().map(|p| p.results.lock().unwrap_or_else(|e| e.into_inner()).clone());
        let (started, ready) = match (&r.shown, results) {
            (Shown::Running, Some(p)) => (p.started, p.started && p.ready && !init),
            (Shown::Running, None) => (true, c.readiness_probe.is_none() && c.startup_probe.is_none() && !init),
            _ => (false, false),
        };
        let state = match &r.shown {
            Shown::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
                ..Default::default()
            },
            Shown::Running => ContainerState {
                running: Some(ContainerStateRunning { started_at: r.current.as_ref().map(|c| Time(c.started_at)) }),
                ..Default::default()
            },
            Shown::Terminated(t) => ContainerState { terminated: Some(t.clone()), ..Default::default() },
        };
        let current = r.current.as_ref().or(r.previous.as_ref());
        ContainerStatus {
            name: c.name.clone(),
            image: current.map(|c| c.image_ref.clone()).filter(|s| !s.is_empty()).unwrap_or(image),
            image_id: current.map(|c| c.image_id.clone()).unwrap_or_default(),
            container_id: r.current.as_ref().map(|c| format!("runc://{}", c.id)),
            ready,
            started: Some(started),
            restart_count: r.restart_count,
            state: Some(state),
            last_state: Some(ContainerState { terminated: r.last.clone(), ..Default::default() }),
            ..Default::default()
        }
    }

    /// Computes the status and writes it when it changed.
    async fn write_status(&mut self, pod: &Pod, terminal: bool) {
        let Some(spec) = pod.spec.as_ref() else { return };
        let init: Vec<ContainerStatus> =
            spec.init_containers.iter().flatten().map(|c| self.container_status(c, true)).collect();
        let mut statuses: Vec<ContainerStatus> =
            spec.containers.iter().map(|c| self.container_status(c, false)).collect();
        if terminal {
            // Containers that never started are reported terminated by the kubelet
            // once the pod is finished.
            for s in statuses.iter_mut() {
                if s.state.as_ref().is_some_and(|st| st.waiting.is_some()) {
                    s.state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 137,
                            reason: Some("ContainerStatusUnknown".into()),
                            message: Some("The container could not be located when the pod was terminated".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
            }
        }
        let facts = self.facts(pod);
        let host_ip = self.ctx.node.identity.ip.to_string();
        let previous = self.last_status.clone().or_else(|| pod.status.clone());
        let status = crate::status::pod_status(crate::status::StatusInput {
            spec,
            init,
            statuses,
            previous: previous.as_ref(),
            pod_ips: &facts.pod_ips,
            host_ip: &host_ip,
            start_time: self.start_time,
            sandbox_ready: self.sandbox.is_some() && !terminal && !self.released,
            terminal,
            now: Timestamp::now(),
        });
        if self.last_status.as_ref().is_some_and(|s| !crate::status::differs(s, &status)) {
            return;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({"metadata": {"uid": self.uid}, "status": status});
        // Only the answer's status is read: the pod echoed back is what was written.
        let url = kube::core::Request::new(<Pod as kube::Resource>::url_path(&(), Some(&ns)));
        let request = url.patch_subresource("status", &name, &PatchParams::default(), &Patch::Merge(&patch));
        let began = Instant::now();
        let permit = self.ctx.status_writes.acquire().await;
        let result = informer::write::status_only(&self.ctx.client, request).await;
        drop(permit);
        tracing::debug!(
            pod = %pod_desc(pod),
            phase = status.phase.as_deref().unwrap_or(""),
            patch_ms = began.elapsed().as_secs_f64() * 1e3,
            "status written"
        );
        match result {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(pod = %pod_desc(pod), error = %e, "writing pod status failed"),
        }
    }

    fn lookup_entries(&self) -> Vec<crate::lookup::ContainerEntry> {
        self.records
            .iter()
            .filter_map(|(name, r)| {
                let c = r.current.as_ref()?;
                Some(crate::lookup::ContainerEntry {
                    name: name.clone(),
                    container_id: c.id.clone(),
                    restart_count: r.restart_count,
                    running: c.exit.is_none(),
                    init: r.init,
                })
            })
            .collect()
    }
}

/// The pod's grace period: `terminationGracePeriodSeconds`, 30 by default.
pub fn grace_period(pod: &Pod) -> i64 {
    pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(DEFAULT_GRACE)
}

/// SIGTERM, wait until `deadline`, SIGKILL; waits on the exit file.
async fn stop_container(runtime: &dyn runtime::Runtime, c: &Current, deadline: Instant) {
    if read_exit(&c.bundle).is_some() {
        return;
    }
    let signal = 15;
    if Instant::now() < deadline {
        let _ = runtime.kill(&c.id, signal, false).await;
        while Instant::now() < deadline {
            if read_exit(&c.bundle).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = runtime.kill(&c.id, 9, true).await;
    let until = Instant::now() + KILL_WAIT;
    while Instant::now() < until {
        if read_exit(&c.bundle).is_some() {
            return;
        }
        match runtime.state(&c.id).await {
            Ok(s) if s.status == runtime::Status::Stopped => return,
            Err(_) => return,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes a stopped container and its root filesystem.
async fn remove_container(config: &crate::Config, runtime: &dyn runtime::Runtime, c: &Current) {
    if let Err(e) = runtime.delete(&c.id, true).await {
        tracing::warn!(container = %c.id, error = %e, "deleting a container failed");
    }
    let bundle = c.bundle.clone();
    let dirs = RootfsDirs::new(&bundle, &config.layer_dir(&c.id));
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = runtime::snapshot::remove_rootfs_at(&dirs) {
            tracing::warn!(bundle = %bundle.display(), error = %e, "removing a root filesystem failed");
        }
        let _ = std::fs::remove_dir_all(&bundle);
    })
    .await;
}

/// The probe loop of one container: startup first, then liveness and readiness.
async fn run_probes(
    c: Container,
    target: Target,
    results: Arc<Mutex<ProbeResults>>,
    notify: Arc<Notify>,
    recorder: controllers::events::Recorder,
    reference: ObjectReference,
) {
    let started_at = tokio::time::Instant::now();
    let publish = |warning: bool, reason: &str, message: String| {
        let kind = if warning { EventType::Warning } else { EventType::Normal };
        let ev = event(kind, reason, reason, message);
        let recorder = recorder.clone();
        let reference = reference.clone();
        tokio::spawn(async move {
            let _ = recorder.publish(&ev, &reference).await;
        });
    };
    let one = |kind: Kind, p: k8s_openapi::api::core::v1::Probe| {
        let c = c.clone();
        let target = target.clone();
        let results = results.clone();
        let notify = notify.clone();
        async move {
            let timing = Timing::of(&p);
            let mut state = ProbeState::new(kind);
            tokio::time::sleep_until(started_at + timing.initial_delay).await;
            loop {
                let outcome = probe::run(&p, &c, &target).await;
                match &outcome {
                    Outcome::Failure(m) => {
                        publish(true, "Unhealthy", format!("{} probe failed: {}", kind.title(), m.trim_end()))
                    }
                    Outcome::Error(m) => publish(true, "Unhealthy", format!("{} probe errored: {m}", kind.title())),
                    Outcome::Success => {}
                }
                if let Some(now_ok) = state.record(&outcome, &timing) {
                    let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                    match (kind, now_ok) {
                        (Kind::Readiness, ok) => r.ready = ok,
                        (Kind::Startup, true) => r.started = true,
                        (Kind::Startup, false) | (Kind::Liveness, false) => {
                            let what = if kind == Kind::Startup { "startup" } else { "liveness" };
                            r.kill = Some(format!("Container {} failed {what} probe, will be restarted", c.name));
                        }
                        (Kind::Liveness, true) => {}
                    }
                    drop(r);
                    notify.notify_one();
                }
                // A failed liveness probe ends with the container.
                if kind == Kind::Liveness && !state.result {
                    return;
                }
                tokio::time::sleep(timing.period).await;
            }
        }
    };
    if let Some(p) = c.startup_probe.clone() {
        // The startup probe starts failing; it must succeed once before the others run.
        let mut s = ProbeState::new(Kind::Startup);
        let timing = Timing::of(&p);
        tokio::time::sleep_until(started_at + timing.initial_delay).await;
        loop {
            let outcome = probe::run(&p, &c, &target).await;
            match &outcome {
                Outcome::Failure(m) => publish(true, "Unhealthy", format!("Startup probe failed: {}", m.trim_end())),
                Outcome::Error(m) => publish(true, "Unhealthy", format!("Startup probe errored: {m}")),
                Outcome::Success => {}
            }
            s.record(&outcome, &timing);
            if s.result {
                results.lock().unwrap_or_else(|e| e.into_inner()).started = true;
                notify.notify_one();
                break;
            }
            if matches!(outcome, Outcome::Failure(_)) && s.failures() >= timing.failure_threshold {
                results.lock().unwrap_or_else(|e| e.into_inner()).kill =
                    Some(format!("Container {} failed startup probe, will be restarted", c.name));
                notify.notify_one();
                return;
            }
            tokio::time::sleep(timing.period).await;
        }
    }
    let live = c.liveness_probe.clone().map(|p| one(Kind::Liveness, p));
    let ready = c.readiness_probe.clone().map(|p| one(Kind::Readiness, p));
    match (live, ready) {
        (Some(l), Some(r)) => {
            tokio::join!(l, r);
        }
        (Some(l), None) => l.await,
        (None, Some(r)) => r.await,
        (None, None) => {}
    }
}

/// Reads the container annotations a restarted agent needs from a bundle.
pub fn adopted_from(state: &runtime::ContainerState) -> Option<(String, Adopted)> {
    let bytes = std::fs::read(state.bundle.join("config.json")).ok()?;
    let spec: runtime::spec::Spec = serde_json::from_slice(&bytes).ok()?;
    let a = &spec.annotations;
    let uid = a.get(container::ANNOTATION_POD_UID)?.clone();
    let name = a.get(ANNOTATION_CONTAINER_NAME)?.clone();
    Some((
        uid,
        Adopted {
            id: state.id.clone(),
            bundle: state.bundle.clone(),
            name,
            attempt: a.get(container::ANNOTATION_RESTART_COUNT).and_then(|s| s.parse().ok()).unwrap_or(0),
            init: a.get(container::ANNOTATION_INIT).is_some_and(|s| s == "true"),
            image_ref: a.get(container::ANNOTATION_IMAGE_REF).cloned().unwrap_or_default(),
            image_id: a.get(container::ANNOTATION_IMAGE_ID).cloned().unwrap_or_default(),
            started_at: state.started_at.clone(),
            exit: state.exit.clone(),
            running: state.status == runtime::Status::Running,
        },
    ))
}

/// Removes a container nobody wants any more (its pod is gone).
pub async fn remove_orphan(config: &crate::Config, runtime: &dyn runtime::Runtime, a: &Adopted) {
    let c = Current {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        image_ref: String::new(),
        image_id: String::new(),
        started_at: Timestamp::now(),
        exit: a.exit.clone(),
        message: MessageSource::default(),
    };
    if a.running {
        stop_container(runtime, &c, Instant::now() + Duration::from_secs(2)).await;
    }
    remove_container(config, runtime, &c).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(path: &std::path::Path, records: &[(&str, bool)]) {
        let lines: Vec<String> = records
            .iter()
            .map(|(c, partial)| {
                format!("2024-01-01T00:00:00.000000000Z stdout {} {c}", if *partial { "P" } else { "F" })
            })
            .collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn termination_messages_as_the_kubelet_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join("0.termination-log"), dir.path().join("0.log"));
        write_log(&log, &[("first", false), ("DO", true), ("NE", true)]);
        let both = MessageSource { file: Some(file.clone()), fallback_log: Some(log.clone()) };
        // Nothing in the file: the log only when the container failed.
        std::fs::write(&file, b"").unwrap();
        assert_eq!(termination_message(&both, 0), None);
        assert_eq!(termination_message(&both, 1).as_deref(), Some("first\nDONE"));
        let file_only = MessageSource { file: Some(file.clone()), fallback_log: None };
        assert_eq!(termination_message(&file_only, 1), None);
        // The file wins, up to 4 KiB of it.
        std::fs::write(&file, "m".repeat(5000)).unwrap();
        assert_eq!(termination_message(&both, 1).map(|m| m.len()), Some(4096));
        // A missing file is no message.
        assert_eq!(
            termination_message(&MessageSource { file: Some(dir.path().join("none")), fallback_log: None }, 1),
            None
        );
    }

    #[test]
    fn the_message_source_follows_the_containers_policy_also_for_init_containers() {
        let pod: Pod = serde_json::from_value(json!({"spec": {
            "initContainers": [{"name": "setup", "terminationMessagePolicy": "FallbackToLogsOnError"}],
            "containers": [{"name": "app"}, {"name": "tail", "terminationMessagePolicy": "FallbackToLogsOnError"}]
        }}))
        .unwrap();
        let dir = std::path::Path::new("/p");
        let app = message_source(dir, &pod, "app", 2);
        assert_eq!(app.file, Some(PathBuf::from("/p/app/2.termination-log")));
        assert_eq!(app.fallback_log, None);
        assert_eq!(message_source(dir, &pod, "tail", 0).fallback_log, Some(PathBuf::from("/p/tail/0.log")));
        assert_eq!(message_source(dir, &pod, "setup", 1).fallback_log, Some(PathBuf::from("/p/setup/1.log")));
        assert_eq!(message_source(dir, &pod, "gone", 0).fallback_log, None);
    }

    #[test]
    fn a_log_fallback_is_its_last_80_lines_and_2_kib() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let records: Vec<(&str, bool)> = lines.iter().map(|l| (l.as_str(), false)).collect();
        write_log(&log, &records);
        let tail = log_tail(&log);
        assert!(tail.starts_with("line 20\n") && tail.ends_with("line 99\n"), "{tail}");
        assert_eq!(tail.lines().count(), 80);
        let long = "y".repeat(3000);
        write_log(&log, &[(long.as_str(), false)]);
        assert_eq!(log_tail(&log).len(), MESSAGE_LOG_BYTES);
        // A log larger than what is read: its end, from whole records only.
        let many: Vec<String> = (0..20_000).map(|i| format!("entry {i:05}")).collect();
        let records: Vec<(&str, bool)> = many.iter().map(|l| (l.as_str(), false)).collect();
        write_log(&log, &records);
        assert!(std::fs::metadata(&log).unwrap().len() > MESSAGE_LOG_READ);
        let tail = log_tail(&log);
        assert!(tail.ends_with("entry 19999\n") && tail.lines().all(|l| l.starts_with("entry ")), "{tail}");
    }
}
