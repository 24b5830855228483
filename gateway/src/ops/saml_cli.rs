//! `guichet saml ...`: what an IdP's administrator needs from Guichet (its SP metadata), and
//! the IdP side of `guichet check` (each SAML provider's IdP metadata read as at start).

use guichet_protocols::saml::{sp_metadata_xml, SamlProvider};

use crate::config::Config;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SamlCliError {
    #[error("--provider: no SAML provider {0:?} in the configuration")]
    NoSuchProvider(String),
    #[error("providers: {id:?}: {reason}")]
    Provider { id: String, reason: String },
}

/// The SP metadata of one SAML provider, as served at `/.guichet/saml-metadata/{id}`. Needs
/// nothing from the IdP, so it can be sent before the IdP's metadata exists.
pub fn sp_metadata(config: &Config, provider_id: &str) -> Result<String, SamlCliError> {
    let settings = config
        .saml
        .get(provider_id)
        .ok_or_else(|| SamlCliError::NoSuchProvider(provider_id.to_owned()))?;
    sp_metadata_xml(settings).map_err(|e| SamlCliError::Provider {
        id: provider_id.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads every SAML provider's IdP metadata (file or URL) as the gateway would at start.
pub fn check_idp_metadata(config: &Config) -> Result<(), SamlCliError> {
    let mut ids: Vec<&String> = config.saml.keys().collect();
    ids.sort();
    for id in ids {
        SamlProvider::new(config.saml[id].clone()).map_err(|e| SamlCliError::Provider {
            id: id.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
