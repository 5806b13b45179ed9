//! The params files inside a resource container, `/opt/rmparams` (a
//! transition's properties) and `/opt/opparams` (an operation's), Docker RM
//! guide §3.2.1.2. The scripts read and change them with `getProperty` /
//! `setProperty`; berth writes them before a script and reads them back after.

use super::error::location;
use super::yaml::{self, NodeKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Largest params file read back.
pub const MAX_PARAMS_BYTES: usize = 8 << 20;

const HEADER: &str = "# written by berth\n";

/// Why a params file read back from a container is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("params{}: {message}", location(.line, .key))]
pub struct ParamsError {
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

/// The canonical params text: a comment line, then one `"key": "value"` line
/// per entry in key order. Keys and values are YAML double-quoted scalars in
/// which only `\\`, `\"` and control characters are escaped (`\n`, `\t`,
/// `\r`, others as `\uXXXX`, as are U+2028, U+2029, U+FEFF, U+FFFE and
/// U+FFFF); everything else, non-ASCII included, is written as UTF-8. So a
/// std-only reader can parse a line by undoing exactly these escapes.
pub fn render_params(params: &BTreeMap<String, String>) -> String {
    let mut out = String::from(HEADER);
    for (key, value) in params {
        quote(&mut out, key);
        out.push_str(": ");
        quote(&mut out, value);
        out.push('\n');
    }
    out
}

fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads a params file back: any YAML mapping of single values (a script may
/// rewrite the file in any YAML style). Numbers and booleans become their
/// text, null becomes the empty string; nested mappings and lists are refused.
/// An empty file is an empty map.
pub fn parse_params(text: &str) -> Result<BTreeMap<String, String>, ParamsError> {
    let fail = |line: Option<usize>, key: Option<&str>, message: String| ParamsError {
        line,
        key: key.map(str::to_owned),
        message,
    };
    if text.len() > MAX_PARAMS_BYTES {
        return Err(fail(None, None, format!("larger than {MAX_PARAMS_BYTES} bytes")));
    }
    let root = yaml::parse(text).map_err(|e| ParamsError {
        line: e.line,
        key: (!e.path.is_empty()).then_some(e.path),
        message: e.message,
    })?;
    let Some(root) = root else {
        return Ok(BTreeMap::new());
    };
    let NodeKind::Mapping(entries) = root.kind else {
        return Err(fail(
            Some(root.line),
            None,
            format!("expected a mapping of names to values, found {}", root.describe()),
        ));
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let value = match &entry.value.kind {
            NodeKind::Scalar(s) if s.is_null() => String::new(),
            NodeKind::Scalar(s) => s.text.clone(),
            _ => {
                return Err(fail(
                    Some(entry.value.line),
                    Some(&entry.key),
                    format!("the value is {}; params hold single values only", entry.value.describe()),
                ))
            }
        };
        out.insert(entry.key, value);
    }
    Ok(out)
}
