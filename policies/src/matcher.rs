//! Path matchers: segment-aware prefixes, globs and regular expressions.

use regex::{Regex, RegexBuilder};

use crate::RuleError;

#[derive(Clone, Debug)]
pub(crate) enum PathMatcher {
    Prefix(String),
    /// The glob as written, and the regex it compiles to.
    Glob(String, Regex),
    Regex(Regex),
}

/// Configured patterns are trusted, but a typo should not compile into something huge.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn build(pattern: &str, case_insensitive: bool) -> Result<Regex, RuleError> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| RuleError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

/// Whether what follows a `/` is `**` then `/` or the end (a whole-segment `**`).
fn glob_segment_wildcard(rest: &std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    let mut ahead = rest.clone();
    ahead.next() == Some('*')
        && ahead.next() == Some('*')
        && matches!(ahead.next(), None | Some('/'))
}

impl PathMatcher {
    pub(crate) fn prefix(prefix: &str, case_insensitive: bool) -> Result<Self, RuleError> {
        if !prefix.starts_with('/') {
            return Err(RuleError::NotAbsolute {
                kind: "path",
                value: prefix.to_owned(),
            });
        }
        let prefix = if case_insensitive {
            prefix.to_ascii_lowercase()
        } else {
            prefix.to_owned()
        };
        Ok(PathMatcher::Prefix(prefix))
    }

    /// `*` matches within one segment, `**` across segments (`/**` also matches no segment
    /// at all: `/admin/**` covers `/admin`), `?` one character of a segment; the whole path
    /// must match.
    pub(crate) fn glob(glob: &str, case_insensitive: bool) -> Result<Self, RuleError> {
        if !glob.starts_with('/') {
            return Err(RuleError::NotAbsolute {
                kind: "glob",
                value: glob.to_owned(),
            });
        }
        let mut pattern = String::from("^");
        let mut chars = glob.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // A whole `/**` segment: zero or more segments.
                '/' if glob_segment_wildcard(&chars) => {
                    chars.next();
                    chars.next();
                    pattern.push_str("(?:/.*)?");
                }
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    pattern.push_str(".*");
                }
                '*' => pattern.push_str("[^/]*"),
                '?' => pattern.push_str("[^/]"),
                other => pattern.push_str(&regex::escape(&other.to_string())),
            }
        }
        pattern.push('$');
        Ok(PathMatcher::Glob(
            glob.to_owned(),
            build(&pattern, case_insensitive)?,
        ))
    }

    pub(crate) fn regex(regex: &str, case_insensitive: bool) -> Result<Self, RuleError> {
        Ok(PathMatcher::Regex(build(regex, case_insensitive)?))
    }

    /// `path` is already lowercased when the policy is case-insensitive.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Prefix(prefix) => prefix_matches(prefix, path),
            PathMatcher::Glob(_, regex) | PathMatcher::Regex(regex) => regex.is_match(path),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            PathMatcher::Prefix(prefix) => format!("path {prefix}"),
            PathMatcher::Glob(glob, _) => format!("glob {glob}"),
            PathMatcher::Regex(regex) => format!("regex {}", regex.as_str()),
        }
    }
}

/// Segment-aware prefix match.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
