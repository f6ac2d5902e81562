//! Whole-flow tests with real objects: apply, update, and kubectl's move from
//! client-side to server-side apply (kubectl-wire.md §2.2).

use super::*;
use api::schema::Schemas;
use serde_json::json;

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:01:00Z";
const T2: &str = "2024-05-01T10:02:00Z";
const T3: &str = "2024-05-01T10:03:00Z";

fn deployment_schema() -> &'static Node {
    Schemas::get().for_kind("apps", "v1", "Deployment").unwrap()
}

fn configmap_schema() -> &'static Node {
    Schemas::get().for_kind("", "v1", "ConfigMap").unwrap()
}

fn pod_schema() -> &'static Node {
    Schemas::get().for_kind("", "v1", "Pod").unwrap()
}

/// The entry of `manager` with `operation`, if any.
fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// The fields of an entry, in upstream's byte-exact encoding.
fn owned(obj: &Value, manager: &str, operation: &str) -> String {
    let e = entry(obj, manager, operation).unwrap_or_else(|| panic!("no {operation} entry for {manager} in {obj:#}"));
    Set::from_fields_v1(&e["fieldsV1"]).unwrap().to_json_string()
}

fn owns(obj: &Value, manager: &str, operation: &str, path: &[&str]) -> bool {
    entry(obj, manager, operation)
        .is_some_and(|e| Set::from_fields_v1(&e["fieldsV1"]).unwrap().has(&Path::fields(path).0))
}

fn web_config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn apply_web(live: Option<&Value>, config: &Value, manager: &str, force: bool, now: &str) -> Result<Value, ApplyError> {
    apply(live, config, manager, force, deployment_schema(), "apps/v1", now)
}

/// What the store would hold after a create: the applied object with server metadata.
fn stored(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("6b2a0c2e-0000-4000-8000-000000000001");
    obj["metadata"]["resourceVersion"] = json!("1");
    obj["metadata"]["creationTimestamp"] = json!(T0);
    obj["metadata"]["generation"] = json!(1);
    obj
}

const WEB_APPLIED: &str = concat!(
    r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"#,
    r#""f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"#,
    r#""f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
);

#[test]
fn apply_creates_the_object_and_owns_what_it_set() {
    let config = web_config(2, "nginx:1.25");
    let obj = apply_web(None, &config, "kubectl", false, T0).unwrap();
    let mut without = obj.clone();
    without["metadata"].as_object_mut().unwrap().remove("managedFields");
    assert_eq!(without, config);
    let entries = obj["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (&e["manager"], &e["operation"], &e["apiVersion"], &e["time"], &e["fieldsType"]),
        (&json!("kubectl"), &json!("Apply"), &json!("apps/v1"), &json!(T0), &json!("FieldsV1"))
    );
    assert!(e.get("subresource").is_none());
    assert_eq!(owned(&obj, "kubectl", "Apply"), WEB_APPLIED);
}

#[test]
fn applying_the_same_configuration_again_changes_nothing() {
    let config = web_config(2, "nginx:1.25");
    let first = stored(apply_web(None, &config, "kubectl", false, T0).unwrap());
    let second = apply_web(Some(&first), &config, "kubectl", false, T1).unwrap();
    // Upstream keeps even the time of a no-op apply.
    assert_eq!(second, first);
}

#[test]
fn changing_another_managers_field_conflicts_unless_forced() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 3}});
    let err = apply_web(Some(&live), &scale, "autoscaler", false, T1).unwrap_err();
    assert_eq!(err.to_string(), r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#);
    let status = err.to_api_error();
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.causes(),
        vec![Cause::new("FieldManagerConflict", ".spec.replicas", r#"conflict with "kubectl""#)]
    );
    assert_eq!(
        status.to_status()["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.replicas"})
    );

    let forced = apply_web(Some(&live), &scale, "autoscaler", true, T1).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(owns(&forced, "autoscaler", "Apply", &["spec", "replicas"]));
    assert!(!owns(&forced, "kubectl", "Apply", &["spec", "replicas"]));
    assert!(owns(&forced, "kubectl", "Apply", &["metadata", "labels", "app"]));
    assert_eq!(entry(&forced, "autoscaler", "Apply").unwrap()["time"], T1);
    assert_eq!(entry(&forced, "kubectl", "Apply").unwrap()["time"], T0);
}

#[test]
fn applying_an_equal_value_shares_the_field() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2}});
    let obj = apply_web(Some(&live), &same, "autoscaler", false, T1).unwrap();
    assert!(owns(&obj, "autoscaler", "Apply", &["spec", "replicas"]));
    assert!(owns(&obj, "kubectl", "Apply", &["spec", "replicas"]));
    // Nothing in the object changed, so the new entry has no time.
    assert!(entry(&obj, "autoscaler", "Apply").unwrap().get("time").is_none());
}

#[test]
fn two_conflicting_fields_list_each_field() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let mut other = web_config(5, "nginx:1.27");
    other["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("ports");
    let err = apply_web(Some(&live), &other, "ci", false, T1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
    let causes: Vec<String> = err.to_api_error().causes().iter().map(|c| c.field.clone()).collect();
    assert_eq!(causes, [".spec.replicas", r#".spec.template.spec.containers[name="nginx"].image"#]);
}

#[test]
fn a_field_the_manager_stops_applying_is_removed_unless_someone_else_owns_it() {
    let mut config = web_config(2, "nginx:1.25");
    config["metadata"]["labels"]["tier"] = json!("frontend");
    config["metadata"]["labels"]["team"] = json!("blue");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy:1"}));
    let live = stored(apply_web(None, &config, "kubectl", false, T0).unwrap());

    // Another applier sets the same team label: it co-owns it.
    let team = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "blue"}}});
    let live = stored(apply_web(Some(&live), &team, "labeler", false, T1).unwrap());
    assert!(owns(&live, "labeler", "Apply", &["metadata", "labels", "team"]));

    let smaller = web_config(2, "nginx:1.25");
    let obj = apply_web(Some(&live), &smaller, "kubectl", false, T2).unwrap();
    assert_eq!(obj["metadata"]["labels"], json!({"app": "web", "team": "blue"}));
    let names: Vec<_> =
        obj["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("nginx")]);
    assert_eq!(owned(&obj, "kubectl", "Apply"), WEB_APPLIED);
    assert_eq!(entry(&obj, "kubectl", "Apply").unwrap()["time"], T2);
}

#[test]
fn removing_the_last_label_leaves_no_null_behind() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let mut config = web_config(2, "nginx:1.25");
    config["metadata"].as_object_mut().unwrap().remove("labels");
    let obj = apply_web(Some(&live), &config, "kubectl", false, T1).unwrap();
    assert!(obj["metadata"].get("labels").is_none(), "{:#}", obj["metadata"]);
}

#[test]
fn containers_merge_by_name_across_managers() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]}}}});
    let obj = stored(apply_web(Some(&live), &sidecar, "mesh", false, T1).unwrap());
    let containers = obj["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!((&containers[0]["name"], &containers[0]["image"]), (&json!("nginx"), &json!("nginx:1.25")));
    assert_eq!(containers[1]["name"], "proxy");
    assert_eq!(
        owned(&obj, "mesh", "Apply"),
        r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"proxy\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );
    // kubectl re-applying its own configuration leaves the other container alone.
    let again = apply_web(Some(&obj), &web_config(2, "nginx:1.26"), "kubectl", false, T2).unwrap();
    let containers = again["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "nginx:1.26");
}

/// `kubectl apply` (client-side) creating the Deployment, as the server stores it:
/// defaults filled in, the last-applied annotation holding the configuration.
fn client_side_created() -> Value {
    let mut config = web_config(1, "nginx:1.25");
    config["spec"].as_object_mut().unwrap().remove("replicas");
    let last_applied = build_last_applied(&config);
    let mut obj = config.clone();
    obj["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last_applied});
    obj["spec"]["replicas"] = json!(1);
    obj["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    obj["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let c = &mut obj["spec"]["template"]["spec"]["containers"][0];
    c["imagePullPolicy"] = json!("IfNotPresent");
    c["terminationMessagePath"] = json!("/dev/termination-log");
    c["ports"][0]["protocol"] = json!("TCP");
    update(None, &mut obj, "kubectl-client-side-apply", None, "apps/v1", T0, deployment_schema());
    stored(obj)
}

#[test]
fn a_create_gives_the_writer_every_field_as_upstream_records_it() {
    let obj = client_side_created();
    let entries = obj["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (&entries[0]["manager"], &entries[0]["operation"], &entries[0]["time"]),
        (&json!("kubectl-client-side-apply"), &json!("Update"), &json!(T0))
    );
    assert_eq!(
        owned(&obj, "kubectl-client-side-apply", "Update"),
        concat!(
            r#"{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"#,
            r#""f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"#,
            r#""f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"#,
            r#""f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"#,
            r#""f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"#,
            r#""f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{}}},"f:restartPolicy":{}}}}}"#
        )
    );
}

#[test]
fn server_side_apply_after_client_side_apply_conflicts_on_changed_values_only() {
    let live = client_side_created();
    // replicas was defaulted, not in the last-applied configuration: a real conflict.
    let err = apply_web(Some(&live), &web_config(2, "nginx:1.25"), "kubectl", false, T1).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let status = err.to_api_error().to_status();
    assert_eq!(status["code"], 409);
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"}])
    );
    // Another manager than kubectl gets no pass for the last-applied fields.
    let err = apply_web(Some(&live), &web_config(1, "nginx:1.26"), "ci", false, T1).unwrap_err();
    assert!(err.to_string().contains(r#".spec.template.spec.containers[name="nginx"].image"#), "{err}");
    assert!(apply_web(Some(&live), &web_config(2, "nginx:1.25"), "kubectl", true, T1).is_ok());
}

#[test]
fn kubectl_takes_over_its_client_side_fields_and_the_last_applied_request_keeps_them() {
    let live = client_side_created();
    // The image is in the last-applied configuration and unchanged since: kubectl's own.
    let config = web_config(1, "nginx:1.26");
    let obj = stored(apply_web(Some(&live), &config, "kubectl", false, T1).unwrap());
    let c = &obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((&c["image"], &c["imagePullPolicy"]), (&json!("nginx:1.26"), &json!("IfNotPresent")));
    assert!(owns(&obj, "kubectl", "Apply", &["spec", "replicas"]));
    let csa = owned(&obj, "kubectl-client-side-apply", "Update");
    assert!(!csa.contains(r#""f:image""#), "{csa}");
    assert!(csa.contains(r#""f:imagePullPolicy""#), "{csa}");
    assert!(owned(&obj, "kubectl", "Apply").contains(r#""f:image""#));
    // The server rewrote the annotation to the server-side configuration.
    let annotation = obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].as_str().unwrap();
    assert_eq!(annotation, build_last_applied(&config));
    assert!(annotation.ends_with("}\n"));

    // kubectl's second request, as manager kubectl-last-applied.
    let last_applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {LAST_APPLIED_ANNOTATION: annotation}}});
    let after = apply_web(Some(&obj), &last_applied, "kubectl-last-applied", false, T2).unwrap();
    let mut same = after.clone();
    let mut before = obj.clone();
    same["metadata"].as_object_mut().unwrap().remove("managedFields");
    before["metadata"].as_object_mut().unwrap().remove("managedFields");
    assert_eq!(same, before);
    assert_eq!(owned(&after, "kubectl", "Apply"), owned(&obj, "kubectl", "Apply"));
    assert_eq!(
        owned(&after, "kubectl-last-applied", "Apply"),
        r#"{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}"#
    );

    // And applying the server-side configuration again is still a no-op for kubectl.
    let again = apply_web(Some(&stored(after.clone())), &config, "kubectl", false, T3).unwrap();
    assert_eq!(again["spec"], after["spec"]);
    assert_eq!(owned(&again, "kubectl", "Apply"), owned(&after, "kubectl", "Apply"));
}

#[test]
fn an_update_moves_changed_fields_to_the_writer() {
    let live = client_side_created();
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    edited["metadata"]["labels"]["edited"] = json!("yes");
    update(Some(&live), &mut edited, "kubectl-edit", None, "apps/v1", T1, deployment_schema());
    assert_eq!(
        owned(&edited, "kubectl-edit", "Update"),
        r#"{"f:metadata":{"f:labels":{"f:edited":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}}}"#
    );
    assert!(!owned(&edited, "kubectl-client-side-apply", "Update").contains(r#""f:image""#));
    assert_eq!(entry(&edited, "kubectl-edit", "Update").unwrap()["time"], T1);
    assert_eq!(entry(&edited, "kubectl-client-side-apply", "Update").unwrap()["time"], T0);

    // A later apply changing the image conflicts with the editor, named with its version.
    let err = apply_web(Some(&edited), &web_config(1, "nginx:1.28"), "ci", false, T2).unwrap_err();
    assert!(
        err.to_string().contains(
            r#"conflict with "kubectl-edit" using apps/v1: .spec.template.spec.containers[name="nginx"].image"#
        ),
        "{err}"
    );
}

#[test]
fn a_writer_that_loses_all_its_fields_is_dropped() {
    let live = stored(apply_web(None, &web_config(2, "nginx:1.25"), "kubectl", false, T0).unwrap());
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    update(Some(&live), &mut scaled, "kubectl-scale", None, "apps/v1", T1, deployment_schema());
    let mut rescaled = scaled.clone();
    rescaled["spec"]["replicas"] = json!(5);
    update(Some(&scaled), &mut rescaled, "hpa", None, "apps/v1", T2, deployment_schema());
    assert!(entry(&rescaled, "kubectl-scale", "Update").is_none());
    assert!(owns(&rescaled, "hpa", "Update", &["spec", "replicas"]));
    // An Update entry for the same manager through another version is another entry.
    let mut again = rescaled.clone();
    again["metadata"]["labels"]["x"] = json!("y");
    update(Some(&rescaled), &mut again, "hpa", None, "apps/v1beta1", T3, deployment_schema());
    let hpa: Vec<_> =
        again["metadata"]["managedFields"].as_array().unwrap().iter().filter(|e| e["manager"] == "hpa").collect();
    assert_eq!(hpa.len(), 2);
}

#[test]
fn managed_fields_sent_by_the_client_are_kept_cleared_or_ignored_per_upstream_rules() {
    let live = client_side_created();
    // None sent: the stored ones carry on.
    let mut new = live.clone();
    new["metadata"].as_object_mut().unwrap().remove("managedFields");
    update(Some(&live), &mut new, "kubectl-edit", None, "apps/v1", T1, deployment_schema());
    assert_eq!(new["metadata"]["managedFields"], live["metadata"]["managedFields"]);

    // An explicit empty list clears them, and the object is not tracked any more.
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([]);
    cleared["metadata"]["labels"]["x"] = json!("y");
    update(Some(&live), &mut cleared, "kubectl-edit", None, "apps/v1", T1, deployment_schema());
    assert!(cleared["metadata"].get("managedFields").is_none());
    let mut later = cleared.clone();
    later["spec"]["replicas"] = json!(3);
    update(Some(&cleared), &mut later, "kubectl-scale", None, "apps/v1", T2, deployment_schema());
    assert!(later["metadata"].get("managedFields").is_none());

    // Entries the client sends replace the stored ones.
    let mut replaced = live.clone();
    replaced["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update",
        "apiVersion": "apps/v1", "time": T0, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}]);
    update(Some(&live), &mut replaced, "kubectl-edit", None, "apps/v1", T1, deployment_schema());
    let managers: Vec<_> =
        replaced["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].clone()).collect();
    assert_eq!(managers, [json!("someone")]);

    // Unreadable entries fall back to the stored ones.
    let mut garbage = live.clone();
    garbage["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Patch"}]);
    update(Some(&live), &mut garbage, "kubectl-edit", None, "apps/v1", T1, deployment_schema());
    assert_eq!(garbage["metadata"]["managedFields"], live["metadata"]["managedFields"]);
}

#[test]
fn status_belongs_to_status_writers_only() {
    let live = client_side_created();
    // A main-resource write that changes status gives nobody the status.
    let mut new = live.clone();
    new["status"] = json!({"replicas": 1});
    update(Some(&live), &mut new, "meddler", None, "apps/v1", T1, deployment_schema());
    assert!(entry(&new, "meddler", "Update").is_none());

    // The status subresource records status and ignores spec changes and sent entries.
    let mut status = live.clone();
    status["status"] = json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    status["spec"]["replicas"] = json!(9);
    status["metadata"]["managedFields"] = json!([]);
    update(Some(&live), &mut status, "deployment-controller", Some("status"), "apps/v1", T1, deployment_schema());
    assert_eq!(
        owned(&status, "deployment-controller", "Update"),
        r#"{"f:status":{"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:status":{},"f:type":{}}},"f:replicas":{}}}"#
    );
    let e = entry(&status, "deployment-controller", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    assert!(entry(&status, "kubectl-client-side-apply", "Update").is_some());
}

#[test]
fn an_untracked_object_is_owned_before_first_apply() {
    let mut live = stored(web_config(2, "nginx:1.25"));
    live["metadata"].as_object_mut().unwrap().remove("managedFields");
    let mut updated = live.clone();
    updated["spec"]["replicas"] = json!(3);
    update(Some(&live), &mut updated, "kubectl-scale", None, "apps/v1", T1, deployment_schema());
    assert!(updated["metadata"].get("managedFields").is_none());

    let err = apply_web(Some(&updated), &web_config(2, "nginx:1.25"), "kubectl", false, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let obj = apply_web(Some(&updated), &web_config(3, "nginx:1.25"), "kubectl", false, T2).unwrap();
    assert!(owns(&obj, "before-first-apply", "Update", &["spec", "replicas"]));
    assert!(owns(&obj, "kubectl", "Apply", &["spec", "replicas"]));
}

#[test]
fn configmap_data_keys_are_owned_one_by_one() {
    let schema = configmap_schema();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"a": "1", "b": "2"}});
    let obj = stored(apply(None, &config, "kubectl", false, schema, "v1", T0).unwrap());
    assert_eq!(owned(&obj, "kubectl", "Apply"), r#"{"f:data":{"f:a":{},"f:b":{}}}"#);

    let mut edited = obj.clone();
    edited["data"]["b"] = json!("3");
    edited["data"]["c"] = json!("4");
    update(Some(&obj), &mut edited, "editor", None, "v1", T1, schema);
    assert_eq!(owned(&edited, "editor", "Update"), r#"{"f:data":{"f:b":{},"f:c":{}}}"#);
    assert_eq!(owned(&edited, "kubectl", "Apply"), r#"{"f:data":{"f:a":{}}}"#);

    // kubectl stops applying a: it goes; b belongs to the editor now and stays.
    let smaller = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"c": "4"}});
    let out = apply(Some(&stored(edited)), &smaller, "kubectl", false, schema, "v1", T2).unwrap();
    assert_eq!(out["data"], json!({"b": "3", "c": "4"}));
    assert_eq!(owned(&out, "kubectl", "Apply"), r#"{"f:data":{"f:c":{}}}"#);
    assert_eq!(owned(&out, "editor", "Update"), r#"{"f:data":{"f:b":{},"f:c":{}}}"#);
}

#[test]
fn pod_ports_are_keyed_by_port_and_defaulted_protocol() {
    let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}});
    let obj = apply(None, &config, "kubectl", false, pod_schema(), "v1", T0).unwrap();
    assert_eq!(
        owned(&obj, "kubectl", "Apply"),
        concat!(
            r#"{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"#,
            r#""k:{\"containerPort\":53,\"protocol\":\"UDP\"}":{".":{},"f:containerPort":{},"f:protocol":{}},"#,
            r#""k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}"#
        )
    );
}

#[test]
fn malformed_applies_are_refused() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let err = apply_web(None, &cm, "kubectl", false, T0).unwrap_err();
    assert_eq!(err, ApplyError::BadRequest("invalid object type: /v1, Kind=ConfigMap".into()));
    assert_eq!(err.to_api_error().code, 400);

    let mut with_fields = web_config(1, "nginx");
    with_fields["metadata"]["managedFields"] = json!([]);
    let err = apply_web(None, &with_fields, "kubectl", false, T0).unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");

    let mut dup = web_config(1, "nginx");
    let c = dup["spec"]["template"]["spec"]["containers"][0].clone();
    dup["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(c);
    let err = apply_web(None, &dup, "kubectl", false, T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name="nginx"]"#
    );
    let status = err.to_api_error().to_status();
    assert_eq!(status["code"], 500);
    assert!(status.get("reason").is_none());

    let mut live = stored(web_config(1, "nginx"));
    live["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Apply"}]);
    let err = apply_web(Some(&live), &web_config(1, "nginx"), "kubectl", false, T0).unwrap_err();
    assert_eq!(err.to_string(), "failed to decode managed fields: apiVersion must not be empty");
}

#[test]
fn the_multi_conflict_message_groups_by_manager() {
    let conflict = |manager: &str, operation, path: &[&str]| Conflict {
        manager: manager.into(),
        operation,
        api_version: "v1".into(),
        subresource: String::new(),
        path: Path::fields(path),
    };
    let err = ApplyError::Conflicts(vec![
        conflict("y", Operation::Update, &["c"]),
        conflict("x", Operation::Apply, &["a"]),
        conflict("x", Operation::Apply, &["b"]),
    ]);
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"x\":\n- .a\n- .b\nconflicts with \"y\" using v1:\n- .c"
    );
    let sub = Conflict { subresource: "status".into(), ..conflict("ctl", Operation::Update, &["status"]) };
    assert_eq!(sub.owner(), r#""ctl" with subresource "status" using v1"#);
}

#[test]
fn field_sets_come_from_objects_and_schemas() {
    let set = fieldpath::from_object(&web_config(2, "nginx"), deployment_schema()).unwrap();
    assert!(set.has(&Path::fields(&["spec", "replicas"]).0));
    assert!(set.has(&Path::fields(&["apiVersion"]).0));
    let stripped = set.difference(strip_set());
    assert_eq!(stripped.to_json_string(), WEB_APPLIED);
}

#[test]
fn stored_entries_edited_in_place_match_decoded_ones() {
    // Three managers, then an edit taking fields from two of them and removing a third's.
    let live = client_side_created();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    scaled["metadata"]["labels"]["owner"] = json!("ops");
    update(Some(&live), &mut scaled, "kubectl-scale", None, "apps/v1", T1, deployment_schema());
    let live = stored(scaled);

    let mut edit = live.clone();
    edit["spec"]["replicas"] = json!(6);
    edit["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.29");
    edit["metadata"]["labels"].as_object_mut().unwrap().remove("owner");

    // Sent as stored: entries are edited in place.
    let mut in_place = edit.clone();
    update(Some(&live), &mut in_place, "kubectl-edit", None, "apps/v1", T2, deployment_schema());
    // Sent in another order: entries are decoded, checked and encoded again.
    let mut decoded = edit.clone();
    decoded["metadata"]["managedFields"].as_array_mut().unwrap().reverse();
    update(Some(&live), &mut decoded, "kubectl-edit", None, "apps/v1", T2, deployment_schema());

    assert_eq!(in_place["metadata"]["managedFields"], decoded["metadata"]["managedFields"]);
    assert!(entry(&in_place, "kubectl-scale", "Update").is_none(), "{:#}", in_place["metadata"]["managedFields"]);
    assert_eq!(
        owned(&in_place, "kubectl-edit", "Update"),
        r#"{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}}}"#
    );
    assert!(!owned(&in_place, "kubectl-client-side-apply", "Update").contains(r#""f:image":"#));
}
