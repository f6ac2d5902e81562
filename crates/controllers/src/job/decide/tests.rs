use super::*;
use k8s_openapi::api::batch::v1::{
    JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

const NOW: i64 = 1_714_557_600; // 2024-05-01T10:00:00Z

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(NOW + secs).unwrap()
}

fn job(completions: Option<i32>, parallelism: i32, backoff_limit: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(backoff_limit),
            completion_mode: Some("NonIndexed".into()),
            suspend: Some(false),
            pod_replacement_policy: Some("TerminatingOrFailed".into()),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec { restart_policy: Some("Never".into()), ..Default::default() }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn indexed(mut j: Job) -> Job {
    j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
    j
}

struct P {
    name: &'static str,
    phase: &'static str,
    finalizer: bool,
    index: Option<i32>,
    deleting: bool,
    ready: bool,
    exit: Option<i32>,
}

const RUNNING: P =
    P { name: "", phase: "Running", finalizer: true, index: None, deleting: false, ready: true, exit: None };

fn pod(p: P) -> Arc<Pod> {
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(ix) = p.index {
        annotations.insert(pods::COMPLETION_INDEX.to_string(), ix.to_string());
    }
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(p.name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{}", p.name)),
            creation_timestamp: Some(Time(at(-30))),
            deletion_timestamp: p.deleting.then(|| Time(at(-1))),
            finalizers: p.finalizer.then(|| vec![pods::TRACKING_FINALIZER.to_string()]),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "pi".into(),
                uid: "job-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if p.ready { "True" } else { "False" }.into(),
                last_transition_time: (!p.ready).then(|| Time(at(-4))),
                ..Default::default()
            }]),
            container_statuses: p.exit.map(|code| {
                vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: code,
                            finished_at: Some(Time(at(-4))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn input(job: &Job, pods: Vec<Arc<Pod>>) -> Input<'_> {
    Input {
        job,
        pods,
        now: at(0),
        satisfied: true,
        expected_rm: HashSet::new(),
        backoff: BackoffRecord::default(),
        timing: Timing::default(),
    }
}

fn status(s: &Sync) -> &JobStatus {
    s.job.status.as_ref().unwrap()
}

fn cond<'a>(s: &'a Sync, t: &str) -> Option<&'a JobCondition> {
    find_condition(s.job.status.as_ref(), t)
}

fn creates(a: &PodAction) -> Vec<Option<i32>> {
    match a {
        PodAction::Create(v) => v.clone(),
        other => panic!("expected creates, got {other:?}"),
    }
}

fn names(list: &[Arc<Pod>]) -> Vec<&str> {
    list.iter().map(|p| pods::name(p)).collect()
}

/// Runs steps 2-4 with every write succeeding.
fn settle(mut s: Sync, outcome: Outcome) -> (Sync, Track, bool) {
    s.after_pods(outcome);
    let track = s.track();
    let removed: HashSet<String> = track.remove_finalizers.iter().map(|p| pods::uid(p).to_string()).collect();
    let flush = s.finish(&removed);
    (s, track, flush)
}

#[test]
fn a_new_job_starts_parallelism_pods_and_its_clock() {
    let j = job(Some(5), 2, 6);
    let (s, action) = Sync::start(input(&j, vec![]));
    assert_eq!(creates(&action), [None, None]);
    let (s, track, _) = settle(s, Outcome { created: 2, ..Default::default() });
    assert!(track.flush, "active changed");
    let st = status(&s);
    assert_eq!((st.active, st.ready, st.terminating), (Some(2), Some(0), Some(0)));
    assert_eq!(st.start_time.as_ref().unwrap().0, at(0));
    assert!(st.uncounted_terminated_pods.is_some(), "written as {{}} like upstream");
    assert!(!s.is_finished());
}

#[test]
fn remaining_completions_cap_the_active_pods() {
    let mut j = job(Some(3), 5, 6);
    j.status = Some(JobStatus { succeeded: Some(2), ..Default::default() });
    let (_, action) = Sync::start(input(&j, vec![]));
    assert_eq!(creates(&action).len(), 1);
}

#[test]
fn a_succeeded_pod_completes_the_job_through_success_criteria_met() {
    let j = job(Some(1), 1, 6);
    let done = pod(P { name: "a", phase: "Succeeded", ready: false, ..RUNNING });
    let (s, action) = Sync::start(input(&j, vec![done]));
    assert!(matches!(action, PodAction::None));
    let mut s = s;
    s.after_pods(Outcome::default());
    let track = s.track();
    assert!(track.flush);
    assert_eq!(names(&track.remove_finalizers), ["a"]);
    // Written before the finalizer goes: the Pod is uncounted, the verdict interim.
    let uncounted = status(&s).uncounted_terminated_pods.clone().unwrap();
    assert_eq!(uncounted.succeeded.unwrap(), ["uid-a"]);
    let met = cond(&s, SUCCESS_CRITERIA_MET).unwrap();
    assert_eq!(met.reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(met.message.as_deref(), Some("Reached expected number of succeeded pods"));
    assert!(cond(&s, COMPLETE).is_none());

    assert!(s.finish(&HashSet::from(["uid-a".to_string()])));
    let st = status(&s);
    assert_eq!(st.succeeded, Some(1));
    assert!(st.uncounted_terminated_pods.as_ref().unwrap().succeeded.is_none());
    let complete = cond(&s, COMPLETE).unwrap();
    assert_eq!((complete.status.as_str(), complete.reason.as_deref()), ("True", Some("CompletionsReached")));
    assert_eq!(st.completion_time.as_ref().unwrap().0, at(0));
    assert_eq!(s.notes.last().unwrap().reason, "Completed");
    assert_eq!(s.notes.last().unwrap().message, "Job completed");
    assert!(s.is_finished());
}

#[test]
fn a_failed_finalizer_removal_keeps_the_pod_uncounted_and_the_job_open() {
    let j = job(Some(1), 1, 6);
    let done = pod(P { name: "a", phase: "Succeeded", ready: false, ..RUNNING });
    let (mut s, _) = Sync::start(input(&j, vec![done]));
    s.after_pods(Outcome::default());
    s.track();
    s.finish(&HashSet::new());
    assert!(cond(&s, COMPLETE).is_none());
    assert_eq!(status(&s).uncounted_terminated_pods.clone().unwrap().succeeded.unwrap(), ["uid-a"]);
}

#[test]
fn pods_counted_earlier_are_not_counted_again() {
    // The status already moved the Pod to the counter; the cache still shows the
    // finalizer, but the controller knows it removed it.
    let mut j = job(Some(2), 1, 6);
    j.status = Some(JobStatus { succeeded: Some(1), ..Default::default() });
    let done = pod(P { name: "a", phase: "Succeeded", ready: false, ..RUNNING });
    let mut inp = input(&j, vec![done]);
    inp.expected_rm.insert("uid-a".into());
    let (s, action) = Sync::start(inp);
    assert_eq!(creates(&action).len(), 1, "one completion left");
    let (s, track, _) = settle(s, Outcome { created: 1, ..Default::default() });
    assert!(track.remove_finalizers.is_empty());
    assert_eq!(status(&s).succeeded, Some(1));
}

#[test]
fn uncounted_pods_whose_finalizer_went_reach_the_counters() {
    let mut j = job(Some(3), 1, 6);
    j.status = Some(JobStatus {
        active: Some(1),
        ready: Some(1),
        terminating: Some(0),
        uncounted_terminated_pods: Some(UncountedTerminatedPods {
            succeeded: Some(vec!["uid-gone".into()]),
            failed: Some(vec!["uid-f".into()]),
        }),
        ..Default::default()
    });
    let running = pod(P { name: "r", ..RUNNING });
    let (s, _) = Sync::start(input(&j, vec![running]));
    let (s, track, _) = settle(s, Outcome::default());
    assert!(track.flush);
    let st = status(&s);
    assert_eq!((st.succeeded, st.failed), (Some(1), Some(1)));
    let u = st.uncounted_terminated_pods.as_ref().unwrap();
    assert!(u.succeeded.is_none() && u.failed.is_none());
}

#[test]
fn failures_back_off_then_exceed_the_limit() {
    let j = job(Some(1), 1, 1);
    let failed = pod(P { name: "f1", phase: "Failed", ready: false, exit: Some(1), ..RUNNING });
    let (s, action) = Sync::start(input(&j, vec![failed.clone()]));
    // First failure: the replacement waits base (10 s) from the failure 4 s ago.
    assert!(matches!(action, PodAction::None));
    assert_eq!(s.requeue, Some(Duration::from_secs(6)));
    assert_eq!(s.new_backoff.failures_after_last_success, 1);
    let (s, track, _) = settle(s, Outcome::default());
    assert_eq!(names(&track.remove_finalizers), ["f1"]);
    assert_eq!(status(&s).failed, Some(1));
    assert!(!s.is_finished());

    // The wait is over: a replacement.
    let mut inp = input(&s.job, vec![]);
    inp.backoff = s.new_backoff;
    inp.now = at(7);
    let (_, action) = Sync::start(inp);
    assert_eq!(creates(&action).len(), 1);

    // The second failure exceeds backoffLimit 1.
    let mut j2 = s.job.clone();
    j2.status.as_mut().unwrap().active = Some(1);
    let failed2 = pod(P { name: "f2", phase: "Failed", ready: false, exit: Some(1), ..RUNNING });
    let (s, action) = Sync::start(input(&j2, vec![failed2]));
    assert!(matches!(action, PodAction::DeleteActive(ref v) if v.is_empty()));
    let (s, track, flush) = settle(s, Outcome::default());
    assert!(track.flush && flush);
    let target = cond(&s, FAILURE_TARGET).unwrap();
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    let failed = cond(&s, FAILED).unwrap();
    assert_eq!(failed.message.as_deref(), Some("Job has reached the specified backoff limit"));
    assert_eq!(status(&s).failed, Some(2));
    assert!(status(&s).completion_time.is_none());
    let note = s.notes.last().unwrap();
    assert!(note.warning && note.reason == "BackoffLimitExceeded");
}

#[test]
fn the_active_deadline_fails_the_job_once_its_pods_are_gone() {
    let mut j = job(Some(1), 1, 6);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(50);
    j.status = Some(JobStatus { start_time: Some(Time(at(-20))), active: Some(1), ..Default::default() });
    let running = pod(P { name: "r", ..RUNNING });
    let (s, action) = Sync::start(input(&j, vec![running.clone()]));
    assert!(matches!(action, PodAction::None));
    assert_eq!(s.requeue, Some(Duration::from_secs(30)), "woken at the deadline");

    j.status.as_mut().unwrap().start_time = Some(Time(at(-60)));
    let (s, action) = Sync::start(input(&j, vec![running]));
    let PodAction::DeleteActive(list) = action else { panic!("the running pod goes") };
    assert_eq!(names(&list), ["r"]);
    let (s, track, _) = settle(s, Outcome { deleted: 1, deleted_ready: 1, ..Default::default() });
    assert_eq!(names(&track.remove_finalizers), ["r"]);
    assert_eq!(status(&s).failed, Some(1), "a killed pod counts as failed");
    assert_eq!(status(&s).terminating, Some(1));
    assert!(cond(&s, FAILED).is_none(), "waits for terminating pods");
    assert_eq!(cond(&s, FAILURE_TARGET).unwrap().reason.as_deref(), Some("DeadlineExceeded"));

    // Next sync: the pod is gone; the interim verdict becomes final.
    let (s, _) = Sync::start(input(&s.job, vec![]));
    let (s, _, flush) = settle(s, Outcome::default());
    assert!(flush);
    let failed = cond(&s, FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(failed.message.as_deref(), Some("Job was active longer than specified deadline"));
    assert_eq!(s.notes.last().unwrap().reason, "DeadlineExceeded");
}

#[test]
fn a_partially_deleted_failure_is_not_final_yet() {
    let mut j = job(Some(2), 2, 0);
    j.status = Some(JobStatus { failed: Some(1), ..Default::default() });
    let running = [pod(P { name: "a", ..RUNNING }), pod(P { name: "b", ..RUNNING })];
    let (s, action) = Sync::start(input(&j, running.to_vec()));
    assert!(matches!(action, PodAction::DeleteActive(ref v) if v.len() == 2));
    let (s, track, _) = settle(s, Outcome { deleted: 1, ..Default::default() });
    assert!(cond(&s, FAILURE_TARGET).is_none() && cond(&s, FAILED).is_none());
    assert!(track.remove_finalizers.is_empty(), "running pods keep their finalizers");
}

#[test]
fn indexed_jobs_create_missing_indexes_and_track_completed_ones() {
    let j = indexed(job(Some(4), 2, 6));
    let pods = vec![
        pod(P { name: "p0", phase: "Succeeded", index: Some(0), ready: false, ..RUNNING }),
        pod(P { name: "p1", index: Some(1), ..RUNNING }),
    ];
    let (s, action) = Sync::start(input(&j, pods));
    assert_eq!(creates(&action), [Some(2)]);
    let (s, track, _) = settle(s, Outcome { created: 1, ..Default::default() });
    assert_eq!(names(&track.remove_finalizers), ["p0"]);
    let st = status(&s);
    assert_eq!(st.completed_indexes.as_deref(), Some("0"));
    assert_eq!((st.succeeded, st.active), (Some(1), Some(2)));
}

#[test]
fn indexed_duplicates_and_out_of_range_pods_are_removed_first() {
    let j = indexed(job(Some(2), 2, 6));
    let pods = vec![
        pod(P { name: "a0", index: Some(0), ..RUNNING }),
        pod(P { name: "b0", index: Some(0), ready: false, ..RUNNING }),
        pod(P { name: "x", index: Some(7), ..RUNNING }),
        pod(P { name: "c1", index: Some(1), ..RUNNING }),
    ];
    let (_, action) = Sync::start(input(&j, pods));
    let PodAction::Remove(list) = action else { panic!("expected removals") };
    let mut got = names(&list);
    got.sort();
    assert_eq!(got, ["b0", "x"]);
}

#[test]
fn success_policy_meets_criteria_and_stops_the_rest() {
    let mut j = indexed(job(Some(3), 3, 6));
    j.spec.as_mut().unwrap().success_policy = Some(k8s_openapi::api::batch::v1::SuccessPolicy {
        rules: vec![k8s_openapi::api::batch::v1::SuccessPolicyRule {
            succeeded_indexes: Some("0".into()),
            succeeded_count: None,
        }],
    });
    let pods = vec![
        pod(P { name: "p0", phase: "Succeeded", index: Some(0), ready: false, ..RUNNING }),
        pod(P { name: "p1", index: Some(1), ..RUNNING }),
    ];
    let (s, action) = Sync::start(input(&j, pods));
    assert!(matches!(action, PodAction::DeleteActive(ref v) if v.len() == 1));
    let (s, _, _) = settle(s, Outcome { deleted: 1, deleted_ready: 1, created: 0 });
    let met = cond(&s, SUCCESS_CRITERIA_MET).unwrap();
    assert_eq!(
        (met.reason.as_deref(), met.message.as_deref()),
        (Some("SuccessPolicy"), Some("Matched rules at index 0"))
    );
    assert_eq!(status(&s).failed, None, "pods stopped on success are not failures");
}

#[test]
fn suspending_removes_pods_and_says_so() {
    let mut j = job(Some(3), 2, 6);
    j.spec.as_mut().unwrap().suspend = Some(true);
    j.status = Some(JobStatus { start_time: Some(Time(at(-5))), active: Some(2), ..Default::default() });
    let running = vec![pod(P { name: "a", ..RUNNING }), pod(P { name: "b", ..RUNNING })];
    let (s, action) = Sync::start(input(&j, running));
    assert!(matches!(action, PodAction::Remove(ref v) if v.len() == 2));
    let (s, track, _) = settle(s, Outcome { deleted: 2, deleted_ready: 2, created: 0 });
    assert!(track.flush);
    let c = cond(&s, SUSPENDED).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("True", Some("JobSuspended")));
    assert_eq!(status(&s).active, None);
    assert_eq!(s.notes[0].reason, "Suspended");

    // A Job created suspended has no start time and no pods.
    let mut fresh = job(Some(1), 1, 6);
    fresh.spec.as_mut().unwrap().suspend = Some(true);
    let (s, action) = Sync::start(input(&fresh, vec![]));
    assert!(matches!(action, PodAction::Remove(ref v) if v.is_empty()));
    assert!(status(&s).start_time.is_none());

    // Resuming restarts the clock.
    let mut resumed = s.job.clone();
    resumed.spec.as_mut().unwrap().suspend = Some(false);
    resumed.status.as_mut().unwrap().conditions =
        Some(vec![condition(SUSPENDED, "True", "JobSuspended", "Job suspended", at(-100))]);
    let (s, action) = Sync::start(input(&resumed, vec![]));
    assert_eq!(creates(&action).len(), 1);
    let (s, _, _) = settle(s, Outcome { created: 1, ..Default::default() });
    assert_eq!(cond(&s, SUSPENDED).unwrap().status, "False");
    assert_eq!(status(&s).start_time.as_ref().unwrap().0, at(0));
    assert_eq!(s.notes[0].reason, "Resumed");
}

#[test]
fn lowering_parallelism_removes_the_cheapest_pods() {
    let j = job(Some(10), 1, 6);
    let pods = vec![
        pod(P { name: "ready", ..RUNNING }),
        pod(P { name: "pending", phase: "Pending", ready: false, ..RUNNING }),
        pod(P { name: "unready", ready: false, ..RUNNING }),
    ];
    let (_, action) = Sync::start(input(&j, pods));
    let PodAction::Remove(list) = action else { panic!("expected removals") };
    assert_eq!(names(&list), ["pending", "unready"]);
}

#[test]
fn nothing_is_created_while_earlier_writes_are_unseen() {
    let j = job(Some(5), 2, 6);
    let mut inp = input(&j, vec![]);
    inp.satisfied = false;
    let (s, action) = Sync::start(inp);
    assert!(matches!(action, PodAction::None));
    let (s, _, _) = settle(s, Outcome::default());
    assert!(!s.is_finished());
}

#[test]
fn work_queue_jobs_finish_when_one_succeeded_and_none_run() {
    let j = job(None, 2, 6);
    let pods =
        vec![pod(P { name: "done", phase: "Succeeded", ready: false, ..RUNNING }), pod(P { name: "busy", ..RUNNING })];
    let (s, action) = Sync::start(input(&j, pods));
    assert!(matches!(action, PodAction::None), "no new pods after a success");
    let (s, _, _) = settle(s, Outcome::default());
    assert!(!s.is_finished());
    let (s, _) = Sync::start(input(&s.job, vec![]));
    let (s, _, _) = settle(s, Outcome::default());
    assert!(s.is_finished());
    assert_eq!(status(&s).succeeded, Some(1));
}

#[test]
fn a_fail_job_rule_fails_the_job_with_its_message() {
    let mut j = job(Some(1), 1, 6);
    j.spec.as_mut().unwrap().pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: "In".into(),
                values: vec![42],
            }),
            on_pod_conditions: None,
        }],
    });
    let failed = pod(P { name: "f", phase: "Failed", ready: false, exit: Some(42), ..RUNNING });
    let (s, _) = Sync::start(input(&j, vec![failed]));
    let (s, _, _) = settle(s, Outcome::default());
    let c = cond(&s, FAILED).unwrap();
    assert_eq!(c.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        c.message.as_deref(),
        Some("Container main for pod ns/f failed with exit code 42 matching FailJob rule at index 0")
    );
}

#[test]
fn an_ignored_failure_does_not_count() {
    let mut j = job(Some(1), 1, 0);
    j.spec.as_mut().unwrap().pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "Ignore".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: "In".into(),
                values: vec![3],
            }),
            on_pod_conditions: None,
        }],
    });
    let failed = pod(P { name: "f", phase: "Failed", ready: false, exit: Some(3), ..RUNNING });
    let (s, action) = Sync::start(input(&j, vec![failed]));
    assert!(!matches!(action, PodAction::DeleteActive(_)), "backoffLimit 0 not reached");
    let (s, track, _) = settle(s, Outcome::default());
    assert_eq!(names(&track.remove_finalizers), ["f"]);
    assert_eq!(status(&s).failed, None);
}

#[test]
fn deleted_pods_count_as_failed_unless_only_failed_ones_are_replaced() {
    let j = job(Some(1), 1, 6);
    let deleting = pod(P { name: "d", deleting: true, ..RUNNING });
    let (s, action) = Sync::start(input(&j, vec![deleting.clone()]));
    // A failure like any other: replaced after the backoff from its deletion 1 s ago.
    assert!(matches!(action, PodAction::None));
    assert_eq!(s.requeue, Some(Duration::from_secs(9)));
    let (s, _, _) = settle(s, Outcome::default());
    assert_eq!(status(&s).failed, Some(1));
    assert_eq!(status(&s).terminating, Some(1));

    let mut j = job(Some(1), 1, 6);
    j.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
    let (s, action) = Sync::start(input(&j, vec![deleting]));
    assert!(matches!(action, PodAction::None), "waits for the terminating pod");
    assert_eq!(s.requeue, None, "no backoff: not a failure yet");
    let (s, _, _) = settle(s, Outcome::default());
    assert_eq!(status(&s).failed, None);
}
