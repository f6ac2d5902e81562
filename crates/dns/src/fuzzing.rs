//! The code the cargo-fuzz target in `crates/dns/fuzz` runs, kept here so the
//! committed corpus is replayed by `tests/fuzz_corpus.rs` in the normal
//! `cargo test` (stable, no libFuzzer).

use crate::answer::{self, Outcome, Zone};
use crate::cache::{Cluster, Endpoint, Port, ServiceEntry, ServiceKind, Slice};
use crate::wire::Message;

fn sample_cluster() -> Cluster {
    let mut c = Cluster::default();
    let port = Port { name: "http".into(), protocol: "tcp".into(), port: 80 };
    c.put_service(
        ("default".into(), "web".into()),
        ServiceEntry { kind: ServiceKind::ClusterIp(vec![[10, 43, 0, 7].into()]), ports: vec![port.clone()] },
    );
    c.put_service(("default".into(), "db".into()), ServiceEntry { kind: ServiceKind::Headless, ports: vec![] });
    c.put_slice(
        ("default".into(), "db-x".into()),
        Some("db".into()),
        Slice {
            endpoints: vec![Endpoint {
                addresses: vec![[10, 42, 0, 5].into()],
                ready: true,
                hostname: Some("db-0".into()),
            }],
            ports: vec![port],
        },
    );
    c.put_service(
        ("default".into(), "ext".into()),
        ServiceEntry { kind: ServiceKind::ExternalName("example.com".into()), ports: vec![] },
    );
    c
}

/// One DNS packet from the network: decoded; if it decodes, it must survive an
/// encode/decode round trip unchanged, and answering it must not panic.
pub fn packet(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else { return };
    let again = Message::decode(&msg.encode()).expect("our own encoding decodes");
    assert_eq!(again, msg, "round trip changed the message");
    let Some(zone) = Zone::new("cluster.local") else { return };
    if let Outcome::Reply(reply) = answer::respond(&msg, &sample_cluster(), &zone) {
        Message::decode(&reply.encode_within(512)).expect("our reply decodes");
    }
}

/// Every target by name (its `fuzz/corpus/<name>` directory), for the corpus replay.
pub const TARGETS: &[Target] = &[("packet", packet)];

/// A target's corpus directory name and the function it runs.
pub type Target = (&'static str, fn(&[u8]));
