//! Jobs and CronJobs end to end: the controllers in `rudder server` run Pods on
//! simulated nodes (`rudder sim`), which finish Job Pods after a short delay and fail
//! those annotated `sim.rudder.dev/exit-code`. Pod templates name their node, as no
//! scheduler runs here; the scenarios would pass on a real cluster with such a node.

use crate::cluster::eventually;
use crate::cluster::{Kubectl, Sim};
use crate::{Cluster, KUBECTL_VERSIONS};
use std::time::{Duration, Instant};

/// A Job whose Pods run on `node` for `seconds`; `extra_spec` and `annotations` are
/// the insides of inline YAML maps.
fn job(name: &str, node: &str, extra_spec: &str, seconds: &str, annotations: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec: {{{extra_spec}
  template: {{
    metadata: {{annotations: {{sim.rudder.dev/complete-after: \"{seconds}\", {annotations}}}}},
    spec: {{nodeName: {node}, restartPolicy: Never, containers: [{{name: main, image: busybox}}]}}}}}}
"
    )
}

fn jsonpath(k: &Kubectl, ns: &str, what: &str, path: &str) -> String {
    k.ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={path}")])
}

fn wait(c: &Cluster, k: &Kubectl, ns: &str, job: &str, condition: &str, timeout: &str) {
    let out = k.run(&[
        "wait",
        "-n",
        ns,
        &format!("--for=condition={condition}"),
        &format!("job/{job}"),
        &format!("--timeout={timeout}"),
    ]);
    if !out.ok {
        let yaml = k.run(&["get", "job", job, "-n", ns, "-o", "yaml"]).stdout;
        let log = c.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "job {ns}/{job} not {condition}: {}{}\n{yaml}\nserver log (last lines, newest first):\n{}",
            out.stdout,
            out.stderr,
            tail.join("\n")
        );
    }
}

#[test]
fn jobs_complete_fail_expire_and_suspend() {
    let c = Cluster::start();
    let _sim = Sim::start_ready(&c, 1, "jobs");
    let node = "jobs-0";
    // Everything starts first, so the two versions' backoffs overlap.
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("jobs-{}", v.replace('.', "-"));
        k.ok(&["create", "namespace", &ns]);
        let manifests = [
            job("pi", node, "completions: 3, parallelism: 2,", "0.3", ""),
            job("fail", node, "backoffLimit: 1,", "0.3", "sim.rudder.dev/exit-code: \"1\""),
            job("indexed", node, "completions: 3, parallelism: 3, completionMode: Indexed,", "0.3", ""),
            job("brief", node, "ttlSecondsAfterFinished: 1,", "0.3", ""),
            job("slow", node, "activeDeadlineSeconds: 2,", "60", ""),
            job("later", node, "suspend: true,", "0.3", ""),
        ];
        for m in manifests {
            k.ok_stdin(&["apply", "-n", &ns, "-f", "-"], &m);
        }
    }
    for v in KUBECTL_VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("jobs-{}", v.replace('.', "-"));

        wait(&c, &k, &ns, "pi", "complete", "60s");
        assert_eq!(jsonpath(&k, &ns, "job/pi", "{.status.succeeded}"), "3");
        let met = jsonpath(&k, &ns, "job/pi", "{.status.conditions[?(@.type==\"SuccessCriteriaMet\")].reason}");
        assert_eq!(met, "CompletionsReached");
        assert!(!jsonpath(&k, &ns, "job/pi", "{.status.completionTime}").is_empty());
        let row = k.ok(&["get", "job", "pi", "-n", &ns, "--no-headers"]);
        assert!(row.contains("3/3"), "{row}");
        let pods = k.ok(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "batch.kubernetes.io/job-name=pi",
            "-o",
            "jsonpath={range .items[*]}{.status.phase} {.metadata.finalizers}{\"\\n\"}{end}",
        ]);
        assert_eq!(
            pods.lines().filter(|l| matches!(l.trim(), "Succeeded" | "Succeeded []")).count(),
            3,
            "counted pods lose the finalizer:\n{pods}"
        );
        let described = k.ok(&["describe", "job", "pi", "-n", &ns]);
        for want in
            ["SuccessfulCreate", "Created pod: pi-", "Completed", "Job completed", "job-controller", "3 Succeeded"]
        {
            assert!(described.contains(want), "{want} missing:\n{described}");
        }

        wait(&c, &k, &ns, "indexed", "complete", "60s");
        assert_eq!(jsonpath(&k, &ns, "job/indexed", "{.status.completedIndexes}"), "0-2");
        let indexes = k.ok(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "batch.kubernetes.io/job-name=indexed",
            "-o",
            "jsonpath={.items[*].metadata.labels.batch\\.kubernetes\\.io/job-completion-index}",
        ]);
        let mut indexes: Vec<&str> = indexes.split_whitespace().collect();
        indexes.sort();
        assert_eq!(indexes, ["0", "1", "2"]);

        wait(&c, &k, &ns, "slow", "failed", "30s");
        assert_eq!(
            jsonpath(&k, &ns, "job/slow", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
            "DeadlineExceeded"
        );

        // Suspended: no pods until resumed.
        assert_eq!(k.ok(&["get", "pods", "-n", &ns, "-l", "job-name=later", "-o", "name"]), "");
        k.ok(&["patch", "job", "later", "-n", &ns, "-p", "{\"spec\":{\"suspend\":false}}"]);
        wait(&c, &k, &ns, "later", "complete", "30s");

        // Finished, then deleted after its TTL.
        eventually(Duration::from_secs(30), "the finished job to expire", || {
            k.run(&["get", "job", "brief", "-n", &ns]).stderr.contains("NotFound").then_some(())
        });

        // Two failures exceed backoffLimit 1; the replacement waits out the 10 s backoff.
        wait(&c, &k, &ns, "fail", "failed", "90s");
        assert_eq!(
            jsonpath(&k, &ns, "job/fail", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
            "BackoffLimitExceeded"
        );
        assert_eq!(jsonpath(&k, &ns, "job/fail", "{.status.failed}"), "2");
        let described = k.ok(&["describe", "job", "fail", "-n", &ns]);
        assert!(
            described.contains("BackoffLimitExceeded")
                && described.contains("Job has reached the specified backoff limit"),
            "{described}"
        );
    }
}

#[test]
fn cronjob_fires_within_a_minute_and_seeds_a_manual_job() {
    let c = Cluster::start();
    let _sim = Sim::start_ready(&c, 1, "cron");
    let k = c.kubectl("1.33");
    let cronjob = "apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: \"* * * * *\"
  jobTemplate:
    metadata: {labels: {app: tick}}
    spec:
      template:
        metadata: {annotations: {sim.rudder.dev/complete-after: \"0.3\"}}
        spec: {nodeName: cron-0, restartPolicy: Never, containers: [{name: main, image: busybox}]}
";
    k.ok_stdin(&["apply", "-f", "-"], cronjob);
    let started = Instant::now();

    // `create job --from` copies the template client-side and names the CronJob owner.
    for v in KUBECTL_VERSIONS {
        let name = format!("manual-{}", v.replace('.', "-"));
        c.kubectl(v).ok(&["create", "job", &name, "--from=cronjob/tick"]);
        wait(&c, &c.kubectl(v), "default", &name, "complete", "30s");
        let owner = k.ok(&["get", "job", &name, "-o", "jsonpath={.metadata.ownerReferences[0].kind}"]);
        assert_eq!(owner, "CronJob");
    }

    // The first slot comes within a minute of creation.
    let scheduled = eventually(Duration::from_secs(70), "the scheduled job", || {
        let names = k.ok(&["get", "jobs", "-l", "app=tick", "-o", "name"]);
        names.lines().find(|n| n.starts_with("job.batch/tick-")).map(|n| n.trim_start_matches("job.batch/").to_string())
    });
    eprintln!("cronjob fired {:?} after creation", started.elapsed());
    let minutes: i64 = scheduled.trim_start_matches("tick-").parse().expect("tick-<minutes since the epoch>");
    let stamp = k.ok(&[
        "get",
        "job",
        &scheduled,
        "-o",
        "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    ]);
    assert!(stamp.ends_with(":00Z"), "{stamp}");
    let last = k.ok(&["get", "cronjob", "tick", "-o", "jsonpath={.status.lastScheduleTime}"]);
    assert_eq!(last, stamp);
    assert!(minutes > 28_000_000, "{minutes}");

    wait(&c, &k, "default", &scheduled, "complete", "30s");
    eventually(Duration::from_secs(20), "the cronjob to see its job finish", || {
        let done = k.ok(&["get", "cronjob", "tick", "-o", "jsonpath={.status.lastSuccessfulTime}|{.status.active}"]);
        (done.ends_with('|') && done.len() > 1).then_some(())
    });
    for v in KUBECTL_VERSIONS {
        let described = c.kubectl(v).ok(&["describe", "cronjob", "tick"]);
        for want in ["SuccessfulCreate", &format!("Created job {scheduled}"), "SawCompletedJob", "cronjob-controller"] {
            assert!(described.contains(want), "{want} missing:\n{described}");
        }
        let row = c.kubectl(v).ok(&["get", "cronjob", "tick", "--no-headers"]);
        assert!(row.contains("* * * * *") && row.contains("False"), "{row}");
    }
}
