//! A client's watch: newline-delimited JSON events on a chunked response, from a
//! resourceVersion (or from the current state sent as ADDED events), filtered by
//! namespace and selectors, with bookmarks and the timeout the client asked for.

use super::read::{ContinueToken, Selectors, collect};
use super::{Request, Target};
use crate::Ctx;
use crate::objects::Omitting;
use crate::watch::{Change, Kind, Next, Start, event_line};
use crate::wire::{self, ChannelBody, Resp};
use api::{ApiError, Resource};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

/// How a client wants each event's object.
struct Format {
    res: &'static Resource,
    table: bool,
    /// Metadata only (`as=PartialObjectMetadata`).
    metadata: bool,
    include: Option<String>,
    /// Upstream sends Table column definitions only with the first event.
    columns_sent: bool,
    /// Objects without `metadata.managedFields` (an in-process control loop).
    without_managed_fields: bool,
}

impl Format {
    /// An event's line for an object read from the store.
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        if self.table {
            let t = crate::table::of_object(self.res, obj, self.include.as_deref(), !self.columns_sent);
            self.columns_sent = true;
            return Bytes::from(format!("{}\n", json!({"type": kind, "object": t})));
        }
        let omit: &[&str] = if self.without_managed_fields { &["managedFields"] } else { &[] };
        if self.metadata && kind != "BOOKMARK" && kind != "ERROR" {
            let partial = crate::table::partial(obj);
            return event_line(kind, &serde_json::to_vec(&Omitting(&partial, omit)).unwrap_or_default());
        }
        event_line(kind, &serde_json::to_vec(&Omitting(obj, omit)).unwrap_or_default())
    }

    /// An event's line for a change from the feed, which carries the stored shape
    /// already serialised: sent as it is unless this client wants another shape.
    fn change_line(&mut self, kind: &str, c: &Change) -> Bytes {
        if api::convert::converts(self.res) {
            let served = api::convert::from_storage(self.res, c.object());
            return self.line(kind, &served);
        }
        if self.table {
            return self.line(kind, &c.object());
        }
        if self.metadata {
            return event_line(kind, c.partial(self.without_managed_fields));
        }
        match (kind == c.kind.as_str(), self.without_managed_fields) {
            (true, false) => c.line.clone(),
            (true, true) => c.lean_line().clone(),
            // Another kind than the change's own (a selector transition): rare enough
            // to send the object whole.
            (false, _) => event_line(kind, &c.json),
        }
    }
}

/// Which event, if any, a change is for this client: selector transitions turn
/// MODIFIED into ADDED or DELETED, as upstream's watch cache does.
fn classify(c: &Change, res: &Resource, ns_prefix: &str, sel: &Selectors) -> Option<Kind> {
    if !c.key.starts_with(ns_prefix) {
        return None;
    }
    // Without a selector the objects' views are never made; a label selector reads
    // the labels alone.
    let matches = |v: &crate::watch::Views| match (sel.is_empty(), sel.fields.is_empty()) {
        (true, _) => true,
        (false, true) => sel.matches(res, v.labels(res)),
        (false, false) => sel.matches(res, v.full(res)),
    };
    let now = c.kind != Kind::Deleted && matches(&c.now);
    let before = c.prev.as_ref().is_some_and(matches);
    match c.kind {
        Kind::Deleted => before.then_some(Kind::Deleted),
        Kind::Added => now.then_some(Kind::Added),
        Kind::Modified => match (before, now) {
            (true, true) => Some(Kind::Modified),
            (false, true) => Some(Kind::Added),
            (true, false) => Some(Kind::Deleted),
            (false, false) => None,
        },
    }
}

fn bookmark(res: &Resource, rv: i64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta});
    Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": obj})))
}

fn error_line(e: &ApiError) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": e.to_status()})))
}

pub async fn serve(ctx: &Arc<Ctx>, t: &Target, req: &Request) -> Result<Resp, ApiError> {
    if req.query.continue_token.is_some() {
        // A watch never continues a list; refuse the token as upstream does.
        ContinueToken::decode(req.query.continue_token.as_deref().unwrap_or_default())?;
        return Err(ApiError::bad_request("continue is not supported for watch requests"));
    }
    let mut sel = Selectors::parse(t.res, req)?;
    if let Some(name) = &t.name {
        // The legacy watch of one object by name.
        sel.fields.terms.push(api::selector::FieldTerm {
            field: "metadata.name".into(),
            value: name.clone(),
            equal: true,
        });
    }
    let ns_prefix = t.res.storage_list_prefix(t.namespace.as_deref());
    let rv_param = req.query.resource_version.as_deref();
    let requested: i64 = match rv_param {
        None | Some("") | Some("0") => 0,
        Some(s) => s.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
    };
    let send_initial = req.query.send_initial_events.unwrap_or(requested == 0);
    if req.query.send_initial_events == Some(true) && !req.query.allow_watch_bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![api::Cause::new(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }

    let mut format = Format {
        res: t.res,
        table: req.wants_table(),
        metadata: req.wants_metadata(),
        include: req.query.include_object.clone(),
        columns_sent: false,
        without_managed_fields: req.without_managed_fields,
    };
    let mut initial = Vec::new();
    let (start, mut last) = if send_initial {
        // Subscribe first, then read the state: nothing can fall between the two.
        let feed = ctx.hub.feed(t.res).await?;
        let sub = feed.subscribe();
        let page = collect(ctx, t.res, &ns_prefix, &sel, 0, None, 0).await?;
        for obj in &page.items {
            initial.push(format.line("ADDED", obj));
        }
        (Start::Shared { backlog: Vec::new(), sub }, page.revision.max(requested))
    } else {
        match ctx.hub.start(t.res, requested).await {
            Ok(start) => (start, requested),
            // Upstream reports a too-old resourceVersion as an ERROR event on an
            // otherwise successful watch.
            Err(e) if e.code == 410 => {
                let mut resp = wire::bytes_response(http::StatusCode::OK, "application/json", error_line(&e));
                resp.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
                return Ok(resp);
            }
            Err(e) => return Err(e),
        }
    };
    let bookmarks = req.query.allow_watch_bookmarks;
    if send_initial && req.query.send_initial_events == Some(true) {
        initial.push(bookmark(t.res, last, true));
    }

    let timeout = match req.query.timeout_seconds {
        Some(s) => Duration::from_secs(s),
        // Upstream ends an open-ended watch after a random 30 to 60 minutes.
        None => Duration::from_secs(1800 + (api::time::now_unix() as u64 % 1800)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let res = t.res;
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        ctx2.metrics.watchers_changed(1);
        let deadline = Instant::now() + timeout;
        let _ = run(tx, start, initial, &mut format, res, &ns_prefix, &sel, &mut last, bookmarks, deadline).await;
        ctx2.metrics.watchers_changed(-1);
    });
    let mut resp = wire::Resp::new(ChannelBody::boxed(rx));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Streams events until the deadline, the client leaving, or the feed resetting.
#[allow(clippy::too_many_arguments)]
async fn run(
    tx: mpsc::Sender<Bytes>,
    start: Start,
    initial: Vec<Bytes>,
    format: &mut Format,
    res: &'static Resource,
    ns_prefix: &str,
    sel: &Selectors,
    last: &mut i64,
    bookmarks: bool,
    deadline: Instant,
) -> Result<(), ()> {
    let send = |b: Bytes| tx.send(b);
    for line in initial {
        send(line).await.map_err(|_| ())?;
    }
    let emit = |c: &Change, format: &mut Format, last: &mut i64| -> Option<Bytes> {
        if c.rv <= *last {
            return None;
        }
        *last = c.rv;
        let kind = classify(c, res, ns_prefix, sel)?;
        Some(format.change_line(kind.as_str(), c))
    };
    // Like upstream, a bookmark also goes out just before the watch times out, so the
    // client resumes from the newest revision.
    let bookmark_due = |deadline: Instant| {
        (Instant::now() + BOOKMARK_EVERY).min(deadline.checked_sub(Duration::from_millis(500)).unwrap_or(deadline))
    };
    let mut next_bookmark = bookmark_due(deadline);
    match start {
        Start::Shared { backlog, mut sub } => {
            for c in &backlog {
                if let Some(line) = emit(c, format, last) {
                    send(line).await.map_err(|_| ())?;
                }
            }
            loop {
                tokio::select! {
                    m = sub.next() => match m {
                        Next::Change(c) => {
                            if let Some(line) = emit(&c, format, last) {
                                send(line).await.map_err(|_| ())?;
                            }
                        }
                        Next::Behind => {
                            // This client fell too far behind: it must relist.
                            let e = ApiError::expired(format!("too old resource version: {}", *last));
                            let _ = send(error_line(&e)).await;
                            return Ok(());
                        }
                        Next::Closed => return Ok(()),
                    },
                    _ = sleep_until(next_bookmark), if bookmarks => {
                        send(bookmark(res, *last, false)).await.map_err(|_| ())?;
                        next_bookmark = bookmark_due(deadline).max(Instant::now() + Duration::from_secs(1));
                    }
                    _ = sleep_until(deadline) => return Ok(()),
                    _ = tx.closed() => return Err(()),
                }
            }
        }
        Start::Own(mut stream) => loop {
            tokio::select! {
                batch = stream.next() => match batch {
                    Some(Ok(events)) => {
                        for e in &events {
                            let Ok(c) = crate::watch::change_from_event(e) else { continue };
                            if let Some(line) = emit(&c, format, last) {
                                send(line).await.map_err(|_| ())?;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let _ = send(error_line(&crate::objects::store_error(e))).await;
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                _ = sleep_until(next_bookmark), if bookmarks => {
                    send(bookmark(res, *last, false)).await.map_err(|_| ())?;
                    next_bookmark = bookmark_due(deadline).max(Instant::now() + Duration::from_secs(1));
                }
                _ = sleep_until(deadline) => return Ok(()),
                _ = tx.closed() => return Err(()),
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::loopback::tests::{admin, call};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower_service::Service;

    /// Selector transitions: an object that comes to match is ADDED, one that stops
    /// matching is DELETED, as upstream's watch cache sends them; with a label selector
    /// alone (the labels cut from the bytes) and with a field selector too (the fuller
    /// view), the same events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn selector_transitions_add_and_delete() {
        let (_dir, server) = crate::test_server().await;
        let mut client = admin(&server, "test/1.0");
        let json = "application/json";
        let list = "/api/v1/namespaces/default/configmaps";
        let (_, listed) = call(&mut client, "GET", list, json, Value::Null).await;
        let rv = listed["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let mut bodies = Vec::new();
        for selector in ["labelSelector=app%3Da", "labelSelector=app%3Da&fieldSelector=metadata.name%3Dx"] {
            let path = format!("{list}?watch=true&resourceVersion={rv}&timeoutSeconds=2&{selector}");
            let req = http::Request::get(path).body(http_body_util::Full::new(Bytes::new())).unwrap();
            bodies.push(client.call(req).await.unwrap().into_body());
        }
        let cm = |name: &str, app: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": app}}});
        let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
        let merge = "application/merge-patch+json";
        assert!(call(&mut client, "POST", list, json, cm("x", "a")).await.0.is_success());
        assert!(call(&mut client, "PATCH", &format!("{list}/x"), merge, relabel("b")).await.0.is_success());
        assert!(call(&mut client, "POST", list, json, cm("y", "b")).await.0.is_success());
        assert!(call(&mut client, "PATCH", &format!("{list}/x"), merge, relabel("a")).await.0.is_success());
        assert!(call(&mut client, "DELETE", &format!("{list}/x"), json, json!({})).await.0.is_success());
        for body in bodies {
            let bytes = body.collect().await.unwrap().to_bytes();
            let events: Vec<(String, String, String)> = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<Value>(l).unwrap())
                .filter(|e| e["type"] != "BOOKMARK")
                .map(|e| {
                    let o = &e["object"]["metadata"];
                    (
                        e["type"].as_str().unwrap().into(),
                        o["name"].as_str().unwrap().into(),
                        o["labels"]["app"].as_str().unwrap().into(),
                    )
                })
                .collect();
            let want = [("ADDED", "x", "a"), ("DELETED", "x", "b"), ("ADDED", "x", "a"), ("DELETED", "x", "a")];
            let want: Vec<(String, String, String)> =
                want.iter().map(|(t, n, a)| (t.to_string(), n.to_string(), a.to_string())).collect();
            assert_eq!(events, want);
        }
        server.shutdown().await;
    }
}
