//! The HTTP client every exchange with an identity provider goes through (OpenID Connect,
//! CAS ticket validation): bounded in time and in size.
//!
//! Discovery documents, JWKS, token, userinfo and CAS validation responses all come from the
//! network, so each read stops at [`MAX_RESPONSE_BYTES`] and each request at the provider's timeout. Redirects are
//! never followed: a provider endpoint that redirects is misconfigured, and following it would
//! let it point Guichet anywhere.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Largest response body read from a provider (JWKS with many keys stay far below this).
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    #[error("provider response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

#[derive(Clone)]
pub struct BoundedHttp {
    client: reqwest::Client,
}

impl BoundedHttp {
    pub fn new(timeout: Duration) -> Result<Self, crate::SetupError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("Guichet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::SetupError::HttpClient(e.to_string()))?;
        Ok(Self { client })
    }

    /// One request, its body read up to [`MAX_RESPONSE_BYTES`].
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut builder = self.client.request(parts.method, url).body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let mut response = builder.send().await.map_err(transport)?;
        if response
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::builder().status(status);
        if let Some(map) = out.headers_mut() {
            *map = headers;
        }
        out.body(body)
            .map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// reqwest's messages name the URL, never credentials (they travel in headers and bodies).
fn transport(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    HttpError::Transport(match e.url() {
        Some(url) => format!("{kind} ({})", url.as_str().split('?').next().unwrap_or("")),
        None => kind.to_owned(),
    })
}

impl<'c> AsyncHttpClient<'c> for BoundedHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
