//! A sandbox's record on disk, `state_dir/<uid>/sandbox.json`: written before anything
//! is made (so a crash mid-create leaves enough to undo it) and again once the network
//! is up, with the network list sent and the ADD result that DEL sends as `prevResult`.

use super::PortMapping;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io;
use std::net::IpAddr;
use std::path::Path;

pub const RECORD_FILE: &str = "sandbox.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub host_network: bool,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// The CNI network configuration list used for ADD; DEL and CHECK reuse it so that a
    /// changed node configuration cannot make them miss what ADD set up.
    #[serde(default)]
    pub network: Option<Value>,
    /// The last plugin's ADD result.
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Set once every step of create succeeded.
    #[serde(default)]
    pub ready: bool,
}

/// Reads the record of a sandbox directory; `Ok(None)` when there is none.
pub fn read(dir: &Path) -> io::Result<Option<Record>> {
    match std::fs::read(dir.join(RECORD_FILE)) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the record atomically (write then rename), so a reader never sees half of
/// one. No fsync: after a power loss the namespaces are gone anyway, and a sandbox whose
/// record is missing or not ready is torn down and made again.
pub fn write(dir: &Path, record: &Record) -> io::Result<()> {
    let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(RECORD_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let r = Record {
            pod_uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
            hostname: "web".into(),
            host_network: false,
            port_mappings: vec![PortMapping {
                host_port: 80,
                container_port: 8080,
                protocol: "tcp".into(),
                host_ip: None,
            }],
            network: Some(serde_json::json!({ "name": "rudder" })),
            result: None,
            ips: vec!["10.42.0.2".parse().unwrap()],
            ready: true,
        };
        write(dir.path(), &r).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(r));
        std::fs::write(dir.path().join(RECORD_FILE), b"{").unwrap();
        assert_eq!(read(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
