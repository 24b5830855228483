//! Sessions only open the apps that accept their provider; case-insensitive apps get
//! case-insensitive rules.

use guichet_tests::{GatewayOptions, TestGateway, ALICE};

const GUEST: (&str, &str) = ("guest", "guest");

#[tokio::test]
async fn a_session_only_opens_apps_that_accept_its_provider() {
    let gw = TestGateway::start(GatewayOptions::default());
    // A guest signs in on the partners app (provider `guests`)...
    let mut guest = gw.browser();
    let done = guest.login(&gw, "/partners/admin/x", GUEST).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let page = guest
        .send(guest.get_json(&gw.url("/partners/admin/x")))
        .await;
    assert_eq!(page.upstream_header("x-remote-user"), ["guest"]);
    // ...and the same cookie on the agents' app (provider `local` only) is no session.
    let page = guest.send(guest.get_json(&gw.url("/private"))).await;
    assert_eq!(page.status, 401, "a guest session opened the agents' app");
    let page = guest.send(guest.get(&gw.url("/private"))).await;
    assert_eq!(page.status, 302);
    // On a public page of the agents' app, the guest is anonymous: no identity headers.
    let page = guest.send(guest.get_json(&gw.url("/public/x"))).await;
    assert!(page.upstream_header("x-remote-user").is_empty());

    // The other way round: alice's session does not open the partners' admin area.
    let mut alice = gw.browser();
    alice.login(&gw, "/", ALICE).await;
    let page = alice
        .send(alice.get_json(&gw.url("/partners/admin/x")))
        .await;
    assert_eq!(page.status, 401);
}

#[tokio::test]
async fn rules_of_case_insensitive_apps_ignore_case() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut anonymous = gw.browser();
    for path in ["/partners/admin/x", "/partners/ADMIN/x", "/partners/Admin"] {
        let page = anonymous.send(anonymous.get_json(&gw.url(path))).await;
        assert_eq!(page.status, 401, "{path}");
    }
    let page = anonymous
        .send(anonymous.get_json(&gw.url("/partners/catalogue")))
        .await;
    assert_eq!(page.status, 200);
}
