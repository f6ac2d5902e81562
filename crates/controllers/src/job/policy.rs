//! `podFailurePolicy` and `successPolicy` matching (upstream's `pod_failure_policy.go`
//! and `success_policy.go`).

use super::indexes::Intervals;
use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, SuccessPolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

/// What a failed Pod means for its Job under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Set when a `FailJob` rule matched: the Job fails with this message.
    pub fail_job: Option<String>,
    /// Whether the failure counts towards `backoffLimit` (`Ignore` does not).
    pub counts: bool,
    /// The action of the matching rule, if any.
    pub action: Option<String>,
}

fn exit_code_matches(code: i32, req: &PodFailurePolicyOnExitCodesRequirement) -> bool {
    let listed = req.values.contains(&code);
    match req.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

fn matching_container<'a>(pod: &'a Pod, req: &PodFailurePolicyOnExitCodesRequirement) -> Option<&'a ContainerStatus> {
    let s = pod.status.as_ref()?;
    s.container_statuses.iter().chain(s.init_container_statuses.iter()).flatten().find(|cs| {
        let Some(t) = cs.state.as_ref().and_then(|st| st.terminated.as_ref()) else { return false };
        // Exit code 0 never matches: only failures are classified.
        req.container_name.as_ref().is_none_or(|n| *n == cs.name)
            && t.exit_code != 0
            && exit_code_matches(t.exit_code, req)
    })
}

fn matching_condition<'a>(
    pod: &'a Pod,
    patterns: &[k8s_openapi::api::batch::v1::PodFailurePolicyOnPodConditionsPattern],
) -> Option<&'a PodCondition> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    conds.iter().find(|c| patterns.iter().any(|p| p.type_ == c.type_ && p.status == c.status))
}

/// Classifies a failed Pod by the first matching rule.
pub fn match_failure(policy: &PodFailurePolicy, pod: &Pod) -> FailureVerdict {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let subject = if let Some(req) = &rule.on_exit_codes {
            matching_container(pod, req).map(|cs| {
                let code = cs.state.as_ref().and_then(|s| s.terminated.as_ref()).map_or(0, |t| t.exit_code);
                format!("Container {} for pod {ns}/{name} failed with exit code {code}", cs.name)
            })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            matching_condition(pod, patterns).map(|c| format!("Pod {ns}/{name} has condition {}", c.type_))
        } else {
            None
        };
        let Some(subject) = subject else { continue };
        let action = Some(rule.action.clone());
        return match rule.action.as_str() {
            "Ignore" => FailureVerdict { fail_job: None, counts: false, action },
            "FailJob" => FailureVerdict {
                fail_job: Some(format!("{subject} matching FailJob rule at index {index}")),
                counts: true,
                action,
            },
            _ => FailureVerdict { fail_job: None, counts: true, action },
        };
    }
    FailureVerdict { fail_job: None, counts: true, action: None }
}

/// The success policy rule the succeeded indexes satisfy, as upstream's message.
pub fn match_success(policy: Option<&SuccessPolicy>, completions: i32, succeeded: &Intervals) -> Option<String> {
    let policy = policy?;
    if succeeded.0.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let met = if let Some(required) = &rule.succeeded_indexes {
            let required = Intervals::parse(required, completions);
            if required.0.is_empty() {
                continue;
            }
            let done = succeeded.count_within(&required);
            match rule.succeeded_count {
                Some(n) => done >= n,
                None => done == required.total(),
            }
        } else {
            rule.succeeded_count.is_some_and(|n| succeeded.total() >= n)
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule, SuccessPolicyRule,
    };
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn failed_pod(code: i32, condition: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated { exit_code: code, ..Default::default() }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                conditions: condition
                    .map(|c| vec![PodCondition { type_: c.into(), status: "True".into(), ..Default::default() }]),
                ..Default::default()
            }),
        }
    }

    fn policy() -> PodFailurePolicy {
        PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some("main".into()),
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                },
            ],
        }
    }

    #[test]
    fn rules_match_in_order_with_upstreams_messages() {
        let v = match_failure(&policy(), &failed_pod(42, None));
        assert_eq!(
            v.fail_job.as_deref(),
            Some("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0")
        );
        let v = match_failure(&policy(), &failed_pod(1, Some("DisruptionTarget")));
        assert_eq!((v.counts, v.action.as_deref()), (false, Some("Ignore")));
        let v = match_failure(&policy(), &failed_pod(1, None));
        assert_eq!(v, FailureVerdict { fail_job: None, counts: true, action: None });
    }

    #[test]
    fn success_policy_by_indexes_and_count() {
        let policy = SuccessPolicy {
            rules: vec![
                SuccessPolicyRule { succeeded_indexes: Some("0-2".into()), succeeded_count: None },
                SuccessPolicyRule { succeeded_indexes: None, succeeded_count: Some(4) },
            ],
        };
        let done = Intervals::parse("0,1,5", 10);
        assert_eq!(match_success(Some(&policy), 10, &done), None);
        let done = Intervals::parse("0-2", 10);
        assert_eq!(match_success(Some(&policy), 10, &done).as_deref(), Some("Matched rules at index 0"));
        let done = Intervals::parse("0,1,5,7", 10);
        assert_eq!(match_success(Some(&policy), 10, &done).as_deref(), Some("Matched rules at index 1"));
        assert_eq!(match_success(None, 10, &done), None);
    }
}
