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

use std::collections::HashSet;
use std::io::Read;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::NsReader;

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const NS_XMLENC11: &str = "http://www.w3.org/2009/xmlenc11#";

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
    #[error("the XML has two elements with ID {0:?}")]
    DuplicateId(String),
    #[error("unreadable XML: {0}")]
    Syntax(String),
}

impl XmlError {
    /// What only a crafted message contains (as opposed to a merely broken one).
    pub fn is_attack(&self) -> bool {
        matches!(
            self,
            Self::Doctype | Self::Comment | Self::ProcessingInstruction | Self::DuplicateId(_)
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
    let mut reader = NsReader::from_str(xml);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut ids = HashSet::new();
    let mut first = true;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(syntax)?;
        let ns = owned_namespace(ns)?;
        let at_start = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) => {
                if !at_start {
                    return Err(XmlError::Syntax("misplaced XML declaration".into()));
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
                stack.push(element(&reader, ns, &start, &mut ids)?);
            }
            Event::Empty(start) => {
                count(&stack, &root, &mut elements, limits)?;
                let done = element(&reader, ns, &start, &mut ids)?;
                close(&mut stack, &mut root, done);
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, done);
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(syntax)?;
                add_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data).map_err(|_| XmlError::NotUtf8)?;
                add_text(&mut stack, text)?;
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
    XmlError::Syntax(e.to_string())
}

fn owned_namespace(ns: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match ns {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => std::str::from_utf8(ns.as_ref())
            .map(|s| Some(s.to_owned()))
            .map_err(|_| XmlError::NotUtf8),
        ResolveResult::Unknown(prefix) => Err(XmlError::Syntax(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(&prefix)
        ))),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: Option<String>,
    start: &BytesStart<'_>,
    ids: &mut HashSet<String>,
) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.local_name().as_ref())
        .map_err(|_| XmlError::NotUtf8)?
        .to_owned();
    let mut attrs = Vec::new();
    let mut ns_decls = Vec::new();
    for (count, attr) in start.attributes().enumerate() {
        if count >= MAX_ATTRIBUTES {
            return Err(XmlError::Syntax(format!(
                "more than {MAX_ATTRIBUTES} attributes on one element"
            )));
        }
        let attr = attr.map_err(syntax)?;
        let value = attr.unescape_value().map_err(syntax)?.into_owned();
        if let Some(binding) = attr.key.as_namespace_binding() {
            let prefix = match binding {
                PrefixDeclaration::Default => String::new(),
                PrefixDeclaration::Named(prefix) => std::str::from_utf8(prefix)
                    .map_err(|_| XmlError::NotUtf8)?
                    .to_owned(),
            };
            ns_decls.push((prefix, value));
            continue;
        }
        let (attr_ns, local) = reader.resolve_attribute(attr.key);
        let attr_ns = owned_namespace(attr_ns)?;
        let local = std::str::from_utf8(local.as_ref())
            .map_err(|_| XmlError::NotUtf8)?
            .to_owned();
        if attr_ns.is_none() && local == "ID" && !ids.insert(value.clone()) {
            return Err(XmlError::DuplicateId(value));
        }
        attrs.push(Attr {
            ns: attr_ns,
            name: local,
            value,
        });
    }
    Ok(Element {
        ns,
        name,
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
