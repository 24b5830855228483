//! The quickstart, as the README shows it with curl: the embedded demo config in front of the
//! echo app.

use std::time::Duration;

use guichet_tests::binary::GuichetProcess;
use guichet_tests::{free_port, Browser};

/// `guichet demo`, the binary as the README runs it (its embedded config, echo app and
/// directory file).
#[tokio::test]
async fn the_demo_signs_alice_in_and_never_delivers_a_spoofed_user() {
    let port = free_port();
    let mut demo = GuichetProcess::demo(port, free_port());
    demo.wait_ready().await;
    let base = format!("http://127.0.0.1:{port}");
    let mut browser = Browser::new(port);

    let first = browser.send(browser.get(&format!("{base}/"))).await;
    assert_eq!(first.status, 302);
    assert_eq!(first.location(), Some("/.guichet/login"));
    let form = browser
        .send(browser.get(&format!("{base}/.guichet/login")))
        .await;
    assert!(form.body.contains("name=\"username\"") && form.body.contains("name=\"password\""));
    let done = browser
        .send(browser.post_form(
            &format!("{base}/.guichet/login"),
            &[
                ("csrf_token", &form.csrf_token()),
                ("username", "alice@example.org"),
                ("password", "alice"),
            ],
        ))
        .await;
    assert_eq!(done.status, 302);
    assert_eq!(done.location(), Some("/"));
    let page = browser.send(browser.get(&format!("{base}/"))).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("x-remote-user</th><td>alice</td>"),
        "{}",
        page.body
    );

    for spoof in ["X-Remote-User", "x-remote-user", "X_Remote_User"] {
        let mut anonymous = Browser::new(port);
        for who in [&mut browser, &mut anonymous] {
            for path in ["/public/", "/"] {
                let request = who.get(&format!("{base}{path}")).header(spoof, "admin");
                let page = who.send(request).await;
                assert!(page.status == 200 || page.status == 302, "{}", page.status);
                assert!(
                    !page.body.contains("<td>admin</td>"),
                    "{spoof} delivered: {}",
                    page.body
                );
            }
        }
    }

    // The demo's roles, from its directory: alice (agent) is refused the admin area, carol
    // (admin) gets it, bob (lecteur) is refused the whole app, with the 403 page.
    let admin_page = browser.send(browser.get(&format!("{base}/admin/"))).await;
    assert_eq!(admin_page.status, 403);
    assert!(admin_page.body.contains("support@example.org"));
    for (login, password, root, admin) in [
        ("carol@example.org", "carol", 200, 200),
        ("bob@example.org", "bob", 403, 403),
        // eve's account is locked in the demo directory.
        ("eve@example.org", "eve", 403, 403),
    ] {
        let mut user = Browser::new(port);
        user.send(user.get(&format!("{base}/"))).await;
        let form = user.send(user.get(&format!("{base}/.guichet/login"))).await;
        let done = user
            .send(user.post_form(
                &format!("{base}/.guichet/login"),
                &[
                    ("csrf_token", &form.csrf_token()),
                    ("username", login),
                    ("password", password),
                ],
            ))
            .await;
        assert_eq!(done.status, 302, "{login}");
        assert_eq!(
            user.send(user.get(&format!("{base}/"))).await.status,
            root,
            "{login} /"
        );
        assert_eq!(
            user.send(user.get(&format!("{base}/admin/x"))).await.status,
            admin,
            "{login} /admin"
        );
        assert_eq!(
            user.send(user.get(&format!("{base}/public/"))).await.status,
            200
        );
    }
    let status = demo.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}: {}", demo.output());
}
