//! `metrics.k8s.io/v1beta1`, what `kubectl top` reads: `nodes` and `pods` (get and
//! list), served in-process the way metrics-server serves them behind the aggregator.
//!
//! Usage comes from each Ready node's agent, `GET /metrics/resource` on its kubelet
//! port over the same TLS the streaming proxy uses (see [`crate::rest::proxy`]). The
//! agent reports cumulative CPU counters; a rate needs two readings, so every node's
//! previous scrape is kept and CPU is the difference over the window between them, as
//! metrics-server computes it. Results are cached for [`RESOLUTION`] so that a burst
//! of `kubectl top` calls fans out to the nodes once; a node (or a pod) with no usable
//! pair of readings is left out, as metrics-server leaves it out.

use crate::Ctx;
use crate::wire::{self, Resp};
use api::ApiError;
use api::selector::{FieldSelector, LabelSelector};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// How long one round of scrapes answers requests (metrics-server's default
/// `--metric-resolution` is 15 s).
pub const RESOLUTION: Duration = Duration::from_secs(10);
/// A previous reading older than this is not used for a rate: the average would hide
/// what the node does now. A fresh pair is taken instead.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);
/// The gap between the two readings of a fresh pair.
pub const FRESH_PAIR_GAP: Duration = Duration::from_secs(1);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// An agent's answer larger than this is refused (a node runs at most a few hundred
/// containers, a few hundred bytes each).
const MAX_SCRAPE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("dial tcp {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("tls to {addr}: {message}")]
    Tls { addr: String, message: String },
    #[error("request to {addr}: {message}")]
    Http { addr: String, message: String },
    #[error("{addr} answered {status}")]
    Status { addr: String, status: u16 },
    #[error("{addr} sent more than {MAX_SCRAPE} bytes")]
    TooLarge { addr: String },
    #[error("{addr} did not answer within {SCRAPE_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("parsing the metrics of {addr}: {source}")]
    Parse { addr: String, source: ParseError },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// One reading: when, cumulative CPU, working set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    pub timestamp_ms: i64,
    pub cpu_ns: Option<u64>,
    pub memory: Option<u64>,
}

/// Namespace, pod, container.
pub type ContainerKey = (String, String, String);

/// What one scrape of one node said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeScrape {
    pub node: Option<Point>,
    pub containers: BTreeMap<ContainerKey, Point>,
}

fn parse_labels(s: &str, line: usize) -> Result<(BTreeMap<String, String>, &str), ParseError> {
    let err = |m: &str| ParseError { line, message: m.to_string() };
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or_else(|| err("a label without a value"))?;
        let name = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start().strip_prefix('"').ok_or_else(|| err("a label value without quotes"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(err("an unfinished escape")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(err("an unterminated label value")),
            }
        };
        labels.insert(name, value);
        rest = &rest[end + 1..];
    }
}

/// Parses the kubelet's `/metrics/resource` exposition (Prometheus text format 0.0.4),
/// keeping the series `kubectl top` needs. Samples without a timestamp take `now_ms`.
pub fn parse_resource_metrics(text: &str, now_ms: i64) -> Result<NodeScrape, ParseError> {
    let mut out = NodeScrape::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        let name = &line[..name_end];
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after, n)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let mut fields = rest.split_whitespace();
        let value: f64 = fields
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ParseError { line: n, message: format!("no value for {name}") })?;
        let timestamp_ms = match fields.next() {
            Some(t) => t.parse().map_err(|_| ParseError { line: n, message: format!("bad timestamp {t:?}") })?,
            None => now_ms,
        };
        if !value.is_finite() || value < 0.0 {
            continue;
        }
        let cpu = (value * 1e9).round() as u64;
        let bytes = value.round() as u64;
        let point = match name {
            "node_cpu_usage_seconds_total" | "node_memory_working_set_bytes" => {
                out.node.get_or_insert(Point { timestamp_ms, ..Point::default() })
            }
            "container_cpu_usage_seconds_total" | "container_memory_working_set_bytes" => {
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                let key = (label("namespace"), label("pod"), label("container"));
                if key.0.is_empty() || key.1.is_empty() || key.2.is_empty() {
                    continue;
                }
                out.containers.entry(key).or_insert(Point { timestamp_ms, ..Point::default() })
            }
            _ => continue,
        };
        // The CPU reading's time is the one a rate needs.
        if name.ends_with("cpu_usage_seconds_total") {
            point.cpu_ns = Some(cpu);
            point.timestamp_ms = timestamp_ms;
        } else {
            point.memory = Some(bytes);
        }
    }
    Ok(out)
}

/// Usage over a window, as a NodeMetrics or a container of a PodMetrics carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub timestamp_ms: i64,
    pub window_ms: i64,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// CPU between two readings as a rate; `None` when the counter went back (a new
/// container under the same name), no time passed, or a reading is incomplete.
pub fn usage_between(prev: &Point, last: &Point) -> Option<Usage> {
    let (c0, c1, memory) = (prev.cpu_ns?, last.cpu_ns?, last.memory?);
    let window_ms = last.timestamp_ms.checked_sub(prev.timestamp_ms).filter(|w| *w > 0)?;
    let used = c1.checked_sub(c0)?;
    let cpu_nanocores = u64::try_from(u128::from(used) * 1000 / window_ms as u128).ok()?;
    Some(Usage { timestamp_ms: last.timestamp_ms, window_ms, cpu_nanocores, memory_bytes: memory })
}

/// A pod's usage: the earliest timestamp of its containers and their usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub timestamp_ms: i64,
    pub window_ms: i64,
    pub containers: Vec<(String, Usage)>,
}

/// What two scrapes of one node yield.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeResult {
    pub node: Option<Usage>,
    pub pods: BTreeMap<(String, String), PodUsage>,
    /// Whether everything in the later scrape had a usable earlier reading.
    pub complete: bool,
}

/// Rates from two scrapes of one node. A pod is reported only when every container
/// of it has a rate (metrics-server does the same, so that a pod's sum is whole).
pub fn compute(prev: &NodeScrape, last: &NodeScrape) -> NodeResult {
    let node = match (&prev.node, &last.node) {
        (Some(p), Some(l)) => usage_between(p, l),
        _ => None,
    };
    let mut complete = node.is_some();
    let mut pods: BTreeMap<(String, String), Option<PodUsage>> = BTreeMap::new();
    for ((ns, pod, container), point) in &last.containers {
        let key = (ns.clone(), pod.clone());
        let usage =
            prev.containers.get(&(ns.clone(), pod.clone(), container.clone())).and_then(|p| usage_between(p, point));
        let entry = pods
            .entry(key)
            .or_insert_with(|| Some(PodUsage { timestamp_ms: i64::MAX, window_ms: 0, containers: Vec::new() }));
        match (usage, entry.as_mut()) {
            (Some(u), Some(p)) => {
                if u.timestamp_ms < p.timestamp_ms {
                    p.timestamp_ms = u.timestamp_ms;
                    p.window_ms = u.window_ms;
                }
                p.containers.push((container.clone(), u));
            }
            (None, _) => {
                complete = false;
                *entry = None;
            }
            (Some(_), None) => {}
        }
    }
    let pods = pods.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    NodeResult { node, pods, complete }
}

/// One round of usage for the whole cluster.
#[derive(Debug, Default)]
pub struct Computed {
    pub nodes: BTreeMap<String, Usage>,
    pub pods: BTreeMap<(String, String), PodUsage>,
}

struct Round {
    computed: Arc<Computed>,
    at: Instant,
}

/// The last scrape of every node, and the last round computed from them.
#[derive(Default)]
pub struct Cache {
    state: tokio::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    round: Option<Round>,
    last: HashMap<String, (NodeScrape, Instant)>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Reads one agent's `/metrics/resource`.
pub async fn scrape(tls: Arc<rustls::ClientConfig>, host: &str, port: u16) -> Result<NodeScrape, ScrapeError> {
    let addr = join_host_port(host, port);
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| ScrapeError::Connect { addr: addr.clone(), message: e.to_string() })?;
        let _ = tcp.set_nodelay(true);
        let tls_err = |m: String| ScrapeError::Tls { addr: addr.clone(), message: m };
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
            Err(_) => rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| tls_err(e.to_string()))?,
        };
        let stream =
            tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| tls_err(e.to_string()))?;
        let http_err = |e: &dyn std::fmt::Display| ScrapeError::Http { addr: addr.clone(), message: e.to_string() };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| http_err(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(Method::GET)
            .uri("/metrics/resource")
            .header(header::HOST, &addr)
            .header(header::ACCEPT, "text/plain")
            .body(Empty::<Bytes>::new())
            .map_err(|e| http_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| http_err(&e))?;
        if resp.status() != StatusCode::OK {
            return Err(ScrapeError::Status { addr: addr.clone(), status: resp.status().as_u16() });
        }
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| http_err(&e))?.into_data() {
                text.extend_from_slice(&data);
                if text.len() > MAX_SCRAPE {
                    return Err(ScrapeError::TooLarge { addr: addr.clone() });
                }
            }
        }
        parse_resource_metrics(&String::from_utf8_lossy(&text), now_ms())
            .map_err(|source| ScrapeError::Parse { addr: addr.clone(), source })
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(ScrapeError::Timeout { addr: addr.clone() }))
}

/// Whether a node reports Ready.
pub fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

async fn list(ctx: &Ctx, res: &api::Resource, namespace: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let resp = ctx.objects.range(store::RangeRequest::prefix(&res.storage_list_prefix(namespace))).await?;
    resp.kvs.iter().map(|kv| crate::objects::decode_as(res, kv)).collect()
}

fn core(plural: &str) -> Result<&'static api::Resource, ApiError> {
    api::registry::find("", "v1", plural).ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// Scrapes every Ready node concurrently.
async fn scrape_nodes(
    tls: &Arc<rustls::ClientConfig>,
    targets: &[(String, String, u16)],
) -> HashMap<String, NodeScrape> {
    let mut set = tokio::task::JoinSet::new();
    for (name, host, port) in targets.iter().cloned() {
        let tls = tls.clone();
        set.spawn(async move { (name, scrape(tls, &host, port).await) });
    }
    let mut out = HashMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((name, Ok(s))) => {
                out.insert(name, s);
            }
            Ok((name, Err(e))) => tracing::debug!(node = %name, error = %e, "metrics: scrape failed"),
            Err(e) => tracing::debug!(error = %e, "metrics: scrape task failed"),
        }
    }
    out
}

impl Cache {
    /// The current round, scraping the nodes first if the last one is older than
    /// [`RESOLUTION`]. Concurrent callers wait for the one scrape.
    pub async fn current(&self, ctx: &Ctx) -> Result<Arc<Computed>, ApiError> {
        let mut state = self.state.lock().await;
        if let Some(r) = state.round.as_ref().filter(|r| r.at.elapsed() < RESOLUTION) {
            return Ok(r.computed.clone());
        }
        let tls = ctx.kubelet_tls.clone().ok_or_else(|| ApiError::internal("no client certificate for node agents"))?;
        let nodes = list(ctx, core("nodes")?, None).await?;
        let targets: Vec<(String, String, u16)> = nodes
            .iter()
            .filter(|n| is_ready(n))
            .filter_map(|n| {
                let name = n.pointer("/metadata/name")?.as_str()?.to_string();
                let (host, port) = crate::rest::proxy::agent_address(n)?;
                Some((name, host, port))
            })
            .collect();
        let first = scrape_nodes(&tls, &targets).await;
        let mut results = HashMap::new();
        let mut again = Vec::new();
        for (name, scrape) in &first {
            let usable = state.last.get(name).filter(|(_, at)| at.elapsed() <= MAX_WINDOW);
            let result = usable.map(|(prev, _)| compute(prev, scrape));
            if !result.as_ref().is_some_and(|r| r.complete) {
                again.extend(targets.iter().filter(|t| &t.0 == name).cloned());
            }
            if let Some(r) = result {
                results.insert(name.clone(), r);
            }
        }
        let mut latest: HashMap<String, NodeScrape> = first;
        if !again.is_empty() {
            // Some node (or container) has no earlier reading to make a rate with:
            // take a second one now rather than answer without it.
            tokio::time::sleep(FRESH_PAIR_GAP).await;
            for (name, second) in scrape_nodes(&tls, &again).await {
                if let Some(prev) = latest.get(&name) {
                    results.insert(name.clone(), compute(prev, &second));
                }
                latest.insert(name, second);
            }
        }
        let now = Instant::now();
        state.last = latest.into_iter().map(|(k, v)| (k, (v, now))).collect();
        let mut computed = Computed::default();
        for (name, r) in results {
            if let Some(u) = r.node {
                computed.nodes.insert(name, u);
            }
            computed.pods.extend(r.pods);
        }
        let computed = Arc::new(computed);
        state.round = Some(Round { computed: computed.clone(), at: now });
        Ok(computed)
    }
}

/// A CPU quantity in canonical decimal form: `123456n`, `250m`, `2`.
pub fn cpu_quantity(nanocores: u64) -> String {
    if nanocores == 0 {
        return "0".into();
    }
    let (mut v, mut i) = (nanocores, 0);
    const SUFFIXES: [&str; 7] = ["n", "u", "m", "", "k", "M", "G"];
    while v % 1000 == 0 && i + 1 < SUFFIXES.len() {
        v /= 1000;
        i += 1;
    }
    format!("{v}{}", SUFFIXES[i])
}

/// A memory quantity in canonical binary form: `10Mi`, `10244Ki`, or bytes when not a
/// multiple of 1024.
pub fn memory_quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let (mut v, mut i) = (bytes, 0);
    while v >= 1024 && v % 1024 == 0 && i + 1 < SUFFIXES.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", SUFFIXES[i])
}

/// A window as Go's `time.Duration` prints it (`metav1.Duration`): `850ms`, `1.002s`,
/// `15s`, `1m0.5s`.
pub fn go_duration(ms: i64) -> String {
    if ms <= 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms % 3_600_000 / 60_000);
    let (s, frac) = (ms % 60_000 / 1000, ms % 1000);
    let secs = if frac == 0 { format!("{s}s") } else { format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0')) };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn rfc3339(ms: i64) -> String {
    api::time::format_rfc3339(ms.div_euclid(1000))
}

fn usage_json(cpu: u64, memory: u64) -> Value {
    json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)})
}

fn metadata(obj: &Value, namespaced: bool, now: &str) -> Value {
    let mut meta =
        json!({"name": obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null), "creationTimestamp": now});
    if namespaced {
        meta["namespace"] = obj.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null);
    }
    if let Some(labels) = obj.pointer("/metadata/labels").filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
        meta["labels"] = labels.clone();
    }
    meta
}

/// A NodeMetrics for a Node, if it has usage.
pub fn node_metrics(node: &Value, computed: &Computed, now: &str) -> Option<Value> {
    let name = node.pointer("/metadata/name")?.as_str()?;
    let u = computed.nodes.get(name)?;
    Some(json!({
        "metadata": metadata(node, false, now),
        "timestamp": rfc3339(u.timestamp_ms),
        "window": go_duration(u.window_ms),
        "usage": usage_json(u.cpu_nanocores, u.memory_bytes),
    }))
}

/// A PodMetrics for a Pod, if it has usage.
pub fn pod_metrics(pod: &Value, computed: &Computed, now: &str) -> Option<Value> {
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let ns = pod.pointer("/metadata/namespace")?.as_str()?;
    let u = computed.pods.get(&(ns.to_string(), name.to_string()))?;
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|(c, usage)| json!({"name": c, "usage": usage_json(usage.cpu_nanocores, usage.memory_bytes)}))
        .collect();
    Some(json!({
        "metadata": metadata(pod, true, now),
        "timestamp": rfc3339(u.timestamp_ms),
        "window": go_duration(u.window_ms),
        "containers": containers,
    }))
}

/// What a path under `/apis/metrics.k8s.io/v1beta1/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Nodes { name: Option<String> },
    Pods { namespace: Option<String>, name: Option<String> },
}

pub fn parse_target(rest: &[&str]) -> Option<Target> {
    let s = |v: &str| Some(v.to_string());
    match rest {
        ["nodes"] => Some(Target::Nodes { name: None }),
        ["nodes", name] => Some(Target::Nodes { name: s(name) }),
        ["pods"] => Some(Target::Pods { namespace: None, name: None }),
        ["namespaces", ns, "pods"] => Some(Target::Pods { namespace: s(ns), name: None }),
        ["namespaces", ns, "pods", name] => Some(Target::Pods { namespace: s(ns), name: s(name) }),
        _ => None,
    }
}

fn selectors(query: Option<&str>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let q = crate::query::Query::parse(query)?;
    if q.watch {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    }
    let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.field_selector.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    for t in &fields.terms {
        if !matches!(t.field.as_str(), "metadata.name" | "metadata.namespace") {
            return Err(ApiError::bad_request(format!("field label not supported: {}", t.field)));
        }
    }
    Ok((labels, fields))
}

/// Whether an object passes the selectors (metrics-server filters on the object's
/// labels, name and namespace).
pub fn selected(obj: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    let field = |f: &str| match f {
        "metadata.name" => obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string),
        "metadata.namespace" => obj.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    labels.matches_object(obj) && fields.matches(field).unwrap_or(false)
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found"))
}

/// The sum over a NodeMetrics' or PodMetrics' usage: (nanocores, bytes).
fn totals(item: &Value, computed: &Computed) -> (u64, u64) {
    let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    match item.pointer("/metadata/namespace").and_then(Value::as_str) {
        None => computed.nodes.get(&name).map_or((0, 0), |u| (u.cpu_nanocores, u.memory_bytes)),
        Some(ns) => computed.pods.get(&(ns.to_string(), name)).map_or((0, 0), |p| {
            p.containers.iter().fold((0, 0), |(c, m), (_, u)| (c + u.cpu_nanocores, m + u.memory_bytes))
        }),
    }
}

/// The Table `kubectl get nodes.metrics.k8s.io` shows, with metrics-server's columns.
pub fn table(items: &[Value], computed: &Computed, include: Option<&str>) -> Value {
    let column = |name: &str, format: &str| json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0});
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let (cpu, memory) = totals(item, computed);
            let name = item.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            let window = item.get("window").cloned().unwrap_or(Value::Null);
            let mut row = json!({"cells": [name, cpu_quantity(cpu), memory_quantity(memory), window]});
            if let Some(o) = crate::table::row_object(item, include) {
                row["object"] = o;
            }
            row
        })
        .collect();
    let mut name = column("Name", "name");
    name["description"] = json!("Name of the resource");
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [name, column("cpu", "quantity"), column("memory", "quantity"), column("Window", "duration")],
        "rows": rows,
    })
}

/// Answers a request under `/apis/metrics.k8s.io/v1beta1/`.
pub async fn handle(ctx: &Arc<Ctx>, rest: &[&str], req: Request<wire::ReqBody>) -> Resp {
    // Only the head is read; a body is not `Sync`, so it stays out of the future.
    let (head, _) = req.into_parts();
    match answer(ctx, rest, &head).await {
        Ok(v) => wire::ok(&v),
        Err(e) => wire::error(&e),
    }
}

async fn answer(ctx: &Arc<Ctx>, rest: &[&str], req: &http::request::Parts) -> Result<Value, ApiError> {
    let target = parse_target(rest).ok_or_else(ApiError::no_route)?;
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    }
    let (labels, fields) = selectors(req.uri.query())?;
    let accept = req.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let as_table = crate::table::wanted(accept);
    let include = crate::query::Query::parse(req.uri.query())?.include_object;
    let now = api::time::now_rfc3339();
    let (items, computed, single) = match target {
        Target::Nodes { name: Some(name) } => {
            let nodes = core("nodes")?;
            let (node, _) = ctx
                .objects
                .get(nodes, &nodes.storage_key(None, &name))
                .await?
                .ok_or_else(|| ApiError::not_found(nodes, &name))?;
            let computed = ctx.resource_metrics.current(ctx).await?;
            let m =
                node_metrics(&node, &computed, &now).ok_or_else(|| not_found("nodemetrics.metrics.k8s.io", &name))?;
            (vec![m], computed, Some("NodeMetrics"))
        }
        Target::Nodes { name: None } => {
            let mut nodes = list(ctx, core("nodes")?, None).await?;
            nodes.retain(|n| selected(n, &labels, &fields));
            let computed = ctx.resource_metrics.current(ctx).await?;
            let items: Vec<Value> = nodes.iter().filter_map(|n| node_metrics(n, &computed, &now)).collect();
            (items, computed, None)
        }
        Target::Pods { namespace: Some(ns), name: Some(name) } => {
            let pods = core("pods")?;
            let (pod, _) = ctx
                .objects
                .get(pods, &pods.storage_key(Some(&ns), &name))
                .await?
                .ok_or_else(|| ApiError::not_found(pods, &name))?;
            let computed = ctx.resource_metrics.current(ctx).await?;
            let m = pod_metrics(&pod, &computed, &now)
                .ok_or_else(|| not_found("podmetrics.metrics.k8s.io", &format!("{ns}/{name}")))?;
            (vec![m], computed, Some("PodMetrics"))
        }
        Target::Pods { namespace, name: _ } => {
            let mut pods = list(ctx, core("pods")?, namespace.as_deref()).await?;
            pods.retain(|p| selected(p, &labels, &fields));
            let computed = ctx.resource_metrics.current(ctx).await?;
            let items: Vec<Value> = pods.iter().filter_map(|p| pod_metrics(p, &computed, &now)).collect();
            (items, computed, None)
        }
    };
    let kind = match (&single, rest.first()) {
        (Some(k), _) => k.to_string(),
        (None, Some(&"nodes")) => "NodeMetricsList".to_string(),
        (None, _) => "PodMetricsList".to_string(),
    };
    let mut items = items;
    if as_table {
        // Rows carry their objects whole or as metadata, each with its kind.
        let item_kind = kind.trim_end_matches("List").to_string();
        for i in &mut items {
            i["kind"] = json!(item_kind);
            i["apiVersion"] = json!(API_VERSION);
        }
        return Ok(table(&items, &computed, include.as_deref()));
    }
    if single.is_some() {
        let mut m = items.pop().unwrap_or(Value::Null);
        m["kind"] = json!(kind);
        m["apiVersion"] = json!(API_VERSION);
        return Ok(m);
    }
    Ok(json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}))
}

/// The resources as discovery lists them: (plural, kind, namespaced).
const RESOURCES: [(&str, &str, bool); 2] = [("nodes", "NodeMetrics", false), ("pods", "PodMetrics", true)];
const VERBS: [&str; 2] = ["get", "list"];

/// The group's entry in the aggregated `/apis` document.
pub fn aggregated_group() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": "", "version": "", "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": "",
                "verbs": VERBS,
            })
        })
        .collect();
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}],
    })
}

/// The group in the legacy `/apis` list and at `/apis/metrics.k8s.io`.
pub fn group_entry() -> Value {
    let v = json!({"groupVersion": API_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [v.clone()], "preferredVersion": v})
}

/// `GET /apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": VERBS})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 1.500000000 1700000000000
container_cpu_usage_seconds_total{container="side",namespace="default",pod="web"} 0.25 1700000000000
container_cpu_usage_seconds_total{container="x",namespace="other",pod="we\"ird"} 3 1700000000000
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 1.048576e+07 1700000000000
container_memory_working_set_bytes{container="side",namespace="default",pod="web"} 4096 1700000000000
container_memory_working_set_bytes{container="x",namespace="other",pod="we\"ird"} 8192 1700000000000
node_cpu_usage_seconds_total 100.5 1700000000001
node_memory_working_set_bytes 1073741824 1700000000001
container_start_time_seconds{container="app",namespace="default",pod="web"} 1.7e+09 1700000000000
resource_scrape_error 0
"#;

    fn key(ns: &str, pod: &str, c: &str) -> ContainerKey {
        (ns.into(), pod.into(), c.into())
    }

    #[test]
    fn parses_the_kubelet_exposition() {
        let s = parse_resource_metrics(SCRAPE, 5).unwrap();
        assert_eq!(
            s.node,
            Some(Point { timestamp_ms: 1_700_000_000_001, cpu_ns: Some(100_500_000_000), memory: Some(1 << 30) })
        );
        assert_eq!(s.containers.len(), 3);
        let app = s.containers[&key("default", "web", "app")];
        assert_eq!(
            app,
            Point { timestamp_ms: 1_700_000_000_000, cpu_ns: Some(1_500_000_000), memory: Some(10_485_760) }
        );
        assert_eq!(s.containers[&key("other", "we\"ird", "x")].cpu_ns, Some(3_000_000_000));
        // Without timestamps, samples take the scrape's time.
        let bare =
            parse_resource_metrics("node_cpu_usage_seconds_total 2\nnode_memory_working_set_bytes 3\n", 77).unwrap();
        assert_eq!(bare.node, Some(Point { timestamp_ms: 77, cpu_ns: Some(2_000_000_000), memory: Some(3) }));
    }

    #[test]
    fn rejects_broken_lines() {
        assert_eq!(parse_resource_metrics("node_cpu_usage_seconds_total\n", 0).unwrap_err().line, 1);
        assert!(parse_resource_metrics("# ok\nx{a=\"b} 1\n", 0).is_err());
        assert!(parse_resource_metrics("x{a=b} 1\n", 0).is_err());
        assert!(parse_resource_metrics("x 1 notatime\n", 0).is_err());
        // Containers without their identity, and unknown series, are ignored.
        let s = parse_resource_metrics("container_cpu_usage_seconds_total{container=\"a\"} 1 1\nfoo 1\n", 0).unwrap();
        assert!(s.containers.is_empty() && s.node.is_none());
    }

    fn point(t: i64, cpu: u64, mem: u64) -> Point {
        Point { timestamp_ms: t, cpu_ns: Some(cpu), memory: Some(mem) }
    }

    #[test]
    fn rates_between_two_readings() {
        // A quarter core for four seconds.
        let u = usage_between(&point(1000, 0, 1), &point(5000, 1_000_000_000, 42)).unwrap();
        assert_eq!(u, Usage { timestamp_ms: 5000, window_ms: 4000, cpu_nanocores: 250_000_000, memory_bytes: 42 });
        assert!(usage_between(&point(1000, 5, 1), &point(1000, 6, 1)).is_none(), "no time passed");
        assert!(usage_between(&point(1000, 5, 1), &point(2000, 4, 1)).is_none(), "the counter went back");
        let no_mem = Point { memory: None, ..point(2000, 9, 0) };
        assert!(usage_between(&point(1000, 5, 1), &no_mem).is_none());
    }

    #[test]
    fn pods_are_whole_or_left_out() {
        let mut prev = NodeScrape { node: Some(point(0, 0, 0)), ..Default::default() };
        let mut last = NodeScrape { node: Some(point(2000, 1_000_000_000, 100)), ..Default::default() };
        prev.containers.insert(key("a", "web", "app"), point(0, 0, 0));
        prev.containers.insert(key("a", "web", "side"), point(500, 0, 0));
        last.containers.insert(key("a", "web", "app"), point(2000, 2_000_000_000, 4096));
        last.containers.insert(key("a", "web", "side"), point(1500, 1_000_000, 8192));
        // A pod whose container is new has no rate yet.
        last.containers.insert(key("a", "new", "c"), point(2000, 5, 5));
        let r = compute(&prev, &last);
        assert!(!r.complete);
        assert_eq!(r.node.unwrap().cpu_nanocores, 500_000_000);
        assert_eq!(r.pods.len(), 1);
        let web = &r.pods[&("a".to_string(), "web".to_string())];
        assert_eq!((web.timestamp_ms, web.window_ms), (1500, 1000), "the earliest container's time");
        let names: Vec<&str> = web.containers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["app", "side"]);
        assert_eq!(web.containers[0].1.cpu_nanocores, 1_000_000_000);
        assert_eq!(web.containers[1].1.cpu_nanocores, 1_000_000);
        last.containers.remove(&key("a", "new", "c"));
        assert!(compute(&prev, &last).complete);
        assert!(!compute(&NodeScrape::default(), &last).complete, "no earlier node reading");
    }

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(cpu_quantity(1_234_567), "1234567n");
        assert_eq!(cpu_quantity(5_000_000), "5m");
        assert_eq!(cpu_quantity(1_500_000_000), "1500m");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(7_000), "7u");
        assert_eq!(memory_quantity(10_485_760), "10Mi");
        assert_eq!(memory_quantity(10_489_856), "10244Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(memory_quantity(1025), "1025");
        assert_eq!(memory_quantity(0), "0");
    }

    #[test]
    fn windows_print_as_go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(850), "850ms");
        assert_eq!(go_duration(1002), "1.002s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(15_000), "15s");
        assert_eq!(go_duration(60_500), "1m0.5s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
    }

    #[test]
    fn objects_carry_the_metadata_kubectl_reads() {
        let mut computed = Computed::default();
        let u = Usage {
            timestamp_ms: 1_700_000_000_900,
            window_ms: 1002,
            cpu_nanocores: 1_234_567,
            memory_bytes: 10_485_760,
        };
        computed.nodes.insert("n1".into(), u);
        computed.pods.insert(
            ("default".into(), "web".into()),
            PodUsage { timestamp_ms: u.timestamp_ms, window_ms: u.window_ms, containers: vec![("app".into(), u)] },
        );
        let now = "2024-01-01T00:00:00Z";
        let node = json!({"metadata": {"name": "n1", "labels": {"k": "v"}}});
        assert_eq!(
            node_metrics(&node, &computed, now).unwrap(),
            json!({
                "metadata": {"name": "n1", "creationTimestamp": now, "labels": {"k": "v"}},
                "timestamp": "2023-11-14T22:13:20Z", "window": "1.002s",
                "usage": {"cpu": "1234567n", "memory": "10Mi"},
            })
        );
        assert!(node_metrics(&json!({"metadata": {"name": "n2"}}), &computed, now).is_none());
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "labels": {}}});
        let m = pod_metrics(&pod, &computed, now).unwrap();
        assert_eq!(m["metadata"], json!({"name": "web", "namespace": "default", "creationTimestamp": now}));
        assert_eq!(m["containers"], json!([{"name": "app", "usage": {"cpu": "1234567n", "memory": "10Mi"}}]));
        let elsewhere = json!({"metadata": {"name": "web", "namespace": "other"}});
        assert!(pod_metrics(&elsewhere, &computed, now).is_none());
    }

    #[test]
    fn tables_sum_a_pods_containers() {
        let mut computed = Computed::default();
        let u = |cpu, mem| Usage { timestamp_ms: 0, window_ms: 15_000, cpu_nanocores: cpu, memory_bytes: mem };
        computed.nodes.insert("n1".into(), u(2_000_000_000, 1 << 30));
        computed.pods.insert(
            ("d".into(), "web".into()),
            PodUsage {
                timestamp_ms: 0,
                window_ms: 15_000,
                containers: vec![("a".into(), u(1_000_000, 1 << 20)), ("b".into(), u(4_000_000, 1 << 20))],
            },
        );
        let now = "2024-01-01T00:00:00Z";
        let pod = pod_metrics(&json!({"metadata": {"name": "web", "namespace": "d"}}), &computed, now).unwrap();
        let node = node_metrics(&json!({"metadata": {"name": "n1"}}), &computed, now).unwrap();
        let t = table(&[pod], &computed, None);
        assert_eq!(t["kind"], "Table");
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["Name", "cpu", "memory", "Window"]);
        assert_eq!(t["rows"][0]["cells"], json!(["web", "5m", "2Mi", "15s"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "d");
        let t = table(&[node], &computed, Some("None"));
        assert_eq!(t["rows"][0]["cells"], json!(["n1", "2", "1Gi", "15s"]));
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn paths_and_selectors() {
        assert_eq!(parse_target(&["nodes"]), Some(Target::Nodes { name: None }));
        assert_eq!(parse_target(&["nodes", "n1"]), Some(Target::Nodes { name: Some("n1".into()) }));
        assert_eq!(parse_target(&["pods"]), Some(Target::Pods { namespace: None, name: None }));
        assert_eq!(
            parse_target(&["namespaces", "ns", "pods", "web"]),
            Some(Target::Pods { namespace: Some("ns".into()), name: Some("web".into()) })
        );
        assert_eq!(parse_target(&["namespaces", "ns", "nodes"]), None);
        assert_eq!(parse_target(&["deployments"]), None);

        let (l, f) = selectors(Some("labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dweb")).unwrap();
        let web = json!({"metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"}}});
        let db = json!({"metadata": {"name": "db", "namespace": "d", "labels": {"app": "db"}}});
        assert!(selected(&web, &l, &f));
        assert!(!selected(&db, &l, &f));
        let (l, f) = selectors(Some("labelSelector=app+in+(web,db)")).unwrap();
        assert!(selected(&web, &l, &f) && selected(&db, &l, &f));
        assert_eq!(selectors(Some("fieldSelector=spec.nodeName%3Dx")).unwrap_err().code, 400);
        assert_eq!(selectors(Some("labelSelector=%3D%3D")).unwrap_err().code, 400);
        assert_eq!(selectors(Some("watch=true")).unwrap_err().code, 405);
    }

    #[test]
    fn readiness() {
        assert!(is_ready(&json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})));
        assert!(!is_ready(&json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})));
        assert!(!is_ready(&json!({})));
    }

    #[test]
    fn discovery_documents() {
        let g = aggregated_group();
        assert_eq!(g["metadata"]["name"], GROUP);
        let resources = g["versions"][0]["resources"].as_array().unwrap();
        assert_eq!(resources[0]["responseKind"]["kind"], "NodeMetrics");
        assert_eq!(resources[1]["scope"], "Namespaced");
        assert_eq!(resources[1]["verbs"], json!(["get", "list"]));
        let l = resource_list();
        assert_eq!(l["groupVersion"], API_VERSION);
        assert_eq!(
            l["resources"][1],
            json!({"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]})
        );
        assert_eq!(group_entry()["preferredVersion"]["groupVersion"], API_VERSION);
    }
}
