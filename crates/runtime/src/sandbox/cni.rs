//! The CNI 1.0 protocol as libcni speaks it: a network configuration list we generate
//! per pod, each plugin executed with `CNI_*` variables and its configuration on stdin,
//! results chained as `prevResult`, and the plugin's JSON error surfaced with its `msg`.
//!
//! Generation and parsing are pure functions; [`exec_plugin`] runs one plugin binary on
//! the calling thread (which the caller has placed in the node's network namespace).

use super::{Cidr, PortMapping};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const CNI_VERSION: &str = "1.0.0";
/// Name of the pod network: host-local keeps its reservations under `dataDir/<name>`,
/// and portmap and bridge name their iptables chains after it and the container ID.
pub const NETWORK_NAME: &str = "rudder";
pub const LOOPBACK_NAME: &str = "cni-loopback";
/// Interface name of the pod's end of the veth pair, as Kubernetes expects.
pub const POD_IFNAME: &str = "eth0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    NotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("cannot run CNI plugin {plugin}: {source}")]
    Exec { plugin: String, source: std::io::Error },
    /// The plugin's own error result (code, msg, details), or its stderr when it printed
    /// no JSON.
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", details_suffix(details))]
    Plugin { plugin: String, command: &'static str, code: u64, msg: String, details: String },
    #[error("CNI plugin {plugin} returned an invalid result: {reason}")]
    Result { plugin: String, reason: String },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() { String::new() } else { format!(" ({details})") }
}

/// What a pod's network needs from the node configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkParams<'a> {
    pub bridge: &'a str,
    pub pod_cidr: Cidr,
    pub mtu: Option<u32>,
    /// host-local's reservations: under the sandbox state dir, so a node's IPAM state
    /// lives and dies with its sandboxes.
    pub ipam_dir: &'a Path,
}

/// The network configuration list for one pod: bridge with host-local IPAM over the
/// node's podCIDR, then portmap when the pod has host ports. The port mappings are
/// written in as libcni injects the `portMappings` capability, so that the list stored
/// with the sandbox is exactly what DEL must be sent.
pub fn network_config(p: &NetworkParams<'_>, ports: &[PortMapping]) -> Value {
    let mut bridge = json!({
        "type": "bridge",
        "bridge": p.bridge,
        "isGateway": true,
        // Masquerading is the node's own rule (see `host`), which exempts cluster_cidr
        // destinations so that pods see each other's addresses; the plugin's would not.
        "ipMasq": false,
        // A pod reaching itself through a Service or hostPort goes out and back in
        // through the same bridge port.
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": p.pod_cidr.to_string() }]],
            "routes": [{ "dst": p.pod_cidr.default_route() }],
            "dataDir": p.ipam_dir,
        },
    });
    if let Some(mtu) = p.mtu {
        bridge["mtu"] = json!(mtu);
    }
    let mut plugins = vec![bridge];
    if !ports.is_empty() {
        let mappings: Vec<Value> = ports.iter().map(port_mapping).collect();
        plugins.push(json!({
            "type": "portmap",
            "capabilities": { "portMappings": true },
            // Masquerade hairpin and localhost connections so replies come back to us.
            "snat": true,
            "runtimeConfig": { "portMappings": mappings },
        }));
    }
    json!({ "cniVersion": CNI_VERSION, "name": NETWORK_NAME, "plugins": plugins })
}

fn port_mapping(m: &PortMapping) -> Value {
    let mut v = json!({
        "hostPort": m.host_port,
        "containerPort": m.container_port,
        "protocol": m.protocol.to_ascii_lowercase(),
    });
    // An unspecified address means every address, which is portmap's default.
    if let Some(ip) = m.host_ip.filter(|ip| !ip.is_unspecified()) {
        v["hostIP"] = json!(ip.to_string());
    }
    v
}

/// The loopback network, brought up separately on `lo` as containerd does.
pub fn loopback_config() -> Value {
    json!({ "cniVersion": CNI_VERSION, "name": LOOPBACK_NAME, "plugins": [{ "type": "loopback" }] })
}

/// A plugin's stdin: its entry of the list plus the list's `cniVersion` and `name`, and
/// `prevResult` (the previous plugin's result on ADD, the cached ADD result on DEL and
/// CHECK), as libcni builds it.
pub fn plugin_stdin(list: &Value, plugin: &Value, prev_result: Option<&Value>) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("cniVersion".into(), list.get("cniVersion").cloned().unwrap_or(json!(CNI_VERSION)));
    conf.insert("name".into(), list.get("name").cloned().unwrap_or(Value::Null));
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    Value::Object(conf)
}

/// The plugin entries of a list, in ADD order.
pub fn plugins(list: &Value) -> Vec<Value> {
    list.get("plugins").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The environment of one plugin call.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: CniCommand,
    pub container_id: &'a str,
    /// Empty on DEL when the namespace is already gone; plugins then release what they
    /// hold on the host side only.
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub args: &'a str,
    pub bin_dirs: &'a [PathBuf],
}

/// `CNI_ARGS` as the kubelet's runtimes pass them (plugins that do not know a key must
/// ignore it, hence `IgnoreUnknown`).
pub fn cni_args(namespace: &str, name: &str, pod_uid: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={pod_uid};K8S_POD_UID={pod_uid}"
    )
}

pub fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    let not_found = || CniError::NotFound { plugin: plugin.to_string(), dirs: dirs.to_vec() };
    if plugin.is_empty() || plugin.contains('/') || plugin.starts_with('.') {
        return Err(not_found());
    }
    dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()).ok_or_else(not_found)
}

/// Runs one plugin and returns its result (ADD), or `None` (DEL, CHECK).
pub fn exec_plugin(inv: &Invocation<'_>, stdin: &Value) -> Result<Option<Value>, CniError> {
    exec_plugin_within(inv, stdin, PLUGIN_TIMEOUT)
}

/// [`exec_plugin`] with a deadline of `timeout`, after which the plugin is killed.
pub fn exec_plugin_within(inv: &Invocation<'_>, stdin: &Value, timeout: Duration) -> Result<Option<Value>, CniError> {
    let plugin = stdin.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let bin = find_plugin(&plugin, inv.bin_dirs)?;
    let path_var = std::env::join_paths(inv.bin_dirs).map_err(|e| CniError::Exec {
        plugin: plugin.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let mut cmd = Command::new(&bin);
    // Only what the protocol defines, plus PATH for the tools plugins run (iptables).
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
        .env("CNI_COMMAND", inv.command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns.map(Path::as_os_str).unwrap_or_default())
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", path_var)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let exec_err = |source| CniError::Exec { plugin: plugin.clone(), source };
    let mut child = cmd.spawn().map_err(exec_err)?;
    let watchdog = Watchdog::start(&child, timeout);
    let input = serde_json::to_vec(stdin).unwrap_or_default();
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin may exit before reading all of stdin; its exit status tells why.
        let _ = pipe.write_all(&input);
    }
    let out = child.wait_with_output().map_err(exec_err);
    let timed_out = watchdog.stop();
    let out = out?;
    if timed_out {
        let msg = format!("no answer within {:?}, killed", timeout);
        return Err(CniError::Plugin { plugin, command: inv.command.as_str(), code: 999, msg, details: String::new() });
    }
    if !out.status.success() {
        return Err(plugin_error(&plugin, inv.command, &out.stdout, &out.stderr, out.status.code()));
    }
    if inv.command != CniCommand::Add {
        return Ok(None);
    }
    let result: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CniError::Result { plugin: plugin.clone(), reason: e.to_string() })?;
    if !result.is_object() {
        return Err(CniError::Result { plugin, reason: "not a JSON object".into() });
    }
    Ok(Some(result))
}

/// How long one plugin call may take. A plugin that hangs (an iptables lock held
/// forever, a wedged netlink call) would otherwise hold its pod's sandbox forever.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Kills a child that outlives its deadline. It signals through a pidfd taken while the
/// child is certainly unreaped, so it can never hit a process that reused the PID.
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl Watchdog {
    fn start(child: &std::process::Child, timeout: Duration) -> Watchdog {
        let pid = rustix::process::Pid::from_raw(child.id() as i32);
        let Some(pidfd) = pid.and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
        else {
            // No pidfd (a kernel before 5.3): run without a deadline rather than fail.
            return Watchdog { done: None, thread: None };
        };
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cni-watchdog".into())
            .spawn(move || match rx.recv_timeout(timeout) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).is_ok()
                }
                _ => false,
            })
            .ok();
        Watchdog { done: Some(tx), thread }
    }

    /// Whether the watchdog killed the child.
    fn stop(mut self) -> bool {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(false)
    }
}

/// The error a failed plugin reports: its JSON error object when it printed one
/// (`{"code":7,"msg":"...","details":"..."}`), else its output as text.
pub fn plugin_error(plugin: &str, command: CniCommand, stdout: &[u8], stderr: &[u8], status: Option<i32>) -> CniError {
    let parsed: Option<Value> = serde_json::from_slice(stdout).ok();
    let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
    let (code, msg, details) = match parsed.as_ref().and_then(|v| v.get("msg")) {
        Some(_) => (
            parsed.as_ref().and_then(|v| v.get("code")).and_then(Value::as_u64).unwrap_or(999),
            field("msg").unwrap_or_default(),
            field("details").unwrap_or_default(),
        ),
        None => {
            let text =
                [stderr, stdout].iter().map(|b| String::from_utf8_lossy(b).trim().to_string()).find(|s| !s.is_empty());
            let msg = text.unwrap_or_else(|| match status {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            });
            (999, msg, String::new())
        }
    };
    CniError::Plugin { plugin: plugin.to_string(), command: command.as_str(), code, msg, details }
}

/// The pod's addresses in a CNI 1.0 result: those on interfaces inside the sandbox (an
/// `ips` entry may point at the host-side bridge or veth by index).
pub fn result_ips(plugin: &str, result: &Value) -> Result<Vec<IpAddr>, CniError> {
    let bad = |reason: String| CniError::Result { plugin: plugin.to_string(), reason };
    let interfaces = result.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut ips = Vec::new();
    for entry in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        if let Some(idx) = entry.get("interface").and_then(Value::as_u64) {
            let iface = usize::try_from(idx).ok().and_then(|i| interfaces.get(i));
            let Some(iface) = iface else {
                return Err(bad(format!("ips entry names interface {idx}, which the result does not list")));
            };
            let in_sandbox = iface.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            if !in_sandbox {
                continue;
            }
        }
        let address =
            entry.get("address").and_then(Value::as_str).ok_or_else(|| bad("ips entry without an address".into()))?;
        let ip = address.split_once('/').map_or(address, |(ip, _)| ip);
        ips.push(ip.parse().map_err(|_| bad(format!("invalid address {address:?}")))?);
    }
    if ips.is_empty() {
        return Err(bad("no IP address for the pod".into()));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(dir: &Path) -> NetworkParams<'_> {
        NetworkParams { bridge: "rudder0", pod_cidr: "10.42.3.0/24".parse().unwrap(), mtu: None, ipam_dir: dir }
    }

    #[test]
    fn bridge_with_host_local_over_the_pod_cidr() {
        let list = network_config(&params(Path::new("/var/lib/rudder/sandboxes/.cni")), &[]);
        assert_eq!(
            list,
            json!({
                "cniVersion": "1.0.0",
                "name": "rudder",
                "plugins": [{
                    "type": "bridge", "bridge": "rudder0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": "10.42.3.0/24" }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": "/var/lib/rudder/sandboxes/.cni",
                    },
                }],
            })
        );
    }

    #[test]
    fn portmap_only_with_host_ports_and_mtu_when_set() {
        let mut p = params(Path::new("/d"));
        p.mtu = Some(1450);
        p.pod_cidr = "fd00:42:3::/64".parse().unwrap();
        let ports = [
            PortMapping { host_port: 8080, container_port: 80, protocol: "TCP".into(), host_ip: None },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: "udp".into(),
                host_ip: Some("192.0.2.1".parse().unwrap()),
            },
            PortMapping {
                host_port: 9000,
                container_port: 9000,
                protocol: "tcp".into(),
                host_ip: Some("0.0.0.0".parse().unwrap()),
            },
        ];
        let list = network_config(&p, &ports);
        let plugins = plugins(&list);
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[0]["mtu"], 1450);
        assert_eq!(plugins[0]["ipam"]["routes"][0]["dst"], "::/0");
        assert_eq!(
            plugins[1],
            json!({
                "type": "portmap", "capabilities": { "portMappings": true }, "snat": true,
                "runtimeConfig": { "portMappings": [
                    { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" },
                    { "hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1" },
                    { "hostPort": 9000, "containerPort": 9000, "protocol": "tcp" },
                ]},
            })
        );
    }

    #[test]
    fn stdin_carries_version_name_and_prev_result() {
        let list = network_config(&params(Path::new("/d")), &[]);
        let plugin = &plugins(&list)[0];
        let first = plugin_stdin(&list, plugin, None);
        assert_eq!(first["cniVersion"], "1.0.0");
        assert_eq!(first["name"], "rudder");
        assert_eq!(first["type"], "bridge");
        assert!(first.get("prevResult").is_none());
        let prev = json!({ "cniVersion": "1.0.0", "ips": [] });
        assert_eq!(plugin_stdin(&list, plugin, Some(&prev))["prevResult"], prev);
        let lo = loopback_config();
        assert_eq!(
            plugin_stdin(&lo, &plugins(&lo)[0], None),
            json!({ "cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback" })
        );
    }

    #[test]
    fn ips_are_those_inside_the_sandbox() {
        // As the bridge plugin of containernetworking-plugins 1.1 prints it.
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                { "name": "rudder0", "mac": "42:d8:24:25:a9:41" },
                { "name": "vethf47e242e", "mac": "7a:e6:f8:4e:63:fb" },
                { "name": "eth0", "mac": "0a:d3:8f:99:02:06", "sandbox": "/run/netns/x" },
            ],
            "ips": [
                { "interface": 2, "address": "10.42.3.2/24", "gateway": "10.42.3.1" },
                { "interface": 0, "address": "10.42.3.1/24" },
                { "interface": 2, "address": "fd00:42:3::2/64" },
            ],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dns": {},
        });
        let ips = result_ips("bridge", &result).unwrap();
        assert_eq!(ips, vec!["10.42.3.2".parse::<IpAddr>().unwrap(), "fd00:42:3::2".parse().unwrap()]);
        // Without interface indexes every address counts.
        let bare = json!({ "cniVersion": "1.0.0", "ips": [{ "address": "10.1.0.5/16" }] });
        assert_eq!(result_ips("x", &bare).unwrap(), vec!["10.1.0.5".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_results_are_errors() {
        for bad in [
            json!({ "ips": [] }),
            json!({ "ips": [{ "interface": 5, "address": "10.0.0.2/24" }] }),
            json!({ "ips": [{ "address": "not-an-ip/24" }] }),
            json!({ "ips": [{ "gateway": "10.0.0.1" }] }),
            json!({ "interfaces": [{ "name": "br" }], "ips": [{ "interface": 0, "address": "10.0.0.1/24" }] }),
        ] {
            assert!(matches!(result_ips("bridge", &bad), Err(CniError::Result { .. })), "{bad}");
        }
    }

    #[test]
    fn plugin_errors_carry_the_plugin_message() {
        let out = br#"{"code": 999, "msg": "failed to open netns \"/x\"", "details": "no such file"}"#;
        let e = plugin_error("bridge", CniCommand::Add, out, b"", Some(1));
        assert_eq!(
            e.to_string(),
            "CNI plugin bridge ADD failed (code 999): failed to open netns \"/x\" (no such file)"
        );
        let e = plugin_error("portmap", CniCommand::Del, b"", b"iptables: not found\n", Some(1));
        assert_eq!(e.to_string(), "CNI plugin portmap DEL failed (code 999): iptables: not found");
        let e = plugin_error("bridge", CniCommand::Check, b"", b"", Some(3));
        assert_eq!(e.to_string(), "CNI plugin bridge CHECK failed (code 999): exit status 3");
        let out = br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config"}"#;
        assert!(matches!(plugin_error("x", CniCommand::Add, out, b"", Some(1)), CniError::Plugin { code: 7, .. }));
    }

    #[test]
    fn plugin_lookup_rejects_paths_and_reports_the_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bridge"), b"").unwrap();
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_plugin("bridge", &dirs).unwrap(), dir.path().join("bridge"));
        for bad in ["", "../bridge", "/bin/sh", "portmap"] {
            assert!(matches!(find_plugin(bad, &dirs), Err(CniError::NotFound { .. })), "{bad}");
        }
    }

    #[test]
    fn cni_args_name_the_pod() {
        assert_eq!(
            cni_args("default", "web", "u1"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=u1;K8S_POD_UID=u1"
        );
    }

    /// Writes an executable script named `name` into `dir`.
    fn fake_plugin(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Runs a fake plugin, retrying while a fork on another test thread briefly holds
    /// the fresh script open for writing (ETXTBSY).
    fn exec_fake(inv: &Invocation<'_>, stdin: &Value, timeout: Duration) -> Result<Option<Value>, CniError> {
        for _ in 0..50 {
            match exec_plugin_within(inv, stdin, timeout) {
                Err(CniError::Exec { source, .. }) if source.raw_os_error() == Some(26) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
        exec_plugin_within(inv, stdin, timeout)
    }

    #[test]
    fn a_hanging_plugin_is_killed_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(dir.path(), "slow", "#!/bin/sh\nexec sleep 30\n");
        let dirs = vec![dir.path().to_path_buf()];
        let inv = Invocation {
            command: CniCommand::Add,
            container_id: "c1",
            netns: None,
            ifname: "eth0",
            args: "",
            bin_dirs: &dirs,
        };
        let started = std::time::Instant::now();
        let err = exec_fake(&inv, &json!({ "type": "slow" }), Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.to_string().contains("no answer within 300ms, killed"), "{err}");
    }

    #[test]
    fn exec_reports_a_plugin_error_from_a_fake_plugin() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(
            dir.path(),
            "fake",
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then echo \"{\\\"cniVersion\\\":\\\"1.0.0\\\",\\\"ips\\\":[{\\\"address\\\":\\\"10.9.0.2/24\\\"}],\\\"args\\\":\\\"$CNI_IFNAME\\\"}\"; exit 0; fi\necho '{\"code\":11,\"msg\":\"try again\"}'; exit 1\n",
        );
        let dirs = vec![dir.path().to_path_buf()];
        let mut inv = Invocation {
            command: CniCommand::Add,
            container_id: "c1",
            netns: None,
            ifname: "eth0",
            args: "",
            bin_dirs: &dirs,
        };
        let out = exec_fake(&inv, &json!({ "type": "fake" }), PLUGIN_TIMEOUT).unwrap().unwrap();
        assert_eq!(out["args"], "eth0");
        assert_eq!(result_ips("fake", &out).unwrap(), vec!["10.9.0.2".parse::<IpAddr>().unwrap()]);
        inv.command = CniCommand::Del;
        let err = exec_fake(&inv, &json!({ "type": "fake" }), PLUGIN_TIMEOUT).unwrap_err();
        assert!(matches!(err, CniError::Plugin { code: 11, ref msg, .. } if msg == "try again"), "{err}");
    }
}
