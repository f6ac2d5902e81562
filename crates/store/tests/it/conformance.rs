//! The cases every backend must pass. Revisions are compared relative to each other,
//! never to absolute numbers (etcd starts at 1, the embedded store at 0).

use crate::conformance;
use std::sync::Arc;
use std::time::Duration;
use store::{Compare, Event, EventType, Op, OpResult, RangeRequest, Store, StoreError, Txn, WatchStream};

async fn create(s: &Arc<dyn Store>, key: &str, value: &str) -> i64 {
    let r = s.txn(Txn::new().when([Compare::absent(key)]).and_then([Op::put(key, value.to_string())])).await.unwrap();
    assert!(r.succeeded, "create of {key} should succeed");
    r.revision
}

async fn next_events(w: &mut WatchStream, want: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch delivered in time")
            .expect("watch still open")
            .expect("watch without error");
        out.extend(batch);
    }
    out
}

async fn create_is_guarded_by_absence(s: Arc<dyn Store>) {
    let rev = create(&s, "/r/a", "1").await;
    let again = s
        .txn(Txn::new().when([Compare::absent("/r/a")]).and_then([Op::put("/r/a", "2")]).or_else([Op::get("/r/a")]))
        .await
        .unwrap();
    assert!(!again.succeeded);
    match &again.results[0] {
        OpResult::Get(Some(kv)) => {
            assert_eq!(kv.value, "1");
            assert_eq!(kv.mod_revision, rev);
            assert_eq!(kv.create_revision, rev);
        }
        other => panic!("expected the existing value, got {other:?}"),
    }
    assert_eq!(s.get("/r/a").await.unwrap().unwrap().value, "1");
    assert!(s.get("/r/missing").await.unwrap().is_none());
}
conformance!(create_is_guarded_by_absence);

async fn update_is_guarded_by_mod_revision(s: Arc<dyn Store>) {
    let rev1 = create(&s, "/u/a", "1").await;
    let ok =
        s.txn(Txn::new().when([Compare::mod_revision("/u/a", rev1)]).and_then([Op::put("/u/a", "2")])).await.unwrap();
    assert!(ok.succeeded);
    assert!(ok.revision > rev1);
    match &ok.results[0] {
        OpResult::Put { prev: Some(p) } => assert_eq!(p.value, "1"),
        other => panic!("expected the previous value, got {other:?}"),
    }
    let stale =
        s.txn(Txn::new().when([Compare::mod_revision("/u/a", rev1)]).and_then([Op::put("/u/a", "3")])).await.unwrap();
    assert!(!stale.succeeded, "a write with a stale mod revision must fail");
    let kv = s.get("/u/a").await.unwrap().unwrap();
    assert_eq!(kv.value, "2");
    assert_eq!(kv.create_revision, rev1, "updates keep the create revision");
    assert_eq!(kv.mod_revision, ok.revision);
}
conformance!(update_is_guarded_by_mod_revision);

async fn delete_returns_the_previous_value(s: Arc<dyn Store>) {
    let rev = create(&s, "/d/a", "gone soon").await;
    let stale = s
        .txn(Txn::new().when([Compare::mod_revision("/d/a", rev + 100)]).and_then([Op::delete("/d/a")]))
        .await
        .unwrap();
    assert!(!stale.succeeded);
    let del =
        s.txn(Txn::new().when([Compare::mod_revision("/d/a", rev)]).and_then([Op::delete("/d/a")])).await.unwrap();
    assert!(del.succeeded);
    match &del.results[0] {
        OpResult::Delete { prev: Some(p) } => assert_eq!(p.value, "gone soon"),
        other => panic!("expected the deleted value, got {other:?}"),
    }
    assert!(s.get("/d/a").await.unwrap().is_none());
    // Recreating starts a new life with a new create revision.
    let again = create(&s, "/d/a", "back").await;
    assert_eq!(s.get("/d/a").await.unwrap().unwrap().create_revision, again);
}
conformance!(delete_returns_the_previous_value);

async fn one_transaction_is_one_revision(s: Arc<dyn Store>) {
    let r =
        s.txn(Txn::new().and_then([Op::put("/m/a", "1"), Op::put("/m/b", "2"), Op::put("/m/c", "3")])).await.unwrap();
    assert!(r.succeeded);
    let all = s.range(RangeRequest::prefix("/m/")).await.unwrap();
    assert_eq!(all.kvs.len(), 3);
    assert!(all.kvs.iter().all(|kv| kv.mod_revision == r.revision));
}
conformance!(one_transaction_is_one_revision);

async fn ranges_page_with_limit_and_count(s: Arc<dyn Store>) {
    for i in 0..7 {
        create(&s, &format!("/p/k{i}"), &i.to_string()).await;
    }
    create(&s, "/q/other", "x").await;
    let first = s.range(RangeRequest::prefix("/p/").with_limit(3)).await.unwrap();
    assert_eq!(first.kvs.len(), 3);
    assert!(first.more);
    assert_eq!(first.count, 7);
    let keys: Vec<&str> = first.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/k0", "/p/k1", "/p/k2"]);
    // Continue after the last key, at the same revision, as a paginated list does.
    let cont = format!("{}\0", first.kvs[2].key);
    let rest = s
        .range(RangeRequest::prefix("/p/").starting_at(&cont).at_revision(first.revision).with_limit(10))
        .await
        .unwrap();
    assert_eq!(rest.kvs.len(), 4);
    assert!(!rest.more);
    assert_eq!(rest.kvs[0].key, "/p/k3");
}
conformance!(ranges_page_with_limit_and_count);

async fn old_revisions_stay_readable(s: Arc<dyn Store>) {
    let r1 = create(&s, "/o/a", "1").await;
    let r2 = s.txn(Txn::new().and_then([Op::put("/o/a", "2")])).await.unwrap().revision;
    let r3 = s.txn(Txn::new().and_then([Op::delete("/o/a")])).await.unwrap().revision;
    let at = |rev| s.range(RangeRequest::key("/o/a").at_revision(rev));
    assert_eq!(at(r1).await.unwrap().kvs[0].value, "1");
    assert_eq!(at(r2).await.unwrap().kvs[0].value, "2");
    assert!(at(r3).await.unwrap().kvs.is_empty());
    assert_eq!(s.current_revision().await.unwrap(), r3);
    let future = at(r3 + 1000).await;
    assert!(matches!(future, Err(StoreError::FutureRevision { .. })), "got {future:?}");
}
conformance!(old_revisions_stay_readable);

async fn watch_replays_from_a_revision(s: Arc<dyn Store>) {
    let r1 = create(&s, "/w/a", "1").await;
    s.txn(Txn::new().and_then([Op::put("/w/a", "2")])).await.unwrap();
    create(&s, "/x/elsewhere", "ignored").await;
    s.txn(Txn::new().and_then([Op::delete("/w/a")])).await.unwrap();
    let mut w = s.watch("/w/", r1).await.unwrap();
    let events = next_events(&mut w, 3).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].kind, EventType::Put);
    assert_eq!(events[0].kv.value, "1");
    assert_eq!(events[1].kv.value, "2");
    assert_eq!(events[1].prev.as_ref().unwrap().value, "1");
    assert_eq!(events[2].kind, EventType::Delete);
    assert_eq!(events[2].prev.as_ref().unwrap().value, "2");
    assert!(events.windows(2).all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision));
    // Then live changes follow on the same stream.
    create(&s, "/w/b", "live").await;
    let live = next_events(&mut w, 1).await;
    assert_eq!(live[0].kv.key, "/w/b");
}
conformance!(watch_replays_from_a_revision);

async fn watch_from_now_sees_only_new_changes(s: Arc<dyn Store>) {
    create(&s, "/n/old", "1").await;
    let mut w = s.watch("/n/", 0).await.unwrap();
    create(&s, "/other/a", "x").await;
    let rev = create(&s, "/n/new", "2").await;
    let events = next_events(&mut w, 1).await;
    assert_eq!(events[0].kv.key, "/n/new");
    assert_eq!(events[0].kv.mod_revision, rev);
    assert!(events[0].prev.is_none());
}
conformance!(watch_from_now_sees_only_new_changes);

async fn compaction_forgets_history(s: Arc<dyn Store>) {
    let r1 = create(&s, "/c/a", "1").await;
    let r2 = s.txn(Txn::new().and_then([Op::put("/c/a", "2")])).await.unwrap().revision;
    let r3 = s.txn(Txn::new().and_then([Op::put("/c/a", "3")])).await.unwrap().revision;
    s.compact(r2).await.unwrap();
    let old = s.range(RangeRequest::key("/c/a").at_revision(r1)).await;
    assert!(matches!(old, Err(StoreError::Compacted { .. })), "got {old:?}");
    assert_eq!(s.range(RangeRequest::key("/c/a").at_revision(r2)).await.unwrap().kvs[0].value, "2");
    assert_eq!(s.range(RangeRequest::key("/c/a").at_revision(r3)).await.unwrap().kvs[0].value, "3");
    let w = s.watch("/c/", r1).await;
    assert!(matches!(w, Err(StoreError::Compacted { .. })), "got {w:?}");
    let mut ok = s.watch("/c/", r3).await.unwrap();
    assert_eq!(next_events(&mut ok, 1).await[0].kv.value, "3");
}
conformance!(compaction_forgets_history);

async fn concurrent_writers_never_lose_an_update(s: Arc<dyn Store>) {
    create(&s, "/cas/counter", "0").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let kv = s.get("/cas/counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let r = s
                        .txn(
                            Txn::new()
                                .when([Compare::mod_revision("/cas/counter", kv.mod_revision)])
                                .and_then([Op::put("/cas/counter", (n + 1).to_string())]),
                        )
                        .await
                        .unwrap();
                    if r.succeeded {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get("/cas/counter").await.unwrap().unwrap().value, "160");
}
conformance!(concurrent_writers_never_lose_an_update);

async fn concurrent_creates_get_distinct_revisions(s: Arc<dyn Store>) {
    let mut w = s.watch("/cc/", 0).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                create(&s, &format!("/cc/{t}-{i}"), "v").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = next_events(&mut w, 200).await;
    let mut revs: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "watch events arrive in revision order");
    revs.dedup();
    assert_eq!(revs.len(), 200);
    assert_eq!(s.range(RangeRequest::prefix("/cc/")).await.unwrap().count, 200);
}
conformance!(concurrent_creates_get_distinct_revisions);
