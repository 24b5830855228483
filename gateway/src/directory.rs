//! The gateway's side of the directory: finding the signed-in person (pivot identity) through
//! the cached directory of `guichet-directory-client`.

use std::sync::Arc;

use async_trait::async_trait;
use guichet_directory_client::{CachedDirectory, DirectoryError, DirectoryUser};
use guichet_protocols::Principal;

use crate::config::PivotConfig;
use crate::session::Pivot;

/// A cached directory, as the request path uses it.
#[async_trait]
pub trait PersonLookup: Send + Sync {
    async fn find(&self, pivot: &Pivot) -> Result<Option<Arc<DirectoryUser>>, DirectoryError>;
}

#[async_trait]
impl PersonLookup for CachedDirectory {
    async fn find(&self, pivot: &Pivot) -> Result<Option<Arc<DirectoryUser>>, DirectoryError> {
        CachedDirectory::find(self, pivot).await
    }
}

/// The pivot of a login: the principal's attribute (or subject), normalized as documented
/// (surrounding spaces removed; lowercased unless `case_sensitive`). `None` when the principal
/// has no value for it: such a login is linked to nobody.
pub fn pivot_of(principal: &Principal, config: &PivotConfig) -> Option<Pivot> {
    let raw = match config.attribute.as_str() {
        "subject" | "sub" => Some(principal.subject.as_str()),
        name => principal.attribute(name),
    }?;
    let pivot = Pivot::new(&config.directory_attribute, raw, config.case_sensitive);
    (!pivot.value.is_empty()).then_some(pivot)
}
