//! Signatures: XML signatures on messages and metadata, and HTTP-Redirect query signatures.
//!
//! Verification only ever uses the IdP's certificates from its metadata (or, for the metadata
//! itself, `metadata_signing_certificates`): the `ds:KeyInfo` a message carries is ignored
//! (xmlsec is handed the key, so it never looks there), so a message signed by a key of the
//! attacker's own choosing is simply invalid.
//!
//! Before xmlsec sees a document, [`check_signatures`] checks every `ds:Signature` in it, wherever
//! it is, against the SAML profile of XML signatures (SAML core §5.4): enveloped in the element it
//! signs, one `Reference` whose URI is `#` + that element's `ID`, canonicalization and transforms
//! from the short list SAML uses (no XPath, no XSLT, no external URI), allowed algorithms only,
//! and nothing else xmlsec would dereference: no `ds:Object`, `ds:Manifest` or
//! `ds:RetrievalMethod`, no `URI` attribute anywhere in a signature but on its checked
//! `Reference`. This is the only barrier: samael restricts neither xmlsec's reference URIs nor
//! its transforms, and xmlsec verifies every `ds:Signature` libxml2 finds (fetching `http://` and
//! `file://` references, running XSLT) before any signature value is checked. It holds because
//! [`xml_guard`] reads the document exactly as libxml2 does (namespace names, attribute values).
//!
//! What is then read is the signed content alone: xmlsec's pre-digest data
//! ([`ReduceMode::PreDigest`], the canonical bytes the digest covers, the enveloped signature
//! removed), parsed again by [`xml_guard`]. Never `ValidateAndMark` (which keeps unsigned
//! ancestors), and never the original document once a signature is verified. Metadata is read
//! the same way ([`verify_signed_root`]): its root's signature must be the only one, and what
//! comes out must be that root.
//!
//! xmlsec runs on a blocking thread with a timeout (see [`super::blocking`]): a pathological
//! input can neither pin an async worker nor hold a login forever.
//!
//! SHA-1: samael's [`AllowedSignatureAlgorithm`] has no rsa-sha1, so with `allow_sha1` xmlsec is
//! given no restriction (`None`) and [`check_signatures`] alone enforces the list (the SHA-2
//! family plus rsa-sha1/ecdsa-sha1 and the sha1 digest); without it, both enforce the SHA-2
//! list.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use std::io::Write;

use super::settings::{KeyKind, SigningKey};
use super::xml_guard::{self, clip, is_ascii_ncname, Element, Limits, XmlError, NS_DSIG};

pub(crate) const C14N_EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
pub(crate) const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

pub(crate) const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub(crate) const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const DIGEST_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const DIGEST_SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
const NS_DSIG11: &str = "http://www.w3.org/2009/xmldsig11#";

/// What xmlsec may accept when SHA-1 is not allowed.
const SHA2_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Longest signature value accepted in a query (RSA 8192 bits).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// A signature algorithm, as XML signatures and the HTTP-Redirect binding name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha1,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SigAlg {
    const ALL: [SigAlg; 8] = [
        SigAlg::RsaSha1,
        SigAlg::RsaSha256,
        SigAlg::RsaSha384,
        SigAlg::RsaSha512,
        SigAlg::EcdsaSha1,
        SigAlg::EcdsaSha256,
        SigAlg::EcdsaSha384,
        SigAlg::EcdsaSha512,
    ];

    pub fn uri(self) -> &'static str {
        match self {
            SigAlg::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            SigAlg::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            SigAlg::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            SigAlg::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            SigAlg::EcdsaSha1 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
            SigAlg::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            SigAlg::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            SigAlg::EcdsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        }
    }

    pub fn from_uri(uri: &str) -> Option<SigAlg> {
        Self::ALL.into_iter().find(|alg| alg.uri() == uri)
    }

    fn digest(self) -> MessageDigest {
        match self {
            SigAlg::RsaSha1 | SigAlg::EcdsaSha1 => MessageDigest::sha1(),
            SigAlg::RsaSha256 | SigAlg::EcdsaSha256 => MessageDigest::sha256(),
            SigAlg::RsaSha384 | SigAlg::EcdsaSha384 => MessageDigest::sha384(),
            SigAlg::RsaSha512 | SigAlg::EcdsaSha512 => MessageDigest::sha512(),
        }
    }

    fn is_sha1(self) -> bool {
        matches!(self, SigAlg::RsaSha1 | SigAlg::EcdsaSha1)
    }

    fn is_ecdsa(self) -> bool {
        matches!(
            self,
            SigAlg::EcdsaSha1 | SigAlg::EcdsaSha256 | SigAlg::EcdsaSha384 | SigAlg::EcdsaSha512
        )
    }

    /// What our key signs with.
    pub fn for_key(key: &SigningKey) -> SigAlg {
        match key.kind {
            KeyKind::Rsa => SigAlg::RsaSha256,
            KeyKind::Ec(_) => SigAlg::EcdsaSha256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("signature algorithm {} refused (SHA-1; allow_sha1 is off)", clip(.0))]
    Sha1Refused(String),
    #[error("signature algorithm {:?} not supported", clip(.0))]
    UnsupportedAlgorithm(String),
    #[error("malformed signature: {0}")]
    Shape(&'static str),
    #[error("a signature is not enveloped in the element its reference names")]
    NotEnveloped,
    #[error("no signature")]
    Missing,
    #[error(
        "invalid signature (content altered, or not signed by the IdP's metadata certificates)"
    )]
    Invalid,
    #[error("signed content unreadable: {0}")]
    Reduced(XmlError),
    #[error("the signature covers another element than the document's root")]
    NotTheRoot,
    #[error("signed metadata must carry its root's signature only (found {0})")]
    OtherSignatures(usize),
}

/// Checks the shape and algorithms of every `ds:Signature` under `root`, and that nothing in the
/// document would make xmlsec dereference a URI (see the module documentation); returns the `ID`s
/// of the elements that carry one.
pub(crate) fn check_signatures(
    root: &Element,
    allow_sha1: bool,
) -> Result<Vec<String>, SignatureError> {
    if root.is(NS_DSIG, "Signature") {
        return Err(SignatureError::NotEnveloped);
    }
    let mut signed = Vec::new();
    let mut checked: Vec<&Element> = Vec::new();
    for parent in root.descendants() {
        for signature in parent.children_named(NS_DSIG, "Signature") {
            let (id, reference) = check_shape(signature, allow_sha1)?;
            if parent.attr("ID") != Some(id.as_str()) {
                return Err(SignatureError::NotEnveloped);
            }
            checked.push(reference);
            signed.push(id);
        }
    }
    check_dereferences(root, false, &checked)?;
    Ok(signed)
}

/// Nothing xmlsec would follow but the checked references: no `ds:Object`, `ds:Manifest` (whose
/// references xmlsec verifies too), `ds:RetrievalMethod`, no `ds:Reference` outside a checked
/// `SignedInfo`, no `URI` attribute (whatever its prefix: libxml2's `xmlGetProp` ignores it) on a
/// signature element or inside a signature but the checked references' own.
fn check_dereferences(
    element: &Element,
    in_signature: bool,
    checked: &[&Element],
) -> Result<(), SignatureError> {
    let is_ds = element.ns.as_deref() == Some(NS_DSIG);
    let is_checked = checked.iter().any(|r| std::ptr::eq(*r, element));
    if is_ds
        && matches!(
            element.name.as_str(),
            "Object" | "Manifest" | "RetrievalMethod"
        )
    {
        return Err(SignatureError::Shape(
            "ds:Object, ds:Manifest and ds:RetrievalMethod are refused",
        ));
    }
    if is_ds && element.name == "Reference" && !is_checked {
        return Err(SignatureError::Shape(
            "a ds:Reference outside a signature's SignedInfo",
        ));
    }
    let in_signature = in_signature || element.is(NS_DSIG, "Signature");
    if in_signature || is_ds || element.ns.as_deref() == Some(NS_DSIG11) {
        let stray_uri = element
            .attrs
            .iter()
            .any(|a| a.name == "URI" && !(is_checked && a.ns.is_none()));
        if stray_uri {
            return Err(SignatureError::Shape(
                "a URI attribute other than the signature's Reference URI",
            ));
        }
    }
    element
        .elements()
        .try_for_each(|child| check_dereferences(child, in_signature, checked))
}

/// The element children of `element`, which must all be in the XML signature namespace and
/// follow `expected` (name, and whether it may be left out) in that order, each once.
fn ds_children<'a>(
    element: &'a Element,
    expected: &[(&'static str, bool)],
    what: &'static str,
) -> Result<Vec<Option<&'a Element>>, SignatureError> {
    let mut children = element.elements().peekable();
    let mut out = Vec::with_capacity(expected.len());
    for (name, optional) in expected {
        match children.peek() {
            Some(child) if child.is(NS_DSIG, name) => {
                out.push(Some(*child));
                children.next();
            }
            _ if *optional => out.push(None),
            _ => return Err(SignatureError::Shape(what)),
        }
    }
    if children.next().is_some() {
        return Err(SignatureError::Shape(what));
    }
    Ok(out)
}

/// One signature's shape; returns the `ID` its single reference names, and that reference.
fn check_shape(
    signature: &Element,
    allow_sha1: bool,
) -> Result<(String, &Element), SignatureError> {
    let parts = ds_children(
        signature,
        &[
            ("SignedInfo", false),
            ("SignatureValue", false),
            ("KeyInfo", true),
        ],
        "Signature is SignedInfo, SignatureValue and KeyInfo only",
    )?;
    let Some(Some(info)) = parts.first().copied() else {
        return Err(SignatureError::Shape("exactly one SignedInfo"));
    };
    let parts = ds_children(
        info,
        &[
            ("CanonicalizationMethod", false),
            ("SignatureMethod", false),
            ("Reference", false),
        ],
        "SignedInfo is CanonicalizationMethod, SignatureMethod and exactly one Reference",
    )?;
    let [Some(c14n), Some(method), Some(reference)] = parts.as_slice() else {
        return Err(SignatureError::Shape("exactly one Reference"));
    };
    let c14n = c14n
        .attr("Algorithm")
        .ok_or(SignatureError::Shape("no CanonicalizationMethod"))?;
    if ![C14N_EXC, C14N_10, C14N_11].contains(&c14n) {
        return Err(SignatureError::UnsupportedAlgorithm(c14n.to_owned()));
    }
    let method = method
        .attr("Algorithm")
        .ok_or(SignatureError::Shape("no SignatureMethod"))?;
    check_algorithm(method, allow_sha1)?;
    // `#` and an NCName: xmlsec turns it into `xpointer(id('...'))`, so nothing but a name
    // (no quote, parenthesis, slash, percent or space) may follow.
    let id = reference
        .attr("URI")
        .and_then(|uri| uri.strip_prefix('#'))
        .filter(|id| is_ascii_ncname(id))
        .ok_or(SignatureError::Shape("the Reference URI must be #ID"))?;
    let parts = ds_children(
        reference,
        &[
            ("Transforms", true),
            ("DigestMethod", false),
            ("DigestValue", false),
        ],
        "Reference is Transforms, DigestMethod and DigestValue only",
    )?;
    let [transforms, Some(digest), Some(_)] = parts.as_slice() else {
        return Err(SignatureError::Shape("no DigestMethod"));
    };
    if let Some(transforms) = transforms {
        let mut count = 0;
        for transform in transforms.elements() {
            count += 1;
            let algorithm = transform.attr("Algorithm").unwrap_or_default();
            if !transform.is(NS_DSIG, "Transform")
                || count > 3
                || ![ENVELOPED, C14N_EXC, C14N_10, C14N_11].contains(&algorithm)
            {
                return Err(SignatureError::UnsupportedAlgorithm(format!(
                    "transform {algorithm}"
                )));
            }
        }
    }
    let digest = digest
        .attr("Algorithm")
        .ok_or(SignatureError::Shape("no DigestMethod"))?;
    match digest {
        DIGEST_SHA256 | DIGEST_SHA384 | DIGEST_SHA512 => {}
        DIGEST_SHA1 if allow_sha1 => {}
        DIGEST_SHA1 => return Err(SignatureError::Sha1Refused(digest.to_owned())),
        other => return Err(SignatureError::UnsupportedAlgorithm(other.to_owned())),
    }
    Ok((id.to_owned(), *reference))
}

fn check_algorithm(uri: &str, allow_sha1: bool) -> Result<SigAlg, SignatureError> {
    match SigAlg::from_uri(uri) {
        Some(alg) if alg.is_sha1() && !allow_sha1 => {
            Err(SignatureError::Sha1Refused(uri.to_owned()))
        }
        Some(alg) => Ok(alg),
        None => Err(SignatureError::UnsupportedAlgorithm(uri.to_owned())),
    }
}

/// Verifies every signature in `xml` with `certs` and returns the signed content alone, rooted
/// at the signed element (the Response when both it and its assertion are signed), read within
/// `limits`.
///
/// The content is xmlsec's pre-digest data: the very bytes whose digest the signature covers
/// (canonicalized, the enveloped signature removed), so nothing unsigned can reach what is read
/// next. It also costs time linear in the size of the document, where samael's
/// `ValidateAndMarkNoAncestors` pruning grows quadratically with it (a response carrying 200
/// attribute values: 2.1 ms against 44 ms, see docs/benchmarks.md).
///
/// [`check_signatures`] must have passed on the same document first. Blocking (xmlsec): call it
/// off the async workers.
pub(crate) fn verify_and_reduce(
    xml: &str,
    certs: &[CertificateDer],
    allow_sha1: bool,
    limits: &Limits,
) -> Result<Element, SignatureError> {
    let allowed = if allow_sha1 {
        None
    } else {
        Some(SHA2_ALGORITHMS)
    };
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        certs,
        ReduceMode::PreDigest,
        allowed,
    )
    .map_err(|_| SignatureError::Invalid)?;
    xml_guard::parse(&reduced, limits).map_err(SignatureError::Reduced)
}

/// A metadata document's own signature: enveloped in the root, covering it by its `ID`, the
/// only signature in the document (xmlsec verifies every one), valid for one of `certs`.
/// Returns what was signed (the root, re-read from the pre-digest data), which is what the
/// caller reads from then on.
pub(crate) fn verify_signed_root(
    xml: &str,
    root: &Element,
    certs: &[CertificateDer],
    allow_sha1: bool,
    limits: &Limits,
) -> Result<Element, SignatureError> {
    let signed = check_signatures(root, allow_sha1)?;
    if root.child(NS_DSIG, "Signature").is_none() {
        return Err(if signed.is_empty() {
            SignatureError::Missing
        } else {
            SignatureError::NotEnveloped
        });
    }
    if signed.len() != 1 {
        return Err(SignatureError::OtherSignatures(signed.len()));
    }
    let signed_root = verify_and_reduce(xml, certs, allow_sha1, limits)?;
    if signed_root.ns != root.ns
        || signed_root.name != root.name
        || signed_root.attr("ID").is_none()
        || signed_root.attr("ID") != root.attr("ID")
    {
        return Err(SignatureError::NotTheRoot);
    }
    Ok(signed_root)
}

/// An enveloped signature template for the element whose `ID` is `id`, to be placed right
/// after its Issuer and filled by [`sign_xml`].
pub(crate) fn signature_template(id: &str, key: &SigningKey) -> String {
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="{dsig}"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/>"#,
            r#"<ds:SignatureMethod Algorithm="{alg}"/>"#,
            r##"<ds:Reference URI="#{id}"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="{enveloped}"/><ds:Transform Algorithm="{c14n}"/>"#,
            r#"</ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue/>"#,
            r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data>"#,
            r#"<ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"#,
            r#"</ds:Signature>"#
        ),
        dsig = NS_DSIG,
        c14n = C14N_EXC,
        alg = SigAlg::for_key(key).uri(),
        id = quick_xml::escape::escape(id),
        enveloped = ENVELOPED,
        digest = DIGEST_SHA256,
        cert = key.cert_b64,
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign: {0}")]
pub(crate) struct SignError(pub String);

/// Fills the signature template in `xml` (xmlsec, with our key).
pub(crate) fn sign_xml(xml: &str, key: &SigningKey) -> Result<String, SignError> {
    Crypto::sign_xml(xml, &key.key_der).map_err(|e| SignError(e.to_string()))
}

/// Raw DEFLATE then base64: a message for the HTTP-Redirect binding.
pub(crate) fn deflate_base64(xml: &str) -> Result<String, SignError> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(xml.as_bytes())
        .map_err(|e| SignError(e.to_string()))?;
    let deflated = encoder.finish().map_err(|e| SignError(e.to_string()))?;
    Ok(STANDARD.encode(deflated))
}

/// One query component, form-encoded.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The HTTP-Redirect binding's query (SAML bindings §3.4.4.1): `{param}=...&RelayState=...`
/// then, with a key, `&SigAlg=...&Signature=...` over exactly the octets sent before it.
pub(crate) fn redirect_query(
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&SigningKey>,
) -> Result<String, SignError> {
    let mut query = format!("{param}={}", encode(&deflate_base64(xml)?));
    if let Some(relay_state) = relay_state {
        query.push_str("&RelayState=");
        query.push_str(&encode(relay_state));
    }
    if let Some(key) = key {
        let alg = SigAlg::for_key(key);
        query.push_str("&SigAlg=");
        query.push_str(&encode(alg.uri()));
        let signature = sign_bytes(key, alg, query.as_bytes())?;
        query.push_str("&Signature=");
        query.push_str(&encode(&STANDARD.encode(signature)));
    }
    Ok(query)
}

/// `location` with `query` appended to whatever query it already has.
pub(crate) fn with_query(location: &url::Url, query: &str) -> url::Url {
    let mut url = location.clone();
    let full = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
        _ => query.to_owned(),
    };
    url.set_query(Some(&full));
    url
}

fn sign_bytes(key: &SigningKey, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SignError> {
    let fail = |e: openssl::error::ErrorStack| SignError(e.to_string());
    let mut signer = openssl::sign::Signer::new(alg.digest(), &key.key).map_err(fail)?;
    signer.update(data).map_err(fail)?;
    let der = signer.sign_to_vec().map_err(fail)?;
    match key.kind {
        KeyKind::Rsa => Ok(der),
        // XML signatures (and so SigAlg) carry ECDSA as r || s, each the field's length.
        KeyKind::Ec(len) => {
            let signature = EcdsaSig::from_der(&der).map_err(fail)?;
            let mut raw = signature.r().to_vec_padded(len as i32).map_err(fail)?;
            raw.extend(signature.s().to_vec_padded(len as i32).map_err(fail)?);
            Ok(raw)
        }
    }
}

/// A message received by the HTTP-Redirect binding, its signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedirectMessage {
    /// `SAMLRequest` or `SAMLResponse`.
    pub param: &'static str,
    /// The message's value, percent-decoded (base64 of DEFLATE).
    pub message: String,
    pub relay_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedirectError {
    #[error("the query carries no SAMLRequest or SAMLResponse")]
    NoMessage,
    #[error("the query repeats {0}")]
    Repeated(&'static str),
    #[error("the query is not UTF-8 once decoded")]
    NotUtf8,
    #[error("the message is not signed (no SigAlg and Signature)")]
    Unsigned,
    #[error(transparent)]
    Algorithm(SignatureError),
    #[error("the Signature is not base64 of a signature")]
    BadSignatureValue,
    #[error("invalid query signature (not by the IdP's metadata certificates, or altered)")]
    Invalid,
}

/// Reads an HTTP-Redirect binding query and verifies its signature over the parameters exactly
/// as received (re-encoding decoded values would not give the IdP's octets back).
pub(crate) fn verify_redirect(
    raw_query: &str,
    keys: &[PKey<Public>],
    allow_sha1: bool,
) -> Result<RedirectMessage, RedirectError> {
    const FIELDS: [&str; 5] = [
        "SAMLRequest",
        "SAMLResponse",
        "RelayState",
        "SigAlg",
        "Signature",
    ];
    let mut raw: [Option<&str>; 5] = [None; 5];
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = form_decode(key)?;
        if let Some(i) = FIELDS.iter().position(|f| *f == key) {
            let slot = raw.get_mut(i).ok_or(RedirectError::NoMessage)?;
            if slot.replace(value).is_some() {
                return Err(RedirectError::Repeated(
                    FIELDS.get(i).copied().unwrap_or("?"),
                ));
            }
        }
    }
    let [request, response, relay_state, sig_alg, signature] = raw;
    let (param, message) = match (request, response) {
        (Some(m), None) => ("SAMLRequest", m),
        (None, Some(m)) => ("SAMLResponse", m),
        (Some(_), Some(_)) => return Err(RedirectError::Repeated("SAMLRequest and SAMLResponse")),
        (None, None) => return Err(RedirectError::NoMessage),
    };
    let (Some(sig_alg), Some(signature)) = (sig_alg, signature) else {
        return Err(RedirectError::Unsigned);
    };
    let alg_uri = form_decode(sig_alg)?;
    let alg = check_algorithm(&alg_uri, allow_sha1).map_err(RedirectError::Algorithm)?;
    let mut signed = format!("{param}={message}");
    if let Some(relay_state) = relay_state {
        signed.push_str("&RelayState=");
        signed.push_str(relay_state);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(sig_alg);
    // Like the message, base64: its `+` may arrive unencoded.
    let signature = percent_encoding::percent_decode_str(signature)
        .decode_utf8()
        .map_err(|_| RedirectError::NotUtf8)?;
    let signature = xml_guard::decode_base64(&signature, MAX_SIGNATURE_BYTES)
        .map_err(|_| RedirectError::BadSignatureValue)?;
    if !keys
        .iter()
        .any(|key| verify_bytes(key, alg, signed.as_bytes(), &signature))
    {
        return Err(RedirectError::Invalid);
    }
    Ok(RedirectMessage {
        param,
        // Base64's `+` may arrive unencoded: only percent-decode the message.
        message: percent_encoding::percent_decode_str(message)
            .decode_utf8()
            .map_err(|_| RedirectError::NotUtf8)?
            .into_owned(),
        relay_state: relay_state.map(form_decode).transpose()?,
    })
}

fn form_decode(value: &str) -> Result<String, RedirectError> {
    percent_encoding::percent_decode_str(&value.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RedirectError::NotUtf8)
}

/// Whether `signature` over `data` holds for `key` with `alg` (false on any error).
fn verify_bytes(key: &PKey<Public>, alg: SigAlg, data: &[u8], signature: &[u8]) -> bool {
    let der;
    let signature = if alg.is_ecdsa() {
        // r || s to DER.
        if signature.is_empty() || !signature.len().is_multiple_of(2) {
            return false;
        }
        let (r, s) = signature.split_at(signature.len() / 2);
        let converted = BigNum::from_slice(r)
            .and_then(|r| BigNum::from_slice(s).map(|s| (r, s)))
            .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
            .and_then(|sig| sig.to_der());
        match converted {
            Ok(bytes) => {
                der = bytes;
                der.as_slice()
            }
            Err(_) => return false,
        }
    } else {
        signature
    };
    openssl::sign::Verifier::new(alg.digest(), key)
        .and_then(|mut verifier| {
            verifier.update(data)?;
            verifier.verify(signature)
        })
        .unwrap_or(false)
}
