//! Reading a Job's Pods (phase, readiness, completion index, when they finished) and
//! writing new ones from the template, as upstream's `controller` helpers and
//! `indexed_job_utils` do.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::cmp::Ordering;

/// `t` moved by `secs` seconds, saturating at the ends of time.
pub fn add_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap_or(if secs > 0 { Timestamp::MAX } else { Timestamp::MIN })
}

/// Keeps a finished Pod around until the controller has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// An Indexed Job's Pod's index, as annotation and label.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job's containers read their index from.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The longest `generateName` prefix the API server keeps (63 minus 5 random).
const MAX_GENERATED_NAME: usize = 58;

pub fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn is_terminal(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

pub fn is_deleting(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// Still running or about to (`controller.FilterActivePods`).
pub fn is_active(p: &Pod) -> bool {
    !is_terminal(p) && !is_deleting(p)
}

/// Being deleted but not yet finished (`controller.CountTerminatingPods`).
pub fn is_terminating(p: &Pod) -> bool {
    is_deleting(p) && !is_terminal(p)
}

pub fn is_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|c| c.status == "True")
}

fn ready_condition(p: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

pub fn has_tracking_finalizer(p: &Pod) -> bool {
    p.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

pub fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or_default()
}

pub fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

/// The Pod's completion index, if it has a valid one.
pub fn completion_index(p: &Pod) -> Option<i32> {
    let v = p.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// When the Pod finished (upstream's `getFinishedTime`): its last container's end,
/// else when it stopped being ready, else its deletion, else its creation.
pub fn finish_time(p: &Pod) -> Timestamp {
    let statuses = p.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    if let Some(cs) = statuses.filter(|cs| !cs.is_empty()) {
        let ends: Option<Vec<Timestamp>> =
            cs.iter().map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0)).collect();
        if let Some(latest) = ends.and_then(|e| e.into_iter().max()) {
            return latest;
        }
    }
    if let Some(c) = ready_condition(p).filter(|c| c.status == "False")
        && let Some(t) = &c.last_transition_time
    {
        return t.0;
    }
    if let Some(t) = &p.metadata.deletion_timestamp {
        let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return add_secs(t.0, -grace);
    }
    p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Sum of container restarts of running or pending Pods (for `restartPolicy:
/// OnFailure`, where failures show as restarts rather than failed Pods).
pub fn restarts(p: &Pod) -> i32 {
    if !matches!(phase(p), "Running" | "Pending") {
        return 0;
    }
    let Some(s) = p.status.as_ref() else { return 0 };
    s.init_container_statuses.iter().chain(s.container_statuses.iter()).flatten().map(|c| c.restart_count).sum()
}

fn max_restarts(p: &Pod) -> i32 {
    let Some(s) = p.status.as_ref() else { return 0 };
    s.container_statuses.iter().flatten().map(|c| c.restart_count).max().unwrap_or(0)
}

fn phase_rank(p: &Pod) -> u8 {
    match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// The order in which Pods are removed (`controller.ActivePods`): unscheduled before
/// scheduled, pending before running, not ready before ready, ready for less time
/// first, more restarts first, then newer first.
pub fn removal_order(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            let since = |p: &Pod| {
                ready_condition(p).filter(|_| is_ready(p)).and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0)
            };
            // Later transition = ready for less time = removed first.
            since(b).cmp(&since(a))
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// The `generateName` of an Indexed Job's Pod, shortened as upstream does.
fn generate_name_with_index(job: &str, index: i32) -> String {
    let suffix = format!("-{index}-");
    let prefix = format!("{job}{suffix}");
    if prefix.len() > MAX_GENERATED_NAME {
        let keep = MAX_GENERATED_NAME.saturating_sub(suffix.len());
        let mut cut = keep.min(job.len());
        while !job.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{suffix}", &job[..cut])
    } else {
        prefix
    }
}

/// A new Pod for the Job from its template (`GetPodFromTemplate` plus the tracking
/// finalizer and, for an Indexed Job, the index annotation, label, hostname and env).
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut spec: PodSpec = template.spec.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let generate_name = match index {
        Some(ix) => {
            let field_path = format!("metadata.labels['{COMPLETION_INDEX}']");
            for c in spec.init_containers.iter_mut().flatten().chain(spec.containers.iter_mut()) {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    env.push(EnvVar {
                        name: COMPLETION_INDEX_ENV.into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector { api_version: None, field_path: field_path.clone() }),
                            ..Default::default()
                        }),
                    });
                }
            }
            annotations.insert(COMPLETION_INDEX.into(), ix.to_string());
            labels.insert(COMPLETION_INDEX.into(), ix.to_string());
            spec.hostname = Some(format!("{job_name}-{ix}"));
            generate_name_with_index(&job_name, ix)
        }
        None => format!("{job_name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: job_name,
                uid: job.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job() -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("ns".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("job-name".to_string(), "pi".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container { name: "c".into(), ..Default::default() }],
                        init_containers: Some(vec![Container { name: "i".into(), ..Default::default() }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn non_indexed_pods_copy_the_template_and_carry_the_finalizer() {
        let p = pod_for(&job(), None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["job-name"], "pi");
        assert_eq!(p.metadata.finalizers.as_ref().unwrap(), &[TRACKING_FINALIZER.to_string()]);
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Job", "job-uid", Some(true)));
        assert!(p.spec.unwrap().containers[0].env.is_none());
    }

    #[test]
    fn indexed_pods_carry_their_index_everywhere() {
        let p = pod_for(&job(), Some(3));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(p.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX], "3");
        assert_eq!(p.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX], "3");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            let env = &c.env.as_ref().unwrap()[0];
            assert_eq!(env.name, COMPLETION_INDEX_ENV);
            let path = &env.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path;
            assert_eq!(path, "metadata.labels['batch.kubernetes.io/job-completion-index']");
        }
        assert_eq!(generate_name_with_index(&"x".repeat(60), 12), format!("{}-12-", "x".repeat(54)));
    }

    fn pod_with(phase: &str, node: bool, ready: bool, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.then(|| "n1".to_string()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn removal_prefers_unscheduled_pending_unready_and_newer_pods() {
        let mut pods = [
            pod_with("Running", true, true, 1),
            pod_with("Running", true, false, 1),
            pod_with("Pending", true, false, 1),
            pod_with("Pending", false, false, 1),
            pod_with("Running", true, true, 5),
        ];
        pods.sort_by(removal_order);
        let order: Vec<(String, bool, bool, i64)> = pods
            .iter()
            .map(|p| {
                let node = p.spec.as_ref().unwrap().node_name.is_some();
                (phase(p).to_string(), node, is_ready(p), p.metadata.creation_timestamp.as_ref().unwrap().0.as_second())
            })
            .collect();
        assert_eq!(
            order,
            [
                ("Pending".into(), false, false, 1),
                ("Pending".into(), true, false, 1),
                ("Running".into(), true, false, 1),
                ("Running".into(), true, true, 5),
                ("Running".into(), true, true, 1),
            ]
        );
    }

    #[test]
    fn finish_time_falls_back_from_containers_to_ready_to_creation() {
        let mut p = pod_with("Failed", true, false, 100);
        assert_eq!(finish_time(&p).as_second(), 100, "no transition time: creation");
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(Time(Timestamp::from_second(150).unwrap()));
        assert_eq!(finish_time(&p).as_second(), 150);
        p.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(300).unwrap()));
        p.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(finish_time(&p).as_second(), 150, "ready condition wins over deletion");
    }
}
