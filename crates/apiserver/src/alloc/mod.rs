//! Service allocation: ClusterIPs from the service CIDR, NodePorts (and health check
//! ports) from the node port range, as upstream's `pkg/registry/core/service/storage`
//! allocates them while a Service is written.
//!
//! Every allocated value is a key of its own in the store
//! (`/registry/ranges/serviceips/<ip>`, `/registry/ranges/servicenodeports/<port>`)
//! naming the Service that holds it, and is written, moved or removed **in the same
//! transaction** as the Service itself, guarded by "absent" compares. So a value is
//! never handed out twice, however many API servers race, and a crash between
//! allocating and writing cannot leak anything: there is no such moment. The
//! in-memory [`range::Bitmap`]s only make picking a free value fast; the store has
//! the last word, and a lost race picks again. [`ServiceAllocator::repair`] runs at
//! start and reconciles the keys with the Services that exist (for data written
//! before this scheme, or by hand).
//!
//! The flow for a write: [`ServiceAllocator::plan_create`] / [`ServiceAllocator::plan_update`]
//! default the IP family fields and fill in the values (so validation sees them),
//! returning a [`Plan`]; then [`ServiceAllocator::create`], [`ServiceAllocator::update`]
//! or [`ServiceAllocator::delete`] write. A plan dropped unwritten (validation failed,
//! dry run) gives its reservations back.

pub mod kubernetes;
pub mod range;
mod write;

use api::validation::field::{self, Bad, Path};
use api::{ApiError, Cause};
use range::{Bitmap, IpRange, PortRange};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;
use store::Store;

pub use range::RangeError;

/// Where the claims on service IPs live.
pub const IP_PREFIX: &str = "/registry/ranges/serviceips/";
/// Where the claims on node ports live.
pub const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// One allocated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Claim {
    Ip(IpAddr),
    Port(u16),
}

impl Claim {
    /// Its key in the store.
    pub fn key(&self) -> String {
        match self {
            Claim::Ip(ip) => format!("{IP_PREFIX}{ip}"),
            Claim::Port(p) => format!("{PORT_PREFIX}{p}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Claim> {
        if let Some(ip) = key.strip_prefix(IP_PREFIX) {
            return ip.parse().ok().map(Claim::Ip);
        }
        key.strip_prefix(PORT_PREFIX).and_then(|p| p.parse().ok()).map(Claim::Port)
    }
}

/// Who holds a claim: the value of its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Owner {
    pub fn of(svc: &Value) -> Owner {
        let m =
            |k: &str| svc.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).unwrap_or_default().to_string();
        Owner { namespace: m("namespace"), name: m("name"), uid: m("uid") }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Owner> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Where a picked value goes in the Service, so that a lost race can pick again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    ClusterIp,
    NodePort,
    HealthCheck,
}

#[derive(Debug)]
struct Pick {
    claim: Claim,
    slot: Slot,
    /// Asked for by the client: taken means 422, not another pick.
    requested: bool,
    /// Set in the in-memory bitmap by this plan (to be cleared if never written).
    reserved: bool,
    /// The field an error about a requested value names, and the value it shows.
    path: Path,
    shown: String,
}

/// The allocations one write makes and releases.
pub struct Plan<'a> {
    alloc: &'a ServiceAllocator,
    picks: Vec<Pick>,
    /// Values the Service held before and no longer does.
    releases: Vec<Claim>,
    written: bool,
}

impl Plan<'_> {
    /// The values this write claims.
    pub fn claims(&self) -> Vec<Claim> {
        self.picks.iter().map(|p| p.claim).collect()
    }

    /// The values this write gives back.
    pub fn releases(&self) -> &[Claim] {
        &self.releases
    }
}

impl Drop for Plan<'_> {
    fn drop(&mut self) {
        if self.written {
            return;
        }
        for p in &self.picks {
            if p.reserved {
                self.alloc.unmark(p.claim);
            }
        }
    }
}

struct Used {
    ips: Bitmap,
    ports: Bitmap,
}

/// The allocator of one API server.
pub struct ServiceAllocator {
    pub ips: IpRange,
    pub ports: PortRange,
    used: Mutex<Used>,
    ready: tokio::sync::watch::Sender<bool>,
}

fn spec_str<'a>(svc: &'a Value, k: &str) -> &'a str {
    svc.pointer(&format!("/spec/{k}")).and_then(Value::as_str).unwrap_or_default()
}

fn service_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

fn is_headless(svc: &Value) -> bool {
    spec_str(svc, "clusterIP") == "None" || cluster_ips(svc).first().is_some_and(|ip| ip == "None")
}

fn has_selector(svc: &Value) -> bool {
    svc.pointer("/spec/selector").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Upstream's `NeedsHealthCheck`: a LoadBalancer that keeps traffic on the node.
pub fn needs_health_check(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

fn should_allocate_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

fn node_port(port: &Value) -> i64 {
    port.get("nodePort").and_then(Value::as_i64).unwrap_or(0)
}

fn ports_of(svc: &Value) -> Vec<Value> {
    svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn ip_family(ip: &str) -> Option<&'static str> {
    ip.parse::<IpAddr>().ok().map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" })
}

/// A Go `%#v` of a `[]string`, as upstream's errors on `spec.clusterIPs` show it.
fn go_strings(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn name_of(svc: &Value) -> String {
    svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string()
}

fn invalid(svc: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("Service", "", &name_of(svc), causes)
}

/// What a stored Service holds: its cluster IPs, node ports and health check port.
pub fn held(svc: &Value) -> BTreeSet<Claim> {
    let mut out = BTreeSet::new();
    if service_type(svc) != "ExternalName" {
        let mut ips = cluster_ips(svc);
        ips.push(spec_str(svc, "clusterIP").to_string());
        out.extend(ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()).map(Claim::Ip));
    }
    for p in ports_of(svc) {
        if let Ok(np) = u16::try_from(node_port(&p))
            && np != 0
        {
            out.insert(Claim::Port(np));
        }
    }
    let hc = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
    if let Ok(hc) = u16::try_from(hc)
        && hc != 0
    {
        out.insert(Claim::Port(hc));
    }
    out
}

/// Upstream's `dropTypeDependentFields`: a type change wipes the fields the new type
/// has no use for, when the client left them as they were (they are released then).
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let (old_ty, new_ty) = (service_type(old).to_string(), {
        let t = spec.get("type").and_then(Value::as_str).unwrap_or("");
        if t.is_empty() { "ClusterIP".to_string() } else { t.to_string() }
    });
    let old_spec = old.get("spec").cloned().unwrap_or_else(|| json!({}));
    let same = |spec: &serde_json::Map<String, Value>, k: &str| spec.get(k) == old_spec.get(k);
    if old_ty != "ExternalName" && new_ty == "ExternalName" {
        if same(spec, "clusterIP") && same(spec, "clusterIPs") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        for k in ["ipFamilies", "ipFamilyPolicy"] {
            if same(spec, k) {
                spec.remove(k);
            }
        }
    }
    let np_types = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if np_types(&old_ty) && !np_types(&new_ty) {
        let set = |ports: Option<&Value>| -> BTreeSet<i64> {
            ports.and_then(Value::as_array).into_iter().flatten().map(node_port).filter(|n| *n != 0).collect()
        };
        let (olds, news) = (set(old_spec.get("ports")), set(spec.get("ports")));
        if news.is_subset(&olds)
            && let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut)
        {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    let needs_hc = |t: &str, s: &Value| t == "LoadBalancer" && s.get("externalTrafficPolicy") == Some(&json!("Local"));
    let new_spec_value = Value::Object(spec.clone());
    if needs_hc(&old_ty, &old_spec) && !needs_hc(&new_ty, &new_spec_value) && same(spec, "healthCheckNodePort") {
        spec.remove("healthCheckNodePort");
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" {
        for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if same(spec, k) {
                spec.remove(k);
            }
        }
    }
    let has_external_ips = |s: &Value| s.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let accessible =
        |t: &str, s: &Value| np_types(t) || (t == "ClusterIP" && has_external_ips(s)) || t == "LoadBalancer";
    if accessible(&old_ty, &old_spec) && !accessible(&new_ty, &new_spec_value) && same(spec, "externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
}

impl ServiceAllocator {
    /// An allocator over `service_cidr` and `node_port_range` (e.g. `10.43.0.0/16`,
    /// `30000-32767`). It hands nothing out until [`ServiceAllocator::repair`] ran.
    pub fn new(service_cidr: &str, node_port_range: &str) -> Result<ServiceAllocator, RangeError> {
        let ips = IpRange::parse(service_cidr)?;
        let ports = PortRange::parse(node_port_range)?;
        let used = Used { ips: Bitmap::new(ips.size()), ports: Bitmap::new(ports.size()) };
        Ok(ServiceAllocator { ips, ports, used: Mutex::new(used), ready: tokio::sync::watch::channel(false).0 })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a value taken in memory; false if it was already (or is out of range).
    fn mark(&self, c: Claim) -> bool {
        let mut u = self.lock();
        match c {
            Claim::Ip(ip) => self.ips.offset_of(ip).is_some_and(|o| u.ips.set(o)),
            Claim::Port(p) => self.ports.offset_of(i64::from(p)).is_some_and(|o| u.ports.set(o)),
        }
    }

    fn unmark(&self, c: Claim) {
        let mut u = self.lock();
        match c {
            Claim::Ip(ip) => {
                if let Some(o) = self.ips.offset_of(ip) {
                    u.ips.clear(o)
                }
            }
            Claim::Port(p) => {
                if let Some(o) = self.ports.offset_of(i64::from(p)) {
                    u.ports.clear(o)
                }
            }
        }
    }

    /// Picks and reserves a free value of the slot's kind.
    fn next(&self, slot: Slot) -> Option<Claim> {
        let mut u = self.lock();
        match slot {
            Slot::ClusterIp => {
                let o = u.ips.pick(self.ips.static_band(), range::random())?;
                u.ips.set(o);
                Some(Claim::Ip(self.ips.at(o)))
            }
            Slot::NodePort | Slot::HealthCheck => {
                let o = u.ports.pick(self.ports.static_band(), range::random())?;
                u.ports.set(o);
                Some(Claim::Port(self.ports.at(o)))
            }
        }
    }

    /// How many IPs and ports are taken, as this server knows.
    pub fn used(&self) -> (usize, usize) {
        let u = self.lock();
        (u.ips.used(), u.ports.used())
    }

    /// Waits until [`ServiceAllocator::repair`] has loaded what is taken.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Upstream's `initIPFamilyFields` for a single-family cluster.
    fn init_ip_families(&self, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        if service_type(svc) == "ExternalName" {
            return Ok(());
        }
        let family = self.ips.family();
        let other = if family == "IPv4" { "IPv6" } else { "IPv4" };
        let headless_selectorless = is_headless(svc) && !has_selector(svc);
        if svc.pointer("/spec/ipFamilyPolicy").is_none_or(Value::is_null) {
            let policy = match old.and_then(|o| o.pointer("/spec/ipFamilyPolicy")).filter(|p| !p.is_null()) {
                Some(p) => p.clone(),
                None if headless_selectorless => json!("RequireDualStack"),
                None => json!("SingleStack"),
            };
            svc["spec"]["ipFamilyPolicy"] = policy;
        }
        let policy = spec_str(svc, "ipFamilyPolicy").to_string();
        let mut families: Vec<String> = svc
            .pointer("/spec/ipFamilies")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default();
        let ips = cluster_ips(svc);
        let mut errs = Vec::new();
        if let Some(old) = old
            && policy == "SingleStack"
        {
            // Dropping to single-stack with the fields as they were is clear intent.
            let mut ips = ips.clone();
            if ips.len() > 1 && cluster_ips(old) == ips {
                ips.truncate(1);
                svc["spec"]["clusterIPs"] = json!(ips);
            }
            let old_families = old.pointer("/spec/ipFamilies").cloned().unwrap_or(Value::Null);
            if families.len() > 1 && old_families == json!(families) {
                families.truncate(1);
            }
        }
        let ips = cluster_ips(svc);
        let policy_path = Path::new("spec.ipFamilyPolicy");
        if policy == "SingleStack" {
            if ips.len() == 2 {
                errs.push(field::invalid(
                    &policy_path,
                    Bad::Str(&policy),
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
                ));
            }
            if families.len() == 2 {
                errs.push(field::invalid(
                    &policy_path,
                    Bad::Str(&policy),
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
                ));
            }
        }
        for (i, ip) in ips.iter().enumerate() {
            if ip == "None" {
                break;
            }
            // Malformed addresses are validation's to report.
            let Some(fam) = ip_family(ip) else { break };
            if i >= families.len() {
                if fam != family {
                    errs.push(field::invalid(
                        &Path::new("spec.clusterIPs").index(i),
                        Bad::Raw(go_strings(&ips)),
                        &format!("{fam} is not configured on this cluster"),
                    ));
                } else {
                    families.push(fam.to_string());
                }
            }
        }
        if !errs.is_empty() {
            return Err(invalid(svc, errs));
        }
        if headless_selectorless {
            if families.is_empty() {
                families.push(family.to_string());
            }
            // Headless Services without a selector may name both families even on a
            // single-stack cluster: the endpoints are whatever is written to them.
            if families.len() < 2 && policy != "SingleStack" {
                let add = if families[0] == "IPv4" { "IPv6" } else { "IPv4" };
                families.push(add.to_string());
            }
            svc["spec"]["ipFamilies"] = json!(families);
            return Ok(());
        }
        if policy == "RequireDualStack" {
            errs.push(field::invalid(
                &policy_path,
                Bad::Str(&policy),
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, fam) in families.iter().enumerate() {
            if fam == other {
                errs.push(field::invalid(
                    &Path::new("spec.ipFamilies").index(i),
                    Bad::Str(fam),
                    "not configured on this cluster",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(invalid(svc, errs));
        }
        if families.is_empty() {
            families.push(family.to_string());
        }
        svc["spec"]["ipFamilies"] = json!(families);
        Ok(())
    }

    /// Checks and reserves a value the client asked for. Taken in memory is checked
    /// against the store, which may know better (the memory lags other servers, and
    /// a claim of the same Service itself is no conflict).
    async fn request(
        &self,
        store: &dyn Store,
        plan: &mut Plan<'_>,
        claim: Claim,
        slot: Slot,
        owner_uid: &str,
        (path, shown): (Path, String),
    ) -> Result<(), String> {
        if plan.picks.iter().any(|p| p.claim == claim) {
            return Err(taken_message(claim));
        }
        let reserved = self.mark(claim);
        if !reserved {
            let existing = store.get(&claim.key()).await.ok().flatten();
            let holder = existing.as_ref().and_then(|kv| Owner::decode(&kv.value));
            match (existing, holder) {
                (None, _) => {}
                (Some(_), Some(h)) if !owner_uid.is_empty() && h.uid == owner_uid => {}
                _ => return Err(taken_message(claim)),
            }
        }
        plan.picks.push(Pick { claim, slot, requested: true, reserved, path, shown });
        Ok(())
    }

    /// Picks a free value for `slot`, or says the range is full.
    fn dynamic(&self, plan: &mut Plan<'_>, slot: Slot) -> Result<Claim, ApiError> {
        let claim = self.next(slot).ok_or_else(|| full(slot))?;
        plan.picks.push(Pick {
            claim,
            slot,
            requested: false,
            reserved: true,
            path: Path::new(""),
            shown: String::new(),
        });
        Ok(claim)
    }

    async fn alloc_cluster_ip(
        &self,
        store: &dyn Store,
        svc: &mut Value,
        plan: &mut Plan<'_>,
        uid: &str,
    ) -> Result<(), ApiError> {
        if service_type(svc) == "ExternalName" || is_headless(svc) {
            return Ok(());
        }
        let ips = cluster_ips(svc);
        let wanted = ips.first().cloned().filter(|ip| !ip.is_empty());
        match wanted {
            Some(ip_text) => {
                let Ok(ip) = ip_text.parse::<IpAddr>() else { return Ok(()) };
                let path = Path::new("spec.clusterIPs");
                let fail = |detail: String| {
                    invalid(
                        svc,
                        vec![field::invalid(
                            &path,
                            Bad::Raw(go_strings(&ips)),
                            &format!("failed to allocate IP {ip_text}: {detail}"),
                        )],
                    )
                };
                if self.ips.offset_of(ip).is_none() {
                    return Err(fail(format!(
                        "the provided IP ({ip_text}) is not in the valid range. The range of valid IPs is {}",
                        self.ips
                    )));
                }
                let shown = go_strings(&ips);
                self.request(store, plan, Claim::Ip(ip), Slot::ClusterIp, uid, (path.clone(), shown))
                    .await
                    .map_err(fail)?;
            }
            None => {
                let Claim::Ip(ip) = self.dynamic(plan, Slot::ClusterIp)? else {
                    return Err(ApiError::internal("allocated a port for an IP"));
                };
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
        }
        Ok(())
    }

    fn port_error(&self, svc: &Value, i: usize, np: i64, detail: String) -> ApiError {
        invalid(svc, vec![field::invalid(&Path::new("spec.ports").index(i).child("nodePort"), Bad::Int(np), &detail)])
    }

    /// Claims a requested node port for `spec.ports[i]`.
    async fn request_port(
        &self,
        store: &dyn Store,
        svc: &Value,
        plan: &mut Plan<'_>,
        i: usize,
        np: i64,
        uid: &str,
    ) -> Result<(), ApiError> {
        let Some(port) = self.ports.offset_of(np).map(|o| self.ports.at(o)) else {
            return Err(self.port_error(
                svc,
                i,
                np,
                format!("provided port is not in the valid range. The range of valid ports is {}", self.ports),
            ));
        };
        let path = Path::new("spec.ports").index(i).child("nodePort");
        self.request(store, plan, Claim::Port(port), Slot::NodePort, uid, (path, np.to_string()))
            .await
            .map_err(|m| self.port_error(svc, i, np, m))
    }

    /// Upstream's `initNodePorts`: ports of the same number share one node port; a
    /// requested one is honoured for every entry of that number.
    async fn init_node_ports(
        &self,
        store: &dyn Store,
        svc: &mut Value,
        plan: &mut Plan<'_>,
        uid: &str,
    ) -> Result<(), ApiError> {
        if !needs_node_ports(svc) {
            return Ok(());
        }
        let allocate = should_allocate_node_ports(svc);
        let ports = ports_of(svc);
        let mut by_number: Vec<(i64, i64)> = Vec::new();
        for i in 0..ports.len() {
            let np = node_port(&ports[i]);
            if np == 0 && !allocate {
                continue;
            }
            let number = ports[i].get("port").and_then(Value::as_i64).unwrap_or(0);
            match by_number.iter().find(|(n, _)| *n == number).map(|(_, a)| *a) {
                None => {
                    let requested = ports[i..]
                        .iter()
                        .find(|p| p.get("port").and_then(Value::as_i64) == Some(number) && node_port(p) != 0)
                        .map(node_port)
                        .unwrap_or(0);
                    let chosen = if requested != 0 {
                        self.request_port(store, svc, plan, i, requested, uid).await?;
                        requested
                    } else {
                        match self.dynamic(plan, Slot::NodePort)? {
                            Claim::Port(p) => i64::from(p),
                            Claim::Ip(_) => return Err(ApiError::internal("allocated an IP for a port")),
                        }
                    };
                    svc["spec"]["ports"][i]["nodePort"] = json!(chosen);
                    by_number.push((number, chosen));
                }
                Some(allocated) if np != allocated => {
                    if np == 0 {
                        svc["spec"]["ports"][i]["nodePort"] = json!(allocated);
                    } else {
                        self.request_port(store, svc, plan, i, np, uid).await?;
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    async fn alloc_health_check(
        &self,
        store: &dyn Store,
        svc: &mut Value,
        plan: &mut Plan<'_>,
        uid: &str,
    ) -> Result<(), ApiError> {
        let hc = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
        if hc != 0 {
            let failed = |detail: String| {
                ApiError::internal(format!("failed to allocate requested HealthCheck NodePort {hc}: {detail}"))
            };
            let Some(port) = self.ports.offset_of(hc).map(|o| self.ports.at(o)) else {
                return Err(failed(format!(
                    "provided port is not in the valid range. The range of valid ports is {}",
                    self.ports
                )));
            };
            let path = Path::new("spec.healthCheckNodePort");
            return self
                .request(store, plan, Claim::Port(port), Slot::HealthCheck, uid, (path, hc.to_string()))
                .await
                .map_err(failed);
        }
        if let Claim::Port(p) = self.dynamic(plan, Slot::HealthCheck)? {
            svc["spec"]["healthCheckNodePort"] = json!(p);
        }
        Ok(())
    }

    /// Defaults the IP family fields of a new Service and fills in its cluster IP,
    /// node ports and health check port, reserving them.
    pub async fn plan_create(&self, store: &dyn Store, svc: &mut Value) -> Result<Plan<'_>, ApiError> {
        self.wait_ready().await;
        self.init_ip_families(svc, None)?;
        let mut plan = Plan { alloc: self, picks: Vec::new(), releases: Vec::new(), written: false };
        self.alloc_cluster_ip(store, svc, &mut plan, "").await?;
        self.init_node_ports(store, svc, &mut plan, "").await?;
        if needs_health_check(svc) {
            self.alloc_health_check(store, svc, &mut plan, "").await?;
        }
        Ok(plan)
    }

    /// The same for an update from `old`: allocates what the new type or ports need
    /// and releases what the Service no longer holds.
    pub async fn plan_update(&self, store: &dyn Store, new: &mut Value, old: &Value) -> Result<Plan<'_>, ApiError> {
        self.wait_ready().await;
        self.init_ip_families(new, Some(old))?;
        let uid = Owner::of(old).uid;
        let mut plan = Plan { alloc: self, picks: Vec::new(), releases: Vec::new(), written: false };
        let before = held(old);
        if service_type(old) == "ExternalName" && service_type(new) != "ExternalName" {
            self.alloc_cluster_ip(store, new, &mut plan, &uid).await?;
        }
        if needs_node_ports(new) {
            let allocate = should_allocate_node_ports(new);
            let ports = ports_of(new);
            for (i, p) in ports.iter().enumerate() {
                let np = node_port(p);
                if np == 0 && !allocate {
                    continue;
                }
                if np != 0 {
                    let known = u16::try_from(np).is_ok_and(|n| before.contains(&Claim::Port(n)));
                    let in_plan = u16::try_from(np).is_ok_and(|n| plan.claims().contains(&Claim::Port(n)));
                    if !known && !in_plan {
                        self.request_port(store, new, &mut plan, i, np, &uid).await?;
                    }
                } else if let Claim::Port(n) = self.dynamic(&mut plan, Slot::NodePort)? {
                    new["spec"]["ports"][i]["nodePort"] = json!(n);
                }
            }
        }
        let (needed, needs) = (needs_health_check(old), needs_health_check(new));
        let old_hc = old.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
        let new_hc = new.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
        if !needed && needs {
            self.alloc_health_check(store, new, &mut plan, &uid).await?;
        } else if needed && needs && old_hc != new_hc {
            return Err(invalid(
                new,
                vec![field::invalid(
                    &Path::new("spec.healthCheckNodePort"),
                    Bad::Int(new_hc),
                    "cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update",
                )],
            ));
        }
        // Claims the Service had but keeps are neither claimed again nor released.
        let after = held(new);
        plan.picks.retain(|p| {
            let keep = !before.contains(&p.claim);
            if !keep && p.reserved {
                self.unmark(p.claim);
            }
            keep
        });
        plan.releases = before.difference(&after).copied().collect();
        Ok(plan)
    }

    /// Loads the values taken from the store, after making the claims match the
    /// Services that exist: a Service's value without a claim gets one (the first
    /// Service to hold a value keeps it), a claim no Service holds is removed.
    pub async fn repair(&self, store: &dyn Store) -> Result<RepairReport, ApiError> {
        let report = write::repair(self, store).await?;
        self.ready.send_replace(true);
        Ok(report)
    }
}

/// What [`ServiceAllocator::repair`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Values Services held without a claim, now claimed.
    pub claimed: Vec<Claim>,
    /// Claims no Service held, now removed.
    pub released: Vec<Claim>,
    /// Values two Services hold (the later one is not given the value).
    pub duplicates: Vec<(Claim, String)>,
    /// Values outside the configured ranges (kept claimed, not in the bitmaps).
    pub out_of_range: Vec<Claim>,
}

/// Upstream's errors for a range with nothing left.
fn full(slot: Slot) -> ApiError {
    match slot {
        Slot::ClusterIp => ApiError::internal("failed to allocate a serviceIP: range is full"),
        Slot::NodePort => ApiError::internal("failed to allocate a nodePort: range is full"),
        Slot::HealthCheck => ApiError::internal("failed to allocate a HealthCheck NodePort 0: range is full"),
    }
}

fn taken_message(claim: Claim) -> String {
    match claim {
        Claim::Ip(_) => "provided IP is already allocated".to_string(),
        Claim::Port(_) => "provided port is already allocated".to_string(),
    }
}

#[cfg(test)]
mod tests;
