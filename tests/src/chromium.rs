//! A real browser for flows whose outcome depends on what browsers do and HTTP clients do not:
//! SameSite cookie rules on cross-site POSTs above all. Headless Chromium (Debian `chromium`)
//! driven over WebDriver by `chromedriver`, each [`Chromium`] with its own profile (its own
//! cookies), its hosts mapped to loopback with `--host-resolver-rules` so that tests can put
//! the gateway and a provider on distinct sites.
//!
//! `scripts/test.sh` installs `chromium` and `chromium-driver` when they are missing.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub struct Chromium {
    driver: Child,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

/// Where Debian puts them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

impl Chromium {
    /// A fresh browser profile; `hosts` resolve to 127.0.0.1.
    pub async fn start(hosts: &[&str]) -> Chromium {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: scripts/test.sh installs chromium and chromium-driver"
            );
        }
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        assert!(
            crate::wait_for_port(port, Duration::from_secs(20)),
            "chromedriver did not listen"
        );
        let profile = tempfile::tempdir().expect("a profile directory");
        let rules = hosts
            .iter()
            .map(|h| format!("MAP {h} 127.0.0.1"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in containers, where the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    // Loopback only: no proxy, no background traffic, test CAs accepted.
                    "--no-proxy-server",
                    "--disable-background-networking",
                    "--ignore-certificate-errors",
                    format!("--host-resolver-rules={rules}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!(
                "http://{}",
                SocketAddr::from(([127, 0, 0, 1], port))
            ))
            .await
            .expect("a WebDriver session");
        Chromium {
            driver,
            client: Some(client),
            _profile: profile,
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.expect("navigation");
    }

    pub async fn url(&self) -> url::Url {
        self.client().current_url().await.expect("a current URL")
    }

    /// The text of the page's body.
    pub async fn text(&self) -> String {
        self.client()
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("its text")
    }

    /// The page source (for assertions on what the text view hides).
    pub async fn source(&self) -> String {
        self.client().source().await.expect("the page source")
    }

    /// Waits until the current URL satisfies `done` (navigations by script are asynchronous).
    pub async fn wait_for_url(&self, done: impl Fn(&url::Url) -> bool) -> url::Url {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the browser stayed at {url}: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Ends the WebDriver session (the browser quits with it).
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.ok();
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // A session not closed: killing chromedriver takes its browser down with it.
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}
