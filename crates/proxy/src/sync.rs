//! Applying rules: the [`Nft`] boundary (the real `nft -f -`, or a recording double
//! in tests) and the [`Proxier`], which remembers what it last applied per Service
//! so that a sync writes only the difference, in one transaction.

use crate::Error;
use crate::model::{Key, State};
use crate::rules::{self, Node, ServiceRules};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Where nftables scripts go: each call is one atomic transaction.
pub trait Nft: Send + std::marker::Sync {
    fn apply(&self, script: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The `nft` binary, reading the script on stdin (`nft -f -`), optionally inside
/// a network namespace (`ip netns exec NAME nft -f -`, for tests and benchmarks).
#[derive(Debug, Clone)]
pub struct NftCommand {
    pub program: PathBuf,
    pub netns: Option<String>,
}

impl Default for NftCommand {
    fn default() -> NftCommand {
        NftCommand { program: PathBuf::from("nft"), netns: None }
    }
}

impl Nft for NftCommand {
    async fn apply(&self, script: &str) -> Result<(), Error> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.program);
                c
            }
            None => tokio::process::Command::new(&self.program),
        };
        cmd.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| Error::NftSpawn { program: self.program.clone(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).await.map_err(Error::NftIo)?;
        }
        let out = child.wait_with_output().await.map_err(Error::NftIo)?;
        if !out.status.success() {
            return Err(Error::NftFailed { stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
        }
        Ok(())
    }
}

/// Records scripts instead of running them; fails when told to.
#[derive(Debug, Clone, Default)]
pub struct RecordingNft {
    pub scripts: Arc<Mutex<Vec<String>>>,
    pub fail: Arc<Mutex<bool>>,
}

impl Nft for RecordingNft {
    async fn apply(&self, script: &str) -> Result<(), Error> {
        if *self.fail.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(Error::NftFailed { stderr: "told to fail".into() });
        }
        self.scripts.lock().unwrap_or_else(|e| e.into_inner()).push(script.to_string());
        Ok(())
    }
}

/// What a sync did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// The whole table was written.
    Full { services: usize },
    /// Only these Services' pieces were rewritten.
    Partial { services: usize },
    /// Nothing differed.
    Unchanged,
}

pub struct Proxier<N: Nft> {
    nft: N,
    table: String,
    node: Node,
    /// What the table holds, per Service; `None` when unknown (at start, or after a
    /// failed transaction), which makes the next sync a full one.
    applied: Option<BTreeMap<Key, ServiceRules>>,
}

impl<N: Nft> Proxier<N> {
    pub fn new(nft: N, table: impl Into<String>, node: Node) -> Proxier<N> {
        Proxier { nft, table: table.into(), node, applied: None }
    }

    /// Whether the table is known to match the last sync.
    pub fn is_applied(&self) -> bool {
        self.applied.is_some()
    }

    pub fn nft(&self) -> &N {
        &self.nft
    }

    /// Brings the table in line with `state`. `dirty` names the Services that may
    /// have changed since the last sync; `None` means all of them (a full sync).
    pub async fn sync(&mut self, state: &State, dirty: Option<&BTreeSet<Key>>) -> Result<Sync, Error> {
        let desired = |key: &Key| {
            state
                .services
                .get(key)
                .map(|svc| rules::service_rules(key, svc, state, &self.node))
                .filter(|r| *r != ServiceRules::default())
        };
        let (Some(applied), Some(dirty)) = (self.applied.as_mut(), dirty) else {
            let all: BTreeMap<Key, ServiceRules> =
                state.services.keys().filter_map(|k| Some((k.clone(), desired(k)?))).collect();
            let script = rules::full_script(&self.table, &self.node, all.values());
            self.applied = None;
            self.nft.apply(&script).await?;
            let services = all.len();
            self.applied = Some(all);
            return Ok(Sync::Full { services });
        };
        let empty = ServiceRules::default();
        let mut changes: Vec<(Key, Option<ServiceRules>)> = Vec::new();
        for key in dirty {
            let new = desired(key);
            if new.as_ref() != applied.get(key) {
                changes.push((key.clone(), new));
            }
        }
        if changes.is_empty() {
            return Ok(Sync::Unchanged);
        }
        let script = rules::diff_script(
            &self.table,
            changes.iter().map(|(k, new)| (applied.get(k).unwrap_or(&empty), new.as_ref().unwrap_or(&empty))),
        );
        if let Err(e) = self.nft.apply(&script).await {
            // The transaction was all or nothing, but do not trust our record of it.
            self.applied = None;
            return Err(e);
        }
        let services = changes.len();
        for (key, new) in changes {
            match new {
                Some(rules) => applied.insert(key, rules),
                None => applied.remove(&key),
            };
        }
        Ok(Sync::Partial { services })
    }

    /// Removes the table: nothing of ours is left behind.
    pub async fn cleanup(&mut self) -> Result<(), Error> {
        self.applied = None;
        self.nft.apply(&rules::delete_script(&self.table)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServiceInfo, ServicePort, SliceInfo, SlicePort};

    fn node() -> Node {
        Node { name: "n".into(), ips: vec![], cluster_cidr: "10.42.0.0/16".into(), service_cidr: None }
    }

    fn add(state: &mut State, name: &str, cip: &str, eps: &[&str]) -> Key {
        let key: Key = ("default".into(), name.into());
        state.put_service(
            key.clone(),
            ServiceInfo {
                cluster_ip: Some(cip.parse().unwrap()),
                ports: vec![ServicePort { name: "".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
                external_ips: vec![],
                affinity_seconds: None,
                external_local: false,
                internal_local: false,
            },
        );
        let endpoints = eps
            .iter()
            .map(|ip| Endpoint {
                ip: ip.parse().unwrap(),
                ready: true,
                serving: true,
                terminating: false,
                node_name: None,
            })
            .collect();
        let ports = vec![SlicePort { name: "".into(), protocol: Protocol::Tcp, port: 8080 }];
        state.put_slice(("default".into(), format!("{name}-1")), Some(name.into()), SliceInfo { endpoints, ports });
        key
    }

    #[tokio::test]
    async fn first_sync_is_full_then_only_changes_are_written() {
        let nft = RecordingNft::default();
        let mut p = Proxier::new(nft.clone(), "rudder", node());
        let mut state = State::default();
        let web = add(&mut state, "web", "10.43.0.7", &["10.42.0.5"]);
        let api = add(&mut state, "api", "10.43.0.8", &["10.42.0.6"]);
        let dirty: BTreeSet<Key> = [web.clone(), api.clone()].into();
        assert_eq!(p.sync(&state, Some(&dirty)).await.unwrap(), Sync::Full { services: 2 });
        let full = nft.scripts.lock().unwrap()[0].clone();
        assert!(full.starts_with("add table ip rudder\ndelete table ip rudder\n"));

        add(&mut state, "web", "10.43.0.7", &["10.42.0.9"]);
        assert_eq!(p.sync(&state, Some(&dirty)).await.unwrap(), Sync::Partial { services: 1 });
        let partial = nft.scripts.lock().unwrap()[1].clone();
        assert!(partial.contains("10.42.0.9") && !partial.contains("10.43.0.8"), "only web: {partial}");
        assert_eq!(p.sync(&state, Some(&dirty)).await.unwrap(), Sync::Unchanged);

        // A deleted Service's pieces go.
        state.remove_service(&api);
        assert_eq!(p.sync(&state, Some(&[api].into())).await.unwrap(), Sync::Partial { services: 1 });
        assert!(
            nft.scripts.lock().unwrap()[2].contains("delete element ip rudder service-ips { 10.43.0.8 . tcp . 80 }")
        );
    }

    #[tokio::test]
    async fn a_failed_transaction_makes_the_next_sync_full() {
        let nft = RecordingNft::default();
        let mut p = Proxier::new(nft.clone(), "rudder", node());
        let mut state = State::default();
        let web = add(&mut state, "web", "10.43.0.7", &["10.42.0.5"]);
        p.sync(&state, None).await.unwrap();
        add(&mut state, "web", "10.43.0.7", &["10.42.0.6"]);
        *nft.fail.lock().unwrap() = true;
        assert!(p.sync(&state, Some(&[web.clone()].into())).await.is_err());
        *nft.fail.lock().unwrap() = false;
        assert_eq!(p.sync(&state, Some(&[web].into())).await.unwrap(), Sync::Full { services: 1 });
        p.cleanup().await.unwrap();
        assert_eq!(nft.scripts.lock().unwrap().last().unwrap(), "add table ip rudder\ndelete table ip rudder\n");
    }
}
