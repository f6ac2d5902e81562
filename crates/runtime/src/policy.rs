//! `imagePullPolicy` as decisions without I/O: whether to pull, given the policy and
//! whether the image is already in the store.

use crate::reference::{DEFAULT_TAG, Reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling (`Always`, `IfNotPresent`, `Never`).
    pub fn parse(s: &str) -> Option<PullPolicy> {
        match s {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }

    /// The API server's default: `Always` for `:latest` or no tag (unless pinned by
    /// digest), `IfNotPresent` otherwise.
    pub fn default_for(image: &str) -> PullPolicy {
        match Reference::parse_normalized_named(image) {
            Ok(r) if r.digest.is_some() => PullPolicy::IfNotPresent,
            Ok(r) if r.tag.as_deref().is_none_or(|t| t == DEFAULT_TAG) => PullPolicy::Always,
            Ok(_) => PullPolicy::IfNotPresent,
            // An unparsable name fails later with a clear error; the policy does not matter.
            Err(_) => PullPolicy::IfNotPresent,
        }
    }
}

/// What to do about an image before starting a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    Pull,
    UseLocal,
    /// `Never` and not present: the kubelet's `ErrImageNeverPull`.
    NeverPullMissing,
}

pub fn decide(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UseLocal,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide(PullPolicy::Always, true), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::Always, false), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::IfNotPresent, true), PullDecision::UseLocal);
        assert_eq!(decide(PullPolicy::IfNotPresent, false), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::Never, true), PullDecision::UseLocal);
        assert_eq!(decide(PullPolicy::Never, false), PullDecision::NeverPullMissing);
    }

    #[test]
    fn defaults_as_the_api_server_sets_them() {
        assert_eq!(PullPolicy::default_for("busybox"), PullPolicy::Always);
        assert_eq!(PullPolicy::default_for("busybox:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::default_for("busybox:1.36"), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::default_for("localhost:5000/app"), PullPolicy::Always);
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(PullPolicy::default_for(&format!("busybox@{d}")), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::parse("Never"), Some(PullPolicy::Never));
        assert_eq!(PullPolicy::parse("never"), None);
    }
}
