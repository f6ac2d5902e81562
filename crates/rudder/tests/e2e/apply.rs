//! Declarative and imperative changes: apply (client- and server-side), patch of all
//! three kinds, scale, edit and replace.

use crate::{Cluster, DEPLOYMENT, KUBECTL_VERSIONS};
use serde_json::Value;

fn get(k: &crate::cluster::Kubectl, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&k.ok(&args)).unwrap()
}

#[test]
fn client_side_apply_twice_then_changed() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("csa-{}", v.replace('.', "-"));
        k.ok(&["create", "ns", &ns]);
        assert!(k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], DEPLOYMENT).contains("deployment.apps/web created"));
        assert!(k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], DEPLOYMENT).contains("deployment.apps/web unchanged"));
        let first = get(&k, &["deploy", "web", "-n", &ns]);
        assert_eq!(first["metadata"]["generation"], 1);
        // Upstream's defaults, which describe and rollback rely on.
        assert_eq!(first["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(first["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(first["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(first["spec"]["progressDeadlineSeconds"], 600);

        let changed = DEPLOYMENT.replace("nginx:1.25", "nginx:1.26").replace("replicas: 2", "replicas: 3");
        assert!(k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], &changed).contains("deployment.apps/web configured"));
        let after = get(&k, &["deploy", "web", "-n", &ns]);
        assert_eq!(after["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
        assert_eq!(after["spec"]["replicas"], 3);
        assert_eq!(after["metadata"]["generation"], 2);
        assert_eq!(after["metadata"]["uid"], first["metadata"]["uid"]);
        // Removing a container port through apply deletes it (SMP with $setElementOrder).
        let fewer = changed.replace("        ports:\n        - containerPort: 80\n", "");
        k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], &fewer);
        let trimmed = get(&k, &["deploy", "web", "-n", &ns]);
        assert!(trimmed["spec"]["template"]["spec"]["containers"][0].get("ports").is_none(), "{trimmed}");
        // Switching to Recreate drops rollingUpdate ($retainKeys).
        let recreate = fewer.replace("spec:\n  replicas: 3", "spec:\n  strategy: {type: Recreate}\n  replicas: 3");
        k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], &recreate);
        let strategy = &get(&k, &["deploy", "web", "-n", &ns])["spec"]["strategy"];
        assert_eq!(strategy["type"], "Recreate");
        assert!(strategy.get("rollingUpdate").is_none(), "{strategy}");
        let described = k.ok(&["describe", "deploy", "web", "-n", &ns]);
        assert!(described.contains("StrategyType:") && described.contains("Recreate"), "{described}");
    }
}

#[test]
fn server_side_apply_twice_then_changed_with_conflicts() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("ssa-{}", v.replace('.', "-"));
        k.ok(&["create", "ns", &ns]);
        assert!(
            k.ok_stdin(&["apply", "--server-side", "-n", &ns, "-f", "-"], DEPLOYMENT).contains("serverside-applied")
        );
        k.ok_stdin(&["apply", "--server-side", "-n", &ns, "-f", "-"], DEPLOYMENT);
        let d = get(&k, &["deploy", "web", "-n", &ns, "--show-managed-fields"]);
        // kubectl applied; the deployment controller writes status and annotations as
        // kube-controller-manager, as upstream's does.
        let managers: Vec<(&str, &str)> = d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["manager"].as_str().unwrap(), m["operation"].as_str().unwrap()))
            .collect();
        assert_eq!(
            managers.iter().filter(|(_, op)| *op == "Apply").collect::<Vec<_>>(),
            [&("kubectl", "Apply")],
            "{d}"
        );
        assert!(managers.iter().all(|(m, _)| *m == "kubectl" || *m == "kube-controller-manager"), "{managers:?}");
        assert_eq!(d["metadata"]["generation"], 1);

        // Another manager takes .spec.replicas; the next apply of a different value conflicts.
        k.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=5"]);
        let conflicting = DEPLOYMENT.replace("replicas: 2", "replicas: 4");
        let err = k.fails_stdin(&["apply", "--server-side", "-n", &ns, "-f", "-"], &conflicting);
        assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{err}");
        k.ok_stdin(&["apply", "--server-side", "--force-conflicts", "-n", &ns, "-f", "-"], &conflicting);
        assert_eq!(get(&k, &["deploy", "web", "-n", &ns])["spec"]["replicas"], 4);

        // A field dropped from the applied config is removed.
        let changed = conflicting.replace("  name: web\n  labels: {app: web}\n", "  name: web\n");
        k.ok_stdin(&["apply", "--server-side", "-n", &ns, "-f", "-"], &changed);
        assert!(get(&k, &["deploy", "web", "-n", &ns])["metadata"].get("labels").is_none());
    }
}

#[test]
fn patch_scale_edit_replace() {
    let c = Cluster::start();
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("edit-{}", v.replace('.', "-"));
        k.ok(&["create", "ns", &ns]);
        k.ok_stdin(&["create", "-n", &ns, "-f", "-"], DEPLOYMENT);
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
        ]);
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
        ]);
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
        ]);
        let d = get(&k, &["deploy", "web", "-n", &ns]);
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80,
            "SMP merges by name"
        );
        assert_eq!(d["metadata"]["labels"]["patched"], "merge");
        assert_eq!(d["spec"]["replicas"], 3);
        let failed = k.fails(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        ]);
        assert!(failed.contains("test"), "{failed}");

        assert!(k.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=5"]).contains("scaled"));
        assert_eq!(get(&k, &["deploy", "web", "-n", &ns])["spec"]["replicas"], 5);
        // --current-replicas makes kubectl GET and PUT the Scale, with no Content-Type.
        k.ok(&["scale", "deploy", "web", "-n", &ns, "--current-replicas=5", "--replicas=6"]);
        let stale = k.fails(&["scale", "deploy", "web", "-n", &ns, "--current-replicas=5", "--replicas=7"]);
        assert!(stale.contains("5"), "{stale}");
        let scale = k.ok(&["get", "--raw", &format!("/apis/apps/v1/namespaces/{ns}/deployments/web/scale")]);
        let scale: Value = serde_json::from_str(&scale).unwrap();
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 6);
        assert_eq!(scale["status"]["selector"], "app=web");

        let mut edit = k.command(&["edit", "deploy", "web", "-n", &ns]);
        edit.env("KUBE_EDITOR", "sed -i s/replicas:\\ 6/replicas:\\ 8/");
        let out = edit.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(get(&k, &["deploy", "web", "-n", &ns])["spec"]["replicas"], 8);

        // The deployment controller writes status meanwhile, so a copy may be stale by
        // the time it is sent, as against any cluster: read again and retry then.
        let mut replaced = String::new();
        for attempt in 1..=5 {
            let current = k.ok(&["get", "deploy", "web", "-n", &ns, "-o", "yaml"]);
            replaced = current.replace("replicas: 8", "replicas: 9");
            let out = k.run_with(&["replace", "-f", "-"], Some(&replaced));
            if out.ok {
                assert!(out.stdout.contains("replaced"), "{}", out.stdout);
                break;
            }
            assert!(out.stderr.contains("the object has been modified") && attempt < 5, "{}", out.stderr);
        }
        assert_eq!(get(&k, &["deploy", "web", "-n", &ns])["spec"]["replicas"], 9);
        // Replacing from the stale copy conflicts on its resourceVersion.
        let err = k.fails_stdin(&["replace", "-f", "-"], &replaced);
        assert!(err.contains("the object has been modified"), "{err}");
        k.ok_stdin(&["delete", "-f", "-", "-n", &ns], DEPLOYMENT);
        k.fails(&["get", "deploy", "web", "-n", &ns]);
    }
}
