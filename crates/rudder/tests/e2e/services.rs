//! Services in the control plane: addresses and ports handed out and taken back,
//! endpoints and endpoint slices following pods on simulated nodes, the `kubernetes`
//! Service, LoadBalancer addresses, and the 422s for what cannot be.

use crate::cluster::eventually;
use crate::cluster::{Kubectl, Sim};
use crate::{Cluster, DEPLOYMENT, KUBECTL_VERSIONS};
use std::time::Duration;

fn get(k: &Kubectl, args: &[&str]) -> String {
    k.run(args).stdout.trim().to_string()
}

/// The ready and not-ready addresses of an Endpoints object.
fn endpoint_ips(k: &Kubectl, name: &str) -> (Vec<String>, Vec<String>) {
    let split = |s: String| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    };
    (
        split(get(k, &["get", "endpoints", name, "-o", "jsonpath={.subsets[*].addresses[*].ip}"])),
        split(get(k, &["get", "endpoints", name, "-o", "jsonpath={.subsets[*].notReadyAddresses[*].ip}"])),
    )
}

/// The `ready` condition of every endpoint in a Service's slices, by address.
fn slice_endpoints(k: &Kubectl, svc: &str) -> Vec<(String, String)> {
    let out = get(
        k,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
            "-o",
            r#"jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{"\n"}{end}"#,
        ],
    );
    let mut v: Vec<(String, String)> =
        out.lines().filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
    v.sort();
    v
}

fn running_pods(k: &Kubectl, selector: &str) -> Vec<String> {
    let out = get(
        k,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            r#"jsonpath={range .items[?(@.status.podIP)]}{.metadata.name}{"\n"}{end}"#,
        ],
    );
    out.lines().map(str::to_string).collect()
}

#[test]
fn services_get_addresses_and_endpoints_follow_pods() {
    let mut c = Cluster::start();
    let k = c.kubectl("1.33");

    // The API server's own Service, pointing at it.
    let kube_ip = get(&k, &["get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(kube_ip, "10.43.0.1");
    assert_eq!(
        get(&k, &["get", "service", "kubernetes", "-o", "jsonpath={.spec.ports[0].targetPort}"]),
        c.port.to_string()
    );
    let ep = get(
        &k,
        &["get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}"],
    );
    assert_eq!(ep, format!("127.0.0.1:{}", c.port));
    assert_eq!(
        get(&k, &["get", "endpointslice", "kubernetes", "-o", "jsonpath={.endpoints[0].addresses[0]}"]),
        "127.0.0.1"
    );

    let _sim = Sim::start(&c, 2, "svc");
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    // `kubectl expose` makes a Service with the Deployment's selector and an address.
    k.ok(&["expose", "deployment/web", "--port", "80", "--target-port", "80"]);
    let ip = get(&k, &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43.") && ip != "10.43.0.1", "{ip}");
    assert_eq!(
        get(&k, &["get", "service", "web", "-o", "jsonpath={.spec.ipFamilies[0]}/{.spec.ipFamilyPolicy}"]),
        "IPv4/SingleStack"
    );

    let settled = |n: usize| {
        eventually(Duration::from_secs(30), &format!("{n} ready endpoints"), || {
            let pods = running_pods(&k, "app=web");
            let (ready, not_ready) = endpoint_ips(&k, "web");
            let slices = slice_endpoints(&k, "web");
            (pods.len() == n
                && ready.len() == n
                && not_ready.is_empty()
                && slices.len() == n
                && slices.iter().all(|(_, r)| r == "true"))
            .then_some(ready)
        })
    };
    settled(2);
    k.ok(&["scale", "deployment/web", "--replicas", "4"]);
    settled(4);
    k.ok(&["scale", "deployment/web", "--replicas", "1"]);
    let ready = settled(1);

    // A pod that turns unready moves to notReadyAddresses and its slice endpoint turns not ready.
    let pod = running_pods(&k, "app=web").remove(0);
    k.ok(&[
        "patch",
        "pod",
        &pod,
        "--subresource=status",
        "--type=strategic",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]);
    eventually(Duration::from_secs(15), "the pod to be not ready in both", || {
        let (r, n) = endpoint_ips(&k, "web");
        let s = slice_endpoints(&k, "web");
        (r.is_empty() && n == ready && s == vec![(ready[0].clone(), "false".to_string())]).then_some(())
    });
    let slice_labels = get(
        &k,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[0].metadata.labels}",
        ],
    );
    assert!(
        slice_labels.contains(r#""endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io""#),
        "{slice_labels}"
    );
    let owner = get(
        &k,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name}",
        ],
    );
    assert_eq!(owner, "Service/web");

    // Headless: no address, endpoints all the same, slices labelled so.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-headless}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    assert_eq!(get(&k, &["get", "service", "web-headless", "-o", "jsonpath={.spec.clusterIP}"]), "None");
    eventually(Duration::from_secs(15), "headless endpoints", || {
        let labels = get(
            &k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web-headless",
                "-o",
                "jsonpath={.items[0].metadata.labels}",
            ],
        );
        (endpoint_ips(&k, "web-headless").1 == ready && labels.contains("service.kubernetes.io/headless")).then_some(())
    });

    // Without a selector, hand-made endpoints are kept as they are.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: manual}\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: manual}\nsubsets: [{addresses: [{ip: 10.99.0.1}], ports: [{port: 80}]}]\n",
    );
    // So are Endpoints without any Service.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: orphan}\nsubsets: [{addresses: [{ip: 10.99.0.2}], ports: [{port: 80}]}]\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(endpoint_ips(&k, "manual").0, ["10.99.0.1"]);
    assert_eq!(endpoint_ips(&k, "orphan").0, ["10.99.0.2"]);
    // The mirroring controller copies them into a slice, which follows their updates;
    // Endpoints without a Service get none.
    eventually(Duration::from_secs(15), "a mirrored slice of manual", || {
        (slice_endpoints(&k, "manual") == [("10.99.0.1".to_string(), "true".to_string())]).then_some(())
    });
    assert!(
        get(
            &k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=manual",
                "-o",
                "jsonpath={.items[0].metadata.labels}"
            ]
        )
        .contains(r#""endpointslice.kubernetes.io/managed-by":"endpointslicemirroring-controller.k8s.io""#)
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: manual}\nsubsets: [{addresses: [{ip: 10.99.0.3}], notReadyAddresses: [{ip: 10.99.0.4}], ports: [{port: 80}]}]\n",
    );
    eventually(Duration::from_secs(15), "the mirrored slice to follow the update", || {
        let want = [("10.99.0.3".to_string(), "true".to_string()), ("10.99.0.4".to_string(), "false".to_string())];
        (slice_endpoints(&k, "manual") == want).then_some(())
    });
    assert_eq!(get(&k, &["get", "endpointslices", "-l", "kubernetes.io/service-name=orphan", "-o", "name"]), "");

    // ExternalName: a name, no address, no endpoints.
    k.ok(&["create", "service", "externalname", "ext", "--external-name", "example.com"]);
    assert_eq!(
        get(&k, &["get", "service", "ext", "-o", "jsonpath={.spec.clusterIP}{.spec.externalName}"]),
        "example.com"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!k.run(&["get", "endpoints", "ext"]).ok);

    // LoadBalancer: the Ready nodes' addresses, as k3s's service load balancer gives.
    k.ok(&["create", "service", "loadbalancer", "lb", "--tcp", "80"]);
    let node_ips = {
        let mut v: Vec<String> = get(
            &k,
            &["get", "nodes", "-o", r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#],
        )
        .split_whitespace()
        .map(str::to_string)
        .collect();
        v.sort();
        v.join(" ")
    };
    eventually(Duration::from_secs(15), "load balancer ingress", || {
        let got = get(&k, &["get", "service", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"]);
        (got == node_ips && !got.is_empty()).then_some(())
    });
    assert_eq!(get(&k, &["get", "service", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ipMode}"]), "VIP");
    let lb_port = get(&k, &["get", "service", "lb", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    assert!((30000..=32767).contains(&lb_port.parse::<i64>().unwrap()), "{lb_port}");

    // Deleting the Service removes its endpoints and gives its address back; a
    // restart keeps what is allocated.
    k.ok(&["create", "service", "clusterip", "keep", "--tcp", "80", "--clusterip", "10.43.200.1"]);
    c.restart();
    let err = k.fails(&["create", "service", "clusterip", "again", "--tcp", "80", "--clusterip", "10.43.200.1"]);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    k.ok(&["delete", "service", "web"]);
    eventually(Duration::from_secs(15), "the endpoints and slices of web to go", || {
        let slices = get(&k, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "name"]);
        (!k.run(&["get", "endpoints", "web"]).ok && slices.is_empty()).then_some(())
    });
    k.ok(&["create", "service", "clusterip", "reuse", "--tcp", "80", "--clusterip", &ip]);
}

#[test]
fn allocation_refusals_name_the_field() {
    let c = Cluster::start();
    for (i, v) in KUBECTL_VERSIONS.iter().enumerate() {
        let k = c.kubectl(v);
        let ip = format!("10.43.100.{}", i + 1);
        let port = (30100 + i).to_string();
        k.ok(&["create", "service", "clusterip", &format!("a{i}"), "--tcp", "80", "--clusterip", &ip]);
        let err = k.fails(&["create", "service", "clusterip", &format!("b{i}"), "--tcp", "80", "--clusterip", &ip]);
        assert!(err.contains(&format!("spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")), "{err}");
        let err =
            k.fails(&["create", "service", "clusterip", &format!("c{i}"), "--tcp", "80", "--clusterip", "10.0.0.5"]);
        assert!(
            err.contains(
                "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
            ),
            "{err}"
        );

        k.ok(&["create", "service", "nodeport", &format!("np{i}"), "--tcp", "80", "--node-port", &port]);
        assert_eq!(get(&k, &["get", "service", &format!("np{i}"), "-o", "jsonpath={.spec.ports[0].nodePort}"]), port);
        let err =
            k.fails(&["create", "service", "nodeport", &format!("np-dup{i}"), "--tcp", "80", "--node-port", &port]);
        assert!(
            err.contains(&format!("spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated")),
            "{err}"
        );
        let err =
            k.fails(&["create", "service", "nodeport", &format!("np-low{i}"), "--tcp", "80", "--node-port", "80"]);
        assert!(
            err.contains("provided port is not in the valid range. The range of valid ports is 30000-32767"),
            "{err}"
        );
        // NodePort to ClusterIP gives the port back.
        k.ok(&["patch", "service", &format!("np{i}"), "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
        assert_eq!(get(&k, &["get", "service", &format!("np{i}"), "-o", "jsonpath={.spec.ports[0].nodePort}"]), "");
        k.ok(&["create", "service", "nodeport", &format!("np-again{i}"), "--tcp", "80", "--node-port", &port]);

        // A port clash and a malformed field are 422s naming the field.
        let clash = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: clash{i}}}\nspec:\n  ports: [{{name: a, port: 80}}, {{name: b, port: 80}}]\n"
        );
        let err = k.fails_stdin(&["apply", "-f", "-"], &clash);
        assert!(err.contains("spec.ports[1]: Duplicate value"), "{err}");
        let bad = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: bad{i}}}\nspec:\n  ports: [{{port: 0}}]\n");
        let err = k.fails_stdin(&["apply", "-f", "-"], &bad);
        assert!(err.contains("spec.ports[0].port"), "{err}");
        // A dry run takes nothing.
        k.ok(&[
            "create",
            "service",
            "clusterip",
            &format!("dry{i}"),
            "--tcp",
            "80",
            "--clusterip",
            "10.43.150.1",
            "--dry-run=server",
        ]);
    }
    c.kubectl("1.33").ok(&["create", "service", "clusterip", "wet", "--tcp", "80", "--clusterip", "10.43.150.1"]);
}
