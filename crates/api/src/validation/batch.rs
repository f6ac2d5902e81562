//! `batch/v1` Jobs and CronJobs (`pkg/apis/batch/validation`); schedules are read by
//! [`crate::cron`], whose errors are upstream's messages.

use super::field::{self, Bad, Path, get, int_of, obj, opt_str, str_of, sub};
use super::meta::{self, FIELD_IMMUTABLE, Selector};
use super::names::{self, NameRule};
use super::pod;
use crate::cron::Schedule;
use crate::status::Cause;
use serde_json::Value;

const LEGACY_UID_LABEL: &str = "controller-uid";
const LEGACY_NAME_LABEL: &str = "job-name";
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn nonneg(v: &Value, key: &str, path: &Path) -> Vec<Cause> {
    int_of(v, key).map(|n| meta::validate_nonnegative(n, &path.child(key))).unwrap_or_default()
}

fn has_label(tpl_meta: &Value, path: &Path, key: &str, expected: &str) -> Option<Cause> {
    let labels = obj(tpl_meta, "labels");
    let p = path.child("labels").key(key);
    match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
        None => Some(field::required(&p, &format!("must be '{expected}'"))),
        Some(v) if v != expected => {
            Some(field::invalid(&p, Bad::Raw(field::go_string_map(labels)), &format!("must be '{expected}'")))
        }
        Some(_) => None,
    }
}

/// `validateGeneratedSelector`: a generated selector and its labels must name this Job.
fn generated_selector(job: &Value, require_prefixed: bool) -> Vec<Cause> {
    let spec = sub(job, "spec");
    if field::bool_of(spec, "manualSelector") == Some(true) {
        return Vec::new();
    }
    let Some(sel) = get(spec, "selector") else {
        return Vec::new();
    };
    let m = sub(job, "metadata");
    let (uid, name) = (str_of(m, "uid"), str_of(m, "name"));
    let mut errs = Vec::new();
    if uid.is_empty() {
        errs.push(field::required(&Path::new("metadata.uid"), ""));
    }
    let tm = sub(sub(spec, "template"), "metadata");
    let tp = Path::new("spec.template.metadata");
    errs.extend(has_label(tm, &tp, LEGACY_UID_LABEL, uid));
    errs.extend(has_label(tm, &tp, LEGACY_NAME_LABEL, name));
    let mut expected = serde_json::Map::new();
    if require_prefixed {
        errs.extend(has_label(tm, &tp, UID_LABEL, uid));
        errs.extend(has_label(tm, &tp, NAME_LABEL, name));
        expected.insert(UID_LABEL.into(), uid.into());
        expected.insert(NAME_LABEL.into(), name.into());
    }
    expected.insert(LEGACY_UID_LABEL.into(), uid.into());
    expected.insert(LEGACY_NAME_LABEL.into(), name.into());
    if let Some(s) = Selector::from(Some(sel))
        && !s.matches(Some(&expected))
    {
        errs.push(field::invalid(
            &Path::new("spec.selector"),
            Bad::Raw(field::go_label_selector(sel)),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `validateJobSpec`: what a Job and a CronJob's job template share.
fn job_spec_common(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        errs.extend(nonneg(spec, key, path));
    }
    if get(spec, "maxFailedIndexes").is_some() {
        errs.extend(nonneg(spec, "maxFailedIndexes", path));
        if get(spec, "backoffLimitPerIndex").is_none() {
            errs.push(field::required(&path.child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"));
        }
    }
    if let Some(mb) = opt_str(spec, "managedBy") {
        let mp = path.child("managedBy");
        match mb.split_once('/') {
            Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
                for m in names::dns1123_subdomain(host) {
                    errs.push(field::invalid(&mp, Bad::Str(host), &m));
                }
                let ok = rest.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
                if !ok {
                    errs.push(field::invalid(
                        &mp,
                        Bad::Str(rest),
                        "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                    ));
                }
            }
            _ => {
                errs.push(field::invalid(&mp, Bad::Str(mb), "must be a domain-prefixed path (such as \"acme.io/foo\")"))
            }
        }
        if mb.len() > 63 {
            errs.push(field::too_long(&mp, 63));
        }
    }
    let mode = opt_str(spec, "completionMode");
    if let Some(mode) = mode {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(field::not_supported(&path.child("completionMode"), Bad::Str(mode), &["NonIndexed", "Indexed"]));
        }
        if mode == "Indexed" {
            if get(spec, "completions").is_none() {
                errs.push(field::required(&path.child("completions"), "when completion mode is Indexed"));
            }
            if let Some(p) = int_of(spec, "parallelism").filter(|p| *p > 100_000) {
                errs.push(field::invalid(
                    &path.child("parallelism"),
                    Bad::Int(p),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (int_of(spec, "completions"), int_of(spec, "maxFailedIndexes"))
                && m > c
            {
                errs.push(field::invalid(
                    &path.child("maxFailedIndexes"),
                    Bad::Int(m),
                    "must be less than or equal to completions",
                ));
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int_of(spec, key) {
                errs.push(field::invalid(&path.child(key), Bad::Int(v), "requires indexed completion mode"));
            }
        }
    }
    if let Some(sp) = get(spec, "successPolicy")
        && mode != Some("Indexed")
    {
        errs.push(field::invalid(&path.child("successPolicy"), Bad::Json(sp), "requires indexed completion mode"));
    }
    let pfp = get(spec, "podFailurePolicy");
    if let Some(pfp) = pfp {
        errs.extend(pod_failure_policy(pfp, &path.child("podFailurePolicy")));
    }
    if let Some(rp) = opt_str(spec, "podReplacementPolicy") {
        let p = path.child("podReplacementPolicy");
        if pfp.is_some() {
            if rp != "Failed" {
                errs.push(field::not_supported(&p, Bad::Str(rp), &["Failed"]));
            }
        } else if rp != "Failed" && rp != "TerminatingOrFailed" {
            errs.push(field::not_supported(&p, Bad::Str(rp), &["Failed", "TerminatingOrFailed"]));
        }
    }
    let tp = path.child("template");
    let tpl = sub(spec, "template");
    errs.extend(pod::validate_pod_template_spec(tpl, &tp));
    let rp_path = tp.child("spec").child("restartPolicy");
    match str_of(sub(tpl, "spec"), "restartPolicy") {
        "Always" | "" => errs.push(field::required(&rp_path, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" if pfp.is_some() => {
            errs.push(field::invalid(
                &rp_path,
                Bad::Str("OnFailure"),
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
        "OnFailure" | "Never" => {}
        other => errs.push(field::not_supported(&rp_path, Bad::Str(other), &["OnFailure", "Never"])),
    }
    errs
}

fn pod_failure_policy(pfp: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let rules = field::arr(pfp, "rules");
    let rp = path.child("rules");
    if rules.len() > 20 {
        errs.push(field::too_many(&rp, rules.len(), 20));
    }
    const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in rules.iter().enumerate() {
        let p = rp.index(i);
        let action = str_of(rule, "action");
        if action.is_empty() {
            errs.push(field::required(&p.child("action"), ""));
        } else if !ACTIONS.contains(&action) {
            errs.push(field::not_supported(&p.child("action"), Bad::Str(action), ACTIONS));
        }
        match (get(rule, "onExitCodes"), get(rule, "onPodConditions")) {
            (Some(_), Some(_)) => errs.push(field::invalid(
                &p,
                Bad::Raw("specifying both OnExitCodes and OnPodConditions is not supported".into()),
                "",
            )),
            (None, None) => errs.push(field::invalid(
                &p,
                Bad::Raw("specifying one of OnExitCodes and OnPodConditions is required".into()),
                "",
            )),
            _ => {}
        }
    }
    errs
}

/// `ValidateJobSpec`: the shared rules plus the selector.
fn job_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = job_spec_common(spec, path);
    match get(spec, "selector") {
        None => errs.push(field::required(&path.child("selector"), "")),
        Some(s) => errs.extend(meta::validate_label_selector(Some(s), &path.child("selector"))),
    }
    if let Some(sel) = Selector::from(get(spec, "selector")) {
        let tm = sub(sub(spec, "template"), "metadata");
        if !sel.matches(obj(tm, "labels")) {
            errs.push(field::invalid(
                &path.child("template").child("metadata").child("labels"),
                Bad::Raw(field::go_string_map(obj(tm, "labels"))),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs
}

fn validate_job_with(job: &Value, require_prefixed: bool) -> Vec<Cause> {
    let m = sub(job, "metadata");
    let mut errs = meta::validate_object_meta(m, true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(generated_selector(job, require_prefixed));
    let spec = sub(job, "spec");
    errs.extend(job_spec(spec, &Path::new("spec")));
    if opt_str(spec, "completionMode") == Some("Indexed")
        && let Some(c) = int_of(spec, "completions").filter(|c| *c > 0)
    {
        let host = format!("{}-{}", str_of(m, "name"), c - 1);
        if !names::dns1123_label(&host).is_empty() {
            errs.push(field::invalid(
                &Path::new("metadata.name"),
                Bad::Str(str_of(m, "name")),
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

pub fn validate_job(job: &Value) -> Vec<Cause> {
    validate_job_with(job, true)
}

fn immutable(new: &Value, old: &Value, key: &str, path: &Path) -> Option<Cause> {
    field::differs(get(new, key), get(old, key))
        .then(|| field::invalid(&path.child(key), Bad::Json(get(new, key).unwrap_or(&Value::Null)), FIELD_IMMUTABLE))
}

pub fn validate_job_update(new: &Value, old: &Value) -> Vec<Cause> {
    let tl = sub(sub(sub(old, "spec"), "template"), "metadata");
    let had = |k: &str| obj(tl, "labels").is_some_and(|l| l.contains_key(k));
    let require_prefixed = had(UID_LABEL) && had(NAME_LABEL);
    let mut errs = validate_job_with(new, require_prefixed);
    errs.extend(meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata")));
    let (ns, os) = (sub(new, "spec"), sub(old, "spec"));
    let sp = Path::new("spec");
    // Indexed Jobs may scale completions together with parallelism (ElasticIndexedJob, GA).
    if field::differs(get(ns, "completions"), get(os, "completions")) {
        if opt_str(ns, "completionMode") == Some("Indexed") {
            if let Some(c) = int_of(ns, "completions")
                && Some(c) != int_of(ns, "parallelism")
            {
                errs.push(field::invalid(
                    &sp.child("completions"),
                    Bad::Int(c),
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        } else {
            errs.extend(immutable(ns, os, "completions", &sp));
        }
    }
    if field::differs(get(ns, "selector"), get(os, "selector")) {
        let rendered = get(ns, "selector").map(field::go_label_selector).unwrap_or_else(|| "null".into());
        errs.push(field::invalid(&sp.child("selector"), Bad::Raw(rendered), FIELD_IMMUTABLE));
    }
    // The template is immutable, except scheduling directives of a suspended Job that never started.
    let suspended = field::bool_of(os, "suspend") == Some(true) && get(sub(old, "status"), "startTime").is_none();
    let strip = |t: &Value| {
        let mut t = t.clone();
        if suspended {
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["nodeSelector", "tolerations", "schedulingGates"] {
                    s.remove(k);
                }
                if let Some(a) = s.get_mut("affinity").and_then(Value::as_object_mut) {
                    a.remove("nodeAffinity");
                    if a.is_empty() {
                        s.remove("affinity");
                    }
                }
            }
        }
        t
    };
    if strip(sub(ns, "template")) != strip(sub(os, "template")) {
        errs.push(field::invalid(&sp.child("template"), Bad::Json(sub(ns, "template")), FIELD_IMMUTABLE));
    }
    for key in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
        errs.extend(immutable(ns, os, key, &sp));
    }
    errs
}

pub fn validate_job_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let st = Path::new("status");
    let status = sub(new, "status");
    for key in ["active", "succeeded", "failed", "ready", "terminating"] {
        errs.extend(nonneg(status, key, &st));
    }
    errs
}

// ---- CronJob

pub fn validate_cronjob(cj: &Value) -> Vec<Cause> {
    let m = sub(cj, "metadata");
    let mut errs = meta::validate_object_meta(m, true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(cronjob_spec(sub(cj, "spec"), None, &Path::new("spec")));
    let name = str_of(m, "name");
    // The controller appends an 11-character suffix to make Job names of at most 63.
    if name.len() > 52 {
        errs.push(field::invalid(&Path::new("metadata.name"), Bad::Str(name), "must be no more than 52 characters"));
    }
    errs
}

pub fn validate_cronjob_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(cronjob_spec(sub(new, "spec"), Some(sub(old, "spec")), &Path::new("spec")));
    errs
}

fn cronjob_spec(spec: &Value, old: Option<&Value>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let schedule = str_of(spec, "schedule");
    let tz = get(spec, "timeZone");
    if schedule.is_empty() {
        errs.push(field::required(&path.child("schedule"), ""));
    } else {
        let allow_tz = old.is_some_and(|o| str_of(o, "schedule").contains("TZ"));
        let sp = path.child("schedule");
        if let Err(e) = Schedule::parse(schedule) {
            errs.push(field::invalid(&sp, Bad::Str(schedule), &e.to_string()));
        }
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(field::invalid(
                &sp,
                Bad::Str(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(field::invalid(
                &sp,
                Bad::Str(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    errs.extend(nonneg(spec, "startingDeadlineSeconds", path));
    if old.is_none_or(|o| field::differs(get(o, "timeZone"), tz))
        && let Some(tz) = tz.and_then(Value::as_str)
    {
        errs.extend(time_zone(tz, &path.child("timeZone")));
    }
    const POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];
    match str_of(spec, "concurrencyPolicy") {
        "" => errs.push(field::required(&path.child("concurrencyPolicy"), "")),
        p if !POLICIES.contains(&p) => {
            errs.push(field::not_supported(&path.child("concurrencyPolicy"), Bad::Str(p), POLICIES))
        }
        _ => {}
    }
    let jt = sub(spec, "jobTemplate");
    let jp = path.child("jobTemplate").child("spec");
    let jspec = sub(jt, "spec");
    errs.extend(job_spec_common(jspec, &jp));
    if let Some(sel) = get(jspec, "selector") {
        errs.push(field::invalid(
            &jp.child("selector"),
            Bad::Raw(field::go_label_selector(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if field::bool_of(jspec, "manualSelector") == Some(true) {
        errs.push(field::not_supported(&jp.child("manualSelector"), Bad::Raw("true".into()), &["nil", "false"]));
    }
    errs.extend(nonneg(spec, "successfulJobsHistoryLimit", path));
    errs.extend(nonneg(spec, "failedJobsHistoryLimit", path));
    errs
}

fn time_zone(tz: &str, path: &Path) -> Vec<Cause> {
    if tz.is_empty() {
        return vec![field::invalid(path, Bad::Str(tz), "timeZone must be nil or non-empty string")];
    }
    for part in tz.split('/') {
        let ok = !part.is_empty()
            && part.len() <= 14
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part.bytes().all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c));
        if !ok {
            return vec![field::invalid(path, Bad::Str(tz), &format!("unknown time zone {tz}"))];
        }
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![field::invalid(
            path,
            Bad::Str(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {
                "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                "suspend": false, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
                "template": {
                    "metadata": {"labels": {
                        "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                        "controller-uid": "u-1", "job-name": "pi"}},
                    "spec": {
                        "containers": [{"name": "pi", "image": "perl", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File", "resources": {}}],
                        "restartPolicy": "Never", "dnsPolicy": "ClusterFirst",
                        "terminationGracePeriodSeconds": 30, "securityContext": {}
                    }
                }
            }
        })
    }

    fn find<'a>(errs: &'a [Cause], f: &str) -> Option<&'a Cause> {
        errs.iter().find(|c| c.field == f)
    }

    #[test]
    fn a_defaulted_job_is_valid() {
        assert!(validate_job(&job()).is_empty(), "{:?}", validate_job(&job()));
    }

    #[test]
    fn job_template_restart_policy() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(
            find(&validate_job(&j), "spec.template.spec.restartPolicy").unwrap().message,
            "Required value: valid values: \"OnFailure\", \"Never\""
        );
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Sometimes");
        assert_eq!(
            find(&validate_job(&j), "spec.template.spec.restartPolicy").unwrap().reason,
            "FieldValueNotSupported"
        );
    }

    #[test]
    fn generated_selector_must_name_the_job() {
        let mut j = job();
        j["spec"]["template"]["metadata"]["labels"]["job-name"] = json!("other");
        let errs = validate_job(&j);
        assert!(find(&errs, "spec.template.metadata.labels[job-name]").unwrap().message.ends_with("must be 'pi'"));
        let mut j = job();
        j["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "x"}});
        j["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = json!("x");
        let errs = validate_job(&j);
        assert!(find(&errs, "spec.selector").unwrap().message.ends_with("`selector` not auto-generated"));
    }

    #[test]
    fn job_spec_numbers_and_modes() {
        let mut j = job();
        j["spec"]["backoffLimit"] = json!(-1);
        j["spec"]["completionMode"] = json!("Sometimes");
        j["spec"]["podReplacementPolicy"] = json!("Never");
        let errs = validate_job(&j);
        assert!(find(&errs, "spec.backoffLimit").is_some());
        assert_eq!(find(&errs, "spec.completionMode").unwrap().reason, "FieldValueNotSupported");
        assert_eq!(
            find(&errs, "spec.podReplacementPolicy").unwrap().message,
            "Unsupported value: \"Never\": supported values: \"Failed\", \"TerminatingOrFailed\""
        );
    }

    #[test]
    fn job_updates_keep_selector_and_template() {
        let mut old = job();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let errs = validate_job_update(&new, &old);
        assert!(find(&errs, "spec.template").unwrap().message.ends_with("field is immutable"));
        let mut new = old.clone();
        new["spec"]["parallelism"] = json!(3);
        new["spec"]["suspend"] = json!(true);
        assert!(validate_job_update(&new, &old).is_empty(), "{:?}", validate_job_update(&new, &old));
        let mut new = old.clone();
        new["spec"]["completions"] = json!(5);
        assert!(find(&validate_job_update(&new, &old), "spec.completions").is_some());
        // A suspended Job that never ran may change its node selector.
        let mut sus = old.clone();
        sus["spec"]["suspend"] = json!(true);
        let mut new = sus.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert!(validate_job_update(&new, &sus).is_empty());
    }

    fn cronjob() -> Value {
        let j = job();
        json!({
            "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {
                "schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": {"spec": j["spec"]["template"]["spec"].clone()}}}
            }
        })
    }

    #[test]
    fn cronjobs() {
        assert!(validate_cronjob(&cronjob()).is_empty(), "{:?}", validate_cronjob(&cronjob()));
        let mut c = cronjob();
        c["spec"]["schedule"] = json!("61 * * * *");
        c["spec"]["concurrencyPolicy"] = json!("Sometimes");
        c["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        c["metadata"]["name"] = json!("a".repeat(53));
        let errs = validate_cronjob(&c);
        assert_eq!(
            find(&errs, "spec.schedule").unwrap().message,
            "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
        );
        assert_eq!(
            find(&errs, "spec.concurrencyPolicy").unwrap().message,
            "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        );
        assert!(
            find(&errs, "spec.jobTemplate.spec.selector")
                .unwrap()
                .message
                .ends_with("`selector` will be auto-generated")
        );
        assert!(find(&errs, "metadata.name").unwrap().message.ends_with("must be no more than 52 characters"));
        let mut c = cronjob();
        c["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        c["spec"]["timeZone"] = json!("Local");
        let errs = validate_cronjob(&c);
        assert!(find(&errs, "spec.schedule").unwrap().message.contains("use timeZone field instead"));
        assert!(find(&errs, "spec.timeZone").unwrap().message.contains("explicit time zone"));
    }
}
