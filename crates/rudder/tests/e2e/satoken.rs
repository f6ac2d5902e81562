//! Service-account tokens end to end: a pod's `kube-api-access` volume carries a token
//! bound to the pod (on tmpfs, group-owned by its fsGroup) that reaches discovery but
//! not pods, and stops working once the pod is gone; `kubectl create token` prints one
//! that `kubectl auth whoami` accepts.
//!
//! The pod does not call the API itself: busybox's built-in TLS client cannot talk to
//! the rustls listener, so the test reads the token from the pod's log and uses it
//! from the host with curl and kubectl, which is what a client in the pod would send.

use crate::pods::{apply, events, phase, pod, setup, wait_pod};
use std::process::Command;

const KUBECTL: &str = "1.33";

/// The HTTP status of a GET with a bearer token.
fn status_with(c: &crate::Cluster, token: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(c.data_dir().join("tls/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}{path}", c.url()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pods_token_reaches_discovery_only_and_dies_with_the_pod() {
    let (c, images, agent) = setup();
    let k = c.kubectl(KUBECTL);
    let spec = format!(
        r#"  restartPolicy: Never
  securityContext: {{fsGroup: 2345}}
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [sh, -c]
    args:
    - |
      d=/var/run/secrets/kubernetes.io/serviceaccount
      echo "ns=$(cat $d/namespace) ca=$(grep -c 'BEGIN CERTIFICATE' $d/ca.crt)"
      echo "fs=$(grep " $d " /proc/mounts | cut -d' ' -f3)"
      echo "token-owner=$(stat -L -c '%g %a' $d/token)"
      echo "token=$(cat $d/token)"
"#,
        image = images.busybox()
    );
    apply(&k, &pod("reader", &agent.name, &spec));
    let p = wait_pod(&k, "reader", "the pod to finish", |p| matches!(phase(p), "Succeeded" | "Failed"));
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let lines = agent.log_lines(&uid, "main", 0);
    assert_eq!(phase(&p), "Succeeded", "{lines:?}\n{}", events(&k, "reader"));
    let text = lines.join("\n");
    for want in ["ns=default ca=1", "fs=tmpfs", "token-owner=2345 640"] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let token = lines.iter().find_map(|l| l.strip_prefix("token=")).expect("the token line").to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    assert_eq!(status_with(&c, &token, "/api"), "200");
    assert_eq!(status_with(&c, &token, "/apis/apps/v1"), "200");
    assert_eq!(status_with(&c, &token, "/api/v1/namespaces/default/pods"), "403");
    let denied = k.fails(&["--token", &token, "get", "pods"]);
    assert!(
        denied.contains(r#"pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{denied}"
    );
    let whoami = k.ok(&["--token", &token, "auth", "whoami", "-o", "json"]);
    assert!(whoami.contains("system:serviceaccount:default:default") && whoami.contains("\"reader\""), "{whoami}");

    // The token is bound to the pod: once the pod is gone, so is the token.
    k.ok(&["delete", "pod", "reader", "--wait=true", "--timeout=30s"]);
    assert_eq!(status_with(&c, &token, "/api"), "401");
}

#[test]
fn kubectl_create_token_prints_a_token_that_authenticates() {
    let c = crate::Cluster::start();
    for version in crate::KUBECTL_VERSIONS {
        let k = c.kubectl(version);
        crate::pods::eventually(std::time::Duration::from_secs(30), "the default service account", || {
            k.run(&["get", "sa", "default"]).ok.then_some(())
        });
        let token = k.ok(&["create", "token", "default", "--duration", "10m"]).trim().to_string();
        assert_eq!(status_with(&c, &token, "/version"), "200", "kubectl {version}");
        assert_eq!(status_with(&c, &token, "/api/v1/namespaces/default/pods"), "403", "kubectl {version}");
        let raw = k.ok(&["--token", &token, "get", "--raw", "/api"]);
        assert!(raw.contains("APIVersions"), "{raw}");
        let short = k.fails(&["create", "token", "default", "--duration", "1m"]);
        assert!(short.contains("may not specify a duration less than 10 minutes"), "kubectl {version}: {short}");
        let missing = k.fails(&["create", "token", "nope"]);
        assert!(missing.contains(r#"serviceaccounts "nope" not found"#), "kubectl {version}: {missing}");
        let unbound =
            k.fails(&["create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "x"]);
        assert!(unbound.contains(r#"pods "x" not found"#), "kubectl {version}: {unbound}");
    }
    let k = c.kubectl("1.33");
    let token = k.ok(&["create", "token", "default"]).trim().to_string();
    let whoami = k.ok(&["--token", &token, "auth", "whoami"]);
    assert!(whoami.contains("system:serviceaccount:default:default"), "{whoami}");
}
