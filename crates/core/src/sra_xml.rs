//! The SRA 2.0 XML berth reads and writes (INTERFACES.md, section 2): the
//! command envelope given on stdin, the `<ProgressUpdate>` status file and
//! the `<Response>` of the output file. Parsing builds a small element tree
//! with quick-xml; only well-formed documents with one root get through.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fmt;

pub const NAMESPACE: &str = "http://www.vmware.com/srm/sra/v2";

/// Where and why a document is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// An element: its local name (namespace prefix dropped), attributes, text
/// (all text directly inside it, concatenated) and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The trimmed text of child `name`, if present and not empty.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_owned()).filter(|t| !t.is_empty())
    }
}

/// Parses a whole document: optional declaration, comments and processing
/// instructions, exactly one root element, nothing else.
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    // XML 1.0 allows tab, newline and carriage return, nothing else below U+0020.
    if let Some((offset, c)) = xml.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        return Err(error_at(xml, offset, format!("the character U+{:04X} is not allowed in XML", u32::from(c))));
    }
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position() as usize;
        let fail = |reason: String| error_at(xml, position, reason);
        let event = reader.read_event().map_err(|e| error_at(xml, reader.error_position() as usize, e.to_string()))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let name = local_name(&start);
                return Err(fail(format!("a second root element <{name}>; a document has exactly one")));
            }
            Event::Start(start) => stack.push(element(&start).map_err(fail)?),
            Event::Empty(start) => {
                let done = element(&start).map_err(fail)?;
                close(&mut stack, &mut root, done);
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start.
                let done = stack.pop().ok_or_else(|| fail("a closing tag without an opening one".into()))?;
                close(&mut stack, &mut root, done);
            }
            Event::Text(text) => {
                let text = text.xml10_content();
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(fail(format!("text {:?} outside the root element", text.trim()))),
                }
            }
            Event::CData(data) => match stack.last_mut() {
                Some(open) => open.text.push_str(&data.xml10_content()),
                None => return Err(fail("CDATA outside the root element".into())),
            },
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| fail(e.to_string()))? {
                    Some(c) if !is_xml_char(c) => {
                        return Err(fail(format!(
                            "the character reference to U+{:04X} is not allowed in XML",
                            u32::from(c)
                        )))
                    }
                    Some(c) => c.to_string(),
                    None => predefined_entity(&reference.xml10_content())
                        .ok_or_else(|| fail(format!("unknown entity &{};", reference.xml10_content())))?
                        .to_owned(),
                };
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&resolved),
                    None => return Err(fail("an entity reference outside the root element".into())),
                }
            }
            Event::DocType(_) => return Err(fail("a DOCTYPE is not accepted".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(fail(format!("<{}> is never closed", open.name)));
                }
                return root.ok_or_else(|| fail("no root element".into()));
            }
        }
    }
}

/// The characters XML 1.0 allows (its production `Char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, done: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None => *root = Some(done),
    }
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = AsRef::<str>::as_ref(&attribute.key.local_name()).to_owned();
        let value =
            attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| e.to_string())?.into_owned();
        attributes.push((key, value));
    }
    Ok(Element { name: local_name(start), attributes, ..Element::default() })
}

fn local_name(start: &quick_xml::events::BytesStart<'_>) -> String {
    AsRef::<str>::as_ref(&start.local_name()).to_owned()
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

fn error_at(xml: &str, offset: usize, reason: String) -> XmlError {
    let before = &xml.as_bytes()[..offset.min(xml.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.len() - before.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
    XmlError { line, column, reason }
}

/// What berth needs from a command envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    pub name: Option<String>,
    pub output_file: Option<String>,
    pub status_file: Option<String>,
}

/// Checks that `xml` is a well-formed `<Command>` envelope.
pub fn parse_command(xml: &str) -> Result<CommandInfo, XmlError> {
    let root = parse_rooted(xml, "Command")?;
    Ok(CommandInfo {
        name: root.child_text("Name"),
        output_file: root.child_text("OutputFile"),
        status_file: root.child_text("StatusFile"),
    })
}

/// The percentage of a status file (`<ProgressUpdate>70</ProgressUpdate>`,
/// INTERFACES.md 2.6); `None` when it holds no number berth understands.
pub fn progress_percent(status: &str) -> Option<u8> {
    let root = parse(status).ok()?;
    if root.name != "ProgressUpdate" {
        return None;
    }
    let value: f64 = root.text.trim().parse().ok()?;
    value.is_finite().then(|| value.clamp(0.0, 100.0) as u8)
}

/// A command-level `<Error>` of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError {
    pub code: String,
    pub description: Option<String>,
    pub fix_hint: Option<String>,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the SRA reported error {}", self.code)?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(hint) = &self.fix_hint {
            write!(f, " (fix: {hint})")?;
        }
        Ok(())
    }
}

/// The `<Error>` directly under `<Response>`, if the response is a failure.
pub fn response_error(xml: &str) -> Result<Option<ResponseError>, XmlError> {
    let root = parse_rooted(xml, "Response")?;
    Ok(root.child("Error").map(|error| ResponseError {
        code: error.attribute("code").unwrap_or("(no code)").to_owned(),
        description: error
            .child_text("Description")
            .or_else(|| Some(error.text.trim().to_owned()).filter(|t| !t.is_empty())),
        fix_hint: error.child_text("FixHint"),
    }))
}

impl ResponseError {
    /// Fills in a missing description and fix hint from the SRA's own error
    /// definitions (`queryErrorDefinitions`) and strings (`queryStrings`).
    pub fn explain(&mut self, definitions: &ErrorDefinitions) {
        let Some(definition) = definitions.errors.get(&self.code) else { return };
        let text = |text: &Option<String>, id: &Option<String>| {
            text.clone().or_else(|| id.as_ref().and_then(|id| definitions.strings.get(id).cloned()))
        };
        if self.description.is_none() {
            self.description = text(&definition.description, &definition.description_id);
        }
        if self.fix_hint.is_none() {
            self.fix_hint = text(&definition.fix_hint, &definition.fix_hint_id);
        }
    }
}

/// What an SRA says its error codes mean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDefinitions {
    pub errors: std::collections::BTreeMap<String, ErrorDefinition>,
    /// `queryStrings`: string id → text, for definitions that only name a `stringId`.
    pub strings: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDefinition {
    pub description: Option<String>,
    pub description_id: Option<String>,
    pub fix_hint: Option<String>,
    pub fix_hint_id: Option<String>,
}

/// The `<ErrorDefinitions>` of a `queryErrorDefinitions` response
/// (INTERFACES.md 2.5).
pub fn error_definitions(xml: &str) -> Result<std::collections::BTreeMap<String, ErrorDefinition>, XmlError> {
    let root = parse_rooted(xml, "Response")?;
    let Some(list) = root.child("ErrorDefinitions") else { return Ok(Default::default()) };
    Ok(list
        .children
        .iter()
        .filter(|d| d.name == "ErrorDefinition")
        .filter_map(|d| {
            let code = d.attribute("code")?.to_owned();
            let part = |name: &str| {
                let element = d.child(name);
                (
                    element.map(|e| e.text.trim().to_owned()).filter(|t| !t.is_empty()),
                    element.and_then(|e| e.attribute("stringId")).map(str::to_owned),
                )
            };
            let (description, description_id) = part("Description");
            let (fix_hint, fix_hint_id) = part("FixHint");
            Some((code, ErrorDefinition { description, description_id, fix_hint, fix_hint_id }))
        })
        .collect())
}

/// The `<Strings>` of a `queryStrings` response: id → text.
pub fn strings(xml: &str) -> Result<std::collections::BTreeMap<String, String>, XmlError> {
    let root = parse_rooted(xml, "Response")?;
    let Some(list) = root.child("Strings") else { return Ok(Default::default()) };
    Ok(list
        .children
        .iter()
        .filter(|s| s.name == "String")
        .filter_map(|s| Some((s.attribute("id")?.to_owned(), s.text.trim().to_owned())))
        .collect())
}

/// The envelope `berth sra run` writes (INTERFACES.md 2.3). The paths are
/// the ones inside the execution container, where the SRA opens them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub name: String,
    pub output_file: String,
    pub status_file: String,
    pub log_level: String,
    pub log_directory: String,
    /// A checked `<Connections>` fragment, inserted as is.
    pub connections: Option<String>,
    /// A checked parameters fragment (e.g. `<DiscoverDevicesParameters>`), inserted as is.
    pub parameters: Option<String>,
}

impl Envelope {
    pub fn to_xml(&self) -> String {
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Command xmlns=\"{NAMESPACE}\">\n  <Name>{}</Name>\n  <OutputFile>{}</OutputFile>\n  <StatusFile>{}</StatusFile>\n  <LogLevel>{}</LogLevel>\n  <LogDirectory>{}</LogDirectory>\n",
            escape(&self.name),
            escape(&self.output_file),
            escape(&self.status_file),
            escape(&self.log_level),
            escape(&self.log_directory)
        );
        for fragment in [&self.connections, &self.parameters].into_iter().flatten() {
            xml.push_str(strip_declaration(fragment).trim());
            xml.push('\n');
        }
        xml.push_str("</Command>\n");
        xml
    }
}

/// Checks that `fragment` is one well-formed element, named `root` when given.
pub fn check_fragment(fragment: &str, root: Option<&str>) -> Result<(), XmlError> {
    match root {
        Some(expected) => parse_rooted(fragment, expected).map(drop),
        None => parse(fragment).map(drop),
    }
}

/// Parses a document whose root element must be `expected`.
fn parse_rooted(xml: &str, expected: &str) -> Result<Element, XmlError> {
    let root = parse(xml)?;
    if root.name != expected {
        let reason = format!("the root element is <{}>, not <{expected}>", root.name);
        return Err(XmlError { line: 1, column: 1, reason });
    }
    Ok(root)
}

fn strip_declaration(fragment: &str) -> &str {
    let trimmed = fragment.trim_start();
    match trimmed.strip_prefix("<?xml").and_then(|rest| rest.find("?>").map(|end| &rest[end + 2..])) {
        Some(rest) => rest,
        None => trimmed,
    }
}

pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Command xmlns="http://www.vmware.com/srm/sra/v2">
  <Name>queryInfo</Name>
  <OutputFile>/tmp/out &amp; more.xml</OutputFile>
  <StatusFile>/tmp/status</StatusFile>
</Command>"#;

    #[test]
    fn a_command_envelope_is_read() {
        let info = parse_command(COMMAND).unwrap();
        assert_eq!(info.name.as_deref(), Some("queryInfo"));
        assert_eq!(info.output_file.as_deref(), Some("/tmp/out & more.xml"));
        assert_eq!(info.status_file.as_deref(), Some("/tmp/status"));
    }

    #[test]
    fn malformed_documents_say_where() {
        let cases = [
            ("<Command><Name>x</Command>", "line 1"),
            ("<Command>\n<Name>x</Name>", "never closed"),
            ("", "no root element"),
            ("<Command/><Command/>", "second root"),
            ("hello <Command/>", "outside the root"),
            ("<Command>&bogus;</Command>", "unknown entity"),
            ("<Response/>", "not <Command>"),
        ];
        for (xml, expected) in cases {
            let error = parse_command(xml).unwrap_err().to_string();
            assert!(error.contains(expected), "{xml:?}: {error}");
        }
        let error = parse_command("<Command>\n  <Name>x</Nome>\n</Command>").unwrap_err();
        assert_eq!(error.line, 2, "{error}");
    }

    #[test]
    fn progress_is_the_percentage_of_the_update() {
        let update = r#"<?xml version="1.0" encoding="UTF-8" ?>
<ProgressUpdate xmlns="http://www.vmware.com/srm/sra/v2">70</ProgressUpdate>"#;
        assert_eq!(progress_percent(update), Some(70));
        assert_eq!(progress_percent("<ProgressUpdate> 42.5 </ProgressUpdate>"), Some(42));
        assert_eq!(progress_percent("<ProgressUpdate>250</ProgressUpdate>"), Some(100));
        assert_eq!(progress_percent("<ProgressUpdate>soon</ProgressUpdate>"), None);
        assert_eq!(progress_percent("<Other>5</Other>"), None);
        assert_eq!(progress_percent("<ProgressUpdate>5"), None);
    }

    #[test]
    fn a_command_level_error_is_found() {
        let failed = r#"<Response xmlns="http://www.vmware.com/srm/sra/v2"><Error code="1003"><Description>Array unreachable</Description><FixHint>Check the address</FixHint></Error></Response>"#;
        let error = response_error(failed).unwrap().unwrap();
        assert_eq!(error.to_string(), "the SRA reported error 1003: Array unreachable (fix: Check the address)");
        let bare = r#"<Response xmlns="x"><Error code="7"/></Response>"#;
        assert_eq!(response_error(bare).unwrap().unwrap().to_string(), "the SRA reported error 7");
        // An error of one device is not a command-level error.
        let partial = r#"<Response><Devices><Device id="a"><Error code="9"/></Device></Devices></Response>"#;
        assert_eq!(response_error(partial).unwrap(), None);
    }

    #[test]
    fn characters_xml_forbids_are_refused() {
        for bad in [
            "<Command>\u{0}</Command>",
            "<Command>a\u{1}</Command>",
            "<Command>&#1;</Command>",
            "<Command>&#0;</Command>",
        ] {
            let error = parse_command(bad).unwrap_err().to_string();
            assert!(error.contains("not allowed in XML") || error.contains("not permitted in XML"), "{bad:?}: {error}");
        }
        assert!(parse_command("<Command>\ttab\r\n</Command>").is_ok());
    }

    #[test]
    fn a_bare_error_code_is_explained_by_the_sras_own_definitions() {
        let definitions = r#"<Response xmlns="x"><ErrorDefinitions>
            <ErrorDefinition code="42"><Description stringId="Description42"/><FixHint>Check the cable</FixHint></ErrorDefinition>
            <ErrorDefinition code="7"><Description>Plain text</Description></ErrorDefinition>
        </ErrorDefinitions></Response>"#;
        let strings = r#"<Response><Strings locale="en"><String id="Description42">Array unreachable</String></Strings></Response>"#;
        let known = ErrorDefinitions {
            errors: error_definitions(definitions).unwrap(),
            strings: self::strings(strings).unwrap(),
        };
        let mut bare = response_error(r#"<Response><Error code="42"/></Response>"#).unwrap().unwrap();
        bare.explain(&known);
        assert_eq!(bare.to_string(), "the SRA reported error 42: Array unreachable (fix: Check the cable)");
        let mut seven = response_error(r#"<Response><Error code="7"/></Response>"#).unwrap().unwrap();
        seven.explain(&known);
        assert_eq!(seven.description.as_deref(), Some("Plain text"));
        let mut unknown = response_error(r#"<Response><Error code="9"/></Response>"#).unwrap().unwrap();
        unknown.explain(&known);
        assert_eq!(unknown.to_string(), "the SRA reported error 9");
    }

    #[test]
    fn the_envelope_is_escaped_and_well_formed() {
        let envelope = Envelope {
            name: "discoverDevices".into(),
            output_file: "/tmp/o<1>.xml".into(),
            status_file: "/tmp/s.xml".into(),
            log_level: "verbose".into(),
            log_directory: "/srm/sra/log".into(),
            connections: Some("<?xml version=\"1.0\"?><Connections><Connection id=\"a\"/></Connections>".into()),
            parameters: Some("<DiscoverDevicesParameters><ArrayId>1</ArrayId></DiscoverDevicesParameters>".into()),
        };
        let xml = envelope.to_xml();
        let info = parse_command(&xml).unwrap();
        assert_eq!(info.output_file.as_deref(), Some("/tmp/o<1>.xml"));
        let root = parse(&xml).unwrap();
        assert!(root.child("Connections").and_then(|c| c.child("Connection")).is_some());
        assert_eq!(root.child("DiscoverDevicesParameters").and_then(|p| p.child_text("ArrayId")).as_deref(), Some("1"));
        assert!(check_fragment("<Connections/>", Some("Connections")).is_ok());
        assert!(check_fragment("<Connection/>", Some("Connections")).is_err());
    }
}
