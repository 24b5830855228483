//! Encrypted assertions (XML Encryption 1.0/1.1), decrypted with OpenSSL directly.
//!
//! samael's own decryption takes only aes128, and slices its input before checking its length
//! (a short ciphertext panics), so Guichet does it here: RSA-OAEP key transport (`rsa-oaep-mgf1p`
//! and XML Encryption 1.1's `rsa-oaep`, with their digest and MGF1 choices), `rsa-1_5` only when
//! configured; AES-GCM data encryption, AES-CBC only when configured. Every length is checked
//! before any slicing.
//!
//! No oracle: an algorithm refused by the configuration is named (it is public), but any
//! cryptographic failure, whichever key or step, is the same [`DecryptError::Failed`]. With
//! `rsa-1_5`, a key that does not unwrap, or unwraps to a key of another length than the data
//! algorithm's, is replaced by random bytes of the right length and decryption goes on along
//! the same path, so a Bleichenbacher probe cannot tell a padding failure (or a well-padded
//! block of the wrong length) from a data failure.

use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use super::signature::{DIGEST_SHA1, DIGEST_SHA256};
use super::xml_guard::{self, clip, Element, NS_DSIG, NS_XMLENC, NS_XMLENC11};

/// Largest ciphertext read (the whole response is smaller still).
const MAX_CIPHERTEXT_BYTES: usize = 256 * 1024;
/// EncryptedKeys tried per assertion.
const MAX_ENCRYPTED_KEYS: usize = 4;

const ELEMENT_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#Element";
const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

/// What the configuration allows besides RSA-OAEP and AES-GCM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecryptPolicy {
    pub allow_cbc: bool,
    pub allow_rsa1_5: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecryptError {
    #[error("AES-CBC data encryption refused ({}; allow_cbc is off)", clip(.0))]
    CbcRefused(String),
    #[error("rsa-1_5 key transport refused (allow_rsa1_5 is off)")]
    Rsa15Refused,
    #[error("encryption algorithm {:?} not supported", clip(.0))]
    Unsupported(String),
    #[error("an encrypted assertion came, and no encryption key is configured")]
    NoKey,
    #[error("the encrypted assertion cannot be decrypted")]
    Failed,
}

/// Decrypts an `EncryptedAssertion`, trying every key; returns the plaintext (the serialized
/// assertion).
pub(crate) fn decrypt_assertion(
    encrypted: &Element,
    keys: &[PKey<Private>],
    policy: DecryptPolicy,
) -> Result<Vec<u8>, DecryptError> {
    let data = encrypted
        .child(NS_XMLENC, "EncryptedData")
        .ok_or(DecryptError::Failed)?;
    if let Some(kind) = data.attr("Type") {
        if kind != ELEMENT_TYPE {
            return Err(DecryptError::Unsupported(kind.to_owned()));
        }
    }
    let data_alg = DataAlg::parse(
        data.child(NS_XMLENC, "EncryptionMethod")
            .and_then(|m| m.attr("Algorithm"))
            .unwrap_or_default(),
        policy,
    )?;
    let encrypted_keys: Vec<&Element> = data
        .child(NS_DSIG, "KeyInfo")
        .into_iter()
        .flat_map(|info| info.children_named(NS_XMLENC, "EncryptedKey"))
        .chain(encrypted.children_named(NS_XMLENC, "EncryptedKey"))
        .take(MAX_ENCRYPTED_KEYS)
        .collect();
    // Algorithms first, so that a refused one is named whatever the keys.
    let transports = encrypted_keys
        .iter()
        .map(|key| KeyTransport::parse(key, policy).map(|t| (t, *key)))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(DecryptError::NoKey);
    }
    let ciphertext = cipher_value(data)?;
    for key in keys {
        for (transport, element) in &transports {
            let Ok(wrapped) = cipher_value(element) else {
                continue;
            };
            let Some(cek) = transport.unwrap(key, &wrapped, data_alg.key_len()) else {
                continue;
            };
            if let Some(plaintext) = data_alg.decrypt(&cek, &ciphertext) {
                return Ok(plaintext);
            }
        }
    }
    Err(DecryptError::Failed)
}

fn cipher_value(element: &Element) -> Result<Vec<u8>, DecryptError> {
    let value = element
        .child(NS_XMLENC, "CipherData")
        .and_then(|d| d.child(NS_XMLENC, "CipherValue"))
        .ok_or(DecryptError::Failed)?;
    xml_guard::decode_base64(&value.text(), MAX_CIPHERTEXT_BYTES).map_err(|_| DecryptError::Failed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataAlg {
    Gcm(usize),
    Cbc(usize),
}

impl DataAlg {
    fn parse(uri: &str, policy: DecryptPolicy) -> Result<DataAlg, DecryptError> {
        let alg = match uri {
            "http://www.w3.org/2009/xmlenc11#aes128-gcm" => DataAlg::Gcm(16),
            "http://www.w3.org/2009/xmlenc11#aes192-gcm" => DataAlg::Gcm(24),
            "http://www.w3.org/2009/xmlenc11#aes256-gcm" => DataAlg::Gcm(32),
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => DataAlg::Cbc(16),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => DataAlg::Cbc(24),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => DataAlg::Cbc(32),
            other => return Err(DecryptError::Unsupported(other.to_owned())),
        };
        if matches!(alg, DataAlg::Cbc(_)) && !policy.allow_cbc {
            return Err(DecryptError::CbcRefused(uri.to_owned()));
        }
        Ok(alg)
    }

    fn key_len(self) -> usize {
        match self {
            DataAlg::Gcm(len) | DataAlg::Cbc(len) => len,
        }
    }

    fn cipher(self) -> Cipher {
        match self {
            DataAlg::Gcm(16) => Cipher::aes_128_gcm(),
            DataAlg::Gcm(24) => Cipher::aes_192_gcm(),
            DataAlg::Gcm(_) => Cipher::aes_256_gcm(),
            DataAlg::Cbc(16) => Cipher::aes_128_cbc(),
            DataAlg::Cbc(24) => Cipher::aes_192_cbc(),
            DataAlg::Cbc(_) => Cipher::aes_256_cbc(),
        }
    }

    /// `None` on any failure.
    fn decrypt(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        if key.len() != self.key_len() {
            return None;
        }
        match self {
            // IV (12) || ciphertext || tag (16).
            DataAlg::Gcm(_) => {
                const IV: usize = 12;
                const TAG: usize = 16;
                if data.len() < IV + TAG {
                    return None;
                }
                let (iv, rest) = data.split_at(IV);
                let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
                openssl::symm::decrypt_aead(self.cipher(), key, Some(iv), &[], ciphertext, tag).ok()
            }
            // IV (16) || ciphertext, padded XML Encryption's way: the last byte is the pad
            // length, the other pad bytes are arbitrary (not PKCS#7's).
            DataAlg::Cbc(_) => {
                const BLOCK: usize = 16;
                if data.len() < 2 * BLOCK || !data.len().is_multiple_of(BLOCK) {
                    return None;
                }
                let (iv, ciphertext) = data.split_at(BLOCK);
                let mut crypter = Crypter::new(self.cipher(), Mode::Decrypt, key, Some(iv)).ok()?;
                crypter.pad(false);
                let mut out = vec![0; ciphertext.len() + BLOCK];
                let mut len = crypter.update(ciphertext, &mut out).ok()?;
                len += crypter.finalize(out.get_mut(len..)?).ok()?;
                out.truncate(len);
                let pad = usize::from(*out.last()?);
                if pad == 0 || pad > BLOCK || pad > out.len() {
                    return None;
                }
                out.truncate(out.len() - pad);
                Some(out)
            }
        }
    }
}

enum KeyTransport {
    Oaep {
        digest: &'static MdRef,
        mgf1: &'static MdRef,
        label: Option<Vec<u8>>,
    },
    Pkcs1v15,
}

impl KeyTransport {
    fn parse(encrypted_key: &Element, policy: DecryptPolicy) -> Result<KeyTransport, DecryptError> {
        let method = encrypted_key
            .child(NS_XMLENC, "EncryptionMethod")
            .ok_or(DecryptError::Failed)?;
        let uri = method.attr("Algorithm").unwrap_or_default();
        let digest = || {
            let uri = method
                .child(NS_DSIG, "DigestMethod")
                .and_then(|d| d.attr("Algorithm"))
                .unwrap_or(DIGEST_SHA1);
            digest_md(uri).ok_or_else(|| DecryptError::Unsupported(uri.to_owned()))
        };
        let label = || -> Result<Option<Vec<u8>>, DecryptError> {
            method
                .child(NS_XMLENC, "OAEPparams")
                .map(|p| {
                    xml_guard::decode_base64(&p.text(), 1024).map_err(|_| DecryptError::Failed)
                })
                .transpose()
        };
        match uri {
            RSA_OAEP_MGF1P => Ok(KeyTransport::Oaep {
                digest: digest()?,
                mgf1: Md::sha1(),
                label: label()?,
            }),
            RSA_OAEP => {
                let mgf = method
                    .child(NS_XMLENC11, "MGF")
                    .and_then(|m| m.attr("Algorithm"))
                    .unwrap_or("http://www.w3.org/2009/xmlenc11#mgf1sha1");
                let mgf1 = mgf
                    .strip_prefix("http://www.w3.org/2009/xmlenc11#mgf1")
                    .and_then(|name| match name {
                        "sha1" => Some(Md::sha1()),
                        "sha224" => Some(Md::sha224()),
                        "sha256" => Some(Md::sha256()),
                        "sha384" => Some(Md::sha384()),
                        "sha512" => Some(Md::sha512()),
                        _ => None,
                    })
                    .ok_or_else(|| DecryptError::Unsupported(mgf.to_owned()))?;
                Ok(KeyTransport::Oaep {
                    digest: digest()?,
                    mgf1,
                    label: label()?,
                })
            }
            RSA_1_5 if policy.allow_rsa1_5 => Ok(KeyTransport::Pkcs1v15),
            RSA_1_5 => Err(DecryptError::Rsa15Refused),
            other => Err(DecryptError::Unsupported(other.to_owned())),
        }
    }

    /// The content-encryption key, or `None`; with PKCS#1 v1.5, `key_len` random bytes instead
    /// of `None` or of a key of another length.
    fn unwrap(&self, key: &PKey<Private>, wrapped: &[u8], key_len: usize) -> Option<Vec<u8>> {
        if wrapped.len() != key.size() {
            return None;
        }
        let padding = match self {
            KeyTransport::Oaep { .. } => Padding::PKCS1_OAEP,
            KeyTransport::Pkcs1v15 => Padding::PKCS1,
        };
        let unwrapped = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut ctx = PkeyCtx::new(key)?;
            ctx.decrypt_init()?;
            ctx.set_rsa_padding(padding)?;
            if let KeyTransport::Oaep {
                digest,
                mgf1,
                label,
            } = self
            {
                ctx.set_rsa_oaep_md(digest)?;
                ctx.set_rsa_mgf1_md(mgf1)?;
                if let Some(label) = label {
                    ctx.set_rsa_oaep_label(label)?;
                }
            }
            let mut out = Vec::new();
            ctx.decrypt_to_vec(wrapped, &mut out)?;
            Ok(out)
        })();
        match (unwrapped, self) {
            (Ok(cek), KeyTransport::Oaep { .. }) => Some(cek),
            (Err(_), KeyTransport::Oaep { .. }) => None,
            // One path for every outcome: a random key replaces what is not a key of the
            // expected length, and both go on to the data decryption.
            (unwrapped, KeyTransport::Pkcs1v15) => {
                let mut random = vec![0u8; key_len];
                openssl::rand::rand_bytes(&mut random).ok()?;
                let cek = unwrapped.unwrap_or_default();
                let use_cek = cek.len() == key_len;
                Some(if use_cek { cek } else { random })
            }
        }
    }
}

fn digest_md(uri: &str) -> Option<&'static MdRef> {
    match uri {
        DIGEST_SHA1 => Some(Md::sha1()),
        "http://www.w3.org/2001/04/xmldsig-more#sha224" => Some(Md::sha224()),
        DIGEST_SHA256 => Some(Md::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(Md::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(Md::sha512()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey_ctx::PkeyCtx;

    fn wrap_pkcs1(key: &PKey<Private>, cek: &[u8]) -> Vec<u8> {
        let public = PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap();
        let mut ctx = PkeyCtx::new(&public).unwrap();
        ctx.encrypt_init().unwrap();
        ctx.set_rsa_padding(Padding::PKCS1).unwrap();
        let mut out = Vec::new();
        ctx.encrypt_to_vec(cek, &mut out).unwrap();
        out
    }

    /// A well-padded PKCS#1 block holding a key of the wrong length goes the way a bad padding
    /// goes: a random key of the expected length, not an early `None`.
    #[test]
    fn a_pkcs1_key_of_the_wrong_length_is_a_random_key_of_the_right_one() {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let transport = KeyTransport::Pkcs1v15;
        let good = [7u8; 16];
        assert_eq!(
            transport
                .unwrap(&key, &wrap_pkcs1(&key, &good), 16)
                .as_deref(),
            Some(good.as_slice())
        );
        let long = [7u8; 32];
        let unwrapped = transport
            .unwrap(&key, &wrap_pkcs1(&key, &long), 16)
            .unwrap();
        assert_eq!(unwrapped.len(), 16);
        assert_ne!(unwrapped.as_slice(), &long[..16]);
        let mut garbage = wrap_pkcs1(&key, &good);
        garbage[10] ^= 0xff;
        assert_eq!(
            transport.unwrap(&key, &garbage, 16).map(|k| k.len()),
            Some(16)
        );
        // OAEP: no random key, just no key.
        let oaep = KeyTransport::Oaep {
            digest: Md::sha1(),
            mgf1: Md::sha1(),
            label: None,
        };
        assert_eq!(oaep.unwrap(&key, &garbage, 16), None);
    }
}
