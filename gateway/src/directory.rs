//! The gateway's side of the directory: the pivot identity of a login.

use guichet_protocols::Principal;

use crate::config::PivotConfig;
use crate::session::Pivot;

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
