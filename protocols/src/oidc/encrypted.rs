//! Encrypted token responses: the `openidconnect` crate parses an id_token as a JWS only, so
//! the token endpoint's answer passes through [`DecryptingHttp`], which replaces an encrypted
//! id_token (a nested JWT) by the signed token inside before the crate sees it. The crate then
//! verifies that inner token as usual, and the inner token is what is kept (it is the
//! `id_token_hint` at logout, as OpenID Connect RP-Initiated Logout §2 asks).

use std::future::Future;
use std::pin::Pin;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::jwe::{self, JweError};
use super::settings::Encryption;
use crate::http::{BoundedHttp, HttpError};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("encrypted id_token: {0}")]
    Jwe(JweError),
    #[error("the id_token is not encrypted, and this provider must encrypt it")]
    NotEncrypted,
}

pub struct DecryptingHttp<'a> {
    pub inner: &'a BoundedHttp,
    pub encryption: Option<&'a Encryption>,
}

impl DecryptingHttp<'_> {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, ExchangeError> {
        let response = self.inner.execute(request).await?;
        if !response.status().is_success() {
            return Ok(response);
        }
        // Anything that is not a JSON object is left to the crate, which refuses it.
        let Ok(mut body) = serde_json::from_slice::<Map<String, Value>>(response.body()) else {
            return Ok(response);
        };
        let Some(Value::String(id_token)) = body.get("id_token") else {
            return Ok(response);
        };
        let inner = match (jwe::is_jwe(id_token), self.encryption) {
            (true, Some(encryption)) => {
                jwe::decrypt_nested(id_token, &encryption.keys).map_err(ExchangeError::Jwe)?
            }
            // Encrypted, but no key was configured to read it.
            (true, None) => return Err(ExchangeError::Jwe(JweError::UnknownKey(None))),
            (false, Some(encryption)) if encryption.required => {
                return Err(ExchangeError::NotEncrypted)
            }
            (false, _) => return Ok(response),
        };
        body.insert("id_token".into(), Value::String(inner));
        let (parts, _) = response.into_parts();
        let bytes = serde_json::to_vec(&body).map_err(|e| HttpError::Transport(e.to_string()))?;
        Ok(HttpResponse::from_parts(parts, bytes))
    }
}

impl<'c> AsyncHttpClient<'c> for DecryptingHttp<'_> {
    type Error = ExchangeError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, ExchangeError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
