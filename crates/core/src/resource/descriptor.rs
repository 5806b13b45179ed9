//! The resource descriptor, `resource.yaml` (Resource Descriptor Specification
//! 1.0; Docker RM guide §4.2), and its strict reading: unknown keys, unknown
//! names and inconsistent definitions are refused with the file, line and key.

use super::error::PackageError;
use super::names::{PropertyType, Transition, TransitionError, TypeName};
use super::properties::{find_cycle, is_property_name, parse_expression, property_refs, PropertyDefs};
use super::yaml::{self, Entry, Node, NodeKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest package file (descriptor, lifecycle or operations map) accepted.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Operations the resource manager itself implements (Docker RM guide §3.4).
/// A descriptor may declare them, with a `networkid` property; they have no script.
pub const BUILTIN_OPERATIONS: [&str; 2] = ["addNetwork", "removeNetwork"];

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "resource-manager-type",
    "cloud-target",
    "properties",
    "lifecycle",
    "operations",
    "metrics",
    "policies",
    "capabilities",
    "requirements",
];
const PROPERTY_KEYS: &[&str] = &["type", "description", "required", "default", "value", "read-only", "readOnly"];
const OPERATION_KEYS: &[&str] = &["description", "properties"];
const METRIC_KEYS: &[&str] = &["type", "publication-period"];
const POLICY_KEYS: &[&str] = &["metric", "type", "properties"];
const POLICY_PROPERTY_KEYS: &[&str] = &["value"];
const TYPED_KEYS: &[&str] = &["type"];

/// One property of a resource or an operation. Scalars of any kind become
/// text: `default: 5060` is `"5060"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDef {
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// An expression computing the value: text with `${property}`,
    /// `${instance.name}` and `${instance.id}` references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Set by the resource manager (or the scripts); never taken from a request.
    #[serde(default, rename = "read-only")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub properties: PropertyDefs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDef {
    /// E.g. `metric::integrity`, `metric::load`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds between publications.
    #[serde(default, rename = "publication-period", skip_serializing_if = "Option::is_none")]
    pub publication_period: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDef {
    /// The name of a metric of the same descriptor.
    pub metric: String,
    /// E.g. `policy::heal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `smoothing: {value: 3}` is `smoothing → "3"`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A resource descriptor. Keys on the wire are the descriptor's own.
/// Deserializing one (from berth's own store) does not check it: package
/// text goes through [`parse_descriptor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    pub name: TypeName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, rename = "resource-manager-type", skip_serializing_if = "Option::is_none")]
    pub resource_manager_type: Option<String>,
    #[serde(default, rename = "cloud-target", skip_serializing_if = "Option::is_none")]
    pub cloud_target: Option<String>,
    #[serde(default)]
    pub properties: PropertyDefs,
    /// The supported transitions in the descriptor's order, each once.
    #[serde(default)]
    pub lifecycle: Vec<Transition>,
    #[serde(default)]
    pub operations: BTreeMap<String, OperationDef>,
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricDef>,
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDef>,
    /// Capability name → its `type`.
    #[serde(default)]
    pub capabilities: BTreeMap<String, String>,
    /// Requirement name → its `type`.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.get(name)
    }

    /// Whether the resource property `name` is a secret (`type: password`).
    pub fn is_secret(&self, name: &str) -> bool {
        self.properties.is_secret(name)
    }

    pub fn supports(&self, transition: Transition) -> bool {
        self.lifecycle.contains(&transition)
    }

    pub fn operation(&self, name: &str) -> Option<&OperationDef> {
        self.operations.get(name)
    }
}

impl OperationDef {
    /// Whether the operation property `name` is a secret (`type: password`).
    pub fn is_secret(&self, name: &str) -> bool {
        self.properties.is_secret(name)
    }
}

/// Reads and checks a descriptor. `file` names it in errors. Refused: YAML
/// that is not one mapping, duplicate keys, anchors and aliases, unknown keys
/// at any level, a malformed type name, unknown or repeated transitions,
/// unknown property types, and the consistency rules: a read-only property is
/// never required; `value` references name declared properties (of the same
/// resource or operation) and form no cycle; each `docker_network[N]` has a
/// read-only `docker_ipaddr[N]` and the other way round; a `docker_volume[N]`
/// default looks like `volume:/path`; the built-in operations take a
/// `networkid`; a policy's metric is declared; a `publication-period` is a
/// positive whole number.
pub fn parse_descriptor(file: &str, text: &str) -> Result<Descriptor, PackageError> {
    parse_with_lines(file, text).map(|parsed| parsed.descriptor)
}

/// The line of each key path of a file (`lifecycle`, `lifecycle[1]`,
/// `operations.addAsterisk`), for errors found after reading it.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    pub fn line(&self, path: &str) -> Option<usize> {
        self.0.get(path).copied()
    }

    fn collect(node: &Node, path: &str, lines: &mut BTreeMap<String, usize>) {
        match &node.kind {
            NodeKind::Scalar(_) => {}
            NodeKind::Sequence(items) => {
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    lines.insert(item_path.clone(), item.line);
                    Self::collect(item, &item_path, lines);
                }
            }
            NodeKind::Mapping(entries) => {
                for entry in entries {
                    let entry_path = join(path, &entry.key);
                    lines.insert(entry_path.clone(), entry.key_line);
                    Self::collect(&entry.value, &entry_path, lines);
                }
            }
        }
    }
}

pub(crate) struct ParsedDescriptor {
    pub descriptor: Descriptor,
    pub lines: KeyLines,
}

pub(crate) fn parse_with_lines(file: &str, text: &str) -> Result<ParsedDescriptor, PackageError> {
    let cx = Cx { file };
    let root = cx.root(text, "a descriptor")?;
    let mut lines = BTreeMap::new();
    KeyLines::collect(&root, "", &mut lines);
    let lines = KeyLines(lines);
    let entries = cx.mapping(&root, "")?;
    cx.check_keys(entries, "", TOP_KEYS)?;

    let name_entry =
        find(entries, "name").ok_or_else(|| cx.err(Some(1), "name", "missing: resource::<name>::<version>"))?;
    let name_text = cx.required_text(name_entry, "name")?;
    let name = TypeName::parse(&name_text).map_err(|e| cx.err(Some(name_entry.value.line), "name", e.to_string()))?;

    let descriptor = Descriptor {
        name,
        description: cx.optional_text(entries, "", "description")?,
        resource_manager_type: cx.optional_text(entries, "", "resource-manager-type")?,
        cloud_target: cx.optional_text(entries, "", "cloud-target")?,
        properties: match find(entries, "properties") {
            Some(entry) => cx.property_defs(&entry.value, "properties")?,
            None => PropertyDefs::default(),
        },
        lifecycle: match find(entries, "lifecycle") {
            Some(entry) => cx.lifecycle(&entry.value)?,
            None => Vec::new(),
        },
        operations: cx.named_map(entries, "operations", |cx, entry, path| cx.operation(entry, path))?,
        metrics: cx.named_map(entries, "metrics", |cx, entry, path| cx.metric(entry, path))?,
        policies: cx.named_map(entries, "policies", |cx, entry, path| cx.policy(entry, path))?,
        capabilities: cx.named_map(entries, "capabilities", |cx, entry, path| cx.typed(entry, path))?,
        requirements: cx.named_map(entries, "requirements", |cx, entry, path| cx.typed(entry, path))?,
    };
    check_descriptor(&cx, &descriptor, &lines)?;
    Ok(ParsedDescriptor { descriptor, lines })
}

/// The rules that relate parts of a descriptor to each other.
fn check_descriptor(cx: &Cx<'_>, d: &Descriptor, lines: &KeyLines) -> Result<(), PackageError> {
    check_property_defs(cx, &d.properties, "properties", lines)?;
    check_docker_properties(cx, &d.properties, lines)?;
    for (op_name, op) in &d.operations {
        let path = format!("operations.{op_name}");
        check_property_defs(cx, &op.properties, &join(&path, "properties"), lines)?;
        if BUILTIN_OPERATIONS.contains(&op_name.as_str()) && !op.properties.contains("networkid") {
            return Err(cx.err(
                lines.line(&path),
                &path,
                format!("{op_name} is a built-in operation and takes a networkid property"),
            ));
        }
    }
    for (policy_name, policy) in &d.policies {
        if !d.metrics.contains_key(&policy.metric) {
            let path = format!("policies.{policy_name}.metric");
            return Err(cx.err(
                lines.line(&path),
                &path,
                format!("metric {:?} is not declared under metrics", policy.metric),
            ));
        }
    }
    Ok(())
}

/// Read-only never required; `value` references declared and acyclic.
fn check_property_defs(cx: &Cx<'_>, defs: &PropertyDefs, prefix: &str, lines: &KeyLines) -> Result<(), PackageError> {
    let mut graph: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, def) in defs.iter() {
        let path = join(prefix, name);
        if def.read_only && def.required {
            let key = join(&path, "required");
            return Err(cx.err(
                lines.line(&key),
                &key,
                format!("{name} is read-only and so cannot be required: the resource manager sets it"),
            ));
        }
        if let Some(expression) = &def.value {
            let key = join(&path, "value");
            let fail = |message: String| cx.err(lines.line(&key), &key, message);
            let pieces = parse_expression(expression).map_err(fail)?;
            for reference in property_refs(&pieces) {
                if !defs.contains(reference) {
                    return Err(fail(format!("${{{reference}}} does not name a declared property")));
                }
            }
            let refs = property_refs(&pieces).filter(|r| defs.get(r).is_some_and(|d| d.value.is_some()));
            graph.insert(name, refs.map(str::to_owned).collect());
        }
    }
    let order: Vec<&str> = defs.names().filter(|n| graph.contains_key(n)).collect();
    if let Some(cycle) = find_cycle(&order, |n| graph.get(n).cloned().unwrap_or_default()) {
        let key = join(&join(prefix, &cycle[0]), "value");
        return Err(cx.err(lines.line(&key), &key, format!("value references form a cycle: {}", cycle.join(" -> "))));
    }
    Ok(())
}

/// Docker RM guide §4.2.1: each `docker_network[N]` comes with a read-only
/// `docker_ipaddr[N]` the resource manager fills in; volumes are `volume:/path`.
fn check_docker_properties(cx: &Cx<'_>, defs: &PropertyDefs, lines: &KeyLines) -> Result<(), PackageError> {
    for (name, def) in defs.iter() {
        let path = join("properties", name);
        let fail = |path: &str, message: String| cx.err(lines.line(path), path, message);
        if let Some(n) = numbered(name, "docker_network") {
            if !defs.contains(&format!("docker_ipaddr{n}")) {
                return Err(fail(
                    &path,
                    format!("{name} needs a read-only docker_ipaddr{n} property for the address the container gets"),
                ));
            }
        }
        if let Some(n) = numbered(name, "docker_ipaddr") {
            if !defs.contains(&format!("docker_network{n}")) {
                return Err(fail(&path, format!("{name} has no docker_network{n} property to go with it")));
            }
            if !def.read_only {
                return Err(fail(&path, format!("{name} must be read-only: the resource manager sets it")));
            }
        }
        if let (Some(_), Some(default)) = (numbered(name, "docker_volume"), &def.default) {
            if volume_binding(default).is_none() {
                let key = join(&path, "default");
                return Err(fail(
                    &key,
                    format!("{name} default {default:?} must look like <volume>:/absolute/path/in/the/container"),
                ));
            }
        }
    }
    Ok(())
}

/// `docker_network` → `Some("")`, `docker_network2` → `Some("2")`.
fn numbered<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix).filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits a `docker_volume` value `volume:/path` into the volume name and the
/// absolute path inside the container; `None` unless it has that shape (a
/// volume name of letters, digits, `_`, `.`, `-` starting with a letter or
/// digit; a path without `..`, `:` or NUL).
pub fn volume_binding(value: &str) -> Option<(&str, &str)> {
    let (volume, path) = value.split_once(':')?;
    let mut chars = volume.chars();
    let good_volume = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (good_volume && !path.contains(':') && check_container_path(path).is_ok()).then_some((volume, path))
}

/// A path inside a container: absolute, without a `..` component or NUL.
pub(crate) fn check_container_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must be an absolute path inside the container (start with /)"));
    }
    if path.contains('\0') {
        return Err(format!("{path:?} contains a NUL character"));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{path:?} must not contain a .. component"));
    }
    Ok(())
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn find<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Entry> {
    entries.iter().find(|e| e.key == key)
}

/// Reading one file: builds errors that name it.
pub(crate) struct Cx<'a> {
    pub file: &'a str,
}

impl Cx<'_> {
    pub fn err(&self, line: Option<usize>, key: &str, message: impl Into<String>) -> PackageError {
        PackageError::new(self.file, line, key, message)
    }

    /// The file's single document, which must be a mapping.
    pub fn root(&self, text: &str, what: &str) -> Result<Node, PackageError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(self.err(None, "", format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let root = yaml::parse(text).map_err(|e| self.err(e.line, &e.path, e.message))?;
        let root = root.ok_or_else(|| self.err(None, "", format!("the file is empty; {what} is expected")))?;
        if !matches!(root.kind, NodeKind::Mapping(_)) {
            return Err(self.err(
                Some(root.line),
                "",
                format!("expected {what} (a mapping), found {}", root.describe()),
            ));
        }
        Ok(root)
    }

    /// The entries of a mapping; null counts as an empty mapping.
    pub fn mapping<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [Entry], PackageError> {
        match &node.kind {
            NodeKind::Mapping(entries) => Ok(entries),
            _ if node.is_null() => Ok(&[]),
            _ => Err(self.err(Some(node.line), path, format!("expected a mapping, found {}", node.describe()))),
        }
    }

    pub fn check_keys(&self, entries: &[Entry], path: &str, allowed: &[&str]) -> Result<(), PackageError> {
        match entries.iter().find(|e| !allowed.contains(&e.key.as_str())) {
            Some(e) => Err(self.err(
                Some(e.key_line),
                &join(path, &e.key),
                format!("unknown key {:?}; allowed are {}", e.key, allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// A single value as text; `None` for null.
    pub fn text(&self, node: &Node, path: &str) -> Result<Option<String>, PackageError> {
        match &node.kind {
            NodeKind::Scalar(s) if s.is_null() => Ok(None),
            NodeKind::Scalar(s) => Ok(Some(s.text.clone())),
            _ => Err(self.err(Some(node.line), path, format!("expected a single value, found {}", node.describe()))),
        }
    }

    pub fn required_text(&self, entry: &Entry, path: &str) -> Result<String, PackageError> {
        self.text(&entry.value, path)?.ok_or_else(|| self.err(Some(entry.key_line), path, "a value is missing"))
    }

    fn optional_text(&self, entries: &[Entry], path: &str, key: &str) -> Result<Option<String>, PackageError> {
        match find(entries, key) {
            Some(entry) => self.text(&entry.value, &join(path, key)),
            None => Ok(None),
        }
    }

    /// A mandatory key of a mapping, as text.
    fn field(&self, entries: &[Entry], owner: &Entry, path: &str, key: &str) -> Result<String, PackageError> {
        let key_path = join(path, key);
        match find(entries, key) {
            Some(entry) => self.required_text(entry, &key_path),
            None => Err(self.err(Some(owner.key_line), &key_path, format!("{key} is missing"))),
        }
    }

    fn boolean(&self, node: &Node, path: &str) -> Result<bool, PackageError> {
        match &node.kind {
            NodeKind::Scalar(s) => s
                .as_bool()
                .ok_or_else(|| self.err(Some(node.line), path, format!("expected true or false, found {:?}", s.text))),
            _ => Err(self.err(Some(node.line), path, format!("expected true or false, found {}", node.describe()))),
        }
    }

    /// A mapping of names to definitions read by `each`.
    fn named_map<T>(
        &self,
        entries: &[Entry],
        key: &str,
        each: impl Fn(&Self, &Entry, &str) -> Result<T, PackageError>,
    ) -> Result<BTreeMap<String, T>, PackageError> {
        let mut out = BTreeMap::new();
        if let Some(entry) = find(entries, key) {
            for item in self.mapping(&entry.value, key)? {
                let path = join(key, &item.key);
                out.insert(item.key.clone(), each(self, item, &path)?);
            }
        }
        Ok(out)
    }

    fn property_defs(&self, node: &Node, path: &str) -> Result<PropertyDefs, PackageError> {
        let mut defs = PropertyDefs::default();
        for entry in self.mapping(node, path)? {
            let prop_path = join(path, &entry.key);
            if !is_property_name(&entry.key) {
                return Err(self.err(
                    Some(entry.key_line),
                    &prop_path,
                    format!(
                        "property name {:?} must start with a letter or '_' and hold only letters, digits, '_', '-' and '.'",
                        entry.key
                    ),
                ));
            }
            if entry.key.starts_with("instance.") {
                return Err(self.err(
                    Some(entry.key_line),
                    &prop_path,
                    format!("property name {:?} is reserved: ${{instance.…}} names the instance", entry.key),
                ));
            }
            defs.insert(entry.key.clone(), self.property(entry, &prop_path)?);
        }
        Ok(defs)
    }

    fn property(&self, owner: &Entry, path: &str) -> Result<PropertyDef, PackageError> {
        let entries = self.mapping(&owner.value, path)?;
        self.check_keys(entries, path, PROPERTY_KEYS)?;
        let kind_text = self.field(entries, owner, path, "type")?;
        let kind = PropertyType::parse(&kind_text).map_err(|e| {
            let line = find(entries, "type").map(|e| e.value.line);
            self.err(line, &join(path, "type"), e.to_string())
        })?;
        let flag = |key: &str| -> Result<Option<(bool, &Entry)>, PackageError> {
            match find(entries, key) {
                Some(entry) => Ok(Some((self.boolean(&entry.value, &join(path, key))?, entry))),
                None => Ok(None),
            }
        };
        let read_only = match (flag("read-only")?, flag("readOnly")?) {
            (Some(_), Some((_, second))) => {
                return Err(self.err(
                    Some(second.key_line),
                    &join(path, "readOnly"),
                    "read-only is given twice, as read-only and as readOnly",
                ))
            }
            (Some((value, _)), None) | (None, Some((value, _))) => value,
            (None, None) => false,
        };
        Ok(PropertyDef {
            kind,
            description: self.optional_text(entries, path, "description")?,
            required: flag("required")?.is_some_and(|(value, _)| value),
            default: self.optional_text(entries, path, "default")?,
            value: self.optional_text(entries, path, "value")?,
            read_only,
        })
    }

    fn lifecycle(&self, node: &Node) -> Result<Vec<Transition>, PackageError> {
        let items: &[Node] = match &node.kind {
            NodeKind::Sequence(items) => items,
            _ if node.is_null() => &[],
            _ => {
                return Err(self.err(
                    Some(node.line),
                    "lifecycle",
                    format!("expected a list of transitions, found {}", node.describe()),
                ))
            }
        };
        let mut out: Vec<(Transition, usize)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("lifecycle[{index}]");
            let text = self.text(item, &path)?.unwrap_or_default();
            let transition = Transition::parse(&text)
                .ok()
                .filter(|t| t.as_str() == text)
                .ok_or_else(|| self.err(Some(item.line), &path, TransitionError { text: text.clone() }.to_string()))?;
            if let Some((_, first)) = out.iter().find(|(t, _)| *t == transition) {
                return Err(self.err(
                    Some(item.line),
                    &path,
                    format!("{transition} is listed twice (first at line {first})"),
                ));
            }
            out.push((transition, item.line));
        }
        Ok(out.into_iter().map(|(t, _)| t).collect())
    }

    fn operation(&self, owner: &Entry, path: &str) -> Result<OperationDef, PackageError> {
        if !is_property_name(&owner.key) {
            return Err(self.err(
                Some(owner.key_line),
                path,
                format!(
                    "operation name {:?} must start with a letter or '_' and hold only letters, digits, '_', '-' and '.'",
                    owner.key
                ),
            ));
        }
        let entries = self.mapping(&owner.value, path)?;
        self.check_keys(entries, path, OPERATION_KEYS)?;
        Ok(OperationDef {
            description: self.optional_text(entries, path, "description")?,
            properties: match find(entries, "properties") {
                Some(entry) => self.property_defs(&entry.value, &join(path, "properties"))?,
                None => PropertyDefs::default(),
            },
        })
    }

    fn metric(&self, owner: &Entry, path: &str) -> Result<MetricDef, PackageError> {
        let entries = self.mapping(&owner.value, path)?;
        self.check_keys(entries, path, METRIC_KEYS)?;
        let publication_period = match find(entries, "publication-period") {
            None => None,
            Some(entry) => {
                let key = join(path, "publication-period");
                let text = self.required_text(entry, &key)?;
                let period = text.trim().parse::<u64>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    self.err(
                        Some(entry.value.line),
                        &key,
                        format!("publication-period must be a positive whole number of seconds, found {text:?}"),
                    )
                })?;
                Some(period)
            }
        };
        Ok(MetricDef { kind: self.field(entries, owner, path, "type")?, publication_period })
    }

    fn policy(&self, owner: &Entry, path: &str) -> Result<PolicyDef, PackageError> {
        let entries = self.mapping(&owner.value, path)?;
        self.check_keys(entries, path, POLICY_KEYS)?;
        let mut properties = BTreeMap::new();
        if let Some(props) = find(entries, "properties") {
            let props_path = join(path, "properties");
            for prop in self.mapping(&props.value, &props_path)? {
                let prop_path = join(&props_path, &prop.key);
                let fields = self.mapping(&prop.value, &prop_path)?;
                self.check_keys(fields, &prop_path, POLICY_PROPERTY_KEYS)?;
                properties.insert(prop.key.clone(), self.field(fields, prop, &prop_path, "value")?);
            }
        }
        Ok(PolicyDef {
            metric: self.field(entries, owner, path, "metric")?,
            kind: self.field(entries, owner, path, "type")?,
            properties,
        })
    }

    /// A capability or requirement: `{type: <string>}`.
    fn typed(&self, owner: &Entry, path: &str) -> Result<String, PackageError> {
        let entries = self.mapping(&owner.value, path)?;
        self.check_keys(entries, path, TYPED_KEYS)?;
        self.field(entries, owner, path, "type")
    }
}
