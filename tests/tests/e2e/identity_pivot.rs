//! Citizens linked to directory people by the identité pivot: the six FranceConnect claims
//! together, each compared under its normal form (accents, case and separators of names,
//! presumed birth days, genders, INSEE codes), through the file and SCIM backends.

use guichet_tests::oidc::{self, Alg, ClientAuth, MockOp};
use guichet_tests::scim::MockScim;
use guichet_tests::{logs, Browser, GatewayOptions, TestGateway};
use serde_json::{json, Value};

const PIVOT: &str = "pivot:\n  identity: { given_name: givenName, family_name: familyName, birthdate: birthDate, gender: gender, birthplace: birthPlace, birthcountry: birthCountry }\nscopes: [identite_pivot]";

const APP: &str = r#"
  - id: citizens
    url: "{origin}/demarches"
    upstream: "http://{echo}"
    providers: [fc]
    rules:
      - { path_prefix: /demarches, any_role: [usager] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
"#;

/// A FranceConnect-shaped provider whose citizen is Grégory Françoise, born (presumed day and
/// month) in 1980 in Paris (`75056`), France.
async fn franceconnect() -> MockOp {
    let op = MockOp::start_at("/api/v2").await;
    op.behave(|b| {
        b.alg = Alg::Es256;
        b.client_auth = ClientAuth::Post;
        b.signed_userinfo = true;
    });
    op
}

fn gateway(op: &MockOp, directory: String) -> TestGateway {
    TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "franceconnect",
            "fc",
            &op.issuer,
            PIVOT,
        )],
        extra_apps: vec![APP.to_owned()],
        directory: Some(directory),
        ..GatewayOptions::default()
    })
}

/// A directory file with `people` (YAML list items), and the `directory:` section for it.
fn people_file(people: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.yaml");
    std::fs::write(&path, format!("people:\n{people}")).unwrap();
    let section = format!(
        "  backend: {{ kind: file, path: \"{}\" }}\n  cache: {{ l1_ttl: 30s }}\n",
        path.display()
    );
    (dir, section)
}

/// Grégory as a directory might write him: capitals, no accents, `00` for the unknown day and
/// month, `M`.
const GREGORY: &str = r#"  - id: p-gregory
    attributes: { givenName: "GREGORY", familyName: "francoise", birthDate: "1980-00-00", gender: "M", birthPlace: "75056", birthCountry: "99100" }
    roles: { citizens: [usager] }
"#;

async fn login(gw: &TestGateway) -> (Browser, oidc::Trip) {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/demarches/", None).await;
    (browser, trip)
}

async fn app_page(gw: &TestGateway, browser: &mut Browser) -> guichet_tests::Page {
    browser.send(browser.get_json(&gw.url("/demarches/"))).await
}

#[tokio::test]
async fn a_citizen_is_found_by_the_six_fields_under_their_normal_forms() {
    let op = franceconnect().await;
    let (_dir, directory) = people_file(GREGORY);
    let gw = gateway(&op, directory);
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = app_page(&gw, &mut browser).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), ["usager"]);
}

#[tokio::test]
async fn a_partial_match_is_nobody_and_two_matches_are_ambiguous() {
    let op = franceconnect().await;
    // Same names, sex and date, born in another commune: somebody else.
    let other_birthplace = GREGORY
        .replace("p-gregory", "p-other")
        .replace("75056", "69123");
    let (_dir, directory) = people_file(&other_birthplace);
    let gw = gateway(&op, directory);
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = browser.send(browser.get(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("not known"), "{}", page.body);

    // Two people with the same identity: nobody is chosen.
    let twin = GREGORY
        .replace("p-gregory", "p-twin")
        .replace("\"GREGORY\"", "\"Grégory\"");
    let (_dir, directory) = people_file(&format!("{GREGORY}{twin}"));
    let gw = gateway(&op, directory);
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = browser.send(browser.get(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("several"), "{}", page.body);
}

#[tokio::test]
async fn a_login_missing_a_pivot_field_is_refused() {
    let op = franceconnect().await;
    op.state().user_claims.remove("birthdate");
    let (_dir, directory) = people_file(GREGORY);
    let gw = gateway(&op, directory);
    let log = logs::Scope::begin();
    let (mut browser, trip) = login(&gw).await;
    let page = &trip.page;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Connexion impossible") && page.body.contains("Sign-in failed"));
    assert!(
        page.body.contains("did not send all of the identity"),
        "{}",
        page.body
    );
    let events = log.audit_of(page);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "login_failure"
                && e["fields"]["reason"] == "identity pivot: birthdate missing or malformed"),
        "{events:?}"
    );
    assert!(browser.cookie("guichet_session").is_none());
    assert_eq!(app_page(&gw, &mut browser).await.status, 401);
}

fn scim_citizen(id: &str, birthdate: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id,
        "userName": id,
        "active": true,
        "name": { "givenName": "Grégory", "familyName": "FRANÇOISE" },
        "birthDate": birthdate,
        "gender": "male",
        "birthPlace": "75056",
        "birthCountry": "99100",
        "groups": [{ "value": "g1", "display": "citizens:usager" }],
    })
}

#[tokio::test]
async fn scim_lookups_by_the_identity_pivot_are_searched_by_birth_date_cached_and_coalesced() {
    let op = franceconnect().await;
    let scim = MockScim::start().await;
    // Day-first spelling of the presumed date, and a person born another day.
    scim.put_user(scim_citizen("u-greg", "01/01/1980"));
    scim.put_user(scim_citizen("u-other", "1980-01-02"));
    let directory = format!(
        "  backend:\n    kind: scim\n    url: \"{}\"\n    timeout: 2s\n    attributes: {{ givenName: name.givenName, familyName: name.familyName, birthDate: birthDate, gender: gender, birthPlace: birthPlace, birthCountry: birthCountry }}\n  cache: {{ l1_ttl: 30s }}\n",
        scim.url()
    );
    let gw = gateway(&op, directory);
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    // Many requests at once on a cold cache: one directory lookup.
    let url = gw.url("/demarches/");
    let cookies = browser.cookie_header().unwrap();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = browser
                .raw()
                .get(&url)
                .header("accept", "application/json")
                .header("cookie", cookies.clone());
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    let page = app_page(&gw, &mut browser).await;
    assert_eq!(page.upstream_header("x-remote-roles"), ["usager"]);
    assert_eq!(scim.user_lookups().await, 1, "cached and coalesced");
    // The server was asked for that birth date in its spellings, never for names.
    let requests = scim.requests().await;
    let filter = requests
        .iter()
        .find_map(|r| guichet_tests::query_value(&r.url, "filter"))
        .unwrap();
    assert!(filter.contains("birthDate eq \"1980-01-01\""), "{filter}");
    assert!(filter.contains("birthDate eq \"01/01/1980\""), "{filter}");
    assert!(!filter.contains("Gr"), "{filter}");
}

/// A SCIM server answering "not found" to the birth-date search: nobody, not an outage.
#[tokio::test]
async fn a_scim_not_found_for_the_birth_date_is_an_unknown_citizen() {
    let op = franceconnect().await;
    let scim = MockScim::start().await;
    scim.set_mode(guichet_tests::scim::Mode::NotFound);
    let directory = format!(
        "  backend:\n    kind: scim\n    url: \"{}\"\n    timeout: 2s\n  cache: {{ l1_ttl: 30s }}\n",
        scim.url()
    );
    let gw = gateway(&op, directory);
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = browser.send(browser.get(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("not known"), "{}", page.body);
}
