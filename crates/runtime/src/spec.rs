//! OCI runtime spec generation: a pure function from what the caller wants (command,
//! env, user, mounts, namespaces to create or join, cgroup and resources, security
//! settings) and the image's config to the `config.json` runc reads.
//!
//! Defaults are containerd's: its default capability set, the same masked and
//! read-only `/proc` and `/sys` paths, `/dev` as a small tmpfs with devpts, shm and
//! mqueue, `/sys` and the cgroup tree read-only. The command follows Kubernetes:
//! `command` replaces the image's entrypoint, `args` its cmd.

use crate::oci::ImageConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("no command specified: the container has no command and the image no entrypoint or cmd")]
    NoCommand,
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("user {user:?} not found in the image's /etc/{file}")]
    UserNotFound { user: String, file: &'static str },
    #[error("invalid environment variable name {0:?}")]
    InvalidEnvName(String),
}

pub const OCI_VERSION: &str = "1.0.2";
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's default capabilities (also Docker's).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines, in number order (privileged containers get all).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

// ---- The spec (the subset of config.json this runtime writes) ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub linux: Linux,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(rename = "noNewPrivileges", default)]
    pub no_new_privileges: bool,
    #[serde(rename = "oomScoreAdj", default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

/// The process's user: resolved numbers, as runc wants them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(rename = "additionalGids", default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    #[serde(default)]
    pub options: Vec<String>,
}

impl Mount {
    /// A bind mount of a host path (recursive, private), read-only if asked.
    pub fn bind(source: &Path, destination: &str, readonly: bool) -> Mount {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if readonly { "ro" } else { "rw" }.to_string());
        Mount {
            destination: destination.to_string(),
            kind: "bind".into(),
            source: source.display().to_string(),
            options,
        }
    }

    /// A tmpfs, with a size limit if given (`emptyDir` with `medium: Memory`).
    pub fn tmpfs(destination: &str, size_bytes: Option<u64>) -> Mount {
        let mut options = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
        if let Some(s) = size_bytes {
            options.push(format!("size={s}"));
        }
        Mount { destination: destination.to_string(), kind: "tmpfs".into(), source: "tmpfs".into(), options }
    }

    fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.into(),
            kind: kind.into(),
            source: source.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    #[serde(rename = "cgroupsPath", default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    pub resources: LinuxResources,
    #[serde(rename = "maskedPaths", default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(rename = "readonlyPaths", default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxResources {
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<PidsResources>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub access: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsResources {
    pub limit: i64,
}

// ---- What the caller asks for ----

/// Whether a container gets a namespace of its own, joins one (another container's,
/// the pod sandbox's: `/proc/PID/ns/net` or a bind-mounted netns file), or shares the
/// host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    #[default]
    New,
    Join(PathBuf),
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub network: NamespaceMode,
    /// A cgroup namespace (containerd makes one on cgroup v2 hosts).
    pub cgroup: NamespaceMode,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            pid: NamespaceMode::New,
            ipc: NamespaceMode::New,
            uts: NamespaceMode::New,
            network: NamespaceMode::New,
            cgroup: NamespaceMode::Host,
        }
    }
}

/// Resource limits, in the units the cgroup files take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// Everything a container's spec is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The mounted root filesystem.
    pub rootfs: PathBuf,
    /// The image's run settings (entrypoint, cmd, env, working dir).
    pub image: ImageConfig,
    /// Kubernetes `command`: replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image's cmd when not empty.
    pub args: Vec<String>,
    /// Added to the image's environment, replacing variables of the same name.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: User,
    /// Set only when the container has its own UTS namespace.
    pub hostname: Option<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    /// Capabilities to add and drop (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub no_new_privileges: bool,
    /// Mounts on top of the defaults; one with a default's destination replaces it.
    pub mounts: Vec<Mount>,
    pub namespaces: Namespaces,
    pub cgroups_path: Option<String>,
    pub resources: Resources,
    pub oom_score_adj: Option<i32>,
    /// Resource limits to set; none means the process inherits runc's (containerd 2
    /// dropped its fixed default too).
    pub rlimits: Vec<Rlimit>,
    pub sysctls: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            rootfs: PathBuf::from("rootfs"),
            image: ImageConfig::default(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            user: User::default(),
            hostname: None,
            privileged: false,
            readonly_rootfs: false,
            capabilities_add: Vec::new(),
            capabilities_drop: Vec::new(),
            no_new_privileges: false,
            mounts: Vec::new(),
            namespaces: Namespaces::default(),
            cgroups_path: None,
            resources: Resources::default(),
            oom_score_adj: None,
            rlimits: Vec::new(),
            sysctls: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// The process arguments, as the kubelet and containerd decide them: `command`
/// replaces the entrypoint; `args` replaces the cmd; the image's cmd is used only when
/// neither is given (an explicit command drops the image's cmd).
pub fn process_args(image: &ImageConfig, command: &[String], args: &[String]) -> Result<Vec<String>, SpecError> {
    let mut command = command.to_vec();
    let mut args = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone().unwrap_or_default();
        }
        let entrypoint = image.entrypoint.clone().unwrap_or_default();
        // `ENTRYPOINT [""]` means "no entrypoint" in Docker.
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            command = entrypoint;
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(command)
}

/// The image's environment with the container's on top (same name: replaced in
/// place; new names appended), and a default `PATH` if neither has one.
pub fn merge_env(image_env: &[String], env: &[(String, String)]) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<String> = image_env.to_vec();
    for (name, value) in env {
        if name.is_empty() || name.contains('=') {
            return Err(SpecError::InvalidEnvName(name.clone()));
        }
        let entry = format!("{name}={value}");
        match out.iter_mut().find(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e.as_str()) == name) {
            Some(e) => *e = entry,
            None => out.push(entry),
        }
    }
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    Ok(out)
}

fn cap_name(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(name.to_string()))
    }
}

/// The capability set: the default (or all, when privileged), then `ALL` in add or
/// drop, then individual adds, then individual drops, as containerd applies them.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>, SpecError> {
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = if privileged {
        ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    };
    if privileged {
        return Ok(caps);
    }
    if add.iter().any(is_all) {
        caps = ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    for a in add.iter().filter(|a| !is_all(a)) {
        let c = cap_name(a)?;
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for d in drop.iter().filter(|d| !is_all(d)) {
        let c = cap_name(d)?;
        caps.retain(|x| *x != c);
    }
    Ok(caps)
}

fn default_mounts(privileged: bool) -> Vec<Mount> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        Mount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        Mount::new("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount::new("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        Mount::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        Mount::new("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        Mount::new("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", ro]),
    ]
}

fn namespace(kind: &str, mode: &NamespaceMode) -> Option<Namespace> {
    match mode {
        NamespaceMode::New => Some(Namespace { kind: kind.into(), path: None }),
        NamespaceMode::Join(p) => Some(Namespace { kind: kind.into(), path: Some(p.clone()) }),
        NamespaceMode::Host => None,
    }
}

/// The spec for one container.
pub fn generate(c: &ContainerConfig) -> Result<Spec, SpecError> {
    let args = process_args(&c.image, &c.command, &c.args)?;
    let env = merge_env(c.image.env.as_deref().unwrap_or(&[]), &c.env)?;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| c.image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let caps = capabilities(c.privileged, &c.capabilities_add, &c.capabilities_drop)?;

    // Caller mounts replace defaults at the same place; parents are mounted before
    // children, so order by depth (stable, so equal depths keep the caller's order).
    let mut mounts: Vec<Mount> = default_mounts(c.privileged)
        .into_iter()
        .filter(|d| !c.mounts.iter().any(|m| clean_dest(&m.destination) == d.destination))
        .collect();
    let mut extra = c.mounts.clone();
    extra.sort_by_key(|m| clean_dest(&m.destination).split('/').filter(|s| !s.is_empty()).count());
    mounts.extend(extra);

    let mut namespaces = vec![Namespace { kind: "mount".into(), path: None }];
    namespaces.extend(namespace("pid", &c.namespaces.pid));
    namespaces.extend(namespace("ipc", &c.namespaces.ipc));
    namespaces.extend(namespace("uts", &c.namespaces.uts));
    namespaces.extend(namespace("network", &c.namespaces.network));
    namespaces.extend(namespace("cgroup", &c.namespaces.cgroup));

    let r = &c.resources;
    let resources = LinuxResources {
        devices: vec![DeviceRule { allow: c.privileged, access: "rwm".into() }],
        memory: r.memory_limit.map(|l| MemoryResources { limit: Some(l), swap: None }),
        cpu: if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
            Some(CpuResources { shares: r.cpu_shares, quota: r.cpu_quota, period: r.cpu_period })
        } else {
            None
        },
        pids: r.pids_limit.map(|limit| PidsResources { limit }),
    };

    Ok(Spec {
        oci_version: OCI_VERSION.into(),
        process: Process {
            terminal: false,
            user: c.user.clone(),
            args,
            env,
            cwd,
            capabilities: Capabilities { bounding: caps.clone(), effective: caps.clone(), permitted: caps },
            rlimits: c.rlimits.clone(),
            no_new_privileges: c.no_new_privileges && !c.privileged,
            oom_score_adj: c.oom_score_adj,
        },
        root: Root { path: c.rootfs.clone(), readonly: c.readonly_rootfs },
        hostname: match c.namespaces.uts {
            NamespaceMode::New => c.hostname.clone(),
            _ => None,
        },
        mounts,
        linux: Linux {
            namespaces,
            cgroups_path: c.cgroups_path.clone(),
            resources,
            masked_paths: if c.privileged { vec![] } else { MASKED_PATHS.iter().map(|s| s.to_string()).collect() },
            readonly_paths: if c.privileged { vec![] } else { READONLY_PATHS.iter().map(|s| s.to_string()).collect() },
            sysctl: c.sysctls.clone(),
        },
        annotations: c.annotations.clone(),
    })
}

fn clean_dest(d: &str) -> String {
    let parts: Vec<&str> = d.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    format!("/{}", parts.join("/"))
}

impl Spec {
    /// Writes `config.json` into a bundle directory.
    pub fn write(&self, bundle: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(bundle.join("config.json"), bytes)
    }
}

// ---- Users ----

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry { name: f[0].to_string(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()? })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The process user, as containerd decides it: `run_as_user` (else the image's `User`,
/// a name or number, optionally `:group`), its primary group from `/etc/passwd` unless
/// `run_as_group` or the image names one, and supplementary groups from `/etc/group`
/// membership plus `supplemental`. `passwd` and `group` are the image's files (empty
/// if it has none).
pub fn resolve_user(
    passwd: &str,
    group: &str,
    image_user: Option<&str>,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    supplemental: &[u32],
) -> Result<User, SpecError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (user_part, group_part) = match (run_as_user, image_user.filter(|u| !u.is_empty())) {
        (Some(uid), _) => (uid.to_string(), None),
        (None, Some(spec)) => match spec.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (spec.to_string(), None),
        },
        (None, None) => ("0".to_string(), None),
    };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => {
            users.iter().find(|u| u.uid == uid).cloned().unwrap_or(PasswdEntry { name: String::new(), uid, gid: 0 })
        }
        Err(_) => users
            .iter()
            .find(|u| u.name == user_part)
            .cloned()
            .ok_or(SpecError::UserNotFound { user: user_part.clone(), file: "passwd" })?,
    };
    let mut gid = entry.gid;
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or(SpecError::UserNotFound { user: g.clone(), file: "group" })?,
        };
    }
    if let Some(g) = run_as_group {
        gid = g;
    }
    let mut additional = vec![gid];
    if !entry.name.is_empty() {
        for g in groups.iter().filter(|g| g.members.contains(&entry.name)) {
            additional.push(g.gid);
        }
    }
    additional.extend_from_slice(supplemental);
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(User { uid: entry.uid, gid, additional_gids: additional })
}

/// Reads `/etc/passwd` and `/etc/group` from a root filesystem (symlinks resolved
/// inside it); missing files read as empty.
pub fn read_user_files(rootfs: &Path) -> (String, String) {
    let read = |rel: &str| {
        crate::unpack::resolve_in_root(rootfs, Path::new(rel))
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    (read("etc/passwd"), read("etc/group"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        ImageConfig { entrypoint: entrypoint.map(s), cmd: cmd.map(s), ..ImageConfig::default() }
    }

    #[test]
    fn command_and_args_as_kubernetes_decides() {
        let img = image(Some(&["/entry"]), Some(&["cmd-arg"]));
        assert_eq!(process_args(&img, &[], &[]).unwrap(), s(&["/entry", "cmd-arg"]));
        assert_eq!(process_args(&img, &[], &s(&["a"])).unwrap(), s(&["/entry", "a"]));
        assert_eq!(process_args(&img, &s(&["/bin/sh"]), &[]).unwrap(), s(&["/bin/sh"]), "command drops the image cmd");
        assert_eq!(process_args(&img, &s(&["/bin/sh"]), &s(&["-c", "x"])).unwrap(), s(&["/bin/sh", "-c", "x"]));
        let no_entry = image(None, Some(&["sh"]));
        assert_eq!(process_args(&no_entry, &[], &[]).unwrap(), s(&["sh"]));
        let empty_entry = image(Some(&[""]), Some(&["sh"]));
        assert_eq!(process_args(&empty_entry, &[], &[]).unwrap(), s(&["sh"]));
        assert_eq!(process_args(&ImageConfig::default(), &[], &[]), Err(SpecError::NoCommand));
    }

    #[test]
    fn env_merges_over_the_image() {
        let img = s(&["PATH=/bin", "A=1", "B=2"]);
        let env = vec![("B".to_string(), "x=y".to_string()), ("C".to_string(), "3".to_string())];
        assert_eq!(merge_env(&img, &env).unwrap(), s(&["PATH=/bin", "A=1", "B=x=y", "C=3"]));
        assert_eq!(merge_env(&[], &[]).unwrap(), s(&[DEFAULT_PATH]));
        assert!(matches!(merge_env(&[], &[("A=B".into(), "c".into())]), Err(SpecError::InvalidEnvName(_))));
    }

    #[test]
    fn capability_sets() {
        let default = capabilities(false, &[], &[]).unwrap();
        assert_eq!(default.len(), 14);
        let c = capabilities(false, &s(&["NET_ADMIN"]), &s(&["CAP_KILL", "chown"])).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        let c = capabilities(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(c, s(&["CAP_NET_BIND_SERVICE"]), "drop ALL then add back");
        let c = capabilities(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert_eq!(c.len(), 40);
        assert_eq!(capabilities(true, &[], &s(&["ALL"])).unwrap().len(), 41, "privileged gets everything");
        assert_eq!(capabilities(false, &s(&["BOGUS"]), &[]), Err(SpecError::UnknownCapability("BOGUS".into())));
    }

    #[test]
    fn a_default_spec() {
        let c = ContainerConfig {
            rootfs: "/c/rootfs".into(),
            image: ImageConfig {
                cmd: Some(s(&["echo", "hello"])),
                env: Some(s(&["PATH=/bin"])),
                working_dir: Some("/work".into()),
                ..ImageConfig::default()
            },
            hostname: Some("pod-a".into()),
            cgroups_path: Some("/rudder/pod1/c1".into()),
            resources: Resources {
                cpu_shares: Some(512),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                memory_limit: Some(64 << 20),
                pids_limit: None,
            },
            ..ContainerConfig::default()
        };
        let spec = generate(&c).unwrap();
        assert_eq!(spec.process.args, s(&["echo", "hello"]));
        assert_eq!(spec.process.cwd, "/work");
        assert_eq!(spec.hostname.as_deref(), Some("pod-a"));
        assert!(!spec.process.no_new_privileges);
        assert_eq!(spec.root.path, PathBuf::from("/c/rootfs"));
        let kinds: Vec<&str> = spec.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["mount", "pid", "ipc", "uts", "network"]);
        let dests: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
        assert!(spec.mounts[5].options.contains(&"ro".to_string()));
        assert_eq!(spec.linux.masked_paths.len(), MASKED_PATHS.len());
        assert_eq!(spec.linux.resources.memory.as_ref().unwrap().limit, Some(64 << 20));
        assert_eq!(spec.linux.resources.cpu.as_ref().unwrap().shares, Some(512));
        assert_eq!(spec.linux.resources.devices, [DeviceRule { allow: false, access: "rwm".into() }]);
        assert!(spec.process.rlimits.is_empty());
        let with = ContainerConfig {
            command: s(&["x"]),
            rlimits: vec![Rlimit { kind: "RLIMIT_NOFILE".into(), hard: 4096, soft: 1024 }],
            ..ContainerConfig::default()
        };
        assert_eq!(serde_json::to_value(generate(&with).unwrap()).unwrap()["process"]["rlimits"][0]["soft"], 1024);
        // The JSON runc reads has the spec's field names.
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["ociVersion"], OCI_VERSION);
        assert_eq!(json["linux"]["cgroupsPath"], "/rudder/pod1/c1");
        assert_eq!(json["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(json["mounts"][0]["type"], "proc");
    }

    #[test]
    fn joined_namespaces_caller_mounts_and_privilege() {
        let c = ContainerConfig {
            command: s(&["sleep", "1"]),
            hostname: Some("ignored".into()),
            namespaces: Namespaces {
                network: NamespaceMode::Join("/run/netns/pod".into()),
                ipc: NamespaceMode::Join("/proc/42/ns/ipc".into()),
                uts: NamespaceMode::Join("/proc/42/ns/uts".into()),
                pid: NamespaceMode::Host,
                cgroup: NamespaceMode::New,
            },
            mounts: vec![
                Mount::bind(Path::new("/var/lib/x/hosts"), "/etc/hosts", true),
                Mount::bind(Path::new("/pod/shm"), "/dev/shm", false),
                Mount::tmpfs("/data", Some(1 << 20)),
                Mount::bind(Path::new("/a"), "/data/deep/er", false),
            ],
            privileged: true,
            no_new_privileges: true,
            readonly_rootfs: true,
            ..ContainerConfig::default()
        };
        let spec = generate(&c).unwrap();
        assert_eq!(spec.hostname, None, "a joined UTS namespace keeps its hostname");
        let net = spec.linux.namespaces.iter().find(|n| n.kind == "network").unwrap();
        assert_eq!(net.path.as_deref(), Some(Path::new("/run/netns/pod")));
        assert!(!spec.linux.namespaces.iter().any(|n| n.kind == "pid"), "host pid: no namespace");
        assert!(spec.linux.namespaces.iter().any(|n| n.kind == "cgroup"));
        let shm: Vec<&Mount> = spec.mounts.iter().filter(|m| m.destination == "/dev/shm").collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].kind, "bind", "the caller's /dev/shm replaces the default");
        let dests: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
        let data = dests.iter().position(|d| *d == "/data").unwrap();
        let deeper = dests.iter().position(|d| *d == "/data/deep/er").unwrap();
        assert!(data < deeper, "parents before children: {dests:?}");
        assert!(spec.linux.masked_paths.is_empty() && spec.linux.readonly_paths.is_empty());
        assert_eq!(spec.linux.resources.devices, [DeviceRule { allow: true, access: "rwm".into() }]);
        assert!(!spec.process.no_new_privileges, "privileged implies privilege escalation");
        assert_eq!(spec.process.capabilities.bounding.len(), 41);
        assert!(spec.root.readonly);
        let sys = spec.mounts.iter().find(|m| m.destination == "/sys").unwrap();
        assert!(sys.options.contains(&"rw".to_string()));
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:alice,bob\nalice:x:1000:\nwheel:x:10:alice\n";

    #[test]
    fn users_from_names_numbers_and_overrides() {
        let u = resolve_user(PASSWD, GROUP, None, None, None, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        let u = resolve_user(PASSWD, GROUP, Some("alice"), None, None, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, [1000, 100, 10]);
        let u = resolve_user(PASSWD, GROUP, Some("alice:wheel"), None, None, &[]).unwrap();
        assert_eq!(u.gid, 10);
        let u = resolve_user(PASSWD, GROUP, Some("1234:5678"), None, None, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
        let u = resolve_user(PASSWD, GROUP, Some("alice"), Some(65534), None, &[2000]).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534), "runAsUser wins, primary group from passwd");
        assert_eq!(u.additional_gids, [65534, 2000]);
        let u = resolve_user(PASSWD, GROUP, None, Some(4242), Some(7), &[]).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 7));
        assert_eq!(
            resolve_user(PASSWD, GROUP, Some("mallory"), None, None, &[]),
            Err(SpecError::UserNotFound { user: "mallory".into(), file: "passwd" })
        );
        assert!(resolve_user("", "", Some("alice:nogroup"), None, None, &[]).is_err());
        assert_eq!(resolve_user("", "", Some("5"), None, None, &[]).unwrap().uid, 5);
    }

    #[test]
    fn user_files_parse_leniently() {
        assert_eq!(parse_passwd("bad line\n# comment\nx:x:notanumber:0::/:\n").len(), 0);
        assert_eq!(parse_group(GROUP)[1].members, s(&["alice", "bob"]));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        let (p, g) = read_user_files(dir.path());
        assert_eq!(p, PASSWD);
        assert_eq!(g, "");
    }
}
