//! SAML times (`xs:dateTime`, in UTC with a `Z`: SAML core §1.3.3) and the windows they open.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an xs:dateTime in UTC")]
pub(crate) struct BadInstant;

/// Reads an instant; SAML requires UTC, so an offset other than `Z` is refused.
pub(crate) fn parse_instant(value: &str) -> Result<OffsetDateTime, BadInstant> {
    let value = value.trim();
    if !value.ends_with('Z') || value.len() > 64 {
        return Err(BadInstant);
    }
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| BadInstant)
}

/// `2024-05-01T12:00:00Z`.
pub(crate) fn format_instant(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `at` plus `by` (unchanged on overflow, the stricter answer for every check using it).
pub(crate) fn plus(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    at.checked_add(time::Duration::try_from(by).unwrap_or(time::Duration::MAX))
        .unwrap_or(at)
}

/// `at` minus `by` (unchanged on overflow, the stricter answer for every check using it).
pub(crate) fn minus(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    at.checked_sub(time::Duration::try_from(by).unwrap_or(time::Duration::MAX))
        .unwrap_or(at)
}
