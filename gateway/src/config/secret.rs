//! Secrets in configuration: inline, or (better) a reference to an environment variable or a
//! file, so the YAML itself can live in a ConfigMap and the secret in a Secret.

use std::fmt;

use serde::Deserialize;

/// A secret as written in the config file, before resolution.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    Inline(String),
    Env { env: String },
    File { file: String },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("SecretSource::Inline(<redacted>)"),
            SecretSource::Env { env } => write!(f, "SecretSource::Env({env})"),
            SecretSource::File { file } => write!(f, "SecretSource::File({file})"),
        }
    }
}

/// A secret that cannot be read. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("cannot read {file}: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("secret is empty")]
    Empty,
}

impl SecretSource {
    /// Reads the secret. A file's trailing newline is dropped (`echo x > file` is the norm).
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Inline(value) => value.clone(),
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| SecretError::EnvUnset(env.clone()))?
            }
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map_err(|e| SecretError::Unreadable {
                    file: file.clone(),
                    reason: e.to_string(),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }
}

/// A resolved secret. Its `Debug` never shows the value, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
