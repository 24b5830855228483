//! What the SAML tests build their messages from: keys and self-signed certificates made once
//! per process with OpenSSL, IdP metadata, and Responses written, signed (xmlsec, from a
//! template, as an IdP does) and encrypted (OpenSSL) here, independently of the code under test.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::{X509Builder, X509NameBuilder};
use samael::crypto::{Crypto, CryptoProvider};
use time::OffsetDateTime;
use url::Url;

use crate::saml::decrypt::DecryptPolicy;
use crate::saml::instant::format_instant;
use crate::saml::metadata::{parse_idp_metadata, IdpMetadata, MetadataPolicy};
use crate::saml::response::{self, Expected, ResponseError, VerifiedLogin};
use crate::saml::settings::{signing_key, SigningKey};
use crate::saml::{
    AuthnBinding, IdpMetadataSource, SamlProvider, SamlSettings, SignRequests, SpKeyPair,
};

pub const IDP: &str = "https://idp.example.org/idp/shibboleth";
pub const SP: &str = "https://guichet.example.org/saml";
pub const ACS: &str = "https://app.example.org/.guichet/callback/idp";
pub const ACS2: &str = "https://other.example.org/.guichet/callback/idp";
pub const SLO: &str = "https://app.example.org/.guichet/saml-slo/idp";
pub const IDP_SSO: &str = "https://idp.example.org/idp/profile/SAML2/Redirect/SSO";
pub const IDP_SSO_POST: &str = "https://idp.example.org/idp/profile/SAML2/POST/SSO";
pub const IDP_SLO: &str = "https://idp.example.org/idp/profile/SAML2/Redirect/SLO";
pub const IDP_SLO_POST: &str = "https://idp.example.org/idp/profile/SAML2/POST/SLO";
pub const REQUEST_ID: &str = "_3f1c2b9a0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a";

pub const NS_P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_A: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// A key and its self-signed certificate.
pub struct Pair {
    pub key: PKey<Private>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub cert_pem: String,
    pub cert_b64: String,
}

impl Pair {
    pub fn sp_pair(&self) -> SpKeyPair {
        SpKeyPair {
            private_key_pem: self.key_pem.clone(),
            certificate_pem: self.cert_pem.clone(),
        }
    }

    pub fn signing_key(&self) -> SigningKey {
        signing_key(&self.sp_pair(), "signing").unwrap()
    }
}

pub struct Keys {
    pub idp: Pair,
    pub sp_signing: Pair,
    pub sp_encryption: Pair,
    pub foreign: Pair,
    pub federation: Pair,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        idp: pair("idp.example.org"),
        sp_signing: pair("guichet signing"),
        sp_encryption: pair("guichet encryption"),
        foreign: pair("attacker.example"),
        federation: pair("federation signer"),
    })
}

fn pair(cn: &str) -> Pair {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut builder = X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder
        .set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = builder.build();
    Pair {
        key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        key_der: key.private_key_to_der().unwrap(),
        cert_pem: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
        cert_b64: STANDARD.encode(cert.to_der().unwrap()),
        key,
    }
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn at(offset_secs: i64) -> String {
    format_instant(now() + time::Duration::seconds(offset_secs))
}

/// One IdP entity; `cert` is its signing certificate (none: no KeyDescriptor).
pub fn idp_entity(entity_id: &str, cert: Option<&str>, want_signed: bool) -> String {
    let key = cert
        .map(|cert| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
            )
        })
        .unwrap_or_default();
    format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{id}">"#,
            r#"<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="{want}">"#,
            "{key}",
            r#"<md:SingleLogoutService Binding="{r}" Location="{slo}"/>"#,
            r#"<md:SingleLogoutService Binding="{p}" Location="{slo_post}"/>"#,
            r#"<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>"#,
            r#"<md:SingleSignOnService Binding="{r}" Location="{sso}"/>"#,
            r#"<md:SingleSignOnService Binding="{p}" Location="{sso_post}"/>"#,
            r#"</md:IDPSSODescriptor></md:EntityDescriptor>"#
        ),
        id = entity_id,
        want = want_signed,
        key = key,
        r = BINDING_REDIRECT,
        p = BINDING_POST,
        slo = IDP_SLO,
        slo_post = IDP_SLO_POST,
        sso = IDP_SSO,
        sso_post = IDP_SSO_POST,
    )
}

/// The test IdP's metadata.
pub fn idp_metadata_xml() -> String {
    idp_entity(IDP, Some(&keys().idp.cert_b64), false)
}

pub fn idp() -> IdpMetadata {
    parse_idp_metadata(
        &idp_metadata_xml(),
        &MetadataPolicy {
            idp_entity_id: None,
            trusted: &[],
            allow_sha1: false,
        },
        now(),
    )
    .unwrap()
}

/// A signer: whose key, which algorithms.
#[derive(Clone, Copy)]
pub struct Signer {
    pub pair: &'static Pair,
    pub alg: &'static str,
    pub digest: &'static str,
}

impl Signer {
    pub fn idp() -> Signer {
        Signer {
            pair: &keys().idp,
            alg: RSA_SHA256,
            digest: SHA256,
        }
    }
}

/// An enveloped signature template for `id`, the signer's certificate in KeyInfo.
pub fn template(id: &str, signer: Signer) -> String {
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r##"<ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="#{id}"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
            r#"<ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>"#,
            r#"<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}"#,
            r#"</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"#
        ),
        alg = signer.alg,
        id = id,
        digest = signer.digest,
        cert = signer.pair.cert_b64,
    )
}

/// Fills the (first) signature template of `xml`; the XML declaration is left out.
pub fn sign(xml: &str, signer: Signer) -> String {
    let signed = Crypto::sign_xml(xml, &signer.pair.key_der).unwrap();
    strip_declaration(&signed)
}

pub fn strip_declaration(xml: &str) -> String {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").unwrap().1.trim_start().to_owned(),
        None => xml.to_owned(),
    }
}

/// How an assertion is encrypted.
#[derive(Clone, Copy)]
pub struct Encryption {
    pub data: &'static str,
    pub transport: &'static str,
}

pub const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
pub const RSA_OAEP11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
pub const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

impl Encryption {
    pub fn gcm() -> Encryption {
        Encryption {
            data: AES128_GCM,
            transport: RSA_OAEP_MGF1P,
        }
    }
}

/// `<saml:EncryptedAssertion>` holding `assertion`, encrypted to the SP's encryption key.
pub fn encrypt(assertion: &str, how: Encryption) -> String {
    let key_len = match how.data {
        AES128_GCM | AES128_CBC => 16,
        _ => 32,
    };
    let mut cek = vec![0u8; key_len];
    openssl::rand::rand_bytes(&mut cek).unwrap();
    let data = match how.data {
        AES128_GCM | AES256_GCM => {
            let mut iv = [0u8; 12];
            openssl::rand::rand_bytes(&mut iv).unwrap();
            let cipher = if key_len == 16 {
                Cipher::aes_128_gcm()
            } else {
                Cipher::aes_256_gcm()
            };
            let mut tag = [0u8; 16];
            let ct = openssl::symm::encrypt_aead(
                cipher,
                &cek,
                Some(&iv),
                &[],
                assertion.as_bytes(),
                &mut tag,
            )
            .unwrap();
            [iv.as_slice(), &ct, &tag].concat()
        }
        _ => {
            // XML Encryption padding: arbitrary bytes, the last one the pad length.
            let mut iv = [0u8; 16];
            openssl::rand::rand_bytes(&mut iv).unwrap();
            let mut plain = assertion.as_bytes().to_vec();
            let pad = 16 - plain.len() % 16;
            plain.extend(std::iter::repeat_n(0xA5u8, pad - 1));
            plain.push(pad as u8);
            let mut crypter =
                Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, &cek, Some(&iv)).unwrap();
            crypter.pad(false);
            let mut out = vec![0; plain.len() + 16];
            let mut n = crypter.update(&plain, &mut out).unwrap();
            n += crypter.finalize(&mut out[n..]).unwrap();
            out.truncate(n);
            [iv.as_slice(), &out].concat()
        }
    };
    let public =
        PKey::public_key_from_pem(&keys().sp_encryption.key.public_key_to_pem().unwrap()).unwrap();
    let mut ctx = PkeyCtx::new(&public).unwrap();
    ctx.encrypt_init().unwrap();
    let digest_method = match how.transport {
        RSA_1_5 => {
            ctx.set_rsa_padding(Padding::PKCS1).unwrap();
            String::new()
        }
        RSA_OAEP11 => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            ctx.set_rsa_oaep_md(Md::sha256()).unwrap();
            ctx.set_rsa_mgf1_md(Md::sha256()).unwrap();
            format!(
                r#"<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm="{SHA256}"/><xenc11:MGF xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" Algorithm="http://www.w3.org/2009/xmlenc11#mgf1sha256"/>"#
            )
        }
        _ => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            format!(
                r#"<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm="{SHA1}"/>"#
            )
        }
    };
    let mut wrapped = Vec::new();
    ctx.encrypt_to_vec(&cek, &mut wrapped).unwrap();
    format!(
        concat!(
            r#"<saml:EncryptedAssertion xmlns:saml="{a}"><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">"#,
            r#"<xenc:EncryptionMethod Algorithm="{data_alg}"/>"#,
            r#"<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>"#,
            r#"<xenc:EncryptionMethod Algorithm="{transport}">{digest}</xenc:EncryptionMethod>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData>"#,
            r#"</xenc:EncryptedKey></ds:KeyInfo>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{data}</xenc:CipherValue></xenc:CipherData>"#,
            r#"</xenc:EncryptedData></saml:EncryptedAssertion>"#
        ),
        a = NS_A,
        data_alg = how.data,
        transport = how.transport,
        digest = digest_method,
        wrapped = STANDARD.encode(wrapped),
        data = STANDARD.encode(data),
    )
}

/// A Response as the tests want it; the default is valid, its Response signed by the IdP.
#[derive(Clone)]
pub struct ResponseSpec {
    pub response_id: String,
    pub assertion_id: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub response_issuer: Option<String>,
    pub assertion_issuer: String,
    pub status: String,
    pub sub_status: Option<String>,
    pub status_message: Option<String>,
    pub name_id: String,
    pub recipient: String,
    pub scd_not_on_or_after: String,
    pub scd_in_response_to: Option<String>,
    pub conditions_not_before: String,
    pub conditions_not_on_or_after: String,
    /// `None`: no AudienceRestriction at all.
    pub audiences: Option<Vec<String>>,
    pub session_index: Option<String>,
    pub attributes: Vec<(String, Option<String>, Vec<String>)>,
    pub sign_response: Option<Signer>,
    pub sign_assertion: Option<Signer>,
    pub encrypt: Option<Encryption>,
}

impl Default for ResponseSpec {
    fn default() -> Self {
        ResponseSpec {
            response_id: format!("_r{}", random_hex()),
            assertion_id: format!("_a{}", random_hex()),
            destination: Some(ACS.into()),
            in_response_to: Some(REQUEST_ID.into()),
            response_issuer: Some(IDP.into()),
            assertion_issuer: IDP.into(),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            sub_status: None,
            status_message: None,
            name_id: "alice-7f3e".into(),
            recipient: ACS.into(),
            scd_not_on_or_after: at(300),
            scd_in_response_to: Some(REQUEST_ID.into()),
            conditions_not_before: at(-30),
            conditions_not_on_or_after: at(300),
            audiences: Some(vec![SP.into()]),
            session_index: Some("_sidx-42".into()),
            attributes: vec![
                (
                    "urn:oid:0.9.2342.19200300.100.1.3".into(),
                    Some("mail".into()),
                    vec!["alice@example.org".into()],
                ),
                (
                    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1".into(),
                    Some("eduPersonAffiliation".into()),
                    vec!["member".into(), "staff".into()],
                ),
                (
                    "urn:oid:2.16.840.1.113730.3.1.241".into(),
                    None,
                    vec!["Hélène Dupré".into()],
                ),
            ],
            sign_response: Some(Signer::idp()),
            sign_assertion: None,
            encrypt: None,
        }
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ResponseSpec {
    /// The assertion, signed when asked (before any encryption).
    pub fn assertion_xml(&self) -> String {
        let template = self
            .sign_assertion
            .map(|signer| template(&self.assertion_id, signer))
            .unwrap_or_default();
        let audiences = match &self.audiences {
            Some(list) => format!(
                "<saml:AudienceRestriction>{}</saml:AudienceRestriction>",
                list.iter()
                    .map(|a| format!("<saml:Audience>{a}</saml:Audience>"))
                    .collect::<String>()
            ),
            None => String::new(),
        };
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, friendly, values)| {
                let friendly = friendly
                    .as_ref()
                    .map(|f| format!(r#" FriendlyName="{f}""#))
                    .unwrap_or_default();
                let values: String = values
                    .iter()
                    .map(|v| {
                        format!(r#"<saml:AttributeValue xsi:type="xs:string">{v}</saml:AttributeValue>"#)
                    })
                    .collect();
                format!(
                    r#"<saml:Attribute Name="{name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"{friendly}>{values}</saml:Attribute>"#
                )
            })
            .collect();
        let irt = self
            .scd_in_response_to
            .as_ref()
            .map(|i| format!(r#" InResponseTo="{i}""#))
            .unwrap_or_default();
        let session_index = self
            .session_index
            .as_ref()
            .map(|s| format!(r#" SessionIndex="{s}""#))
            .unwrap_or_default();
        let xml = format!(
            concat!(
                r#"<saml:Assertion xmlns:saml="{a}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" Version="2.0" IssueInstant="{now}">"#,
                r#"<saml:Issuer>{issuer}</saml:Issuer>{template}"#,
                r#"<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" NameQualifier="{idp}" SPNameQualifier="{sp}">{name_id}</saml:NameID>"#,
                r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData Recipient="{recipient}" NotOnOrAfter="{scd_until}"{irt}/></saml:SubjectConfirmation></saml:Subject>"#,
                r#"<saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}">{audiences}</saml:Conditions>"#,
                r#"<saml:AuthnStatement AuthnInstant="{authn}"{session_index}><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
                r#"<saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#
            ),
            a = NS_A,
            id = self.assertion_id,
            now = at(0),
            issuer = self.assertion_issuer,
            template = template,
            idp = IDP,
            sp = SP,
            name_id = self.name_id,
            recipient = self.recipient,
            scd_until = self.scd_not_on_or_after,
            irt = irt,
            not_before = self.conditions_not_before,
            not_after = self.conditions_not_on_or_after,
            audiences = audiences,
            authn = at(-5),
            session_index = session_index,
            attributes = attributes,
        );
        match self.sign_assertion {
            Some(signer) => sign(&xml, signer),
            None => xml,
        }
    }

    /// The whole Response XML.
    pub fn xml(&self) -> String {
        let assertion = self.assertion_xml();
        let assertion = match self.encrypt {
            Some(how) => encrypt(&assertion, how),
            None => assertion,
        };
        self.wrap(&assertion)
    }

    /// A Response around `inner` (assertions or anything else), signed when asked.
    pub fn wrap(&self, inner: &str) -> String {
        let attr = |name: &str, value: &Option<String>| {
            value
                .as_ref()
                .map(|v| format!(r#" {name}="{v}""#))
                .unwrap_or_default()
        };
        let issuer = self
            .response_issuer
            .as_ref()
            .map(|i| format!("<saml:Issuer>{i}</saml:Issuer>"))
            .unwrap_or_default();
        let template = self
            .sign_response
            .map(|signer| template(&self.response_id, signer))
            .unwrap_or_default();
        let sub = self
            .sub_status
            .as_ref()
            .map(|s| format!(r#"<samlp:StatusCode Value="{s}"/>"#))
            .unwrap_or_default();
        let message = self
            .status_message
            .as_ref()
            .map(|m| format!("<samlp:StatusMessage>{m}</samlp:StatusMessage>"))
            .unwrap_or_default();
        let xml = format!(
            concat!(
                r#"<samlp:Response xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" Version="2.0" IssueInstant="{now}"{destination}{irt}>"#,
                r#"{issuer}{template}<samlp:Status><samlp:StatusCode Value="{status}">{sub}</samlp:StatusCode>{message}</samlp:Status>"#,
                r#"{inner}</samlp:Response>"#
            ),
            p = NS_P,
            a = NS_A,
            id = self.response_id,
            now = at(0),
            destination = attr("Destination", &self.destination),
            irt = attr("InResponseTo", &self.in_response_to),
            issuer = issuer,
            template = template,
            status = self.status,
            sub = sub,
            message = message,
            inner = inner,
        );
        match self.sign_response {
            Some(signer) => sign(&xml, signer),
            None => xml,
        }
    }
}

pub fn b64(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}

/// Runs the ACS checks with test defaults; the fields say what differs.
pub struct Check {
    pub idp: IdpMetadata,
    pub request_id: Option<String>,
    pub require_signed_assertion: bool,
    pub allow_sha1: bool,
    pub decrypt: DecryptPolicy,
    pub keys: Vec<PKey<Private>>,
    pub names: BTreeMap<String, String>,
    pub callback: Url,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            idp: idp(),
            request_id: Some(REQUEST_ID.into()),
            require_signed_assertion: false,
            allow_sha1: false,
            decrypt: DecryptPolicy {
                allow_cbc: false,
                allow_rsa1_5: false,
            },
            keys: vec![keys().sp_encryption.key.clone()],
            names: BTreeMap::new(),
            callback: Url::parse(ACS).unwrap(),
        }
    }
}

impl Check {
    pub fn run(&self, xml: &str) -> Result<VerifiedLogin, ResponseError> {
        self.run_encoded(&b64(xml))
    }

    pub fn run_encoded(&self, encoded: &str) -> Result<VerifiedLogin, ResponseError> {
        response::verify(
            encoded,
            &Expected {
                idp: &self.idp,
                sp_entity_id: SP,
                callback_url: &self.callback,
                request_id: self.request_id.as_deref(),
                skew: Duration::from_secs(60),
                now: now(),
                require_signed_assertion: self.require_signed_assertion,
                allow_sha1: self.allow_sha1,
                decrypt: self.decrypt,
                decryption_keys: &self.keys,
                requested_authn_context: None,
                attribute_names: &self.names,
            },
        )
    }
}

/// Settings for a provider reading `metadata` (a file path or URL).
pub fn settings(metadata: IdpMetadataSource) -> SamlSettings {
    SamlSettings {
        id: "idp".into(),
        display_name: "Test IdP".into(),
        entity_id: SP.into(),
        acs_urls: vec![Url::parse(ACS).unwrap(), Url::parse(ACS2).unwrap()],
        slo_urls: vec![Url::parse(SLO).unwrap()],
        signing: Some(keys().sp_signing.sp_pair()),
        encryption: vec![keys().sp_encryption.sp_pair()],
        idp_metadata: metadata,
        idp_entity_id: None,
        metadata_signing_certificates: Vec::new(),
        metadata_refresh: Duration::from_secs(3600),
        binding: AuthnBinding::Redirect,
        sign_requests: SignRequests::Auto,
        force_authn: false,
        requested_authn_context: None,
        name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        allow_unsolicited: false,
        unsolicited_landing: None,
        clock_skew: Duration::from_secs(60),
        require_signed_assertion: false,
        allow_sha1: false,
        allow_cbc: false,
        allow_rsa1_5: false,
        subject_attribute: None,
        attribute_names: BTreeMap::new(),
        http_timeout: Duration::from_secs(5),
    }
}

/// A provider over `metadata_xml` written to a file, its settings changed by `change`.
pub fn provider_with(
    metadata_xml: &str,
    change: impl FnOnce(&mut SamlSettings),
) -> Result<SamlProvider, crate::SetupError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp.xml");
    std::fs::write(&path, metadata_xml).unwrap();
    let mut settings = settings(IdpMetadataSource::File(path));
    change(&mut settings);
    SamlProvider::new(settings)
}

pub fn provider(change: impl FnOnce(&mut SamlSettings)) -> SamlProvider {
    provider_with(&idp_metadata_xml(), change).unwrap()
}
