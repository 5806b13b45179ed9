//! Property definitions and how a transition's or an operation's property
//! values are worked out from the request, the instance and the descriptor.

use super::descriptor::PropertyDef;
use super::names::PropertyType;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a secret's value is shown as.
pub const SECRET_MASK: &str = "********";

/// Most text the `value` expressions of one resolution may produce together:
/// expressions that repeat each other (`${a}${a}`) would grow exponentially.
pub const MAX_COMPUTED_BYTES: usize = 1 << 20;

/// Longest property or operation name accepted.
pub const MAX_PROPERTY_NAME_LEN: usize = 128;

/// Property definitions in the descriptor's order (the order scripts and
/// people see them in), with lookup by name. Names are unique. On the wire it
/// is a JSON object whose members keep that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyDefs {
    order: Vec<(String, PropertyDef)>,
    /// Name → position in `order`, so lookups stay cheap for large descriptors.
    index: BTreeMap<String, usize>,
}

impl PropertyDefs {
    pub fn get(&self, name: &str) -> Option<&PropertyDef> {
        self.index.get(name).map(|i| &self.order[*i].1)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropertyDef)> {
        self.order.iter().map(|(n, d)| (n.as_str(), d))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds a definition at the end, or replaces the one of the same name in place.
    pub fn insert(&mut self, name: String, def: PropertyDef) {
        match self.index.get(&name) {
            Some(i) => self.order[*i].1 = def,
            None => {
                self.index.insert(name.clone(), self.order.len());
                self.order.push((name, def));
            }
        }
    }

    /// Whether the property is a secret (`type: password`).
    pub fn is_secret(&self, name: &str) -> bool {
        self.get(name).is_some_and(PropertyDef::is_secret)
    }
}

impl FromIterator<(String, PropertyDef)> for PropertyDefs {
    fn from_iter<I: IntoIterator<Item = (String, PropertyDef)>>(iter: I) -> Self {
        let mut defs = PropertyDefs::default();
        for (name, def) in iter {
            defs.insert(name, def);
        }
        defs
    }
}

impl Serialize for PropertyDefs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.order.len()))?;
        for (name, def) in &self.order {
            map.serialize_entry(name, def)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for PropertyDefs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DefsVisitor;
        impl<'de> Visitor<'de> for DefsVisitor {
            type Value = PropertyDefs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of property names to property definitions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<PropertyDefs, A::Error> {
                let mut defs = PropertyDefs::default();
                while let Some((name, def)) = access.next_entry::<String, PropertyDef>()? {
                    if defs.contains(&name) {
                        return Err(serde::de::Error::custom(format!("duplicate property {name:?}")));
                    }
                    defs.insert(name, def);
                }
                Ok(defs)
            }
        }
        deserializer.deserialize_map(DefsVisitor)
    }
}

/// The instance whose properties are resolved, for `${instance.name}` and
/// `${instance.id}` in `value` expressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRef {
    pub name: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// The Docker RM's message (`TransitionTasks.validateProps`), kept word for word.
    #[error("Missing mandatory property: {name}")]
    MissingRequired { name: String },
    #[error("the value expressions of properties form a cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("property {name}: {reason}")]
    BadValue { name: String, reason: String },
    #[error("property {name}: the value expressions produce more than {MAX_COMPUTED_BYTES} bytes")]
    TooLarge { name: String },
}

/// Works out the property values of a transition or an operation:
///
/// 1. start from `current`, the instance's stored values (empty for an
///    operation);
/// 2. overlay `requested`, except read-only properties, whose value is the
///    instance's own (the resource manager sets them); requested names the
///    descriptor does not declare are kept;
/// 3. fill in `default`s of properties still missing;
/// 4. compute the `value` expressions of properties still missing, in
///    dependency order, substituting `${name}`, `${instance.name}` and
///    `${instance.id}`; one that refers to a property without a value stays
///    missing;
/// 5. refuse a required property that is still missing.
pub fn resolve_properties(
    defs: &PropertyDefs,
    requested: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
    instance: &InstanceRef,
) -> Result<BTreeMap<String, String>, PropertyError> {
    let mut resolved = current.clone();
    for (name, value) in requested {
        if defs.get(name).is_some_and(|d| d.read_only) {
            continue;
        }
        resolved.insert(name.clone(), value.clone());
    }
    for (name, def) in defs.iter() {
        if let Some(default) = &def.default {
            resolved.entry(name.to_owned()).or_insert_with(|| default.clone());
        }
    }

    compute_values(defs, &mut resolved, instance)?;

    if let Some((name, _)) =
        defs.iter().find(|(name, def)| def.required && !def.read_only && !resolved.contains_key(*name))
    {
        return Err(PropertyError::MissingRequired { name: name.to_owned() });
    }
    Ok(resolved)
}

/// Step 4 of [`resolve_properties`]: a topological order over the
/// expressions still to compute (Kahn's algorithm), so a long chain of
/// references costs no more than a short one.
fn compute_values(
    defs: &PropertyDefs,
    resolved: &mut BTreeMap<String, String>,
    instance: &InstanceRef,
) -> Result<(), PropertyError> {
    let mut pending: Vec<(&str, Vec<Piece<'_>>)> = Vec::new();
    for (name, def) in defs.iter() {
        if let (Some(expression), false) = (&def.value, resolved.contains_key(name)) {
            let pieces = parse_expression(expression)
                .map_err(|reason| PropertyError::BadValue { name: name.to_owned(), reason })?;
            pending.push((name, pieces));
        }
    }
    let position: BTreeMap<&str, usize> = pending.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    // For each pending expression, the pending ones it waits for, and the reverse.
    let mut waits_for: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); pending.len()];
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); pending.len()];
    for (i, (_, pieces)) in pending.iter().enumerate() {
        for reference in property_refs(pieces) {
            if let Some(&j) = position.get(reference) {
                if waits_for[i].insert(j) {
                    needed_by[j].push(i);
                }
            }
        }
    }
    let mut remaining: Vec<usize> = waits_for.iter().map(BTreeSet::len).collect();
    let mut ready: Vec<usize> = (0..pending.len()).filter(|i| remaining[*i] == 0).collect();
    let mut visited = vec![false; pending.len()];
    let mut budget = MAX_COMPUTED_BYTES;
    while let Some(i) = ready.pop() {
        visited[i] = true;
        let (name, pieces) = &pending[i];
        // One that refers to a property without a value stays missing.
        if property_refs(pieces).all(|r| resolved.contains_key(r)) {
            let size = pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(text) => text.len(),
                    Piece::Property(r) => resolved.get(*r).map_or(0, String::len),
                    Piece::InstanceName => instance.name.len(),
                    Piece::InstanceId => instance.id.len(),
                })
                .fold(0usize, usize::saturating_add);
            budget = budget.checked_sub(size).ok_or_else(|| PropertyError::TooLarge { name: (*name).to_owned() })?;
            let value = substitute(pieces, resolved, instance);
            resolved.insert((*name).to_owned(), value);
        }
        for &k in &needed_by[i] {
            remaining[k] -= 1;
            if remaining[k] == 0 {
                ready.push(k);
            }
        }
    }
    if visited.iter().all(|v| *v) {
        return Ok(());
    }
    // What is left waits on a cycle; name it.
    let order: Vec<&str> = pending.iter().enumerate().filter(|(i, _)| !visited[*i]).map(|(_, (n, _))| *n).collect();
    let edges = |name: &str| -> Vec<String> {
        let i = position[name];
        waits_for[i].iter().filter(|j| !visited[**j]).map(|j| pending[*j].0.to_owned()).collect()
    };
    match find_cycle(&order, edges) {
        Some(cycle) => Err(PropertyError::Cycle { cycle }),
        None => Ok(()),
    }
}

/// A copy of `props` with the values of `password` properties replaced by
/// [`SECRET_MASK`], for logs, events and API answers.
pub fn mask_secrets(defs: &PropertyDefs, props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props
        .iter()
        .map(|(name, value)| {
            let shown = if defs.is_secret(name) { SECRET_MASK.to_owned() } else { value.clone() };
            (name.clone(), shown)
        })
        .collect()
}

/// A property or operation name: a letter or `_`, then letters, digits, `_`,
/// `-` and `.`; at most [`MAX_PROPERTY_NAME_LEN`] characters.
pub(crate) fn is_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first
        && name.len() <= MAX_PROPERTY_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A piece of a `value` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Property(&'a str),
    InstanceName,
    InstanceId,
}

/// Splits a `value` expression into text and `${...}` references. A `$` not
/// followed by `{` is text.
pub(crate) fn parse_expression(expression: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("{:?} has a ${{ without its closing }}", expression))?;
        let reference = &after[..end];
        pieces.push(match reference {
            "instance.name" => Piece::InstanceName,
            "instance.id" => Piece::InstanceId,
            name if is_property_name(name) => Piece::Property(name),
            other => return Err(format!("${{{other}}} in {expression:?} does not name a property")),
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

pub(crate) fn property_refs<'p, 'a>(pieces: &'p [Piece<'a>]) -> impl Iterator<Item = &'a str> + 'p {
    pieces.iter().filter_map(|p| match p {
        Piece::Property(name) => Some(*name),
        _ => None,
    })
}

fn substitute(pieces: &[Piece<'_>], values: &BTreeMap<String, String>, instance: &InstanceRef) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Property(name) => out.push_str(values.get(*name).map_or("", String::as_str)),
            Piece::InstanceName => out.push_str(&instance.name),
            Piece::InstanceId => out.push_str(&instance.id),
        }
    }
    out
}

/// The first cycle found by a depth-first walk started from each node of
/// `order` in turn, as `a -> b -> a`.
pub(crate) fn find_cycle(order: &[&str], edges: impl Fn(&str) -> Vec<String>) -> Option<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in order {
        if done.contains(*start) {
            continue;
        }
        // Iterative DFS: the path so far and, for each node on it, the edges still to follow.
        let mut path: Vec<String> = vec![(*start).to_owned()];
        let pending = |name: &str| edges(name).into_iter().rev().collect::<Vec<_>>();
        let mut todo: Vec<Vec<String>> = vec![pending(start)];
        while let Some(next) = todo.last_mut().map(Vec::pop) {
            match next {
                Some(next) if done.contains(&next) => {}
                Some(next) => {
                    if let Some(at) = path.iter().position(|n| *n == next) {
                        let mut cycle = path[at..].to_vec();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    todo.push(pending(&next));
                    path.push(next);
                }
                None => {
                    todo.pop();
                    if let Some(finished) = path.pop() {
                        done.insert(finished);
                    }
                }
            }
        }
    }
    None
}

impl PropertyDef {
    pub fn is_secret(&self) -> bool {
        self.kind == PropertyType::Password
    }
}
