//! The `local` provider: login and password checked against users in a YAML file.
//!
//! Passwords are stored as argon2id PHC strings (`guichet hash-password` prints one). Unknown
//! logins still pay for one argon2 verification so response time does not reveal which accounts
//! exist. CSRF protection and rate limiting are the gateway's job: they need the browser and the
//! shared store, which a provider does not see.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use argon2::PasswordVerifier as _;
use async_trait::async_trait;
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::{
    Callback, FinishContext, IdentityProvider, LoginStart, LogoutHandle, PasswordVerifier,
    Principal, ProviderError, ProviderState,
};

/// Longest login or password accepted; longer input is refused before any hashing.
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// One account of the users file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    /// argon2id PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`.
    pub password_hash: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub disabled: bool,
}

impl std::fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// The users file: `users: [ ... ]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUsers {
    pub users: Vec<LocalUser>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalUsersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("users[{index}].password_hash: {reason}")]
    BadHash { index: usize, reason: String },
    #[error("users[{index}]: duplicate login {login:?}")]
    Duplicate { index: usize, login: String },
}

impl LocalUsers {
    pub fn from_yaml(text: &str) -> Result<Self, LocalUsersError> {
        let users: LocalUsers =
            serde_norway::from_str(text).map_err(|e| LocalUsersError::Parse(e.to_string()))?;
        users.validate()?;
        Ok(users)
    }

    pub fn from_users(users: Vec<LocalUser>) -> Result<Self, LocalUsersError> {
        let users = LocalUsers { users };
        users.validate()?;
        Ok(users)
    }

    pub fn from_file(path: &Path) -> Result<Self, LocalUsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| LocalUsersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    fn validate(&self) -> Result<(), LocalUsersError> {
        let mut seen = std::collections::HashSet::new();
        for (index, user) in self.users.iter().enumerate() {
            let hash =
                PasswordHash::new(&user.password_hash).map_err(|e| LocalUsersError::BadHash {
                    index,
                    reason: e.to_string(),
                })?;
            // One algorithm for everyone: a user hashed otherwise would answer in a different
            // time than the decoy, telling which accounts exist.
            if hash.algorithm.as_str() != "argon2id" || argon2::Params::try_from(&hash).is_err() {
                return Err(LocalUsersError::BadHash {
                    index,
                    reason: "only argon2id hashes are accepted (guichet hash-password)".into(),
                });
            }
            for login in std::iter::once(&user.username).chain(user.email.iter()) {
                if !seen.insert(normalize_login(login)) {
                    return Err(LocalUsersError::Duplicate {
                        index,
                        login: login.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Logins are matched case-insensitively: people type `Alice@Example.org`.
fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Hashes a password as an argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> String {
    hash_with(argon2::Params::default(), password)
}

fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

pub struct LocalProvider {
    id: String,
    display_name: String,
    by_login: BTreeMap<String, Arc<LocalUser>>,
    /// Verified against when the login is unknown, so both paths cost one argon2 run. It uses
    /// the costliest parameters found in the users file.
    decoy_hash: String,
    /// argon2 uses ~19 MiB and tens of milliseconds per check: bound how many run at once so
    /// a flood of login attempts cannot exhaust memory or the blocking thread pool.
    verify_slots: Arc<tokio::sync::Semaphore>,
}

/// The argon2id parameters costing the most among the users' hashes (the default when none).
fn costliest_params(users: &[LocalUser]) -> argon2::Params {
    users
        .iter()
        .filter_map(|user| PasswordHash::new(&user.password_hash).ok())
        .filter_map(|hash| argon2::Params::try_from(&hash).ok())
        .max_by_key(|p| u64::from(p.m_cost()) * u64::from(p.t_cost()) * u64::from(p.p_cost()))
        .unwrap_or_default()
}

#[allow(
    clippy::expect_used,
    reason = "argon2 hashing with validated parameters cannot fail"
)]
fn hash_with(params: argon2::Params, password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with validated parameters cannot fail")
        .to_string()
}

impl LocalProvider {
    pub fn new(id: impl Into<String>, display_name: impl Into<String>, users: LocalUsers) -> Self {
        let decoy_hash = hash_with(
            costliest_params(&users.users),
            "decoy password never matches",
        );
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            * 2;
        let mut by_login = BTreeMap::new();
        for user in users.users {
            let user = Arc::new(user);
            by_login.insert(normalize_login(&user.username), user.clone());
            if let Some(email) = &user.email {
                by_login.insert(normalize_login(email), user.clone());
            }
        }
        Self {
            id: id.into(),
            display_name: display_name.into(),
            by_login,
            decoy_hash,
            verify_slots: Arc::new(tokio::sync::Semaphore::new(slots.max(2))),
        }
    }

    /// The canonical account name for a typed login (for per-account rate limiting), if known.
    pub fn canonical_login(&self, login: &str) -> Option<&str> {
        self.by_login
            .get(&normalize_login(login))
            .map(|u| u.username.as_str())
    }

    /// The principal a login would produce, without any password: for `policy explain`.
    pub fn principal_for(&self, login: &str) -> Option<Principal> {
        self.by_login
            .get(&normalize_login(login))
            .filter(|user| !user.disabled)
            .map(|user| self.principal(user))
    }

    fn principal(&self, user: &LocalUser) -> Principal {
        let mut attributes = user.attributes.clone();
        if let Some(email) = &user.email {
            attributes.insert("email".into(), vec![email.clone()]);
        }
        if let Some(name) = &user.display_name {
            attributes.insert("display_name".into(), vec![name.clone()]);
        }
        if !user.roles.is_empty() {
            attributes.insert("roles".into(), user.roles.clone());
        }
        Principal {
            provider: self.id.clone(),
            subject: user.username.clone(),
            attributes,
            auth_time: OffsetDateTime::now_utc(),
            auth_level: None,
            logout: LogoutHandle::None,
        }
    }
}

impl PasswordVerifier for LocalProvider {
    fn canonical_login(&self, login: &str) -> Option<String> {
        LocalProvider::canonical_login(self, login).map(str::to_owned)
    }

    fn lookup(&self, login: &str) -> Option<Principal> {
        self.principal_for(login)
    }
}

#[async_trait]
impl IdentityProvider for LocalProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    async fn begin(&self, _callback: &Url) -> Result<(LoginStart, ProviderState), ProviderError> {
        Ok((LoginStart::CredentialsForm, ProviderState::default()))
    }

    fn password_verifier(&self) -> Option<&dyn PasswordVerifier> {
        Some(self)
    }

    /// Guichet's own users file is the authority for the roles it lists.
    fn own_roles(&self, principal: &Principal) -> Vec<String> {
        principal.attribute_values("roles").to_vec()
    }

    async fn finish(
        &self,
        _ctx: &FinishContext,
        callback: &Callback,
        _state: &ProviderState,
    ) -> Result<Principal, ProviderError> {
        let login = callback.form_field("username").unwrap_or_default();
        let password = callback.form_field("password").unwrap_or_default();
        if login.is_empty() || password.is_empty() {
            return Err(ProviderError::MalformedCallback(
                "username and password are required".into(),
            ));
        }
        if login.len() > MAX_CREDENTIAL_LEN || password.len() > MAX_CREDENTIAL_LEN {
            return Err(ProviderError::MalformedCallback(
                "credential too long".into(),
            ));
        }
        let user = self.by_login.get(&normalize_login(login)).cloned();
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.decoy_hash.clone());
        let password = password.to_owned();
        let Ok(slot) = self.verify_slots.clone().try_acquire_owned() else {
            return Err(ProviderError::Unavailable(
                "too many password checks in progress".into(),
            ));
        };
        // argon2 is deliberately slow: keep it off the proxy's async workers.
        let matches = tokio_blocking(move || {
            let matches = verify_password(&password, &hash);
            drop(slot);
            matches
        })
        .await
        // A check that panicked proves nothing: not a match.
        .unwrap_or(false);
        match user {
            Some(user) if matches && !user.disabled => Ok(self.principal(&user)),
            Some(user) if matches && user.disabled => Err(ProviderError::AccountDisabled),
            _ => Err(ProviderError::InvalidCredentials),
        }
    }
}

/// `None` when the task panicked.
async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> LocalProvider {
        let yaml = format!(
            "users:\n  - username: alice\n    email: alice@example.org\n    password_hash: '{}'\n    roles: [reader]\n  - username: carol\n    password_hash: '{}'\n    disabled: true\n",
            hash_password("alice"),
            hash_password("carol")
        );
        LocalProvider::new("local", "Local", LocalUsers::from_yaml(&yaml).unwrap())
    }

    fn form(user: &str, password: &str) -> Callback {
        Callback {
            query: vec![],
            form: vec![
                ("username".into(), user.into()),
                ("password".into(), password.into()),
            ],
        }
    }

    fn ctx() -> FinishContext {
        FinishContext {
            callback_url: Url::parse("http://app.example/.guichet/login").unwrap(),
            proofs: std::sync::Arc::new(crate::ProcessProofs::default()),
        }
    }

    #[tokio::test]
    async fn logs_in_by_username_or_email_case_insensitively() {
        let p = provider();
        let st = ProviderState::default();
        let by_name = p
            .finish(&ctx(), &form("alice", "alice"), &st)
            .await
            .unwrap();
        let by_mail = p
            .finish(&ctx(), &form("Alice@Example.org", "alice"), &st)
            .await
            .unwrap();
        assert_eq!(by_name.subject, "alice");
        assert_eq!(by_mail.subject, "alice");
        assert_eq!(by_name.attribute("email"), Some("alice@example.org"));
        assert_eq!(by_name.attribute_values("roles"), ["reader".to_string()]);
    }

    #[tokio::test]
    async fn refuses_wrong_password_unknown_user_and_disabled_account() {
        let p = provider();
        let st = ProviderState::default();
        assert_eq!(
            p.finish(&ctx(), &form("alice", "wrong"), &st).await,
            Err(ProviderError::InvalidCredentials)
        );
        assert_eq!(
            p.finish(&ctx(), &form("nobody", "alice"), &st).await,
            Err(ProviderError::InvalidCredentials)
        );
        assert_eq!(
            p.finish(&ctx(), &form("carol", "carol"), &st).await,
            Err(ProviderError::AccountDisabled)
        );
    }

    #[tokio::test]
    async fn credentials_come_from_the_form_only_and_are_bounded() {
        let p = provider();
        let st = ProviderState::default();
        let in_query = Callback {
            query: vec![
                ("username".into(), "alice".into()),
                ("password".into(), "alice".into()),
            ],
            form: vec![],
        };
        assert!(matches!(
            p.finish(&ctx(), &in_query, &st).await,
            Err(ProviderError::MalformedCallback(_))
        ));
        let long = "a".repeat(MAX_CREDENTIAL_LEN + 1);
        assert!(matches!(
            p.finish(&ctx(), &form("alice", &long), &st).await,
            Err(ProviderError::MalformedCallback(_))
        ));
    }

    #[test]
    fn only_argon2id_hashes_are_accepted() {
        let pbkdf2 = "users:\n  - username: a\n    password_hash: '$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'\n";
        let err = LocalUsers::from_yaml(pbkdf2).unwrap_err().to_string();
        assert!(err.contains("only argon2id"), "{err}");
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"x", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        let yaml = format!("users:\n  - username: a\n    password_hash: '{argon2i}'\n");
        assert!(LocalUsers::from_yaml(&yaml).is_err());
    }

    #[test]
    fn the_decoy_costs_as_much_as_the_costliest_user() {
        let strong = argon2::Params::new(47104, 1, 1, None).unwrap();
        let yaml = format!(
            "users:\n  - username: a\n    password_hash: '{}'\n  - username: b\n    password_hash: '{}'\n",
            hash_password("a"),
            hash_with(strong, "b")
        );
        let provider = LocalProvider::new("local", "Local", LocalUsers::from_yaml(&yaml).unwrap());
        let decoy = PasswordHash::new(&provider.decoy_hash).unwrap();
        assert_eq!(argon2::Params::try_from(&decoy).unwrap().m_cost(), 47104);
    }

    #[test]
    fn users_file_errors_name_the_field() {
        let err = LocalUsers::from_yaml("users:\n  - username: a\n    password_hash: nope\n")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("users[0].password_hash"),
            "{err}"
        );
        let h = hash_password("x");
        let dup = format!(
            "users:\n  - {{username: a, password_hash: '{h}'}}\n  - {{username: A, password_hash: '{h}'}}\n"
        );
        assert!(LocalUsers::from_yaml(&dup)
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
    }
}
