//! From a pod's container to what the runtime runs: the security context (user,
//! `runAsNonRoot` with the kubelet's refusals, read-only root, capabilities,
//! privileged), resources as cgroup limits (cpu shares and quota, memory limit, OOM
//! score by QoS class), namespaces from the sandbox, `$(VAR)` expansion in command
//! and args, and the annotations that let a restarted agent recognise its
//! containers. Pure.

use crate::network::SandboxInfo;
use crate::quantity::Quantity;
use crate::volumes::BindMount;
use k8s_openapi::api::core::v1::{Container, Pod};
use runtime::oci::ImageConfig;
use runtime::spec::{ContainerConfig, Mount, NamespaceMode, Namespaces, Resources, SpecError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub const ANNOTATION_POD_UID: &str = "io.kubernetes.pod.uid";
pub const ANNOTATION_POD_NAME: &str = "io.kubernetes.pod.name";
pub const ANNOTATION_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const ANNOTATION_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Whether it is an init container ("true"/"false").
pub const ANNOTATION_INIT: &str = "rudder.dev/init-container";
/// The image as the spec names it, and its resolved id, for status after a restart.
pub const ANNOTATION_IMAGE: &str = "rudder.dev/image";
pub const ANNOTATION_IMAGE_REF: &str = "rudder.dev/image-ref";
pub const ANNOTATION_IMAGE_ID: &str = "rudder.dev/image-id";

/// CPU period for quotas (the kernel's default, the kubelet's too).
pub const CPU_PERIOD: u64 = 100_000;
const MIN_SHARES: u64 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    /// `CreateContainerConfigError` with the kubelet's words.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// `name_namespace(uid)`, how the kubelet names a pod in messages.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// The runtime id of a container: unique per pod, name and attempt.
pub fn container_id(pod_uid: &str, name: &str, attempt: i32) -> String {
    format!("{pod_uid}_{name}_{attempt}")
}

fn quantity(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<Quantity> {
    q.and_then(|q| Quantity::parse(&q.0).ok())
}

/// cgroup limits from `resources` (a missing request defaults to the limit).
pub fn resources(container: &Container) -> Resources {
    let r = container.resources.as_ref();
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let cpu_limit = quantity(limits.and_then(|l| l.get("cpu"))).map(|q| q.milli_ceil()).filter(|m| *m > 0);
    let cpu_request = quantity(requests.and_then(|l| l.get("cpu"))).map(|q| q.milli_ceil()).or(cpu_limit);
    let memory_limit = quantity(limits.and_then(|l| l.get("memory"))).map(|q| q.ceil()).filter(|b| *b > 0);
    let shares = match cpu_request {
        Some(m) if m > 0 => ((m as u64) * 1024 / 1000).max(MIN_SHARES),
        _ => MIN_SHARES,
    };
    Resources {
        cpu_shares: Some(shares),
        // The kernel refuses quotas under 1 ms.
        cpu_quota: cpu_limit.map(|m| (m * CPU_PERIOD as i64 / 1000).max(1000)),
        cpu_period: cpu_limit.map(|_| CPU_PERIOD),
        memory_limit,
        pids_limit: None,
    }
}

/// The OOM score adjustment by QoS class, as the kubelet sets it.
pub fn oom_score_adj(qos: &str, container: &Container, node_memory: u64) -> i32 {
    match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| quantity(r.get("memory")))
                .map(|q| q.ceil().max(0) as u64)
                .unwrap_or(0);
            if node_memory == 0 {
                return 999;
            }
            let adj = 1000i64 - (1000 * request as i128 / node_memory as i128) as i64;
            adj.clamp(2, 999) as i32
        }
    }
}

/// The user to run as, checked against `runAsNonRoot` with the kubelet's messages.
pub fn user(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    passwd: &str,
    group: &str,
) -> Result<runtime::spec::User, ContainerError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let run_as_user = sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or(pod_sc.and_then(|s| s.run_as_group));
    let non_root = sc.and_then(|s| s.run_as_non_root).or(pod_sc.and_then(|s| s.run_as_non_root)).unwrap_or(false);
    let desc = pod_desc(pod);
    if non_root {
        match run_as_user {
            Some(0) => {
                return Err(ContainerError::Config(format!(
                    "container's runAsUser breaks non-root policy (pod: {desc:?}, container: {})",
                    container.name
                )));
            }
            Some(_) => {}
            None => {
                let image_user = image.user.as_deref().unwrap_or("");
                let user_part = image_user.split(':').next().unwrap_or("");
                match user_part.parse::<u32>() {
                    Ok(0) => {
                        return Err(ContainerError::Config(format!(
                            "container has runAsNonRoot and image will run as root (pod: {desc:?}, container: {})",
                            container.name
                        )));
                    }
                    Ok(_) => {}
                    Err(_) if user_part.is_empty() => {
                        return Err(ContainerError::Config(format!(
                            "container has runAsNonRoot and image will run as root (pod: {desc:?}, container: {})",
                            container.name
                        )));
                    }
                    Err(_) => {
                        return Err(ContainerError::Config(format!(
                            "container has runAsNonRoot and image has non-numeric user ({user_part}), cannot verify user is non-root (pod: {desc:?}, container: {})",
                            container.name
                        )));
                    }
                }
            }
        }
    }
    let mut supplemental: Vec<u32> =
        pod_sc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default().into_iter().map(|g| g as u32).collect();
    if let Some(fs_group) = pod_sc.and_then(|s| s.fs_group) {
        supplemental.push(fs_group as u32);
    }
    runtime::spec::resolve_user(
        passwd,
        group,
        image.user.as_deref(),
        run_as_user.map(|u| u as u32),
        run_as_group.map(|g| g as u32),
        &supplemental,
    )
    .map_err(|e| ContainerError::Config(e.to_string()))
}

/// Everything besides the pod and container that the spec needs.
#[derive(Debug, Clone)]
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub init: bool,
    pub attempt: i32,
    pub rootfs: PathBuf,
    pub image: ImageConfig,
    /// The image's name as the spec has it, its normalised reference and id.
    pub image_name: String,
    pub image_ref: String,
    pub image_id: String,
    pub env: Vec<(String, String)>,
    pub user: runtime::spec::User,
    pub mounts: Vec<BindMount>,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` on the node.
    pub etc_files: Option<(PathBuf, PathBuf, PathBuf)>,
    pub sandbox: &'a SandboxInfo,
    pub qos: &'a str,
    /// Where in the cgroup tree the container goes (`None`: runc's default).
    pub cgroups_path: Option<String>,
    pub node_memory: u64,
    /// The agent's own OOM score adjustment: an unprivileged agent (in a container
    /// itself) may not go below it, so containers do not either.
    pub oom_floor: i32,
}

/// The runtime's container config.
pub fn config(input: &ContainerInput) -> Result<ContainerConfig, ContainerError> {
    let pod = input.pod;
    let c = input.container;
    let spec = pod.spec.as_ref();
    let sc = c.security_context.as_ref();
    let vars: HashMap<&str, &str> = input.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| crate::env::expand(s, &vars)).collect()
    };
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let host_pid = spec.and_then(|s| s.host_pid).unwrap_or(false);
    let host_ipc = spec.and_then(|s| s.host_ipc).unwrap_or(false);
    let sandbox = input.sandbox;
    let namespaces = Namespaces {
        pid: if host_pid { NamespaceMode::Host } else { NamespaceMode::New },
        ipc: match (&sandbox.ipc_ns, host_ipc) {
            (_, true) => NamespaceMode::Host,
            (Some(p), false) => NamespaceMode::Join(p.clone()),
            (None, false) => NamespaceMode::New,
        },
        uts: match (&sandbox.uts_ns, host_network) {
            (_, true) => NamespaceMode::Host,
            (Some(p), false) => NamespaceMode::Join(p.clone()),
            (None, false) => NamespaceMode::New,
        },
        network: match &sandbox.net_ns {
            Some(p) if !host_network => NamespaceMode::Join(p.clone()),
            _ => NamespaceMode::Host,
        },
        cgroup: NamespaceMode::Host,
    };
    let mut mounts: Vec<Mount> =
        input.mounts.iter().map(|m| Mount::bind(&m.source, &m.destination, m.read_only)).collect();
    if let Some((hosts, hostname, resolv)) = &input.etc_files {
        let taken = |d: &str| input.mounts.iter().any(|m| m.destination.trim_end_matches('/') == d);
        for (src, dest) in [(hosts, "/etc/hosts"), (hostname, "/etc/hostname"), (resolv, "/etc/resolv.conf")] {
            if !taken(dest) {
                mounts.push(Mount::bind(src, dest, false));
            }
        }
    }
    let mut annotations = BTreeMap::new();
    let meta = &pod.metadata;
    for (k, v) in [
        (ANNOTATION_POD_UID, meta.uid.clone().unwrap_or_default()),
        (ANNOTATION_POD_NAME, meta.name.clone().unwrap_or_default()),
        (ANNOTATION_POD_NAMESPACE, meta.namespace.clone().unwrap_or_default()),
        (ANNOTATION_CONTAINER_NAME, c.name.clone()),
        (ANNOTATION_RESTART_COUNT, input.attempt.to_string()),
        (ANNOTATION_INIT, input.init.to_string()),
        (ANNOTATION_IMAGE, input.image_name.clone()),
        (ANNOTATION_IMAGE_REF, input.image_ref.clone()),
        (ANNOTATION_IMAGE_ID, input.image_id.clone()),
    ] {
        annotations.insert(k.to_string(), v);
    }
    let sysctls = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    Ok(ContainerConfig {
        rootfs: input.rootfs.clone(),
        image: input.image.clone(),
        command: expand(&c.command),
        args: expand(&c.args),
        env: input.env.clone(),
        working_dir: c.working_dir.clone(),
        user: input.user.clone(),
        hostname: (namespaces.uts == NamespaceMode::New).then(|| crate::etc::hostname(pod)),
        privileged,
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false) && !privileged,
        mounts,
        namespaces,
        cgroups_path: input.cgroups_path.clone(),
        resources: resources(c),
        oom_score_adj: Some(oom_score_adj(input.qos, c, input.node_memory).max(input.oom_floor)),
        rlimits: Vec::new(),
        sysctls,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> Pod {
        pod(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{
                "name": "app", "image": "busybox",
                "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(GREETING) $(MISSING)"],
                "workingDir": "/w",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}},
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}}
            }]}
        }))
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let p = web();
        let r = resources(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(r.memory_limit, Some(64 << 20));
        let none: Container = serde_json::from_value(json!({"name": "x"})).unwrap();
        assert_eq!(resources(&none), Resources { cpu_shares: Some(2), ..Resources::default() });
        let tiny: Container =
            serde_json::from_value(json!({"name": "x", "resources": {"limits": {"cpu": "1m"}}})).unwrap();
        assert_eq!(resources(&tiny).cpu_quota, Some(1000));
    }

    #[test]
    fn oom_scores_by_class() {
        let c: Container =
            serde_json::from_value(json!({"name": "x", "resources": {"requests": {"memory": "1Gi"}}})).unwrap();
        assert_eq!(oom_score_adj("Guaranteed", &c, 4 << 30), -997);
        assert_eq!(oom_score_adj("BestEffort", &c, 4 << 30), 1000);
        assert_eq!(oom_score_adj("Burstable", &c, 4 << 30), 750);
        assert_eq!(oom_score_adj("Burstable", &c, 1 << 30), 2);
    }

    #[test]
    fn non_root_refusals_as_the_kubelet_words_them() {
        let mut p = web();
        p.spec.as_mut().unwrap().security_context =
            Some(serde_json::from_value(json!({"runAsNonRoot": true})).unwrap());
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let root = ImageConfig::default();
        assert_eq!(
            user(&p, &c, &root, "", "").unwrap_err().to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"web_ns(u1)\", container: app)"
        );
        let named = ImageConfig { user: Some("nobody".into()), ..ImageConfig::default() };
        assert!(user(&p, &c, &named, "", "").unwrap_err().to_string().contains("non-numeric user (nobody)"));
        let numeric = ImageConfig { user: Some("1000".into()), ..ImageConfig::default() };
        assert_eq!(user(&p, &c, &numeric, "", "").unwrap().uid, 1000);
        let mut c2 = c.clone();
        c2.security_context = Some(serde_json::from_value(json!({"runAsUser": 0})).unwrap());
        assert!(user(&p, &c2, &numeric, "", "").unwrap_err().to_string().contains("breaks non-root policy"));
        c2.security_context = Some(serde_json::from_value(json!({"runAsUser": 5, "runAsGroup": 6})).unwrap());
        let u = user(&p, &c2, &root, "", "").unwrap();
        assert_eq!((u.uid, u.gid), (5, 6));
    }

    #[test]
    fn the_config_for_runc() {
        let p = web();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sandbox = SandboxInfo {
            pod_uid: "u1".into(),
            ips: vec![],
            net_ns: Some("/run/netns/u1".into()),
            ipc_ns: Some("/run/ipc/u1".into()),
            uts_ns: None,
        };
        let input = ContainerInput {
            pod: &p,
            container: c,
            init: false,
            attempt: 2,
            rootfs: "/r".into(),
            image: ImageConfig::default(),
            image_name: "busybox".into(),
            image_ref: "docker.io/library/busybox:latest".into(),
            image_id: "docker.io/library/busybox@sha256:x".into(),
            env: vec![("GREETING".into(), "hi".into())],
            user: runtime::spec::User::default(),
            mounts: vec![BindMount { source: "/v/data".into(), destination: "/data".into(), read_only: true }],
            etc_files: Some(("/p/hosts".into(), "/p/hostname".into(), "/p/resolv.conf".into())),
            sandbox: &sandbox,
            qos: "Burstable",
            cgroups_path: Some("kubepods/burstable/u1_web_2".into()),
            node_memory: 1 << 30,
            // The pod asks for no memory, so its own score is 999; an agent at 1000
            // lifts it to 1000.
            oom_floor: 1000,
        };
        let cfg = config(&input).unwrap();
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.args, ["echo hi $(GREETING) $(MISSING)"]);
        assert_eq!(cfg.working_dir.as_deref(), Some("/w"));
        assert!(cfg.readonly_rootfs && cfg.no_new_privileges && !cfg.privileged);
        assert_eq!(cfg.namespaces.network, NamespaceMode::Join("/run/netns/u1".into()));
        assert_eq!(cfg.namespaces.ipc, NamespaceMode::Join("/run/ipc/u1".into()));
        assert_eq!(cfg.namespaces.uts, NamespaceMode::New);
        assert_eq!(cfg.hostname.as_deref(), Some("web"));
        let dests: Vec<&str> = cfg.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/data", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);
        assert_eq!(cfg.annotations[ANNOTATION_RESTART_COUNT], "2");
        assert_eq!(cfg.annotations[ANNOTATION_POD_UID], "u1");
        assert_eq!(cfg.oom_score_adj, Some(1000), "never below the agent's own");
        assert_eq!(cfg.cgroups_path.as_deref(), Some("kubepods/burstable/u1_web_2"));
        let spec = runtime::spec::generate(&cfg).unwrap();
        assert!(spec.process.capabilities.bounding.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!spec.process.capabilities.bounding.contains(&"CAP_KILL".to_string()));
        // Host network: no network namespace, and the host's hostname.
        let mut hn = p.clone();
        hn.spec.as_mut().unwrap().host_network = Some(true);
        let cfg = config(&ContainerInput { pod: &hn, ..input }).unwrap();
        assert_eq!(cfg.namespaces.network, NamespaceMode::Host);
        assert_eq!(cfg.namespaces.uts, NamespaceMode::Host);
        assert_eq!(cfg.hostname, None);
    }
}
