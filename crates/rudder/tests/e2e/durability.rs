//! State and credentials survive restarts, and a crash loses no acknowledged write.

use crate::Cluster;
use std::process::{Command, Stdio};

#[test]
fn restart_keeps_objects_and_credentials() {
    let mut c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok(&["create", "ns", "kept"]);
    k.ok(&["create", "cm", "cfg", "-n", "kept", "--from-literal=a=b"]);
    let before: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "cm", "cfg", "-n", "kept", "-o", "json"])).unwrap();
    let ca = std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap();
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).unwrap();
    let token = std::fs::read_to_string(c.data_dir().join("node-token")).unwrap();
    c.restart();
    assert_eq!(std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap(), ca);
    assert_eq!(std::fs::read_to_string(c.kubeconfig()).unwrap(), kubeconfig);
    assert_eq!(std::fs::read_to_string(c.data_dir().join("node-token")).unwrap(), token);
    assert!(token.starts_with("K10"));
    let after: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "cm", "cfg", "-n", "kept", "-o", "json"])).unwrap();
    assert_eq!(before, after);
    // A watch from before the restart must relist: 410 Gone as an ERROR event.
    let rv = before["metadata"]["resourceVersion"].as_str().unwrap();
    let out = c.curl(&[
        "-N",
        &format!(
            "{}/api/v1/namespaces/kept/configmaps?watch=true&resourceVersion={}&timeoutSeconds=1",
            c.url(),
            rv.parse::<i64>().unwrap() - 1
        ),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"type\":\"ERROR\"") && text.contains("\"code\":410"), "{text}");
    // New writes continue with higher revisions.
    k.ok(&["create", "cm", "next", "-n", "kept"]);
    let next: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "cm", "next", "-n", "kept", "-o", "json"])).unwrap();
    let newer: i64 = next["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(newer > rv.parse::<i64>().unwrap());
}

/// Writers hammer the API with creates; the server is killed with SIGKILL in the
/// middle; every create that was answered 201 must be there after a restart.
#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_write() {
    let mut c = Cluster::start();
    let script = format!(
        r#"for i in $(seq 1 400); do
  code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 --cacert {ca} -H "Authorization: Bearer {token}" \
    -H 'Content-Type: application/json' -X POST {url}/api/v1/namespaces/default/configmaps \
    --data '{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"w'$W'-'$i'"}},"data":{{"i":"'$i'"}}}}')
  [ "$code" = 201 ] && echo "w$W-$i"
done"#,
        ca = c.data_dir().join("tls/ca.crt").display(),
        token = c.admin_token(),
        url = c.url()
    );
    let writers: Vec<_> = (0..6)
        .map(|w| {
            Command::new("bash").args(["-c", &script]).env("W", w.to_string()).stdout(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    c.kill9();
    let mut acked = Vec::new();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        acked.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string));
    }
    assert!(acked.len() > 20, "the burst should have been acknowledged in part before the kill: {}", acked.len());
    c.start_again();
    let k = c.kubectl("1.33");
    let stored = k.ok(&["get", "cm", "-o", "name"]);
    let missing: Vec<&String> = acked.iter().filter(|n| !stored.contains(&format!("configmap/{n}\n"))).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// The same server on the etcd backend: kubectl works, and state lives in etcd across
/// a restart.
#[test]
fn etcd_backend_serves_kubectl_and_keeps_state() {
    let etcd = store::testing::EtcdServer::start();
    let mut c = Cluster::start_with(&["--store", "etcd", "--etcd-endpoints", &etcd.endpoint]);
    for v in crate::KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("etcd-{}", v.replace('.', "-"));
        k.ok(&["create", "ns", &ns]);
        k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], crate::DEPLOYMENT);
        k.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=4"]);
        let table = k.ok(&["get", "deploy", "-n", &ns]);
        assert!(table.contains("0/4"), "{table}");
    }
    c.restart();
    let k = c.kubectl("1.33");
    let replicas = k.ok(&["get", "deploy", "web", "-n", "etcd-1-33", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "4");
    k.ok(&["delete", "ns", "etcd-1-27"]);
    k.fails(&["get", "ns", "etcd-1-27"]);
}
