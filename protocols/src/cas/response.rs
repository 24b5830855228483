//! Parsing a CAS `serviceValidate` answer (CAS 2.0 and 3.0 protocol) with a real XML parser.
//!
//! What is accepted is narrow on purpose: no DOCTYPE (no entity tricks), a root
//! `cas:serviceResponse`, and **exactly one** element under it, which must be
//! `cas:authenticationSuccess` (or `cas:authenticationFailure`, reported as such) with exactly
//! one `cas:user`. A success element anywhere else (inside a failure message that echoes the
//! ticket, say) counts for nothing. Proxy answers (`cas:proxies`) are refused: Guichet only
//! accepts service tickets and never asks for proxy-granting tickets.
//!
//! Attributes under `cas:attributes` become multi-valued principal attributes, by local name:
//! a repeated element adds a value. A structured attribute (an element with child elements, as
//! ENT portals send for structures and functions) is flattened into one attribute per leaf,
//! named by the path from the attribute element joined with `.`
//! (`<structure><UAI>0750001A</UAI></structure>` → `structure.UAI = 0750001A`). The
//! `<cas:attribute name="..." value="..."/>` form of some CAS 2.0 servers is read too.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

pub(crate) const CAS_NAMESPACE: &[u8] = b"http://www.yale.edu/tp/cas";
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 16;
/// Most elements accepted in one answer.
const MAX_ELEMENTS: usize = 2000;
/// Longest text of one element.
const MAX_TEXT_BYTES: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct CasSuccess {
    pub user: String,
    pub attributes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct CasFailure {
    /// `INVALID_TICKET`, `INVALID_SERVICE`, `INVALID_REQUEST`...
    pub code: String,
    pub message: String,
}

/// What the server said (`Ok`), or why its answer cannot be trusted (`Err`).
pub type ServiceResponse = Result<CasSuccess, CasFailure>;

/// A parsed element: bounded in depth, count and text size.
#[derive(Debug)]
pub(crate) struct Element {
    /// In the CAS namespace (or, for [`read_tree`] callers that pass another, in that one).
    pub in_namespace: bool,
    pub name: String,
    pub attributes: Vec<(String, String)>,
    /// Its own text (not its children's), entities resolved.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.in_namespace && c.name == name)
    }
}

/// A document the bounded tree reader refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("DOCTYPE refused")]
    DocType,
    #[error("more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("elements nested too deep")]
    TooDeep,
    #[error("text too long")]
    TextTooLong,
    #[error("unbalanced end tag")]
    Unbalanced,
    #[error("unclosed element")]
    Unclosed,
    #[error("no root element")]
    NoRoot,
    #[error("more than one root element")]
    SeveralRoots,
}

fn malformed(what: &'static str, reason: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

/// A validation answer of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("root element is {0:?}, not cas:serviceResponse")]
    Root(String),
    #[error("{0} elements under cas:serviceResponse, expected exactly one")]
    AnswerCount(usize),
    #[error("unexpected {0:?} under cas:serviceResponse")]
    UnexpectedAnswer(String),
    #[error("proxy ticket answer refused (cas:proxies)")]
    ProxyTicket,
    #[error("{0} cas:user elements, expected exactly one")]
    UserCount(usize),
    #[error("cas:user has child elements")]
    UserHasChildren,
    #[error("empty cas:user")]
    EmptyUser,
    #[error("more than one cas:attributes")]
    SeveralAttributeSections,
}

fn element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart,
    namespace: &[u8],
) -> Result<Element, XmlError> {
    let (resolved, local) = reader.resolve_element(start.name());
    let in_namespace = matches!(resolved, ResolveResult::Bound(Namespace(ns)) if ns == namespace);
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| malformed("attribute", e))?;
        let value = attribute
            .unescape_value()
            .map_err(|e| malformed("attribute value", e))?;
        attributes.push((
            String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        in_namespace,
        name: String::from_utf8_lossy(local.as_ref()).into_owned(),
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Reads a whole document into a tree. Refuses a DOCTYPE, more than one root, unbalanced or
/// malformed markup, and anything past the bounds.
pub(crate) fn read_tree(xml: &[u8], namespace: &[u8]) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut attach = |element: Element, stack: &mut Vec<Element>| -> Result<(), XmlError> {
        match stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None if root.is_none() => root = Some(element),
            None => return Err(XmlError::SeveralRoots),
        }
        Ok(())
    };
    loop {
        let event = reader.read_event().map_err(|e| malformed("XML", e))?;
        match event {
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let parsed = element(&reader, start, namespace)?;
                if matches!(event, Event::Empty(_)) {
                    attach(parsed, &mut stack)?;
                } else {
                    stack.push(parsed);
                }
            }
            Event::End(_) => {
                let done = stack.pop().ok_or(XmlError::Unbalanced)?;
                attach(done, &mut stack)?;
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| malformed("text", e))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data)
                    .map_err(|e| malformed("CDATA", e))?
                    .to_owned();
                push_text(&mut stack, &text)?;
            }
            Event::Eof => break,
            // The XML declaration, comments, processing instructions.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Unclosed);
    }
    root.ok_or(XmlError::NoRoot)
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    // Text outside the root (whitespace between declarations) belongs to nothing.
    if let Some(open) = stack.last_mut() {
        if open.text.len() + text.len() > MAX_TEXT_BYTES {
            return Err(XmlError::TextTooLong);
        }
        open.text.push_str(text);
    }
    Ok(())
}

pub fn parse(xml: &[u8]) -> Result<ServiceResponse, AnswerError> {
    let root = read_tree(xml, CAS_NAMESPACE)?;
    if !(root.in_namespace && root.name == "serviceResponse") {
        return Err(AnswerError::Root(root.name));
    }
    let [answer] = root.children.as_slice() else {
        return Err(AnswerError::AnswerCount(root.children.len()));
    };
    match (answer.in_namespace, answer.name.as_str()) {
        (true, "authenticationFailure") => Ok(Err(CasFailure {
            code: answer
                .attribute("code")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            message: truncate(answer.text.trim(), 300),
        })),
        (true, "authenticationSuccess") => success(answer).map(Ok),
        _ => Err(AnswerError::UnexpectedAnswer(answer.name.clone())),
    }
}

fn success(answer: &Element) -> Result<CasSuccess, AnswerError> {
    if answer.children_named("proxies").next().is_some() {
        return Err(AnswerError::ProxyTicket);
    }
    let users: Vec<&Element> = answer.children_named("user").collect();
    let [user] = users.as_slice() else {
        return Err(AnswerError::UserCount(users.len()));
    };
    if !user.children.is_empty() {
        return Err(AnswerError::UserHasChildren);
    }
    let user = user.text.trim().to_owned();
    if user.is_empty() {
        return Err(AnswerError::EmptyUser);
    }
    let sections: Vec<&Element> = answer.children_named("attributes").collect();
    if sections.len() > 1 {
        return Err(AnswerError::SeveralAttributeSections);
    }
    let mut attributes = BTreeMap::new();
    for section in sections {
        for attribute in &section.children {
            match (
                attribute.name.as_str(),
                attribute.attribute("name"),
                attribute.attribute("value"),
            ) {
                ("attribute", Some(name), Some(value)) if attribute.children.is_empty() => {
                    attributes
                        .entry(name.to_owned())
                        .or_insert_with(Vec::new)
                        .push(value.to_owned());
                }
                _ => flatten(attribute, "", &mut attributes),
            }
        }
    }
    Ok(CasSuccess { user, attributes })
}

/// One attribute per leaf, named by the path from the attribute element.
fn flatten(element: &Element, prefix: &str, into: &mut BTreeMap<String, Vec<String>>) {
    let name = if prefix.is_empty() {
        element.name.clone()
    } else {
        format!("{prefix}.{}", element.name)
    };
    if element.children.is_empty() {
        into.entry(name)
            .or_default()
            .push(element.text.trim().to_owned());
    } else {
        for child in &element.children {
            flatten(child, &name, into);
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
