//! Every shipped example configuration, started by the binary the way its comments say: with
//! its secrets in the environment, Redis reachable, and (since nothing outside loopback is
//! reachable here) its listeners and provider URLs pointed at the test kit with `--set`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use guichet_tests::binary::{GuichetProcess, Launch};
use guichet_tests::cas::MockCas;
use guichet_tests::oidc::MockOp;
use guichet_tests::saml_idp::{ResponseSpec, SamlIdp, TestKey};
use guichet_tests::scim::MockScim;
use guichet_tests::{free_port, Browser, RedisServer};
use serde_norway::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The gateway configurations in `examples/` (not the users and people files).
fn example_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let document: Value = serde_norway::from_str(&text).unwrap();
            document.get("apps").is_some()
        })
        .collect();
    configs.sort();
    configs
}

/// Every `{ env: NAME }` the file reads.
fn env_names(node: &Value, names: &mut Vec<String>) {
    match node {
        Value::Mapping(map) => {
            if let (1, Some(Value::String(name))) = (map.len(), map.get("env")) {
                names.push(name.clone());
            }
            map.values().for_each(|value| env_names(value, names));
        }
        Value::Sequence(items) => items.iter().for_each(|value| env_names(value, names)),
        _ => {}
    }
}

struct Peers {
    redis: RedisServer,
    op: MockOp,
    franceconnect: MockOp,
    franceconnect_plus: MockOp,
    cas: MockCas,
    scim: MockScim,
    saml: SamlIdp,
    /// Stands in for the Secret that holds FranceConnect+ decryption keys.
    keys: tempfile::TempDir,
}

impl Peers {
    async fn start() -> Peers {
        Peers {
            redis: RedisServer::start(),
            op: MockOp::start().await,
            franceconnect: MockOp::franceconnect().await,
            franceconnect_plus: MockOp::franceconnect_plus().await,
            cas: MockCas::start().await,
            scim: MockScim::start().await,
            saml: SamlIdp::start().await,
            keys: tempfile::tempdir().unwrap(),
        }
    }

    /// The example at `path`, started by the binary and ready.
    async fn run(&self, path: &Path) -> GuichetProcess {
        let (port, admin_port) = (free_port(), free_port());
        let mut process =
            GuichetProcess::spawn(path, port, admin_port, launch(path, self, port, admin_port));
        process.wait_ready().await;
        process
    }
}

/// What an example needs to run here: its environment and `--set` overrides.
fn launch(path: &Path, peers: &Peers, port: u16, admin_port: u16) -> Launch {
    let document: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut env = Vec::new();
    let mut names = Vec::new();
    env_names(&document, &mut names);
    for name in names {
        let value = if name.ends_with("REDIS_URL") {
            peers.redis.url()
        } else if name.ends_with("SESSION_KEY") {
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()
        } else {
            format!("example value of {name}")
        };
        env.push((name, value));
    }
    let mut overrides = vec![
        format!("listen[0].address=127.0.0.1:{port}"),
        format!("admin=127.0.0.1:{admin_port}"),
    ];
    let providers = document["providers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for (i, provider) in providers.iter().enumerate() {
        match provider["kind"].as_str() {
            Some("oidc") => overrides.push(format!("providers[{i}].issuer={}", peers.op.issuer)),
            Some("franceconnect") => overrides.push(format!(
                "providers[{i}].issuer={}",
                peers.franceconnect.issuer
            )),
            Some("franceconnect_plus") => {
                overrides.push(format!(
                    "providers[{i}].issuer={}",
                    peers.franceconnect_plus.issuer
                ));
                let keys = provider["encryption_keys"]
                    .as_sequence()
                    .map(Vec::len)
                    .unwrap_or(0);
                for k in 0..keys {
                    let file = peers.keys.path().join(format!("provider-{i}-key-{k}.pem"));
                    if !file.exists() {
                        std::fs::write(&file, guichet_tests::keys::ec_pem()).unwrap();
                    }
                    overrides.push(format!(
                        "providers[{i}].encryption_keys[{k}].private_key.file={}",
                        file.display()
                    ));
                }
            }
            Some("cas") => overrides.push(format!("providers[{i}].server_url={}", peers.cas.url())),
            Some("saml") => saml_overrides(i, provider, peers, &mut overrides),
            _ => {}
        }
    }
    if document["directory"]["backend"]["kind"].as_str() == Some("scim") {
        overrides.push(format!("directory.backend.url={}", peers.scim.url()));
    }
    Launch {
        overrides,
        env,
        current_dir: Some(workspace()),
    }
}

/// A SAML provider of an example pointed at the test kit's IdP, found in its signed federation
/// metadata, with the key files of its Secret written here.
fn saml_overrides(i: usize, provider: &Value, peers: &Peers, overrides: &mut Vec<String>) {
    let file = |name: &str, content: String| {
        let path = peers.keys.path().join(format!("provider-{i}-{name}"));
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let saml = &peers.saml;
    overrides.push(format!(
        "providers[{i}].idp_metadata.url={}",
        saml.signed_federation_metadata_url()
    ));
    overrides.push(format!("providers[{i}].idp_entity_id={}", saml.entity_id()));
    let signers = provider["metadata_signing_certificates"]
        .as_sequence()
        .map(Vec::len)
        .unwrap_or(0);
    for k in 0..signers {
        let path = file("signer.pem", saml.metadata_signing_certificate_pem());
        overrides.push(format!(
            "providers[{i}].metadata_signing_certificates[{k}].file={path}"
        ));
    }
    let key = file("sp.key", TestKey::sp().private_key_pem());
    let cert = file("sp.crt", TestKey::sp().cert_pem());
    let mut pairs = vec!["signing".to_owned()];
    let encryption = provider["encryption"]
        .as_sequence()
        .map(Vec::len)
        .unwrap_or(0);
    pairs.extend((0..encryption).map(|k| format!("encryption[{k}]")));
    for pair in pairs {
        overrides.push(format!("providers[{i}].{pair}.private_key.file={key}"));
        overrides.push(format!("providers[{i}].{pair}.certificate.file={cert}"));
    }
}

/// The host and path of each app of the example, as users open them.
fn app_entries(path: &Path) -> Vec<(String, String)> {
    let document: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    document["apps"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|app| {
            let url = url::Url::parse(app["url"].as_str().unwrap()).unwrap();
            (url.host_str().unwrap().to_owned(), url.path().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_example_configuration_reaches_ready_under_the_binary() {
    let peers = Peers::start().await;
    let configs = example_configs();
    assert!(configs.len() >= 2, "examples/ has the shipped configs");
    for path in configs {
        let mut process = peers.run(&path).await;
        let port = process.port;
        // Each app answers: a sign-in for protected ones, never an error.
        let apps = app_entries(&path);
        let hosts: Vec<&str> = apps.iter().map(|(host, _)| host.as_str()).collect();
        for (host, prefix) in &apps {
            let browser = Browser::resolving(port, &hosts);
            let url = format!("http://{host}:{port}{prefix}");
            let response = browser
                .raw()
                .get(&url)
                .header("accept", "text/html")
                .send()
                .await;
            let status = response.expect("the app answers").status().as_u16();
            assert!(
                matches!(status, 302 | 200 | 403),
                "{}: {url} answered {status}:\n{}",
                path.display(),
                process.output()
            );
        }
        let status = process.terminate(Duration::from_secs(20));
        assert!(status.success(), "{}: {status}", path.display());
    }
}

/// The production example, signed in to for real: a local account of examples/users.yaml on
/// the intranet app, with sessions in Redis.
#[tokio::test]
async fn the_production_example_signs_a_local_user_in() {
    let peers = Peers::start().await;
    let process = peers.run(&workspace().join("examples/guichet.yaml")).await;
    let port = process.port;
    let mut browser = Browser::resolving(port, &["intranet.example.org"]);
    let intranet = |path: &str| format!("http://intranet.example.org:{port}{path}");
    let first = browser.send(browser.get(&intranet("/reports"))).await;
    assert_eq!(first.location(), Some("/.guichet/login"), "{}", first.body);
    // Two providers on this app: the chooser, then the local form.
    let chooser = browser
        .send(browser.get(&intranet("/.guichet/login")))
        .await;
    assert_eq!(chooser.status, 200, "{}", chooser.body);
    assert!(chooser.body.contains("idp=agents"), "{}", chooser.body);
    let form = browser
        .send(browser.get(&intranet("/.guichet/login?idp=agents")))
        .await;
    assert_eq!(form.status, 200, "{}", form.body);
    let done = browser
        .send(browser.post_form(
            &intranet("/.guichet/login"),
            &[
                ("csrf_token", &form.csrf_token()),
                ("username", "alice"),
                ("password", "alice"),
            ],
        ))
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/reports"));
    // https app without a cookie domain: the __Host- cookie.
    assert!(browser.cookie("__Host-guichet_session").is_some());
    let keys = peers.redis.command(&["KEYS", "*"]);
    assert!(
        keys.contains("guichet:s:"),
        "the session is in Redis: {keys}"
    );
}

/// The production example, signed in to with FranceConnect+ by the shipped binary: the keys
/// from files, the JWKS the platform fetches, encrypted tokens, the identité pivot in the
/// SCIM directory, Redis sessions.
#[tokio::test]
async fn the_production_example_signs_a_citizen_in_with_franceconnect_plus() {
    let peers = Peers::start().await;
    peers.scim.put_user(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u-greg",
        "userName": "u-greg",
        "active": true,
        "name": { "givenName": "Grégory Gaëtan", "familyName": "FRANÇOISE" },
        "urn:example:params:scim:schemas:extension:civil:2.0:User": {
            "birthDate": "1980-06-01",
            "gender": "male",
            "birthPlace": "2A004",
            "birthCountry": "99100",
        },
        "groups": [{ "value": "g1", "display": "demarches:usager" }],
    }));
    let process = peers.run(&workspace().join("examples/guichet.yaml")).await;
    let port = process.port;
    let op = &peers.franceconnect_plus;
    // The partner space: the example's client, its callback, its JWKS URL (fetched by the
    // platform).
    let client_id = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    op.fc(|fc| {
        let mut client = guichet_tests::franceconnect::Client::new(
            "example value of GUICHET_FRANCECONNECT_PLUS_SECRET",
            "demarches-example-entity-0123456789",
        );
        client
            .redirect_uris
            .push("https://demarches.example.org/.guichet/callback/franceconnect-plus".into());
        fc.clients.insert(client_id.into(), client);
    });
    op.register_client_jwks(
        client_id,
        &format!("http://demarches.example.org:{port}/.guichet/jwks/franceconnect-plus"),
    )
    .await;
    let mut browser = Browser::resolving(port, &["demarches.example.org"]);
    let site = |path: &str| format!("http://demarches.example.org:{port}{path}");
    let start = browser
        .send(browser.get(&site("/.guichet/login?idp=franceconnect-plus")))
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location().unwrap().to_owned();
    assert!(authorize.starts_with(&op.issuer), "{authorize}");
    let at_platform = browser.send(browser.get(&authorize)).await;
    assert_eq!(
        at_platform.status,
        302,
        "{}: {:?}",
        at_platform.body,
        op.fc(|fc| fc.refusals.clone())
    );
    // Back to https://demarches.example.org/...: TLS ends at the load balancer, so the
    // browser's request reaches the binary's plain listener.
    let callback = at_platform
        .location()
        .unwrap()
        .replace("https://demarches.example.org", &site(""));
    let done = browser.send(browser.get(&callback)).await;
    assert_eq!(
        done.status,
        302,
        "{}\n{}\n{:?}",
        done.body,
        process.output(),
        op.fc(|fc| fc.refusals.clone())
    );
    assert!(op.fc(|fc| fc.refusals.is_empty()));
    let sealed = op.fc(|fc| fc.sealed_headers.clone());
    assert_eq!(sealed.len(), 2, "id_token and userinfo were encrypted");
    assert!(sealed
        .iter()
        .all(|h| h["alg"] == "ECDH-ES" && h["kid"] == "fcplus-2026-07"));
    assert!(browser.cookie("__Host-guichet_session").is_some());
    let keys = peers.redis.command(&["KEYS", "*"]);
    assert!(
        keys.contains("guichet:s:"),
        "the session is in Redis: {keys}"
    );
}

/// The production example, signed in to through the university's SAML IdP by the shipped
/// binary: the IdP picked from signed federation metadata, an encrypted assertion, the person
/// unknown to the directory landing as a guest, the session in Redis.
#[tokio::test]
async fn the_production_example_signs_a_federation_user_in_with_saml() {
    let peers = Peers::start().await;
    let process = peers.run(&workspace().join("examples/guichet.yaml")).await;
    let port = process.port;
    let mut browser = Browser::resolving(port, &["portal.example.org"]);
    let site = |path: &str| format!("http://portal.example.org:{port}{path}");
    let start = browser
        .send(browser.get(&site("/.guichet/login?idp=federation")))
        .await;
    assert_eq!(start.status, 302, "{}\n{}", start.body, process.output());
    let sso = start.location().unwrap().to_owned();
    assert!(sso.starts_with(&peers.saml.sso_url()), "{sso}");
    let request = SamlIdp::read_authn_request_from_url(&sso);
    assert!(
        request.verify_redirect_signature(&TestKey::sp().cert_pem())
            || !request.redirect_signature_present
    );
    let acs = request.acs_url.clone().unwrap();
    assert_eq!(
        acs,
        "https://portal.example.org/.guichet/callback/federation"
    );
    let mut spec = ResponseSpec::answering(&request);
    spec.encrypt_for = Some(guichet_tests::saml_idp::EncryptFor::new(
        &TestKey::sp().cert_pem(),
    ));
    spec.attributes
        .push(guichet_tests::saml_idp::SpecAttribute::uri(
            "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
            "eduPersonPrincipalName",
            &["hdupont@univ.example.org"],
        ));
    let fields = SamlIdp::post_fields(&peers.saml.response(&spec), request.relay_state.as_deref());
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // TLS ends at the load balancer: the POST reaches the binary's plain listener.
    let done = browser
        .send(browser.post_form(
            &acs.replace("https://portal.example.org", &site("")),
            &fields,
        ))
        .await;
    assert_eq!(done.status, 302, "{}\n{}", done.body, process.output());
    assert!(browser.cookie("__Host-guichet_session").is_some());
    let keys = peers.redis.command(&["KEYS", "*"]);
    assert!(
        keys.contains("guichet:s:"),
        "the session is in Redis: {keys}"
    );
}
