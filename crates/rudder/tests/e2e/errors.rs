//! Bad input gets a clear Status with the right code: never a panic, never a
//! half-written object.

use crate::Cluster;

fn code_and_body(out: std::process::Output) -> (String, serde_json::Value) {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn strict_validation_invalid_objects_and_malformed_bodies() {
    let c = Cluster::start();
    for v in crate::KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let name = format!("strict-{}", v.replace('.', "-"));
        let bogus = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\nbogus: 1\ndata: {{a: b}}\n");
        let err = k.fails_stdin(&["apply", "-f", "-"], &bogus);
        assert!(err.contains("strict decoding error: unknown field \"bogus\""), "{err}");
        k.fails(&["get", "cm", &name]);
        // Warn keeps the object and warns; Ignore is silent.
        let out = k.run_with(&["apply", "--validate=warn", "-f", "-"], Some(&bogus));
        assert!(out.ok && out.stderr.contains("unknown field \"bogus\""), "{}", out.stderr);

        let invalid = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Bad_Name\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec:\n      containers: [{name: c}]\n";
        let err = k.fails_stdin(&["create", "-f", "-"], invalid);
        assert!(err.contains("is invalid"), "{err}");
        assert!(err.contains("metadata.name"), "{err}");
        assert!(err.contains("spec.template.metadata.labels"), "{err}");
        assert!(err.contains("spec.template.spec.containers[0].image"), "{err}");
    }
    // The raw API: malformed JSON and YAML are 400, the wrong media type 415.
    let url = format!("{}/api/v1/namespaces/default/configmaps", c.url());
    let json = |body: &str, ct: &str| {
        c.curl(&[
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            &format!("Content-Type: {ct}"),
            "--data-binary",
            body,
            &url,
        ])
    };
    let (code, status) = code_and_body(json("{\"apiVersion\":", "application/json"));
    assert_eq!(code, "400");
    assert_eq!(status["reason"], "BadRequest");
    assert!(status["message"].as_str().unwrap().contains("json parse error"), "{status}");
    let dup_url = format!("{url}?fieldValidation=Strict");
    let dup = c.curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"}}"#,
        &dup_url,
    ]);
    let (code, status) = code_and_body(dup);
    assert_eq!(code, "400", "{status}");
    assert!(status["message"].as_str().unwrap().contains("duplicate field \"metadata.name\""), "{status}");
    let (code, _) = code_and_body(json("a: [b", "application/yaml"));
    assert_eq!(code, "400");
    let (code, status) = code_and_body(json("<xml/>", "application/xml"));
    assert_eq!(code, "415");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let garbage = c.data_dir().join("garbage.pb");
    std::fs::write(&garbage, b"k8s\0\x0a\xff\xff garbage").unwrap();
    let (code, status) = code_and_body(json(&format!("@{}", garbage.display()), "application/vnd.kubernetes.protobuf"));
    assert_eq!(code, "400", "{status}");
    // Bodies over 3 MiB are refused with 413.
    let big = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(4 << 20)
    );
    let path = c.data_dir().join("big.json");
    std::fs::write(&path, big).unwrap();
    let out = c.curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", path.display()),
        &url,
    ]);
    let (code, status) = code_and_body(out);
    assert_eq!(code, "413", "{status}");
    // Nothing of the failed writes was stored.
    let k = c.kubectl("1.33");
    let names = k.ok(&["get", "cm", "-o", "name"]);
    assert!(!names.contains("big"), "{names}");
}

#[test]
fn anonymous_and_wrong_credentials_are_refused() {
    let c = Cluster::start();
    let anon = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(c.data_dir().join("tls/ca.crt"))
        .arg(format!("{}/api/v1/namespaces", c.url()))
        .output()
        .unwrap();
    let (code, status) = code_and_body(anon);
    assert_eq!(code, "401");
    assert_eq!(status["reason"], "Unauthorized");
    let bad = c.data_dir().join("bad.kubeconfig");
    let text = std::fs::read_to_string(c.kubeconfig()).unwrap().replace(&c.admin_token(), "not-the-token");
    std::fs::write(&bad, text).unwrap();
    let out = std::process::Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
        .args(["--kubeconfig", bad.to_str().unwrap(), "get", "pods"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // As against upstream: kubectl's discovery fails first and says why.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("You must be logged in to the server"), "{err}");
}
