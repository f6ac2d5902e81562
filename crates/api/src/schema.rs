//! The structural schemas of the served kinds, compacted from the upstream OpenAPI v3
//! documents at build time (see `build.rs`). Walked by the unknown-field check, the
//! strategic merge patch engine and server-side apply.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// What a schema node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    /// `IntOrString`: either JSON type.
    IntOrString,
    /// `Quantity`: a string or a number on input.
    Quantity,
    /// Anything goes (RawExtension, FieldsV1, preserve-unknown-fields).
    Any,
    /// A reference to a named definition; see [`Schemas::resolve`].
    Ref,
}

/// One node of a schema. The list and patch extensions sit on the node that names the
/// field, which may be a [`Type::Ref`] to the structure.
#[derive(Debug, Deserialize)]
pub struct Node {
    #[serde(rename = "t")]
    pub ty: Type,
    #[serde(rename = "p", default)]
    pub properties: BTreeMap<String, Node>,
    /// The schema of map values (`additionalProperties`).
    #[serde(rename = "a")]
    pub additional: Option<Box<Node>>,
    /// The schema of array items.
    #[serde(rename = "i")]
    pub items: Option<Box<Node>>,
    #[serde(rename = "r")]
    pub reference: Option<String>,
    #[serde(rename = "req", default)]
    pub required: Vec<String>,
    /// `x-kubernetes-patch-strategy`, e.g. `merge`, `retainKeys`, `merge,retainKeys`, `replace`.
    #[serde(rename = "ps")]
    pub patch_strategy: Option<String>,
    /// `x-kubernetes-patch-merge-key`.
    #[serde(rename = "mk")]
    pub merge_key: Option<String>,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    #[serde(rename = "lt")]
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    #[serde(rename = "lk", default)]
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: `atomic` or `granular`.
    #[serde(rename = "mt")]
    pub map_type: Option<String>,
    #[serde(rename = "gvk", default)]
    pub gvk: Vec<(String, String, String)>,
}

impl Node {
    /// Whether the patch strategy names `strategy` (it may be a comma-separated list).
    pub fn has_patch_strategy(&self, strategy: &str) -> bool {
        self.patch_strategy.as_deref().is_some_and(|s| s.split(',').any(|p| p == strategy))
    }
}

/// All definitions, by their upstream name (e.g. `io.k8s.api.core.v1.Pod`).
#[derive(Debug)]
pub struct Schemas {
    defs: HashMap<String, Node>,
    by_gvk: HashMap<(String, String, String), String>,
}

static COMPACT: &str = include_str!(concat!(env!("OUT_DIR"), "/schemas.json"));

impl Schemas {
    /// The schemas built into the binary, parsed once on first use.
    pub fn get() -> &'static Schemas {
        static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
        SCHEMAS.get_or_init(|| {
            let defs: HashMap<String, Node> = serde_json::from_str(COMPACT).expect("schemas built by build.rs parse");
            let mut by_gvk = HashMap::new();
            for (name, node) in &defs {
                for gvk in &node.gvk {
                    by_gvk.entry(gvk.clone()).or_insert_with(|| name.clone());
                }
            }
            Schemas { defs, by_gvk }
        })
    }

    pub fn definition(&self, name: &str) -> Option<&Node> {
        self.defs.get(name)
    }

    /// The definition of a kind, e.g. `("apps", "v1", "Deployment")`.
    pub fn for_kind(&self, group: &str, version: &str, kind: &str) -> Option<&Node> {
        let name = self.by_gvk.get(&(group.to_string(), version.to_string(), kind.to_string()))?;
        self.defs.get(name)
    }

    /// Follows references until a structural node. Unknown references resolve to `None`.
    pub fn resolve<'a>(&'a self, mut node: &'a Node) -> Option<&'a Node> {
        for _ in 0..16 {
            if node.ty != Type::Ref {
                return Some(node);
            }
            node = self.defs.get(node.reference.as_deref()?)?;
        }
        None
    }

    /// The schema of a field of an object node, resolved to its structure, together
    /// with the node that names the field (which carries the patch/list extensions).
    pub fn field<'a>(&'a self, object: &'a Node, name: &str) -> Option<Field<'a>> {
        let object = self.resolve(object)?;
        let named = object.properties.get(name).or(object.additional.as_deref())?;
        Some(Field { named, shape: self.resolve(named)? })
    }

    /// The item schema of an array node, resolved.
    pub fn items<'a>(&'a self, array: &'a Node) -> Option<&'a Node> {
        let array = self.resolve(array)?;
        self.resolve(array.items.as_deref()?)
    }
}

/// A field as seen from its parent: `named` carries the extensions, `shape` the structure.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub named: &'a Node,
    pub shape: &'a Node,
}

impl Field<'_> {
    /// The patch merge key of a list field, if it merges by key.
    pub fn merge_key(&self) -> Option<&str> {
        self.named.merge_key.as_deref().or(self.shape.merge_key.as_deref())
    }
    pub fn patch_strategy(&self, strategy: &str) -> bool {
        self.named.has_patch_strategy(strategy) || self.shape.has_patch_strategy(strategy)
    }
    pub fn list_type(&self) -> Option<&str> {
        self.named.list_type.as_deref().or(self.shape.list_type.as_deref())
    }
    pub fn list_map_keys(&self) -> &[String] {
        if self.named.list_map_keys.is_empty() { &self.shape.list_map_keys } else { &self.named.list_map_keys }
    }
    pub fn map_type(&self) -> Option<&str> {
        self.named.map_type.as_deref().or(self.shape.map_type.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name() {
        let s = Schemas::get();
        let spec = s.definition("io.k8s.api.core.v1.PodSpec").unwrap();
        let containers = s.field(spec, "containers").unwrap();
        assert_eq!(containers.merge_key(), Some("name"));
        assert!(containers.patch_strategy("merge"));
        assert_eq!(containers.list_type(), Some("map"));
        let container = s.items(containers.shape).unwrap();
        assert!(container.properties.contains_key("image"));
    }

    #[test]
    fn kinds_are_found_by_group_version_kind() {
        let s = Schemas::get();
        let deploy = s.for_kind("apps", "v1", "Deployment").unwrap();
        let strategy = s.field(s.field(deploy, "spec").unwrap().shape, "strategy").unwrap();
        assert!(strategy.patch_strategy("retainKeys"));
        let labels = s.field(s.field(deploy, "metadata").unwrap().shape, "labels").unwrap();
        assert_eq!(labels.shape.ty, Type::Object);
        assert_eq!(s.field(labels.shape, "anything").unwrap().shape.ty, Type::String);
        assert!(s.for_kind("", "v1", "Namespace").is_some());
        assert!(s.for_kind("autoscaling", "v1", "Scale").is_some());
    }
}
