//! The params files (`/opt/rmparams`, `/opt/opparams`): a flat YAML mapping
//! of strings to strings.
//!
//! berth writes one entry per line in the canonical form `"key": "value"`
//! (YAML 1.2 double-quoted scalars; see [`Params::render`]). The parser also
//! accepts what a person is likely to write by hand: plain scalars
//! (`key: some value # comment`), single-quoted scalars (`key: 'it''s'`) and
//! empty values (`key:`), plus `#` comment lines, blank lines, a leading
//! `---` and a trailing `...`. Everything else a YAML parser would accept
//! (block scalars, nested or flow collections, anchors, tags, multi-line
//! scalars, several documents) is refused with an error naming the line,
//! so that a value is never silently misread.

use std::fmt;
use std::fmt::Write as _;

/// The entries of a params file, in file order; keys are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    entries: Vec<(String, String)>,
}

/// Why a params file could not be parsed; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Params {
    /// Parses the text of a params file.
    pub fn parse(text: &str) -> Result<Params, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut params = Params::default();
        let mut key_lines: Vec<usize> = Vec::new();
        let mut seen_content = false;
        let mut ended = false;
        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let err = |message: String| ParseError { line: line_no, message };
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if ended {
                return Err(err("content after the document end marker `...` (only one document is supported)".into()));
            }
            if let Some(rest) = marker(line, "---") {
                if seen_content {
                    return Err(err("a second document (`---`); only one document is supported".into()));
                }
                if !rest.is_empty() {
                    return Err(err("content after `---`; put each entry on its own line".into()));
                }
                seen_content = true;
                continue;
            }
            if let Some(rest) = marker(line, "...") {
                if !rest.is_empty() {
                    return Err(err("content after the document end marker `...`".into()));
                }
                ended = true;
                continue;
            }
            seen_content = true;
            if line.starts_with([' ', '\t']) {
                return Err(err("indented line: nested mappings, sequences and multi-line values are not \
                     supported (write `key: \"value\"` entries, with \\n for line breaks)"
                    .into()));
            }
            let (key, value) = parse_entry(line).map_err(err)?;
            if let Some(pos) = params.entries.iter().position(|(k, _)| *k == key) {
                return Err(err(format!("duplicate key {} (first defined on line {})", quote(&key), key_lines[pos])));
            }
            params.entries.push((key, value));
            key_lines.push(line_no);
        }
        Ok(params)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, in place if present, else appended.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.entries.push((key.to_owned(), value.to_owned())),
        }
    }

    /// All entries in order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The canonical text: one `"key": "value"` line per entry (no header,
    /// no comments), both sides double-quoted with [`quote`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            out.push_str(&quote(k));
            out.push_str(": ");
            out.push_str(&quote(v));
            out.push('\n');
        }
        out
    }
}

impl FromIterator<(String, String)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut params = Params::default();
        for (k, v) in iter {
            params.set(&k, &v);
        }
        params
    }
}

/// Renders `s` as a YAML double-quoted scalar: `\\`, `\"`, `\n`, `\t`, `\r`
/// and `\uXXXX` for the other characters that are not safely printable
/// (C0/C1 controls, DEL, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF); all other
/// text, non-ASCII included, is written as raw UTF-8.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// `Some(rest)` if `line` is the marker (`---`/`...`) alone or followed by
/// whitespace; `rest` is what follows, comments removed and trimmed.
fn marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim_matches([' ', '\t']);
    Some(if rest.starts_with('#') { "" } else { rest })
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses one unindented `key: value` line.
fn parse_entry(line: &str) -> Result<(String, String), String> {
    let (key, rest) = match line.chars().next() {
        Some('"') => {
            let (key, rest) = parse_double(&line[1..])?;
            (key, after_quoted_key(rest)?)
        }
        Some('\'') => {
            let (key, rest) = parse_single(&line[1..])?;
            (key, after_quoted_key(rest)?)
        }
        Some(c) => {
            check_plain_start(c, line, "key")?;
            parse_plain_key(line)?
        }
        None => return Err("empty line".into()),
    };
    let value = parse_value(rest)?;
    Ok((key, value))
}

/// After a quoted key: optional blanks, `:`, then a blank or the end.
fn after_quoted_key(rest: &str) -> Result<&str, String> {
    let rest = rest.trim_start_matches(is_ws);
    let Some(rest) = rest.strip_prefix(':') else {
        return Err("expected `:` after the quoted key".into());
    };
    if !(rest.is_empty() || rest.starts_with(is_ws)) {
        return Err("expected a space after `:`".into());
    }
    Ok(rest)
}

/// A plain key runs up to the first `:` followed by a blank or the end.
fn parse_plain_key(line: &str) -> Result<(String, &str), String> {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => break,
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t' => {
                let key = line[..i].trim_end_matches(is_ws);
                return Ok((key.to_owned(), &line[i + 1..]));
            }
            _ => {}
        }
    }
    Err("expected `key: value` (a key followed by `:` and a space)".into())
}

/// Refuses the YAML indicators that cannot start a plain scalar, with a
/// message saying what the construct is.
fn check_plain_start(c: char, text: &str, what: &str) -> Result<(), String> {
    let next_is_blank = text[c.len_utf8()..].chars().next().is_none_or(|n| n == ' ' || n == '\t');
    let problem = match c {
        '[' | '{' => "flow collections ([...] / {...}) are not supported; quote the value",
        ']' | '}' | ',' => "a value may not start with `]`, `}` or `,`; quote it",
        '|' | '>' => "block scalars (| / >) are not supported; use a double-quoted value with \\n for line breaks",
        '&' | '*' => "anchors and aliases (& / *) are not supported; quote the value",
        '!' => "tags (!) are not supported; quote the value",
        '%' => "directives (%) are not supported; quote the value",
        '@' | '`' => "`@` and backquote are reserved in YAML; quote the value",
        '-' if next_is_blank => "sequences (- item) are not supported",
        '?' if next_is_blank => "complex keys (? key) are not supported",
        ':' if next_is_blank => "missing key before `:`",
        _ => return Ok(()),
    };
    Err(format!("{what}: {problem}"))
}

/// The value part of an entry: whatever follows `key:`.
fn parse_value(rest: &str) -> Result<String, String> {
    let text = rest.trim_start_matches(is_ws);
    match text.chars().next() {
        None | Some('#') => Ok(String::new()),
        Some('"') => {
            let (value, after) = parse_double(&text[1..])?;
            check_trailing(after)?;
            Ok(value)
        }
        Some('\'') => {
            let (value, after) = parse_single(&text[1..])?;
            check_trailing(after)?;
            Ok(value)
        }
        Some(c) => {
            check_plain_start(c, text, "value")?;
            parse_plain_value(text)
        }
    }
}

/// A plain value ends at ` #` (a comment) or the end of the line; trailing
/// blanks are dropped. `: ` inside is refused, as YAML does.
fn parse_plain_value(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => {
                end = i;
                break;
            }
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t' => {
                return Err("a plain value may not contain `: ` (that would be a nested mapping); \
                     quote the value"
                    .into());
            }
            _ => {}
        }
    }
    Ok(text[..end].trim_end_matches(is_ws).to_owned())
}

/// After a closing quote only blanks and a comment may follow.
fn check_trailing(after: &str) -> Result<(), String> {
    let trimmed = after.trim_start_matches(is_ws);
    if trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < after.len()) {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".into())
    }
}

/// Parses a single-quoted scalar; `s` starts after the opening quote.
/// Returns the value and the text after the closing quote.
fn parse_single(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if let Some(&(_, '\'')) = chars.peek() {
                chars.next();
                out.push('\'');
            } else {
                return Ok((out, &s[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated single-quoted value (multi-line values are not supported)".into())
}

/// Parses a YAML 1.2 double-quoted scalar; `s` starts after the opening
/// quote. Returns the value and the text after the closing quote.
fn parse_double(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err("a backslash at the end of the line: escaped line breaks \
                                (multi-line values) are not supported; write \\n"
                        .into());
                };
                let decoded = match e {
                    '0' => '\0',
                    'a' => '\x07',
                    'b' => '\x08',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\x0b',
                    'f' => '\x0c',
                    'r' => '\r',
                    'e' => '\x1b',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => code_point(hex_digits(&mut chars, 2)?)?,
                    'U' => code_point(hex_digits(&mut chars, 8)?)?,
                    'u' => {
                        let unit = hex_digits(&mut chars, 4)?;
                        if (0xD800..0xDC00).contains(&unit) {
                            // A UTF-16 surrogate pair, as JSON writers emit.
                            let mut ahead = chars.clone();
                            let low = match (ahead.next(), ahead.next()) {
                                (Some((_, '\\')), Some((_, 'u'))) => hex_digits(&mut ahead, 4).ok(),
                                _ => None,
                            };
                            match low {
                                Some(low) if (0xDC00..0xE000).contains(&low) => {
                                    chars = ahead;
                                    code_point(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                                }
                                _ => return Err(format!("\\u{unit:04X} is a lone UTF-16 surrogate")),
                            }
                        } else {
                            code_point(unit)?
                        }
                    }
                    other => {
                        return Err(format!(
                            "unknown escape sequence `\\{}` in a double-quoted value",
                            other.escape_debug()
                        ))
                    }
                };
                out.push(decoded);
            }
            c => out.push(c),
        }
    }
    Err("unterminated double-quoted value (multi-line values are not supported; \
         write line breaks as \\n)"
        .into())
}

fn hex_digits(chars: &mut std::str::CharIndices<'_>, n: usize) -> Result<u32, String> {
    let mut value: u32 = 0;
    for _ in 0..n {
        let digit = chars
            .next()
            .and_then(|(_, c)| c.to_digit(16))
            .ok_or_else(|| format!("an escape sequence needs {n} hexadecimal digits"))?;
        value = value * 16 + digit;
    }
    Ok(value)
}

fn code_point(value: u32) -> Result<char, String> {
    char::from_u32(value).ok_or_else(|| format!("U+{value:X} is not a valid character"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Params {
        match Params::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn one(text: &str) -> String {
        let p = parse(text);
        assert_eq!(p.entries().len(), 1, "{text:?}");
        p.entries()[0].1.clone()
    }

    fn error(text: &str) -> ParseError {
        match Params::parse(text) {
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    const TRICKY: &[&str] = &[
        "",
        " ",
        "plain",
        "with spaces inside",
        "  leading and trailing  ",
        "double \" quote",
        "single ' quote",
        "both \"'\" quotes",
        "colon: after",
        "url http://example.com:8080/x?y=1#frag",
        "# not a comment",
        "a # b",
        "line1\nline2\n",
        "\n",
        "tab\there\t",
        "carriage\r\nreturn",
        "back\\slash \\n not a newline \\",
        "\\",
        "\"",
        "'",
        "emoji 🎉🚀 and ünïcödé, 日本語, Ελληνικά, עברית",
        "controls \0 \x07 \x1b \x7f \u{85} \u{9f}",
        "separators \u{2028} \u{2029} bom \u{feff} nonchars \u{fffe}\u{ffff}",
        "nbsp\u{a0}here",
        "- dash",
        "[flow]",
        "{map: 1}",
        "|",
        ">",
        "&anchor *alias !tag %dir @at `tick`",
        "---",
        "...",
        "key: value",
        "~",
        "null",
        "true",
        "0x1F",
        "1e3",
    ];

    #[test]
    fn round_trip_of_tricky_values_and_keys() {
        let mut params = Params::default();
        for (i, v) in TRICKY.iter().enumerate() {
            params.set(&format!("k{i}"), v);
            params.set(v, &format!("value of key {i}"));
        }
        let text = params.render();
        assert_eq!(text.lines().count(), params.entries().len());
        let back = parse(&text);
        assert_eq!(back, params);
        for (i, v) in TRICKY.iter().enumerate() {
            assert_eq!(back.get(&format!("k{i}")), Some(*v));
        }
        assert_eq!(back.render(), text);
    }

    #[test]
    fn canonical_form() {
        let p: Params = [
            ("a".to_string(), "x y".to_string()),
            ("b\"q".to_string(), "tab\tnl\ncr\rbs\\".to_string()),
            ("ctl".to_string(), "\x01\x7f\u{2028}".to_string()),
            ("utf".to_string(), "é🎉".to_string()),
            ("empty".to_string(), String::new()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            p.render(),
            "\"a\": \"x y\"\n\
             \"b\\\"q\": \"tab\\tnl\\ncr\\rbs\\\\\"\n\
             \"ctl\": \"\\u0001\\u007F\\u2028\"\n\
             \"utf\": \"é🎉\"\n\
             \"empty\": \"\"\n"
        );
        assert_eq!(Params::default().render(), "");
    }

    #[test]
    fn set_replaces_in_place_and_appends() {
        let mut p = parse("a: 1\nb: 2\n");
        p.set("a", "one");
        p.set("c", "3");
        assert_eq!(p.render(), "\"a\": \"one\"\n\"b\": \"2\"\n\"c\": \"3\"\n");
    }

    #[test]
    fn yaml_double_quoted_escapes() {
        assert_eq!(
            one(r#""k": "\0\a\b\t\	\n\v\f\r\e\ \"\/\\\N\_\L\P""#),
            "\0\x07\x08\t\t\n\x0b\x0c\r\x1b \"/\\\u{85}\u{a0}\u{2028}\u{2029}"
        );
        assert_eq!(one(r#""k": "\x41\xe9\u00e9\u20AC\U0001F389""#), "Aéé€🎉");
        assert_eq!(one(r#""k": "\ud83c\udf89""#), "🎉");
        assert_eq!(one("\"k\": \"raw\ttab # and hash\"  # comment"), "raw\ttab # and hash");
    }

    #[test]
    fn hand_written_forms() {
        let p = parse(
            "\u{feff}---  # header\n\
             # a comment\n\
             \n\
             \x20  # indented comment\n\
             plain: some value   \n\
             commented: value # a comment\n\
             hash: value#not-a-comment\n\
             url: http://host:8080/path\n\
             spaced key  :  spaced value\t\n\
             single: 'it''s: # here '\n\
             'single key': x\n\
             \"double key\" : \"y\"\n\
             empty:\n\
             empty2:   # nothing\n\
             empty3: ''\n\
             empty4: \"\"\n\
             dash: -5\n\
             qmark: ?x\n\
             colon: :x\n\
             unicode: héllo wörld 🎉\n\
             crlf: yes\r\n\
             ...\n\
             # trailing comment\n",
        );
        let want: &[(&str, &str)] = &[
            ("plain", "some value"),
            ("commented", "value"),
            ("hash", "value#not-a-comment"),
            ("url", "http://host:8080/path"),
            ("spaced key", "spaced value"),
            ("single", "it's: # here "),
            ("single key", "x"),
            ("double key", "y"),
            ("empty", ""),
            ("empty2", ""),
            ("empty3", ""),
            ("empty4", ""),
            ("dash", "-5"),
            ("qmark", "?x"),
            ("colon", ":x"),
            ("unicode", "héllo wörld 🎉"),
            ("crlf", "yes"),
        ];
        let got: Vec<(&str, &str)> = p.entries().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
        assert!(parse("").entries().is_empty());
        assert!(parse("---\n").entries().is_empty());
        assert!(parse("# only a comment").entries().is_empty());
        assert_eq!(one("k: v"), "v", "no final newline");
    }

    #[test]
    fn unsupported_constructs_are_errors_with_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("a: 1\nb: |\n  text\n", 2, "block scalars"),
            ("a: >-\n  text\n", 1, "block scalars"),
            ("a:\n  b: 1\n", 2, "indented"),
            ("a:\n- 1\n", 2, "sequences"),
            ("- 1\n", 1, "sequences"),
            ("a: [1, 2]\n", 1, "flow collections"),
            ("a: {b: 1}\n", 1, "flow collections"),
            ("{a: 1}\n", 1, "flow collections"),
            ("a: &x 1\n", 1, "anchors"),
            ("a: *x\n", 1, "anchors"),
            ("a: !!str 1\n", 1, "tags"),
            ("%YAML 1.2\n---\na: 1\n", 1, "directives"),
            ("a: b: c\n", 1, "nested mapping"),
            ("a: \"open\n", 1, "unterminated double-quoted"),
            ("a: 'open\n", 1, "unterminated single-quoted"),
            ("a: \"x\" y\n", 1, "after the closing quote"),
            ("a: \"x\"# c\n", 1, "after the closing quote"),
            ("a: \"bad \\q\"\n", 1, "unknown escape"),
            ("a: \"bad \\x4\"\n", 1, "hexadecimal"),
            ("a: \"bad \\ud800\"\n", 1, "surrogate"),
            ("a: \"bad \\U00110000\"\n", 1, "not a valid character"),
            ("a: \"multi \\\n", 1, "escaped line breaks"),
            ("just text\n", 1, "expected `key: value`"),
            ("a:b\n", 1, "expected `key: value`"),
            ("a #c: d\n", 1, "expected `key: value`"),
            ("\"a\"b: c\n", 1, "expected `:`"),
            ("\"a\":b\n", 1, "space after"),
            ("a: 1\na: 2\n", 2, "duplicate key \"a\" (first defined on line 1)"),
            ("a: 1\n---\nb: 2\n", 2, "second document"),
            ("--- a: 1\n", 1, "content after `---`"),
            ("a: 1\n...\nb: 2\n", 3, "after the document end"),
            ("? a\n: b\n", 1, "complex keys"),
            (": b\n", 1, "missing key"),
            ("a: @x\n", 1, "reserved"),
            ("a: ,x\n", 1, "may not start"),
        ];
        for (text, line, needle) in cases {
            let e = error(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    /// A small deterministic generator: no dependency on a random crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn string(&mut self, alphabet: &[char], max: u64) -> String {
            let len = self.next() % (max + 1);
            (0..len).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize]).collect()
        }
    }

    const ALPHABET: &[char] = &[
        'a', 'b', ' ', '\t', '\n', '\r', ':', '#', '"', '\'', '\\', 'x', 'u', 'U', '0', 'd', '8', '-', '.', '|', '>',
        '[', '{', '}', ']', ',', '?', '&', '*', '!', '%', '@', '`', 'é', '🎉', '\0', '\u{85}', '\u{2028}', '\u{feff}',
    ];

    #[test]
    fn random_values_round_trip() {
        let mut rng = Lcg(42);
        for _ in 0..3000 {
            let mut p = Params::default();
            for _ in 0..rng.next() % 5 {
                let k = rng.string(ALPHABET, 8);
                let v = rng.string(ALPHABET, 24);
                p.set(&k, &v);
            }
            let text = p.render();
            assert_eq!(Params::parse(&text).as_ref(), Ok(&p), "{text:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(7);
        let mut errors = 0;
        for _ in 0..20000 {
            let text = rng.string(ALPHABET, 40);
            match Params::parse(&text) {
                Ok(p) => {
                    // Whatever parsed must survive a rewrite unchanged.
                    assert_eq!(Params::parse(&p.render()).as_ref(), Ok(&p), "{text:?}");
                }
                Err(e) => {
                    errors += 1;
                    assert!(e.line >= 1 && e.line <= text.split('\n').count(), "{text:?}");
                    assert!(!e.message.is_empty());
                }
            }
        }
        assert!(errors > 0);
    }
}
