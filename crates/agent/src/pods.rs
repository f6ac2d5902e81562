//! The pods bound to this node: a watch filtered by `spec.nodeName`, one
//! [`Worker`] per pod (by uid), a periodic resync that wakes every worker, and at
//! start the adoption of the containers a previous run of the agent left behind
//! (those whose pod is gone are removed once the first list is in).

use crate::Ctx;
use crate::worker::{Adopted, Worker, adopted_from, remove_orphan};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;

struct Handle {
    tx: watch::Sender<Option<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

/// The containers the runtime has, by pod uid.
async fn adoptable(ctx: &Ctx) -> HashMap<String, Vec<Adopted>> {
    let mut out: HashMap<String, Vec<Adopted>> = HashMap::new();
    match ctx.runtime.list().await {
        Ok(all) => {
            for state in all {
                if let Some((uid, a)) = adopted_from(&state) {
                    out.entry(uid).or_default().push(a);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing containers to adopt failed"),
    }
    out
}

/// Removes what is left of pods that are gone: their containers, sandboxes and files.
async fn clean_orphans(ctx: &Ctx, orphans: HashMap<String, Vec<Adopted>>, known: &HashSet<String>) {
    for (uid, containers) in orphans {
        if known.contains(&uid) {
            continue;
        }
        tracing::info!(pod_uid = %uid, containers = containers.len(), "removing the containers of a pod that is gone");
        for a in &containers {
            remove_orphan(&ctx.config, &*ctx.runtime, a).await;
        }
        for dir in ctx.config.pod_dirs(&uid) {
            crate::volumes::remove_pod_dir(&dir);
        }
        let _ = ctx.network.remove(&uid).await;
    }
    // Sandboxes of pods that are gone (the containers may have gone first).
    match ctx.network.list().await {
        Ok(uids) => {
            for uid in uids.into_iter().filter(|u| !known.contains(u)) {
                tracing::info!(pod_uid = %uid, "removing the sandbox of a pod that is gone");
                if let Err(e) = ctx.network.remove(&uid).await {
                    tracing::warn!(pod_uid = %uid, error = %e, "removing an orphaned sandbox failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing sandboxes failed"),
    }
    // Pod directories without containers (a crash between start and create).
    for dir in ctx.config.all_pods_dirs() {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if !known.contains(&*e.file_name().to_string_lossy()) {
                crate::volumes::remove_pod_dir(&e.path());
            }
        }
    }
}

fn spawn_worker(ctx: &Arc<Ctx>, pod: Pod, adopted: Vec<Adopted>) -> Handle {
    tracing::debug!(pod = %crate::container::pod_desc(&pod), "a new pod for this node");
    let worker = Worker::new(ctx.clone(), &pod, adopted);
    let (tx, rx) = watch::channel(Some(pod));
    let task = tokio::spawn(async move { worker.run(rx).await });
    Handle { tx, task }
}

/// Watches the node's pods and runs their workers until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: impl std::future::Future<Output = ()>) {
    crate::run_dir::remove_earlier_layout(&ctx.config).await;
    let mut adopted = adoptable(&ctx).await;
    let mut orphans_checked = false;
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.config.node_name);
    let stream = watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut resync = tokio::time::interval(ctx.config.resync);
    resync.tick().await;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = resync.tick() => {
                workers.retain(|_, h| !h.task.is_finished());
                for h in workers.values() {
                    // Same pod, new wake-up.
                    h.tx.send_modify(|_| {});
                }
            }
            event = stream.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(Event::Init) => listed.clear(),
                    Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                        let Some(uid) = pod.metadata.uid.clone() else { continue };
                        listed.insert(uid.clone());
                        match workers.get(&uid) {
                            Some(h) if !h.task.is_finished() => {
                                h.tx.send_replace(Some(pod));
                            }
                            _ => {
                                let adopted_here = adopted.remove(&uid).unwrap_or_default();
                                workers.insert(uid, spawn_worker(&ctx, pod, adopted_here));
                            }
                        }
                    }
                    Ok(Event::Delete(pod)) => {
                        if let Some(h) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                            h.tx.send_replace(None);
                        }
                    }
                    Ok(Event::InitDone) => {
                        // Pods that went while the watch was down.
                        for (uid, h) in &workers {
                            if !listed.contains(uid) {
                                h.tx.send_replace(None);
                            }
                        }
                        if !orphans_checked {
                            orphans_checked = true;
                            let orphans = std::mem::take(&mut adopted);
                            clean_orphans(&ctx, orphans, &listed).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "watching the node's pods"),
                }
            }
        }
    }
    // The agent stops; the containers keep running for the next run to adopt.
    for (_, h) in workers.drain() {
        drop(h.tx);
        h.task.abort();
    }
}
