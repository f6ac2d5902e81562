//! What kubectl learns about the server: version, resources, and schemas.

use crate::{Cluster, KUBECTL_VERSIONS};

#[test]
fn version_api_resources_and_explain() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let version = k.ok(&["version"]);
        assert!(version.contains("Server Version: v1.33") || version.contains("GitVersion:\"v1.33"), "{version}");
        let resources = k.ok(&["api-resources"]);
        for (name, short, group) in
            [("deployments", "deploy", "apps/v1"), ("pods", "po", "v1"), ("leases", "", "coordination.k8s.io/v1")]
        {
            assert!(
                resources.lines().any(|l| l.starts_with(name) && l.contains(group) && l.contains(short)),
                "{name} missing:\n{resources}"
            );
        }
        let namespaced = k.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
        assert!(
            namespaced.contains("nodes") && namespaced.contains("namespaces") && !namespaced.contains("pods"),
            "{namespaced}"
        );
        let explained = k.ok(&["explain", "deployment.spec.strategy"]);
        assert!(explained.contains("rollingUpdate") && explained.contains("DeploymentStrategy"), "{explained}");
        let pod = k.ok(&["explain", "pods.spec.containers.image"]);
        assert!(pod.contains("image") && pod.contains("string"), "{pod}");
        // kubectl get all reads the `all` category from discovery.
        k.ok(&["get", "all"]);
        // drain reads legacy discovery for pods/eviction.
        let legacy = k.ok(&["get", "--raw", "/api/v1"]);
        assert!(legacy.contains("\"pods/eviction\""), "{legacy}");
    }
}

#[test]
fn health_and_metrics() {
    let c = Cluster::start();
    // Health and version answer without credentials; everything else needs them.
    for path in ["/readyz", "/livez", "/healthz", "/version", "/cacerts"] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(c.data_dir().join("tls/ca.crt"))
            .arg(format!("{}{path}", c.url()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{path}");
    }
    // /cacerts is the CA a joining node pins with the hash in its join token.
    let ca = std::process::Command::new("curl").args(["-sSk", &format!("{}/cacerts", c.url())]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ca.stdout), std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap());
    let metrics = c.curl(&[&format!("{}/metrics", c.url())]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(text.contains("# TYPE apiserver_request_total counter"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
}
