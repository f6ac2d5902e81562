//! What only the embedded backend promises: durability across restarts and crashes,
//! group commit, and automatic compaction.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use store::embedded::{EmbeddedStore, Options};
use store::{Compare, Op, RangeRequest, Store, StoreError, Txn};

#[tokio::test]
async fn writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let last = {
        let s = EmbeddedStore::open(&path, Options::default()).unwrap();
        for i in 0..50 {
            s.txn(Txn::new().and_then([Op::put(&format!("/k/{i}"), format!("v{i}"))])).await.unwrap();
        }
        s.txn(Txn::new().and_then([Op::delete("/k/7")])).await.unwrap().revision
    };
    let s = EmbeddedStore::open(&path, Options::default()).unwrap();
    assert_eq!(s.current_revision().await.unwrap(), last);
    let all = s.range(RangeRequest::prefix("/k/")).await.unwrap();
    assert_eq!(all.count, 49);
    assert_eq!(s.get("/k/3").await.unwrap().unwrap().value, "v3");
    // History from before the restart is gone: watchers must relist, as after an etcd compaction.
    assert!(matches!(s.watch("/k/", 1).await, Err(StoreError::Compacted { .. })));
    let next = s.txn(Txn::new().and_then([Op::put("/k/new", "x")])).await.unwrap().revision;
    assert_eq!(next, last + 1, "revisions continue after a restart");
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let _first = EmbeddedStore::open(&path, Options::default()).unwrap();
    let second = EmbeddedStore::open(&path, Options::default());
    assert!(matches!(second, Err(StoreError::Corrupt { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(&dir.path().join("store.db"), Options::default()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let key = format!("/g/{t}/{i}");
                s.txn(Txn::new().when([Compare::absent(&key)]).and_then([Op::put(&key, "v")])).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = s.stats();
    assert_eq!(stats.writes, 64 * 20);
    assert!(stats.syncs * 2 < stats.writes, "64 writers should share syncs: {stats:?}");
}

/// A batch waits to grow as large as the last one, but not for long: a lone write after
/// a crowd of concurrent ones is not held back waiting for company.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_write_after_many_is_not_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(&dir.path().join("store.db"), Options::default()).unwrap());
    let crowd: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.txn(Txn::new().and_then([Op::put(&format!("/c/{i}"), "v")])).await.unwrap() })
        })
        .collect();
    for t in crowd {
        t.await.unwrap();
    }
    for i in 0..20 {
        let started = std::time::Instant::now();
        s.txn(Txn::new().and_then([Op::put(&format!("/lone/{i}"), "v")])).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "write {i} took {:?}", started.elapsed());
    }
    let stats = s.stats();
    assert_eq!(stats.writes, 84);
}

#[tokio::test]
async fn history_is_compacted_automatically() {
    let dir = tempfile::tempdir().unwrap();
    // A small memory budget for history: 500 overwrites of one key exceed it.
    let options = Options { history: 100, history_bytes: 16 * 1024, rewrite_threshold: 4096 };
    let path = dir.path().join("store.db");
    let s = EmbeddedStore::open(&path, options.clone()).unwrap();
    let first = s.txn(Txn::new().and_then([Op::put("/h/a", "0")])).await.unwrap().revision;
    for i in 1..500 {
        s.txn(Txn::new().and_then([Op::put("/h/a", i.to_string())])).await.unwrap();
    }
    assert!(matches!(s.range(RangeRequest::key("/h/a").at_revision(first)).await, Err(StoreError::Compacted { .. })));
    let recent = s.current_revision().await.unwrap() - 50;
    assert!(s.range(RangeRequest::key("/h/a").at_revision(recent)).await.is_ok());
    // The file was rewritten as a snapshot rather than growing with every overwrite
    // (the zeros written ahead of the records do not count).
    let file = std::fs::read(&path).unwrap();
    let size = file.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    assert!(size < 16 * 1024, "store file should have been rewritten, its records take {size} bytes");
    drop(s);
    let s = EmbeddedStore::open(&path, options).unwrap();
    assert_eq!(s.get("/h/a").await.unwrap().unwrap().value, "499");
}

/// The child half of the crash test: writes until killed, printing each acknowledged key.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var("STORE_CRASH_CHILD") else {
        return;
    };
    let s = Arc::new(EmbeddedStore::open(std::path::Path::new(&path), Options::default()).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for t in 0..8 {
        let (s, tx) = (s.clone(), tx.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{t}/{i}");
                s.txn(Txn::new().when([Compare::absent(&key)]).and_then([Op::put(&key, "v")])).await.unwrap();
                if tx.send(key).is_err() {
                    return;
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some(key) = rx.recv().await {
        writeln!(out, "ACK {key}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["embedded::crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("STORE_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix("ACK ") {
            acked.push(key.to_string());
            if acked.len() == 3000 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 3000, "the child should have acknowledged 3000 writes before the kill");
    let s = EmbeddedStore::open(&path, Options::default()).unwrap();
    for key in &acked {
        assert!(s.get(key).await.unwrap().is_some(), "acknowledged {key} was lost");
    }
}
