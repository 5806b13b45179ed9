//! A small YAML node tree with line numbers, built from saphyr-parser's
//! events. berth builds it itself rather than using a loader so that every
//! key and value keeps its line, a duplicate key is an error (the YAML
//! specification requires unique keys; loaders silently keep the last one),
//! and anchors and aliases are refused outright: a package needs neither, and
//! refusing them rules out alias-expansion ("billion laughs") attacks.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Deepest nesting of mappings and lists accepted; a descriptor needs five.
pub const MAX_DEPTH: usize = 32;

/// A parse failure: the 1-based line where it was found and the key path
/// (`properties.port`, `lifecycle[1]`) of the node, when known, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// 1-based line where the node starts.
    pub line: usize,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<Entry>),
}

/// One `key: value` pair of a mapping, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_line: usize,
    pub value: Node,
}

/// A scalar as written. `plain` is false for quoted and block scalars and for
/// `!!str`-tagged ones: only plain scalars can mean null or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar {
    pub text: String,
    pub plain: bool,
}

impl Scalar {
    /// YAML 1.2 core schema null: `~`, `null`, `Null`, `NULL` or nothing.
    pub fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    /// YAML 1.2 core schema boolean.
    pub fn as_bool(&self) -> Option<bool> {
        if !self.plain {
            return None;
        }
        match self.text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.is_null())
    }

    /// What the node is, for messages: "a mapping", "a list", "a text value".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(s) if s.is_null() => "nothing (null)",
            NodeKind::Scalar(_) => "a single value",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }
}

/// Parses a text holding at most one YAML document. `Ok(None)` for an empty
/// document (nothing, only comments, or a lone null).
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut events = Events { parser: Parser::new_from_str(text), last_line: 1 };
    match events.next()? {
        (Event::StreamStart, _) => {}
        (_, span) => return Err(events.error(span, "the YAML stream does not start as expected")),
    }
    let root = match events.next()? {
        (Event::StreamEnd, _) => return Ok(None),
        (Event::DocumentStart(_), _) => {
            let (event, span) = events.next()?;
            let root = build(&mut events, event, span, "", 0)?;
            match events.next()? {
                (Event::DocumentEnd, _) => {}
                (_, span) => return Err(events.error(span, "unexpected content after the document")),
            }
            root
        }
        (_, span) => return Err(events.error(span, "unexpected content before the document")),
    };
    match events.next()? {
        (Event::StreamEnd, _) => {}
        (_, span) => return Err(events.error(span, "a second YAML document (`---`); one document is expected")),
    }
    Ok(if root.is_null() { None } else { Some(root) })
}

struct Events<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    last_line: usize,
}

impl<'a> Events<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => {
                self.last_line = span.start.line();
                Ok((event, span))
            }
            Some(Err(e)) => {
                Err(YamlError { line: Some(e.marker().line()), path: String::new(), message: e.info().to_owned() })
            }
            None => Err(YamlError {
                line: Some(self.last_line),
                path: String::new(),
                message: "the YAML text ends unexpectedly".into(),
            }),
        }
    }

    fn error(&self, span: Span, message: &str) -> YamlError {
        YamlError { line: Some(span.start.line()), path: String::new(), message: message.to_owned() }
    }
}

/// `path` is the node's key path, for errors.
fn build<'a>(
    events: &mut Events<'a>,
    event: Event<'a>,
    span: Span,
    path: &str,
    depth: usize,
) -> Result<Node, YamlError> {
    let line = span.start.line();
    let fail = |message: String| YamlError { line: Some(line), path: path.to_owned(), message };
    if depth >= MAX_DEPTH && matches!(event, Event::SequenceStart(..) | Event::MappingStart(..)) {
        return Err(fail(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match event {
        Event::Scalar(text, style, anchor, tag) => {
            refuse_anchor(anchor).map_err(fail)?;
            let mut plain = style == ScalarStyle::Plain;
            if let Some(tag) = tag {
                if check_tag(&tag).map_err(fail)? == "str" {
                    plain = false;
                }
            }
            Ok(Node { line, kind: NodeKind::Scalar(Scalar { text: text.into_owned(), plain }) })
        }
        Event::SequenceStart(anchor, tag) => {
            refuse_anchor(anchor).map_err(fail)?;
            check_collection_tag(tag.as_ref(), "seq").map_err(fail)?;
            let mut items = Vec::new();
            loop {
                match events.next()? {
                    (Event::SequenceEnd, _) => break,
                    (event, span) => {
                        let item_path = format!("{path}[{}]", items.len());
                        items.push(build(events, event, span, &item_path, depth + 1)?);
                    }
                }
            }
            Ok(Node { line, kind: NodeKind::Sequence(items) })
        }
        Event::MappingStart(anchor, tag) => {
            refuse_anchor(anchor).map_err(fail)?;
            check_collection_tag(tag.as_ref(), "map").map_err(fail)?;
            let mut entries: Vec<Entry> = Vec::new();
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let (event, span) = events.next()?;
                if matches!(event, Event::MappingEnd) {
                    break;
                }
                let key = build(events, event, span, path, depth + 1)?;
                let key_line = key.line;
                let NodeKind::Scalar(key) = key.kind else {
                    return Err(YamlError {
                        line: Some(key_line),
                        path: path.to_owned(),
                        message: format!("a key is {}; keys must be single values", key.describe()),
                    });
                };
                let entry_path = if path.is_empty() { key.text.clone() } else { format!("{path}.{}", key.text) };
                if let Some(first) = seen.insert(key.text.clone(), key_line) {
                    return Err(YamlError {
                        line: Some(key_line),
                        path: entry_path,
                        message: format!("duplicate key {:?} (first at line {first})", key.text),
                    });
                }
                let (event, span) = events.next()?;
                let value = build(events, event, span, &entry_path, depth + 1)?;
                entries.push(Entry { key: key.text, key_line, value });
            }
            Ok(Node { line, kind: NodeKind::Mapping(entries) })
        }
        Event::Alias(_) => Err(fail("aliases (`*name`) are not accepted".into())),
        _ => Err(fail("unexpected YAML structure".into())),
    }
}

fn refuse_anchor(anchor: usize) -> Result<(), String> {
    // saphyr-parser numbers anchors from 1; 0 means "no anchor".
    if anchor == 0 {
        Ok(())
    } else {
        Err("anchors (`&name`) are not accepted".into())
    }
}

/// Core schema tags (`!!str`, `!!int`, …) are accepted and return their
/// suffix; any other tag is refused.
fn check_tag(tag: &Tag) -> Result<&str, String> {
    let known = ["str", "int", "float", "bool", "null", "map", "seq"];
    if tag.is_yaml_core_schema() && known.contains(&tag.suffix.as_str()) {
        Ok(tag.suffix.as_str())
    } else {
        Err(format!("the tag {} is not accepted", show_tag(tag)))
    }
}

fn check_collection_tag(tag: Option<&Cow<'_, Tag>>, expected: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(tag) => match check_tag(tag)? {
            suffix if suffix == expected => Ok(()),
            _ => Err(format!(
                "the tag {} does not fit a {}",
                show_tag(tag),
                if expected == "map" { "mapping" } else { "list" }
            )),
        },
    }
}

/// A tag as it is usually written: `!!str`, `!local`, `!e!thing`.
fn show_tag(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}
