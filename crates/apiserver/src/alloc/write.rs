//! The store side of allocation: each Service write and the claims it makes or gives
//! back go in one transaction, and the start-up repair.

use super::{Claim, Owner, Plan, RepairReport, ServiceAllocator, Slot, held, taken_message};
use crate::objects::{decode, decode_as, encode, set_resource_version, store_error};
use api::validation::field::{self, Bad};
use api::{ApiError, Resource};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use store::{Compare, KeyValue, Op, OpResult, RangeRequest, Store, Txn};

/// How often a write picks again after losing a value to a concurrent writer.
const ATTEMPTS: usize = 16;

fn got(results: &[OpResult], i: usize) -> Option<&KeyValue> {
    match results.get(i) {
        Some(OpResult::Get(kv)) => kv.as_ref(),
        _ => None,
    }
}

/// Writes a new value into the Service where a lost one was.
fn replace(obj: &mut Value, slot: Slot, old: Claim, new: Claim) {
    match (slot, new) {
        (Slot::ClusterIp, Claim::Ip(ip)) => {
            obj["spec"]["clusterIP"] = json!(ip.to_string());
            obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
        (Slot::NodePort, Claim::Port(p)) => {
            let Claim::Port(was) = old else { return };
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut() {
                    if port.get("nodePort").and_then(Value::as_i64) == Some(i64::from(was)) {
                        port["nodePort"] = json!(p);
                    }
                }
            }
        }
        (Slot::HealthCheck, Claim::Port(p)) => obj["spec"]["healthCheckNodePort"] = json!(p),
        _ => {}
    }
}

impl ServiceAllocator {
    /// After a failed transaction: notes the claims others hold, and picks again
    /// for lost automatic values. A lost requested value is the client's 422.
    fn settle_lost(
        &self,
        plan: &mut Plan<'_>,
        obj: &mut Value,
        results: &[OpResult],
        first: usize,
        uid: &str,
    ) -> Result<bool, ApiError> {
        let mut retry = false;
        for i in 0..plan.picks.len() {
            let Some(kv) = got(results, first + i) else { continue };
            if !uid.is_empty() && Owner::decode(&kv.value).is_some_and(|o| o.uid == uid) {
                // Already ours (an earlier write of this Service): no conflict.
                continue;
            }
            let pick = &mut plan.picks[i];
            // Someone else holds it: the memory should say so, and a dropped plan
            // must not clear it.
            self.mark(pick.claim);
            pick.reserved = false;
            if pick.requested {
                let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                let cause = match (pick.slot, pick.claim) {
                    (Slot::HealthCheck, Claim::Port(p)) => {
                        return Err(ApiError::internal(format!(
                            "failed to allocate requested HealthCheck NodePort {p}: provided port is already allocated"
                        )));
                    }
                    (Slot::ClusterIp, Claim::Ip(ip)) => field::invalid(
                        &pick.path,
                        Bad::Raw(pick.shown.clone()),
                        &format!("failed to allocate IP {ip}: {}", taken_message(pick.claim)),
                    ),
                    _ => field::invalid(&pick.path, Bad::Raw(pick.shown.clone()), &taken_message(pick.claim)),
                };
                return Err(ApiError::invalid("Service", "", name, vec![cause]));
            }
            let old = pick.claim;
            let slot = pick.slot;
            let new = self.next(slot).ok_or_else(|| super::full(slot))?;
            replace(obj, slot, old, new);
            let pick = &mut plan.picks[i];
            pick.claim = new;
            pick.reserved = true;
            retry = true;
        }
        Ok(retry)
    }

    /// Claims that exist and name `uid`, with their revisions: what a write may
    /// delete. Claims of other Services are never touched.
    async fn owned(&self, store: &dyn Store, claims: &[Claim], uid: &str) -> Result<Vec<(Claim, i64)>, ApiError> {
        let mut out = Vec::new();
        for c in claims {
            if let Some(kv) = store.get(&c.key()).await.map_err(store_error)?
                && Owner::decode(&kv.value).is_some_and(|o| o.uid == uid)
            {
                out.push((*c, kv.mod_revision));
            }
        }
        Ok(out)
    }

    /// Writes a new Service with its claims; 409 AlreadyExists if the name is taken.
    pub async fn create(
        &self,
        store: &dyn Store,
        res: &Resource,
        key: &str,
        mut obj: Value,
        mut plan: Plan<'_>,
    ) -> Result<Value, ApiError> {
        let owner = Owner::of(&obj);
        for _ in 0..ATTEMPTS {
            let claims = plan.claims();
            let txn = Txn::new()
                .when(std::iter::once(Compare::absent(key)).chain(claims.iter().map(|c| Compare::absent(&c.key()))))
                .and_then(
                    std::iter::once(Op::put(key, encode(res, &obj)))
                        .chain(claims.iter().map(|c| Op::put(&c.key(), owner.encode()))),
                )
                .or_else(std::iter::once(Op::get(key)).chain(claims.iter().map(|c| Op::get(&c.key()))));
            let resp = store.txn(txn).await.map_err(store_error)?;
            if resp.succeeded {
                plan.written = true;
                set_resource_version(&mut obj, resp.revision);
                return Ok(obj);
            }
            if got(&resp.results, 0).is_some() {
                return Err(ApiError::already_exists(res, &owner.name));
            }
            if !self.settle_lost(&mut plan, &mut obj, &resp.results, 1, "")? {
                return Err(ApiError::internal("writing the service failed: a claim changed while it was written"));
            }
        }
        Err(ApiError::internal("failed to allocate: too many concurrent allocations, try again"))
    }

    /// Replaces a Service whose revision is still `expected`, claiming and releasing
    /// per the plan; 409 Conflict or 404 as a plain update.
    pub async fn update(
        &self,
        store: &dyn Store,
        res: &Resource,
        key: &str,
        mut obj: Value,
        expected: i64,
        mut plan: Plan<'_>,
    ) -> Result<Value, ApiError> {
        let owner = Owner::of(&obj);
        for _ in 0..ATTEMPTS {
            let claims = plan.claims();
            let releases = self.owned(store, &plan.releases, &owner.uid).await?;
            let compares = std::iter::once(Compare::mod_revision(key, expected))
                .chain(claims.iter().map(|c| Compare::absent(&c.key())))
                .chain(releases.iter().map(|(c, rev)| Compare::mod_revision(&c.key(), *rev)));
            let ops = std::iter::once(Op::put(key, encode(res, &obj)))
                .chain(claims.iter().map(|c| Op::put(&c.key(), owner.encode())))
                .chain(releases.iter().map(|(c, _)| Op::delete(&c.key())));
            let txn = Txn::new()
                .when(compares)
                .and_then(ops)
                .or_else(std::iter::once(Op::get(key)).chain(claims.iter().map(|c| Op::get(&c.key()))));
            let resp = store.txn(txn).await.map_err(store_error)?;
            if resp.succeeded {
                plan.written = true;
                for (c, _) in &releases {
                    self.unmark(*c);
                }
                set_resource_version(&mut obj, resp.revision);
                return Ok(obj);
            }
            match got(&resp.results, 0) {
                None => return Err(ApiError::not_found(res, &owner.name)),
                Some(kv) if kv.mod_revision != expected => return Err(ApiError::stale(res, &owner.name)),
                Some(_) => {}
            }
            // A lost claim picks again; a release whose claim moved is read again.
            self.settle_lost(&mut plan, &mut obj, &resp.results, 1, &owner.uid)?;
            // A claim that turned out to be ours already needs no absent compare.
            let uid = owner.uid.clone();
            let mut keep = Vec::new();
            for (i, p) in plan.picks.drain(..).enumerate() {
                let ours = got(&resp.results, 1 + i)
                    .and_then(|kv| Owner::decode(&kv.value))
                    .is_some_and(|o| o.uid == uid && !uid.is_empty());
                if !ours {
                    keep.push(p);
                }
            }
            plan.picks = keep;
        }
        Err(ApiError::internal("failed to allocate: too many concurrent allocations, try again"))
    }

    /// Removes a Service whose revision is still `expected` and gives back what it
    /// held. Returns its last state stamped with the deletion's revision.
    pub async fn delete(
        &self,
        store: &dyn Store,
        res: &Resource,
        key: &str,
        name: &str,
        expected: i64,
        old: &Value,
    ) -> Result<Value, ApiError> {
        let uid = Owner::of(old).uid;
        let holds: Vec<Claim> = held(old).into_iter().collect();
        for _ in 0..ATTEMPTS {
            let releases = self.owned(store, &holds, &uid).await?;
            let txn = Txn::new()
                .when(
                    std::iter::once(Compare::mod_revision(key, expected))
                        .chain(releases.iter().map(|(c, rev)| Compare::mod_revision(&c.key(), *rev))),
                )
                .and_then(std::iter::once(Op::delete(key)).chain(releases.iter().map(|(c, _)| Op::delete(&c.key()))))
                .or_else([Op::get(key)]);
            let resp = store.txn(txn).await.map_err(store_error)?;
            if resp.succeeded {
                for (c, _) in &releases {
                    self.unmark(*c);
                }
                return match resp.results.into_iter().next() {
                    Some(OpResult::Delete { prev: Some(prev) }) => {
                        let mut obj = decode_as(res, &prev)?;
                        set_resource_version(&mut obj, resp.revision);
                        Ok(obj)
                    }
                    _ => Err(ApiError::not_found(res, name)),
                };
            }
            match got(&resp.results, 0) {
                None => return Err(ApiError::not_found(res, name)),
                Some(kv) if kv.mod_revision != expected => return Err(ApiError::stale(res, name)),
                // A claim changed under us: read them again.
                Some(_) => {}
            }
        }
        Err(ApiError::internal("deleting the service failed: its claims kept changing"))
    }
}

async fn range_all(store: &dyn Store, prefix: &str, revision: i64) -> Result<(Vec<KeyValue>, i64), ApiError> {
    let resp = store.range(RangeRequest::prefix(prefix).at_revision(revision)).await.map_err(store_error)?;
    Ok((resp.kvs, resp.revision))
}

/// See [`ServiceAllocator::repair`]. Services and claims are read at one revision;
/// every fix is guarded by the revision it was decided on, so a write racing the
/// repair wins and is left alone.
pub(super) async fn repair(alloc: &ServiceAllocator, store: &dyn Store) -> Result<RepairReport, ApiError> {
    let services =
        api::registry::find("", "v1", "services").ok_or_else(|| ApiError::internal("services not served"))?;
    let (svc_kvs, revision) = range_all(store, &services.storage_prefix(), 0).await?;
    let (ip_kvs, _) = range_all(store, super::IP_PREFIX, revision).await?;
    let (port_kvs, _) = range_all(store, super::PORT_PREFIX, revision).await?;
    let mut claims: HashMap<Claim, (Option<Owner>, i64)> = HashMap::new();
    for kv in ip_kvs.iter().chain(port_kvs.iter()) {
        if let Some(c) = Claim::from_key(&kv.key) {
            claims.insert(c, (Owner::decode(&kv.value), kv.mod_revision));
        }
    }
    let mut report = RepairReport::default();
    let mut wanted: BTreeMap<Claim, Owner> = BTreeMap::new();
    // Where two Services hold one value, the one holding the claim keeps it; else the first.
    let mut holders: Vec<(Owner, Vec<Claim>)> = Vec::new();
    for kv in &svc_kvs {
        let Ok(svc) = decode(kv) else { continue };
        holders.push((Owner::of(&svc), held(&svc).into_iter().collect()));
    }
    for (owner, held) in &holders {
        for c in held {
            let first = match wanted.get(c) {
                None => {
                    wanted.insert(*c, owner.clone());
                    continue;
                }
                Some(first) if first.uid == owner.uid => continue,
                Some(first) => first.clone(),
            };
            let claim_names_this = claims.get(c).and_then(|(o, _)| o.as_ref()).is_some_and(|o| o.uid == owner.uid);
            let loser = if claim_names_this {
                wanted.insert(*c, owner.clone());
                first
            } else {
                owner.clone()
            };
            report.duplicates.push((*c, format!("{}/{}", loser.namespace, loser.name)));
        }
    }
    for (c, owner) in &wanted {
        let fix = match claims.get(c) {
            Some((Some(o), _)) if o.uid == owner.uid => None,
            Some((_, rev)) => Some(Compare::mod_revision(&c.key(), *rev)),
            None => Some(Compare::absent(&c.key())),
        };
        if let Some(guard) = fix {
            let txn = Txn::new().when([guard]).and_then([Op::put(&c.key(), owner.encode())]);
            if store.txn(txn).await.map_err(store_error)?.succeeded {
                report.claimed.push(*c);
            }
        }
    }
    for (c, (_, rev)) in &claims {
        if wanted.contains_key(c) {
            continue;
        }
        let txn = Txn::new().when([Compare::mod_revision(&c.key(), *rev)]).and_then([Op::delete(&c.key())]);
        if store.txn(txn).await.map_err(store_error)?.succeeded {
            report.released.push(*c);
        }
    }
    // The bitmaps start from what the store holds now.
    let (ip_kvs, _) = range_all(store, super::IP_PREFIX, 0).await?;
    let (port_kvs, _) = range_all(store, super::PORT_PREFIX, 0).await?;
    for kv in ip_kvs.iter().chain(port_kvs.iter()) {
        if let Some(c) = Claim::from_key(&kv.key) {
            let in_range = match c {
                Claim::Ip(ip) => alloc.ips.offset_of(ip).is_some(),
                Claim::Port(p) => alloc.ports.offset_of(i64::from(p)).is_some(),
            };
            if in_range {
                alloc.mark(c);
            } else {
                report.out_of_range.push(c);
            }
        }
    }
    report.claimed.sort();
    report.released.sort();
    Ok(report)
}
