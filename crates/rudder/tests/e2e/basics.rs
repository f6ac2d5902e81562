//! Creating, reading, labelling and deleting, as users do every day.

use crate::{Cluster, KUBECTL_VERSIONS};

#[test]
fn create_get_describe_label_delete() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("team-{}", v.replace('.', "-"));
        // 1.33 sends this body as protobuf, 1.27 as JSON.
        assert!(k.ok(&["create", "namespace", &ns]).contains(&format!("namespace/{ns} created")));
        let dup = k.fails(&["create", "namespace", &ns]);
        assert!(dup.contains(&format!("namespaces \"{ns}\" already exists")), "{dup}");
        k.ok(&["create", "configmap", "cfg", "-n", &ns, "--from-literal=colour=blue", "--from-literal=size=l"]);
        k.ok(&["create", "secret", "generic", "pw", "-n", &ns, "--from-literal=password=s3cret"]);
        k.ok(&["create", "configmap", "other", "-n", &ns, "--from-literal=a=b"]);

        let table = k.ok(&["get", "configmaps", "-n", &ns]);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "DATA", "AGE"]);
        assert!(table.lines().any(|l| l.starts_with("cfg") && l.split_whitespace().nth(1) == Some("2")), "{table}");
        let secrets = k.ok(&["get", "secrets", "-n", &ns]);
        assert!(secrets.lines().any(|l| l.contains("pw") && l.contains("Opaque")), "{secrets}");

        let yaml = k.ok(&["get", "configmap", "cfg", "-n", &ns, "-o", "yaml"]);
        assert!(yaml.contains("colour: blue") && yaml.contains("resourceVersion:") && yaml.contains("uid:"), "{yaml}");
        let json: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "secret", "pw", "-n", &ns, "-o", "json"])).unwrap();
        assert_eq!(json["data"]["password"], "czNjcmV0");
        assert_eq!(json["type"], "Opaque");

        k.ok(&["label", "configmap", "cfg", "-n", &ns, "tier=front"]);
        k.ok(&["annotate", "configmap", "cfg", "-n", &ns, "owner=ops"]);
        let labelled = k.ok(&["get", "cm", "-n", &ns, "-l", "tier=front", "-o", "name"]);
        assert_eq!(labelled.trim(), "configmap/cfg");
        let set_based = k.ok(&["get", "cm", "-n", &ns, "-l", "tier in (front,back),!missing", "-o", "name"]);
        assert_eq!(set_based.trim(), "configmap/cfg");
        let by_field = k.ok(&["get", "cm", "-n", &ns, "--field-selector", "metadata.name=other", "-o", "name"]);
        assert_eq!(by_field.trim(), "configmap/other");
        let shown = k.ok(&["get", "cm", "cfg", "-n", &ns, "--show-labels"]);
        assert!(shown.contains("tier=front"), "{shown}");

        let described = k.ok(&["describe", "configmap", "cfg", "-n", &ns]);
        assert!(
            described.contains("Labels:") && described.contains("tier=front") && described.contains("owner: ops"),
            "{described}"
        );

        let wide = k.ok(&["get", "namespaces", "-o", "wide"]);
        assert!(wide.contains(&ns) && wide.contains("Active"), "{wide}");

        assert!(k.ok(&["delete", "configmap", "other", "-n", &ns]).contains("deleted"));
        k.ok(&["delete", "configmap", "-n", &ns, "-l", "tier=front"]);
        let left = k.ok(&["get", "cm", "-n", &ns, "-o", "name"]);
        assert!(!left.contains("configmap/cfg") && !left.contains("configmap/other"), "{left}");
        let missing = k.fails(&["get", "configmap", "nope", "-n", &ns]);
        assert!(missing.contains("Error from server (NotFound): configmaps \"nope\" not found"), "{missing}");

        // Deleting a namespace deletes what is in it, then the namespace; kubectl waits.
        let started = std::time::Instant::now();
        assert!(k.ok(&["delete", "namespace", &ns]).contains(&format!("namespace \"{ns}\" deleted")));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        let gone = k.fails(&["get", "namespace", &ns]);
        assert!(gone.contains("NotFound"), "{gone}");
        let leftovers = c.curl(&[&format!("{}/api/v1/namespaces/{ns}/secrets", c.url())]);
        let leftovers: serde_json::Value = serde_json::from_slice(&leftovers.stdout).unwrap();
        assert_eq!(leftovers["items"].as_array().map(Vec::len), Some(0), "{leftovers}");
    }
}

#[test]
fn default_namespaces_exist_and_missing_ones_refuse_content() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{want}")), "{ns}");
    }
    let labels = k.ok(&["get", "ns", "default", "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains("kubernetes.io/metadata.name"), "{labels}");
    let err = k.fails(&["create", "configmap", "x", "-n", "does-not-exist"]);
    assert!(err.contains("namespaces \"does-not-exist\" not found"), "{err}");
}

#[test]
fn pods_default_and_describe_like_upstream() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let name = format!("p{}", v.replace('.', ""));
        k.ok(&["run", &name, "--image=busybox:1.36", "--port=8080", "--", "sleep", "3600"]);
        let pod: serde_json::Value = serde_json::from_str(&k.ok(&["get", "pod", &name, "-o", "json"])).unwrap();
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
        let table = k.ok(&["get", "pods", &name, "-o", "wide"]);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(&header[..5], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assert!(header.contains(&"NODE") && header.contains(&"IP"), "{table}");
        assert!(table.contains("0/1") && table.contains("Pending"), "{table}");
        let described = k.ok(&["describe", "pod", &name]);
        assert!(described.contains("8080/TCP"), "{described}");
        // An unscheduled pod has no grace period: deletion is immediate.
        k.ok(&["delete", "pod", &name, "--wait=true"]);
        k.fails(&["get", "pod", &name]);
    }
}

/// events.k8s.io/v1 Events are core Events seen through another version.
#[test]
fn events_are_one_object_in_two_versions() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok(&["create", "configmap", "cfg", "--from-literal=a=b"]);
    let uid = k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.metadata.uid}"]);
    let event = "apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: hello, namespace: default}
eventTime: 2024-01-02T03:04:05.000000Z
reportingController: example.com/tester
reportingInstance: tester-1
action: Testing
reason: Tested
type: Normal
note: hello from events.k8s.io
regarding: {kind: ConfigMap, name: cfg, namespace: default, apiVersion: v1, uid: UID}
"
    .replace("UID", &uid);
    k.ok_stdin(&["create", "-f", "-"], &event);
    let core: serde_json::Value = serde_json::from_str(&k.ok(&["get", "events.v1.", "hello", "-o", "json"])).unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "hello from events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "cfg");
    assert_eq!(core["reportingComponent"], "example.com/tester");
    let v1: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "events.v1.events.k8s.io", "hello", "-o", "json"])).unwrap();
    assert_eq!(v1["note"], "hello from events.k8s.io");
    assert_eq!(v1["metadata"]["uid"], core["metadata"]["uid"]);
    let table = k.ok(&["get", "events", "--field-selector", "involvedObject.name=cfg"]);
    assert!(table.contains("Tested") && table.contains("configmap/cfg"), "{table}");
    // describe finds the event by the object's uid, through the core version.
    let described = k.ok(&["describe", "configmap", "cfg"]);
    assert!(described.contains("Tested") && described.contains("hello from events.k8s.io"), "{described}");
    k.ok(&["delete", "events.v1.events.k8s.io", "hello"]);
    k.fails(&["get", "events.v1.", "hello"]);
}

/// Pods get their priority from their PriorityClass (or the global default), as
/// upstream's Priority admission plugin sets it.
#[test]
fn priority_classes_set_pod_priority() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    let classes = k.ok(&["get", "priorityclasses"]);
    assert!(classes.contains("system-node-critical") && classes.contains("2000001000"), "{classes}");
    k.ok(&["create", "priorityclass", "high", "--value=1000", "--description=important"]);
    k.ok(&["run", "plain", "--image=busybox:1.36"]);
    assert_eq!(
        k.ok(&["get", "pod", "plain", "-o", "jsonpath={.spec.priority} {.spec.preemptionPolicy}"]),
        "0 PreemptLowerPriority"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: vip}\nspec:\n  priorityClassName: high\n  containers: [{name: c, image: busybox:1.36}]\n";
    k.ok_stdin(&["create", "-f", "-"], pod);
    assert_eq!(k.ok(&["get", "pod", "vip", "-o", "jsonpath={.spec.priority}"]), "1000");
    let missing = k.fails_stdin(&["create", "-f", "-"], &pod.replace("vip", "lost").replace("high", "nope"));
    assert!(missing.contains("no PriorityClass with name nope was found"), "{missing}");
    k.ok(&["create", "priorityclass", "everyone", "--value=7", "--global-default"]);
    let again = k.fails(&["create", "priorityclass", "another", "--value=8", "--global-default"]);
    assert!(again.contains("already marked as default"), "{again}");
    k.ok(&["run", "defaulted", "--image=busybox:1.36"]);
    assert_eq!(
        k.ok(&["get", "pod", "defaulted", "-o", "jsonpath={.spec.priorityClassName}={.spec.priority}"]),
        "everyone=7"
    );
}
