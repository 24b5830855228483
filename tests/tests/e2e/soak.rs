//! A minute of mixed traffic through two `guichet run` processes sharing one Redis: the CI
//! version of `bench/soak.sh`. Local and OpenID logins on either replica, requests alternating
//! between the replicas, role changes in the directory file made effective with `guichet
//! directory invalidate`, logouts checked on the other replica. Asserts zero 5xx, no 200 with
//! another user's identity, every logout effective on both replicas and every role change seen
//! by both; reports the replicas' resident memory without asserting on it (nor on any timing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guichet_tests::binary::GuichetProcess;
use guichet_tests::faults::{pid_running, rss_kib};
use guichet_tests::oidc::{self, MockOp};
use guichet_tests::{user_hash, Browser, GatewayOptions, Page, Reachable, RedisServer, Store};

/// How long the traffic runs (`GUICHET_SOAK_SECONDS` to change it when running it by hand).
fn soak_duration() -> Duration {
    let seconds = std::env::var("GUICHET_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

/// People signing in and out with passwords.
const USERS: [&str; 4] = ["u1", "u2", "u3", "u4"];
/// People whose roles change during the run.
const ROLE_USERS: [&str; 2] = ["r1", "r2"];
/// Generous bounds for what must happen (never timing assertions: a loaded CI machine only
/// makes them take longer).
const LOGOUT_BOUND: Duration = Duration::from_secs(10);
const ROLE_BOUND: Duration = Duration::from_secs(15);

/// Password logins in flight at once, over both replicas: each replica checks at most 2 x cores
/// passwords at a time and sheds the rest with a 503 (not what this test is about).
static LOGIN_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

const BIP: &str = r#"
  - id: bip
    url: {origin}/bip
    upstream: http://{echo}
    providers: [staff]
    rules:
      - { path_prefix: /bip/admin, any_role: [admin] }
      - { path_prefix: /bip, any_role: [utilisateur, admin] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
"#;

/// The directory file: everyone `utilisateur` on bip, plus `admin` for the role users in
/// `admins`.
fn people_yaml(admins: &[&str]) -> String {
    let mut yaml = String::from("people:\n");
    for user in USERS.iter().chain(ROLE_USERS.iter()) {
        let roles = if admins.contains(user) {
            "[utilisateur, admin]"
        } else {
            "[utilisateur]"
        };
        yaml.push_str(&format!(
            "  - id: p-{user}\n    attributes: {{ email: {user}@example.org }}\n    roles: {{ bip: {roles} }}\n"
        ));
    }
    yaml
}

/// What went wrong, and what was counted, across every task.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    requests: u64,
    logins: u64,
    logouts: u64,
    logout_refused_at_once: u64,
    role_changes: u64,
}

type Shared = Arc<Mutex<Tally>>;

fn fail(tally: &Shared, what: String) {
    let mut tally = tally.lock().unwrap();
    if tally.failures.len() < 50 {
        tally.failures.push(what);
    }
}

/// Checks one answer: never a 5xx; a 200 carries `user`'s identity (and `roles` when given).
fn check(tally: &Shared, page: &Page, user: &str, roles: Option<&str>, replica: usize) -> bool {
    tally.lock().unwrap().requests += 1;
    if page.status >= 500 {
        fail(
            tally,
            format!("{user} on replica {replica}: {}", page.status),
        );
        return false;
    }
    if page.status != 200 {
        return false;
    }
    let seen = page.upstream_header("x-remote-user");
    if seen != [user] {
        fail(
            tally,
            format!("{user} on replica {replica}: the app saw {seen:?}"),
        );
    }
    if let Some(roles) = roles {
        let seen = page.upstream_header("x-remote-roles");
        if seen != [roles] {
            fail(
                tally,
                format!("{user} on replica {replica}: roles {seen:?}, not {roles}"),
            );
        }
    }
    true
}

/// One person's browser on each replica, sharing cookies.
struct Person {
    on: [Browser; 2],
}

impl Person {
    fn new(replicas: &[GuichetProcess; 2]) -> Person {
        Person {
            on: [replicas[0].browser(), replicas[1].browser()],
        }
    }

    /// Copies the cookies of the browser on `from` to the other one.
    fn share_cookies(&mut self, from: usize) {
        self.on[1 - from].cookies = self.on[from].cookies.clone();
    }

    async fn get(&mut self, replicas: &[GuichetProcess; 2], i: usize, path: &str) -> Page {
        let browser = &mut self.on[i];
        browser.send(browser.get_json(&replicas[i].url(path))).await
    }

    async fn sign_out(&mut self, replicas: &[GuichetProcess; 2], i: usize) -> Page {
        let browser = &mut self.on[i];
        let url = replicas[i].url("/.guichet/logout");
        let origin = replicas[i].url("");
        browser
            .send(
                browser
                    .post_form(&url, &[("return_to", "/bip/")])
                    .header("origin", origin),
            )
            .await
    }
}

/// Signs in (alternating replicas), makes requests alternating between the replicas, signs
/// out on one and checks the cookie is refused on the other and on that one; until `end`.
async fn person(
    replicas: Arc<[GuichetProcess; 2]>,
    tally: Shared,
    user: &'static str,
    oidc: bool,
    end: Instant,
) {
    let (path, roles) = if oidc {
        ("/rp/", None)
    } else {
        ("/bip/", Some("utilisateur"))
    };
    let mut round = 0usize;
    while Instant::now() < end {
        let first = round % 2;
        round += 1;
        let mut me = Person::new(&replicas);
        let done = if oidc {
            oidc::login(&mut me.on[first], &replicas[first], path, None)
                .await
                .page
        } else {
            let _gate = LOGIN_GATE.acquire().await.expect("the gate stays open");
            me.on[first]
                .login(&replicas[first], path, (user, "alice"))
                .await
        };
        if done.status != 302 {
            fail(
                &tally,
                format!("{user}: login on replica {first}: {}", done.status),
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        tally.lock().unwrap().logins += 1;
        me.share_cookies(first);
        for n in 0..20 {
            let i = (first + n) % 2;
            let page = me.get(&replicas, i, path).await;
            if !check(&tally, &page, user, roles, i) && page.status < 500 {
                fail(
                    &tally,
                    format!("{user}: request on replica {i}: {}", page.status),
                );
            }
        }
        let on = (first + round / 2) % 2;
        let out = me.sign_out(&replicas, on).await;
        if out.status >= 400 {
            fail(
                &tally,
                format!("{user}: logout on replica {on}: {}", out.status),
            );
            continue;
        }
        let other = 1 - on;
        let url = replicas[other].url(path);
        let first_try = me.get(&replicas, other, path).await;
        let (page, _) = me.on[other].until_signed_out(&url, LOGOUT_BOUND).await;
        let same = me.get(&replicas, on, path).await;
        let mut tally_now = tally.lock().unwrap();
        tally_now.logouts += 1;
        tally_now.requests += 3;
        if first_try.status == 401 {
            tally_now.logout_refused_at_once += 1;
        }
        drop(tally_now);
        for (page, replica) in [(&first_try, other), (&page, other), (&same, on)] {
            if page.status >= 500 {
                fail(
                    &tally,
                    format!("{user}: after logout, replica {replica}: {}", page.status),
                );
            } else if page.status == 200 {
                // Only the first try may still be served (the other replica's copy of the
                // session lives under a second); check whose it is.
                check(&tally, page, user, roles, replica);
            }
        }
        if page.status != 401 || same.status != 401 {
            fail(
                &tally,
                format!(
                    "{user}: signed out on replica {on}, still served: other replica {}, same replica {}",
                    page.status, same.status
                ),
            );
        }
    }
}

/// Every 5 s, one role user gains or loses `admin` in the directory file; `guichet directory
/// invalidate` makes it effective; both replicas must show it (roles header and /bip/admin).
async fn role_changes(
    replicas: Arc<[GuichetProcess; 2]>,
    tally: Shared,
    people: std::path::PathBuf,
    end: Instant,
) {
    let mut people_of = Vec::new();
    for (n, user) in ROLE_USERS.iter().enumerate() {
        let mut me = Person::new(&replicas);
        let done = {
            let _gate = LOGIN_GATE.acquire().await.expect("the gate stays open");
            me.on[n % 2]
                .login(&replicas[n % 2], "/bip/", (user, "alice"))
                .await
        };
        assert_eq!(done.status, 302, "{user} signs in: {}", done.body);
        me.share_cookies(n % 2);
        people_of.push(me);
    }
    let mut admins: Vec<&str> = Vec::new();
    let mut n = 0;
    while Instant::now() + Duration::from_secs(5) < end {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let index = n % ROLE_USERS.len();
        n += 1;
        let user = ROLE_USERS[index];
        if let Some(at) = admins.iter().position(|a| *a == user) {
            admins.remove(at);
        } else {
            admins.push(user);
        }
        let admin = admins.contains(&user);
        std::fs::write(&people, people_yaml(&admins)).expect("write the directory file");
        // The file backend looks for changes at most once a second: let it see this one
        // before the invalidation makes the replicas read it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let config = replicas[0].config_path.clone().expect("the config file");
        let invalidated = tokio::task::spawn_blocking(move || {
            std::process::Command::new(guichet_tests::guichet_binary())
                .args(["directory", "invalidate", "--config"])
                .arg(&config)
                .args(["--attribute", "email", "--value"])
                .arg(format!("{user}@example.org"))
                .output()
                .expect("guichet directory invalidate runs")
        })
        .await
        .expect("the command's task");
        assert!(
            invalidated.status.success(),
            "guichet directory invalidate: {}",
            String::from_utf8_lossy(&invalidated.stderr)
        );
        let want = if admin {
            "utilisateur,admin"
        } else {
            "utilisateur"
        };
        let started = Instant::now();
        let me = &mut people_of[index];
        let mut seen_by = [false, false];
        while !(seen_by[0] && seen_by[1]) && started.elapsed() < ROLE_BOUND {
            for (i, seen) in seen_by.iter_mut().enumerate() {
                if *seen {
                    continue;
                }
                let page = me.get(&replicas, i, "/bip/").await;
                let admin_page = me.get(&replicas, i, "/bip/admin/").await;
                tally.lock().unwrap().requests += 2;
                for page in [&page, &admin_page] {
                    if page.status >= 500 {
                        fail(&tally, format!("{user} on replica {i}: {}", page.status));
                    }
                }
                let mut roles: Vec<String> = page
                    .upstream_header("x-remote-roles")
                    .first()
                    .map(|r| r.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                roles.sort();
                let mut wanted: Vec<&str> = want.split(',').collect();
                wanted.sort();
                let admin_status = if admin { 200 } else { 403 };
                *seen = page.status == 200
                    && page.upstream_header("x-remote-user") == [user]
                    && roles == wanted
                    && admin_page.status == admin_status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !(seen_by[0] && seen_by[1]) {
            fail(
                &tally,
                format!("{user}: roles {want} not seen by both replicas (seen: {seen_by:?})"),
            );
        }
        tally.lock().unwrap().role_changes += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_mixed_traffic_through_two_replicas() {
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let op = MockOp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people.yaml");
    std::fs::write(&people, people_yaml(&[])).unwrap();
    let hash = user_hash("alice");
    let users: String = USERS
        .iter()
        .chain(ROLE_USERS.iter())
        .map(|u| {
            format!(
                "      - {{ username: {u}, email: {u}@example.org, password_hash: '{hash}' }}\n"
            )
        })
        .collect();
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        login_starts_per_minute: 100_000,
        extra_providers: vec![
            format!(
                "  - kind: local\n    id: staff\n    pivot: {{ attribute: email, directory_attribute: email }}\n    users:\n{users}"
            ),
            oidc::provider_yaml("oidc", "op", &op.issuer, ""),
        ],
        extra_apps: vec![BIP.to_owned(), oidc::app_yaml("rp", "/rp", &["op"])],
        directory: Some(format!(
            "  backend: {{ kind: file, path: \"{}\" }}\n  cache: {{ l1_ttl: 30s, l2_ttl: 5m }}\n",
            people.display()
        )),
        ..GatewayOptions::default()
    };
    let mut a = GuichetProcess::start(&options, echo.address);
    let mut b = GuichetProcess::start(&options, echo.address);
    a.wait_ready().await;
    b.wait_ready().await;
    let pids = [&a, &b].map(|p| p.config_path.as_deref().and_then(pid_running));
    let rss = move || pids.map(|pid| pid.and_then(rss_kib));
    let replicas = Arc::new([a, b]);
    let tally: Shared = Arc::default();

    let started = Instant::now();
    let end = started + soak_duration();
    let mut tasks = Vec::new();
    for user in USERS {
        tasks.push(tokio::spawn(person(
            replicas.clone(),
            tally.clone(),
            user,
            false,
            end,
        )));
    }
    tasks.push(tokio::spawn(person(
        replicas.clone(),
        tally.clone(),
        "op-user-1",
        true,
        end,
    )));
    tasks.push(tokio::spawn(role_changes(
        replicas.clone(),
        tally.clone(),
        people.clone(),
        end,
    )));
    let mut samples = vec![(0, rss())];
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let at = started.elapsed().as_secs();
        if at >= samples.last().map_or(0, |s| s.0) + 10 {
            samples.push((at, rss()));
        }
    }
    samples.push((started.elapsed().as_secs(), rss()));
    for task in tasks {
        if let Err(e) = task.await {
            fail(&tally, format!("a traffic task failed: {e}"));
        }
    }

    let tally = tally.lock().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "soak: {} requests in {elapsed:?}, {} logins, {} logouts ({} refused on the other replica at the first request), {} role changes",
        tally.requests, tally.logins, tally.logouts, tally.logout_refused_at_once, tally.role_changes
    );
    for (at, [a, b]) in &samples {
        eprintln!("soak: t={at:>3}s VmRSS replica 1: {a:?} KiB, replica 2: {b:?} KiB");
    }
    for process in replicas.iter() {
        assert!(
            !process.output().contains("panicked"),
            "a replica panicked:\n{}",
            process.output()
        );
    }
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    // The mix really ran (sanity bounds, not performance ones).
    assert!(tally.logins >= 5, "only {} logins", tally.logins);
    assert!(tally.logouts >= 5, "only {} logouts", tally.logouts);
    assert!(
        tally.role_changes >= 2,
        "only {} role changes",
        tally.role_changes
    );
}
