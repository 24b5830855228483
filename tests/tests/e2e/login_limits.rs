//! Password-guessing limits that stop guessing without locking out a school: hundreds of
//! people behind one address are slowed down, never refused as a whole; refusals are per
//! account, from one address and from everywhere.

use guichet_tests::{logs, Browser, GatewayOptions, Page, Reachable, TestGateway, ALICE, BOB};

/// A test gateway named by its port alone (for tasks that outlive a borrow of it).
struct Port(u16);

impl Reachable for Port {
    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", guichet_tests::APP_HOST, self.0)
    }
}

/// Addresses arrive through a trusted proxy (the load balancer), as in production.
fn behind_proxy(options: GatewayOptions) -> TestGateway {
    TestGateway::start(GatewayOptions {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..options
    })
}

/// The whole login dance from client `address`; returns the final status and the browser.
async fn login_from(gw: &TestGateway, address: &str, user: (&str, &str)) -> (u16, Browser) {
    let mut browser = gw.browser();
    let page = login_with(&mut browser, gw, address, user).await;
    (page.status, browser)
}

/// The login dance in `browser` (with its cookies: a known device keeps its cookie).
async fn login_with(
    browser: &mut Browser,
    gw: &impl Reachable,
    address: &str,
    user: (&str, &str),
) -> Page {
    let first = browser
        .send(browser.get(&gw.url("/")).header("x-forwarded-for", address))
        .await;
    assert_eq!(first.status, 302, "{}", first.body);
    let form = browser
        .send(
            browser
                .get(&gw.url("/.guichet/login"))
                .header("x-forwarded-for", address),
        )
        .await;
    let fields = [
        ("csrf_token", form.csrf_token()),
        ("username", user.0.to_owned()),
        ("password", user.1.to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser
        .send(
            browser
                .post_form(&gw.url("/.guichet/login"), &fields)
                .header("x-forwarded-for", address),
        )
        .await
}

#[tokio::test]
async fn a_busy_address_is_slowed_down_never_locked_out() {
    let logs = logs::Scope::begin();
    // A school behind one NAT address: failures there, all accounts together, go far past the
    // threshold (the old per-address limit refused everyone from then on).
    let gw = behind_proxy(GatewayOptions {
        slow_down_address_after: 3,
        max_delay: "1s",
        ..GatewayOptions::default()
    });
    let school = "198.51.100.7";
    for pupil in 0..8 {
        let (status, _) = login_from(&gw, school, (&format!("pupil{pupil}"), "typo")).await;
        assert_eq!(status, 401, "a wrong password is checked, slowly");
    }
    // A teacher behind the same address still signs in with the right password.
    let (status, browser) = login_from(&gw, school, ALICE).await;
    assert_eq!(
        status, 302,
        "the right password gets in from a busy address"
    );
    assert!(browser.cookie("guichet_session").is_some());
    // Each attempt past the threshold was held back, and the audit log says so.
    let slowed: Vec<_> = logs
        .audit_events(school)
        .into_iter()
        .filter(|event| event["fields"]["event"] == "login_slowed")
        .collect();
    assert!(
        slowed.len() >= 6,
        "attempts past the threshold are slowed: {slowed:?}"
    );
    assert!(slowed
        .iter()
        .all(|event| event["fields"]["delay_ms"] == 1000));
    // Another address is not slowed.
    let (status, _) = login_from(&gw, "203.0.113.9", BOB).await;
    assert_eq!(status, 302);
    assert!(logs
        .audit_events("203.0.113.9")
        .iter()
        .all(|event| event["fields"]["event"] != "login_slowed"));
}

#[tokio::test]
async fn an_account_guessed_from_one_address_is_refused_there_only() {
    let logs = logs::Scope::begin();
    let gw = behind_proxy(GatewayOptions {
        max_failures_per_account_and_address: 3,
        ..GatewayOptions::default()
    });
    let pupil = "192.0.2.10";
    for _ in 0..3 {
        assert_eq!(login_from(&gw, pupil, ("bob", "guess")).await.0, 401);
    }
    // From there, bob is refused even with his password, whatever alias is typed...
    for login in ["bob", "BOB@example.org"] {
        let (status, browser) = login_from(&gw, pupil, (login, "bob")).await;
        assert_eq!(status, 429, "{login}");
        assert!(browser.cookie("guichet_session").is_none());
    }
    let events = logs.audit_events(pupil);
    assert!(events.iter().any(|event| event["fields"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("this account from this address"))));
    // ...but other accounts from the same address, and bob from elsewhere, sign in.
    assert_eq!(login_from(&gw, pupil, ALICE).await.0, 302);
    assert_eq!(login_from(&gw, "192.0.2.99", BOB).await.0, 302);
}

#[tokio::test]
async fn guessing_one_account_from_many_addresses_stops() {
    let logs = logs::Scope::begin();
    let gw = behind_proxy(GatewayOptions {
        max_failures_per_account: 4,
        max_failures_per_account_and_address: 2,
        ..GatewayOptions::default()
    });
    for address in ["10.1.0.1", "10.1.0.2"] {
        for _ in 0..2 {
            assert_eq!(login_from(&gw, address, ("bob", "guess")).await.0, 401);
        }
    }
    // Each address stayed under its own cap, but the account's total is reached: the next
    // attempt from yet another address is refused, the right password too.
    let (status, _) = login_from(&gw, "10.1.0.3", BOB).await;
    assert_eq!(status, 429);
    assert!(logs
        .audit_events("10.1.0.3")
        .iter()
        .any(|event| event["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with("too many failures on this account"))));
    // Other accounts are unaffected.
    assert_eq!(login_from(&gw, "10.1.0.3", ALICE).await.0, 302);
}

#[tokio::test]
async fn an_address_over_its_cap_adds_nothing_to_the_account_total() {
    // One address alone must not be able to lock an account out for everyone.
    let gw = behind_proxy(GatewayOptions {
        max_failures_per_account: 4,
        max_failures_per_account_and_address: 2,
        ..GatewayOptions::default()
    });
    for _ in 0..10 {
        login_from(&gw, "10.2.0.1", ("bob", "guess")).await;
    }
    assert_eq!(login_from(&gw, "10.2.0.2", BOB).await.0, 302);
}

#[tokio::test]
async fn trusted_networks_have_their_own_thresholds() {
    let gw = behind_proxy(GatewayOptions {
        trusted_networks: Some(
            "[{ networks: [10.9.0.0/16], max_failures_per_account_and_address: 1 }]".into(),
        ),
        ..GatewayOptions::default()
    });
    assert_eq!(login_from(&gw, "10.9.1.1", ("bob", "guess")).await.0, 401);
    assert_eq!(login_from(&gw, "10.9.1.1", BOB).await.0, 429);
    // Outside the network, the provider's threshold (5) applies.
    assert_eq!(login_from(&gw, "10.8.1.1", ("bob", "guess")).await.0, 401);
    assert_eq!(login_from(&gw, "10.8.1.1", BOB).await.0, 302);
}

/// A browser that signed in to the account before, from its cookie: the school's address may
/// be flooded (queue full) and the account guessed from everywhere, its owner still gets in.
#[tokio::test]
async fn a_known_device_gets_in_past_a_flooded_address_and_a_locked_account() {
    let logs = logs::Scope::begin();
    let gw = behind_proxy(GatewayOptions {
        slow_down_address_after: 1,
        max_delay: "1s",
        max_failures_per_account: 4,
        max_failures_per_account_and_address: 2,
        ..GatewayOptions::default()
    });
    let school = "198.51.100.40";
    let mut teacher = gw.browser();
    assert_eq!(
        login_with(&mut teacher, &gw, school, ALICE).await.status,
        302
    );
    assert!(
        teacher.cookie("guichet_session_device").is_some(),
        "a known device now"
    );
    // The device cookie is the gateway's: the app never sees it.
    let page = teacher
        .send(
            teacher
                .get_json(&gw.url("/"))
                .header("x-forwarded-for", school),
        )
        .await;
    assert!(
        page.upstream_header("cookie")
            .iter()
            .all(|c| !c.contains("guichet_session_device")),
        "{:?}",
        page.upstream_header("cookie")
    );

    // Someone guesses alice's password from two other addresses: locked for strangers.
    for address in ["10.3.0.1", "10.3.0.2"] {
        for _ in 0..2 {
            assert_eq!(login_from(&gw, address, ("alice", "guess")).await.0, 401);
        }
    }
    assert_eq!(login_from(&gw, "10.3.0.3", ALICE).await.0, 429);

    // A pupil floods the school's address: it is busy, its queue fills, strangers there are
    // held back or refused...
    let port = gw.port;
    let flood: Vec<_> = (0..40)
        .map(|i| {
            tokio::spawn(async move {
                let mut pupil = Browser::new(port);
                let user = (format!("pupil{i}"), "x");
                login_with(&mut pupil, &Port(port), school, (&user.0, user.1))
                    .await
                    .status
            })
        })
        .collect();
    // ...while the teacher, from her known device, gets in at once, neither slowed nor
    // refused despite her account being locked for everyone else.
    let mut teacher_again = gw.browser();
    teacher_again.cookies = teacher.cookies.clone();
    teacher_again.cookies.remove("guichet_session");
    let page = login_with(&mut teacher_again, &gw, school, ALICE).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(logs
        .audit_of(&page)
        .iter()
        .all(|event| event["fields"]["event"] != "login_slowed"));
    let mut refused = 0;
    for pupil in flood {
        let status = pupil.await.unwrap();
        assert!(matches!(status, 401 | 429), "{status}");
        refused += usize::from(status == 429);
    }
    assert!(refused > 0, "a full queue refuses at once");
    assert!(logs
        .audit_events(school)
        .iter()
        .any(|event| event["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("queue is full"))));
}

#[tokio::test]
async fn guessing_from_a_known_device_makes_it_unknown() {
    let logs = logs::Scope::begin();
    let gw = behind_proxy(GatewayOptions {
        max_failures_per_account_and_address: 2,
        ..GatewayOptions::default()
    });
    let home = "203.0.113.50";
    let mut browser = gw.browser();
    assert_eq!(login_with(&mut browser, &gw, home, ALICE).await.status, 302);
    browser.cookies.remove("guichet_session");
    for _ in 0..2 {
        assert_eq!(
            login_with(&mut browser, &gw, home, ("alice", "guess"))
                .await
                .status,
            401
        );
    }
    let page = login_with(&mut browser, &gw, home, ("alice", "guess")).await;
    assert_eq!(page.status, 429);
    assert!(logs
        .audit_of(&page)
        .iter()
        .any(|event| event["fields"]["reason"]
            == "rate limited: too many failures from this known device"));
}
