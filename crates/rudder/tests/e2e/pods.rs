//! Real pods in real containers: a `rudder agent` process joined to a real server
//! runs pods with the real runc, from images the test builds from busybox-static
//! and pushes to a real `docker-registry` on loopback; kubectl drives it.
//!
//! The agent here uses the host's network (`--pod-network host`: pod IP = node IP =
//! 127.0.0.1), so tests that listen pick free ports; `network.rs` runs agents with
//! their pods in CNI sandboxes, each agent in a network namespace of its own. Each [`Agent`] removes its containers, mounts and files
//! when dropped, also when a test fails.

use crate::Cluster;
use crate::cluster::Kubectl;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KUBECTL: &str = "1.33";
pub(crate) const LONG: Duration = Duration::from_secs(60);

pub(crate) fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A registry with the busybox test image as `test/busybox:v1`.
pub(crate) struct Images {
    registry: runtime::testing::Registry,
}

impl Images {
    fn start() -> Images {
        let registry = runtime::testing::Registry::start();
        block_on(registry.push("test/busybox", "v1", &runtime::testing::busybox_image())).unwrap();
        Images { registry }
    }

    pub(crate) fn busybox(&self) -> String {
        format!("{}/test/busybox:v1", self.registry.host)
    }
}

/// A `rudder agent` process with a data dir of its own.
pub(crate) struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub(crate) name: String,
    server: String,
    token: String,
    kubelet_port: u16,
}

impl Agent {
    fn start(c: &Cluster) -> Agent {
        let token = eventually(Duration::from_secs(10), "the node token", || {
            std::fs::read_to_string(c.data_dir().join("node-token")).ok().filter(|t| t.ends_with('\n'))
        });
        let n = c.port;
        let mut a = Agent {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            name: format!("node-{n}"),
            server: c.url(),
            token: token.trim().to_string(),
            kubelet_port: std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
        };
        a.launch();
        a
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--server", &self.server, "--token", &self.token])
            .args(["--node-name", &self.name, "--node-ip", "127.0.0.1", "--pod-network", "host"])
            .args(["--kubelet-port", &self.kubelet_port.to_string()])
            .arg("--data-dir")
            .arg(self.dir.path())
            // Many agents share the host's network here: one proxy table would not do.
            .arg("--disable-proxy")
            .env("RUST_LOG", "info,agent=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rudder agent");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("agent.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The records of a container's log file, as `stream content` lines.
    pub(crate) fn log_lines(&self, pod_uid: &str, container: &str, attempt: u32) -> Vec<String> {
        let path = self.data().join("pods").join(pod_uid).join(container).join(format!("{attempt}.log"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(runtime::logfile::parse_record)
            .map(|r| r.content)
            .collect()
    }

    /// runc's containers for this agent.
    fn containers(&self) -> Vec<String> {
        crate::netlab::containers(self.data())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- agent log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        // Containers, then root filesystems and tmpfs volumes under the data dir.
        crate::netlab::clean_node_data(self.data());
    }
}

pub(crate) fn pod_json(k: &Kubectl, name: &str) -> Option<Value> {
    let out = k.run(&["get", "pod", name, "-o", "json"]);
    out.ok.then(|| serde_json::from_str(&out.stdout).ok()).flatten()
}

pub(crate) fn wait_pod(k: &Kubectl, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LONG;
    loop {
        let p = pod_json(k, name);
        if let Some(p) = p.as_ref().filter(|p| f(p)) {
            return p.clone();
        }
        if Instant::now() > deadline {
            let status = p.map(|p| serde_json::to_string_pretty(&p["status"]).unwrap()).unwrap_or_default();
            panic!("timed out waiting for {what}; the pod's status:\n{status}\nevents:\n{}", events(k, name));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

pub(crate) fn condition<'a>(p: &'a Value, kind: &str) -> &'a str {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

pub(crate) fn apply(k: &Kubectl, manifest: &str) {
    k.ok_stdin(&["apply", "-f", "-"], manifest);
}

pub(crate) fn pod(name: &str, node: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 2\n{spec}"
    )
}

pub(crate) fn setup() -> (Cluster, Images, Agent) {
    let c = Cluster::start();
    let images = Images::start();
    let agent = Agent::start(&c);
    let k = c.kubectl(KUBECTL);
    let name = agent.name.clone();
    eventually(LONG, "the node to register Ready", || {
        let out = k.run(&["get", "node", &name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        (out.ok && out.stdout == "True").then_some(())
    });
    (c, images, agent)
}

pub(crate) fn events(k: &Kubectl, pod: &str) -> String {
    k.run(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=R:.reason,M:.message",
    ])
    .stdout
}

#[test]
fn a_pod_runs_and_its_node_reports_in() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let node: Value = serde_json::from_str(&k.ok(&["get", "node", &agent.name, "-o", "json"])).unwrap();
    let status = &node["status"];
    assert_eq!(status["capacity"]["pods"], "110");
    assert!(status["capacity"]["cpu"].as_str().is_some() && status["allocatable"]["memory"].as_str().is_some());
    assert!(status["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap().starts_with("runc://"));
    assert_eq!(status["addresses"][0], serde_json::json!({"type": "InternalIP", "address": "127.0.0.1"}));
    k.ok(&["get", "lease", "-n", "kube-node-lease", &agent.name]);

    let spec = format!(
        "  containers:\n  - name: main\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo hello from $(hostname); exec sleep 1000']\n    resources:\n      limits: {{cpu: 100m, memory: 32Mi}}\n",
        images.busybox()
    );
    apply(&k, &pod("web", &agent.name, &spec));
    let p = wait_pod(&k, "web", "web Running and Ready", |p| phase(p) == "Running" && condition(p, "Ready") == "True");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["restartCount"], 0);
    assert!(cs["containerID"].as_str().unwrap().starts_with("runc://"), "{cs}");
    assert!(cs["imageID"].as_str().unwrap().contains("@sha256:"), "{cs}");
    assert!(cs["state"]["running"]["startedAt"].is_string());
    assert_eq!(p["status"]["podIP"], "127.0.0.1");
    assert_eq!(p["status"]["hostIP"], "127.0.0.1");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    for kind in ["PodReadyToStartContainers", "Initialized", "ContainersReady", "PodScheduled"] {
        assert_eq!(condition(&p, kind), "True", "{kind}");
    }
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    eventually(LONG, "the greeting in the log", || {
        agent.log_lines(&uid, "main", 0).contains(&"hello from web".to_string()).then_some(())
    });
    // Where a directory per container or pod comes and goes, the agent had ext4
    // spread them over its block groups (`agent::spread`).
    let config = agent::Config::new("e2e", agent.data().to_path_buf()).expect("agent config");
    for dir in [config.layers_dir(), config.pods_dir(), config.pod_states_dir()] {
        const EXT4_MAGIC: rustix::fs::FsWord = 0xEF53;
        if rustix::fs::statfs(&dir).expect("statfs").f_type == EXT4_MAGIC {
            let flags = rustix::fs::ioctl_getflags(std::fs::File::open(&dir).expect("open")).expect("flags");
            assert!(flags.contains(rustix::fs::IFlags::TOPDIR), "{} is not a top directory", dir.display());
        }
    }
    let ev = events(&k, "web");
    for reason in ["Pulling", "Pulled", "Created", "Started"] {
        assert!(ev.contains(reason), "no {reason} event:\n{ev}");
    }
    k.ok(&["delete", "pod", "web", "--wait=true", "--timeout=30s"]);
    eventually(LONG, "the container to go", || agent.containers().is_empty().then_some(()));

    // A new pod's root filesystem is mounted while its volumes are made; one that
    // never starts (its ConfigMap is missing) must not leave that mount behind.
    let spec = format!(
        "  containers:\n  - {{name: main, image: {}, imagePullPolicy: IfNotPresent, command: [sleep, '1000'], volumeMounts: [{{name: c, mountPath: /c}}]}}\n  volumes:\n  - {{name: c, configMap: {{name: missing}}}}\n",
        images.busybox()
    );
    apply(&k, &pod("stuck", &agent.name, &spec));
    eventually(LONG, "FailedMount", || events(&k, "stuck").contains("FailedMount").then_some(()));
    let uid = pod_json(&k, "stuck").unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    let rootfs_mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.contains(&uid) && m.ends_with("/rootfs")))
            .count()
    };
    assert_eq!(rootfs_mounts(), 1, "the root filesystem mounted ahead of the start");
    k.ok(&["delete", "pod", "stuck", "--wait=true", "--timeout=30s"]);
    eventually(LONG, "the mount to go", || (rootfs_mounts() == 0).then_some(()));
}

#[test]
fn env_and_volumes_from_configmaps_secrets_and_the_downward_api() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    k.ok(&["create", "configmap", "cfg", "--from-literal=color=blue", "--from-literal=size=xl"]);
    k.ok(&["create", "secret", "generic", "sec", "--from-literal=password=hunter2"]);
    let host = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [sh, -c]
    args:
    - |
      echo "color=$COLOR pass=$PASS pod=$POD_NAME ns=$NS cm_size=$CFG_size expanded=$(COLOR)-x"
      echo "file-color=$(cat /etc/cfg/color) file-pass=$(cat /etc/sec/password) labels=$(cat /etc/info/labels)"
      echo scratch > /scratch/x && echo "scratch=$(cat /scratch/x)"
      echo "mem=$(cat /mem/note 2>/dev/null || echo none) memfs=$(grep -c ' /mem ' /proc/mounts)"
      echo "hostpath=$(cat /host/greeting)"
      echo "hosts=$(grep -c main-pod /etc/hosts) hostname=$(cat /etc/hostname)"
      touch /etc/cfg/nope 2>/dev/null && echo writable || echo read-only
    env:
    - name: COLOR
      valueFrom: {{configMapKeyRef: {{name: cfg, key: color}}}}
    - name: PASS
      valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: NS
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    envFrom:
    - prefix: CFG_
      configMapRef: {{name: cfg}}
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec}}
    - {{name: info, mountPath: /etc/info}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
  volumes:
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: sec, secret: {{secretName: sec}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
"#,
        image = images.busybox(),
        host = host.path().display()
    );
    std::fs::write(host.path().join("greeting"), "hi-from-host").unwrap();
    let manifest = pod("main-pod", &agent.name, &spec)
        .replace("  name: main-pod\n", "  name: main-pod\n  labels: {app: envtest}\n");
    apply(&k, &manifest);
    let p = wait_pod(&k, "main-pod", "the pod to succeed", |p| phase(p) == "Succeeded" || phase(p) == "Failed");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let lines = agent.log_lines(uid, "main", 0);
    assert_eq!(phase(&p), "Succeeded", "{lines:?}\n{}", events(&k, "main-pod"));
    let text = lines.join("\n");
    for want in [
        "color=blue pass=hunter2 pod=main-pod ns=default cm_size=xl expanded=blue-x",
        "file-color=blue file-pass=hunter2 labels=app=\"envtest\"",
        "scratch=scratch",
        "memfs=1",
        "hostpath=hi-from-host",
        "hosts=1 hostname=main-pod",
        "read-only",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed");
    assert_eq!(cs["state"]["terminated"]["exitCode"], 0);
    assert_eq!(condition(&p, "Ready"), "False");
    // A completed pod keeps its status and logs but not its containers.
    eventually(LONG, "the containers to be released", || agent.containers().is_empty().then_some(()));
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let image = images.busybox();
    let spec = format!(
        "  initContainers:\n  - {{name: first, image: {image}, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo first >> /work/order'], volumeMounts: [{{name: w, mountPath: /work}}]}}\n  - {{name: second, image: {image}, imagePullPolicy: IfNotPresent, command: [sh, -c, 'sleep 1; echo second >> /work/order'], volumeMounts: [{{name: w, mountPath: /work}}]}}\n  containers:\n  - {{name: app, image: {image}, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo app >> /work/order; cat /work/order; exec sleep 1000'], volumeMounts: [{{name: w, mountPath: /work}}]}}\n  volumes:\n  - {{name: w, emptyDir: {{}}}}\n"
    );
    apply(&k, &pod("init", &agent.name, &spec));
    let early = wait_pod(&k, "init", "the pod to be initializing", |p| {
        p["status"]["initContainerStatuses"].is_array() || phase(p) == "Running"
    });
    if phase(&early) == "Pending" {
        assert_eq!(condition(&early, "Initialized"), "False");
    }
    let p = wait_pod(&k, "init", "the pod to run", |p| phase(p) == "Running" && condition(p, "Ready") == "True");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    for s in p["status"]["initContainerStatuses"].as_array().unwrap() {
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
        assert_eq!(s["ready"], false);
    }
    assert_eq!(condition(&p, "Initialized"), "True");
    eventually(LONG, "the order in the app's log", || {
        (agent.log_lines(&uid, "app", 0) == ["first", "second", "app"]).then_some(())
    });
}

#[test]
fn crashes_restart_with_a_growing_count_and_back_off() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!(
        "  containers:\n  - {{name: crash, image: {}, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo boom; exit 3']}}\n",
        images.busybox()
    );
    apply(&k, &pod("crash", &agent.name, &spec));
    let p = wait_pod(&k, "crash", "two restarts and a back-off", |p| {
        let cs = &p["status"]["containerStatuses"][0];
        cs["restartCount"].as_i64().unwrap_or(0) >= 1 && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(phase(&p), "Running");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=crash pod=crash_default("),
        "{cs}"
    );
    wait_pod(&k, "crash", "the second restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 2
    });
    assert!(events(&k, "crash").contains("BackOff"));
    drop(agent);
}

#[test]
fn a_failing_liveness_probe_restarts_the_container() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!(
        "  containers:\n  - name: live\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 1000']\n    livenessProbe:\n      exec: {{command: [cat, /tmp/healthy]}}\n      periodSeconds: 1\n      failureThreshold: 2\n",
        images.busybox()
    );
    apply(&k, &pod("live", &agent.name, &spec));
    let p = wait_pod(&k, "live", "a liveness restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(p["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object());
    let ev = events(&k, "live");
    assert!(ev.contains("Liveness probe failed"), "{ev}");
    assert!(ev.contains("failed liveness probe, will be restarted"), "{ev}");
    drop(agent);
}

#[test]
fn a_readiness_probe_gates_ready() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec = format!(
        "  containers:\n  - name: web\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html; sleep 4; exec httpd -f -p {port} -h /www']\n    readinessProbe:\n      httpGet: {{path: /index.html, port: {port}}}\n      periodSeconds: 1\n",
        images.busybox()
    );
    apply(&k, &pod("ready", &agent.name, &spec));
    let p = wait_pod(&k, "ready", "the pod to run", |p| phase(p) == "Running");
    if p["status"]["containerStatuses"][0]["state"]["running"].is_object() {
        let started = Instant::now();
        let early = pod_json(&k, "ready").unwrap();
        if started.elapsed() < Duration::from_secs(2) {
            assert_eq!(condition(&early, "Ready"), "False", "not ready before httpd listens");
        }
    }
    let p = wait_pod(&k, "ready", "Ready", |p| condition(p, "Ready") == "True");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    drop(agent);
}

#[test]
fn termination_messages_come_from_the_file_or_the_log_as_upstream_conformance_asks() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let image = images.busybox();
    let container = |name: &str, script: &str, extra: &str| {
        format!(
            "  - name: {name}\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, '{script}']\n{extra}"
        )
    };
    let fallback = "    terminationMessagePolicy: FallbackToLogsOnError\n";
    let spec = format!(
        "  restartPolicy: Never\n  containers:\n{}{}{}{}",
        // From the file at the default path.
        container("file", "echo -n OK > /dev/termination-log", ""),
        // The file says nothing and the container failed: its log's end.
        container("failed", "echo -n DONE; exit 1", fallback),
        // It succeeded: no message, whatever the log says.
        container("succeeded", "echo -n OK", fallback),
        // Another user, another path.
        container(
            "custom",
            "echo -n DONE > /dev/termination-custom-log",
            "    terminationMessagePath: /dev/termination-custom-log\n    securityContext: {runAsUser: 1000}\n",
        ),
    );
    apply(&k, &pod("messages", &agent.name, &spec));
    let p = wait_pod(&k, "messages", "every container to end", |p| phase(p) == "Failed");
    let message = |name: &str| {
        let statuses = p["status"]["containerStatuses"].as_array().unwrap();
        let s = statuses.iter().find(|s| s["name"] == name).unwrap();
        s["state"]["terminated"]["message"].as_str().map(str::to_string)
    };
    assert_eq!(message("file").as_deref(), Some("OK"));
    assert_eq!(message("failed").as_deref(), Some("DONE"));
    assert_eq!(message("succeeded"), None);
    assert_eq!(message("custom").as_deref(), Some("DONE"));
    drop(agent);
}

#[test]
fn an_oom_kill_is_reported() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!(
        "  restartPolicy: Never\n  containers:\n  - name: hog\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'tail /dev/zero']\n    resources:\n      limits: {{memory: 16Mi}}\n",
        images.busybox()
    );
    apply(&k, &pod("hog", &agent.name, &spec));
    let p = wait_pod(&k, "hog", "the OOM kill", |p| phase(p) == "Failed");
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
    drop(agent);
}

#[test]
fn graceful_deletion_runs_pre_stop_then_sigterm_within_the_grace_period() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let host = tempfile::tempdir().unwrap();
    let spec = format!(
        "  containers:\n  - name: main\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, \"trap 'echo TERM >> /host/log; exit 0' TERM; echo started >> /host/log; while true; do sleep 0.1; done\"]\n    lifecycle:\n      preStop:\n        exec: {{command: [sh, -c, 'echo preStop >> /host/log']}}\n    volumeMounts: [{{name: host, mountPath: /host}}]\n  volumes:\n  - {{name: host, hostPath: {{path: {}}}}}\n",
        images.busybox(),
        host.path().display()
    );
    apply(&k, &pod("graceful", &agent.name, &spec));
    wait_pod(&k, "graceful", "the pod to run", |p| phase(p) == "Running");
    eventually(LONG, "the container to start", || {
        std::fs::read_to_string(host.path().join("log")).ok().filter(|l| l.contains("started"))
    });
    let t = Instant::now();
    k.ok(&["delete", "pod", "graceful", "--grace-period=10", "--wait=true", "--timeout=30s"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "a container that stops on SIGTERM does not wait out the grace period: {took:?}"
    );
    let log = std::fs::read_to_string(host.path().join("log")).unwrap();
    assert_eq!(log, "started\npreStop\nTERM\n");
    // A container that ignores SIGTERM is killed when the grace period ends.
    let spec = format!(
        "  containers:\n  - name: stubborn\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, \"trap '' TERM; while true; do sleep 0.1; done\"]\n",
        images.busybox()
    );
    apply(&k, &pod("stubborn", &agent.name, &spec));
    wait_pod(&k, "stubborn", "the pod to run", |p| phase(p) == "Running");
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    k.ok(&["delete", "pod", "stubborn", "--grace-period=3", "--wait=true", "--timeout=30s"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(12), "{took:?}");
    eventually(LONG, "the containers to go", || agent.containers().is_empty().then_some(()));
}

#[test]
fn an_image_that_does_not_exist_backs_off() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!("  containers:\n  - {{name: ghost, image: {}/test/nope:v1}}\n", images.registry.host);
    apply(&k, &pod("ghost", &agent.name, &spec));
    let p = wait_pod(&k, "ghost", "ErrImagePull", |p| {
        let r = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
        r == "ErrImagePull" || r == "ImagePullBackOff"
    });
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    assert!(w["message"].as_str().unwrap().contains("not found"), "{w}");
    let p = wait_pod(&k, "ghost", "ImagePullBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert_eq!(phase(&p), "Pending");
    let ev = events(&k, "ghost");
    assert!(ev.contains("Failed to pull image"), "{ev}");
    drop(agent);
}

#[test]
fn a_restarted_agent_adopts_its_pods() {
    let (c, images, mut agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!(
        "  containers:\n  - {{name: main, image: {}, imagePullPolicy: IfNotPresent, command: [sleep, '1000']}}\n",
        images.busybox()
    );
    apply(&k, &pod("steady", &agent.name, &spec));
    let before = wait_pod(&k, "steady", "the pod to run", |p| condition(p, "Ready") == "True");
    let cs = before["status"]["containerStatuses"][0].clone();
    agent.kill9();
    assert_eq!(agent.containers().len(), 1, "the container outlives the agent");
    agent.launch();
    // Give the new agent time to settle; nothing about the container may change.
    std::thread::sleep(Duration::from_secs(5));
    let after = wait_pod(&k, "steady", "the pod to stay Ready", |p| condition(p, "Ready") == "True");
    let now = &after["status"]["containerStatuses"][0];
    assert_eq!(now["containerID"], cs["containerID"], "{}", agent.log());
    assert_eq!(now["restartCount"], 0);
    assert_eq!(now["state"]["running"]["startedAt"], cs["state"]["running"]["startedAt"]);
    assert_eq!(agent.containers().len(), 1, "no duplicates: {:?}", agent.containers());
    // An orphan (its pod deleted while the agent was down) is removed on start.
    agent.kill9();
    k.ok(&["delete", "pod", "steady", "--grace-period=0", "--force", "--wait=false"]);
    agent.launch();
    eventually(LONG, "the orphan to be removed", || agent.containers().is_empty().then_some(()));
}
