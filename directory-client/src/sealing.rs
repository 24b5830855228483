//! Sealing records at rest: AES-256-GCM with a random nonce, the storage key as associated
//! data (a record copied under another key does not open). Shared by the gateway's Redis
//! session store and the directory's Redis cache.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    #[allow(
        clippy::expect_used,
        reason = "AES-GCM encryption of an in-memory buffer cannot fail"
    )]
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// `None` when the blob was not sealed by this key for this associated data.
    pub fn open(&self, sealed: &[u8], associated: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_only_with_their_key_and_associated_data() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal(b"alice", b"k1");
        assert!(!sealed.windows(5).any(|w| w == b"alice"));
        assert_eq!(sealer.open(&sealed, b"k1").as_deref(), Some(&b"alice"[..]));
        assert_eq!(sealer.open(&sealed, b"k2"), None);
        assert_eq!(Sealer::new(&[8u8; 32]).open(&sealed, b"k1"), None);
        assert_eq!(sealer.open(b"short", b"k1"), None);
    }
}
