//! The browser the UI tests drive: Debian's chromium, headless, over WebDriver (chromedriver)
//! with plain HTTP calls; its waits say, when they time out, what the page fetched and logged.

use crate::harness::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Browser {
    http: reqwest::Client,
    url: String,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: the UI tests need Debian's chromium and chromium-driver (scripts/test installs them)"
            );
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let driver = spawn_cmd("/usr/bin/chromedriver", &[&format!("--port={port}")], &log);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_string();
        Browser {
            http,
            url: format!("{base}/session/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
    }

    /// A WebDriver command; its error (the page reloading under it, say) is the `Err`.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"]["error"].is_string() {
            return Err(r["value"].clone());
        }
        Ok(r["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// Runs a script (its body; `return` gives the value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Polls `script` until it returns something truthy; returns that.
    pub async fn wait(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        let mut last_error = Value::Null;
        loop {
            // A script that fails (the page loading again, as it does when a module did not
            // load) is "not yet".
            let v = self
                .try_call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    json!({"script": script, "args": []}),
                )
                .await
                .unwrap_or_else(|e| {
                    last_error = e;
                    Value::Null
                });
            if std::env::var_os("SLUICE_UI_DEBUG").is_some() {
                eprintln!("{what}: {v}");
            }
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let page = self
                    .js("return document.querySelector('main').innerHTML")
                    .await;
                let page = page.as_str().unwrap_or_default();
                // What the browser fetched and how it ended: a page left at "Loading…" says
                // which module or call never came back.
                let fetched = self
                    .js("return document.readyState + ' ' + location.href + '\\n' + performance.getEntriesByType('resource')
                           .map(e => e.name + ' ' + e.responseStatus + ' ' + Math.round(e.duration) + 'ms').join('\\n')")
                    .await;
                let console = self
                    .call(reqwest::Method::POST, "/se/log", json!({"type": "browser"}))
                    .await;
                panic!(
                    "timed out waiting for {what}; the page: {}\nfetched: {}\nconsole: {console}\nthe script's last error: {last_error}",
                    &page[page.len().saturating_sub(3000)..],
                    fetched.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        // Kept where CI keeps them (`scripts/test` sets it), else beside the build.
        let dir = std::env::var_os("SLUICE_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// A screenshot with `selector`'s element scrolled into sight.
    pub async fn screenshot_of(&self, selector: &str, name: &str) -> PathBuf {
        self.js(&format!(
            "document.querySelector({})?.scrollIntoView({{block: 'center'}})",
            json!(selector)
        ))
        .await;
        self.screenshot(name).await
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

fn spawn_cmd(bin: &str, args: &[&str], log: &std::path::Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    Proc(
        std::process::Command::new(bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}
