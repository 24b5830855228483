//! The replay cache of one-time proofs of login (SAML Response and Assertion IDs), kept in the
//! session store so that every replica sees a proof another one already accepted.

use std::time::Duration;

use async_trait::async_trait;
use guichet_protocols::{OneTimeProofs, ProviderError};
use sha2::{Digest, Sha256};

use super::SharedStore;

/// [`OneTimeProofs`] for one provider, on the shared store's atomic counters.
pub struct StoreProofs {
    store: SharedStore,
    provider: String,
}

impl StoreProofs {
    pub fn new(store: SharedStore, provider: &str) -> Self {
        Self {
            store,
            provider: provider.to_owned(),
        }
    }
}

#[async_trait]
impl OneTimeProofs for StoreProofs {
    async fn first_use(&self, id: &str, keep_for: Duration) -> Result<bool, ProviderError> {
        // The id comes from the provider's message: hashed, so the key stays short whatever it
        // holds.
        let key = format!(
            "proof:{}:{}",
            self.provider,
            hex::encode(Sha256::digest(id.as_bytes()))
        );
        // The counter is created with its expiry and incremented in one atomic step: the first
        // use reads 1, any other (on any replica) more.
        let uses = self
            .store
            .increment(&key, keep_for)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("replay cache: {e}")))?;
        Ok(uses == 1)
    }
}
