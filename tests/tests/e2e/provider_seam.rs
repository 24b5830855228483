//! The provider seam: a protocol defined here, in the tests crate only ("token-link": the
//! provider sends the browser back with a signed-in user's name and a one-time link token, and
//! has its own server-to-server logout endpoint that names link tokens), plugged into an
//! unchanged gateway through `kind: external`. Login, session tags, its endpoint, its guard
//! (allowed sources, per-address limit) and its logout work end to end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use guichet_protocols::{
    logout_tag, Callback, Caller, EndpointMethod, EndpointOutcome, EndpointReply, EndpointRequest,
    EndpointRoute, EndpointSpec, FinishContext, IdentityProvider, LoginStart, LogoutHandle,
    Principal, ProviderError, ProviderState,
};
use guichet_tests::{logs, GatewayOptions, TestGateway};
use url::Url;

const PROVIDER: &str = "token-link";

/// The fake protocol. Its "server" is this struct: it hands out link tokens and remembers them.
struct TokenLink {
    issued: Mutex<HashSet<String>>,
}

#[async_trait]
impl IdentityProvider for TokenLink {
    fn id(&self) -> &str {
        PROVIDER
    }

    fn display_name(&self) -> &str {
        "Token link"
    }

    /// The "provider" is the callback itself: the browser is sent straight back with a fresh
    /// link token, correlated by a `nonce` of the transaction.
    async fn begin(
        &self,
        callback_url: &Url,
    ) -> Result<(LoginStart, ProviderState), ProviderError> {
        let nonce = format!("n{}", rand::random::<u64>());
        let link = format!("link-{}", rand::random::<u64>());
        self.issued.lock().unwrap().insert(link.clone());
        let mut location = callback_url.clone();
        location
            .query_pairs_mut()
            .append_pair("user", "zoe")
            .append_pair("link", &link)
            .append_pair("nonce", &nonce);
        Ok((
            LoginStart::Redirect { location },
            ProviderState(vec![("nonce".into(), nonce)]),
        ))
    }

    async fn finish(
        &self,
        _ctx: &FinishContext,
        callback: &Callback,
        state: &ProviderState,
    ) -> Result<Principal, ProviderError> {
        if callback.query_param("nonce") != state.get("nonce") {
            return Err(ProviderError::Rejected("nonce mismatch".into()));
        }
        let link = callback
            .query_param("link")
            .filter(|l| self.issued.lock().unwrap().remove(*l))
            .ok_or_else(|| ProviderError::InvalidProof("unknown or spent link".into()))?;
        Ok(Principal {
            provider: PROVIDER.into(),
            subject: callback.query_param("user").unwrap_or("").to_owned(),
            attributes: [("link".to_owned(), vec![link.to_owned()])].into(),
            auth_time: time::OffsetDateTime::now_utc(),
            auth_level: None,
            logout: LogoutHandle::None,
        })
    }

    fn session_tags(&self, principal: &Principal) -> Vec<String> {
        principal
            .attribute_values("link")
            .iter()
            .map(|link| logout_tag(PROVIDER, "link", link))
            .collect()
    }

    fn endpoints(&self) -> Vec<EndpointSpec> {
        vec![EndpointSpec {
            name: "unlink",
            route: EndpointRoute::Path("unlink"),
            method: EndpointMethod::Post,
            caller: Caller::Server,
        }]
    }

    async fn endpoint(&self, name: &str, request: &EndpointRequest<'_>) -> EndpointOutcome {
        assert_eq!(name, "unlink");
        match request.values("link").next() {
            Some(link) => EndpointOutcome::EndSessions {
                tags: vec![logout_tag(PROVIDER, "link", link)],
                subject: None,
                reply: EndpointReply::text(200, "unlinked\n"),
            },
            None => EndpointOutcome::Refused {
                reason: "no link named".into(),
                reply: EndpointReply::text(400, "which link?\n"),
            },
        }
    }
}

fn options(extra: &str) -> GatewayOptions {
    GatewayOptions {
        extra_providers: vec![format!("  - kind: external\n    id: {PROVIDER}\n{extra}")],
        extra_apps: vec![guichet_tests::oidc::app_yaml("fake", "/fake", &[PROVIDER])],
        ..GatewayOptions::default()
    }
}

fn gateway(extra: &str) -> (TestGateway, Arc<TokenLink>) {
    let provider = Arc::new(TokenLink {
        issued: Mutex::new(HashSet::new()),
    });
    let gw = TestGateway::start_with_providers(options(extra), vec![provider.clone()]);
    (gw, provider)
}

#[tokio::test]
async fn a_protocol_defined_outside_the_gateway_signs_in_and_is_signed_out_by_its_endpoint() {
    let log = logs::Scope::begin();
    let (gw, _) = gateway("");
    let mut browser = gw.browser();
    let first = browser.send(browser.get(&gw.url("/fake/page"))).await;
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    // The provider's redirect is straight back to the callback, with its proof.
    let callback = start.location().unwrap().to_owned();
    assert!(
        callback.starts_with(&gw.url(&format!("/.guichet/callback/{PROVIDER}?"))),
        "{callback}"
    );
    let done = browser.send(browser.get(&callback)).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/fake/page"));
    let page = browser.send(browser.get_json(&gw.url("/fake/page"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), ["zoe"]);
    assert_eq!(page.upstream_header("x-remote-provider"), [PROVIDER]);

    // The callback cannot be replayed: the link token was spent.
    let replay = browser.send(browser.get(&callback)).await;
    assert_ne!(replay.status, 302);

    // The provider's own endpoint, routed by the gateway, ends the session its tag names.
    let whoami = browser
        .send(browser.get_json(&gw.url("/.guichet/whoami")))
        .await;
    let whoami: serde_json::Value = serde_json::from_str(&whoami.body).unwrap();
    let link = whoami["attributes"]["link"][0].as_str().unwrap().to_owned();
    let mut server = gw.browser();
    let refused = server
        .send(server.post_form(&gw.url(&format!("/.guichet/unlink/{PROVIDER}")), &[]))
        .await;
    assert_eq!(refused.status, 400);
    assert!(log
        .audit_events("no link named")
        .iter()
        .any(|e| e["fields"]["reason"] == "no link named"));
    let done = server
        .send(server.post_form(
            &gw.url(&format!("/.guichet/unlink/{PROVIDER}")),
            &[("link", &link)],
        ))
        .await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body, "unlinked\n");
    let after = browser.send(browser.get_json(&gw.url("/fake/page"))).await;
    assert_eq!(after.status, 401, "signed out by the provider's endpoint");

    // An endpoint the provider did not declare: the generic 404 page.
    let unknown = server
        .send(server.post_form(&gw.url(&format!("/.guichet/relink/{PROVIDER}")), &[]))
        .await;
    assert_eq!(unknown.status, 404);
    // The declared endpoint with another method.
    let wrong_method = server
        .send(server.get(&gw.url(&format!("/.guichet/unlink/{PROVIDER}"))))
        .await;
    assert_eq!(wrong_method.status, 404);
}

#[tokio::test]
async fn server_endpoints_of_any_provider_get_the_generic_guard() {
    // Loopback is not among the allowed sources: refused before the provider sees it.
    let (gw, _) = gateway("    allowed_sources: [10.0.0.0/8]\n");
    let mut server = gw.browser();
    let refused = server
        .send(server.post_form(
            &gw.url(&format!("/.guichet/unlink/{PROVIDER}")),
            &[("link", "x")],
        ))
        .await;
    assert_eq!(refused.status, 403);

    // A per-address limit: the third request in the minute is refused.
    let (gw, _) = gateway("    max_per_minute: 2\n");
    let mut server = gw.browser();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let page = server
            .send(server.post_form(
                &gw.url(&format!("/.guichet/unlink/{PROVIDER}")),
                &[("link", "x")],
            ))
            .await;
        statuses.push(page.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[test]
fn the_binary_refuses_an_external_provider_it_has_no_implementation_for() {
    let yaml =
        guichet_tests::config_yaml(&options(""), 18077, 18076, "127.0.0.1:9".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, yaml).unwrap();
    let output = std::process::Command::new(guichet_tests::guichet_binary())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kind external, and no implementation was supplied"),
        "{stderr}"
    );
}
