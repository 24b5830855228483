//! `--set PATH=VALUE`: one setting of the file replaced from the command line.
//!
//! The path is written the way configuration errors name fields (`listen[0].address`,
//! `providers[1].issuer`, `session.store.url`), so the line an error prints is the line to
//! fix. The value is read as YAML (`threads=2` is a number, `access=public` a string,
//! `aliases=[a.example.org]` a list). Use it for what differs between two runs of one file:
//! ports in tests, a provider pointed at a staging server for a trial. Overrides are applied
//! before validation, so an overridden value is checked like any other. Not for secrets: a
//! command line is visible to every user of the host (`ps`); secrets go in `{ env: ... }` or
//! `{ file: ... }`. Keys containing `.` or `[` cannot be addressed.

use serde_norway::{Mapping, Value};

use super::ConfigError;

/// One `PATH=VALUE` argument, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    path: String,
    segments: Vec<Segment>,
    value: Value,
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A `--set` argument that cannot be used. Never echoes the value: it may be a secret typed
/// with the wrong separator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("--set: expected PATH=VALUE")]
    NoEquals,
    #[error("--set {path}: {problem}")]
    Path { path: String, problem: PathProblem },
    #[error("--set {0}: the value is not valid YAML")]
    Value(String),
}

/// What is wrong with a `--set` path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("empty name in the path")]
    EmptyName,
    #[error("expected [INDEX]")]
    ExpectedIndex,
    #[error("{0:?} is not an index")]
    NotAnIndex(String),
}

impl std::str::FromStr for Override {
    type Err = OverrideError;

    fn from_str(argument: &str) -> Result<Self, OverrideError> {
        let (path, value) = argument.split_once('=').ok_or(OverrideError::NoEquals)?;
        let segments = parse_path(path).map_err(|problem| OverrideError::Path {
            path: path.to_owned(),
            problem,
        })?;
        // An empty value is an empty string, not YAML's null.
        let value = if value.is_empty() {
            Value::String(String::new())
        } else {
            serde_norway::from_str(value).map_err(|_| OverrideError::Value(path.to_owned()))?
        };
        Ok(Override {
            path: path.to_owned(),
            segments,
            value,
        })
    }
}

fn parse_path(path: &str) -> Result<Vec<Segment>, PathProblem> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if key.is_empty() {
            // `a[0]` only: not `a.[0]`, `[0]` or `a..b`.
            return Err(PathProblem::EmptyName);
        }
        segments.push(Segment::Key(key.to_owned()));
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .filter(|_| rest.starts_with('['))
                .ok_or(PathProblem::ExpectedIndex)?;
            let index = rest[1..close]
                .parse()
                .map_err(|_| PathProblem::NotAnIndex(rest[1..close].to_owned()))?;
            segments.push(Segment::Index(index));
            rest = &rest[close + 1..];
        }
    }
    Ok(segments)
}

impl Override {
    /// Sets the value in the parsed document. A missing key is created (validation then
    /// refuses names the configuration does not know); a list index must exist.
    pub fn apply(&self, document: &mut Value) -> Result<(), ConfigError> {
        let fail = |message: &str| ConfigError::new(format!("--set {}", self.path), message);
        let mut node = document;
        for segment in &self.segments {
            node = match segment {
                Segment::Key(key) => {
                    if node.is_null() {
                        *node = Value::Mapping(Mapping::new());
                    }
                    let map = node
                        .as_mapping_mut()
                        .ok_or_else(|| fail(&format!("{key:?} is set inside a non-mapping")))?;
                    map.entry(Value::String(key.clone())).or_insert(Value::Null)
                }
                Segment::Index(index) => {
                    let list = node
                        .as_sequence_mut()
                        .ok_or_else(|| fail(&format!("[{index}] is set inside a non-list")))?;
                    let length = list.len();
                    list.get_mut(*index)
                        .ok_or_else(|| fail(&format!("no item [{index}]: the list has {length}")))?
                }
            };
        }
        *node = self.value.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(yaml: &str, argument: &str) -> Result<Value, ConfigError> {
        let mut document: Value = serde_norway::from_str(yaml).unwrap();
        argument
            .parse::<Override>()
            .map_err(|e| ConfigError::new("parse", e))?
            .apply(&mut document)?;
        Ok(document)
    }

    #[test]
    fn replaces_nested_values_and_list_items() {
        let yaml = "listen:\n  - address: 0.0.0.0:8080\nsession:\n  store:\n    kind: memory\n";
        let document = apply(yaml, "listen[0].address=127.0.0.1:1234").unwrap();
        assert_eq!(document["listen"][0]["address"], "127.0.0.1:1234");
        let document = apply(yaml, "session.store.url=redis://x/").unwrap();
        assert_eq!(document["session"]["store"]["url"], "redis://x/");
        assert_eq!(document["session"]["store"]["kind"], "memory");
        let document = apply(yaml, "threads=2").unwrap();
        assert_eq!(document["threads"], 2);
        let document = apply(yaml, "admin=").unwrap();
        assert_eq!(document["admin"], "");
    }

    #[test]
    fn bad_paths_are_named() {
        let yaml = "listen:\n  - address: a\nthreads: 2\n";
        let error = apply(yaml, "listen[3].address=x").unwrap_err();
        assert_eq!(
            error.to_string(),
            "--set listen[3].address: no item [3]: the list has 1"
        );
        let error = apply(yaml, "threads.x=1").unwrap_err();
        assert!(
            error.to_string().starts_with("--set threads.x: "),
            "{error}"
        );
        for bad in [
            "noequals", "a..b=1", "a[x]=1", "a[1=1", "=1", "a.[0]=1", "[0]=1",
        ] {
            assert!(bad.parse::<Override>().is_err(), "{bad}");
        }
    }
}
