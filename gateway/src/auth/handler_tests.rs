//! The endpoint handlers called directly, with no socket and no pingora: a gateway on the
//! memory store, requests built by hand, replies read back.

use std::sync::Arc;

use http::Method;

use super::{handle, Body, Request};
use crate::config::Config;
use crate::http::respond::Reply;
use crate::state::Gateway;

const ORIGIN: &str = "http://app.test";

fn gateway() -> Arc<Gateway> {
    let hash = guichet_protocols::local::hash_password("s3cret");
    let yaml = format!(
        r#"
listen:
  - address: 127.0.0.1:1
providers:
  - kind: local
    id: local
    users:
      - {{ username: alice, email: alice@example.org, roles: [agent], password_hash: '{hash}' }}
apps:
  - id: main
    url: {ORIGIN}
    upstream: http://127.0.0.1:9
    providers: [local]
"#
    );
    let config = Config::from_yaml(&yaml).expect("test config");
    Gateway::new(&config).expect("gateway")
}

fn get(path: &str) -> Request {
    Request::new(Method::GET, path, 0).header("host", "app.test")
}

fn post(path: &str, fields: &[(&str, &str)]) -> Request {
    Request::new(Method::POST, path, 0)
        .header("host", "app.test")
        .form(fields)
}

fn header<'r>(reply: &'r Reply, name: &str) -> Vec<&'r str> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `name=value` of the Set-Cookie for `name` (empty value: cleared).
fn cookie(reply: &Reply, name: &str) -> Option<String> {
    header(reply, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

fn body(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn csrf_token(page: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The login page, then the form posted with `password`: the reply to the POST.
async fn submit_login(gateway: &Gateway, password: &str) -> Reply {
    let page = handle(gateway, &mut get("/.guichet/login")).await;
    assert_eq!(page.status, 200);
    let login_cookie = cookie(&page, "guichet_session_login").expect("a login cookie");
    let token = csrf_token(&body(&page));
    let mut form = post(
        "/.guichet/login",
        &[
            ("csrf_token", &token),
            ("username", "alice"),
            ("password", password),
        ],
    )
    .header("cookie", &login_cookie)
    .header("origin", ORIGIN);
    handle(gateway, &mut form).await
}

#[tokio::test]
async fn the_login_form_signs_in_with_the_right_password_only() {
    let gateway = gateway();
    let refused = submit_login(&gateway, "wrong").await;
    assert_eq!(refused.status, 401);
    assert!(cookie(&refused, "guichet_session").is_none());

    let done = submit_login(&gateway, "s3cret").await;
    assert_eq!(done.status, 302, "{}", body(&done));
    assert_eq!(header(&done, "location"), ["/"]);
    let session = cookie(&done, "guichet_session").expect("a session cookie");

    // whoami with that session: the principal and the local user's own roles.
    let whoami = handle(
        &gateway,
        &mut get("/.guichet/whoami").header("cookie", &session),
    )
    .await;
    assert_eq!(whoami.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&whoami.body).unwrap();
    assert_eq!(json["subject"], "alice");
    assert_eq!(json["roles"], serde_json::json!(["agent"]));

    // Logout ends it in the store: whoami no longer knows it.
    let out = handle(
        &gateway,
        &mut get("/.guichet/logout").header("cookie", &session),
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(
        cookie(&out, "guichet_session").as_deref(),
        Some("guichet_session=")
    );
    let after = handle(
        &gateway,
        &mut get("/.guichet/whoami").header("cookie", &session),
    )
    .await;
    assert_eq!(after.status, 401);
}

#[tokio::test]
async fn a_login_post_without_its_token_or_transaction_or_too_large_is_refused() {
    let gateway = gateway();
    // No transaction (no cookie): refused, nothing signed in.
    let reply = handle(
        &gateway,
        &mut post(
            "/.guichet/login",
            &[("username", "alice"), ("password", "s3cret")],
        ),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(cookie(&reply, "guichet_session").is_none());
    // A body the proxy found too large.
    let mut big = post("/.guichet/login", &[]);
    big.body = Body::TooLarge;
    assert_eq!(handle(&gateway, &mut big).await.status, 413);
    // The right transaction but a forged token.
    let page = handle(&gateway, &mut get("/.guichet/login")).await;
    let login_cookie = cookie(&page, "guichet_session_login").unwrap();
    let mut forged = post(
        "/.guichet/login",
        &[
            ("csrf_token", "forged"),
            ("username", "alice"),
            ("password", "s3cret"),
        ],
    )
    .header("cookie", &login_cookie);
    let reply = handle(&gateway, &mut forged).await;
    assert_eq!(reply.status, 403);
    assert!(cookie(&reply, "guichet_session").is_none());
}

#[tokio::test]
async fn a_callback_without_transaction_is_refused_and_a_cookieless_post_is_relayed_once() {
    let gateway = gateway();
    let reply = handle(
        &gateway,
        &mut get("/.guichet/callback/local?code=x&state=y"),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(body(&reply).contains(&reply_id(&reply)));

    // A cross-site POST arrives without the login cookie: posted again from this site.
    let relay = handle(
        &gateway,
        &mut post("/.guichet/callback/local", &[("code", "x"), ("state", "y")]),
    )
    .await;
    assert_eq!(relay.status, 200);
    let page = body(&relay);
    assert!(
        page.contains(r#"action="http://app.test/.guichet/callback/local""#),
        "{page}"
    );
    assert!(page.contains(r#"name="guichet_relay""#), "{page}");
    // The relayed POST still has no cookie (another browser): refused, not relayed again.
    let relayed = handle(
        &gateway,
        &mut post(
            "/.guichet/callback/local",
            &[("code", "x"), ("state", "y"), ("guichet_relay", "1")],
        ),
    )
    .await;
    assert_eq!(relayed.status, 400);
}

fn reply_id(reply: &Reply) -> String {
    // Error pages carry the correlation id; the handler's request had a fresh one.
    let page = body(reply);
    let marker = "<code>";
    let start = page.find(marker).map(|i| i + marker.len()).unwrap_or(0);
    page[start..start + page[start..].find('<').unwrap_or(0)].to_owned()
}

#[tokio::test]
async fn unknown_endpoints_and_provider_endpoints_get_the_generic_404() {
    let gateway = gateway();
    for path in [
        "/.guichet/nothing",
        "/.guichet/backchannel-logout/local",
        "/.guichet/jwks/local",
        "/.guichet/jwks/nobody",
    ] {
        let reply = handle(&gateway, &mut get(path)).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = handle(
        &gateway,
        &mut post(
            "/.guichet/backchannel-logout/local",
            &[("logout_token", "x")],
        ),
    )
    .await;
    assert_eq!(reply.status, 404);
    // A method the endpoint does not take.
    let mut put = get("/.guichet/login");
    put.method = Method::PUT;
    assert_eq!(handle(&gateway, &mut put).await.status, 405);
}

#[tokio::test]
async fn logout_from_another_site_only_confirms_and_done_with_an_unknown_state_lands_safely() {
    let gateway = gateway();
    let done = submit_login(&gateway, "s3cret").await;
    let session = cookie(&done, "guichet_session").unwrap();
    let confirm = handle(
        &gateway,
        &mut get("/.guichet/logout")
            .header("cookie", &session)
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(confirm.status, 200);
    assert!(
        cookie(&confirm, "guichet_session").is_none(),
        "not signed out"
    );
    let still = handle(
        &gateway,
        &mut get("/.guichet/whoami").header("cookie", &session),
    )
    .await;
    assert_eq!(still.status, 200);

    let landed = handle(&gateway, &mut get("/.guichet/logout/done?state=forged")).await;
    assert_eq!(landed.status, 200);
    assert!(header(&landed, "location").is_empty());
}
