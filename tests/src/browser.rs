//! A real headless Chromium for the page tests, driven over WebDriver: `chromedriver` (Debian's
//! `chromium-driver`, installed by `just setup-browser`) on a free port, and `fantoccini` as
//! the client. A missing browser or driver fails the test (it never skips).
//!
//! Paths: `CHROMEDRIVER` (default `/usr/bin/chromedriver`) and `CHROMIUM` (default
//! `/usr/bin/chromium`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Map};

use crate::free_port;

/// Chromium flags that work headless as root on a machine without outside network: without the
/// background-networking ones Chromium stalls trying to reach Google's services.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1000",
];

fn path_from(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// One chromedriver process with one browser session; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        let chromedriver = path_from("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = path_from("CHROMIUM", "/usr/bin/chromium");
        for (what, path) in [("chromedriver", &chromedriver), ("chromium", &chromium)] {
            assert!(path.is_file(), "{what} not found at {}: run `just setup-browser`", path.display());
        }
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let profile = tempfile::Builder::new().prefix("toystore-chromium-").tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));

        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session from chromedriver on {url}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self { client, driver, _profile: profile }
    }

    /// The text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// An attribute of the first element matching `css`, if both exist.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.attr(name).await.ok().flatten()
    }

    /// Wait until the text of `css` satisfies `check` and return it; panic with `what` (and
    /// the last text seen) after `timeout`.
    pub async fn wait_text(&self, what: &str, css: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css).await;
            if let Some(t) = text.as_deref().filter(|t| check(t)) {
                return t.to_string();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what} ({css}); last text: {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the first element matching `css`. A page that redraws itself (the operations page
    /// rebuilds its tables every second) can replace the element between finding and clicking
    /// it; then it is found again, a few times.
    pub async fn click(&self, css: &str) {
        for attempt in 1.. {
            let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
            match element.click().await {
                Ok(_) => return,
                Err(e) if e.is_stale_element_reference() && attempt < 5 => {}
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Replace the value of the input matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        element.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        element.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Take a PNG screenshot of the page (checked to be one) and, when `TOYSTORE_SCREENSHOTS` names
    /// a directory, save it there as `name`. Tests write only to temporary directories, so the
    /// README's tracked images are refreshed by `just screenshots`, which sets it to `docs/`.
    pub async fn screenshot(&self, name: &str) {
        // From the top of the page, whatever an earlier click scrolled to.
        let _ = self.client.execute("window.scrollTo(0, 0)", Vec::new()).await;
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG ({} bytes)", png.len());
        let Some(dir) = std::env::var_os("TOYSTORE_SCREENSHOTS").map(std::path::PathBuf::from) else { return };
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// End the session (Chromium exits) and stop the driver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
