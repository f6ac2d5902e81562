//! The `kube-root-ca.crt` ConfigMap every namespace carries: the cluster CA for pods
//! to verify the API server with. The root CA publisher keeps it, and service-account
//! admission makes it on demand and points the token volume at it; both name and
//! describe it from here, as upstream does.

/// The ConfigMap's name.
pub const NAME: &str = "kube-root-ca.crt";
/// The key holding the CA bundle (PEM).
pub const KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
