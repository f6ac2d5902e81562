//! Pods and pod templates: `ValidatePodSpec` and friends from
//! `pkg/apis/core/validation/validation.go` (containers, ports, env, volumes and mounts,
//! probes, resources, scheduling fields), plus pod create/update/status rules.

use super::field::{self, Bad, Path, arr, get, int_of, obj, opt_str, str_of, sub};
use super::meta::{self, IS_NEGATIVE};
use super::names::{self, NameRule};
use super::net;
use super::quantity::{QUANTITY_FORMAT_MESSAGE, Quantity};
use crate::status::Cause;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Where a pod spec sits: a Pod proper, or a template inside a workload.
#[derive(Debug, Clone, Copy)]
pub struct PodOpts {
    pub resource_is_pod: bool,
}

fn dns_label(value: &str, path: &Path) -> Vec<Cause> {
    names::dns1123_label(value).iter().map(|m| field::invalid(path, Bad::Str(value), m)).collect()
}

fn dns_subdomain(value: &str, path: &Path) -> Vec<Cause> {
    names::dns1123_subdomain(value).iter().map(|m| field::invalid(path, Bad::Str(value), m)).collect()
}

fn qualified(value: &str, path: &Path) -> Vec<Cause> {
    names::qualified_name(value).iter().map(|m| field::invalid(path, Bad::Str(value), m)).collect()
}

fn nonneg(v: &Value, key: &str, path: &Path) -> Vec<Cause> {
    int_of(v, key).map(|n| meta::validate_nonnegative(n, &path.child(key))).unwrap_or_default()
}

// ---- volumes

/// Volume source fields in upstream's checking order, with the path segment upstream
/// names when a second type is found (two of them differ from the JSON key).
const VOLUME_TYPES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const HOST_PATH_TYPES: &[&str] =
    &["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"];

/// Volumes by name, for mount checks, with what backs each.
struct Volumes {
    by_name: BTreeMap<String, VolumeKind>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VolumeKind {
    Claim,
    Image,
    Other,
}

fn file_mode(v: &Value, key: &str, path: &Path) -> Vec<Cause> {
    match int_of(v, key) {
        Some(m) if !(0..=0o777).contains(&m) => {
            vec![field::invalid(&path.child(key), Bad::Int(m), FILE_MODE_MSG)]
        }
        _ => Vec::new(),
    }
}

fn path_no_backsteps(target: &str, path: &Path) -> Vec<Cause> {
    if target.replace('\\', "/").split('/').any(|p| p == "..") {
        vec![field::invalid(path, Bad::Str(target), "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn local_descending_path(target: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(field::invalid(path, Bad::Str(target), "must be a relative path"));
    }
    errs.extend(path_no_backsteps(target, path));
    errs
}

fn local_non_reserved_path(target: &str, path: &Path) -> Vec<Cause> {
    let mut errs = local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(field::invalid(path, Bad::Str(target), "must not start with '..'"));
    }
    errs
}

fn key_to_paths(items: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, kp) in items.iter().enumerate() {
        let p = path.index(i);
        if str_of(kp, "key").is_empty() {
            errs.push(field::required(&p.child("key"), ""));
        }
        let target = str_of(kp, "path");
        if target.is_empty() {
            errs.push(field::required(&p.child("path"), ""));
        }
        errs.extend(local_non_reserved_path(target, &p.child("path")));
        errs.extend(file_mode(kp, "mode", &p));
    }
    errs
}

const VOLUME_FIELD_PATHS: &[&str] =
    &["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// What `ConvertDownwardAPIFieldLabel` knows at all.
const CONVERTIBLE_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn object_field_selector(fs: &Value, allowed: &[&str], path: &Path) -> Vec<Cause> {
    let api_version = str_of(fs, "apiVersion");
    if api_version.is_empty() {
        return vec![field::required(&path.child("apiVersion"), "")];
    }
    let fp = str_of(fs, "fieldPath");
    if fp.is_empty() {
        return vec![field::required(&path.child("fieldPath"), "")];
    }
    if api_version != "v1" {
        return vec![field::invalid(
            &path.child("fieldPath"),
            Bad::Str(fp),
            &format!("error converting fieldPath: unsupported pod version: {api_version}"),
        )];
    }
    // `metadata.labels['key']` and `metadata.annotations['key']` select one entry.
    if let Some((base, rest)) = fp.split_once('[') {
        let subscript = rest.strip_suffix(']').and_then(|s| s.strip_prefix('\'')).and_then(|s| s.strip_suffix('\''));
        return match (base, subscript) {
            ("metadata.annotations", Some(k)) => qualified(&k.to_lowercase(), path),
            ("metadata.labels", Some(k)) => qualified(k, path),
            _ if CONVERTIBLE_FIELD_PATHS.contains(&base) => {
                vec![field::invalid(path, Bad::Str(base), "does not support subscript")]
            }
            _ => vec![field::invalid(
                &path.child("fieldPath"),
                Bad::Str(fp),
                &format!("error converting fieldPath: field label not supported: {fp}"),
            )],
        };
    }
    if !CONVERTIBLE_FIELD_PATHS.contains(&fp) {
        return vec![field::invalid(
            &path.child("fieldPath"),
            Bad::Str(fp),
            &format!("error converting fieldPath: field label not supported: {fp}"),
        )];
    }
    if !allowed.contains(&fp) {
        return vec![field::not_supported(&path.child("fieldPath"), Bad::Str(fp), allowed)];
    }
    Vec::new()
}

fn resource_field_selector(fs: &Value, path: &Path, volume: bool) -> Vec<Cause> {
    let resource = str_of(fs, "resource");
    if volume && str_of(fs, "containerName").is_empty() {
        return vec![field::required(&path.child("containerName"), "")];
    }
    if resource.is_empty() {
        return vec![field::required(&path.child("resource"), "")];
    }
    let huge = resource.starts_with("requests.hugepages-") || resource.starts_with("limits.hugepages-");
    if !RESOURCE_FIELD_PATHS.contains(&resource) && !huge {
        return vec![field::not_supported(&path.child("resource"), Bad::Str(resource), RESOURCE_FIELD_PATHS)];
    }
    Vec::new()
}

fn downward_api_file(file: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let target = str_of(file, "path");
    if target.is_empty() {
        errs.push(field::required(&path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(target, &path.child("path")));
    match (get(file, "fieldRef"), get(file, "resourceFieldRef")) {
        (Some(fr), rf) => {
            errs.extend(object_field_selector(fr, VOLUME_FIELD_PATHS, &path.child("fieldRef")));
            if rf.is_some() {
                errs.push(field::invalid(
                    path,
                    Bad::Str("resource"),
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(rf)) => errs.extend(resource_field_selector(rf, &path.child("resourceFieldRef"), true)),
        (None, None) => errs.push(field::required(path, "one of fieldRef and resourceFieldRef is required")),
    }
    errs.extend(file_mode(file, "mode", path));
    errs
}

fn projected_sources(proj: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    let mut dup = |p: &str, name: &str, errs: &mut Vec<Cause>| {
        if !p.is_empty() && !seen.insert(p.to_string()) {
            errs.push(field::invalid(path, Bad::Str(name), "conflicting duplicate paths"));
        }
    };
    for (i, source) in arr(proj, "sources").iter().enumerate() {
        let sp = path.child("sources").index(i);
        let mut n = 0;
        for kind in ["secret", "configMap"] {
            if let Some(s) = get(source, kind) {
                n += 1;
                if str_of(s, "name").is_empty() {
                    errs.push(field::required(&sp.child(kind).child("name"), ""));
                }
                errs.extend(key_to_paths(arr(s, "items"), &sp.child(kind).child("items")));
                for item in arr(s, "items") {
                    dup(str_of(item, "path"), str_of(s, "name"), &mut errs);
                }
            }
        }
        if let Some(d) = get(source, "downwardAPI") {
            n += 1;
            for file in arr(d, "items") {
                errs.extend(downward_api_file(file, &sp.child("downwardAPI")));
                let p = str_of(file, "path");
                dup(p, p, &mut errs);
            }
        }
        if let Some(t) = get(source, "serviceAccountToken") {
            n += 1;
            let tp = sp.child("serviceAccountToken");
            let secs = int_of(t, "expirationSeconds").unwrap_or(3600);
            if secs < 600 {
                errs.push(field::invalid(
                    &tp.child("expirationSeconds"),
                    Bad::Int(secs),
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if secs > 1 << 32 {
                errs.push(field::invalid(
                    &tp.child("expirationSeconds"),
                    Bad::Int(secs),
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let p = str_of(t, "path");
            if p.is_empty() {
                errs.push(field::required(&path.child("path"), ""));
            } else {
                errs.extend(local_non_reserved_path(p, &path.child("path")));
            }
        }
        if let Some(c) = get(source, "clusterTrustBundle") {
            n += 1;
            let cp = sp.child("clusterTrustBundle");
            let p = str_of(c, "path");
            if p.is_empty() {
                errs.push(field::required(&cp.child("path"), ""));
            }
            errs.extend(local_non_reserved_path(p, &cp.child("path")));
            dup(p, p, &mut errs);
        }
        if n > 1 {
            errs.push(field::forbidden(&sp, "may not specify more than 1 volume type per source"));
        }
    }
    errs
}

fn volume_source(vol: &Value, path: &Path) -> (Vec<Cause>, VolumeKind) {
    let mut errs = Vec::new();
    let mut count = 0;
    let mut kind = VolumeKind::Other;
    for (key, named) in VOLUME_TYPES {
        let Some(src) = get(vol, key) else { continue };
        if count > 0 {
            errs.push(field::forbidden(&path.child(named), "may not specify more than 1 volume type"));
            continue;
        }
        count += 1;
        let p = path.child(key);
        match *key {
            "emptyDir" => {
                if let Some(q) = get(src, "sizeLimit")
                    && Quantity::from_json(q).is_ok_and(|q| q.is_negative())
                {
                    errs.push(field::forbidden(
                        &p.child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" => {
                let hp = str_of(src, "path");
                if hp.is_empty() {
                    errs.push(field::required(&p.child("path"), ""));
                } else {
                    errs.extend(path_no_backsteps(hp, &p.child("path")));
                    if let Some(t) = opt_str(src, "type")
                        && !HOST_PATH_TYPES.contains(&t)
                    {
                        errs.push(field::not_supported(&p.child("type"), Bad::Str(t), HOST_PATH_TYPES));
                    }
                }
            }
            "secret" => {
                if str_of(src, "secretName").is_empty() {
                    errs.push(field::required(&p.child("secretName"), ""));
                }
                errs.extend(file_mode(src, "defaultMode", &p));
                errs.extend(key_to_paths(arr(src, "items"), &p.child("items")));
            }
            "configMap" => {
                if str_of(src, "name").is_empty() {
                    errs.push(field::required(&p.child("name"), ""));
                }
                errs.extend(file_mode(src, "defaultMode", &p));
                errs.extend(key_to_paths(arr(src, "items"), &p.child("items")));
            }
            "downwardAPI" => {
                errs.extend(file_mode(src, "defaultMode", &p));
                for file in arr(src, "items") {
                    errs.extend(downward_api_file(file, &p));
                }
            }
            "projected" => {
                errs.extend(file_mode(src, "defaultMode", &p));
                errs.extend(projected_sources(src, &p));
            }
            "persistentVolumeClaim" => {
                kind = VolumeKind::Claim;
                if str_of(src, "claimName").is_empty() {
                    errs.push(field::required(&p.child("claimName"), ""));
                }
            }
            "ephemeral" => {
                kind = VolumeKind::Claim;
                if get(src, "volumeClaimTemplate").is_none() {
                    errs.push(field::required(&p.child("volumeClaimTemplate"), ""));
                }
            }
            "nfs" => {
                if str_of(src, "server").is_empty() {
                    errs.push(field::required(&p.child("server"), ""));
                }
                let np = str_of(src, "path");
                if np.is_empty() {
                    errs.push(field::required(&p.child("path"), ""));
                }
                if !np.starts_with('/') {
                    errs.push(field::invalid(&p.child("path"), Bad::Str(np), "must be an absolute path"));
                }
            }
            "gitRepo" => {
                if str_of(src, "repository").is_empty() {
                    errs.push(field::required(&p.child("repository"), ""));
                }
                errs.extend(local_descending_path(str_of(src, "directory"), &p.child("directory")));
            }
            "csi" => {
                let driver = str_of(src, "driver");
                if driver.is_empty() {
                    errs.push(field::required(&p.child("driver"), ""));
                }
                if driver.len() > 63 {
                    errs.push(field::too_long(&p.child("driver"), 63));
                }
                for m in names::dns1123_subdomain(&driver.to_lowercase()) {
                    errs.push(field::invalid(&p.child("driver"), Bad::Str(driver), &m));
                }
            }
            "image" => {
                kind = VolumeKind::Image;
                if str_of(src, "reference").is_empty() {
                    errs.push(field::required(&p.child("reference"), ""));
                }
                if let Some(pp) = opt_str(src, "pullPolicy") {
                    errs.extend(pull_policy(pp, &p.child("pullPolicy")));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(field::required(path, "must specify a volume type"));
    }
    (errs, kind)
}

fn validate_volumes(volumes: &[Value], path: &Path) -> (Volumes, Vec<Cause>) {
    let mut all = Vec::new();
    let mut by_name = BTreeMap::new();
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name = str_of(vol, "name");
        let (mut errs, kind) = volume_source(vol, &p);
        if name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        } else {
            errs.extend(dns_label(name, &p.child("name")));
        }
        if by_name.contains_key(name) {
            errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
        }
        if errs.is_empty() {
            by_name.insert(name.to_string(), kind);
        } else {
            all.extend(errs);
        }
    }
    (Volumes { by_name }, all)
}

// ---- containers

fn container_ports(ports: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut names_seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                errs.extend(msgs.iter().map(|m| field::invalid(&p.child("name"), Bad::Str(name), m)));
            } else if !names_seen.insert(name) {
                errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
            }
        }
        match int_of(port, "containerPort").unwrap_or(0) {
            0 => errs.push(field::required(&p.child("containerPort"), "")),
            n => errs.extend(
                names::port_number(n).iter().map(|m| field::invalid(&p.child("containerPort"), Bad::Int(n), m)),
            ),
        }
        let host = int_of(port, "hostPort").unwrap_or(0);
        if host != 0 {
            errs.extend(
                names::port_number(host).iter().map(|m| field::invalid(&p.child("hostPort"), Bad::Int(host), m)),
            );
        }
        errs.extend(protocol(port, &p.child("protocol")));
    }
    errs
}

fn protocol(port: &Value, path: &Path) -> Vec<Cause> {
    match str_of(port, "protocol") {
        "" => vec![field::required(path, "")],
        p if !PROTOCOLS.contains(&p) => vec![field::not_supported(path, Bad::Str(p), PROTOCOLS)],
        _ => Vec::new(),
    }
}

fn validate_env(vars: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let name = str_of(ev, "name");
        if name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        } else {
            errs.extend(
                names::relaxed_env_var_name(name).iter().map(|m| field::invalid(&p.child("name"), Bad::Str(name), m)),
            );
        }
        let Some(from) = get(ev, "valueFrom") else {
            continue;
        };
        let fp = p.child("valueFrom");
        let mut n = 0;
        if let Some(fr) = get(from, "fieldRef") {
            n += 1;
            errs.extend(object_field_selector(fr, ENV_FIELD_PATHS, &fp.child("fieldRef")));
        }
        if let Some(rf) = get(from, "resourceFieldRef") {
            n += 1;
            errs.extend(resource_field_selector(rf, &fp.child("resourceFieldRef"), false));
        }
        for kind in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = get(from, kind) {
                n += 1;
                let rp = fp.child(kind);
                let rname = str_of(r, "name");
                errs.extend(
                    names::dns1123_subdomain(rname)
                        .iter()
                        .map(|m| field::invalid(&rp.child("name"), Bad::Str(rname), m)),
                );
                let key = str_of(r, "key");
                if key.is_empty() {
                    errs.push(field::required(&rp.child("key"), ""));
                } else {
                    errs.extend(
                        names::config_map_key(key).iter().map(|m| field::invalid(&rp.child("key"), Bad::Str(key), m)),
                    );
                }
            }
        }
        if n == 0 {
            errs.push(field::invalid(
                &fp,
                Bad::Str(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_of(ev, "value").is_empty() {
            errs.push(field::invalid(&fp, Bad::Str(""), "may not be specified when `value` is not empty"));
        } else if n > 1 {
            errs.push(field::invalid(&fp, Bad::Str(""), "may not have more than one field specified at a time"));
        }
    }
    errs
}

fn validate_env_from(sources: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in sources.iter().enumerate() {
        let p = path.index(i);
        let prefix = str_of(ev, "prefix");
        if !prefix.is_empty() {
            errs.extend(
                names::relaxed_env_var_name(prefix)
                    .iter()
                    .map(|m| field::invalid(&p.child("prefix"), Bad::Str(prefix), m)),
            );
        }
        let mut n = 0;
        for kind in ["configMapRef", "secretRef"] {
            if let Some(r) = get(ev, kind) {
                n += 1;
                let name = str_of(r, "name");
                if name.is_empty() {
                    errs.push(field::required(&p.child(kind).child("name"), ""));
                } else {
                    for m in NameRule::Dns1123Subdomain.check(name, true) {
                        errs.push(field::invalid(&p.child(kind).child("name"), Bad::Str(name), &m));
                    }
                }
            }
        }
        if n == 0 {
            errs.push(field::invalid(path, Bad::Str(""), "must specify one of: `configMapRef` or `secretRef`"));
        } else if n > 1 {
            errs.push(field::invalid(path, Bad::Str(""), "may not have more than one field specified at a time"));
        }
    }
    errs
}

fn volume_mounts(ctr: &Value, volumes: &Volumes, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut mount_points = BTreeSet::new();
    let devices: BTreeMap<&str, &str> =
        arr(ctr, "volumeDevices").iter().map(|d| (str_of(d, "name"), str_of(d, "devicePath"))).collect();
    let privileged = field::bool_of(sub(ctr, "securityContext"), "privileged") == Some(true);
    for (i, m) in arr(ctr, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = str_of(m, "name");
        if name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        if !volumes.by_name.contains_key(name) {
            errs.push(field::not_found(&p.child("name"), Bad::Str(name)));
        }
        let mp = str_of(m, "mountPath");
        if mp.is_empty() {
            errs.push(field::required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(mp) {
            errs.push(field::invalid(&p.child("mountPath"), Bad::Str(mp), "must be unique"));
        }
        if devices.contains_key(name) {
            errs.push(field::invalid(&p.child("name"), Bad::Str(name), "must not already exist in volumeDevices"));
        }
        if devices.values().any(|d| *d == mp) {
            errs.push(field::invalid(
                &p.child("mountPath"),
                Bad::Str(mp),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = str_of(m, "subPath");
        let sub_expr = str_of(m, "subPathExpr");
        if volumes.by_name.get(name) == Some(&VolumeKind::Image) {
            if !sub_path.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPath"),
                    Bad::Str(sub_path),
                    "not allowed in image volume sources",
                ));
            }
            if !sub_expr.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPathExpr"),
                    Bad::Str(sub_expr),
                    "not allowed in image volume sources",
                ));
            }
        }
        // Upstream reports these two against the list path, not the item.
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        if !sub_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPathExpr"),
                    Bad::Str(sub_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(sub_expr, &path.child("subPathExpr")));
        }
        if let Some(prop) = opt_str(m, "mountPropagation") {
            let pp = path.child("mountPropagation");
            const PROPS: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !PROPS.contains(&prop) {
                errs.push(field::not_supported(&pp, Bad::Str(prop), PROPS));
            }
            if prop == "Bidirectional" && !privileged {
                errs.push(field::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = opt_str(m, "recursiveReadOnly") {
            let rp = path.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if field::bool_of(m, "readOnly") != Some(true) {
                        errs.push(field::forbidden(&rp, "may only be specified when readOnly is true"));
                    }
                    if opt_str(m, "mountPropagation").is_some_and(|p| p != "None") {
                        errs.push(field::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(field::not_supported(&rp, Bad::Str(other), &["Disabled", "Enabled", "IfPossible"])),
            }
        }
    }
    errs
}

fn volume_devices(ctr: &Value, volumes: &Volumes, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mounts: BTreeMap<&str, &str> =
        arr(ctr, "volumeMounts").iter().map(|m| (str_of(m, "name"), str_of(m, "mountPath"))).collect();
    let mut paths = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, d) in arr(ctr, "volumeDevices").iter().enumerate() {
        let p = path.index(i);
        let name = str_of(d, "name");
        let dev = str_of(d, "devicePath");
        if name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        if seen.contains(name) {
            errs.push(field::invalid(&p.child("name"), Bad::Str(name), "must be unique"));
        }
        match volumes.by_name.get(name) {
            Some(VolumeKind::Claim) => {}
            Some(_) => errs.push(field::invalid(
                &p.child("name"),
                Bad::Str(name),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            None => errs.push(field::not_found(&p.child("name"), Bad::Str(name))),
        }
        if dev.is_empty() {
            errs.push(field::required(&p.child("devicePath"), ""));
        }
        if paths.contains(dev) {
            errs.push(field::invalid(&p.child("devicePath"), Bad::Str(dev), "must be unique"));
        }
        if !dev.is_empty() && !path_no_backsteps(dev, &p).is_empty() {
            errs.push(field::invalid(&p.child("devicePath"), Bad::Str(dev), "can not contain backsteps ('..')"));
        } else {
            paths.insert(dev);
        }
        if mounts.contains_key(name) {
            errs.push(field::invalid(&p.child("name"), Bad::Str(name), "must not already exist in volumeMounts"));
        }
        if mounts.values().any(|m| *m == dev) {
            errs.push(field::invalid(
                &p.child("devicePath"),
                Bad::Str(dev),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            seen.insert(name);
        }
    }
    errs
}

fn pull_policy(policy: &str, path: &Path) -> Vec<Cause> {
    const POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
    match policy {
        "" => vec![field::required(path, "")],
        p if !POLICIES.contains(&p) => vec![field::not_supported(path, Bad::Str(p), POLICIES)],
        _ => Vec::new(),
    }
}

// ---- resources

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "requests.storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.") && names::qualified_name(&format!("requests.{name}")).is_empty()
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn container_resource_name(name: &str, path: &Path) -> Vec<Cause> {
    let mut errs = qualified(name, path);
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') {
        if !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) && !name.starts_with("requests.hugepages-") {
            return vec![field::invalid(path, Bad::Str(name), "must be a standard resource type or fully qualified")];
        }
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !is_hugepages(name) {
            errs.push(field::invalid(path, Bad::Str(name), "must be a standard resource for containers"));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(field::invalid(path, Bad::Str(name), "doesn't follow extended resource name standard"));
    }
    errs
}

/// Parses a resource list, reporting unparsable quantities at their keys.
fn resource_list<'a>(
    list: Option<&'a Map<String, Value>>,
    path: &Path,
    errs: &mut Vec<Cause>,
) -> Vec<(&'a str, Quantity)> {
    let mut out = Vec::new();
    for (k, v) in list.into_iter().flatten() {
        match Quantity::from_json(v) {
            Ok(q) => out.push((k.as_str(), q)),
            Err(e) => {
                let msg = if e == super::quantity::QuantityError::Format {
                    QUANTITY_FORMAT_MESSAGE.to_string()
                } else {
                    e.to_string()
                };
                errs.push(field::invalid(&path.key(k), Bad::Json(v), &msg));
            }
        }
    }
    out
}

fn quantity_value(name: &str, q: &Quantity, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if q.is_negative() {
        errs.push(field::invalid(path, Bad::Str(&q.canonical()), IS_NEGATIVE));
    }
    let integer =
        is_extended(name) || matches!(name, "pods" | "services" | "secrets" | "configmaps" | "persistentvolumeclaims");
    if integer && q.milli_value().is_some_and(|m| m % 1000 != 0) {
        errs.push(field::invalid(path, Bad::Str(&q.canonical()), "must be an integer"));
    }
    errs
}

/// `ValidateContainerResourceRequirements`.
pub fn resource_requirements(res: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let limits = resource_list(obj(res, "limits"), &lim_path, &mut errs);
    let requests = resource_list(obj(res, "requests"), &req_path, &mut errs);
    let mut cpu_or_mem = false;
    let mut huge = false;
    for (name, q) in &limits {
        let p = lim_path.key(name);
        errs.extend(container_resource_name(name, &p));
        errs.extend(quantity_value(name, q, &p));
        huge |= is_hugepages(name);
        cpu_or_mem |= matches!(*name, "cpu" | "memory");
    }
    for (name, q) in &requests {
        let p = req_path.key(name);
        errs.extend(container_resource_name(name, &p));
        errs.extend(quantity_value(name, q, &p));
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, limit)) => {
                let ord = q.cmp_value(limit);
                if ord != Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(field::invalid(
                        &req_path,
                        Bad::Str(&q.canonical()),
                        &format!("must be equal to {name} limit of {limit}"),
                    ));
                } else if ord == Ordering::Greater {
                    errs.push(field::invalid(
                        &req_path,
                        Bad::Str(&q.canonical()),
                        &format!("must be less than or equal to {name} limit of {limit}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(field::required(&lim_path, "Limit must be set for non overcommitable resources"));
            }
            None => {}
        }
        huge |= is_hugepages(name);
        cpu_or_mem |= matches!(*name, "cpu" | "memory");
    }
    if huge && !cpu_or_mem {
        errs.push(field::forbidden(path, "HugePages require cpu or memory"));
    }
    for (i, c) in arr(res, "claims").iter().enumerate() {
        if str_of(c, "name").is_empty() {
            errs.push(field::required(&path.child("claims").index(i), ""));
        }
    }
    errs
}

// ---- probes and handlers

fn port_num_or_name(port: Option<&Value>, path: &Path) -> Vec<Cause> {
    match port {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            names::port_number(n).iter().map(|m| field::invalid(path, Bad::Int(n), m)).collect()
        }
        Some(Value::String(s)) => names::port_name(s).iter().map(|m| field::invalid(path, Bad::Str(s), m)).collect(),
        _ => names::port_number(0).iter().map(|m| field::invalid(path, Bad::Int(0), m)).collect(),
    }
}

fn handler(h: &Value, grace: Option<i64>, path: &Path, allow_sleep: bool, allow_grpc: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut n = 0;
    let mut kinds = vec!["exec", "httpGet", "tcpSocket"];
    if allow_grpc {
        kinds.push("grpc");
    }
    if allow_sleep {
        kinds.push("sleep");
    }
    for kind in kinds {
        let Some(a) = get(h, kind) else { continue };
        let p = path.child(kind);
        if n > 0 {
            errs.push(field::forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        n += 1;
        match kind {
            "exec" => {
                if arr(a, "command").is_empty() {
                    errs.push(field::required(&p.child("command"), ""));
                }
            }
            "httpGet" => {
                if str_of(a, "path").is_empty() {
                    errs.push(field::required(&p.child("path"), ""));
                }
                errs.extend(port_num_or_name(get(a, "port"), &p.child("port")));
                let scheme = str_of(a, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(field::not_supported(&p.child("scheme"), Bad::Str(scheme), &["HTTP", "HTTPS"]));
                }
                for hdr in arr(a, "httpHeaders") {
                    let name = str_of(hdr, "name");
                    errs.extend(
                        names::http_header_name(name)
                            .iter()
                            .map(|m| field::invalid(&p.child("httpHeaders"), Bad::Str(name), m)),
                    );
                }
            }
            "tcpSocket" => errs.extend(port_num_or_name(get(a, "port"), &p.child("port"))),
            "grpc" => errs.extend(port_num_or_name(get(a, "port"), &p.child("port"))),
            _ => {
                let secs = int_of(a, "seconds").unwrap_or(0);
                if let Some(g) = grace
                    && (secs < 0 || secs > g)
                {
                    errs.push(field::invalid(
                        &p,
                        Bad::Int(secs),
                        &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                    ));
                }
            }
        }
    }
    if n == 0 {
        errs.push(field::required(path, "must specify a handler type"));
    }
    errs
}

fn probe(p: Option<&Value>, grace: Option<i64>, path: &Path, kind: &str) -> Vec<Cause> {
    let Some(p) = p else { return Vec::new() };
    let mut errs = handler(p, grace, path, false, true);
    for key in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        errs.extend(nonneg(p, key, path));
    }
    if let Some(t) = int_of(p, "terminationGracePeriodSeconds")
        && t <= 0
    {
        errs.push(field::invalid(&path.child("terminationGracePeriodSeconds"), Bad::Int(t), "must be greater than 0"));
    }
    match kind {
        "readiness" => {
            if let Some(t) = get(p, "terminationGracePeriodSeconds") {
                errs.push(field::invalid(
                    &path.child("terminationGracePeriodSeconds"),
                    Bad::Json(t),
                    "must not be set for readinessProbes",
                ));
            }
        }
        _ => {
            let st = int_of(p, "successThreshold").unwrap_or(0);
            if st != 1 {
                errs.push(field::invalid(&path.child("successThreshold"), Bad::Int(st), "must be 1"));
            }
        }
    }
    errs
}

fn lifecycle(lc: &Value, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for hook in ["postStart", "preStop"] {
        if let Some(h) = get(lc, hook) {
            errs.extend(handler(h, grace, &path.child(hook), true, false));
        }
    }
    errs
}

fn probes_and_lifecycle(ctr: &Value, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(lc) = get(ctr, "lifecycle") {
        errs.extend(lifecycle(lc, grace, &path.child("lifecycle")));
    }
    errs.extend(probe(get(ctr, "livenessProbe"), grace, &path.child("livenessProbe"), "liveness"));
    errs.extend(probe(get(ctr, "readinessProbe"), grace, &path.child("readinessProbe"), "readiness"));
    errs.extend(probe(get(ctr, "startupProbe"), grace, &path.child("startupProbe"), "startup"));
    errs
}

fn security_context(sc: Option<&Value>, path: &Path, host_users: bool) -> Vec<Cause> {
    let Some(sc) = sc else { return Vec::new() };
    let mut errs = Vec::new();
    for key in ["runAsUser", "runAsGroup"] {
        if let Some(id) = int_of(sc, key)
            && !(0..=i64::from(i32::MAX)).contains(&id)
        {
            errs.push(field::invalid(
                &path.child(key),
                Bad::Int(id),
                &names::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
        }
    }
    if let Some(pm) = opt_str(sc, "procMount") {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(field::not_supported(&path.child("procMount"), Bad::Str(pm), &["Default", "Unmasked"]));
        }
        if host_users && pm == "Unmasked" {
            errs.push(field::invalid(
                &path.child("procMount"),
                Bad::Str(pm),
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(seccomp_profile(get(sc, "seccompProfile"), &path.child("seccompProfile")));
    if field::bool_of(sc, "allowPrivilegeEscalation") == Some(false) {
        if field::bool_of(sc, "privileged") == Some(true) {
            errs.push(field::invalid(
                path,
                Bad::Json(sc),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if arr(sub(sc, "capabilities"), "add").iter().any(|c| c.as_str() == Some("CAP_SYS_ADMIN")) {
            errs.push(field::invalid(
                path,
                Bad::Json(sc),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    errs
}

fn seccomp_profile(sp: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(sp) = sp else { return Vec::new() };
    let mut errs = Vec::new();
    const TYPES: &[&str] = &["Localhost", "RuntimeDefault", "Unconfined"];
    let t = str_of(sp, "type");
    match t {
        "" => errs.push(field::required(&path.child("type"), "type is required when seccompProfile is set")),
        t if !TYPES.contains(&t) => errs.push(field::not_supported(&path.child("type"), Bad::Str(t), TYPES)),
        _ => {}
    }
    let lp = opt_str(sp, "localhostProfile");
    if t == "Localhost" {
        match lp {
            None => errs
                .push(field::required(&path.child("localhostProfile"), "must be set when seccomp type is Localhost")),
            Some(lp) => errs.extend(local_descending_path(lp, &path.child("localhostProfile"))),
        }
    } else if lp.is_some() {
        errs.push(field::invalid(
            &path.child("localhostProfile"),
            Bad::Json(sp),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

fn container_common(ctr: &Value, volumes: &Volumes, path: &Path, host_users: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name = str_of(ctr, "name");
    if name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    } else {
        errs.extend(dns_label(name, &path.child("name")));
    }
    if str_of(ctr, "image").is_empty() {
        errs.push(field::required(&path.child("image"), ""));
    }
    const TMP: &[&str] = &["File", "FallbackToLogsOnError"];
    match str_of(ctr, "terminationMessagePolicy") {
        "" => errs.push(field::required(&path.child("terminationMessagePolicy"), "")),
        p if !TMP.contains(&p) => {
            errs.push(field::not_supported(&path.child("terminationMessagePolicy"), Bad::Str(p), TMP))
        }
        _ => {}
    }
    errs.extend(container_ports(arr(ctr, "ports"), &path.child("ports")));
    errs.extend(validate_env(arr(ctr, "env"), &path.child("env")));
    errs.extend(validate_env_from(arr(ctr, "envFrom"), &path.child("envFrom")));
    errs.extend(volume_mounts(ctr, volumes, &path.child("volumeMounts")));
    errs.extend(volume_devices(ctr, volumes, &path.child("volumeDevices")));
    errs.extend(pull_policy(str_of(ctr, "imagePullPolicy"), &path.child("imagePullPolicy")));
    errs.extend(resource_requirements(sub(ctr, "resources"), &path.child("resources")));
    errs.extend(security_context(get(ctr, "securityContext"), &path.child("securityContext"), host_users));
    errs
}

fn host_port_conflicts(containers: &[&Value], path: &Path) -> Vec<Cause> {
    let mut seen = BTreeSet::new();
    let mut errs = Vec::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in arr(c, "ports").iter().enumerate() {
            let hp = int_of(port, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", str_of(port, "protocol"), str_of(port, "hostIP"), hp);
            if !seen.insert(key.clone()) {
                errs.push(field::duplicate(&path.index(ci).child("ports").index(pi).child("hostPort"), Bad::Str(&key)));
            }
        }
    }
    errs
}

fn tolerations(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = str_of(t, "key");
        let op = str_of(t, "operator");
        let effect = str_of(t, "effect");
        if !key.is_empty() {
            errs.extend(meta::validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(field::invalid(
                &p.child("operator"),
                Bad::Str(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(field::invalid(
                &p.child("effect"),
                Bad::Str(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_of(t, "value");
        match op {
            "Equal" | "" => {
                let msgs = names::label_value(value);
                if !msgs.is_empty() {
                    errs.push(field::invalid(&p.child("operator"), Bad::Str(value), &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(field::invalid(
                        &p.child("operator"),
                        Bad::Str(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(field::not_supported(&p.child("operator"), Bad::Str(other), &["Equal", "Exists"])),
        }
        if !effect.is_empty() {
            errs.extend(taint_effect(effect, &p.child("effect")));
        }
    }
    errs
}

pub(super) fn taint_effect(effect: &str, path: &Path) -> Vec<Cause> {
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if EFFECTS.contains(&effect) { Vec::new() } else { vec![field::not_supported(path, Bad::Str(effect), EFFECTS)] }
}

fn node_selector_requirement(rq: &Value, path: &Path, check_values: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    let values = arr(rq, "values");
    match str_of(rq, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(field::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(field::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(field::required(
                    &path.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        op => errs.push(field::invalid(&path.child("operator"), Bad::Str(op), "not a valid selector operator")),
    }
    errs.extend(meta::validate_label_name(str_of(rq, "key"), &path.child("key")));
    if check_values {
        for (i, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            errs.extend(
                names::label_value(v).iter().map(|m| field::invalid(&path.child("values").index(i), Bad::Str(v), m)),
            );
        }
    }
    errs
}

fn node_selector_term(term: &Value, path: &Path, check_values: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (j, rq) in arr(term, "matchExpressions").iter().enumerate() {
        errs.extend(node_selector_requirement(rq, &path.child("matchExpressions").index(j), check_values));
    }
    for (j, rq) in arr(term, "matchFields").iter().enumerate() {
        let p = path.child("matchFields").index(j);
        match str_of(rq, "operator") {
            "In" | "NotIn" => {
                if arr(rq, "values").len() != 1 {
                    errs.push(field::required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            op => errs.push(field::invalid(&p.child("operator"), Bad::Str(op), "not a valid selector operator")),
        }
        let key = str_of(rq, "key");
        if key != "metadata.name" {
            errs.push(field::invalid(&p.child("key"), Bad::Str(key), "not a valid field selector key"));
        } else {
            for (k, v) in arr(rq, "values").iter().enumerate() {
                errs.extend(dns_subdomain(v.as_str().unwrap_or_default(), &p.child("values").index(k)));
            }
        }
    }
    errs
}

fn pod_affinity_terms(terms: &[Value], path: &Path, weighted: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        let (term, p) = if weighted {
            let w = int_of(t, "weight").unwrap_or(0);
            if !(1..=100).contains(&w) {
                errs.push(field::invalid(&path.index(i).child("weight"), Bad::Int(w), "must be in the range 1-100"));
            }
            (sub(t, "podAffinityTerm"), path.index(i).child("podAffinityTerm"))
        } else {
            (t, path.index(i))
        };
        errs.extend(meta::validate_label_selector(get(term, "labelSelector"), &p.child("labelSelector")));
        errs.extend(meta::validate_label_selector(get(term, "namespaceSelector"), &p.child("namespaceSelector")));
        for ns in arr(term, "namespaces") {
            let ns = ns.as_str().unwrap_or_default();
            errs.extend(
                names::dns1123_label(ns).iter().map(|m| field::invalid(&p.child("namespace"), Bad::Str(ns), m)),
            );
        }
        let tk = str_of(term, "topologyKey");
        if tk.is_empty() {
            errs.push(field::required(&p.child("topologyKey"), "can not be empty"));
        }
        errs.extend(meta::validate_label_name(tk, &p.child("topologyKey")));
    }
    errs
}

fn affinity(aff: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(aff) = aff else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(na) = get(aff, "nodeAffinity") {
        let np = path.child("nodeAffinity");
        if let Some(req) = get(na, "requiredDuringSchedulingIgnoredDuringExecution") {
            let tp = np.child("requiredDuringSchedulingIgnoredDuringExecution").child("nodeSelectorTerms");
            let terms = arr(req, "nodeSelectorTerms");
            if terms.is_empty() {
                errs.push(field::required(&tp, "must have at least one node selector term"));
            }
            for (i, t) in terms.iter().enumerate() {
                errs.extend(node_selector_term(t, &tp.index(i), true));
            }
        }
        let pp = np.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in arr(na, "preferredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            let w = int_of(t, "weight").unwrap_or(0);
            if !(1..=100).contains(&w) {
                errs.push(field::invalid(&pp.index(i).child("weight"), Bad::Int(w), "must be in the range 1-100"));
            }
            errs.extend(node_selector_term(sub(t, "preference"), &pp.index(i).child("preference"), false));
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        if let Some(pa) = get(aff, kind) {
            let kp = path.child(kind);
            let req = "requiredDuringSchedulingIgnoredDuringExecution";
            let pref = "preferredDuringSchedulingIgnoredDuringExecution";
            errs.extend(pod_affinity_terms(arr(pa, req), &kp.child(req), false));
            errs.extend(pod_affinity_terms(arr(pa, pref), &kp.child(pref), true));
        }
    }
    errs
}

fn topology_spread(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        let skew = int_of(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(field::invalid(&p.child("maxSkew"), Bad::Int(skew), "must be greater than zero"));
        }
        let key = str_of(c, "topologyKey");
        if key.is_empty() {
            errs.push(field::required(&p.child("topologyKey"), "can not be empty"));
        } else {
            errs.extend(meta::validate_label_name(key, &p.child("topologyKey")));
        }
        let wu = str_of(c, "whenUnsatisfiable");
        const WU: &[&str] = &["DoNotSchedule", "ScheduleAnyway"];
        if !WU.contains(&wu) {
            errs.push(field::not_supported(&p.child("whenUnsatisfiable"), Bad::Str(wu), WU));
        }
        if !seen.insert((key.to_string(), wu.to_string())) {
            errs.push(field::duplicate(&p, Bad::Raw(format!("{{{}, {}}}", field::go_quote(key), field::go_quote(wu)))));
        }
        if let Some(md) = int_of(c, "minDomains") {
            if md <= 0 {
                errs.push(field::invalid(&p.child("minDomains"), Bad::Int(md), "must be greater than 0"));
            } else if wu != "DoNotSchedule" {
                errs.push(field::invalid(
                    &p.child("minDomains"),
                    Bad::Int(md),
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
                ));
            }
        }
        errs.extend(meta::validate_label_selector(get(c, "labelSelector"), &p.child("labelSelector")));
        for pol in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(v) = opt_str(c, pol)
                && v != "Honor"
                && v != "Ignore"
            {
                errs.push(field::not_supported(&p.child(pol), Bad::Str(v), &["Honor", "Ignore"]));
            }
        }
    }
    errs
}

fn dns_config(cfg: Option<&Value>, policy: &str, path: &Path) -> Vec<Cause> {
    if policy == "None" {
        match cfg {
            None => {
                return vec![field::required(path, "must provide `dnsConfig` when `dnsPolicy` is None")];
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                return vec![field::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )];
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return Vec::new() };
    let mut errs = Vec::new();
    let ns = arr(cfg, "nameservers");
    if ns.len() > 3 {
        errs.push(field::invalid(
            &path.child("nameservers"),
            Bad::Json(&Value::Array(ns.to_vec())),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        errs.extend(net::validate_ip(&path.child("nameservers").index(i), n.as_str().unwrap_or_default()));
    }
    let searches = arr(cfg, "searches");
    if searches.len() > 32 {
        errs.push(field::invalid(
            &path.child("searches"),
            Bad::Json(&Value::Array(searches.to_vec())),
            "must not have more than 32 search paths",
        ));
    }
    let joined: Vec<&str> = searches.iter().filter_map(Value::as_str).collect();
    if joined.join(" ").len() > 2048 {
        errs.push(field::invalid(
            &path.child("searches"),
            Bad::Json(&Value::Array(searches.to_vec())),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in joined.iter().enumerate() {
        if *s != "." {
            let s = s.strip_suffix('.').unwrap_or(s);
            let ok = !s.is_empty()
                && s.split('.').all(|l| {
                    let l = l.strip_prefix('_').unwrap_or(l);
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
                });
            if !ok {
                errs.push(field::invalid(
                    &path.child("searches").index(i),
                    Bad::Str(s),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                ));
            }
        }
    }
    for (i, o) in arr(cfg, "options").iter().enumerate() {
        if str_of(o, "name").is_empty() {
            errs.push(field::required(&path.child("options").index(i), "must not be empty"));
        }
    }
    errs
}

fn pod_security_context(sc: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(sc) = sc else { return Vec::new() };
    let mut errs = Vec::new();
    let range = |v: i64| (0..=i64::from(i32::MAX)).contains(&v);
    for key in ["fsGroup", "runAsUser", "runAsGroup"] {
        if let Some(id) = int_of(sc, key)
            && !range(id)
        {
            errs.push(field::invalid(
                &path.child(key),
                Bad::Int(id),
                &names::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
        }
    }
    for (i, g) in arr(sc, "supplementalGroups").iter().enumerate() {
        let g = g.as_i64().unwrap_or(0);
        if !range(g) {
            errs.push(field::invalid(
                &path.child("supplementalGroups").index(i),
                Bad::Int(g),
                &names::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, s) in arr(sc, "sysctls").iter().enumerate() {
        let name = str_of(s, "name");
        let p = path.child("sysctls").index(i).child("name");
        if name.is_empty() {
            errs.push(field::required(&p, ""));
        } else if !is_valid_sysctl_name(name) {
            errs.push(field::invalid(
                &p,
                Bad::Str(name),
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        } else if !seen.insert(name) {
            errs.push(field::duplicate(&p, Bad::Str(name)));
        }
    }
    if let Some(p) = opt_str(sc, "fsGroupChangePolicy")
        && p != "Always"
        && p != "OnRootMismatch"
    {
        errs.push(field::not_supported(&path.child("fsGroupChangePolicy"), Bad::Str(p), &["Always", "OnRootMismatch"]));
    }
    if let Some(p) = opt_str(sc, "supplementalGroupsPolicy")
        && p != "Merge"
        && p != "Strict"
    {
        errs.push(field::not_supported(&path.child("supplementalGroupsPolicy"), Bad::Str(p), &["Merge", "Strict"]));
    }
    errs.extend(seccomp_profile(get(sc, "seccompProfile"), &path.child("seccompProfile")));
    errs
}

fn is_valid_sysctl_name(name: &str) -> bool {
    if name.len() > 253 {
        return false;
    }
    let segment = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
    };
    name.split(['.', '/']).all(segment)
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &Value, path: &Path, opts: PodOpts) -> Vec<Cause> {
    let mut errs = Vec::new();
    let grace = int_of(spec, "terminationGracePeriodSeconds");
    if get(spec, "terminationGracePeriodSeconds").is_none() {
        errs.push(field::required(&path.child("terminationGracePeriodSeconds"), ""));
    }
    let host_users = field::bool_of(sub(spec, "securityContext"), "hostUsers") != Some(false);
    let (volumes, verrs) = validate_volumes(arr(spec, "volumes"), &path.child("volumes"));
    errs.extend(verrs);

    // Regular containers.
    let cpath = path.child("containers");
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(field::required(&cpath, ""));
    } else {
        let mut seen = BTreeSet::new();
        for (i, c) in containers.iter().enumerate() {
            let p = cpath.index(i);
            errs.extend(container_common(c, &volumes, &p, host_users));
            let name = str_of(c, "name");
            if !seen.insert(name) {
                errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
            }
            errs.extend(probes_and_lifecycle(c, grace, &p));
            if get(c, "restartPolicy").is_some() {
                errs.push(field::forbidden(&p.child("restartPolicy"), "may not be set for non-init containers"));
            }
        }
        errs.extend(host_port_conflicts(&containers.iter().collect::<Vec<_>>(), &cpath));
    }

    // Init containers run one at a time: names are shared with regular ones, host ports are not.
    let ipath = path.child("initContainers");
    let mut all_names: BTreeSet<&str> = containers.iter().map(|c| str_of(c, "name")).collect();
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = ipath.index(i);
        errs.extend(container_common(c, &volumes, &p, host_users));
        let restart_always = match opt_str(c, "restartPolicy") {
            Some("Always") => true,
            Some(other) => {
                errs.push(field::not_supported(&p.child("restartPolicy"), Bad::Str(other), &["Always"]));
                false
            }
            None => false,
        };
        let name = str_of(c, "name");
        if all_names.contains(name) {
            errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
        } else if !name.is_empty() {
            all_names.insert(name);
        }
        errs.extend(host_port_conflicts(&[c], &ipath));
        if restart_always {
            errs.extend(probes_and_lifecycle(c, grace, &p));
        } else {
            for key in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if get(c, key).is_some() {
                    errs.push(field::forbidden(
                        &p.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    // Ephemeral containers: names unique across all containers.
    let epath = path.child("ephemeralContainers");
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = epath.index(i);
        errs.extend(container_common(c, &volumes, &p, host_users));
        let name = str_of(c, "name");
        if !all_names.insert(name) {
            errs.push(field::duplicate(&p.child("name"), Bad::Str(name)));
        }
        let target = str_of(c, "targetContainerName");
        let others: BTreeSet<&str> =
            containers.iter().chain(arr(spec, "initContainers")).map(|c| str_of(c, "name")).collect();
        if !target.is_empty() && !others.contains(target) {
            errs.push(field::not_found(&p.child("targetContainerName"), Bad::Str(target)));
        }
        for key in ["ports", "resources", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"] {
            let set = match get(c, key) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
                None => false,
            };
            if set {
                errs.push(field::forbidden(&p.child(key), "cannot be set for an Ephemeral Container"));
            }
        }
    }

    // hostNetwork: host ports must equal container ports (templates may leave them 0).
    if field::bool_of(spec, "hostNetwork") == Some(true) {
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in arr(c, "ports").iter().enumerate() {
                let hp = int_of(port, "hostPort").unwrap_or(0);
                let cp = int_of(port, "containerPort").unwrap_or(0);
                if (opts.resource_is_pod || hp != 0) && hp != cp {
                    errs.push(field::invalid(
                        &cpath.index(i).child("ports").index(j).child("hostPort"),
                        Bad::Int(hp),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    const RESTART: &[&str] = &["Always", "OnFailure", "Never"];
    match str_of(spec, "restartPolicy") {
        "" => errs.push(field::required(&path.child("restartPolicy"), "")),
        p if !RESTART.contains(&p) => {
            errs.push(field::not_supported(&path.child("restartPolicy"), Bad::Str(p), RESTART))
        }
        _ => {}
    }
    const DNS: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    let dns_policy = str_of(spec, "dnsPolicy");
    match dns_policy {
        "" => errs.push(field::required(&path.child("dnsPolicy"), "")),
        p if !DNS.contains(&p) => errs.push(field::not_supported(&path.child("dnsPolicy"), Bad::Str(p), DNS)),
        _ => {}
    }
    errs.extend(meta::validate_labels(obj(spec, "nodeSelector"), &path.child("nodeSelector")));
    errs.extend(pod_security_context(get(spec, "securityContext"), &path.child("securityContext")));
    for (i, s) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if s.as_object().is_some_and(|m| m.keys().any(|k| k != "name")) {
            errs.push(field::invalid(&path.child("imagePullSecrets").index(i), Bad::Json(s), "only name may be set"));
        }
    }
    errs.extend(affinity(get(spec, "affinity"), &path.child("affinity")));
    errs.extend(dns_config(get(spec, "dnsConfig"), dns_policy, &path.child("dnsConfig")));
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        let p = path.child("readinessGates").index(i).child("conditionType");
        errs.extend(qualified(str_of(g, "conditionType"), &p));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let name = str_of(g, "name");
        let p = path.child("schedulingGates").index(i);
        errs.extend(qualified(name, &p));
        if !gates.insert(name) {
            errs.push(field::duplicate(&p, Bad::Str(name)));
        }
    }
    errs.extend(topology_spread(arr(spec, "topologySpreadConstraints"), &path.child("topologySpreadConstraints")));
    let sc = sub(spec, "securityContext");
    if field::bool_of(sc, "hostUsers") == Some(false) {
        if field::bool_of(spec, "hostNetwork") == Some(true) {
            errs.push(field::forbidden(&path.child("hostNetwork"), "when `pod.Spec.HostUsers` is false"));
        }
        if field::bool_of(spec, "hostPID") == Some(true) {
            errs.push(field::forbidden(&path.child("HostPID"), "when `pod.Spec.HostUsers` is false"));
        }
        if field::bool_of(spec, "hostIPC") == Some(true) {
            errs.push(field::forbidden(&path.child("HostIPC"), "when `pod.Spec.HostUsers` is false"));
        }
    }
    if field::bool_of(spec, "shareProcessNamespace") == Some(true) && field::bool_of(spec, "hostPID") == Some(true) {
        errs.push(field::invalid(
            &path.child("securityContext").child("shareProcessNamespace"),
            Bad::Raw("true".into()),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    for key in ["serviceAccountName", "nodeName", "priorityClassName"] {
        let v = str_of(spec, key);
        if !v.is_empty() {
            errs.extend(dns_subdomain(v, &path.child(key)));
        }
    }
    if let Some(rc) = opt_str(spec, "runtimeClassName") {
        errs.extend(dns_subdomain(rc, &path.child("runtimeClassName")));
    }
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            Bad::Int(ads),
            &names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for key in ["hostname", "subdomain"] {
        let v = str_of(spec, key);
        if !v.is_empty() {
            errs.extend(dns_label(v, &path.child(key)));
        }
    }
    errs.extend(tolerations(arr(spec, "tolerations"), &path.child("tolerations")));
    for (i, ha) in arr(spec, "hostAliases").iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(net::validate_ip(&p.child("ip"), str_of(ha, "ip")));
        for (j, h) in arr(ha, "hostnames").iter().enumerate() {
            errs.extend(dns_subdomain(h.as_str().unwrap_or_default(), &p.child("hostnames").index(j)));
        }
    }
    if let Some(pp) = opt_str(spec, "preemptionPolicy") {
        const PP: &[&str] = &["PreemptLowerPriority", "Never"];
        match pp {
            "" => errs.push(field::required(&path.child("preemptionPolicy"), "")),
            p if !PP.contains(&p) => errs.push(field::not_supported(&path.child("preemptionPolicy"), Bad::Str(p), PP)),
            _ => {}
        }
    }
    if let Some(overhead) = obj(spec, "overhead") {
        let mut oerrs = Vec::new();
        for (name, q) in resource_list(Some(overhead), &path.child("overhead").child("limits"), &mut oerrs) {
            let p = path.child("overhead").child("limits").key(name);
            oerrs.extend(container_resource_name(name, &p));
            oerrs.extend(quantity_value(name, &q, &p));
        }
        errs.extend(oerrs);
    }
    if let Some(os) = get(spec, "os") {
        let name = str_of(os, "name");
        if name.is_empty() {
            errs.push(field::required(&path.child("os").child("name"), ""));
        } else if name != "linux" && name != "windows" {
            errs.push(field::not_supported(&path.child("os").child("name"), Bad::Str(name), &["linux", "windows"]));
        }
    }
    errs
}

/// `ValidatePodTemplateSpec` (the template inside a workload).
pub fn validate_pod_template_spec(tpl: &Value, path: &Path) -> Vec<Cause> {
    let m = sub(tpl, "metadata");
    let mut errs = meta::validate_labels(obj(m, "labels"), &path.child("labels"));
    errs.extend(meta::validate_annotations(obj(m, "annotations"), &path.child("annotations")));
    errs.extend(pod_specific_annotations(m, sub(tpl, "spec"), &path.child("annotations")));
    let spec = sub(tpl, "spec");
    errs.extend(validate_pod_spec(spec, &path.child("spec"), PodOpts { resource_is_pod: false }));
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(field::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

fn pod_specific_annotations(m: &Value, spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let annotations = field::string_map(m, "annotations");
    for (k, v) in &annotations {
        if *k == "kubernetes.io/config.mirror" && str_of(spec, "nodeName").is_empty() {
            errs.push(field::invalid(
                &path.key(k),
                Bad::Str(v),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
        if *k == "controller.kubernetes.io/pod-deletion-cost" && v.parse::<i32>().is_err() {
            errs.push(field::invalid(&path.key(k), Bad::Str(v), "must be a 32bit integer"));
        }
    }
    errs
}

fn pod_metadata_and_spec(pod: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let sp = Path::new("spec");
    let m = sub(pod, "metadata");
    let spec = sub(pod, "spec");
    let mut errs = meta::validate_object_meta(m, true, NameRule::Dns1123Subdomain, &mp);
    errs.extend(pod_specific_annotations(m, spec, &mp.child("annotations")));
    errs.extend(validate_pod_spec(spec, &sp, PodOpts { resource_is_pod: true }));
    if str_of(spec, "serviceAccountName").is_empty() {
        for (vi, v) in arr(spec, "volumes").iter().enumerate() {
            for (si, s) in arr(sub(v, "projected"), "sources").iter().enumerate() {
                if get(s, "serviceAccountToken").is_some() {
                    let p = sp
                        .child("volumes")
                        .index(vi)
                        .child("projected")
                        .child("sources")
                        .index(si)
                        .child("serviceAccountToken");
                    errs.push(field::forbidden(&p, "must not be specified when serviceAccountName is not set"));
                }
            }
        }
    }
    for kind in ["containers", "initContainers"] {
        for (i, c) in arr(spec, kind).iter().enumerate() {
            let image = str_of(c, "image");
            if image.trim() != image {
                errs.push(field::invalid(
                    &sp.child(kind).index(i).child("image"),
                    Bad::Str(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// `ValidatePodCreate`.
pub fn validate_pod_create(pod: &Value) -> Vec<Cause> {
    let mut errs = pod_metadata_and_spec(pod);
    let spec = sub(pod, "spec");
    let sp = Path::new("spec");
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(field::forbidden(&sp.child("ephemeralContainers"), "cannot be set on create"));
    }
    if !str_of(spec, "nodeName").is_empty() && !arr(spec, "schedulingGates").is_empty() {
        errs.push(field::forbidden(&sp.child("nodeName"), "cannot be set until all schedulingGates have been cleared"));
    }
    errs
}

const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Removes nulls and empty strings, which Go's typed structs cannot tell from absent.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null() && x.as_str() != Some(""))
                .map(|(k, x)| (k.clone(), normalize(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Lists the leaf paths where two JSON values differ, for the pod update message.
fn diff_paths(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let next = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                diff_paths(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), next, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_paths(p, q, format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("  {at}: {a} -> {b}")),
        _ => {}
    }
}

/// `ValidatePodUpdate`: only images, activeDeadlineSeconds, added tolerations and
/// removed scheduling gates may change.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let sp = Path::new("spec");
    let mut errs = meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &mp);
    errs.extend(pod_metadata_and_spec(new));
    errs.extend(mirror_annotation_updates(new, old, &mp.child("annotations")));
    let (ns, os) = (sub(new, "spec"), sub(old, "spec"));
    for kind in ["containers", "initContainers"] {
        let (nc, oc) = (arr(ns, kind), arr(os, kind));
        if nc.len() != oc.len() {
            errs.push(field::forbidden(&sp.child(kind), "pod updates may not add or remove containers"));
            return errs;
        }
        for (i, c) in nc.iter().enumerate() {
            let image = str_of(c, "image");
            if image.is_empty() {
                errs.push(field::required(&sp.child(kind).index(i).child("image"), ""));
            }
        }
    }
    let ads_path = sp.child("activeDeadlineSeconds");
    match (int_of(ns, "activeDeadlineSeconds"), int_of(os, "activeDeadlineSeconds")) {
        (Some(n), old_ads) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                errs.push(field::invalid(
                    &ads_path,
                    Bad::Int(n),
                    &names::inclusive_range_error(0, i64::from(i32::MAX)),
                ));
                return errs;
            }
            if old_ads.is_some_and(|o| o < n) {
                errs.push(field::invalid(&ads_path, Bad::Int(n), "must be less than or equal to previous value"));
                return errs;
            }
        }
        (None, Some(_)) => errs.push(field::invalid(
            &ads_path,
            Bad::Raw("null".into()),
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }
    // Tolerations: every old one must survive (tolerationSeconds may change).
    let strip_secs = |t: &Value| {
        let mut t = normalize(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new_tols: Vec<Value> = arr(ns, "tolerations").iter().map(strip_secs).collect();
    if arr(os, "tolerations").iter().map(strip_secs).any(|o| !new_tols.contains(&o)) {
        errs.push(field::forbidden(
            &sp.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    } else {
        errs.extend(tolerations(arr(ns, "tolerations"), &sp.child("tolerations")));
    }
    // Scheduling gates: only deletions.
    let old_gates: BTreeSet<&str> = arr(os, "schedulingGates").iter().map(|g| str_of(g, "name")).collect();
    for (i, g) in arr(ns, "schedulingGates").iter().enumerate() {
        let name = str_of(g, "name");
        if !old_gates.contains(name) {
            errs.push(field::forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
    // Munge the updatable fields to their old values and require the rest to be equal.
    let mut munged = normalize(ns);
    let old_spec = normalize(os);
    if let Some(m) = munged.as_object_mut() {
        for kind in ["containers", "initContainers"] {
            if let Some(list) = m.get_mut(kind).and_then(Value::as_array_mut) {
                for (i, c) in list.iter_mut().enumerate() {
                    if let Some(c) = c.as_object_mut() {
                        match arr(&old_spec, kind).get(i).and_then(|o| o.get("image")) {
                            Some(img) => c.insert("image".into(), img.clone()),
                            None => c.remove("image"),
                        };
                    }
                }
            }
        }
        let gated = !arr(os, "schedulingGates").is_empty();
        let mut keys = vec!["activeDeadlineSeconds", "schedulingGates", "tolerations"];
        if gated {
            // Gated pods may gain node selectors and node affinity; validated loosely.
            keys.extend(["nodeSelector", "affinity"]);
        }
        for key in keys {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = int_of(&old_spec, "terminationGracePeriodSeconds");
        let new_grace = m.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && new_grace == Some(1)
            && let Some(g) = old_spec.get("terminationGracePeriodSeconds")
        {
            m.insert("terminationGracePeriodSeconds".into(), g.clone());
        }
    }
    if munged != old_spec {
        let mut diffs = Vec::new();
        diff_paths(&old_spec, &munged, "spec".to_string(), &mut diffs);
        errs.push(field::forbidden(
            &sp,
            &format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}", diffs.join("\n")),
        ));
    }
    errs
}

fn mirror_annotation_updates(new: &Value, old: &Value, path: &Path) -> Vec<Cause> {
    let key = "kubernetes.io/config.mirror";
    let get_a = |v: &Value| sub(sub(v, "metadata"), "annotations").get(key).and_then(Value::as_str).map(str::to_string);
    match (get_a(new), get_a(old)) {
        (n, Some(o)) if n.as_deref() != Some(o.as_str()) => {
            vec![field::forbidden(&path.key(key), "may not remove or update mirror pod annotation")]
        }
        (Some(_), None) => vec![field::forbidden(&path.key(key), "may not add mirror pod annotation")],
        _ => Vec::new(),
    }
}

/// `ValidatePodStatusUpdate`.
pub fn validate_pod_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &mp);
    errs.extend(mirror_annotation_updates(new, old, &mp.child("annotations")));
    let status = sub(new, "status");
    for (i, c) in arr(status, "conditions").iter().enumerate() {
        let t = str_of(c, "type");
        if !matches!(t, "PodScheduled" | "Ready" | "Initialized") {
            errs.extend(qualified(t, &mp.child("conditions").index(i).child("Type")));
        }
    }
    let st = Path::new("status");
    if str_of(sub(new, "spec"), "nodeName") != str_of(sub(old, "spec"), "nodeName") {
        errs.push(field::forbidden(&st.child("nodeName"), "may not be changed directly"));
    }
    let nominated = str_of(status, "nominatedNodeName");
    if nominated != str_of(sub(old, "status"), "nominatedNodeName") && !nominated.is_empty() {
        errs.extend(dns_subdomain(nominated, &st.child("nominatedNodeName")));
    }
    let (nq, oq) = (get(status, "qosClass"), get(sub(old, "status"), "qosClass"));
    if oq.is_some() && field::differs(nq, oq) {
        errs.push(field::invalid(&st.child("qosClass"), Bad::Json(nq.unwrap_or(&Value::Null)), meta::FIELD_IMMUTABLE));
    }
    let restart = str_of(sub(old, "spec"), "restartPolicy");
    for kind in ["containerStatuses", "initContainerStatuses"] {
        if restart == "Always" {
            continue;
        }
        for (i, o) in arr(sub(old, "status"), kind).iter().enumerate() {
            let Some(term) = get(sub(o, "state"), "terminated") else {
                continue;
            };
            if int_of(term, "exitCode").unwrap_or(0) != 0 && restart == "OnFailure" {
                continue;
            }
            if kind == "initContainerStatuses"
                && arr(sub(old, "spec"), "initContainers")
                    .iter()
                    .any(|c| str_of(c, "name") == str_of(o, "name") && str_of(c, "restartPolicy") == "Always")
            {
                continue;
            }
            for n in arr(status, kind) {
                if str_of(n, "name") == str_of(o, "name") && get(sub(n, "state"), "terminated").is_none() {
                    errs.push(field::forbidden(
                        &st.child(kind).index(i).child("state"),
                        "may not be transitioned to non-terminated state",
                    ));
                }
            }
        }
    }
    for key in ["podIPs", "hostIPs"] {
        let list = arr(status, key);
        let p = st.child(key);
        for (i, ip) in list.iter().enumerate() {
            errs.extend(net::validate_ip(&p.index(i), str_of(ip, "ip")));
        }
        if list.len() > 1 {
            let v6 = list.iter().filter(|ip| net::is_ipv6(str_of(ip, "ip"))).count();
            if list.len() > 2 || v6 != 1 {
                errs.push(field::invalid(
                    &p,
                    Bad::Json(&Value::Array(list.to_vec())),
                    "may specify no more than one IP for each IP family",
                ));
            }
        }
    }
    let host_ips = arr(status, "hostIPs");
    if let Some(first) = host_ips.first()
        && str_of(first, "ip") != str_of(status, "hostIP")
    {
        errs.push(field::invalid(
            &st.child("hostIPs").index(0).child("ip"),
            Bad::Str(str_of(first, "ip")),
            "must be equal to `hostIP`",
        ));
    }
    errs
}

/// Checks the Binding a scheduler posts to `pods/binding`.
pub fn validate_binding(binding: &Value) -> Vec<Cause> {
    let target = sub(binding, "target");
    let mut errs = Vec::new();
    let kind = str_of(target, "kind");
    if !kind.is_empty() && kind != "Node" {
        errs.push(field::not_supported(&Path::new("target.kind"), Bad::Str(kind), &["Node", "<empty>"]));
    }
    if str_of(target, "name").is_empty() {
        errs.push(field::required(&Path::new("target.name"), ""));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {}
                }],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                "securityContext": {}, "enableServiceLinks": true
            }
        })
    }

    fn find<'a>(errs: &'a [Cause], field: &str) -> Option<&'a Cause> {
        errs.iter().find(|c| c.field == field)
    }

    #[test]
    fn a_defaulted_pod_is_valid() {
        let errs = validate_pod_create(&defaulted_pod());
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn containers_are_required_and_named_uniquely() {
        let mut pod = defaulted_pod();
        pod["spec"]["containers"] = json!([]);
        let errs = validate_pod_create(&pod);
        assert_eq!(find(&errs, "spec.containers").unwrap().message, "Required value");

        let mut pod = defaulted_pod();
        let c = pod["spec"]["containers"][0].clone();
        pod["spec"]["containers"] = json!([c.clone(), c]);
        let errs = validate_pod_create(&pod);
        assert_eq!(find(&errs, "spec.containers[1].name").unwrap().message, "Duplicate value: \"nginx\"");
    }

    #[test]
    fn container_fields() {
        let mut pod = defaulted_pod();
        let c = &mut pod["spec"]["containers"][0];
        c["name"] = json!("Web_1");
        c["image"] = json!("");
        c["ports"] = json!([{"containerPort": 70000, "protocol": "XTP", "name": "HTTP"}, {"protocol": "TCP"}]);
        c["imagePullPolicy"] = json!("Sometimes");
        c["env"] = json!([{"name": ""}, {"name": "A=B"}, {"name": "X", "valueFrom": {}}]);
        let errs = validate_pod_create(&pod);
        assert!(find(&errs, "spec.containers[0].name").unwrap().message.contains("RFC 1123 label"));
        assert_eq!(find(&errs, "spec.containers[0].image").unwrap().message, "Required value");
        assert_eq!(
            find(&errs, "spec.containers[0].ports[0].containerPort").unwrap().message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            find(&errs, "spec.containers[0].ports[0].protocol").unwrap().message,
            "Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        assert!(find(&errs, "spec.containers[0].ports[0].name").is_some());
        assert_eq!(find(&errs, "spec.containers[0].ports[1].containerPort").unwrap().message, "Required value");
        assert_eq!(
            find(&errs, "spec.containers[0].imagePullPolicy").unwrap().message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
        assert_eq!(find(&errs, "spec.containers[0].env[0].name").unwrap().reason, "FieldValueRequired");
        assert!(find(&errs, "spec.containers[0].env[1].name").is_some());
        assert!(find(&errs, "spec.containers[0].env[2].valueFrom").unwrap().message.contains("must specify one of"));
    }

    #[test]
    fn env_value_from_sources() {
        let mut pod = defaulted_pod();
        pod["spec"]["containers"][0]["env"] = json!([
            {"name": "A", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}}},
            {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.restartPolicy"}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a/b"}}},
            {"name": "E", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "F", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}
        ]);
        let errs = validate_pod_create(&pod);
        let p = "spec.containers[0].env";
        assert!(find(&errs, &format!("{p}[0].valueFrom.fieldRef.fieldPath")).is_none());
        assert!(find(&errs, &format!("{p}[1].valueFrom.fieldRef")).is_none());
        assert_eq!(
            find(&errs, &format!("{p}[2].valueFrom.fieldRef.fieldPath")).unwrap().reason,
            "FieldValueNotSupported"
        );
        assert!(find(&errs, &format!("{p}[3].valueFrom.configMapKeyRef.key")).is_some());
        assert!(
            find(&errs, &format!("{p}[4].valueFrom"))
                .unwrap()
                .message
                .contains("may not be specified when `value` is not empty")
        );
        assert_eq!(
            find(&errs, &format!("{p}[5].valueFrom.resourceFieldRef.resource")).unwrap().reason,
            "FieldValueNotSupported"
        );
    }

    #[test]
    fn resources_parse_and_requests_fit_limits() {
        let mut pod = defaulted_pod();
        pod["spec"]["containers"][0]["resources"] = json!({
            "limits": {"cpu": "500m", "memory": "lots", "example.com/gpu": "1"},
            "requests": {"cpu": "1", "example.com/gpu": "2", "bogus": "1"}
        });
        let errs = validate_pod_create(&pod);
        let r = "spec.containers[0].resources";
        assert!(
            find(&errs, &format!("{r}.limits[memory]"))
                .unwrap()
                .message
                .contains("quantities must match the regular expression")
        );
        let msgs: Vec<&str> =
            errs.iter().filter(|c| c.field == format!("{r}.requests")).map(|c| c.message.as_str()).collect();
        assert!(msgs.contains(&"Invalid value: \"1\": must be less than or equal to cpu limit of 500m"), "{msgs:?}");
        assert!(msgs.contains(&"Invalid value: \"2\": must be equal to example.com/gpu limit of 1"), "{msgs:?}");
        assert!(
            find(&errs, &format!("{r}.requests[bogus]"))
                .unwrap()
                .message
                .contains("must be a standard resource type or fully qualified")
        );

        let mut pod = defaulted_pod();
        pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "-1"}});
        let errs = validate_pod_create(&pod);
        assert_eq!(
            find(&errs, &format!("{r}.requests[cpu]")).unwrap().message,
            "Invalid value: \"-1\": must be greater than or equal to 0"
        );
    }

    #[test]
    fn volumes_and_mounts() {
        let mut pod = defaulted_pod();
        pod["spec"]["volumes"] = json!([
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": "both", "emptyDir": {}, "hostPath": {"path": "/x", "type": ""}},
            {"name": "cfg", "configMap": {"name": "c", "defaultMode": 1000}},
            {"name": "hp", "hostPath": {"path": "/a/../b", "type": "Weird"}},
            {"name": "none"}
        ]);
        pod["spec"]["containers"][0]["volumeMounts"] = json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "missing", "mountPath": "/data"}
        ]);
        let errs = validate_pod_create(&pod);
        assert_eq!(find(&errs, "spec.volumes[1].name").unwrap().message, "Duplicate value: \"data\"");
        assert_eq!(
            find(&errs, "spec.volumes[2].hostPath").unwrap().message,
            "Forbidden: may not specify more than 1 volume type"
        );
        assert!(find(&errs, "spec.volumes[3].configMap.defaultMode").unwrap().message.contains("0777"));
        assert!(find(&errs, "spec.volumes[4].hostPath.path").is_some());
        assert_eq!(find(&errs, "spec.volumes[4].hostPath.type").unwrap().reason, "FieldValueNotSupported");
        assert_eq!(find(&errs, "spec.volumes[5]").unwrap().message, "Required value: must specify a volume type");
        assert_eq!(find(&errs, "spec.containers[0].volumeMounts[1].name").unwrap().message, "Not found: \"missing\"");
        assert_eq!(
            find(&errs, "spec.containers[0].volumeMounts[1].mountPath").unwrap().message,
            "Invalid value: \"/data\": must be unique"
        );
    }

    #[test]
    fn probes_and_init_containers() {
        let mut pod = defaulted_pod();
        pod["spec"]["containers"][0]["livenessProbe"] = json!({
            "httpGet": {"path": "/", "port": 0, "scheme": "FTP"}, "tcpSocket": {"port": 80},
            "successThreshold": 2, "timeoutSeconds": -1, "periodSeconds": 10, "failureThreshold": 3
        });
        pod["spec"]["containers"][0]["readinessProbe"] = json!({});
        pod["spec"]["initContainers"] = json!([{
            "name": "nginx", "image": "busybox", "imagePullPolicy": "Always",
            "terminationMessagePolicy": "File", "readinessProbe": {"exec": {"command": ["true"]}}
        }]);
        let errs = validate_pod_create(&pod);
        let l = "spec.containers[0].livenessProbe";
        assert!(find(&errs, &format!("{l}.httpGet.port")).is_some());
        assert_eq!(find(&errs, &format!("{l}.httpGet.scheme")).unwrap().reason, "FieldValueNotSupported");
        assert_eq!(
            find(&errs, &format!("{l}.tcpSocket")).unwrap().message,
            "Forbidden: may not specify more than 1 handler type"
        );
        assert_eq!(find(&errs, &format!("{l}.successThreshold")).unwrap().message, "Invalid value: 2: must be 1");
        assert!(find(&errs, &format!("{l}.timeoutSeconds")).is_some());
        assert_eq!(
            find(&errs, "spec.containers[0].readinessProbe").unwrap().message,
            "Required value: must specify a handler type"
        );
        assert_eq!(find(&errs, "spec.initContainers[0].name").unwrap().reason, "FieldValueDuplicate");
        assert!(
            find(&errs, "spec.initContainers[0].readinessProbe")
                .unwrap()
                .message
                .contains("without restartPolicy=Always")
        );
    }

    #[test]
    fn pod_level_enums_and_fields() {
        let mut pod = defaulted_pod();
        pod["spec"]["restartPolicy"] = json!("Sometimes");
        pod["spec"]["dnsPolicy"] = json!("");
        pod["spec"]["nodeName"] = json!("Node_1");
        pod["spec"]["activeDeadlineSeconds"] = json!(0);
        pod["spec"]["tolerations"] =
            json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}]);
        pod["spec"].as_object_mut().unwrap().remove("terminationGracePeriodSeconds");
        let errs = validate_pod_create(&pod);
        assert_eq!(
            find(&errs, "spec.restartPolicy").unwrap().message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(find(&errs, "spec.dnsPolicy").unwrap().message, "Required value");
        assert!(find(&errs, "spec.nodeName").is_some());
        assert!(find(&errs, "spec.activeDeadlineSeconds").is_some());
        assert_eq!(find(&errs, "spec.terminationGracePeriodSeconds").unwrap().message, "Required value");
        assert!(find(&errs, "spec.tolerations[0].operator").unwrap().message.contains("operator must be Exists"));
        assert!(find(&errs, "spec.tolerations[1].operator").unwrap().message.contains("value must be empty"));
    }

    #[test]
    fn ephemeral_containers_are_refused_on_create() {
        let mut pod = defaulted_pod();
        pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}]);
        let errs = validate_pod_create(&pod);
        assert_eq!(find(&errs, "spec.ephemeralContainers").unwrap().message, "Forbidden: cannot be set on create");
    }

    fn stored(mut pod: Value) -> Value {
        pod["metadata"]["uid"] = json!("u1");
        pod["metadata"]["resourceVersion"] = json!("10");
        pod["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        pod
    }

    #[test]
    fn pod_updates_may_change_only_some_fields() {
        let old = stored(defaulted_pod());
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        new["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]);
        assert!(validate_pod_update(&new, &old).is_empty(), "{:?}", validate_pod_update(&new, &old));

        let mut bad = old.clone();
        bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
        let errs = validate_pod_update(&bad, &old);
        let c = find(&errs, "spec").unwrap();
        assert_eq!(c.reason, "FieldValueForbidden");
        assert!(
            c.message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`")
        );
        assert!(c.message.contains("containerPort"));

        let mut more = old.clone();
        let c = more["spec"]["containers"][0].clone();
        more["spec"]["containers"].as_array_mut().unwrap().push(c);
        let errs = validate_pod_update(&more, &old);
        assert_eq!(
            find(&errs, "spec.containers").unwrap().message,
            "Forbidden: pod updates may not add or remove containers"
        );

        let mut ads_old = old.clone();
        ads_old["spec"]["activeDeadlineSeconds"] = json!(50);
        let errs = validate_pod_update(&new, &ads_old);
        assert!(
            find(&errs, "spec.activeDeadlineSeconds").unwrap().message.contains("less than or equal to previous value")
        );
    }

    #[test]
    fn pod_status_updates() {
        let mut old = stored(defaulted_pod());
        old["spec"]["restartPolicy"] = json!("Never");
        old["status"] = json!({"containerStatuses": [{"name": "nginx", "state": {"terminated": {"exitCode": 0}}}], "qosClass": "BestEffort"});
        let mut new = old.clone();
        new["status"] = json!({
            "containerStatuses": [{"name": "nginx", "state": {"running": {}}}],
            "qosClass": "Burstable", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]
        });
        new["spec"]["nodeName"] = json!("n1");
        let errs = validate_pod_status_update(&new, &old);
        assert!(find(&errs, "status.containerStatuses[0].state").is_some());
        assert!(find(&errs, "status.qosClass").is_some());
        assert!(find(&errs, "status.nodeName").is_some());
        assert!(find(&errs, "status.podIPs").unwrap().message.contains("no more than one IP for each IP family"));
    }

    #[test]
    fn templates_forbid_ephemeral_containers_and_allow_zero_host_ports() {
        let pod = defaulted_pod();
        let mut tpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"].clone()});
        tpl["spec"]["hostNetwork"] = json!(true);
        assert!(validate_pod_template_spec(&tpl, &Path::new("spec.template")).is_empty());
        tpl["spec"]["ephemeralContainers"] =
            json!([{"name": "d", "image": "b", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}]);
        let errs = validate_pod_template_spec(&tpl, &Path::new("spec.template"));
        assert_eq!(
            find(&errs, "spec.template.spec.ephemeralContainers").unwrap().message,
            "Forbidden: ephemeral containers not allowed in pod template"
        );
    }

    #[test]
    fn bindings_name_a_node() {
        assert!(validate_binding(&json!({"target": {"kind": "Node", "name": "n1"}})).is_empty());
        assert_eq!(validate_binding(&json!({"target": {"kind": "Pod"}})).len(), 2);
    }
}
