//! What a CronJob needs at one instant, without I/O (upstream's `syncCronJob`,
//! `cleanupFinishedJobs` and `mostRecentScheduleTime`): which of its Jobs to forget
//! or delete, whether a Job is due now, and when to look again.

use crate::job::pods::add_secs;
use api::cron::{Schedule, load_location};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Set on every Job the controller creates: when it was due, in the CronJob's zone.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Slack added to every requeue so a slightly early clock still finds the slot due.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// Upstream gives up listing missed times beyond this many and warns instead.
const MANY_MISSED: i64 = 100;

/// An Event to record on the CronJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    fn normal(reason: &'static str, message: String) -> Note {
        Note { warning: false, reason, message }
    }
    fn warning(reason: &'static str, message: String) -> Note {
        Note { warning: true, reason, message }
    }
}

/// A Job to delete, named for the API call and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    pub name: String,
    pub uid: String,
}

/// What the controller should do for one CronJob.
#[derive(Debug, Default)]
pub struct Plan {
    /// The status after bookkeeping (finished and vanished Jobs dropped from
    /// `active`, `lastSuccessfulTime` advanced); the I/O then records deletes and the
    /// created Job in it.
    pub status: CronJobStatus,
    pub status_changed: bool,
    /// Finished Jobs beyond the history limits, oldest first.
    pub cleanup: Vec<JobKey>,
    /// Active Jobs to delete before starting the next one (`concurrencyPolicy: Replace`).
    pub replace: Vec<JobKey>,
    /// The Job to create and the time it was scheduled for.
    pub create: Option<(Job, Timestamp)>,
    pub notes: Vec<Note>,
    /// When to look again; `None` waits for a change (suspended, unparseable).
    pub requeue: Option<Duration>,
}

/// How many schedule times passed unstarted (upstream's `missedSchedulesType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// `mostRecentScheduleTime`: the time counting starts from (last schedule time or
/// creation), the latest schedule time not after `now` since then, and how many were
/// missed. The error is upstream's for schedules that can never fire.
pub fn most_recent_schedule_time(
    earliest: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
    sched: &Schedule,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = earliest;
    if let Some(deadline) = starting_deadline {
        // Nothing before the deadline can start any more.
        let cutoff = add_secs(now, -deadline);
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let never = || "time difference between two schedules is less than 1 second".to_string();
    let Some(t1) = sched.next(earliest) else { return Err(never()) };
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = sched.next(t1) else { return Err(never()) };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = round_secs(t2.duration_since(t1));
    if between < 1 {
        return Err(never());
    }
    // As upstream: estimate how many intervals fit, jump to just before the last
    // one, and walk forward, so a week of missed minutes costs a few steps.
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / between + 1;
    let jump = (missed - 2).saturating_mul(between);
    let mut t = add_secs(t1, jump);
    let mut most_recent = None;
    while let Some(n) = sched.next(t) {
        if n > now {
            break;
        }
        most_recent = Some(n);
        t = n;
    }
    let kind = if missed > MANY_MISSED { Missed::Many } else { Missed::Few };
    Ok((earliest, most_recent, kind))
}

fn round_secs(d: SignedDuration) -> i64 {
    let secs = d.as_secs();
    if d.subsec_nanos() >= 500_000_000 { secs + 1 } else { secs }
}

/// `nextScheduleTimeDuration`: how long until the next slot, plus a little slack.
pub fn next_schedule_delay(cj: &CronJob, now: Timestamp, sched: &Schedule) -> Option<Duration> {
    let base = match most_recent_schedule_time(earliest_time(cj), None, now, sched) {
        Err(_) => now,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
        Ok((_, Some(t), _)) => t,
    };
    let next = sched.next(base)?;
    let wait = next.duration_since(now);
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    Some(wait + NEXT_SCHEDULE_DELTA)
}

fn earliest_time(cj: &CronJob) -> Timestamp {
    let status = cj.status.as_ref();
    status
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The finished condition of a Job (`Complete` or `Failed`), if any.
pub fn finished_type(job: &Job) -> Option<&str> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find_map(|c| {
        ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True").then_some(c.type_.as_str())
    })
}

/// The deterministic name of the Job for a slot: minutes since the epoch, so the
/// name itself prevents starting one slot twice.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 (`Z` for UTC, `+hh:mm` otherwise) of `t` in `tz`.
pub fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let offset = tz.to_offset(t);
    let local = offset.to_datetime(t);
    let base = local.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset.seconds() == 0 { format!("{base}Z") } else { format!("{base}{}", offset_text(offset.seconds())) }
}

fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

/// `getJobFromTemplate2`: the Job for one slot, owned by the CronJob.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj.spec.as_ref().map(|s| &s.job_template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let labels = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = tmeta.and_then(|m| m.annotations.clone()).unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), rfc3339_in(scheduled, tz));
    let name = cj.metadata.name.clone().unwrap_or_default();
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

/// The `status.active` entry for a Job (upstream's `ref.GetReference`).
pub fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Adds a created (or found) Job to the status as the one for `scheduled`.
pub fn record_started(status: &mut CronJobStatus, job: &Job, scheduled: Timestamp) {
    let uid = job.metadata.uid.as_deref();
    let active = status.active.get_or_insert_with(Vec::new);
    if !active.iter().any(|r| r.uid.as_deref() == uid) {
        active.push(job_reference(job));
    }
    status.last_schedule_time = Some(Time(scheduled));
}

/// Drops a Job from `status.active`, leaving the field out when it empties as Go does.
pub fn forget_active(status: &mut CronJobStatus, uid: &str) {
    if let Some(active) = status.active.as_mut() {
        active.retain(|r| r.uid.as_deref() != Some(uid));
        if active.is_empty() {
            status.active = None;
        }
    }
}

fn in_active(status: &CronJobStatus, uid: Option<&str>) -> bool {
    status.active.iter().flatten().any(|r| r.uid.is_some() && r.uid.as_deref() == uid)
}

/// The Job's start time for ordering the history; Jobs that never started sort last.
fn start_key(job: &Job) -> (bool, Timestamp, String) {
    let start = job.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    (start.is_none(), start.unwrap_or(Timestamp::UNIX_EPOCH), job.metadata.name.clone().unwrap_or_default())
}

/// `cleanupFinishedJobs`: the oldest finished Jobs beyond each history limit.
fn cleanup(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<JobKey> {
    let spec = cj.spec.as_ref();
    let mut out = Vec::new();
    for (kind, limit) in [
        ("Complete", spec.and_then(|s| s.successful_jobs_history_limit)),
        ("Failed", spec.and_then(|s| s.failed_jobs_history_limit)),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished_type(j) == Some(kind)).collect();
        let extra = finished.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
        if extra == 0 {
            continue;
        }
        finished.sort_by_key(|j| start_key(j));
        out.extend(finished.into_iter().take(extra).map(|j| key_of(j)));
    }
    out
}

fn key_of(job: &Job) -> JobKey {
    JobKey { name: job.metadata.name.clone().unwrap_or_default(), uid: job.metadata.uid.clone().unwrap_or_default() }
}

/// Decides for one CronJob. `jobs` are the Jobs it controls as cached; `missing`
/// holds UIDs of `status.active` entries the API server confirmed are gone.
pub fn decide(cj: &CronJob, jobs: &[Arc<Job>], missing: &HashSet<String>, now: Timestamp) -> Plan {
    let mut plan = Plan { status: cj.status.clone().unwrap_or_default(), ..Default::default() };
    plan.cleanup = cleanup(cj, jobs);
    let spec = cj.spec.clone().unwrap_or_default();

    let mut children = HashSet::new();
    for j in jobs {
        let uid = j.metadata.uid.as_deref();
        children.insert(uid.unwrap_or_default().to_string());
        let found = in_active(&plan.status, uid);
        let finished = finished_type(j);
        let name = j.metadata.name.clone().unwrap_or_default();
        if !found && finished.is_none() {
            // Someone else's (e.g. `kubectl create job --from=cronjob/...`), or ours
            // from before a status write that was lost.
            plan.notes.push(Note::warning(
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            ));
        } else if found && let Some(kind) = finished {
            forget_active(&mut plan.status, uid.unwrap_or_default());
            plan.notes.push(Note::normal("SawCompletedJob", format!("Saw completed job: {name}, status: {kind}")));
            plan.status_changed = true;
        }
        if finished == Some("Complete") {
            let done = j.status.as_ref().and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
            let last = plan.status.last_successful_time.as_ref().map(|t| t.0);
            if let Some(done) = done
                && last.is_none_or(|l| done > l)
            {
                plan.status.last_successful_time = Some(Time(done));
                plan.status_changed = true;
            }
        }
    }
    for r in plan.status.active.clone().unwrap_or_default() {
        let uid = r.uid.clone().unwrap_or_default();
        if !children.contains(&uid) && missing.contains(&uid) {
            let name = r.name.clone().unwrap_or_default();
            plan.notes.push(Note::normal("MissingJob", format!("Active job went missing: {name}")));
            forget_active(&mut plan.status, &uid);
            plan.status_changed = true;
        }
    }

    if cj.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let mut tz = TimeZone::UTC;
    if let Some(zone) = spec.time_zone.as_deref() {
        match load_location(zone) {
            Ok(z) => tz = z,
            Err(e) => {
                plan.notes.push(Note::warning("UnknownTimeZone", format!("invalid timeZone: {zone:?}: {e}")));
                return plan;
            }
        }
    }
    if spec.suspend == Some(true) {
        return plan;
    }
    let sched = if spec.schedule.contains("TZ") {
        plan.notes.push(Note::warning(
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        ));
        Schedule::parse(&spec.schedule)
    } else {
        Schedule::parse(&spec.schedule).map(|s| s.with_time_zone(tz.clone()))
    };
    let sched = match sched {
        Ok(s) => s,
        Err(e) => {
            plan.notes
                .push(Note::warning("UnparseableSchedule", format!("unparseable schedule: {:?} : {e}", spec.schedule)));
            return plan;
        }
    };
    // Upstream reads the time zone for the annotation from spec.timeZone alone.
    let annotation_tz = if spec.time_zone.is_some() { tz } else { TimeZone::UTC };

    let earliest = earliest_time(&with_status(cj, &plan.status));
    let scheduled = match most_recent_schedule_time(earliest, spec.starting_deadline_seconds, now, &sched) {
        Err(e) => {
            plan.notes.push(Note::warning("InvalidSchedule", format!("invalid schedule: {} : {e}", spec.schedule)));
            return plan;
        }
        Ok((_, most_recent, missed)) => {
            if most_recent.is_some() && missed == Missed::Many {
                plan.notes.push(Note::warning(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                        .into(),
                ));
            }
            most_recent
        }
    };
    let current = with_status(cj, &plan.status);
    plan.requeue = next_schedule_delay(&current, now, &sched);
    let Some(scheduled) = scheduled else { return plan };

    if let Some(deadline) = spec.starting_deadline_seconds
        && add_secs(scheduled, deadline) < now
    {
        plan.notes.push(miss_schedule(scheduled));
        return plan;
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
    let already = plan.status.active.iter().flatten().any(|r| r.name.as_deref() == Some(name.as_str()))
        || plan.status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled);
    if already {
        return plan;
    }
    let active = plan.status.active.as_ref().map_or(0, Vec::len);
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if active > 0 => {
            plan.notes.push(Note::normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return plan;
        }
        Some("Replace") => {
            plan.replace = plan
                .status
                .active
                .iter()
                .flatten()
                .map(|r| JobKey { name: r.name.clone().unwrap_or_default(), uid: r.uid.clone().unwrap_or_default() })
                .collect();
        }
        _ => {}
    }
    plan.create = Some((job_from_template(cj, scheduled, &annotation_tz), scheduled));
    plan
}

/// The Event for a slot that is past `startingDeadlineSeconds`.
fn miss_schedule(scheduled: Timestamp) -> Note {
    let at = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000");
    Note::warning("MissSchedule", format!("Missed scheduled time to start a job: {at}"))
}

fn with_status(cj: &CronJob, status: &CronJobStatus) -> CronJob {
    CronJob { metadata: cj.metadata.clone(), spec: cj.spec.clone(), status: Some(status.clone()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobStatus, JobTemplateSpec};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(schedule: &str, created: &str) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("tick".into()),
                namespace: Some("default".into()),
                uid: Some("cj-uid".into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                concurrency_policy: Some("Allow".into()),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(1),
                suspend: Some(false),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "tick".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(Default::default()),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn job(name: &str, uid: &str, finished: Option<&str>, start: &str) -> Arc<Job> {
        let conditions =
            finished.map(|t| vec![JobCondition { type_: t.into(), status: "True".into(), ..Default::default() }]);
        Arc::new(Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(JobStatus {
                conditions,
                start_time: Some(Time(ts(start))),
                completion_time: finished.filter(|t| *t == "Complete").map(|_| Time(ts(start))),
                ..Default::default()
            }),
        })
    }

    fn active_ref(name: &str, uid: &str) -> ObjectReference {
        ObjectReference { name: Some(name.into()), uid: Some(uid.into()), ..Default::default() }
    }

    #[test]
    fn nothing_is_due_before_the_first_slot() {
        let cj = cronjob("* * * * *", "2024-05-01T10:00:20Z");
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:00:50Z"));
        assert!(plan.create.is_none());
        // Woken 10 s (+ slack) later, at 10:01:00.
        assert_eq!(plan.requeue, Some(Duration::from_millis(10_100)));
    }

    #[test]
    fn a_due_slot_creates_a_job_named_by_minutes_since_the_epoch() {
        let cj = cronjob("* * * * *", "2024-05-01T10:00:20Z");
        let now = ts("2024-05-01T10:01:00.3Z");
        let plan = decide(&cj, &[], &HashSet::new(), now);
        let (job, at) = plan.create.expect("due");
        assert_eq!(at, ts("2024-05-01T10:01:00Z"));
        assert_eq!(job.metadata.name.as_deref(), Some(format!("tick-{}", at.as_second() / 60).as_str()));
        assert_eq!(job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-05-01T10:01:00Z");
        assert_eq!(job.metadata.labels.unwrap()["app"], "tick");
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("CronJob", "cj-uid", Some(true)));
        assert_eq!(plan.requeue, Some(Duration::from_millis(59_800)));
    }

    #[test]
    fn a_slot_already_started_is_not_started_again() {
        let mut cj = cronjob("* * * * *", "2024-05-01T10:00:20Z");
        cj.status =
            Some(CronJobStatus { last_schedule_time: Some(Time(ts("2024-05-01T10:01:00Z"))), ..Default::default() });
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:01:30Z"));
        assert!(plan.create.is_none());
    }

    #[test]
    fn many_missed_slots_start_only_the_latest() {
        let cj = cronjob("*/5 * * * *", "2024-05-01T00:00:00Z");
        let now = ts("2024-05-03T12:07:00Z");
        let plan = decide(&cj, &[], &HashSet::new(), now);
        assert_eq!(plan.create.unwrap().1, ts("2024-05-03T12:05:00Z"));
        assert!(plan.notes.iter().any(|n| n.reason == "TooManyMissedTimes"));
    }

    #[test]
    fn starting_deadline_drops_slots_that_are_too_old() {
        let mut cj = cronjob("0 * * * *", "2024-05-01T00:30:00Z");
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(30);
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T01:00:20Z"));
        assert!(plan.create.is_some(), "within the deadline");
        // Past the deadline the slot is no longer a candidate; wait for 02:00.
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T01:01:00Z"));
        assert!(plan.create.is_none());
        assert_eq!(plan.requeue, Some(Duration::from_millis(59 * 60_000 + 100)));
    }

    #[test]
    fn miss_schedule_names_the_slot_in_rfc1123z() {
        let note = miss_schedule(ts("2024-05-01T01:00:00Z"));
        assert_eq!(note.reason, "MissSchedule");
        assert_eq!(note.message, "Missed scheduled time to start a job: Wed, 01 May 2024 01:00:00 +0000");
    }

    #[test]
    fn forbid_waits_and_replace_deletes_the_running_job() {
        let mut cj = cronjob("* * * * *", "2024-05-01T10:00:20Z");
        cj.status = Some(CronJobStatus {
            active: Some(vec![active_ref("tick-1", "u1")]),
            last_schedule_time: Some(Time(ts("2024-05-01T10:01:00Z"))),
            ..Default::default()
        });
        let running = [job("tick-1", "u1", None, "2024-05-01T10:01:01Z")];
        let now = ts("2024-05-01T10:02:00.5Z");
        cj.spec.as_mut().unwrap().concurrency_policy = Some("Forbid".into());
        let plan = decide(&cj, &running, &HashSet::new(), now);
        assert!(plan.create.is_none());
        assert_eq!(plan.notes.last().unwrap().reason, "JobAlreadyActive");
        cj.spec.as_mut().unwrap().concurrency_policy = Some("Replace".into());
        let plan = decide(&cj, &running, &HashSet::new(), now);
        assert_eq!(plan.replace, vec![JobKey { name: "tick-1".into(), uid: "u1".into() }]);
        assert!(plan.create.is_some());
        cj.spec.as_mut().unwrap().concurrency_policy = Some("Allow".into());
        let plan = decide(&cj, &running, &HashSet::new(), now);
        assert!(plan.replace.is_empty() && plan.create.is_some());
    }

    #[test]
    fn finished_and_vanished_jobs_leave_the_active_list() {
        let mut cj = cronjob("0 0 1 1 *", "2024-05-01T10:00:00Z");
        cj.status = Some(CronJobStatus {
            active: Some(vec![active_ref("tick-1", "u1"), active_ref("tick-2", "u2"), active_ref("tick-3", "u3")]),
            ..Default::default()
        });
        let jobs = [job("tick-1", "u1", Some("Complete"), "2024-05-01T10:01:00Z")];
        let missing: HashSet<String> = ["u2".to_string()].into();
        let plan = decide(&cj, &jobs, &missing, ts("2024-05-01T10:05:00Z"));
        let left: Vec<_> = plan.status.active.unwrap().iter().map(|r| r.uid.clone().unwrap()).collect();
        // u3 is not cached but was not confirmed missing either: kept.
        assert_eq!(left, ["u3"]);
        assert_eq!(plan.status.last_successful_time.unwrap().0, ts("2024-05-01T10:01:00Z"));
        let reasons: Vec<_> = plan.notes.iter().map(|n| n.reason).collect();
        assert_eq!(reasons, ["SawCompletedJob", "MissingJob"]);
        assert_eq!(plan.notes[0].message, "Saw completed job: tick-1, status: Complete");
        assert!(plan.status_changed);
    }

    #[test]
    fn history_limits_delete_the_oldest_finished_jobs() {
        let cj = cronjob("0 0 1 1 *", "2024-05-01T10:00:00Z");
        let jobs = [
            job("s1", "1", Some("Complete"), "2024-05-01T10:01:00Z"),
            job("s2", "2", Some("Complete"), "2024-05-01T10:02:00Z"),
            job("s3", "3", Some("Complete"), "2024-05-01T10:03:00Z"),
            job("s4", "4", Some("Complete"), "2024-05-01T10:04:00Z"),
            job("f1", "5", Some("Failed"), "2024-05-01T10:01:30Z"),
            job("f2", "6", Some("Failed"), "2024-05-01T10:02:30Z"),
            job("running", "7", None, "2024-05-01T09:00:00Z"),
        ];
        let plan = decide(&cj, &jobs, &HashSet::new(), ts("2024-05-01T10:05:00Z"));
        let names: Vec<_> = plan.cleanup.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["s1", "f1"]);
    }

    #[test]
    fn suspended_invalid_or_unknown_zone_schedules_nothing() {
        let mut cj = cronjob("* * * * *", "2024-05-01T10:00:00Z");
        cj.spec.as_mut().unwrap().suspend = Some(true);
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:05:00Z"));
        assert!(plan.create.is_none() && plan.requeue.is_none());

        let mut cj = cronjob("0 0 31 2 *", "2024-05-01T10:00:00Z");
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:05:00Z"));
        assert_eq!(plan.notes[0].reason, "InvalidSchedule");
        cj.spec.as_mut().unwrap().schedule = "nonsense".into();
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:05:00Z"));
        assert_eq!(plan.notes[0].reason, "UnparseableSchedule");

        let mut cj = cronjob("* * * * *", "2024-05-01T10:00:00Z");
        cj.spec.as_mut().unwrap().time_zone = Some("Nowhere/Land".into());
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T10:05:00Z"));
        assert_eq!(plan.notes[0].reason, "UnknownTimeZone");
        assert!(plan.create.is_none());
    }

    #[test]
    fn time_zone_moves_the_slot_and_the_annotation() {
        let mut cj = cronjob("0 9 * * *", "2024-05-01T00:00:00Z");
        cj.spec.as_mut().unwrap().time_zone = Some("Etc/GMT-2".into());
        if load_location("Etc/GMT-2").is_err() {
            return; // no zoneinfo on this machine
        }
        // 09:00 at UTC+2 is 07:00 UTC.
        let plan = decide(&cj, &[], &HashSet::new(), ts("2024-05-01T07:00:01Z"));
        let (job, at) = plan.create.expect("due at 07:00 UTC");
        assert_eq!(at, ts("2024-05-01T07:00:00Z"));
        assert_eq!(job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-05-01T09:00:00+02:00");
    }

    #[test]
    fn record_started_and_forget_keep_the_list_tidy() {
        let mut status = CronJobStatus::default();
        let j = job("tick-5", "u5", None, "2024-05-01T10:00:00Z");
        record_started(&mut status, &j, ts("2024-05-01T10:00:00Z"));
        record_started(&mut status, &j, ts("2024-05-01T10:00:00Z"));
        assert_eq!(status.active.as_ref().unwrap().len(), 1);
        assert_eq!(status.active.as_ref().unwrap()[0].kind.as_deref(), Some("Job"));
        forget_active(&mut status, "u5");
        assert!(status.active.is_none());
    }
}
