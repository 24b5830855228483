//! Sealing records at rest (AES-256-GCM, see [`guichet_directory_client::sealing`]) and
//! SHA-256 for key names.

use sha2::{Digest, Sha256};

pub use guichet_directory_client::sealing::Sealer;

pub fn digest_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The current sealing key and the previous ones of a key rotation: records are sealed with
/// the current key; a record sealed with any of them opens.
#[derive(Clone)]
pub struct SealerRing {
    current: Sealer,
    previous: Vec<Sealer>,
}

impl SealerRing {
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        Self {
            current: Sealer::new(current),
            previous: previous.iter().map(Sealer::new).collect(),
        }
    }

    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Vec<u8> {
        self.current.seal(plaintext, associated)
    }

    /// `None` when no key of the ring sealed the blob for this associated data.
    pub fn open(&self, sealed: &[u8], associated: &[u8]) -> Option<Vec<u8>> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|sealer| sealer.open(sealed, associated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_seals_with_the_current_key_and_opens_with_any() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let old = Sealer::new(&a).seal(b"alice", b"k");
        let ring = SealerRing::new(&b, &[a]);
        assert_eq!(ring.open(&old, b"k").as_deref(), Some(&b"alice"[..]));
        let new = ring.seal(b"bob", b"k");
        assert_eq!(
            Sealer::new(&b).open(&new, b"k").as_deref(),
            Some(&b"bob"[..])
        );
        assert_eq!(Sealer::new(&a).open(&new, b"k"), None);
        assert_eq!(SealerRing::new(&b, &[]).open(&old, b"k"), None);
    }
}
