//! The gateway's side of the directory: the pivot identity of a login.

use guichet_directory_client::identity_pivot::{self, IncompletePivot};
use guichet_protocols::Principal;

use crate::config::PivotConfig;
use crate::session::Pivot;

/// The pivot of a login: the principal's attribute (or subject), normalized as documented
/// (surrounding spaces removed; lowercased unless `case_sensitive`), or its identité pivot.
/// `Ok(None)` when the principal has no value for a single-attribute pivot: such a login is
/// linked to nobody. An identité pivot with a claim missing or malformed is an error: that
/// login is refused rather than linked on the remaining fields.
/// A login refused because its identité pivot is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("identity pivot: {0}")]
pub struct PivotRefused(#[from] pub IncompletePivot);

pub fn pivot_of(
    principal: &Principal,
    config: &PivotConfig,
) -> Result<Option<Pivot>, PivotRefused> {
    if let Some(identity) = &config.identity {
        return identity_pivot::query(&identity.directory_attributes(), |claim| {
            principal.attribute(claim).map(str::to_owned)
        })
        .map(Some)
        .map_err(PivotRefused);
    }
    let raw = match config.attribute.as_str() {
        "subject" | "sub" => Some(principal.subject.as_str()),
        name => principal.attribute(name),
    };
    Ok(raw
        .map(|raw| Pivot::new(&config.directory_attribute, raw, config.case_sensitive))
        .filter(|pivot| !pivot.value.is_empty()))
}
