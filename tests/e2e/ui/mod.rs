//! The web UI in a real browser: Debian's chromium, headless, driven over WebDriver (chromedriver)
//! with plain HTTP calls. Real runs in real containers feed it.

mod browser;
mod lineage;
mod schedules;
mod workbench;

pub use browser::Browser;

use crate::containers::{image, Cluster};
use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

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
    // The page is open before the run starts (the list shows it live): a browser slow to start
    // on a busy machine must not miss a step that runs for three seconds.
    let b = Browser::start().await;
    b.goto(&format!("{}/", c.url)).await;
    b.wait(
        "the run list, live",
        "return document.querySelector('#conn.live') && document.querySelector('#runs tbody tr')",
    )
    .await;
    let id = submit(&c.client, &pipeline(&img, "0.5")).await;
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
    // Both tables' columns line up, and run names are shown as they were given.
    let layout = b
        .js("const cols = (id) => [...document.querySelectorAll(`#${id} thead th`)].map(th => Math.round(th.getBoundingClientRect().left));
             const th = document.querySelector('#compare-params thead th.run-col');
             return {params: cols('compare-params'), metrics: cols('compare-metrics'), transform: getComputedStyle(th).textTransform, name: th.querySelector('a').innerText}")
        .await;
    assert_eq!(layout["params"], layout["metrics"], "{layout}");
    assert_eq!(layout["transform"], json!("none"), "{layout}");
    assert!(
        layout["name"].as_str().unwrap().starts_with("ui-live-"),
        "{layout}"
    );
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
    let drawn = b
        .wait(
            "the graph of every copy",
            "const n = [...document.querySelectorAll('svg .node')];
             const g = [...document.querySelectorAll('svg .box')].map(b => b.dataset.group).sort();
             return n.length === 4 && n.every(g => g.dataset.state === 'succeeded') &&
               {steps: n.map(g => g.dataset.task).sort(), boxes: g}",
        )
        .await;
    // The loop and its copies of the group run no container: drawn as boxes around their steps.
    assert_eq!(
        drawn,
        json!({
            "steps": ["tune[0].evaluate", "tune[0].train", "tune[1].evaluate", "tune[1].train"],
            "boxes": ["tune", "tune[0]", "tune[1]"],
        })
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

/// A one-pixel PNG, base64.
pub(super) const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==";

/// Every kind of preview the README names, in a real browser: JSON (with its numbers as a
/// metrics table and its number arrays as a plot), CSV as a table, text, an image, Markdown and
/// HTML in a sandboxed frame (which the server also sends with `Content-Security-Policy: sandbox`).
#[tokio::test]
async fn every_kind_of_artifact_previews_as_the_readme_says() {
    previews(&Cluster::start(&[]).await, "previews.png").await;
}

/// The same previews with the artifacts kept in S3 (a throwaway Garage): the server lists the
/// directory from its manifest and streams each file from the store.
#[tokio::test]
async fn every_kind_of_artifact_previews_from_the_object_store() {
    let s3 = sluice_server::throwaway_s3::ThrowawayS3::start([127, 0, 0, 1].into())
        .expect("Garage (scripts/test installs it)");
    let c = Cluster::start_with_store(&s3).await;
    let run = previews(&c, "previews-s3.png").await;
    let made = &run.tasks[0].artifacts;
    assert!(
        made.iter()
            .all(|a| a.uri.starts_with("s3://sluice/cluster/")),
        "{made:?}"
    );
}

async fn previews(c: &Cluster, screenshot: &str) -> sluice_sdk::api::RunDetail {
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: previews
steps:
  - name: make
    image: {img}
    outputs: {{artifacts: {{report: {{}}, picture: {{}}}}}}
    script: |
      d={{{{outputs.artifacts.report}}}}
      mkdir -p $d
      echo '{{"accuracy": 0.93, "loss": [0.9, 0.5, 0.3]}}' > $d/metrics.json
      printf 'name,score\na,1\nb,2\n' > $d/table.csv
      echo 'just words' > $d/notes.txt
      printf '# Results\n\n- first\n- second\n' > $d/readme.md
      echo '<!doctype html><h1 id=x>report</h1><script>parent.document.title="escaped"</script>' > $d/page.html
      echo {PIXEL_PNG} | base64 -d > $d/chart.png
      echo {PIXEL_PNG} | base64 -d > {{{{outputs.artifacts.picture}}}}
"#
        ))
        .await;
    assert_eq!(
        run.summary.state,
        sluice_sdk::api::RunState::Succeeded,
        "{:?}",
        run.tasks
    );
    let id = &run.summary.id;
    // The server sends HTML with a sandbox of its own.
    let page = reqwest::get(format!(
        "{}/api/v1/runs/{id}/tasks/make/artifacts/report?path=page.html",
        c.url
    ))
    .await
    .unwrap();
    assert_eq!(page.headers()["content-security-policy"], "sandbox");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");

    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}/tasks/make", c.url)).await;
    let open = |file: &'static str| {
        format!(
            "const btn = [...document.querySelectorAll('button')].find(e => e.textContent === 'Preview' && e.closest('tr').textContent.startsWith('report'));
             if (!btn) return null;
             btn.click();
             window.__want = '{file}';
             return true;"
        )
    };
    let click_file = "const a = [...document.querySelectorAll('.preview table.files a')].find(a => a.textContent === window.__want);
                      if (!a) return null; a.click(); return true;";
    let mut shown = serde_json::Map::new();
    for (file, probe) in [
        ("metrics.json", "const p = document.querySelector('.preview'); if (!p) return null; const t = p.querySelector('table.metrics'); const svg = p.querySelector('svg.plot polyline'); const pre = p.querySelector('pre');
                          return t && svg && pre && {table: t.textContent, points: svg.getAttribute('points').split(' ').length, json: pre.textContent.includes('accuracy')}"),
        ("table.csv", "const t = document.querySelector('.preview table.csv'); return t && [...t.querySelectorAll('td')].map(e => e.textContent)"),
        ("notes.txt", "const p = document.querySelector('.preview pre'); return p && p.textContent"),
        ("readme.md", "const m = document.querySelector('.preview .md'); return m && m.querySelector('h3') && {heading: m.querySelector('h3').textContent, items: [...m.querySelectorAll('li')].map(l => l.textContent)}"),
        ("page.html", "const f = document.querySelector('.preview iframe'); return f && {sandbox: f.getAttribute('sandbox'), src: f.getAttribute('src')}"),
        ("chart.png", "const i = document.querySelector('.preview img'); return i && i.complete && i.naturalWidth > 0 && {w: i.naturalWidth, h: i.naturalHeight}"),
    ] {
        b.wait("the report's listing", &open(file)).await;
        b.wait(&format!("the link to {file}"), click_file).await;
        shown.insert(file.into(), b.wait(&format!("the preview of {file}"), probe).await);
    }
    assert!(
        shown["metrics.json"]["table"]
            .as_str()
            .unwrap()
            .contains("accuracy0.93"),
        "{shown:?}"
    );
    assert_eq!(shown["metrics.json"]["points"], json!(3));
    assert_eq!(shown["metrics.json"]["json"], json!(true));
    assert_eq!(shown["table.csv"], json!(["a", "1", "b", "2"]));
    assert_eq!(shown["notes.txt"], json!("just words\n"));
    assert_eq!(
        shown["readme.md"],
        json!({"heading": "Results", "items": ["first", "second"]})
    );
    assert_eq!(shown["page.html"]["sandbox"], json!(""));
    assert_eq!(shown["chart.png"], json!({"w": 1, "h": 1}));
    // The HTML's script ran in no origin of the UI's.
    assert_ne!(b.js("return document.title").await, json!("escaped"));
    // A single-file image, known by its first bytes, previews as an image too.
    b.js("[...document.querySelectorAll('button')].find(e => e.textContent === 'Preview' && e.closest('tr').textContent.startsWith('picture')).click()")
        .await;
    b.wait(
        "the single-file image",
        "const i = document.querySelector('.preview img'); return i && i.complete && i.naturalWidth === 1",
    )
    .await;
    b.screenshot(screenshot).await;
    b.quit().await;
    run
}

/// A line reaches the page while the step that wrote it runs: the step waits (on a file the
/// test makes) until the page has shown its first line, and only then writes the next and ends.
/// How long lines take is measured by `sluice bench containers`, not asserted here.
#[tokio::test]
async fn log_lines_reach_the_browser_while_the_step_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let shared = tempfile::tempdir().unwrap();
    let id = submit(
        &c.client,
        &format!(
            "name: ui-live-log\nsteps:\n  - name: talk\n    image: {img}\n    volumes: [{{hostPath: {}, path: /shared}}]\n    script: |\n      echo first line\n      while [ ! -e /shared/seen ]; do usleep 20000; done\n      echo second line\n",
            shared.path().display()
        ),
    )
    .await;
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}/tasks/talk", c.url)).await;
    b.wait(
        "the first line in the page",
        "const l = document.getElementById('log'); return l && l.textContent.includes('first line')",
    )
    .await;
    let run = c.client.get_run(&id).await.unwrap();
    assert_eq!(
        run.tasks[0].state,
        sluice_sdk::api::TaskState::Running,
        "the line showed while its step still ran"
    );
    std::fs::write(shared.path().join("seen"), "").unwrap();
    b.wait(
        "the second line in the page",
        "const l = document.getElementById('log'); return l && l.textContent.includes('second line')",
    )
    .await;
    let done = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(done.summary.state, sluice_sdk::api::RunState::Succeeded);
    b.quit().await;
}

#[tokio::test]
async fn the_ui_logs_in_with_a_token_and_keeps_it_where_scripts_cannot_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let admin = "ui-admin-token";
    let mut server = spawn(
        &[
            "server",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--token",
            admin,
        ],
        &dir.path().join("server.log"),
    );
    let c = sluice_sdk::client::Client::new(&url, Some(admin.into()));
    let start = Instant::now();
    while c.health().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "no server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = c
        .create_token(&sluice_sdk::api::CreateToken {
            name: "viewer".into(),
            role: "read".into(),
            pipelines: None,
        })
        .await
        .unwrap()
        .token;
    let b = Browser::start().await;
    b.goto(&format!("{url}/runs")).await;
    b.wait(
        "the login form",
        "return document.querySelector('#login input')",
    )
    .await;
    let login = |token: &str| {
        format!(
            "document.querySelector('#login input').value = {}; document.querySelector('#login').requestSubmit();",
            json!(token)
        )
    };
    b.js(&login("not-a-token")).await;
    let said = b
        .wait(
            "the refusal",
            "const t = document.querySelector('#login .error').textContent; return t || null",
        )
        .await;
    assert!(
        said.as_str().unwrap().contains("unknown or revoked"),
        "{said}"
    );
    b.js(&login(&read)).await;
    // The run list, and its live stream, carried by the cookie alone.
    b.wait(
        "the run list, live",
        "return document.querySelector('#runs') && document.querySelector('#conn.live')",
    )
    .await;
    b.goto(&format!("{url}/runs")).await;
    let who = b
        .wait(
            "who is logged in",
            "const l = document.querySelector('#logout'); return l && l.textContent",
        )
        .await;
    assert!(who.as_str().unwrap().contains("viewer (read)"), "{who}");
    // Scripts on the page cannot read the token.
    assert_eq!(b.js("return document.cookie").await, json!(""));
    b.js("document.querySelector('#logout').click()").await;
    b.wait(
        "the login form again",
        "return document.querySelector('#login input')",
    )
    .await;
    b.quit().await;
    server.kill9();
}

/// A Kubeflow pipeline in the browser: its sub-DAGs drawn as frames around their steps, a
/// display name on its node, and Kubeflow's artifact types as Kubeflow shows them (Metrics as
/// scalars, ClassificationMetrics as a confusion matrix and a ROC curve, Markdown rendered, HTML
/// in a sandboxed frame). Uses the compiled kfp corpus (`scripts/test` compiles it).
#[tokio::test]
async fn kubeflow_artifacts_render_by_type_and_sub_dags_are_drawn_as_groups() {
    let corpus = std::path::PathBuf::from(
        std::env::var("SLUICE_KFP_CORPUS")
            .unwrap_or_else(|_| "/var/cache/sluice/kfp-corpus".into()),
    );
    let read = |n: &str| {
        std::fs::read_to_string(corpus.join(n)).expect("the compiled kfp corpus (scripts/test)")
    };
    let mirror = format!("docker.io=http://{}", crate::containers::registry());
    let c = Cluster::start(&["--registry-mirror", &mirror]).await;
    let metrics = submit(&c.client, &read("c19_metrics.yaml")).await;
    let branches = submit(&c.client, &read("c05_if_elif_else.yaml")).await;
    let named = submit(&c.client, &read("c17_env_resources.yaml")).await;
    for id in [&metrics, &branches, &named] {
        let r = wait_run(&c.client, id, Duration::from_secs(120)).await;
        assert_eq!(
            r.summary.state,
            sluice_sdk::api::RunState::Succeeded,
            "{:?}",
            r.error
        );
    }
    // A Kubeflow Metrics artifact's scalars are the run's metrics (the run list's columns).
    let m = c.client.get_run(&metrics).await.unwrap().summary.metrics;
    assert_eq!(
        (m["evaluate.accuracy"].clone(), m["evaluate.loss"].clone()),
        (json!(0.9), json!(0.25)),
        "{m:?}"
    );
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{metrics}/tasks/evaluate", c.url))
        .await;
    let seen = b
        .wait(
            "Kubeflow's artifact views",
            "const v = (k) => document.querySelector(`.kfp[data-kind='${k}']`);
             const m = v('system.Metrics'), cm = v('system.ClassificationMetrics'), md = v('system.Markdown'), html = v('system.HTML');
             if (!m || !cm || !md || !html) return false;
             return {
               metrics: [...m.querySelectorAll('tr')].map(r => r.textContent),
               matrix: [...cm.querySelectorAll('table.confusion tbody td')].map(td => td.textContent),
               labels: [...cm.querySelectorAll('table.confusion thead th')].map(th => th.textContent),
               roc: cm.querySelector('.roc svg polyline')?.getAttribute('points')?.split(' ').length,
               auc: cm.querySelector('.roc')?.dataset.auc,
               heading: md.querySelector('.md h3')?.textContent,
               bold: md.textContent.includes('accuracy'),
               frame: html.querySelector('iframe').getAttribute('sandbox'),
               html: html.querySelector('iframe').getAttribute('srcdoc'),
             };",
        )
        .await;
    assert_eq!(
        seen["metrics"],
        json!(["accuracy0.9", "loss0.25"]),
        "{seen}"
    );
    assert_eq!(seen["matrix"], json!(["8", "2", "1", "9"]), "{seen}");
    assert_eq!(
        seen["labels"],
        json!(["true \\ predicted", "cat", "dog"]),
        "{seen}"
    );
    // TPR against FPR: the three points logged, between the corners (0, 0) and (1, 1).
    assert_eq!(seen["roc"], json!(5), "{seen}");
    assert!(seen["auc"].as_str().is_some(), "{seen}");
    assert_eq!(seen["heading"], json!("Report"), "{seen}");
    assert_eq!(
        seen["frame"],
        json!(""),
        "no script may run in a step's HTML: {seen}"
    );
    assert_eq!(seen["html"], json!("<h1>Report</h1>"), "{seen}");
    b.screenshot("kfp-visuals.png").await;

    b.goto(&format!("{}/runs/{branches}", c.url)).await;
    let groups = b
        .wait(
            "the sub-DAGs as boxes",
            "const g = [...document.querySelectorAll('svg .box')].map(g => g.dataset.group).sort();
             return g.length === 4 && g",
        )
        .await;
    assert_eq!(
        groups,
        json!([
            "condition-branches-1",
            "condition-branches-1.condition-2",
            "condition-branches-1.condition-3",
            "condition-branches-1.condition-4"
        ])
    );
    b.screenshot("kfp-groups.png").await;

    b.goto(&format!("{}/runs/{named}", c.url)).await;
    let label = b
        .wait(
            "the display name on the node",
            "const n = document.querySelector('[data-task=\"show\"] text'); return n && n.textContent",
        )
        .await;
    assert_eq!(label, json!("Show the variable"));

    // A stored Kubeflow pipeline: its page draws it and its form starts a run with the values
    // given, typed as the IR declares its parameters.
    c.client
        .upload_pipeline(&read("c20_params_given.yaml"), Some("p.yaml"))
        .await
        .unwrap();
    b.goto(&format!("{}/pipelines/params-given", c.url)).await;
    b.wait(
        "the form of the Kubeflow pipeline",
        "return ['p-lr', 'p-epochs', 'p-tag'].every(id => document.getElementById(id)) &&
           document.querySelector('[data-task=\"describe\"]') !== null",
    )
    .await;
    b.js("document.getElementById('p-epochs').value = '7';
          document.getElementById('p-tag').value = 'from-the-form';
          document.querySelector('form button[type=submit]').click()")
        .await;
    let run = b
        .wait(
            "the run started from the form",
            "const m = location.pathname.match(/^\\/runs\\/([^/]+)$/); return m && m[1]",
        )
        .await;
    let done = wait_run(&c.client, run.as_str().unwrap(), Duration::from_secs(120)).await;
    let describe = done.tasks.iter().find(|t| t.name == "describe").unwrap();
    assert_eq!(
        describe.outputs["Output"],
        json!("from-the-form: 7 epochs at 0.1")
    );
    b.quit().await;
}
