//! Sealing records at rest (AES-256-GCM, see [`guichet_directory_client::sealing`]) and
//! SHA-256 for key names.

use sha2::{Digest, Sha256};

pub use guichet_directory_client::sealing::Sealer;

pub fn digest_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
