//! The web UI in a real browser: Debian's chromium, headless, driven over WebDriver (chromedriver)
//! with plain HTTP calls. Real runs in real containers feed it.

use crate::containers::{image, Cluster};
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
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"]["error"].is_string() {
            panic!("webdriver {path}: {}", r["value"]);
        }
        r["value"].clone()
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
        loop {
            let v = self.js(script).await;
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
                panic!(
                    "timed out waiting for {what}; the page: {}",
                    &page[page.len().saturating_sub(3000)..]
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
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
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

fn pipeline(img: &str, lr: &str) -> String {
    format!(
        r#"
name: ui-live
params:
  lr: {{type: float, default: {lr}}}
steps:
  - name: train
    image: {img}
    outputs:
      params: {{accuracy: {{type: float}}}}
      artifacts: {{metrics: {{type: metrics}}, table: {{type: dataset}}}}
    script: |
      for i in 1 2 3 4 5 6 7 8; do echo "epoch $i lr={{{{params.lr}}}}"; sleep 0.4; done
      printf 'warning: \033[33mslow disk\033[0m\n' >&2
      echo '{{"accuracy": {{{{params.lr}}}}, "loss": [1.0, 0.6, 0.4, 0.3]}}' > {{{{outputs.artifacts.metrics}}}}
      printf 'feature,value\nsepal,5.1\npetal,1.4\n' > {{{{outputs.artifacts.table}}}}
      echo {{{{params.lr}}}} > {{{{outputs.params.accuracy}}}}
  - name: report
    image: {img}
    command: [echo, "accuracy {{{{steps.train.outputs.params.accuracy}}}}"]
"#
    )
}

#[tokio::test]
async fn the_ui_shows_a_run_live_its_logs_while_it_runs_and_previews_artifacts() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let id = submit(&c.client, &pipeline(&img, "0.5")).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/", c.url)).await;
    b.wait(
        "the run in the list",
        &format!("return document.querySelector('tr[data-run=\"{id}\"] a')"),
    )
    .await;
    // Open the run from the list (no page load), and mark the page to show it is never reloaded.
    b.js(&format!(
        "window.__sluiceMark = 42; document.querySelector('tr[data-run=\"{id}\"] a').click();"
    ))
    .await;
    b.wait(
        "the graph",
        "return document.querySelectorAll('svg .node').length === 2",
    )
    .await;
    b.js("document.querySelector('[data-task=train]').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        .await;
    // Log lines appear while the step is still running.
    let seen = b
        .wait(
            "log lines while the step runs",
            "const n = document.querySelectorAll('#log .line').length;
             const s = document.querySelector('[data-task=train]').dataset.state;
             return n >= 2 && s === 'running' ? {n, s} : (window.__seen = (window.__seen || []).concat([[n, s]])) && null",
        )
        .await;
    assert_eq!(seen["s"], "running");
    let running_shot = b.screenshot("run-live.png").await;
    // The nodes turn green without a reload.
    b.wait(
        "both steps to succeed",
        "return [...document.querySelectorAll('svg .node')].every(n => n.dataset.state === 'succeeded')",
    )
    .await;
    assert_eq!(b.js("return window.__sluiceMark").await, json!(42));
    // Nothing in the panel reads as a JavaScript null or undefined.
    let panel = b
        .js("return document.querySelector('#panel').textContent")
        .await;
    let panel = panel.as_str().unwrap();
    assert!(
        !panel.contains("null") && !panel.contains("undefined"),
        "{panel}"
    );
    assert_eq!(
        b.js("return location.pathname").await,
        json!(format!("/runs/{id}/tasks/train"))
    );
    let lines = b
        .js("return [...document.querySelectorAll('#log .line .txt')].map(e => e.textContent)")
        .await;
    let lines: Vec<String> = serde_json::from_value(lines).unwrap();
    assert!(lines.iter().any(|l| l == "epoch 8 lr=0.5"), "{lines:?}");
    // ANSI colours are rendered, not printed.
    assert!(lines.iter().any(|l| l == "warning: slow disk"), "{lines:?}");
    // The CSV artifact previews as a table, the metrics as a table of scalars.
    b.wait(
        "the artifacts",
        "return [...document.querySelectorAll('button')].filter(e => e.textContent === 'Preview').length === 2",
    )
    .await;
    b.js("[...document.querySelectorAll('button')].find(e => e.textContent === 'Preview' && e.closest('tr').textContent.startsWith('table')).click()")
        .await;
    let cells = b
        .wait(
            "the CSV preview",
            "const t = document.querySelector('.preview table.csv'); return t && [...t.querySelectorAll('td')].map(e => e.textContent)",
        )
        .await;
    assert_eq!(cells, json!(["sepal", "5.1", "petal", "1.4"]));
    b.js("[...document.querySelectorAll('button')].find(e => e.textContent === 'Preview' && e.closest('tr').textContent.startsWith('metrics')).click()")
        .await;
    let metrics = b
        .wait(
            "the metrics preview",
            "const t = document.querySelector('.preview table.metrics'); return t && t.textContent",
        )
        .await;
    assert!(
        metrics.as_str().unwrap().contains("accuracy0.5"),
        "{metrics}"
    );
    let done_shot = b.screenshot("run-done.png").await;
    println!(
        "screenshots: {} {}",
        running_shot.display(),
        done_shot.display()
    );
    // A deep link opens the same task directly.
    b.goto(&format!("{}/runs/{id}/tasks/report", c.url)).await;
    let line = b
        .wait(
            "the deep-linked task's log",
            "const l = document.querySelector('#log .line .txt'); return l && l.textContent",
        )
        .await;
    assert_eq!(line, json!("accuracy 0.5"));
    b.quit().await;
}

#[tokio::test]
async fn comparing_two_runs_shows_parameters_and_metrics_side_by_side() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = |lr| pipeline(&img, lr).replace("sleep 0.4", "true");
    let a = submit(&c.client, &yaml("0.25")).await;
    let b_id = submit(&c.client, &yaml("0.75")).await;
    for id in [&a, &b_id] {
        wait_run(&c.client, id, Duration::from_secs(60)).await;
    }
    let b = Browser::start().await;
    b.goto(&format!("{}/runs", c.url)).await;
    b.wait(
        "the runs",
        "return document.querySelectorAll('#runs tbody tr[data-run]').length === 2",
    )
    .await;
    b.js(
        "document.querySelectorAll('#runs tbody input[type=checkbox]').forEach(e => e.click());
          [...document.querySelectorAll('button')].find(e => e.textContent === 'Compare').click();",
    )
    .await;
    let rows = b
        .wait(
            "the comparison",
            "const t = document.querySelector('#compare-metrics tbody');
             return t && t.rows.length > 0 && [...t.rows].map(r => [...r.cells].map(c => c.textContent + (c.classList.contains('changed') ? '*' : '')))",
        )
        .await;
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).unwrap();
    let acc = rows
        .iter()
        .find(|r| r[0] == "train.metrics.accuracy")
        .unwrap_or_else(|| panic!("{rows:?}"));
    // Newest first: the second run is on the left; differing values are highlighted.
    assert_eq!(acc[1..], ["0.75*".to_string(), "0.25*".to_string()]);
    let params = b
        .js("return [...document.querySelectorAll('#compare-params tbody tr')].map(r => r.textContent)")
        .await;
    assert_eq!(params, json!(["lr0.750.25"]));
    b.wait(
        "the loss curves overlaid",
        "return document.querySelectorAll('svg.plot polyline').length === 2",
    )
    .await;
    b.screenshot("compare.png").await;
    b.quit().await;
}

#[tokio::test]
async fn a_run_with_a_loop_over_a_group_draws_each_copy_and_opens_a_copys_step() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = format!(
        r#"
name: ui-groups
steps:
  - name: tune
    forEach: [1, 2]
    steps:
      - name: train
        image: {img}
        command: [echo, "training {{{{item}}}}"]
      - name: evaluate
        image: {img}
        command: [echo, evaluated]
        dependsOn: [train]
"#
    );
    let id = submit(&c.client, &yaml).await;
    wait_run(&c.client, &id, Duration::from_secs(60)).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}", c.url)).await;
    let nodes = b
        .wait(
            "the graph of every copy",
            "const n = [...document.querySelectorAll('svg .node')];
             return n.length === 7 && n.every(g => g.dataset.state === 'succeeded') &&
               n.map(g => g.dataset.task + (g.classList.contains('control') ? '*' : '')).sort()",
        )
        .await;
    // Loops and copies of the group run no container: drawn apart (dashed).
    assert_eq!(
        nodes,
        json!([
            "tune*",
            "tune[0]*",
            "tune[0].evaluate",
            "tune[0].train",
            "tune[1]*",
            "tune[1].evaluate",
            "tune[1].train"
        ])
    );
    b.js("document.querySelector('[data-task=\"tune[1].train\"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        .await;
    b.wait(
        "the copy's step's log",
        "const l = document.getElementById('log'); return l && l.textContent.includes('training 2')",
    )
    .await;
    b.screenshot("run-groups.png").await;
    b.quit().await;
}

/// Measures (prints, never asserts) how long a line a step writes takes to show in the browser:
/// from the worker reading it off the container's stdout to the page adding it.
#[tokio::test]
async fn log_lines_reach_the_browser_while_the_step_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let id = submit(
        &c.client,
        &format!("name: ui-latency\nsteps:\n  - name: talk\n    image: {img}\n    script: |\n      sleep 4\n      i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); usleep 20000; done\n"),
    )
    .await;
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}/tasks/talk", c.url)).await;
    // Lines written before the page was following the log do not count.
    b.wait(
        "the page following the running step",
        "return document.querySelector('#log') && document.getElementById('conn').classList.contains('live')
           && (window.__t0 = Date.now())",
    )
    .await;
    let lats = b
        .wait(
            "200 lines",
            "const ls = [...document.querySelectorAll('#log .line')];
             return ls.length === 200 && ls.map(l => [+l.dataset.arrived, Date.parse(l.title.split(' ')[0])])
               .filter(([a, w]) => w > window.__t0).map(([a, w]) => a - w)",
        )
        .await;
    let mut lats: Vec<f64> = serde_json::from_value(lats).unwrap();
    assert!(
        lats.len() > 100,
        "the step wrote most lines before the page followed it"
    );
    lats.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| lats[((lats.len() - 1) as f64 * q).round() as usize];
    println!(
        "log line -> browser: median {} ms, p99 {} ms, max {} ms over {} lines (target p99 <= 100 ms)",
        p(0.5),
        p(0.99),
        p(1.0),
        lats.len()
    );
    // They came while the step ran, not in one lump at its end.
    assert!(p(1.0) < 3_000.0, "{lats:?}");
    b.quit().await;
}
