//! `kubectl get -w`: a table row per change, from the list's resourceVersion, and a
//! named watch that first shows the current object.

use crate::{Cluster, KUBECTL_VERSIONS};
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn expect_line(rx: &mpsc::Receiver<String>, want: &str) -> String {
    loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no line with {want:?} in 10s"));
        if line.contains(want) {
            return line;
        }
    }
}

#[test]
fn get_watch_follows_changes() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("w-{}", v.replace('.', "-"));
        k.ok(&["create", "ns", &ns]);
        k.ok(&["create", "cm", "before", "-n", &ns, "--from-literal=a=1"]);
        let mut watch = k.command(&["get", "cm", "-n", &ns, "-w", "--output-watch-events"]);
        let mut child = watch.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let rx = lines_of(&mut child);
        expect_line(&rx, "before");
        k.ok(&["create", "cm", "during", "-n", &ns, "--from-literal=a=1"]);
        assert!(expect_line(&rx, "during").contains("ADDED"));
        k.ok(&["label", "cm", "during", "-n", &ns, "x=y"]);
        assert!(expect_line(&rx, "during").contains("MODIFIED"));
        k.ok(&["delete", "cm", "during", "-n", &ns]);
        assert!(expect_line(&rx, "during").contains("DELETED"));
        let _ = child.kill();
        let _ = child.wait();

        // A named watch starts from the current object (resourceVersion=0).
        let mut named = k.command(&["get", "cm", "before", "-n", &ns, "-w"]);
        let mut child = named.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let rx = lines_of(&mut child);
        expect_line(&rx, "before");
        k.ok(&["label", "cm", "before", "-n", &ns, "seen=yes"]);
        expect_line(&rx, "before");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn raw_watches_get_bookmarks_and_end_at_their_timeout() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok(&["create", "cm", "x", "--from-literal=a=b"]);
    let list: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"])).unwrap();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    // From the list's revision nothing has changed: only a bookmark arrives, just
    // before the two-second timeout ends the stream.
    let started = std::time::Instant::now();
    let out = c.curl(&[
        "-N",
        &format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=2",
            c.url()
        ),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(10));
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "BOOKMARK");
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");
    // Without a resourceVersion the current state arrives first, as ADDED events.
    let initial =
        c.curl(&["-N", &format!("{}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", c.url())]);
    let text = String::from_utf8_lossy(&initial.stdout);
    assert!(text.contains("\"type\":\"ADDED\"") && text.contains("\"name\":\"x\""), "{text}");
}

#[test]
fn metadata_only_get_list_and_watch() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok(&["create", "cm", "meta", "--from-literal=secret-looking=value"]);
    let accept = |what: &str| format!("Accept: application/json;as={what};g=meta.k8s.io;v=v1, application/json");
    let path = format!("{}/api/v1/namespaces/default/configmaps", c.url());
    let json = |out: Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let one = json(c.curl(&["-H", &accept("PartialObjectMetadata"), &format!("{path}/meta")]));
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(one["metadata"]["name"], "meta");
    assert!(one.get("data").is_none(), "{one}");
    let list = json(c.curl(&["-H", &accept("PartialObjectMetadataList"), &path]));
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    let items = list["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["metadata"]["name"] == "meta" && i.get("data").is_none()), "{list}");
    let watch = c.curl(&["-N", "-H", &accept("PartialObjectMetadata"), &format!("{path}?watch=true&timeoutSeconds=1")]);
    let text = String::from_utf8_lossy(&watch.stdout);
    let added: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["object"]["metadata"]["name"] == "meta")
        .unwrap_or_else(|| panic!("no event for meta: {text}"));
    assert_eq!(added["object"]["kind"], "PartialObjectMetadata");
    assert!(added["object"].get("data").is_none(), "{added}");
}

#[test]
fn lists_page_with_limit_but_answer_whole_at_resource_version_zero() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    for i in 0..3 {
        k.ok(&["create", "cm", &format!("page-{i}"), "--from-literal=a=b"]);
    }
    let get = |query: &str| -> serde_json::Value {
        serde_json::from_str(&k.ok(&["get", "--raw", &format!("/api/v1/namespaces/default/configmaps?{query}")]))
            .unwrap()
    };
    let names = |l: &serde_json::Value| l["items"].as_array().unwrap().len();
    // Without a resourceVersion the limit pages, with a continue token.
    let first = get("limit=1");
    assert_eq!(names(&first), 1, "{first}");
    let token = first["metadata"]["continue"].as_str().expect("a continue token").to_string();
    let second = get(&format!("limit=1&continue={token}"));
    assert_eq!(names(&second), 1, "{second}");
    assert_ne!(first["items"][0]["metadata"]["name"], second["items"][0]["metadata"]["name"]);
    // resourceVersion=0 is what informers list with: upstream's watch cache answers the
    // whole list, ignoring the limit.
    let whole = get("limit=1&resourceVersion=0");
    assert!(names(&whole) >= 3, "{whole}");
    assert!(whole["metadata"].get("continue").is_none(), "{whole}");
}
