//! Untrusted XML and its transport encodings, read strictly and within bounds before anything
//! else looks at them.
//!
//! Every SAML message Guichet reads (responses, logout messages, the IdP's metadata, a
//! decrypted assertion) goes through [`parse`] first. It refuses what SAML never needs and
//! attacks use:
//! - a DOCTYPE: entity expansion ("billion laughs"), external entities, and attribute defaults
//!   that make two parsers see two documents;
//! - comments: `admin@corp.example<!---->.evil.example` canonicalizes without the comment, so a
//!   signature over it holds while a parser reading only the first text node sees another name;
//! - processing instructions, a non-UTF-8 encoding, duplicate `ID`s (which element a signature
//!   reference means must never be in doubt);
//! - more depth or elements than a real message has.
//!
//! What comes out is a small namespace-resolved tree: everything downstream matches elements
//! by namespace URI and local name, never by prefix.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const NS_XMLENC11: &str = "http://www.w3.org/2009/xmlenc11#";
pub(crate) const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// How much structure a document may have.
pub(crate) struct Limits {
    pub max_depth: usize,
    pub max_elements: usize,
}

/// A SAML protocol message: a response with a few hundred multi-valued attributes stays below.
/// Kept tight because samael's reduction of signed content is quadratic in the element count
/// (about a second for 3,000 elements in a release build); only IdP-signed content reaches it.
pub(crate) const MESSAGE_LIMITS: Limits = Limits {
    max_depth: 64,
    max_elements: 5_000,
};

/// Metadata: a federation's aggregate (10 MiB at most) has a few hundred thousand elements.
pub(crate) const METADATA_LIMITS: Limits = Limits {
    max_depth: 64,
    max_elements: 2_000_000,
};

/// Attributes on one element (SAML elements have a handful).
const MAX_ATTRIBUTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("the XML is not UTF-8")]
    NotUtf8,
    #[error("a DOCTYPE (DTD, entities) is refused")]
    Doctype,
    #[error("an XML comment is refused")]
    Comment,
    #[error("an XML processing instruction is refused")]
    ProcessingInstruction,
    #[error("the XML nests deeper than {0} elements")]
    TooDeep(usize),
    #[error("the XML has more than {0} elements")]
    TooManyElements(usize),
    #[error("the XML has two elements with ID {:?}", clip(.0))]
    DuplicateId(String),
    #[error("unreadable XML: {0}")]
    Syntax(String),
    /// What two XML parsers (this one and libxml2, under xmlsec) could read differently.
    #[error("ambiguous XML refused: {0}")]
    Ambiguous(String),
}

impl XmlError {
    /// What only a crafted message contains (as opposed to a merely broken one).
    pub fn is_attack(&self) -> bool {
        matches!(
            self,
            Self::Doctype
                | Self::Comment
                | Self::ProcessingInstruction
                | Self::DuplicateId(_)
                | Self::Ambiguous(_)
        )
    }
}

/// Why a transport encoding (base64, deflate) cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EncodingError {
    #[error("not base64")]
    NotBase64,
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error("not deflate data")]
    NotDeflate,
    #[error("inflates to more than {0} bytes")]
    InflatesTooLarge(usize),
}

/// Standard base64, line breaks and spaces allowed (IdPs wrap at 64 or 76 columns), padding
/// optional; decoded size bounded before decoding.
pub(crate) fn decode_base64(value: &str, max_decoded: usize) -> Result<Vec<u8>, EncodingError> {
    let compact: Vec<u8> = value.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.len() / 4 * 3 > max_decoded + 3 {
        return Err(EncodingError::TooLarge(max_decoded));
    }
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = engine
        .decode(&compact)
        .map_err(|_| EncodingError::NotBase64)?;
    if decoded.len() > max_decoded {
        return Err(EncodingError::TooLarge(max_decoded));
    }
    Ok(decoded)
}

/// Raw DEFLATE (the HTTP-Redirect binding), stopping at `max` bytes: a few hundred bytes can
/// inflate to gigabytes.
pub(crate) fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, EncodingError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| EncodingError::NotDeflate)?;
    if out.len() > max {
        return Err(EncodingError::InflatesTooLarge(max));
    }
    Ok(out)
}

/// An element, its namespace resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    /// The namespace URI, `None` when unqualified.
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<Attr>,
    /// The namespace declarations on this element (`""` for the default namespace).
    pub ns_decls: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    /// An unqualified attribute (SAML's own attributes are all unqualified).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// A namespace-qualified attribute (`xsi:nil`).
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(ns) && a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.is(ns, name))
    }

    /// The first child element of that name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }

    /// The element's own text (its text children), surrounding whitespace trimmed.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for node in &self.children {
            if let Node::Text(t) = node {
                text.push_str(t);
            }
        }
        text.trim().to_owned()
    }

    /// This element and every element under it, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(element) = stack.pop() {
            out.push(element);
            let children: Vec<&Element> = element.elements().collect();
            stack.extend(children.into_iter().rev());
        }
        out
    }
}

/// Parses `xml` strictly (see the module documentation).
pub(crate) fn parse(xml: &str, limits: &Limits) -> Result<Element, XmlError> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    if let Some(c) = xml.chars().find(|c| !is_xml_char(*c)) {
        return Err(XmlError::Syntax(format!(
            "character U+{:04X} is not allowed in XML",
            u32::from(c)
        )));
    }
    let mut reader = Reader::from_str(xml);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut scopes = Scopes::default();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut ids = HashSet::new();
    let mut first = true;
    loop {
        let event = reader.read_event().map_err(syntax)?;
        let at_start = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) => {
                if !at_start {
                    return Err(XmlError::Syntax("misplaced XML declaration".into()));
                }
                // XML 1.1 has other line ends and characters: libxml2 and this parser would
                // read it differently.
                if decl.version().map_err(syntax)?.as_ref() != b"1.0" {
                    return Err(XmlError::Syntax("only XML 1.0 is read".into()));
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(syntax)?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8")
                        && !encoding.eq_ignore_ascii_case(b"utf8")
                    {
                        return Err(XmlError::NotUtf8);
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Comment(_) => return Err(XmlError::Comment),
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::Start(start) => {
                count(&stack, &root, &mut elements, limits)?;
                stack.push(element(&start, &mut scopes, &mut ids)?);
            }
            Event::Empty(start) => {
                count(&stack, &root, &mut elements, limits)?;
                let done = element(&start, &mut scopes, &mut ids)?;
                scopes.pop();
                close(&mut stack, &mut root, done);
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unbalanced end tag".into()))?;
                scopes.pop();
                close(&mut stack, &mut root, done);
            }
            Event::Text(text) => {
                let raw = std::str::from_utf8(&text).map_err(|_| XmlError::NotUtf8)?;
                if raw.contains("]]>") {
                    return Err(XmlError::Syntax("`]]>` in text".into()));
                }
                let normalized = normalize_line_ends(raw);
                add_text(&mut stack, &unescape(&normalized)?)?;
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data).map_err(|_| XmlError::NotUtf8)?;
                add_text(&mut stack, &normalize_line_ends(text))?;
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    root.ok_or_else(|| XmlError::Syntax("no root element".into()))
}

/// One more element: within the limits, and inside the one root.
fn count(
    stack: &[Element],
    root: &Option<Element>,
    elements: &mut usize,
    limits: &Limits,
) -> Result<(), XmlError> {
    if root.is_some() {
        return Err(XmlError::Syntax("content after the root element".into()));
    }
    if stack.len() >= limits.max_depth {
        return Err(XmlError::TooDeep(limits.max_depth));
    }
    *elements += 1;
    if *elements > limits.max_elements {
        return Err(XmlError::TooManyElements(limits.max_elements));
    }
    Ok(())
}

fn syntax(e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax(clip(&e.to_string()).into_owned())
}

/// Whether `c` may appear in an XML 1.0 document, written or as a character reference.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML's end-of-line handling (XML 1.0 §2.11), as libxml2 does it before anything else:
/// `\r\n` and a lone `\r` become `\n`.
fn normalize_line_ends(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
}

/// An attribute value as libxml2 reads it (XML 1.0 §3.3.3, every attribute being CDATA without
/// a DTD): line ends normalized, then each literal tab, newline or carriage return becomes a
/// space, then references are replaced (a `&#10;` stays a newline).
fn attribute_value(raw: &str) -> Result<String, XmlError> {
    if raw.contains('<') {
        return Err(XmlError::Syntax("`<` in an attribute value".into()));
    }
    let normalized = normalize_line_ends(raw).replace(['\t', '\n'], " ");
    Ok(unescape(&normalized)?.into_owned())
}

/// The five predefined entities and character references only (whatever features other crates
/// turn on in quick-xml); what they produce must be XML characters.
fn unescape(raw: &str) -> Result<Cow<'_, str>, XmlError> {
    let text = quick_xml::escape::unescape_with(raw, quick_xml::escape::resolve_xml_entity)
        .map_err(syntax)?;
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(XmlError::Syntax(format!(
            "a character reference to U+{:04X}, not an XML character",
            u32::from(c)
        )));
    }
    Ok(text)
}

/// Whether `name` is an NCName made of ASCII only: a letter or `_`, then letters, digits, `.`,
/// `-`, `_`. SAML's names are; any other name could be read differently by two parsers (the
/// Unicode ranges of XML names changed between editions).
pub(crate) fn is_ascii_ncname(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A qualified name split into its prefix and local name, both NCNames.
fn qname(raw: &[u8]) -> Result<(Option<&str>, &str), XmlError> {
    let name = std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8)?;
    let (prefix, local) = match name.split_once(':') {
        Some((prefix, local)) => (Some(prefix), local),
        None => (None, name),
    };
    if !is_ascii_ncname(local) || prefix.is_some_and(|p| !is_ascii_ncname(p)) {
        return Err(XmlError::Syntax(format!(
            "{:?} is not a qualified name",
            clip(name)
        )));
    }
    Ok((prefix, local))
}

/// The namespace bindings in scope: one frame per open element.
#[derive(Default)]
struct Scopes {
    frames: Vec<Vec<(String, String)>>,
}

impl Scopes {
    fn pop(&mut self) {
        self.frames.pop();
    }

    /// The namespace of `prefix` (`None`: the default namespace); `Ok(None)` when unqualified.
    fn resolve(&self, prefix: Option<&str>) -> Result<Option<String>, XmlError> {
        let wanted = prefix.unwrap_or("");
        if wanted == "xml" {
            return Ok(Some(NS_XML.to_owned()));
        }
        if wanted == "xmlns" {
            return Err(XmlError::Ambiguous("the xmlns prefix on a name".into()));
        }
        let bound = self
            .frames
            .iter()
            .rev()
            .flat_map(|frame| frame.iter())
            .find(|(p, _)| p == wanted)
            .map(|(_, uri)| uri.as_str());
        match (prefix, bound) {
            (_, Some("")) | (None, None) => Ok(None),
            (_, Some(uri)) => Ok(Some(uri.to_owned())),
            (Some(prefix), None) => Err(XmlError::Syntax(format!(
                "undeclared namespace prefix {prefix:?}"
            ))),
        }
    }
}

/// The attributes of a start tag, read strictly (XML 1.0 §3.1): each preceded by whitespace,
/// `name = "value"` or with single quotes, no duplicate. Returns raw names and raw values.
fn raw_attributes(raw: &[u8]) -> Result<Vec<(&[u8], &str)>, XmlError> {
    let raw = std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8)?;
    let bytes = raw.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let malformed = || XmlError::Syntax("malformed attributes".into());
    let mut out: Vec<(&[u8], &str)> = Vec::new();
    let mut i = 0;
    loop {
        let spaced_from = i;
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(out);
        }
        if i == spaced_from {
            return Err(malformed());
        }
        let name_start = i;
        while bytes
            .get(i)
            .copied()
            .is_some_and(|b| !is_space(b) && b != b'=')
        {
            i += 1;
        }
        let name = bytes.get(name_start..i).ok_or_else(malformed)?;
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(malformed());
        }
        i += 1;
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let quote = match bytes.get(i) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return Err(malformed()),
        };
        i += 1;
        let value_start = i;
        while bytes.get(i).is_some_and(|b| *b != quote) {
            i += 1;
        }
        let value = raw.get(value_start..i).ok_or_else(malformed)?;
        if i == bytes.len() {
            return Err(malformed());
        }
        i += 1;
        if out.len() >= MAX_ATTRIBUTES {
            return Err(XmlError::Syntax(format!(
                "more than {MAX_ATTRIBUTES} attributes on one element"
            )));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(XmlError::Syntax(format!(
                "attribute {:?} repeated",
                clip(&String::from_utf8_lossy(name))
            )));
        }
        out.push((name, value));
    }
}

/// A namespace declaration's value must read the same to every parser: no reference (quick-xml
/// would keep `&#x23;` as written where libxml2 reads `#`, hiding a `ds:Signature`), no
/// whitespace (normalized by libxml2) or control character.
fn check_namespace(prefix: &str, uri: &str) -> Result<(), XmlError> {
    let refuse = |why: &str| {
        Err(XmlError::Ambiguous(format!(
            "namespace declaration {:?}={:?}: {why}",
            if prefix.is_empty() {
                "xmlns".to_owned()
            } else {
                format!("xmlns:{prefix}")
            },
            clip(uri)
        )))
    };
    if uri.contains('&') {
        return refuse("a reference in a namespace name");
    }
    if uri.contains('<') {
        return Err(XmlError::Syntax("`<` in an attribute value".into()));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("whitespace in a namespace name");
    }
    if prefix == "xmlns" {
        return refuse("the xmlns prefix cannot be declared");
    }
    if (prefix == "xml") != (uri == NS_XML) || uri == NS_XMLNS {
        return refuse("the xml prefix and namespace go together only");
    }
    if !prefix.is_empty() && uri.is_empty() {
        return refuse("a prefix cannot be undeclared");
    }
    Ok(())
}

fn element(
    start: &BytesStart<'_>,
    scopes: &mut Scopes,
    ids: &mut HashSet<String>,
) -> Result<Element, XmlError> {
    let qualified = start.name();
    let (prefix, name) = qname(qualified.as_ref())?;
    let attributes = raw_attributes(start.attributes_raw())?;
    // Declarations first: they apply to the element's own name and attributes.
    let mut ns_decls = Vec::new();
    let mut regular = Vec::new();
    for (raw_name, raw_value) in attributes {
        let declared = if raw_name == b"xmlns" {
            Some(String::new())
        } else {
            raw_name
                .strip_prefix(b"xmlns:")
                .map(|p| {
                    std::str::from_utf8(p)
                        .ok()
                        .filter(|p| is_ascii_ncname(p))
                        .map(str::to_owned)
                        .ok_or_else(|| XmlError::Syntax("malformed namespace prefix".into()))
                })
                .transpose()?
        };
        match declared {
            Some(prefix) => {
                check_namespace(&prefix, raw_value)?;
                ns_decls.push((prefix, raw_value.to_owned()));
            }
            None => regular.push((raw_name, raw_value)),
        }
    }
    scopes.frames.push(ns_decls.clone());
    let ns = scopes.resolve(prefix)?;
    let mut attrs: Vec<Attr> = Vec::new();
    for (raw_name, raw_value) in regular {
        let (prefix, local) = qname(raw_name)?;
        let attr_ns = match prefix {
            Some(prefix) => scopes.resolve(Some(prefix))?,
            None => None,
        };
        // libxml2's xmlGetProp (what xmlsec reads URI, Algorithm and ID with) ignores
        // namespaces and takes the first attribute of that local name: two of them, and the
        // pre-scan and xmlsec could read different values.
        if attrs.iter().any(|a| a.name == local) {
            return Err(XmlError::Ambiguous(format!(
                "two attributes named {local:?} on one element"
            )));
        }
        if prefix.is_some() && local == "ID" {
            return Err(XmlError::Ambiguous(
                "a namespace-qualified ID attribute".into(),
            ));
        }
        let value = attribute_value(raw_value)?;
        let is_id = match attr_ns.as_deref() {
            None => local == "ID",
            Some(NS_XML) => local == "id",
            Some(_) => false,
        };
        if is_id && !ids.insert(value.clone()) {
            return Err(XmlError::DuplicateId(clip(&value).into_owned()));
        }
        attrs.push(Attr {
            ns: attr_ns,
            name: local.to_owned(),
            value,
        });
    }
    Ok(Element {
        ns,
        name: name.to_owned(),
        attrs,
        ns_decls,
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, done: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(done)),
        None => *root = Some(done),
    }
}

fn add_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(previous)) = parent.children.last_mut() {
                previous.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

/// Longest untrusted value quoted in an error (audit reasons, logs).
pub(crate) const MAX_ECHO_CHARS: usize = 256;

/// `value` cut to [`MAX_ECHO_CHARS`] characters, an ellipsis marking the cut: what an error
/// message quotes of a message's content (unsigned content may be 256 KiB long).
pub(crate) fn clip(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        None => Cow::Borrowed(value),
        Some((at, _)) => Cow::Owned(format!("{}…", value.get(..at).unwrap_or_default())),
    }
}

/// An optional value, clipped (see [`clip`]).
pub(crate) fn clip_opt(value: &Option<String>) -> Option<Cow<'_, str>> {
    value.as_deref().map(clip)
}

/// A list of values as `Debug` shows it, clipped as a whole (see [`clip`]).
pub(crate) fn clip_list(values: &[String]) -> String {
    clip(&format!("{values:?}")).into_owned()
}
