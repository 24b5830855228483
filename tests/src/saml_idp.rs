//! A mock SAML 2.0 Identity Provider (wiremock on an ephemeral loopback port) for the
//! end-to-end tests of Guichet's SAML service provider.
//!
//! It serves its metadata (plain, signed, inside a federation document), reads the
//! AuthnRequests and LogoutRequests/LogoutResponses the SP sends (HTTP-Redirect and HTTP-POST
//! bindings, with their redirect signatures checked through samael's [`UrlVerifier`]), builds
//! signed and optionally encrypted Responses, and builds each attack of the security
//! catalogue (section 3) from a valid response: XML signature wrapping (XSW1 to XSW8), extra
//! or duplicated assertions, removed or broken signatures, comments in the NameID, DTDs, a
//! foreign signing certificate, SHA-1.
//!
//! Every digest and signature value is computed by libxmlsec (samael's [`Crypto::sign_xml`])
//! over a signature *template* written here; nothing is hand-assembled, so a document that
//! verifies here verifies for the same reasons in the SP under test. Signed elements declare
//! every namespace they use themselves, so an assertion signed alone stays valid when it is
//! embedded in a Response, encrypted, or moved around by an attack.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::symm::Cipher;
use openssl::x509::{X509NameBuilder, X509};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode, UrlVerifier};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// SAML 2.0 protocol namespace (`samlp:`).
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 assertion namespace (`saml:`).
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 metadata namespace (`md:`).
pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// XML Signature namespace (`ds:`).
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Encryption namespace (`xenc:`).
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

/// The HTTP-Redirect binding.
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// The HTTP-POST binding.
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// `SigAlg` / `SignatureMethod` URIs.
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const ALG_RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const ALG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Status codes (`samlp:StatusCode/@Value`).
pub mod status {
    pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
    pub const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
    pub const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
    pub const AUTHN_FAILED: &str = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed";
    pub const NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
    pub const PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";
}

/// NameID formats.
pub mod name_id_format {
    pub const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
    pub const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    pub const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
    pub const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
}

/// Attribute name formats.
pub mod attribute_name_format {
    pub const URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
    pub const BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
    pub const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified";
}

/// The authentication context class of a password login over TLS.
pub const AC_PASSWORD_PROTECTED_TRANSPORT: &str =
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// An RSA 2048 key and its self-signed certificate. Generating one takes a noticeable
/// fraction of a second, so the named ones ([`TestKey::idp`]...) are made once per process.
pub struct TestKey {
    private_key: PKey<Private>,
    certificate: X509,
}

static IDP_KEY: OnceLock<Arc<TestKey>> = OnceLock::new();
static METADATA_KEY: OnceLock<Arc<TestKey>> = OnceLock::new();
static ATTACKER_KEY: OnceLock<Arc<TestKey>> = OnceLock::new();
static SP_KEY: OnceLock<Arc<TestKey>> = OnceLock::new();
static FEDERATION_KEYS: [OnceLock<Arc<TestKey>>; 2] = [OnceLock::new(), OnceLock::new()];

fn cached(slot: &'static OnceLock<Arc<TestKey>>, common_name: &str) -> Arc<TestKey> {
    slot.get_or_init(|| Arc::new(TestKey::generate(common_name)))
        .clone()
}

impl TestKey {
    /// A fresh key and a self-signed certificate (`CN={common_name}`, valid from an hour ago
    /// for a year, signed with SHA-256).
    pub fn generate(common_name: &str) -> TestKey {
        let private_key =
            PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("RSA private key");
        let mut name = X509NameBuilder::new().expect("X509 name");
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .expect("CN");
        let name = name.build();
        let mut builder = X509::builder().expect("X509 builder");
        builder.set_version(2).expect("v3");
        let mut serial = BigNum::new().expect("serial");
        serial
            .rand(127, MsbOption::MAYBE_ZERO, false)
            .expect("random serial");
        builder
            .set_serial_number(&serial.to_asn1_integer().expect("ASN.1 serial"))
            .expect("serial");
        builder.set_subject_name(&name).expect("subject");
        builder.set_issuer_name(&name).expect("issuer");
        builder.set_pubkey(&private_key).expect("public key");
        let not_before = Asn1Time::from_unix(Utc::now().timestamp() - 3600).expect("not before");
        builder.set_not_before(&not_before).expect("not before");
        let not_after = Asn1Time::days_from_now(365).expect("not after");
        builder.set_not_after(&not_after).expect("not after");
        builder
            .sign(&private_key, MessageDigest::sha256())
            .expect("self-signed certificate");
        TestKey {
            private_key,
            certificate: builder.build(),
        }
    }

    /// The mock IdP's signing key (shared by every [`SamlIdp`] of the process).
    pub fn idp() -> Arc<TestKey> {
        cached(&IDP_KEY, "Guichet test SAML IdP")
    }

    /// The key that signs metadata documents (a separate trust anchor, as federations use).
    pub fn metadata_signer() -> Arc<TestKey> {
        cached(&METADATA_KEY, "Guichet test metadata signer")
    }

    /// A key nobody trusts (ForeignCertificateInKeyInfo).
    pub fn attacker() -> Arc<TestKey> {
        cached(&ATTACKER_KEY, "Attacker")
    }

    /// A key for the service provider side (its signing / encryption certificate in tests).
    pub fn sp() -> Arc<TestKey> {
        cached(&SP_KEY, "Guichet test SAML SP")
    }

    /// The keys of the two unrelated IdPs of [`SamlIdp::federation_metadata_xml`] (`n` is 0 or 1).
    pub fn federation_member(n: usize) -> Arc<TestKey> {
        cached(&FEDERATION_KEYS[n % 2], &format!("Federation IdP {n}"))
    }

    pub fn private_key(&self) -> &PKey<Private> {
        &self.private_key
    }

    pub fn certificate(&self) -> &X509 {
        &self.certificate
    }

    /// The private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn private_key_pem(&self) -> String {
        String::from_utf8(
            self.private_key
                .private_key_to_pem_pkcs8()
                .expect("PKCS#8 PEM"),
        )
        .expect("PEM is ASCII")
    }

    pub fn cert_pem(&self) -> String {
        String::from_utf8(self.certificate.to_pem().expect("PEM")).expect("PEM is ASCII")
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.certificate.to_der().expect("DER")
    }

    /// The certificate as it goes in `ds:X509Certificate` (base64 DER, one line).
    pub fn cert_base64(&self) -> String {
        B64.encode(self.cert_der())
    }

    /// The form samael's verification functions take.
    pub fn samael_cert(&self) -> CertificateDer {
        CertificateDer::from(self.cert_der())
    }

    /// PKCS#1 DER, the form `XmlSec::sign_xml` loads.
    fn private_key_der(&self) -> Vec<u8> {
        self.private_key
            .rsa()
            .expect("an RSA key")
            .private_key_to_der()
            .expect("PKCS#1 DER")
    }
}

// ---------------------------------------------------------------------------------------------
// Response specification
// ---------------------------------------------------------------------------------------------

/// Which elements carry an enveloped XML signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    None,
    Response,
    Assertion,
    #[default]
    Both,
}

impl Signing {
    pub fn response(self) -> bool {
        matches!(self, Signing::Response | Signing::Both)
    }

    pub fn assertion(self) -> bool {
        matches!(self, Signing::Assertion | Signing::Both)
    }
}

/// The XML signature algorithm (`SignatureMethod` and the matching `DigestMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureAlgorithm {
    /// rsa-sha256 with a sha256 digest.
    #[default]
    RsaSha256,
    /// rsa-sha1 with a sha1 digest (what a modern SP refuses).
    RsaSha1,
}

impl SignatureAlgorithm {
    fn signature_uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => ALG_RSA_SHA256,
            SignatureAlgorithm::RsaSha1 => ALG_RSA_SHA1,
        }
    }

    fn digest_uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => DIGEST_SHA256,
            SignatureAlgorithm::RsaSha1 => DIGEST_SHA1,
        }
    }
}

/// How the assertion's symmetric key is encrypted for the SP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyTransport {
    /// `xmlenc#rsa-oaep-mgf1p` (OAEP, SHA-1 digest and MGF1-SHA1).
    #[default]
    RsaOaepMgf1p,
    /// `xmlenc#rsa-1_5` (PKCS#1 v1.5: what a careful SP may refuse).
    Rsa15,
}

impl KeyTransport {
    pub fn uri(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            KeyTransport::Rsa15 => "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
        }
    }
}

/// How the assertion itself is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataEncryption {
    #[default]
    Aes128Gcm,
    Aes256Gcm,
    Aes128Cbc,
    Aes256Cbc,
}

impl DataEncryption {
    pub fn uri(self) -> &'static str {
        match self {
            DataEncryption::Aes128Gcm => "http://www.w3.org/2009/xmlenc11#aes128-gcm",
            DataEncryption::Aes256Gcm => "http://www.w3.org/2009/xmlenc11#aes256-gcm",
            DataEncryption::Aes128Cbc => "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            DataEncryption::Aes256Cbc => "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
        }
    }

    fn cipher(self) -> Cipher {
        match self {
            DataEncryption::Aes128Gcm => Cipher::aes_128_gcm(),
            DataEncryption::Aes256Gcm => Cipher::aes_256_gcm(),
            DataEncryption::Aes128Cbc => Cipher::aes_128_cbc(),
            DataEncryption::Aes256Cbc => Cipher::aes_256_cbc(),
        }
    }

    fn is_gcm(self) -> bool {
        matches!(self, DataEncryption::Aes128Gcm | DataEncryption::Aes256Gcm)
    }
}

/// Encrypt the assertion for an SP: it becomes a `saml:EncryptedAssertion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptFor {
    /// The SP's encryption certificate (PEM).
    pub cert_pem: String,
    pub key_transport: KeyTransport,
    pub data_encryption: DataEncryption,
}

impl EncryptFor {
    /// Default algorithms (rsa-oaep-mgf1p, aes128-gcm) for this certificate.
    pub fn new(cert_pem: &str) -> EncryptFor {
        EncryptFor {
            cert_pem: cert_pem.to_owned(),
            key_transport: KeyTransport::default(),
            data_encryption: DataEncryption::default(),
        }
    }
}

/// One `saml:Attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecAttribute {
    /// e.g. `urn:oid:0.9.2342.19200300.100.1.3`.
    pub name: String,
    /// e.g. `mail`.
    pub friendly_name: Option<String>,
    /// [`attribute_name_format::URI`] or [`attribute_name_format::BASIC`]...
    pub name_format: String,
    /// Each becomes an `xs:string` `saml:AttributeValue` (any UTF-8).
    pub values: Vec<String>,
}

impl SpecAttribute {
    /// A URI-named attribute (`urn:oid:...`) with its friendly name.
    pub fn uri(name: &str, friendly_name: &str, values: &[&str]) -> SpecAttribute {
        SpecAttribute {
            name: name.to_owned(),
            friendly_name: Some(friendly_name.to_owned()),
            name_format: attribute_name_format::URI.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// A basic-named attribute (`mail`...), no friendly name.
    pub fn basic(name: &str, values: &[&str]) -> SpecAttribute {
        SpecAttribute {
            name: name.to_owned(),
            friendly_name: None,
            name_format: attribute_name_format::BASIC.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }
}

/// What [`SamlIdp::response`] builds. `Default` is a valid, fully signed (Response and
/// Assertion) login of `alice@corp.example` for a placeholder SP: tests set at least
/// `acs_url`, `audience` and `in_response_to` (see [`ResponseSpec::answering`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSpec {
    /// The SP's AssertionConsumerService URL: Response `Destination` and
    /// SubjectConfirmationData `Recipient` unless overridden below.
    pub acs_url: String,
    /// Overrides Response `Destination` (`Some("")`: no Destination attribute).
    pub destination: Option<String>,
    /// Overrides SubjectConfirmationData `Recipient` (`Some("")`: no Recipient attribute).
    pub recipient: Option<String>,
    /// The SP entityID in `AudienceRestriction`; `None`: no AudienceRestriction.
    pub audience: Option<String>,
    /// `InResponseTo` on the Response and on SubjectConfirmationData; `None`: unsolicited.
    pub in_response_to: Option<String>,
    pub name_id: String,
    /// Empty: no `Format` attribute.
    pub name_id_format: String,
    /// `AuthnStatement/@SessionIndex` (what single logout names).
    pub session_index: Option<String>,
    pub attributes: Vec<SpecAttribute>,
    pub sign: Signing,
    pub signature_algorithm: SignatureAlgorithm,
    pub encrypt_for: Option<EncryptFor>,
    /// Issuer of the Response and the Assertion; `None`: the IdP's entityID.
    pub issuer: Option<String>,
    /// Top-level status code; the assertion is only included on Success (see `with_assertion`).
    pub status: String,
    pub status_sub_code: Option<String>,
    pub status_message: Option<String>,
    /// `None`: an assertion iff the status is Success; `Some(b)`: forced.
    pub with_assertion: Option<bool>,
    /// The clock the offsets below are relative to; `None`: now.
    pub now: Option<DateTime<Utc>>,
    /// IssueInstant of the Response and the Assertion, and AuthnInstant.
    pub issue_instant_offset: Duration,
    pub conditions_not_before_offset: Option<Duration>,
    pub conditions_not_on_or_after_offset: Option<Duration>,
    /// SubjectConfirmationData `NotOnOrAfter`.
    pub confirmation_not_on_or_after_offset: Option<Duration>,
    /// SubjectConfirmationData `NotBefore` (bearer confirmations must not have one).
    pub confirmation_not_before_offset: Option<Duration>,
    /// AuthnStatement `SessionNotOnOrAfter`.
    pub session_not_on_or_after_offset: Option<Duration>,
    pub authn_context_class_ref: String,
    /// `None`: a random `_` + hex id (fixed ids make the output reproducible, with `now`).
    pub response_id: Option<String>,
    pub assertion_id: Option<String>,
    /// The identity the attacks try to smuggle in (the evil NameID).
    pub evil_name_id: String,
}

/// The attributes of the default spec: URI names, friendly names, accents, a multi-valued one.
pub fn default_attributes() -> Vec<SpecAttribute> {
    vec![
        SpecAttribute::uri("urn:oid:0.9.2342.19200300.100.1.1", "uid", &["alice"]),
        SpecAttribute::uri(
            "urn:oid:0.9.2342.19200300.100.1.3",
            "mail",
            &["alice@corp.example"],
        ),
        SpecAttribute::uri("urn:oid:2.5.4.42", "givenName", &["Hélène"]),
        SpecAttribute::uri("urn:oid:2.5.4.4", "sn", &["Lefèvre-Müller"]),
        SpecAttribute::uri(
            "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
            "eduPersonAffiliation",
            &["member", "staff"],
        ),
    ]
}

impl Default for ResponseSpec {
    fn default() -> Self {
        ResponseSpec {
            acs_url: "http://127.0.0.1/saml/acs".to_owned(),
            destination: None,
            recipient: None,
            audience: Some("http://127.0.0.1/saml/metadata".to_owned()),
            in_response_to: None,
            name_id: "alice@corp.example".to_owned(),
            name_id_format: name_id_format::EMAIL.to_owned(),
            session_index: Some(fresh_id()),
            attributes: default_attributes(),
            sign: Signing::Both,
            signature_algorithm: SignatureAlgorithm::RsaSha256,
            encrypt_for: None,
            issuer: None,
            status: status::SUCCESS.to_owned(),
            status_sub_code: None,
            status_message: None,
            with_assertion: None,
            now: None,
            issue_instant_offset: Duration::zero(),
            conditions_not_before_offset: Some(Duration::minutes(-1)),
            conditions_not_on_or_after_offset: Some(Duration::minutes(5)),
            confirmation_not_on_or_after_offset: Some(Duration::minutes(5)),
            confirmation_not_before_offset: None,
            session_not_on_or_after_offset: None,
            authn_context_class_ref: AC_PASSWORD_PROTECTED_TRANSPORT.to_owned(),
            response_id: None,
            assertion_id: None,
            evil_name_id: "admin@corp.example".to_owned(),
        }
    }
}

impl ResponseSpec {
    /// The default spec for an SP (its ACS URL and entityID), unsolicited.
    pub fn for_sp(acs_url: &str, sp_entity_id: &str) -> ResponseSpec {
        ResponseSpec {
            acs_url: acs_url.to_owned(),
            audience: Some(sp_entity_id.to_owned()),
            ..ResponseSpec::default()
        }
    }

    /// The default spec answering an AuthnRequest: its ACS URL (when it names one), its
    /// issuer as audience, its ID as InResponseTo.
    pub fn answering(request: &AuthnRequestSeen) -> ResponseSpec {
        let mut spec = ResponseSpec::default();
        if let Some(acs) = &request.acs_url {
            spec.acs_url = acs.clone();
        }
        if let Some(issuer) = &request.issuer {
            spec.audience = Some(issuer.clone());
        }
        spec.in_response_to = Some(request.id.clone());
        spec
    }

    fn includes_assertion(&self) -> bool {
        self.with_assertion
            .unwrap_or(self.status == status::SUCCESS)
    }

    fn instant(&self, offset: Duration) -> String {
        let now = self.now.unwrap_or_else(Utc::now);
        xml_time(now + offset)
    }
}

/// The attacks of the security catalogue, section 3. Each produces a document a correct SP
/// must refuse. The evil identity is [`ResponseSpec::evil_name_id`]; evil copies always get
/// fresh IDs, so no document has duplicate IDs (an SP cannot refuse them for that reason
/// alone: its structural checks are what is tested).
///
/// Observed with samael 0.0.22 / libxmlsec1 1.2.37 (see the unit tests): the original
/// signature of XSW2, 3, 4, 5 and 7 still verifies (covering only the original content);
/// XSW1, 6 and 8 put the signed content inside the `ds:Signature`, which the
/// enveloped-signature transform removes, so xmlsec reports them invalid (they target
/// verifiers that skip that transform). samael's own `ServiceProvider` returns the
/// legitimate identity, not the evil one, for XSW2-5, 7, EvilAssertionAfterValid and
/// Doctype, and accepts RsaSha1 unless given an algorithm allow-list: refusing those
/// documents outright is up to the SP's own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attack {
    /// Response signature (signing forced to `Response`): the root is an evil unsigned
    /// Response (fresh ID, evil NameID) whose `ds:Signature` is the original one, with the
    /// original Response (its signature removed) appended inside that `ds:Signature`.
    Xsw1,
    /// Like Xsw1, but the original Response (signature removed) is a sibling placed just
    /// before the original `ds:Signature` in the evil Response (detached-signature style).
    Xsw2,
    /// Assertion signature (signing forced to `Assertion`): an evil unsigned assertion is
    /// inserted before the original signed one.
    Xsw3,
    /// The evil unsigned assertion wraps the original signed assertion (as its last child).
    Xsw4,
    /// The first assertion is the evil one carrying the original `ds:Signature`; the
    /// original assertion (signature removed) is appended at the end of the Response.
    Xsw5,
    /// The evil assertion carries the original `ds:Signature`, inside which the original
    /// assertion (signature removed) is appended.
    Xsw6,
    /// A `samlp:Extensions` (after the Response's Issuer) holds the evil unsigned assertion;
    /// the original signed assertion is untouched after the Status.
    Xsw7,
    /// The evil assertion carries the original `ds:Signature`, to which a `ds:Object`
    /// holding the original assertion (signature removed) is appended.
    Xsw8,
    /// The original signed assertion, then a second unsigned assertion (evil NameID); the
    /// Response is not signed (it would vouch for the evil one).
    EvilAssertionAfterValid,
    /// Every `ds:Signature` deleted (inside the assertion before encrypting it, if encrypted).
    SignatureRemoved,
    /// The IdP signs the Response (only) over its assertion; the assertion is then replaced
    /// by an unsigned evil one (fresh ID, evil NameID) while the Response keeps its
    /// `ds:Signature`, which no longer verifies. A strict SP refuses it twice over: the
    /// Response signature fails and the assertion it would use is not signed. (A validly
    /// signed Response over an unsigned assertion is the happy `Signing::Response` case, so
    /// it is not this attack; an SP that demands signed assertions refuses that one too.)
    UnsignedAssertionInSignedResponse,
    /// Two assertions, both validly signed (the second for the evil NameID); the Response is
    /// signed over both when the spec signs the Response.
    MultipleAssertions,
    /// The IdP signs an assertion for `{evil}.evil.example` (an account the attacker owns);
    /// `<!---->` is then inserted after `{evil}` in the NameID text. Exclusive c14n without
    /// comments drops the comment, so every signature stays valid; an SP that reads only the
    /// first text node sees `{evil}`.
    CommentInNameId,
    /// `<!DOCTYPE samlp:Response [...]>` (an ELEMENT declaration only) before a validly
    /// signed response.
    Doctype,
    /// A DOCTYPE declaring `<!ENTITY xxe SYSTEM "file:///etc/passwd">` and `&xxe;` as the
    /// NameID text (as StatusMessage text when the assertion is encrypted).
    ExternalEntity,
    /// Billion laughs: ten levels of ten-fold internal entities, `&lol9;` as the NameID text
    /// (StatusMessage when encrypted).
    EntityExpansion,
    /// Signed (Response and/or Assertion as the spec says) with the attacker's key, whose
    /// certificate is in `ds:KeyInfo`.
    ForeignCertificateInKeyInfo,
    /// Validly signed by the IdP's key with rsa-sha1 and sha1 digests.
    RsaSha1,
    /// One character of signed text changed after signing: the first attribute value (or
    /// the NameID). When the assertion is encrypted: inside the signed assertion before
    /// encryption (a Response signature, computed afterwards, stays valid), or, if only
    /// the Response is signed, the units digit of the Response's IssueInstant seconds.
    AlteredByte,
}

impl Attack {
    pub const ALL: [Attack; 19] = [
        Attack::Xsw1,
        Attack::Xsw2,
        Attack::Xsw3,
        Attack::Xsw4,
        Attack::Xsw5,
        Attack::Xsw6,
        Attack::Xsw7,
        Attack::Xsw8,
        Attack::EvilAssertionAfterValid,
        Attack::SignatureRemoved,
        Attack::UnsignedAssertionInSignedResponse,
        Attack::MultipleAssertions,
        Attack::CommentInNameId,
        Attack::Doctype,
        Attack::ExternalEntity,
        Attack::EntityExpansion,
        Attack::ForeignCertificateInKeyInfo,
        Attack::RsaSha1,
        Attack::AlteredByte,
    ];

    /// The signing the attack is built with, given the spec's: XSW1-2 and the
    /// signed-response case need a Response signature only, XSW3-8 and the extra
    /// assertion an Assertion signature only, MultipleAssertions signed assertions; the
    /// others keep the spec's signing (`None` becomes `Both`: the attack must be the only
    /// flaw).
    pub fn signing(self, requested: Signing) -> Signing {
        match self {
            Attack::Xsw1 | Attack::Xsw2 | Attack::UnsignedAssertionInSignedResponse => {
                Signing::Response
            }
            Attack::Xsw3
            | Attack::Xsw4
            | Attack::Xsw5
            | Attack::Xsw6
            | Attack::Xsw7
            | Attack::Xsw8
            | Attack::EvilAssertionAfterValid => Signing::Assertion,
            Attack::MultipleAssertions => {
                if requested.response() {
                    Signing::Both
                } else {
                    Signing::Assertion
                }
            }
            _ => {
                if requested == Signing::None {
                    Signing::Both
                } else {
                    requested
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages read from the SP
// ---------------------------------------------------------------------------------------------

/// An AuthnRequest as the IdP received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequestSeen {
    /// The decoded XML.
    pub xml: String,
    pub id: String,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    /// `AssertionConsumerServiceURL`.
    pub acs_url: Option<String>,
    pub protocol_binding: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
    pub name_id_policy_format: Option<String>,
    pub name_id_policy_allow_create: Option<bool>,
    pub authn_context_class_refs: Vec<String>,
    pub authn_context_comparison: Option<String>,
    pub relay_state: Option<String>,
    /// The redirect binding's `SigAlg`.
    pub sig_alg: Option<String>,
    /// A redirect binding `Signature` parameter was present (see
    /// [`SamlIdp::verify_redirect_signature`]).
    pub redirect_signature_present: bool,
    /// An enveloped `ds:Signature` is in the XML (POST binding; see
    /// [`SamlIdp::verify_xml_signature`]).
    pub xml_signature_present: bool,
    /// The URL it was read from (redirect binding).
    pub url: Option<String>,
}

impl AuthnRequestSeen {
    /// Whether the redirect signature of the URL this was read from verifies with the SP's
    /// certificate.
    pub fn verify_redirect_signature(&self, sp_cert_pem: &str) -> bool {
        self.url
            .as_deref()
            .is_some_and(|url| SamlIdp::verify_redirect_signature(url, sp_cert_pem))
    }
}

/// A LogoutRequest as the IdP received it (SP-initiated logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequestSeen {
    pub xml: String,
    pub id: String,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub session_indexes: Vec<String>,
    pub relay_state: Option<String>,
    pub sig_alg: Option<String>,
    pub redirect_signature_present: bool,
    pub xml_signature_present: bool,
    pub url: Option<String>,
}

/// A LogoutResponse as the IdP received it (the SP answering an IdP-initiated logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponseSeen {
    pub xml: String,
    pub id: String,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    /// Top-level StatusCode value.
    pub status: Option<String>,
    pub status_sub_code: Option<String>,
    pub relay_state: Option<String>,
    pub sig_alg: Option<String>,
    pub redirect_signature_present: bool,
    pub xml_signature_present: bool,
    pub url: Option<String>,
}

impl LogoutResponseSeen {
    pub fn is_success(&self) -> bool {
        self.status.as_deref() == Some(status::SUCCESS)
    }
}

/// An IdP-initiated LogoutRequest to send to the SP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequestSpec {
    /// The SP's SingleLogoutService URL (`Destination`).
    pub sp_slo_url: String,
    pub name_id: String,
    /// Empty: no `Format` attribute.
    pub name_id_format: String,
    pub session_index: Option<String>,
    pub relay_state: Option<String>,
    /// `None`: the IdP's entityID.
    pub issuer: Option<String>,
    /// `None`: random.
    pub id: Option<String>,
    /// `NotOnOrAfter` relative to now (`None`: absent).
    pub not_on_or_after_offset: Option<Duration>,
}

impl LogoutRequestSpec {
    pub fn new(sp_slo_url: &str, name_id: &str, session_index: Option<&str>) -> LogoutRequestSpec {
        LogoutRequestSpec {
            sp_slo_url: sp_slo_url.to_owned(),
            name_id: name_id.to_owned(),
            name_id_format: name_id_format::EMAIL.to_owned(),
            session_index: session_index.map(str::to_owned),
            relay_state: None,
            issuer: None,
            id: None,
            not_on_or_after_offset: Some(Duration::minutes(5)),
        }
    }
}

/// A message the IdP sends through the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The message's ID.
    pub id: String,
    /// The XML (for the redirect binding: without XML signature, as sent).
    pub xml: String,
    /// Redirect binding: the full URL to send the browser to. POST binding: the form action.
    pub url: String,
    /// POST binding: the form fields (`SAMLRequest`/`SAMLResponse`, `RelayState`); empty
    /// for the redirect binding.
    pub fields: Vec<(String, String)>,
}

/// A request the IdP's SingleLogoutService endpoint received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub method: String,
    pub url: String,
    pub form: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------------------------
// The IdP
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    want_authn_requests_signed: bool,
    auto_login: Option<ResponseSpec>,
    /// The auto-login form waits for a click on its `#continue` button.
    auto_login_manual: bool,
    /// The responses the auto-login sent, oldest first.
    auto_login_posts: Vec<SentMessage>,
    sp_slo_url: Option<String>,
    authn_requests: Vec<AuthnRequestSeen>,
    slo_messages: Vec<ReceivedMessage>,
}

struct Inner {
    base: String,
    key: Arc<TestKey>,
    state: Mutex<State>,
}

/// The mock IdP: one per test.
pub struct SamlIdp {
    pub server: MockServer,
    inner: Arc<Inner>,
}

impl SamlIdp {
    /// Starts it on 127.0.0.1 on an ephemeral port, signing with [`TestKey::idp`]. Routes:
    /// `/idp/metadata` (and `/signed`), `/idp/federation-metadata` (and `/signed`),
    /// `/idp/sso` and `/idp/slo` (GET and POST).
    pub async fn start() -> SamlIdp {
        SamlIdp::start_with_key(TestKey::idp()).await
    }

    /// Same, signing with another key (key rollover tests).
    pub async fn start_with_key(key: Arc<TestKey>) -> SamlIdp {
        let server = MockServer::start().await;
        let inner = Arc::new(Inner {
            base: server.uri(),
            key,
            state: Mutex::new(State::default()),
        });
        type Handler = fn(&Inner, &Request) -> ResponseTemplate;
        let routes: [(&str, Option<&str>, Handler); 6] = [
            ("/idp/metadata", Some("GET"), |i, _| {
                metadata_answer(i.metadata_xml())
            }),
            ("/idp/metadata/signed", Some("GET"), |i, _| {
                metadata_answer(i.signed_metadata_xml())
            }),
            ("/idp/federation-metadata", Some("GET"), |i, _| {
                metadata_answer(i.federation_metadata_xml())
            }),
            ("/idp/federation-metadata/signed", Some("GET"), |i, _| {
                metadata_answer(i.signed_federation_metadata_xml())
            }),
            ("/idp/sso", None, Inner::handle_sso),
            ("/idp/slo", None, Inner::handle_slo),
        ];
        for (route, verb, handler) in routes {
            let for_route = inner.clone();
            let responder = move |request: &Request| handler(&for_route, request);
            match verb {
                Some(verb) => {
                    Mock::given(method(verb))
                        .and(path(route))
                        .respond_with(responder)
                        .mount(&server)
                        .await
                }
                None => {
                    Mock::given(path(route))
                        .respond_with(responder)
                        .mount(&server)
                        .await
                }
            }
        }
        SamlIdp { server, inner }
    }

    /// `http://127.0.0.1:PORT/idp`.
    pub fn entity_id(&self) -> String {
        self.inner.entity_id()
    }

    /// GET serves [`SamlIdp::metadata_xml`].
    pub fn metadata_url(&self) -> String {
        format!("{}/idp/metadata", self.inner.base)
    }

    /// GET serves [`SamlIdp::signed_metadata_xml`] (signed anew on each request).
    pub fn signed_metadata_url(&self) -> String {
        format!("{}/idp/metadata/signed", self.inner.base)
    }

    /// GET serves [`SamlIdp::federation_metadata_xml`].
    pub fn federation_metadata_url(&self) -> String {
        format!("{}/idp/federation-metadata", self.inner.base)
    }

    /// GET serves [`SamlIdp::signed_federation_metadata_xml`].
    pub fn signed_federation_metadata_url(&self) -> String {
        format!("{}/idp/federation-metadata/signed", self.inner.base)
    }

    /// SingleSignOnService (Redirect and POST bindings).
    pub fn sso_url(&self) -> String {
        self.inner.sso_url()
    }

    /// SingleLogoutService (Redirect and POST bindings).
    pub fn slo_url(&self) -> String {
        self.inner.slo_url()
    }

    /// The signing certificate (PEM).
    pub fn certificate_pem(&self) -> String {
        self.inner.key.cert_pem()
    }

    pub fn key(&self) -> &TestKey {
        &self.inner.key
    }

    /// `WantAuthnRequestsSigned` in the served metadata (false at start).
    pub fn set_want_authn_requests_signed(&self, yes: bool) {
        self.inner.state().want_authn_requests_signed = yes;
    }

    /// The IdP's `md:EntityDescriptor` (unsigned), as served at [`SamlIdp::metadata_url`].
    pub fn metadata_xml(&self) -> String {
        self.inner.metadata_xml()
    }

    /// A federation document (`md:EntitiesDescriptor`) holding this IdP between two other,
    /// unrelated IdPs (other entityIDs, endpoints and certificates), for "pick the IdP by
    /// entityID" tests.
    pub fn federation_metadata_xml(&self) -> String {
        self.inner.federation_metadata_xml()
    }

    /// The metadata with an enveloped signature on the `md:EntityDescriptor` root, made
    /// with [`TestKey::metadata_signer`] (not the IdP's key: metadata trust is separate).
    pub fn signed_metadata_xml(&self) -> String {
        self.inner.signed_metadata_xml()
    }

    /// The federation document signed the same way on its `md:EntitiesDescriptor` root.
    pub fn signed_federation_metadata_xml(&self) -> String {
        self.inner.signed_federation_metadata_xml()
    }

    /// The certificate that verifies the signed metadata documents (PEM).
    pub fn metadata_signing_certificate_pem(&self) -> String {
        TestKey::metadata_signer().cert_pem()
    }

    /// When set, the SSO endpoint answers every AuthnRequest it receives with an
    /// auto-submitting HTML form POSTing a response built from this spec to the request's
    /// ACS URL (or the spec's when the request names none), with `InResponseTo` set to the
    /// request's ID and its RelayState: a login without a login page, for browser tests.
    /// `None` (the start): the endpoint only records requests and answers 200.
    pub fn set_auto_login(&self, spec: Option<ResponseSpec>) {
        self.inner.state().auto_login = spec;
    }

    /// With `true`, the auto-login page (see [`SamlIdp::set_auto_login`]) is not submitted on
    /// load: the browser stays on the IdP until something clicks its `#continue` button (a
    /// test can take the response from [`SamlIdp::auto_login_posts`] in between).
    pub fn set_auto_login_manual(&self, manual: bool) {
        self.inner.state().auto_login_manual = manual;
    }

    /// The responses the auto-login put in its forms, oldest first: `id` the Response's ID,
    /// `xml` the Response, `url` the form's action (the ACS), `fields` the form's fields
    /// (`SAMLResponse`, `RelayState`) as the browser posts them.
    pub fn auto_login_posts(&self) -> Vec<SentMessage> {
        self.inner.state().auto_login_posts.clone()
    }

    /// When set, a LogoutRequest arriving at the SLO endpoint by redirect is answered with a
    /// 302 to this URL carrying a signed Success LogoutResponse (redirect binding).
    pub fn set_sp_slo_url(&self, url: Option<&str>) {
        self.inner.state().sp_slo_url = url.map(str::to_owned);
    }

    /// The AuthnRequests the SSO endpoint received (those it could read), oldest first.
    pub fn received_authn_requests(&self) -> Vec<AuthnRequestSeen> {
        self.inner.state().authn_requests.clone()
    }

    /// What the SLO endpoint received, oldest first.
    pub fn received_slo_messages(&self) -> Vec<ReceivedMessage> {
        self.inner.state().slo_messages.clone()
    }

    // --- reading what the SP sends -------------------------------------------------------

    /// Reads an AuthnRequest from an HTTP-Redirect URL (`SAMLRequest` deflated and base64,
    /// `RelayState`, `SigAlg`, `Signature`). Panics when there is none or it does not parse.
    pub fn read_authn_request_from_url(url: &str) -> AuthnRequestSeen {
        try_read_authn_request_from_url(url).unwrap_or_else(|e| panic!("{e}: {url}"))
    }

    /// Reads an AuthnRequest from HTTP-POST form fields (`SAMLRequest` base64, `RelayState`).
    pub fn read_authn_request_from_form(fields: &[(String, String)]) -> AuthnRequestSeen {
        try_read_authn_request_from_form(fields).unwrap_or_else(|e| panic!("{e}: {fields:?}"))
    }

    /// Whether an HTTP-Redirect URL (request or response) carries a valid `Signature` by the
    /// key of this certificate over `SAMLRequest|SAMLResponse`, `RelayState` and `SigAlg`.
    /// Checked with samael's [`UrlVerifier`] (which re-encodes the decoded values), then,
    /// if that fails, over the parameters exactly as received (bindings §3.4.4.1), so an SP
    /// percent-encoding differently from the `url` crate is not wrongly refused. RSA-SHA256,
    /// RSA-SHA512 and ECDSA-SHA256 only: an rsa-sha1 signature reports `false` (see `sig_alg`).
    pub fn verify_redirect_signature(url: &str, cert_pem: &str) -> bool {
        verify_redirect_signature(url, cert_pem)
    }

    /// Whether every enveloped XML signature of a document verifies with this certificate
    /// (samael / xmlsec, `ReduceMode::ValidateAndMarkNoAncestors`): POST-binding messages,
    /// signed metadata.
    pub fn verify_xml_signature(xml: &str, cert_pem: &str) -> bool {
        let Ok(cert) = X509::from_pem(cert_pem.as_bytes()) else {
            return false;
        };
        let Ok(der) = cert.to_der() else {
            return false;
        };
        Crypto::reduce_xml_to_signed(
            xml,
            &[CertificateDer::from(der)],
            ReduceMode::ValidateAndMarkNoAncestors,
        )
        .is_ok()
    }

    /// Reads a LogoutRequest the SP sent by redirect.
    pub fn read_logout_request_from_url(url: &str) -> LogoutRequestSeen {
        let message = redirect_message(url, "SAMLRequest").unwrap_or_else(|e| panic!("{e}: {url}"));
        logout_request_seen(message).unwrap_or_else(|e| panic!("{e}: {url}"))
    }

    /// Reads a LogoutRequest the SP sent by POST.
    pub fn read_logout_request_from_form(fields: &[(String, String)]) -> LogoutRequestSeen {
        let message =
            post_message(fields, "SAMLRequest").unwrap_or_else(|e| panic!("{e}: {fields:?}"));
        logout_request_seen(message).unwrap_or_else(|e| panic!("{e}: {fields:?}"))
    }

    /// Reads a LogoutResponse the SP sent back by redirect.
    pub fn read_logout_response_from_url(url: &str) -> LogoutResponseSeen {
        let message =
            redirect_message(url, "SAMLResponse").unwrap_or_else(|e| panic!("{e}: {url}"));
        logout_response_seen(message).unwrap_or_else(|e| panic!("{e}: {url}"))
    }

    /// Reads a LogoutResponse the SP sent back by POST.
    pub fn read_logout_response_from_form(fields: &[(String, String)]) -> LogoutResponseSeen {
        let message =
            post_message(fields, "SAMLResponse").unwrap_or_else(|e| panic!("{e}: {fields:?}"));
        logout_response_seen(message).unwrap_or_else(|e| panic!("{e}: {fields:?}"))
    }

    // --- responses ------------------------------------------------------------------------

    /// The Response XML (with its XML declaration), signed and encrypted as the spec says.
    pub fn response_xml(&self, spec: &ResponseSpec) -> String {
        self.inner.response_xml(spec)
    }

    /// The base64 `SAMLResponse` form value for the SP (HTTP-POST binding).
    pub fn response(&self, spec: &ResponseSpec) -> String {
        B64.encode(self.response_xml(spec))
    }

    /// The response altered to carry an attack (see [`Attack`]), as XML.
    pub fn attack_xml(&self, spec: &ResponseSpec, attack: Attack) -> String {
        self.inner.attack_xml(spec, attack)
    }

    /// The response altered to carry an attack, as the base64 `SAMLResponse` value.
    pub fn attack(&self, spec: &ResponseSpec, attack: Attack) -> String {
        B64.encode(self.attack_xml(spec, attack))
    }

    /// The form fields to POST to the ACS: `SAMLResponse` (and `RelayState`).
    pub fn post_fields(saml_response: &str, relay_state: Option<&str>) -> Vec<(String, String)> {
        post_fields("SAMLResponse", saml_response, relay_state)
    }

    // --- single logout ----------------------------------------------------------------------

    /// An IdP-initiated LogoutRequest as a signed HTTP-Redirect URL to the SP's SLO URL
    /// (query signature RSA-SHA256 over SAMLRequest, RelayState, SigAlg, by samael's
    /// `sign_url`).
    pub fn logout_request_redirect(&self, spec: &LogoutRequestSpec) -> SentMessage {
        let id = spec.id.clone().unwrap_or_else(fresh_id);
        let xml = self.inner.logout_request_xml(spec, &id, false);
        let url = signed_redirect_url(
            &spec.sp_slo_url,
            "SAMLRequest",
            &xml,
            spec.relay_state.as_deref(),
            &self.inner.key,
        );
        SentMessage {
            id,
            xml,
            url,
            fields: Vec::new(),
        }
    }

    /// The same LogoutRequest for the HTTP-POST binding, with an enveloped XML signature.
    pub fn logout_request_post(&self, spec: &LogoutRequestSpec) -> SentMessage {
        let id = spec.id.clone().unwrap_or_else(fresh_id);
        let xml = self.inner.logout_request_xml(spec, &id, true);
        let fields = post_fields(
            "SAMLRequest",
            &B64.encode(&xml),
            spec.relay_state.as_deref(),
        );
        SentMessage {
            id,
            xml,
            url: spec.sp_slo_url.clone(),
            fields,
        }
    }

    /// The signed LogoutResponse answering an SP's LogoutRequest, as a redirect URL to
    /// `sp_slo_url` carrying the request's RelayState. `status`: [`status::SUCCESS`]...
    pub fn logout_response_redirect(
        &self,
        request: &LogoutRequestSeen,
        sp_slo_url: &str,
        status: &str,
    ) -> SentMessage {
        self.inner
            .logout_response_redirect(request, sp_slo_url, status)
    }

    /// The same for the HTTP-POST binding (enveloped XML signature).
    pub fn logout_response_post(
        &self,
        request: &LogoutRequestSeen,
        sp_slo_url: &str,
        status: &str,
    ) -> SentMessage {
        let id = fresh_id();
        let xml = self
            .inner
            .logout_response_xml(&id, &request.id, sp_slo_url, status, true);
        let fields = post_fields(
            "SAMLResponse",
            &B64.encode(&xml),
            request.relay_state.as_deref(),
        );
        SentMessage {
            id,
            xml,
            url: sp_slo_url.to_owned(),
            fields,
        }
    }
}

fn metadata_answer(xml: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/samlmetadata+xml")
        .set_body_string(xml)
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entity_id(&self) -> String {
        format!("{}/idp", self.base)
    }

    fn sso_url(&self) -> String {
        format!("{}/idp/sso", self.base)
    }

    fn slo_url(&self) -> String {
        format!("{}/idp/slo", self.base)
    }

    // --- HTTP ---------------------------------------------------------------------------------

    fn handle_sso(&self, request: &Request) -> ResponseTemplate {
        let seen = if request.method.as_str() == "GET" {
            try_read_authn_request_from_url(request.url.as_str())
        } else {
            try_read_authn_request_from_form(&form_fields(&request.body))
        };
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => return ResponseTemplate::new(400).set_body_string(e),
        };
        let (auto_login, manual) = {
            let mut state = self.state();
            state.authn_requests.push(seen.clone());
            (state.auto_login.clone(), state.auto_login_manual)
        };
        let Some(mut spec) = auto_login else {
            return ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_string("mock SAML IdP: AuthnRequest received");
        };
        if let Some(acs) = &seen.acs_url {
            spec.acs_url = acs.clone();
        }
        spec.in_response_to = Some(seen.id.clone());
        // A random ID as before, known here so that the post can be recorded with it.
        let id = spec.response_id.get_or_insert_with(fresh_id).clone();
        let xml = self.response_xml(&spec);
        let fields = post_fields(
            "SAMLResponse",
            &B64.encode(&xml),
            seen.relay_state.as_deref(),
        );
        let page = if manual {
            manual_post_form(&spec.acs_url, &fields)
        } else {
            auto_post_form(&spec.acs_url, &fields)
        };
        self.state().auto_login_posts.push(SentMessage {
            id,
            xml,
            url: spec.acs_url.clone(),
            fields,
        });
        // set_body_raw: set_body_string would make it text/plain whatever the header says
        // (wiremock's mime wins), and a browser would show the form's source.
        ResponseTemplate::new(200).set_body_raw(page.into_bytes(), "text/html; charset=utf-8")
    }

    fn handle_slo(&self, request: &Request) -> ResponseTemplate {
        let form = if request.method.as_str() == "POST" {
            form_fields(&request.body)
        } else {
            Vec::new()
        };
        let sp_slo_url = {
            let mut state = self.state();
            state.slo_messages.push(ReceivedMessage {
                method: request.method.as_str().to_owned(),
                url: request.url.to_string(),
                form,
            });
            state.sp_slo_url.clone()
        };
        if let (Some(sp_slo_url), "GET") = (sp_slo_url, request.method.as_str()) {
            if let Ok(seen) =
                redirect_message(request.url.as_str(), "SAMLRequest").and_then(logout_request_seen)
            {
                let answer = self.logout_response_redirect(&seen, &sp_slo_url, status::SUCCESS);
                return ResponseTemplate::new(302).insert_header("location", answer.url.as_str());
            }
        }
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/plain")
            .set_body_string("mock SAML IdP: logout message received")
    }

    // --- metadata -------------------------------------------------------------------------------

    fn metadata_xml(&self) -> String {
        format!("{XML_DECL}\n{}", self.entity_descriptor(None))
    }

    /// The IdP's EntityDescriptor; with `Some(id)`: an ID attribute and a signature template
    /// (first child, as the metadata schema wants) by the metadata signer.
    fn entity_descriptor(&self, signed_id: Option<&str>) -> String {
        let want_signed = self.state().want_authn_requests_signed;
        let (id_attribute, template) = match signed_id {
            Some(id) => (
                format!(r#" ID="{id}""#),
                signature_template(
                    id,
                    SignatureAlgorithm::RsaSha256,
                    &TestKey::metadata_signer(),
                ),
            ),
            None => (String::new(), String::new()),
        };
        idp_entity_descriptor(&IdpDescriptor {
            entity_id: &self.entity_id(),
            sso_url: &self.sso_url(),
            slo_url: &self.slo_url(),
            cert_base64: &self.key.cert_base64(),
            want_authn_requests_signed: want_signed,
            extra_root_attributes: &id_attribute,
            first_child: &template,
        })
    }

    fn federation_body(&self, signed_id: Option<&str>) -> String {
        let (id_attribute, template) = match signed_id {
            Some(id) => (
                format!(r#" ID="{id}""#),
                signature_template(
                    id,
                    SignatureAlgorithm::RsaSha256,
                    &TestKey::metadata_signer(),
                ),
            ),
            None => (String::new(), String::new()),
        };
        let others: Vec<String> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let host = format!("https://idp-{name}.federation.test");
                idp_entity_descriptor(&IdpDescriptor {
                    entity_id: &format!("{host}/idp"),
                    sso_url: &format!("{host}/sso"),
                    slo_url: &format!("{host}/slo"),
                    cert_base64: &TestKey::federation_member(n).cert_base64(),
                    want_authn_requests_signed: false,
                    extra_root_attributes: "",
                    first_child: "",
                })
            })
            .collect();
        format!(
            r#"<md:EntitiesDescriptor xmlns:md="{NS_METADATA}" xmlns:ds="{NS_DSIG}" Name="urn:guichet:test:federation" validUntil="{}"{id_attribute}>{template}{}{}{}</md:EntitiesDescriptor>"#,
            metadata_valid_until(),
            others[0],
            self.entity_descriptor(None),
            others[1],
        )
    }

    fn federation_metadata_xml(&self) -> String {
        format!("{XML_DECL}\n{}", self.federation_body(None))
    }

    fn signed_metadata_xml(&self) -> String {
        let unsigned = self.entity_descriptor(Some(&fresh_id()));
        with_decl(&sign(&unsigned, &TestKey::metadata_signer()))
    }

    fn signed_federation_metadata_xml(&self) -> String {
        let unsigned = self.federation_body(Some(&fresh_id()));
        with_decl(&sign(&unsigned, &TestKey::metadata_signer()))
    }

    // --- responses ------------------------------------------------------------------------------

    fn issuer(&self, spec: &ResponseSpec) -> String {
        spec.issuer.clone().unwrap_or_else(|| self.entity_id())
    }

    fn response_xml(&self, spec: &ResponseSpec) -> String {
        with_decl(&self.compose(spec, &self.key, spec.sign, &|a| a))
    }

    /// The response body (no XML declaration): the assertion (signed when `sign` says so,
    /// then passed through `hook`, then encrypted when the spec says so) in a Response
    /// (signed when `sign` says so).
    fn compose(
        &self,
        spec: &ResponseSpec,
        key: &TestKey,
        sign: Signing,
        hook: &dyn Fn(String) -> String,
    ) -> String {
        let response_id = spec.response_id.clone().unwrap_or_else(fresh_id);
        let inner = if spec.includes_assertion() {
            let assertion_id = spec.assertion_id.clone().unwrap_or_else(fresh_id);
            let assertion =
                self.assertion(spec, &assertion_id, &spec.name_id, sign.assertion(), key);
            self.protect(spec, &hook(assertion))
        } else {
            String::new()
        };
        self.response_body(spec, &response_id, &inner, sign.response(), key)
    }

    /// A plaintext assertion (no XML declaration), signed by `key` if `signed`.
    fn assertion(
        &self,
        spec: &ResponseSpec,
        id: &str,
        name_id: &str,
        signed: bool,
        key: &TestKey,
    ) -> String {
        let issue_instant = spec.instant(spec.issue_instant_offset);
        let template = if signed {
            signature_template(id, spec.signature_algorithm, key)
        } else {
            String::new()
        };
        let format = optional_attribute("Format", Some(&spec.name_id_format));
        let recipient = optional_attribute(
            "Recipient",
            Some(spec.recipient.as_deref().unwrap_or(&spec.acs_url)),
        );
        let confirmation = format!(
            "<saml:SubjectConfirmationData{}{}{}{}/>",
            optional_attribute(
                "NotBefore",
                spec.confirmation_not_before_offset
                    .map(|o| spec.instant(o))
                    .as_deref()
            ),
            optional_attribute(
                "NotOnOrAfter",
                spec.confirmation_not_on_or_after_offset
                    .map(|o| spec.instant(o))
                    .as_deref()
            ),
            recipient,
            optional_attribute("InResponseTo", spec.in_response_to.as_deref()),
        );
        let audience = spec
            .audience
            .as_deref()
            .map(|a| {
                format!(
                    "<saml:AudienceRestriction><saml:Audience>{}</saml:Audience></saml:AudienceRestriction>",
                    escape(a)
                )
            })
            .unwrap_or_default();
        let conditions = format!(
            "<saml:Conditions{}{}>{audience}</saml:Conditions>",
            optional_attribute(
                "NotBefore",
                spec.conditions_not_before_offset
                    .map(|o| spec.instant(o))
                    .as_deref()
            ),
            optional_attribute(
                "NotOnOrAfter",
                spec.conditions_not_on_or_after_offset
                    .map(|o| spec.instant(o))
                    .as_deref()
            ),
        );
        let authn_statement = format!(
            r#"<saml:AuthnStatement AuthnInstant="{issue_instant}"{}{}><saml:AuthnContext><saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
            optional_attribute("SessionIndex", spec.session_index.as_deref()),
            optional_attribute(
                "SessionNotOnOrAfter",
                spec.session_not_on_or_after_offset
                    .map(|o| spec.instant(o))
                    .as_deref()
            ),
            escape(&spec.authn_context_class_ref),
        );
        let attributes = if spec.attributes.is_empty() {
            String::new()
        } else {
            let list: String = spec
                .attributes
                .iter()
                .map(|a| {
                    let values: String = a
                        .values
                        .iter()
                        .map(|v| {
                            format!(
                                r#"<saml:AttributeValue xsi:type="xs:string">{}</saml:AttributeValue>"#,
                                escape(v)
                            )
                        })
                        .collect();
                    format!(
                        "<saml:Attribute{}{}{}>{values}</saml:Attribute>",
                        optional_attribute("Name", Some(&a.name)),
                        optional_attribute("NameFormat", Some(&a.name_format)),
                        optional_attribute("FriendlyName", a.friendly_name.as_deref()),
                    )
                })
                .collect();
            format!("<saml:AttributeStatement>{list}</saml:AttributeStatement>")
        };
        let unsigned = format!(
            r#"<saml:Assertion xmlns:saml="{NS_ASSERTION}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" Version="2.0" IssueInstant="{issue_instant}"><saml:Issuer>{issuer}</saml:Issuer>{template}<saml:Subject><saml:NameID{format}>{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">{confirmation}</saml:SubjectConfirmation></saml:Subject>{conditions}{authn_statement}{attributes}</saml:Assertion>"#,
            issuer = escape(&self.issuer(spec)),
            name_id = escape(name_id),
        );
        if signed {
            sign(&unsigned, key)
        } else {
            unsigned
        }
    }

    /// The assertion as it goes in the Response: encrypted for the SP when the spec says so.
    fn protect(&self, spec: &ResponseSpec, assertion: &str) -> String {
        match &spec.encrypt_for {
            Some(encrypt_for) => encrypt_assertion(assertion, encrypt_for),
            None => assertion.to_owned(),
        }
    }

    /// A Response (no XML declaration) around `inner`, signed by `key` if `signed`.
    fn response_body(
        &self,
        spec: &ResponseSpec,
        id: &str,
        inner: &str,
        signed: bool,
        key: &TestKey,
    ) -> String {
        let template = if signed {
            signature_template(id, spec.signature_algorithm, key)
        } else {
            String::new()
        };
        let destination = spec.destination.as_deref().unwrap_or(&spec.acs_url);
        let sub_code = spec
            .status_sub_code
            .as_deref()
            .map(|c| format!(r#"<samlp:StatusCode Value="{}"/>"#, escape(c)))
            .unwrap_or_default();
        let message = spec
            .status_message
            .as_deref()
            .map(|m| format!("<samlp:StatusMessage>{}</samlp:StatusMessage>", escape(m)))
            .unwrap_or_default();
        let unsigned = format!(
            r#"<samlp:Response xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{}"{}{}><saml:Issuer>{}</saml:Issuer>{template}<samlp:Status><samlp:StatusCode Value="{}">{sub_code}</samlp:StatusCode>{message}</samlp:Status>{inner}</samlp:Response>"#,
            spec.instant(spec.issue_instant_offset),
            optional_attribute("Destination", Some(destination)),
            optional_attribute("InResponseTo", spec.in_response_to.as_deref()),
            escape(&self.issuer(spec)),
            escape(&spec.status),
        );
        if signed {
            sign(&unsigned, key)
        } else {
            unsigned
        }
    }

    /// A spec for an evil copy: the evil NameID, fresh IDs, unsigned.
    fn evil_spec(spec: &ResponseSpec) -> ResponseSpec {
        ResponseSpec {
            name_id: spec.evil_name_id.clone(),
            response_id: Some(format!("_evil{}", &fresh_id()[1..])),
            assertion_id: Some(format!("_evil{}", &fresh_id()[1..])),
            sign: Signing::None,
            ..spec.clone()
        }
    }

    fn evil_assertion(&self, spec: &ResponseSpec) -> String {
        let evil = Inner::evil_spec(spec);
        let id = evil.assertion_id.clone().unwrap_or_else(fresh_id);
        self.assertion(&evil, &id, &evil.name_id, false, &self.key)
    }

    fn attack_xml(&self, spec: &ResponseSpec, attack: Attack) -> String {
        let sign = attack.signing(spec.sign);
        let spec = &ResponseSpec {
            sign,
            with_assertion: Some(true),
            ..spec.clone()
        };
        let key: &TestKey = &self.key;
        let response_id = || spec.response_id.clone().unwrap_or_else(fresh_id);
        let assertion_id = || spec.assertion_id.clone().unwrap_or_else(fresh_id);
        let signed_assertion = || self.assertion(spec, &assertion_id(), &spec.name_id, true, key);
        let unsigned_response =
            |inner: &str| self.response_body(spec, &response_id(), inner, false, key);
        let body = match attack {
            Attack::Xsw1 | Attack::Xsw2 => {
                let original = self.compose(spec, key, Signing::Response, &|a| a);
                let (signature, original_unsigned) = split_signature(&original);
                let evil_spec = Inner::evil_spec(spec);
                let evil = self.compose(&evil_spec, key, Signing::None, &|a| a);
                let wrapped = if attack == Attack::Xsw1 {
                    append_inside_signature(&signature, &original_unsigned)
                } else {
                    format!("{original_unsigned}{signature}")
                };
                insert_after_first(&evil, "</saml:Issuer>", &wrapped)
            }
            Attack::Xsw3 => {
                let inner = format!(
                    "{}{}",
                    self.protect(spec, &self.evil_assertion(spec)),
                    self.protect(spec, &signed_assertion())
                );
                unsigned_response(&inner)
            }
            Attack::Xsw4 => {
                let evil = self.evil_assertion(spec);
                let wrapped = insert_before_last(&evil, "</saml:Assertion>", &signed_assertion());
                unsigned_response(&self.protect(spec, &wrapped))
            }
            Attack::Xsw5 => {
                let (signature, original_unsigned) = split_signature(&signed_assertion());
                let evil =
                    insert_after_first(&self.evil_assertion(spec), "</saml:Issuer>", &signature);
                let inner = format!(
                    "{}{}",
                    self.protect(spec, &evil),
                    self.protect(spec, &original_unsigned)
                );
                unsigned_response(&inner)
            }
            Attack::Xsw6 => {
                let (signature, original_unsigned) = split_signature(&signed_assertion());
                let nested = append_inside_signature(&signature, &original_unsigned);
                let evil =
                    insert_after_first(&self.evil_assertion(spec), "</saml:Issuer>", &nested);
                unsigned_response(&self.protect(spec, &evil))
            }
            Attack::Xsw7 => {
                let response = unsigned_response(&self.protect(spec, &signed_assertion()));
                let extensions = format!(
                    "<samlp:Extensions>{}</samlp:Extensions>",
                    self.protect(spec, &self.evil_assertion(spec))
                );
                insert_after_first(&response, "</saml:Issuer>", &extensions)
            }
            Attack::Xsw8 => {
                let (signature, original_unsigned) = split_signature(&signed_assertion());
                let with_object = append_inside_signature(
                    &signature,
                    &format!("<ds:Object>{original_unsigned}</ds:Object>"),
                );
                let evil =
                    insert_after_first(&self.evil_assertion(spec), "</saml:Issuer>", &with_object);
                unsigned_response(&self.protect(spec, &evil))
            }
            Attack::EvilAssertionAfterValid => {
                let inner = format!(
                    "{}{}",
                    self.protect(spec, &signed_assertion()),
                    self.protect(spec, &self.evil_assertion(spec))
                );
                unsigned_response(&inner)
            }
            Attack::MultipleAssertions => {
                let evil = Inner::evil_spec(spec);
                let second = self.assertion(
                    &evil,
                    evil.assertion_id.as_deref().unwrap_or("_second"),
                    &evil.name_id,
                    true,
                    key,
                );
                let inner = format!(
                    "{}{}",
                    self.protect(spec, &signed_assertion()),
                    self.protect(spec, &second)
                );
                self.response_body(spec, &response_id(), &inner, sign.response(), key)
            }
            Attack::SignatureRemoved => {
                remove_signatures(&self.compose(spec, key, sign, &|a| remove_signatures(&a)))
            }
            Attack::UnsignedAssertionInSignedResponse => {
                let signed = self.compose(spec, key, Signing::Response, &|a| a);
                let evil = self.protect(spec, &self.evil_assertion(spec));
                let element = if spec.encrypt_for.is_some() {
                    "saml:EncryptedAssertion"
                } else {
                    "saml:Assertion"
                };
                replace_element(&signed, element, &evil)
            }
            Attack::CommentInNameId => {
                let owned = format!("{}.evil.example", spec.evil_name_id);
                let prefix = escape(&spec.evil_name_id);
                let spec = ResponseSpec {
                    name_id: owned,
                    ..spec.clone()
                };
                self.compose(&spec, key, sign, &|a| {
                    let start = text_start(&a, "<saml:NameID").expect("a NameID");
                    let at = start + prefix.len();
                    format!("{}<!---->{}", &a[..at], &a[at..])
                })
            }
            Attack::Doctype => {
                let body = self.compose(spec, key, sign, &|a| a);
                return format!(
                    "{XML_DECL}\n<!DOCTYPE samlp:Response [<!ELEMENT samlp:Response ANY>]>\n{body}"
                );
            }
            Attack::ExternalEntity | Attack::EntityExpansion => {
                let (doctype, reference) = if attack == Attack::ExternalEntity {
                    (
                        r#"<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#
                            .to_owned(),
                        "&xxe;",
                    )
                } else {
                    let mut entities = String::from(r#"<!ENTITY lol0 "lol">"#);
                    for level in 1..10 {
                        let previous = format!("&lol{};", level - 1).repeat(10);
                        entities.push_str(&format!(r#"<!ENTITY lol{level} "{previous}">"#));
                    }
                    (format!("<!DOCTYPE samlp:Response [{entities}]>"), "&lol9;")
                };
                let body = self.compose(spec, key, sign, &|a| a);
                let body = match text_span(&body, "<saml:NameID") {
                    Some((start, end)) => format!("{}{reference}{}", &body[..start], &body[end..]),
                    None => insert_before_first(
                        &body,
                        "</samlp:Status>",
                        &format!("<samlp:StatusMessage>{reference}</samlp:StatusMessage>"),
                    ),
                };
                return format!("{XML_DECL}\n{doctype}\n{body}");
            }
            Attack::ForeignCertificateInKeyInfo => {
                self.compose(spec, &TestKey::attacker(), sign, &|a| a)
            }
            Attack::RsaSha1 => {
                let spec = ResponseSpec {
                    signature_algorithm: SignatureAlgorithm::RsaSha1,
                    ..spec.clone()
                };
                self.compose(&spec, key, sign, &|a| a)
            }
            Attack::AlteredByte => {
                if spec.encrypt_for.is_none() {
                    let body = self.compose(spec, key, sign, &|a| a);
                    alter_first_value(&body)
                } else if sign.assertion() {
                    self.compose(spec, key, sign, &|a| alter_first_value(&a))
                } else {
                    let body = self.compose(spec, key, sign, &|a| a);
                    alter_issue_instant(&body)
                }
            }
        };
        with_decl(&body)
    }

    // --- logout ---------------------------------------------------------------------------------

    fn logout_request_xml(&self, spec: &LogoutRequestSpec, id: &str, signed: bool) -> String {
        let template = if signed {
            signature_template(id, SignatureAlgorithm::RsaSha256, &self.key)
        } else {
            String::new()
        };
        let now = Utc::now();
        let unsigned = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{}"{}{}><saml:Issuer>{}</saml:Issuer>{template}<saml:NameID{}>{}</saml:NameID>{}</samlp:LogoutRequest>"#,
            xml_time(now),
            optional_attribute("Destination", Some(&spec.sp_slo_url)),
            optional_attribute(
                "NotOnOrAfter",
                spec.not_on_or_after_offset
                    .map(|o| xml_time(now + o))
                    .as_deref()
            ),
            escape(&spec.issuer.clone().unwrap_or_else(|| self.entity_id())),
            optional_attribute("Format", Some(&spec.name_id_format)),
            escape(&spec.name_id),
            spec.session_index
                .as_deref()
                .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
                .unwrap_or_default(),
        );
        if signed {
            with_decl(&sign(&unsigned, &self.key))
        } else {
            with_decl(&unsigned)
        }
    }

    fn logout_response_xml(
        &self,
        id: &str,
        in_response_to: &str,
        destination: &str,
        status: &str,
        signed: bool,
    ) -> String {
        let template = if signed {
            signature_template(id, SignatureAlgorithm::RsaSha256, &self.key)
        } else {
            String::new()
        };
        let unsigned = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{}"{}{}><saml:Issuer>{}</saml:Issuer>{template}<samlp:Status><samlp:StatusCode Value="{}"/></samlp:Status></samlp:LogoutResponse>"#,
            xml_time(Utc::now()),
            optional_attribute("Destination", Some(destination)),
            optional_attribute("InResponseTo", Some(in_response_to)),
            escape(&self.entity_id()),
            escape(status),
        );
        if signed {
            with_decl(&sign(&unsigned, &self.key))
        } else {
            with_decl(&unsigned)
        }
    }

    fn logout_response_redirect(
        &self,
        request: &LogoutRequestSeen,
        sp_slo_url: &str,
        status: &str,
    ) -> SentMessage {
        let id = fresh_id();
        let xml = self.logout_response_xml(&id, &request.id, sp_slo_url, status, false);
        let url = signed_redirect_url(
            sp_slo_url,
            "SAMLResponse",
            &xml,
            request.relay_state.as_deref(),
            &self.key,
        );
        SentMessage {
            id,
            xml,
            url,
            fields: Vec::new(),
        }
    }
}

struct IdpDescriptor<'a> {
    entity_id: &'a str,
    sso_url: &'a str,
    slo_url: &'a str,
    cert_base64: &'a str,
    want_authn_requests_signed: bool,
    extra_root_attributes: &'a str,
    first_child: &'a str,
}

fn idp_entity_descriptor(d: &IdpDescriptor<'_>) -> String {
    let endpoints = |element: &str, location: &str| {
        [BINDING_REDIRECT, BINDING_POST]
            .iter()
            .map(|binding| {
                format!(
                    r#"<md:{element} Binding="{binding}" Location="{}"/>"#,
                    escape(location)
                )
            })
            .collect::<String>()
    };
    let formats: String = [
        name_id_format::EMAIL,
        name_id_format::PERSISTENT,
        name_id_format::TRANSIENT,
    ]
    .iter()
    .map(|f| format!("<md:NameIDFormat>{f}</md:NameIDFormat>"))
    .collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="{NS_METADATA}" xmlns:ds="{NS_DSIG}" entityID="{}" validUntil="{}"{}>{}<md:IDPSSODescriptor WantAuthnRequestsSigned="{}" protocolSupportEnumeration="{NS_PROTOCOL}"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>{}{formats}{}</md:IDPSSODescriptor></md:EntityDescriptor>"#,
        escape(d.entity_id),
        metadata_valid_until(),
        d.extra_root_attributes,
        d.first_child,
        d.want_authn_requests_signed,
        d.cert_base64,
        endpoints("SingleLogoutService", d.slo_url),
        endpoints("SingleSignOnService", d.sso_url),
    )
}

// ---------------------------------------------------------------------------------------------
// Signing, encryption, redirect binding
// ---------------------------------------------------------------------------------------------

const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

fn with_decl(body: &str) -> String {
    format!("{XML_DECL}\n{body}")
}

/// An empty enveloped-signature template for the element with this ID: xmlsec fills in the
/// DigestValue and SignatureValue.
fn signature_template(reference_id: &str, algorithm: SignatureAlgorithm, key: &TestKey) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="{NS_DSIG}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/><ds:SignatureMethod Algorithm="{}"/><ds:Reference URI="#{reference_id}"><ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"/><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms><ds:DigestMethod Algorithm="{}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
        algorithm.signature_uri(),
        algorithm.digest_uri(),
        key.cert_base64(),
    )
}

/// Fills the first signature template of the document (document order: a Response's own
/// template comes before its assertion's) with xmlsec; returns the document without its
/// XML declaration.
fn sign(xml: &str, key: &TestKey) -> String {
    let signed = Crypto::sign_xml(xml, &key.private_key_der()).expect("xmlsec signs the template");
    strip_decl(&signed)
}

fn strip_decl(xml: &str) -> String {
    let xml = xml.trim();
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, body)| body.trim().to_owned())
            .unwrap_or_default(),
        None => xml.to_owned(),
    }
}

/// XML Encryption of a (signed or not) assertion for the SP: a random content key, the
/// assertion encrypted with it (GCM: IV(12) || ciphertext || tag(16); CBC: IV(16) ||
/// ciphertext with PKCS#7 padding), the key encrypted with the SP's RSA key in
/// `ds:KeyInfo/xenc:EncryptedKey`.
fn encrypt_assertion(assertion: &str, encrypt_for: &EncryptFor) -> String {
    let certificate = X509::from_pem(encrypt_for.cert_pem.as_bytes()).expect("SP certificate PEM");
    let rsa = certificate
        .public_key()
        .and_then(|k| k.rsa())
        .expect("an RSA SP certificate");
    let data = encrypt_for.data_encryption;
    let cipher = data.cipher();
    let mut content_key = vec![0u8; cipher.key_len()];
    openssl::rand::rand_bytes(&mut content_key).expect("random key");
    let encrypted = if data.is_gcm() {
        let mut iv = [0u8; 12];
        openssl::rand::rand_bytes(&mut iv).expect("random IV");
        let mut tag = [0u8; 16];
        let ciphertext = openssl::symm::encrypt_aead(
            cipher,
            &content_key,
            Some(&iv),
            &[],
            assertion.as_bytes(),
            &mut tag,
        )
        .expect("AES-GCM");
        [&iv[..], &ciphertext, &tag].concat()
    } else {
        let mut iv = [0u8; 16];
        openssl::rand::rand_bytes(&mut iv).expect("random IV");
        let ciphertext =
            openssl::symm::encrypt(cipher, &content_key, Some(&iv), assertion.as_bytes())
                .expect("AES-CBC");
        [&iv[..], &ciphertext].concat()
    };
    let (padding, digest) = match encrypt_for.key_transport {
        KeyTransport::RsaOaepMgf1p => (
            Padding::PKCS1_OAEP,
            format!(r#"<ds:DigestMethod Algorithm="{DIGEST_SHA1}"/>"#),
        ),
        KeyTransport::Rsa15 => (Padding::PKCS1, String::new()),
    };
    let mut encrypted_key = vec![0u8; rsa.size() as usize];
    let length = rsa
        .public_encrypt(&content_key, &mut encrypted_key, padding)
        .expect("RSA key transport");
    encrypted_key.truncate(length);
    format!(
        r#"<saml:EncryptedAssertion xmlns:saml="{NS_ASSERTION}"><xenc:EncryptedData xmlns:xenc="{NS_XENC}" Id="{}" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{}"/><ds:KeyInfo xmlns:ds="{NS_DSIG}"><xenc:EncryptedKey Id="{}"><xenc:EncryptionMethod Algorithm="{}">{digest}</xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
        fresh_id(),
        data.uri(),
        fresh_id(),
        encrypt_for.key_transport.uri(),
        B64.encode(encrypted_key),
        B64.encode(encrypted),
    )
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("deflate");
    encoder.finish().expect("deflate")
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| format!("not DEFLATE data ({e})"))?;
    Ok(out)
}

/// An HTTP-Redirect URL to `destination` (which may already have a query) carrying `xml`
/// (deflated, base64) as `parameter` (`SAMLRequest` or `SAMLResponse`), its RelayState, and
/// a signature by `key` made by samael's [`samael::crypto::sign_url`] (RSA-SHA256 over
/// `parameter=..&RelayState=..&SigAlg=..`). Also what a test uses to act as an SP.
pub fn signed_redirect_url(
    destination: &str,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: &TestKey,
) -> String {
    let mut unsigned = url::Url::parse("http://sign.invalid/").expect("a URL");
    {
        let mut query = unsigned.query_pairs_mut();
        query.append_pair(parameter, &B64.encode(deflate(xml.as_bytes())));
        if let Some(relay_state) = relay_state {
            query.append_pair("RelayState", relay_state);
        }
    }
    let signed = samael::crypto::sign_url(unsigned, key.private_key()).expect("redirect signature");
    let separator = if destination.contains('?') { '&' } else { '?' };
    format!(
        "{destination}{separator}{}",
        signed.query().unwrap_or_default()
    )
}

/// The same without signature.
pub fn unsigned_redirect_url(
    destination: &str,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair(parameter, &B64.encode(deflate(xml.as_bytes())));
    if let Some(relay_state) = relay_state {
        query.append_pair("RelayState", relay_state);
    }
    let separator = if destination.contains('?') { '&' } else { '?' };
    format!("{destination}{separator}{}", query.finish())
}

fn post_fields(parameter: &str, value: &str, relay_state: Option<&str>) -> Vec<(String, String)> {
    let mut fields = vec![(parameter.to_owned(), value.to_owned())];
    if let Some(relay_state) = relay_state {
        fields.push(("RelayState".to_owned(), relay_state.to_owned()));
    }
    fields
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// An HTML page that POSTs the fields to `action` on load (what an IdP sends the browser).
pub fn auto_post_form(action: &str, fields: &[(String, String)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}"/>"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mock IdP</title></head><body onload="document.forms[0].submit()"><form method="post" action="{}">{inputs}<noscript><button type="submit">Continue</button></noscript></form></body></html>"#,
        escape(action)
    )
}

/// The same form, submitted only by a click on its `#continue` button.
pub fn manual_post_form(action: &str, fields: &[(String, String)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}"/>"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mock IdP</title></head><body><form method="post" action="{}">{inputs}<button type="submit" id="continue">Continue</button></form></body></html>"#,
        escape(action)
    )
}

fn verify_redirect_signature(url: &str, cert_pem: &str) -> bool {
    let Ok(parsed) = absolute_url(url) else {
        return false;
    };
    let params: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let (Some(sig_alg), true) = (params.get("SigAlg"), params.contains_key("Signature")) else {
        return false;
    };
    let is_request = params.contains_key("SAMLRequest");
    if !is_request && !params.contains_key("SAMLResponse") {
        return false;
    }
    // UrlVerifier panics on algorithms it does not implement: only hand it those it does.
    if sig_alg == ALG_RSA_SHA256 || sig_alg == ALG_ECDSA_SHA256 {
        if let Ok(verifier) = UrlVerifier::from_x509_cert_pem(cert_pem) {
            let verified = if is_request {
                verifier.verify_signed_request_url(&parsed)
            } else {
                verifier.verify_signed_response_url(&parsed)
            };
            if matches!(verified, Ok(true)) {
                return true;
            }
        }
    }
    verify_raw_redirect_signature(parsed.query().unwrap_or_default(), sig_alg, cert_pem)
}

/// The signature over the parameters exactly as they were received.
fn verify_raw_redirect_signature(query: &str, sig_alg: &str, cert_pem: &str) -> bool {
    let digest = match sig_alg {
        ALG_RSA_SHA256 | ALG_ECDSA_SHA256 => MessageDigest::sha256(),
        ALG_RSA_SHA512 => MessageDigest::sha512(),
        _ => return false,
    };
    let raw = |name: &str| {
        query
            .split('&')
            .find(|part| part.split('=').next() == Some(name))
    };
    let mut signed_parts = Vec::new();
    for name in ["SAMLRequest", "SAMLResponse", "RelayState", "SigAlg"] {
        if let Some(part) = raw(name) {
            signed_parts.push(part);
        }
    }
    let signed = signed_parts.join("&");
    let Some(signature) = raw("Signature")
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v)
    else {
        return false;
    };
    let signature: String = url::form_urlencoded::parse(format!("s={signature}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Ok(signature) = B64.decode(signature.trim()) else {
        return false;
    };
    let Ok(public_key) = X509::from_pem(cert_pem.as_bytes()).and_then(|c| c.public_key()) else {
        return false;
    };
    openssl::sign::Verifier::new(digest, &public_key)
        .and_then(|mut verifier| {
            verifier.update(signed.as_bytes())?;
            verifier.verify(&signature)
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Reading SP messages
// ---------------------------------------------------------------------------------------------

struct Message {
    xml: String,
    relay_state: Option<String>,
    sig_alg: Option<String>,
    redirect_signature_present: bool,
    url: Option<String>,
}

fn absolute_url(url: &str) -> Result<url::Url, String> {
    url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://relative.invalid/").and_then(|base| base.join(url)))
        .map_err(|e| format!("not a URL ({e})"))
}

fn redirect_message(url: &str, parameter: &str) -> Result<Message, String> {
    let parsed = absolute_url(url)?;
    let params: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let value = params
        .get(parameter)
        .ok_or_else(|| format!("no {parameter} parameter"))?;
    let compressed = B64
        .decode(strip_whitespace(value))
        .map_err(|e| format!("{parameter} is not base64 ({e})"))?;
    let xml = String::from_utf8(inflate(&compressed)?)
        .map_err(|_| format!("{parameter} is not UTF-8"))?;
    Ok(Message {
        xml,
        relay_state: params.get("RelayState").cloned(),
        sig_alg: params.get("SigAlg").cloned(),
        redirect_signature_present: params.contains_key("Signature"),
        url: Some(url.to_owned()),
    })
}

fn post_message(fields: &[(String, String)], parameter: &str) -> Result<Message, String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let value = field(parameter).ok_or_else(|| format!("no {parameter} field"))?;
    let bytes = B64
        .decode(strip_whitespace(&value))
        .map_err(|e| format!("{parameter} is not base64 ({e})"))?;
    // The POST binding does not deflate, but tolerate an SP that does.
    let bytes = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        bytes
    } else {
        inflate(&bytes)?
    };
    let xml = String::from_utf8(bytes).map_err(|_| format!("{parameter} is not UTF-8"))?;
    Ok(Message {
        xml,
        relay_state: field("RelayState"),
        sig_alg: None,
        redirect_signature_present: false,
        url: None,
    })
}

fn strip_whitespace(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

fn try_read_authn_request_from_url(url: &str) -> Result<AuthnRequestSeen, String> {
    authn_request_seen(redirect_message(url, "SAMLRequest")?)
}

fn try_read_authn_request_from_form(
    fields: &[(String, String)],
) -> Result<AuthnRequestSeen, String> {
    authn_request_seen(post_message(fields, "SAMLRequest")?)
}

fn authn_request_seen(message: Message) -> Result<AuthnRequestSeen, String> {
    let root = parse_xml(&message.xml)?;
    if root.name != "AuthnRequest" {
        return Err(format!(
            "a {} where an AuthnRequest was expected",
            root.name
        ));
    }
    let policy = root.child("NameIDPolicy");
    let context = root.child("RequestedAuthnContext");
    Ok(AuthnRequestSeen {
        id: root.attr("ID").ok_or("an AuthnRequest without ID")?,
        issuer: root.child("Issuer").map(|e| e.text.trim().to_owned()),
        destination: root.attr("Destination"),
        acs_url: root.attr("AssertionConsumerServiceURL"),
        protocol_binding: root.attr("ProtocolBinding"),
        force_authn: root.attr("ForceAuthn").is_some_and(|v| xml_true(&v)),
        is_passive: root.attr("IsPassive").is_some_and(|v| xml_true(&v)),
        name_id_policy_format: policy.and_then(|p| p.attr("Format")),
        name_id_policy_allow_create: policy
            .and_then(|p| p.attr("AllowCreate"))
            .map(|v| xml_true(&v)),
        authn_context_class_refs: context
            .map(|c| {
                c.children
                    .iter()
                    .filter(|e| e.name == "AuthnContextClassRef")
                    .map(|e| e.text.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        authn_context_comparison: context.and_then(|c| c.attr("Comparison")),
        xml_signature_present: root.child("Signature").is_some(),
        relay_state: message.relay_state,
        sig_alg: message.sig_alg,
        redirect_signature_present: message.redirect_signature_present,
        url: message.url,
        xml: message.xml,
    })
}

fn logout_request_seen(message: Message) -> Result<LogoutRequestSeen, String> {
    let root = parse_xml(&message.xml)?;
    if root.name != "LogoutRequest" {
        return Err(format!(
            "a {} where a LogoutRequest was expected",
            root.name
        ));
    }
    let name_id = root.child("NameID");
    Ok(LogoutRequestSeen {
        id: root.attr("ID").ok_or("a LogoutRequest without ID")?,
        issuer: root.child("Issuer").map(|e| e.text.trim().to_owned()),
        destination: root.attr("Destination"),
        name_id: name_id.map(|e| e.text.trim().to_owned()),
        name_id_format: name_id.and_then(|e| e.attr("Format")),
        session_indexes: root
            .children
            .iter()
            .filter(|e| e.name == "SessionIndex")
            .map(|e| e.text.trim().to_owned())
            .collect(),
        xml_signature_present: root.child("Signature").is_some(),
        relay_state: message.relay_state,
        sig_alg: message.sig_alg,
        redirect_signature_present: message.redirect_signature_present,
        url: message.url,
        xml: message.xml,
    })
}

fn logout_response_seen(message: Message) -> Result<LogoutResponseSeen, String> {
    let root = parse_xml(&message.xml)?;
    if root.name != "LogoutResponse" {
        return Err(format!(
            "a {} where a LogoutResponse was expected",
            root.name
        ));
    }
    let code = root.child("Status").and_then(|s| s.child("StatusCode"));
    Ok(LogoutResponseSeen {
        id: root.attr("ID").ok_or("a LogoutResponse without ID")?,
        in_response_to: root.attr("InResponseTo"),
        issuer: root.child("Issuer").map(|e| e.text.trim().to_owned()),
        destination: root.attr("Destination"),
        status: code.and_then(|c| c.attr("Value")),
        status_sub_code: code
            .and_then(|c| c.child("StatusCode"))
            .and_then(|c| c.attr("Value")),
        xml_signature_present: root.child("Signature").is_some(),
        relay_state: message.relay_state,
        sig_alg: message.sig_alg,
        redirect_signature_present: message.redirect_signature_present,
        url: message.url,
        xml: message.xml,
    })
}

fn xml_true(value: &str) -> bool {
    matches!(value.trim(), "true" | "1")
}

/// A minimal element tree (local names; namespace declarations dropped): enough to read
/// what an SP sends. DTDs are refused.
#[derive(Debug, Clone, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|e| e.name == name)
    }
}

fn parse_xml(xml: &str) -> Result<Element, String> {
    use quick_xml::events::{BytesStart, Event};

    fn element(start: &BytesStart<'_>) -> Result<Element, String> {
        let mut attributes = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| format!("bad attribute ({e})"))?;
            if attribute.key.as_namespace_binding().is_some() {
                continue;
            }
            let name = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
            let value = attribute
                .unescape_value()
                .map_err(|e| format!("bad attribute value ({e})"))?
                .into_owned();
            attributes.push((name, value));
        }
        Ok(Element {
            name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
            attributes,
            ..Element::default()
        })
    }

    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let close = |stack: &mut Vec<Element>, done: Element, root: &mut Option<Element>| match stack
        .last_mut()
    {
        Some(parent) => parent.children.push(done),
        None => *root = Some(done),
    };
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("malformed XML ({e})"))?
        {
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => {
                let done = element(&start)?;
                close(&mut stack, done, &mut root);
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced XML")?;
                close(&mut stack, done, &mut root);
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current
                        .text
                        .push_str(&text.unescape().map_err(|e| format!("bad text ({e})"))?);
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE in a SAML message".to_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    root.ok_or_else(|| "no root element".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/// `_` and 32 hex digits (an NCName, as XML IDs must be).
pub fn fresh_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("_{hex}")
}

/// Federations publish metadata valid for days; signed metadata without it is refused.
fn metadata_valid_until() -> String {
    xml_time(Utc::now() + Duration::days(7))
}

fn xml_time(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Escapes text and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// ` name="value"`, or nothing for `None` or an empty value.
fn optional_attribute(name: &str, value: Option<&str>) -> String {
    match value {
        Some(value) if !value.is_empty() => format!(r#" {name}="{}""#, escape(value)),
        _ => String::new(),
    }
}

/// The first `ds:Signature` element of `xml`, and `xml` without it.
fn split_signature(xml: &str) -> (String, String) {
    let start = xml.find("<ds:Signature").expect("a ds:Signature");
    let end = xml[start..]
        .find("</ds:Signature>")
        .map(|e| start + e + "</ds:Signature>".len())
        .expect("a closed ds:Signature");
    (
        xml[start..end].to_owned(),
        format!("{}{}", &xml[..start], &xml[end..]),
    )
}

/// Every `ds:Signature` element removed.
fn remove_signatures(xml: &str) -> String {
    let mut xml = xml.to_owned();
    while xml.contains("<ds:Signature") {
        xml = split_signature(&xml).1;
    }
    xml
}

/// `content` as the last child of a `ds:Signature` element.
fn append_inside_signature(signature: &str, content: &str) -> String {
    insert_before_last(signature, "</ds:Signature>", content)
}

fn insert_after_first(xml: &str, marker: &str, insert: &str) -> String {
    let at = xml.find(marker).expect("the marker") + marker.len();
    format!("{}{insert}{}", &xml[..at], &xml[at..])
}

fn insert_before_first(xml: &str, marker: &str, insert: &str) -> String {
    let at = xml.find(marker).expect("the marker");
    format!("{}{insert}{}", &xml[..at], &xml[at..])
}

fn insert_before_last(xml: &str, marker: &str, insert: &str) -> String {
    let at = xml.rfind(marker).expect("the marker");
    format!("{}{insert}{}", &xml[..at], &xml[at..])
}

/// The first `<{element} ...>...</{element}>` replaced (the element must not nest itself).
fn replace_element(xml: &str, element: &str, replacement: &str) -> String {
    let start = xml.find(&format!("<{element}")).expect("the element");
    let close = format!("</{element}>");
    let end = start + xml[start..].find(&close).expect("the closing tag") + close.len();
    format!("{}{replacement}{}", &xml[..start], &xml[end..])
}

/// Where the text of the first element starting with `open` (e.g. `<saml:NameID`) begins.
fn text_start(xml: &str, open: &str) -> Option<usize> {
    let start = xml.find(open)?;
    Some(start + xml[start..].find('>')? + 1)
}

/// The byte span of the text of the first element starting with `open`.
fn text_span(xml: &str, open: &str) -> Option<(usize, usize)> {
    let start = text_start(xml, open)?;
    Some((start, start + xml[start..].find('<')?))
}

/// The first character of the first attribute value (or of the NameID) changed.
fn alter_first_value(xml: &str) -> String {
    let (start, end) = text_span(xml, "<saml:AttributeValue")
        .filter(|(s, e)| e > s)
        .or_else(|| text_span(xml, "<saml:NameID"))
        .expect("a value to alter");
    let first = xml[start..end].chars().next().expect("a non-empty value");
    let replacement = if first == 'X' { 'Y' } else { 'X' };
    format!(
        "{}{replacement}{}",
        &xml[..start],
        &xml[start + first.len_utf8()..]
    )
}

/// The units digit of the seconds of the first IssueInstant (the Response's) changed.
fn alter_issue_instant(xml: &str) -> String {
    let marker = r#" IssueInstant=""#;
    let start = xml.find(marker).expect("an IssueInstant") + marker.len();
    let end = start + xml[start..].find('"').expect("a closed attribute");
    let value = &xml[start..end];
    let digit_at = start + value.rfind(|c: char| c.is_ascii_digit()).expect("a digit");
    let digit = xml.as_bytes()[digit_at] - b'0';
    format!(
        "{}{}{}",
        &xml[..digit_at],
        (digit + 1) % 10,
        &xml[digit_at + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use samael::crypto::AllowedSignatureAlgorithm;

    const EVIL_NAME_ID: &str = ">admin@corp.example</saml:NameID>";
    const ALICE_NAME_ID: &str = ">alice@corp.example</saml:NameID>";
    const SP_ENTITY_ID: &str = "http://127.0.0.1:8080/saml/metadata";
    const SP_ACS: &str = "http://127.0.0.1:8080/saml/acs";

    /// The verified (reduced) document, without the XML declaration libxml adds.
    fn reduce_with(
        xml: &str,
        mode: ReduceMode,
        cert: &TestKey,
    ) -> Result<String, samael::crypto::CryptoError> {
        Crypto::reduce_xml_to_signed(xml, &[cert.samael_cert()], mode).map(|r| strip_decl(&r))
    }

    /// What a strict SP does: every signature verified, only signed content kept.
    fn reduce(xml: &str) -> Result<String, samael::crypto::CryptoError> {
        reduce_with(xml, ReduceMode::ValidateAndMarkNoAncestors, &TestKey::idp())
    }

    /// A reproducible spec: fixed clock and IDs (RSA PKCS#1 v1.5 signatures are
    /// deterministic, so the same spec gives the same signature values).
    fn fixed_spec() -> ResponseSpec {
        ResponseSpec {
            now: Some(Utc::now()),
            response_id: Some("_response1".to_owned()),
            assertion_id: Some("_assertion1".to_owned()),
            session_index: Some("_session1".to_owned()),
            ..ResponseSpec::for_sp(SP_ACS, SP_ENTITY_ID)
        }
    }

    fn texts_of(xml: &str, element: &str) -> Vec<String> {
        let (open, close) = (format!("<{element}>"), format!("</{element}>"));
        xml.match_indices(&open)
            .filter_map(|(at, _)| {
                let start = at + open.len();
                xml[start..]
                    .find(&close)
                    .map(|end| xml[start..start + end].to_owned())
            })
            .collect()
    }

    fn ids(xml: &str) -> Vec<String> {
        xml.match_indices(" ID=\"")
            .map(|(at, m)| {
                let start = at + m.len();
                xml[start..start + xml[start..].find('"').unwrap()].to_owned()
            })
            .collect()
    }

    fn assert_unique_ids(xml: &str) {
        let ids = ids(xml);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "duplicate IDs in {xml}");
    }

    #[tokio::test]
    async fn signed_responses_verify_with_the_idp_certificate() {
        let idp = SamlIdp::start().await;
        for (sign, signatures, root) in [
            (Signing::Both, 2, "<samlp:Response"),
            (Signing::Response, 1, "<samlp:Response"),
            (Signing::Assertion, 1, "<saml:Assertion"),
        ] {
            let spec = ResponseSpec {
                sign,
                in_response_to: Some("_request1".to_owned()),
                ..ResponseSpec::for_sp(SP_ACS, SP_ENTITY_ID)
            };
            let xml = idp.response_xml(&spec);
            assert_eq!(texts_of(&xml, "ds:SignatureValue").len(), signatures);
            assert!(texts_of(&xml, "ds:DigestValue")
                .iter()
                .all(|d| !d.is_empty()));
            let reduced = reduce(&xml).unwrap_or_else(|e| panic!("{sign:?}: {e:?}\n{xml}"));
            assert!(reduced.starts_with(root), "{sign:?}: {reduced}");
            assert!(reduced.contains(ALICE_NAME_ID), "{reduced}");
            assert!(reduced.contains("Hélène"), "{reduced}");
            assert!(reduced.contains(r#"InResponseTo="_request1""#), "{reduced}");
            // Not by another certificate.
            assert!(reduce_with(
                &xml,
                ReduceMode::ValidateAndMarkNoAncestors,
                &TestKey::attacker()
            )
            .is_err());
            // The POST value is the same document in base64.
            let decoded = B64.decode(idp.response(&spec)).unwrap();
            assert!(String::from_utf8(decoded)
                .unwrap()
                .contains("<samlp:Response"));
        }
        let unsigned = idp.response_xml(&ResponseSpec {
            sign: Signing::None,
            ..ResponseSpec::default()
        });
        assert!(!unsigned.contains("ds:Signature"));
        assert!(reduce(&unsigned).is_err());
    }

    #[tokio::test]
    async fn samael_service_provider_accepts_the_happy_paths() {
        let idp = SamlIdp::start().await;
        let sp_key = TestKey::sp();
        let sp = samael::service_provider::ServiceProvider {
            entity_id: Some(SP_ENTITY_ID.to_owned()),
            key: Some(sp_key.private_key().clone()),
            acs_url: Some(SP_ACS.to_owned()),
            idp_metadata: idp.metadata_xml().parse().unwrap(),
            allowed_signature_algorithms: Some(vec![AllowedSignatureAlgorithm::RsaSha256]),
            ..Default::default()
        };
        for encrypt_for in [None, Some(EncryptFor::new(&sp_key.cert_pem()))] {
            for sign in [Signing::Both, Signing::Response, Signing::Assertion] {
                let spec = ResponseSpec {
                    sign,
                    in_response_to: Some("_request1".to_owned()),
                    encrypt_for: encrypt_for.clone(),
                    ..ResponseSpec::for_sp(SP_ACS, SP_ENTITY_ID)
                };
                if encrypt_for.is_some() && sign == Signing::Assertion {
                    // samael only verifies signatures before decrypting.
                    continue;
                }
                let assertion = sp
                    .parse_base64_response(&idp.response(&spec), Some(&["_request1"]))
                    .unwrap_or_else(|e| panic!("{sign:?} {encrypt_for:?}: {e:?}"));
                let name_id = assertion.subject.unwrap().name_id.unwrap().value;
                assert_eq!(name_id, "alice@corp.example");
            }
        }
        // And refuses every attack.
        for attack in Attack::ALL {
            let spec = ResponseSpec {
                in_response_to: Some("_request1".to_owned()),
                ..ResponseSpec::for_sp(SP_ACS, SP_ENTITY_ID)
            };
            let parsed = sp.parse_base64_response(&idp.attack(&spec, attack), Some(&["_request1"]));
            let accepted_evil = parsed.as_ref().is_ok_and(|a| {
                a.subject
                    .as_ref()
                    .and_then(|s| s.name_id.as_ref())
                    .map(|n| n.value.as_str())
                    != Some("alice@corp.example")
            });
            assert!(!accepted_evil, "{attack:?}: {parsed:?}");
        }
    }

    #[tokio::test]
    async fn altered_byte_and_foreign_certificate_do_not_verify() {
        let idp = SamlIdp::start().await;
        let spec = fixed_spec();
        let altered = idp.attack_xml(&spec, Attack::AlteredByte);
        assert!(altered.contains(r#"<saml:AttributeValue xsi:type="xs:string">Xlice<"#));
        assert!(reduce(&altered).is_err());
        assert!(reduce_with(&altered, ReduceMode::PreDigest, &TestKey::idp()).is_err());
        // The same without the change verifies: the change is what breaks it.
        let original = idp.response_xml(&spec);
        assert!(reduce(&original).is_ok());
        assert_eq!(original.replace(">alice<", ">Xlice<"), altered);

        let foreign = idp.attack_xml(&spec, Attack::ForeignCertificateInKeyInfo);
        assert!(foreign.contains(&TestKey::attacker().cert_base64()));
        assert!(!foreign.contains(&TestKey::idp().cert_base64()));
        assert!(reduce(&foreign).is_err());
        // It is a genuine signature, by the attacker.
        let by_attacker = reduce_with(
            &foreign,
            ReduceMode::ValidateAndMarkNoAncestors,
            &TestKey::attacker(),
        );
        assert!(by_attacker.is_ok());

        // Encrypted, assertion signed: the assertion's signature breaks inside the ciphertext
        // while the Response signature (made afterwards) holds.
        let sp_key = TestKey::sp();
        let encrypted = ResponseSpec {
            encrypt_for: Some(EncryptFor::new(&sp_key.cert_pem())),
            ..fixed_spec()
        };
        let altered = idp.attack_xml(&encrypted, Attack::AlteredByte);
        assert!(reduce(&altered).is_ok());
        let assertion = decrypt_assertion(&altered, &sp_key);
        assert!(assertion.contains(">Xlice<"));
        assert!(reduce(&assertion).is_err());
        // Encrypted, Response signed only: the IssueInstant changed.
        let response_only = ResponseSpec {
            sign: Signing::Response,
            ..encrypted.clone()
        };
        assert!(reduce(&idp.attack_xml(&response_only, Attack::AlteredByte)).is_err());
    }

    #[tokio::test]
    async fn rsa_sha1_verifies_only_without_an_algorithm_restriction() {
        let idp = SamlIdp::start().await;
        let xml = idp.attack_xml(&fixed_spec(), Attack::RsaSha1);
        assert!(xml.contains(ALG_RSA_SHA1) && xml.contains(DIGEST_SHA1));
        assert!(!xml.contains(ALG_RSA_SHA256) && !xml.contains(DIGEST_SHA256));
        assert!(reduce(&xml).is_ok());
        let restricted = |xml: &str| {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                &[TestKey::idp().samael_cert()],
                ReduceMode::ValidateAndMarkNoAncestors,
                Some(&[AllowedSignatureAlgorithm::RsaSha256]),
            )
        };
        assert!(restricted(&xml).is_err());
        assert!(restricted(&idp.response_xml(&fixed_spec())).is_ok());
    }

    #[tokio::test]
    async fn comment_in_name_id_keeps_every_signature_valid() {
        let idp = SamlIdp::start().await;
        for sign in [Signing::Both, Signing::Assertion, Signing::Response] {
            let spec = ResponseSpec {
                sign,
                ..fixed_spec()
            };
            let xml = idp.attack_xml(&spec, Attack::CommentInNameId);
            assert!(
                xml.contains(">admin@corp.example<!---->.evil.example</saml:NameID>"),
                "{xml}"
            );
            // PreDigest mode verifies every signature of the document: exclusive c14n without
            // comments drops the comment, so they all still hold. (samael's stricter
            // ValidateAndMarkNoAncestors refuses it: it matches the verified text back to the
            // DOM's text nodes, which the comment splits.)
            let verified = reduce_with(&xml, ReduceMode::PreDigest, &TestKey::idp())
                .unwrap_or_else(|e| panic!("{sign:?}: {e:?}"));
            assert!(verified.contains(">admin@corp.example.evil.example</saml:NameID>"));
            assert!(
                Crypto::verify_signed_xml(&xml, &TestKey::idp().samael_cert(), Some("ID")).is_ok()
            );
        }
    }

    #[tokio::test]
    async fn xsw_documents_keep_the_original_signature() {
        let idp = SamlIdp::start().await;
        let spec = fixed_spec();
        for attack in [
            Attack::Xsw1,
            Attack::Xsw2,
            Attack::Xsw3,
            Attack::Xsw4,
            Attack::Xsw5,
            Attack::Xsw6,
            Attack::Xsw7,
            Attack::Xsw8,
        ] {
            let original = idp.response_xml(&ResponseSpec {
                sign: attack.signing(spec.sign),
                ..spec.clone()
            });
            assert!(reduce(&original).is_ok());
            let (signature, _) = split_signature(&original);
            let signed_part = &signature[..signature.find("</ds:KeyInfo>").unwrap()];
            let attacked = idp.attack_xml(&spec, attack);
            assert!(attacked.contains(signed_part), "{attack:?}: {attacked}");
            assert_eq!(attacked.matches("<ds:Signature ").count(), 1, "{attack:?}");
            assert!(attacked.contains(EVIL_NAME_ID), "{attack:?}");
            assert!(attacked.contains(ALICE_NAME_ID), "{attack:?}");
            assert_unique_ids(&attacked);
            // Where xmlsec still verifies the signature (XSW2, 3, 4, 5, 7), it covers the
            // original content only: the evil NameID is what an SP must not use. (XSW1, 6, 8
            // put the signed content inside the ds:Signature, which the enveloped-signature
            // transform removes: they target verifiers that do not apply it.)
            match reduce(&attacked) {
                Ok(reduced) => {
                    assert!(!reduced.contains(EVIL_NAME_ID), "{attack:?}");
                    assert!(reduced.contains(ALICE_NAME_ID), "{attack:?}");
                }
                Err(_) => assert!(
                    matches!(attack, Attack::Xsw1 | Attack::Xsw6 | Attack::Xsw8),
                    "{attack:?}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn the_other_attacks_are_what_they_say() {
        let idp = SamlIdp::start().await;
        let spec = fixed_spec();
        let attack = |a| idp.attack_xml(&spec, a);

        let after = attack(Attack::EvilAssertionAfterValid);
        assert_eq!(after.matches("<saml:Assertion ").count(), 2);
        assert!(after.find(ALICE_NAME_ID) < after.find(EVIL_NAME_ID));
        assert_eq!(after.matches("<ds:Signature ").count(), 1);
        assert!(!reduce(&after).unwrap().contains(EVIL_NAME_ID));

        let removed = attack(Attack::SignatureRemoved);
        assert!(!removed.contains("Signature"));
        assert!(removed.contains(ALICE_NAME_ID));
        assert!(reduce(&removed).is_err());

        let unsigned = attack(Attack::UnsignedAssertionInSignedResponse);
        assert_eq!(unsigned.matches("<ds:Signature ").count(), 1);
        assert!(unsigned.find("<ds:Signature ") < unsigned.find("<saml:Assertion "));
        assert!(unsigned.contains(EVIL_NAME_ID) && !unsigned.contains(ALICE_NAME_ID));
        assert!(reduce(&unsigned).is_err());

        let multiple = attack(Attack::MultipleAssertions);
        assert_eq!(multiple.matches("<saml:Assertion ").count(), 2);
        assert_eq!(multiple.matches("<ds:Signature ").count(), 3);
        let reduced = reduce(&multiple).unwrap();
        assert!(reduced.contains(ALICE_NAME_ID) && reduced.contains(EVIL_NAME_ID));
        assert_unique_ids(&multiple);

        let doctype = attack(Attack::Doctype);
        let (head, body) = doctype.split_once("]>\n").unwrap();
        assert!(head.starts_with(XML_DECL) && head.contains("<!DOCTYPE samlp:Response ["));
        assert!(
            reduce(body).is_ok(),
            "the document itself is validly signed"
        );

        let external = attack(Attack::ExternalEntity);
        assert!(external.contains(r#"<!ENTITY xxe SYSTEM "file:///etc/passwd">"#));
        assert!(external.contains(">&xxe;</saml:NameID>"));

        let laughs = attack(Attack::EntityExpansion);
        assert!(laughs.contains(r#"<!ENTITY lol0 "lol">"#));
        assert!(laughs.contains(&format!(r#"<!ENTITY lol9 "{}">"#, "&lol8;".repeat(10))));
        assert!(laughs.contains(">&lol9;</saml:NameID>"));

        // Every attack builds with an encrypted assertion too.
        let encrypted = ResponseSpec {
            encrypt_for: Some(EncryptFor::new(&TestKey::sp().cert_pem())),
            ..fixed_spec()
        };
        for attack in Attack::ALL {
            let xml = idp.attack_xml(&encrypted, attack);
            assert!(xml.contains("<saml:EncryptedAssertion"), "{attack:?}");
            assert!(!xml.contains("<saml:Assertion "), "{attack:?}");
        }
        let external = idp.attack_xml(&encrypted, Attack::ExternalEntity);
        assert!(external.contains("<samlp:StatusMessage>&xxe;</samlp:StatusMessage>"));
    }

    /// Decrypts the first EncryptedAssertion with OpenSSL, independently of the code above.
    fn decrypt_assertion(xml: &str, key: &TestKey) -> String {
        let methods: Vec<&str> = xml
            .match_indices(r#"<xenc:EncryptionMethod Algorithm=""#)
            .map(|(at, m)| {
                let start = at + m.len();
                &xml[start..start + xml[start..].find('"').unwrap()]
            })
            .collect();
        let (data_method, key_method) = (methods[0], methods[1]);
        let values = texts_of(xml, "xenc:CipherValue");
        let (encrypted_key, encrypted_data) = (
            B64.decode(&values[0]).unwrap(),
            B64.decode(&values[1]).unwrap(),
        );
        let rsa = key.private_key().rsa().unwrap();
        let mut content_key = vec![0u8; rsa.size() as usize];
        let padding = if key_method.ends_with("rsa-oaep-mgf1p") {
            Padding::PKCS1_OAEP
        } else {
            assert!(key_method.ends_with("rsa-1_5"));
            Padding::PKCS1
        };
        let length = rsa
            .private_decrypt(&encrypted_key, &mut content_key, padding)
            .unwrap();
        content_key.truncate(length);
        let plaintext = match data_method {
            "http://www.w3.org/2009/xmlenc11#aes128-gcm"
            | "http://www.w3.org/2009/xmlenc11#aes256-gcm" => {
                let cipher = if content_key.len() == 16 {
                    Cipher::aes_128_gcm()
                } else {
                    Cipher::aes_256_gcm()
                };
                let (iv, rest) = encrypted_data.split_at(12);
                let (ciphertext, tag) = rest.split_at(rest.len() - 16);
                openssl::symm::decrypt_aead(cipher, &content_key, Some(iv), &[], ciphertext, tag)
                    .unwrap()
            }
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
            | "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => {
                let cipher = if content_key.len() == 16 {
                    Cipher::aes_128_cbc()
                } else {
                    Cipher::aes_256_cbc()
                };
                let (iv, ciphertext) = encrypted_data.split_at(16);
                openssl::symm::decrypt(cipher, &content_key, Some(iv), ciphertext).unwrap()
            }
            other => panic!("unexpected data method {other}"),
        };
        String::from_utf8(plaintext).unwrap()
    }

    #[tokio::test]
    async fn encrypted_assertions_decrypt_with_the_sp_key() {
        let idp = SamlIdp::start().await;
        let sp_key = TestKey::sp();
        for (key_transport, data_encryption) in [
            (KeyTransport::RsaOaepMgf1p, DataEncryption::Aes128Gcm),
            (KeyTransport::RsaOaepMgf1p, DataEncryption::Aes256Gcm),
            (KeyTransport::Rsa15, DataEncryption::Aes128Cbc),
            (KeyTransport::RsaOaepMgf1p, DataEncryption::Aes256Cbc),
        ] {
            let spec = ResponseSpec {
                encrypt_for: Some(EncryptFor {
                    cert_pem: sp_key.cert_pem(),
                    key_transport,
                    data_encryption,
                }),
                ..fixed_spec()
            };
            let xml = idp.response_xml(&spec);
            assert!(xml.contains(data_encryption.uri()) && xml.contains(key_transport.uri()));
            assert!(!xml.contains("<saml:Assertion ") && !xml.contains("alice@corp.example"));
            // The Response signature covers the EncryptedAssertion.
            assert!(reduce(&xml).is_ok());
            let assertion = decrypt_assertion(&xml, &sp_key);
            assert!(assertion.starts_with("<saml:Assertion "), "{assertion}");
            // Signed before being encrypted: it verifies on its own.
            let reduced = reduce(&assertion).unwrap();
            assert!(reduced.contains(ALICE_NAME_ID) && reduced.contains("Lefèvre-Müller"));
        }
    }

    #[tokio::test]
    async fn metadata_is_served_signed_and_federated() {
        let idp = SamlIdp::start().await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = |url: String| {
            let client = client.clone();
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let served = get(idp.metadata_url()).await;
        assert_eq!(served, idp.metadata_xml());
        assert!(served.contains(&format!(r#"entityID="{}""#, idp.entity_id())));
        assert!(served.contains(r#"WantAuthnRequestsSigned="false""#));
        assert!(served.contains(&TestKey::idp().cert_base64()));
        let parsed: samael::metadata::EntityDescriptor = served.parse().unwrap();
        let descriptor = &parsed.idp_sso_descriptors.unwrap()[0];
        assert_eq!(descriptor.single_sign_on_services.len(), 2);
        assert!(descriptor
            .single_sign_on_services
            .iter()
            .all(|s| s.location == idp.sso_url()));
        assert_eq!(descriptor.single_logout_services.len(), 2);

        idp.set_want_authn_requests_signed(true);
        assert!(get(idp.metadata_url())
            .await
            .contains(r#"WantAuthnRequestsSigned="true""#));

        let signer = idp.metadata_signing_certificate_pem();
        for signed in [
            idp.signed_metadata_xml(),
            get(idp.signed_metadata_url()).await,
        ] {
            assert!(SamlIdp::verify_xml_signature(&signed, &signer));
            assert!(!SamlIdp::verify_xml_signature(
                &signed,
                &idp.certificate_pem()
            ));
            let reduced = reduce_with(
                &signed,
                ReduceMode::ValidateAndMarkNoAncestors,
                &TestKey::metadata_signer(),
            )
            .unwrap();
            assert!(reduced.starts_with("<md:EntityDescriptor"));
            assert!(reduced.contains(&idp.sso_url()));
            let parsed: samael::metadata::EntityDescriptor = signed.parse().unwrap();
            assert_eq!(parsed.entity_id, Some(idp.entity_id()));
        }

        let federation = get(idp.federation_metadata_url()).await;
        assert_eq!(federation, idp.federation_metadata_xml());
        assert_eq!(federation.matches("<md:EntityDescriptor ").count(), 3);
        assert!(federation.contains(&format!(r#"entityID="{}""#, idp.entity_id())));
        for n in 0..2 {
            assert!(federation.contains(&TestKey::federation_member(n).cert_base64()));
        }
        let parsed: samael::metadata::EntitiesDescriptor = federation.parse().unwrap();
        assert_eq!(parsed.descriptors.len(), 3);
        for signed in [
            idp.signed_federation_metadata_xml(),
            get(idp.signed_federation_metadata_url()).await,
        ] {
            assert!(signed.contains("<md:EntitiesDescriptor"));
            assert!(SamlIdp::verify_xml_signature(&signed, &signer));
            assert!(!SamlIdp::verify_xml_signature(
                &signed.replace("idp-a.federation.test", "idp-x.federation.test"),
                &signer
            ));
        }
    }

    fn authn_request_xml(idp: &SamlIdp, id: &str) -> String {
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{}" Destination="{}" AssertionConsumerServiceURL="{SP_ACS}" ProtocolBinding="{BINDING_POST}" ForceAuthn="true"><saml:Issuer>{SP_ENTITY_ID}</saml:Issuer><samlp:NameIDPolicy Format="{}" AllowCreate="true"/><samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>{AC_PASSWORD_PROTECTED_TRANSPORT}</saml:AuthnContextClassRef><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:X509</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>"#,
            xml_time(Utc::now()),
            idp.sso_url(),
            name_id_format::PERSISTENT,
        )
    }

    #[tokio::test]
    async fn authn_requests_are_read_and_their_redirect_signatures_checked() {
        let idp = SamlIdp::start().await;
        let sp = TestKey::sp();
        let xml = authn_request_xml(&idp, "_request1");
        let url = signed_redirect_url(
            &idp.sso_url(),
            "SAMLRequest",
            &xml,
            Some("state 1/é&x"),
            &sp,
        );
        let seen = SamlIdp::read_authn_request_from_url(&url);
        assert_eq!(seen.id, "_request1");
        assert_eq!(seen.issuer.as_deref(), Some(SP_ENTITY_ID));
        assert_eq!(seen.acs_url.as_deref(), Some(SP_ACS));
        assert_eq!(seen.destination, Some(idp.sso_url()));
        assert_eq!(seen.protocol_binding.as_deref(), Some(BINDING_POST));
        assert!(seen.force_authn && !seen.is_passive);
        assert_eq!(
            seen.name_id_policy_format.as_deref(),
            Some(name_id_format::PERSISTENT)
        );
        assert_eq!(seen.name_id_policy_allow_create, Some(true));
        assert_eq!(seen.authn_context_class_refs.len(), 2);
        assert_eq!(seen.authn_context_comparison.as_deref(), Some("minimum"));
        assert_eq!(seen.relay_state.as_deref(), Some("state 1/é&x"));
        assert_eq!(seen.sig_alg.as_deref(), Some(ALG_RSA_SHA256));
        assert!(seen.redirect_signature_present && !seen.xml_signature_present);
        assert_eq!(seen.xml, xml);

        assert!(seen.verify_redirect_signature(&sp.cert_pem()));
        let verifier = UrlVerifier::from_x509_cert_pem(&sp.cert_pem()).unwrap();
        assert!(verifier
            .verify_signed_request_url(&url::Url::parse(&url).unwrap())
            .unwrap());
        assert!(!SamlIdp::verify_redirect_signature(
            &url,
            &TestKey::attacker().cert_pem()
        ));
        let tampered = url.replace("RelayState=state", "RelayState=State");
        assert!(!SamlIdp::verify_redirect_signature(
            &tampered,
            &sp.cert_pem()
        ));

        let unsigned = unsigned_redirect_url(&idp.sso_url(), "SAMLRequest", &xml, None);
        let seen = SamlIdp::read_authn_request_from_url(&unsigned);
        assert!(!seen.redirect_signature_present && seen.relay_state.is_none());
        assert!(!seen.verify_redirect_signature(&sp.cert_pem()));

        // An SP encoding the space of its RelayState as %20 (not '+' as the url crate does):
        // the signature is over the bytes sent, which the raw check honours.
        let value = B64.encode(deflate(xml.as_bytes()));
        let signed = format!(
            "SAMLRequest={}&RelayState=a%20b&SigAlg={}",
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(ALG_RSA_SHA256.as_bytes()).collect::<String>()
        );
        let mut signer =
            openssl::sign::Signer::new(MessageDigest::sha256(), sp.private_key()).unwrap();
        signer.update(signed.as_bytes()).unwrap();
        let signature = B64.encode(signer.sign_to_vec().unwrap());
        let url = format!(
            "{}?{signed}&Signature={}",
            idp.sso_url(),
            url::form_urlencoded::byte_serialize(signature.as_bytes()).collect::<String>()
        );
        assert_eq!(
            SamlIdp::read_authn_request_from_url(&url)
                .relay_state
                .as_deref(),
            Some("a b")
        );
        assert!(SamlIdp::verify_redirect_signature(&url, &sp.cert_pem()));

        // The POST binding.
        let fields = vec![
            ("SAMLRequest".to_owned(), B64.encode(&xml)),
            ("RelayState".to_owned(), "state-2".to_owned()),
        ];
        let seen = SamlIdp::read_authn_request_from_form(&fields);
        assert_eq!(seen.id, "_request1");
        assert_eq!(seen.relay_state.as_deref(), Some("state-2"));
        assert!(!seen.redirect_signature_present && seen.url.is_none());
    }

    #[tokio::test]
    async fn the_sso_endpoint_records_requests_and_can_log_in() {
        let idp = SamlIdp::start().await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let first = signed_redirect_url(
            &idp.sso_url(),
            "SAMLRequest",
            &authn_request_xml(&idp, "_request1"),
            Some("rs1"),
            &TestKey::sp(),
        );
        let page = client.get(&first).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(idp.received_authn_requests()[0].id, "_request1");

        idp.set_auto_login(Some(ResponseSpec::for_sp(
            "http://unused.test/",
            SP_ENTITY_ID,
        )));
        let form = vec![
            (
                "SAMLRequest".to_owned(),
                B64.encode(authn_request_xml(&idp, "_request2")),
            ),
            ("RelayState".to_owned(), "rs2".to_owned()),
        ];
        let page = client
            .post(idp.sso_url())
            .form(&form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&format!(r#"action="{SP_ACS}""#)), "{page}");
        assert!(page.contains(r#"name="RelayState" value="rs2""#), "{page}");
        let marker = r#"name="SAMLResponse" value=""#;
        let start = page.find(marker).unwrap() + marker.len();
        let value = &page[start..start + page[start..].find('"').unwrap()];
        let response = String::from_utf8(B64.decode(value).unwrap()).unwrap();
        let reduced = reduce(&response).unwrap();
        assert!(reduced.contains(r#"InResponseTo="_request2""#));
        assert!(reduced.contains(&format!(r#"Destination="{SP_ACS}""#)));
        assert_eq!(idp.received_authn_requests().len(), 2);

        let garbage = client
            .get(format!("{}?SAMLRequest=%%%", idp.sso_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.status(), 400);
    }

    #[tokio::test]
    async fn idp_initiated_logout_is_signed_in_both_bindings() {
        let idp = SamlIdp::start().await;
        let spec = LogoutRequestSpec {
            relay_state: Some("back to é".to_owned()),
            ..LogoutRequestSpec::new(
                "http://127.0.0.1:8080/saml/slo?tenant=a",
                "alice@corp.example",
                Some("_session1"),
            )
        };
        let sent = idp.logout_request_redirect(&spec);
        assert!(sent
            .url
            .starts_with("http://127.0.0.1:8080/saml/slo?tenant=a&SAMLRequest="));
        let verifier = UrlVerifier::from_x509_cert_pem(&idp.certificate_pem()).unwrap();
        assert!(verifier
            .verify_signed_request_url(&url::Url::parse(&sent.url).unwrap())
            .unwrap());
        assert!(SamlIdp::verify_redirect_signature(
            &sent.url,
            &idp.certificate_pem()
        ));
        assert!(!SamlIdp::verify_redirect_signature(
            &sent.url,
            &TestKey::attacker().cert_pem()
        ));
        let seen = SamlIdp::read_logout_request_from_url(&sent.url);
        assert_eq!(seen.id, sent.id);
        assert_eq!(seen.issuer, Some(idp.entity_id()));
        assert_eq!(seen.name_id.as_deref(), Some("alice@corp.example"));
        assert_eq!(seen.name_id_format.as_deref(), Some(name_id_format::EMAIL));
        assert_eq!(seen.session_indexes, vec!["_session1".to_owned()]);
        assert_eq!(seen.relay_state.as_deref(), Some("back to é"));
        assert!(!seen.xml_signature_present && !sent.xml.contains("Signature"));

        let posted = idp.logout_request_post(&spec);
        assert_eq!(posted.url, spec.sp_slo_url);
        let seen = SamlIdp::read_logout_request_from_form(&posted.fields);
        assert_eq!(seen.id, posted.id);
        assert!(seen.xml_signature_present);
        assert_eq!(seen.relay_state.as_deref(), Some("back to é"));
        assert!(SamlIdp::verify_xml_signature(
            &seen.xml,
            &idp.certificate_pem()
        ));
        assert!(!SamlIdp::verify_xml_signature(
            &seen.xml.replace("alice@", "admin@"),
            &idp.certificate_pem()
        ));

        // The SP's answer.
        let sp = TestKey::sp();
        let answer = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="_answer1" Version="2.0" IssueInstant="{}" Destination="{}" InResponseTo="{}"><saml:Issuer>{SP_ENTITY_ID}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{}"/></samlp:Status></samlp:LogoutResponse>"#,
            xml_time(Utc::now()),
            idp.slo_url(),
            sent.id,
            status::SUCCESS
        );
        let url = signed_redirect_url(&idp.slo_url(), "SAMLResponse", &answer, Some("rs"), &sp);
        let seen = SamlIdp::read_logout_response_from_url(&url);
        assert_eq!(seen.in_response_to, Some(sent.id.clone()));
        assert!(seen.is_success());
        assert_eq!(seen.issuer.as_deref(), Some(SP_ENTITY_ID));
        assert!(SamlIdp::verify_redirect_signature(&url, &sp.cert_pem()));
        let fields = vec![("SAMLResponse".to_owned(), B64.encode(&answer))];
        assert_eq!(
            SamlIdp::read_logout_response_from_form(&fields).id,
            "_answer1"
        );
    }

    #[tokio::test]
    async fn sp_initiated_logout_is_answered() {
        let idp = SamlIdp::start().await;
        let sp = TestKey::sp();
        let request = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="_logout1" Version="2.0" IssueInstant="{}" Destination="{}"><saml:Issuer>{SP_ENTITY_ID}</saml:Issuer><saml:NameID Format="{}">alice@corp.example</saml:NameID><samlp:SessionIndex>_session1</samlp:SessionIndex></samlp:LogoutRequest>"#,
            xml_time(Utc::now()),
            idp.slo_url(),
            name_id_format::EMAIL
        );
        let url = signed_redirect_url(&idp.slo_url(), "SAMLRequest", &request, Some("rs-9"), &sp);
        let seen = SamlIdp::read_logout_request_from_url(&url);
        assert_eq!(seen.id, "_logout1");
        assert!(SamlIdp::verify_redirect_signature(&url, &sp.cert_pem()));

        let sp_slo = "http://127.0.0.1:8080/saml/slo";
        let answer = idp.logout_response_redirect(&seen, sp_slo, status::SUCCESS);
        assert!(answer.url.starts_with(&format!("{sp_slo}?SAMLResponse=")));
        let verifier = UrlVerifier::from_x509_cert_pem(&idp.certificate_pem()).unwrap();
        assert!(verifier
            .verify_signed_response_url(&url::Url::parse(&answer.url).unwrap())
            .unwrap());
        let read = SamlIdp::read_logout_response_from_url(&answer.url);
        assert_eq!(read.in_response_to.as_deref(), Some("_logout1"));
        assert_eq!(read.relay_state.as_deref(), Some("rs-9"));
        assert_eq!(read.destination.as_deref(), Some(sp_slo));
        assert!(read.is_success());

        let posted = idp.logout_response_post(&seen, sp_slo, status::PARTIAL_LOGOUT);
        let read = SamlIdp::read_logout_response_from_form(&posted.fields);
        assert_eq!(read.status.as_deref(), Some(status::PARTIAL_LOGOUT));
        assert!(SamlIdp::verify_xml_signature(
            &read.xml,
            &idp.certificate_pem()
        ));

        // Through HTTP, when the SP's SLO URL is known.
        idp.set_sp_slo_url(Some(sp_slo));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let reply = client.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), 302);
        let location = reply.headers()["location"].to_str().unwrap().to_owned();
        let read = SamlIdp::read_logout_response_from_url(&location);
        assert_eq!(read.in_response_to.as_deref(), Some("_logout1"));
        assert!(SamlIdp::verify_redirect_signature(
            &location,
            &idp.certificate_pem()
        ));
        assert_eq!(idp.received_slo_messages().len(), 1);
    }
}
