//! A resource package (Docker RM guide §4.1): the descriptor, the lifecycle
//! map `lifecycle/lifecycle.yaml` and the operations map
//! `operations/operations.yaml`, checked against each other.

use super::descriptor::{
    check_container_path, find, join, parse_with_lines, Cx, Descriptor, ParsedDescriptor, BUILTIN_OPERATIONS,
};
use super::error::PackageError;
use super::names::Transition;
use super::properties::is_property_name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strum::IntoEnumIterator;

/// The files of a package, relative to its directory, as named in errors.
pub const RESOURCE_FILE: &str = "resource.yaml";
pub const LIFECYCLE_FILE: &str = "lifecycle/lifecycle.yaml";
pub const OPERATIONS_FILE: &str = "operations/operations.yaml";

/// A package's text files as read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageFiles {
    /// The package directory's name; the descriptor must be
    /// `resource::<dir_name>::<version>` (the Docker RM derives the type from it).
    pub dir_name: String,
    pub resource_yaml: String,
    pub lifecycle_yaml: Option<String>,
    pub operations_yaml: Option<String>,
}

/// A checked package: its descriptor and the script (a path inside the
/// container) of each transition and operation it supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub descriptor: Descriptor,
    pub lifecycle_scripts: BTreeMap<Transition, String>,
    pub operation_scripts: BTreeMap<String, String>,
}

impl Package {
    /// A resource type the resource manager implements itself (a docker
    /// network or volume): no scripts, so the mapping rules of
    /// [`validate_package`] do not apply.
    pub fn builtin(descriptor: Descriptor) -> Package {
        Package { descriptor, lifecycle_scripts: BTreeMap::new(), operation_scripts: BTreeMap::new() }
    }

    pub fn lifecycle_script(&self, transition: Transition) -> Option<&str> {
        self.lifecycle_scripts.get(&transition).map(String::as_str)
    }

    pub fn operation_script(&self, operation: &str) -> Option<&str> {
        self.operation_scripts.get(operation).map(String::as_str)
    }
}

/// Whether `operation` is one the resource manager implements itself.
pub fn is_builtin_operation(operation: &str) -> bool {
    BUILTIN_OPERATIONS.contains(&operation)
}

/// Reads `lifecycle/lifecycle.yaml`:
/// `{version: 1, lifecycle: {install: /opt/lifecycle/install.sh, ...}}`.
pub fn parse_lifecycle_map(file: &str, text: &str) -> Result<BTreeMap<Transition, String>, PackageError> {
    Ok(read_lifecycle(file, text)?.1)
}

/// The lifecycle map and the [`ScriptMap`] it was read from (for lines).
fn read_lifecycle(file: &str, text: &str) -> Result<(ScriptMap, BTreeMap<Transition, String>), PackageError> {
    let map = parse_script_map(file, text, "lifecycle")?;
    let mut out = BTreeMap::new();
    for (key, path, line) in &map.entries {
        let transition = Transition::from_lifecycle_key(key).ok_or_else(|| {
            let known: Vec<&str> = Transition::iter().map(Transition::lifecycle_key).collect();
            PackageError::new(
                file,
                Some(*line),
                &join("lifecycle", key),
                format!("unknown transition {key:?}; known are {}", known.join(", ")),
            )
        })?;
        out.insert(transition, path.clone());
    }
    Ok((map, out))
}

/// Reads `operations/operations.yaml`: `{version: 1, operations: {op: /path}}`.
pub fn parse_operations_map(file: &str, text: &str) -> Result<BTreeMap<String, String>, PackageError> {
    Ok(parse_script_map(file, text, "operations")?.entries.into_iter().map(|(key, path, _)| (key, path)).collect())
}

struct ScriptMap {
    /// Line of the `lifecycle:` / `operations:` key.
    section_line: usize,
    /// Key, script path, line of the key; in file order.
    entries: Vec<(String, String, usize)>,
}

fn parse_script_map(file: &str, text: &str, section: &str) -> Result<ScriptMap, PackageError> {
    let cx = Cx { file };
    let root = cx.root(text, &format!("a mapping with version: 1 and {section}:"))?;
    let entries = cx.mapping(&root, "")?;
    cx.check_keys(entries, "", &["version", section])?;
    if let Some(version) = find(entries, "version") {
        let text = cx.text(&version.value, "version")?;
        if text.as_deref() != Some("1") {
            return Err(cx.err(
                Some(version.value.line),
                "version",
                format!("version must be 1, found {}", text.map_or("nothing".to_owned(), |t| format!("{t:?}"))),
            ));
        }
    }
    let section_entry =
        find(entries, section).ok_or_else(|| cx.err(Some(root.line), section, format!("{section} is missing")))?;
    let mut out = Vec::new();
    for entry in cx.mapping(&section_entry.value, section)? {
        let path = join(section, &entry.key);
        if !is_property_name(&entry.key) {
            return Err(cx.err(Some(entry.key_line), &path, format!("{:?} is not a valid name", entry.key)));
        }
        let script = cx.required_text(entry, &path)?;
        check_container_path(&script)
            .map_err(|reason| cx.err(Some(entry.value.line), &path, format!("script path {reason}")))?;
        out.push((entry.key.clone(), script, entry.key_line));
    }
    Ok(ScriptMap { section_line: section_entry.key_line, entries: out })
}

/// Reads a whole package and checks its parts against each other: the
/// descriptor as [`super::parse_descriptor`] does; its name is
/// `resource::<dir_name>::…`; Install and Uninstall are in its lifecycle;
/// every listed transition has a script and every script a listed
/// transition; every declared operation has a script and every script a
/// declared operation, except the built-in `addNetwork`/`removeNetwork`,
/// which never have one.
pub fn validate_package(files: &PackageFiles) -> Result<Package, PackageError> {
    let ParsedDescriptor { descriptor, lines } = parse_with_lines(RESOURCE_FILE, &files.resource_yaml)?;
    let resource_err = |path: &str, message: String| PackageError::new(RESOURCE_FILE, lines.line(path), path, message);

    if descriptor.name.name() != files.dir_name {
        return Err(resource_err(
            "name",
            format!(
                "the type {} does not match the package directory {:?}; it must be resource::{}::<version>",
                descriptor.name, files.dir_name, files.dir_name
            ),
        ));
    }
    for mandatory in [Transition::Install, Transition::Uninstall] {
        if !descriptor.supports(mandatory) {
            return Err(resource_err(
                "lifecycle",
                format!("the lifecycle must list {mandatory} (and Install and Uninstall both)"),
            ));
        }
    }

    // Transitions ↔ lifecycle/lifecycle.yaml.
    let listed = descriptor.lifecycle.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    let lifecycle_text = files.lifecycle_yaml.as_deref().ok_or_else(|| {
        PackageError::new(
            LIFECYCLE_FILE,
            None,
            "",
            format!("the file is missing; resource.yaml lists the transitions {listed}, each needs a script"),
        )
    })?;
    let (lifecycle, lifecycle_scripts) = read_lifecycle(LIFECYCLE_FILE, lifecycle_text)?;
    for (index, transition) in descriptor.lifecycle.iter().enumerate() {
        if !lifecycle_scripts.contains_key(transition) {
            return Err(PackageError::new(
                LIFECYCLE_FILE,
                Some(lifecycle.section_line),
                "lifecycle",
                format!(
                    "no script for {transition} ({}), which resource.yaml lists{}",
                    transition.lifecycle_key(),
                    at_line(lines.line(&format!("lifecycle[{index}]")))
                ),
            ));
        }
    }
    for (key, _, line) in &lifecycle.entries {
        if let Some(transition) = Transition::from_lifecycle_key(key).filter(|t| !descriptor.supports(*t)) {
            return Err(PackageError::new(
                LIFECYCLE_FILE,
                Some(*line),
                &join("lifecycle", key),
                format!("a script for {transition}, which resource.yaml does not list in its lifecycle"),
            ));
        }
    }

    // Operations ↔ operations/operations.yaml.
    let scripted: Vec<&str> =
        descriptor.operations.keys().map(String::as_str).filter(|op| !is_builtin_operation(op)).collect();
    let operation_scripts = match files.operations_yaml.as_deref() {
        None if scripted.is_empty() => BTreeMap::new(),
        None => {
            return Err(PackageError::new(
                OPERATIONS_FILE,
                None,
                "",
                format!(
                    "the file is missing; resource.yaml declares the operations {}, each needs a script",
                    scripted.join(", ")
                ),
            ))
        }
        Some(text) => {
            let operations = parse_script_map(OPERATIONS_FILE, text, "operations")?;
            for (key, _, line) in &operations.entries {
                let path = join("operations", key);
                if is_builtin_operation(key) {
                    return Err(PackageError::new(
                        OPERATIONS_FILE,
                        Some(*line),
                        &path,
                        format!("{key} is built into the resource manager and takes no script"),
                    ));
                }
                if !descriptor.operations.contains_key(key) {
                    return Err(PackageError::new(
                        OPERATIONS_FILE,
                        Some(*line),
                        &path,
                        format!("a script for the operation {key}, which resource.yaml does not declare"),
                    ));
                }
            }
            let mapped: BTreeMap<String, String> =
                operations.entries.into_iter().map(|(key, script, _)| (key, script)).collect();
            if let Some(missing) = scripted.iter().find(|op| !mapped.contains_key(**op)) {
                return Err(PackageError::new(
                    OPERATIONS_FILE,
                    Some(operations.section_line),
                    "operations",
                    format!(
                        "no script for the operation {missing}, which resource.yaml declares{}",
                        at_line(lines.line(&join("operations", missing)))
                    ),
                ));
            }
            mapped
        }
    };
    Ok(Package { descriptor, lifecycle_scripts, operation_scripts })
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}
