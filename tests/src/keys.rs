//! Private key files for the gateway under test (decryption keys, `private_key_jwt` keys), in
//! a directory that lives as long as the [`KeyFiles`] value.

use std::path::PathBuf;

use p256::pkcs8::EncodePrivateKey;

pub struct KeyFiles {
    dir: tempfile::TempDir,
}

impl Default for KeyFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyFiles {
    pub fn new() -> KeyFiles {
        KeyFiles {
            dir: tempfile::tempdir().expect("a key directory"),
        }
    }

    /// A fresh P-256 key (PKCS#8 PEM), written to `{name}.pem`.
    pub fn ec(&self, name: &str) -> PathBuf {
        self.write(name, ec_pem().as_bytes())
    }

    /// One of the committed test RSA keys of `tests/keys` (`which`: `op-rsa-3`...), copied to
    /// `{name}.pem`.
    pub fn rsa(&self, name: &str, which: &str) -> PathBuf {
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("keys/{which}.pem"));
        self.write(name, &std::fs::read(source).expect("a committed test key"))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, bytes).expect("the key file is written");
        path
    }
}

/// A fresh P-256 private key in PKCS#8 PEM.
pub fn ec_pem() -> String {
    p256::SecretKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .expect("PEM encoding")
        .to_string()
}
