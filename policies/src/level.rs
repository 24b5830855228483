//! Authentication levels.

/// Whether an authentication at level `got` satisfies `required`. eIDAS levels are ordered
/// (`eidas1` < `eidas2` < `eidas3`); any other value must match exactly.
pub fn level_at_least(got: &str, required: &str) -> bool {
    match (eidas_rank(got), eidas_rank(required)) {
        (Some(got), Some(required)) => got >= required,
        _ => got == required,
    }
}

fn eidas_rank(level: &str) -> Option<u8> {
    match level {
        "eidas1" => Some(1),
        "eidas2" => Some(2),
        "eidas3" => Some(3),
        _ => None,
    }
}
