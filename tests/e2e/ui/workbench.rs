//! The UI as a workbench, in a real browser over real runs in real containers: logs of any
//! length, artifacts by their declared type, graphs of any size, runs organised, and the pages
//! that help when something is missing (inputs and lineage: `lineage.rs`).

use super::{Browser, PIXEL_PNG};
use crate::containers::{image, Cluster};
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

pub(super) async fn click(b: &Browser, selector: &str) -> Value {
    let script = format!(
        "const e = document.querySelector({}); if (!e) throw new Error('nothing matches {}'); e.dispatchEvent(new MouseEvent('click', {{bubbles: true}})); return true;",
        json!(selector),
        selector.replace('\'', "")
    );
    b.js(&script).await
}

async fn scale(b: &Browser) -> f64 {
    b.js("return +document.querySelector('svg.dag').dataset.scale")
        .await
        .as_f64()
        .unwrap()
}

/// 30,000 lines a try, two tries: only the rows in sight are in the page; the failing try's
/// stderr line comes after everything it printed; a separator marks where try 2 starts; search
/// finds and highlights every match; the first error is one click away. A step that never ran
/// says so, with no log and no follow box.
#[tokio::test]
async fn a_long_log_is_virtualised_searched_and_split_by_attempt() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let id = submit(
        &c.client,
        &format!(
            r#"
name: ui-logs
steps:
  - name: talk
    image: {img}
    retry: 1
    script: |
      i=0
      while [ $i -lt 30000 ]; do echo "line $i needle-$((i % 997))"; i=$((i+1)); done
      echo "Error: this try failed" >&2
      exit 1
  - name: after
    image: {img}
    command: [echo, never]
    dependsOn: [talk]
"#
        ),
    )
    .await;
    let run = wait_run(&c.client, &id, Duration::from_secs(120)).await;
    assert_eq!(run.summary.state, sluice_sdk::api::RunState::Failed);
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}/tasks/talk", c.url)).await;
    let loaded = b
        .wait(
            "the whole log",
            "const n = document.getElementById('log-lines'); const rows = document.querySelectorAll('#log .line').length;
             return n && n.textContent.replace(/\\D/g, '') === '60002' && {rows}",
        )
        .await;
    assert!(
        loaded["rows"].as_u64().unwrap() < 200,
        "only what is in sight is in the page: {loaded}"
    );
    // A finished step has nothing to follow.
    assert_eq!(
        b.js("return document.getElementById('follow')").await,
        Value::Null
    );
    // Search: every match counted, the current one highlighted.
    b.js("const s = document.getElementById('log-search'); s.value = 'needle-500'; s.dispatchEvent(new Event('input'));")
        .await;
    let found = b
        .wait(
            "the search",
            "const c = document.getElementById('log-count').textContent; const m = document.querySelector('#log .line.current mark');
             return /of/.test(c) && m && {count: c, mark: m.textContent, line: document.querySelector('#log .line.current .ln').textContent}",
        )
        .await;
    // i % 997 == 500 for 30 of each try's 30,000 lines.
    assert_eq!(
        found,
        json!({"count": "1 of 60", "mark": "needle-500", "line": "501"})
    );
    // The error line: the first try's last, after its 30,000 lines, then try 2's separator.
    b.js("const s = document.getElementById('log-search'); s.value = 'this try failed'; s.dispatchEvent(new Event('input'));")
        .await;
    let err = b
        .wait(
            "the first try's error line",
            "const l = document.querySelector('#log .line.current');
             return /of 2/.test(document.getElementById('log-count').textContent) && l
               && l.textContent.includes('this try failed') && {
               line: l.querySelector('.ln').textContent, stderr: l.classList.contains('stderr'),
               next: l.nextElementSibling && l.nextElementSibling.textContent,
               previous: l.previousElementSibling.querySelector('.txt').textContent}",
        )
        .await;
    assert_eq!(
        err,
        json!({"line": "30001", "stderr": true, "next": "── attempt 2 ──", "previous": "line 29999 needle-89"})
    );
    b.screenshot_of("#log", "log-search.png").await;
    // First error: from the top, the first stderr line that reads like an error.
    b.js("document.getElementById('log').scrollTop = 0; [...document.querySelectorAll('button')].find(e => e.textContent === 'First error').click()")
        .await;
    let first = b
        .wait(
            "the first error",
            "const l = document.querySelector('#log .line.current'); return l && l.querySelector('.ln').textContent === '30001' && l.textContent",
        )
        .await;
    assert!(
        first.as_str().unwrap().contains("Error: this try failed"),
        "{first}"
    );
    // The step that never ran: no log, no attempt 0, no follow box.
    click(&b, "[data-task=after]").await;
    let skipped = b
        .wait(
            "the skipped step",
            "const p = document.getElementById('nolog'); return p && {text: p.textContent, panel: document.getElementById('panel').textContent, follow: !!document.getElementById('follow')}",
        )
        .await;
    assert!(
        skipped["text"]
            .as_str()
            .unwrap()
            .starts_with("This step was skipped"),
        "{skipped}"
    );
    assert!(
        !skipped["panel"].as_str().unwrap().contains("attempt"),
        "{skipped}"
    );
    assert_eq!(skipped["follow"], json!(false));
    b.screenshot("log-skipped.png").await;
    b.quit().await;
}

/// Single-file artifacts shown by what their step declared and what they hold: a PNG with no
/// name to go by, Markdown with a table and emphasis, HTML whose scripts run only when the
/// reader lets them (and then in no origin of the UI's), CSV sorted by a column, and metrics: a
/// confusion matrix as a heatmap and an ROC curve as TPR against FPR.
#[tokio::test]
async fn artifacts_render_by_their_declared_type_and_content() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: ui-types
steps:
  - name: make
    image: {img}
    outputs:
      artifacts:
        picture: {{type: image}}
        notes: {{type: markdown}}
        report: {{type: html}}
        scores: {{type: dataset}}
        metrics: {{type: metrics}}
    script: |
      echo {PIXEL_PNG} | base64 -d > {{{{outputs.artifacts.picture}}}}
      printf '# Model card\n\nIt is **good** and *fast*.\n\n| class | f1 |\n| --- | --- |\n| cat | 0.9 |\n| dog | 0.8 |\n' > {{{{outputs.artifacts.notes}}}}
      echo '<p id=x>report</p><script>parent.postMessage("script ran", "*")</script>' > {{{{outputs.artifacts.report}}}}
      printf 'name,score\na,10\nb,9\nc,100\n' > {{{{outputs.artifacts.scores}}}}
      echo '{{"accuracy": 0.85, "confusion_matrix": {{"labels": ["cat", "dog"], "matrix": [[8, 2], [1, 9]]}}, "roc": {{"fpr": [0.5, 0.0, 1.0], "tpr": [0.9, 0.4, 1.0]}}}}' > {{{{outputs.artifacts.metrics}}}}
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
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{id}/tasks/make", c.url)).await;
    b.wait(
        "the artifacts",
        "return document.querySelectorAll('tr[data-artifact] button').length === 5",
    )
    .await;
    let preview = |name: &str| {
        format!("document.querySelector('tr[data-artifact={name}] button').click(); return true;")
    };
    b.js(&preview("picture")).await;
    b.wait("the image", "const i = document.querySelector('.preview[data-view=image] img'); return i && i.complete && i.naturalWidth === 1").await;
    b.js(&preview("notes")).await;
    let md = b
        .wait(
            "the Markdown",
            "const m = document.querySelector('.preview[data-view=markdown] .md'); return m && m.querySelector('table') && {
               strong: m.querySelector('strong').textContent, em: m.querySelector('em').textContent,
               head: [...m.querySelectorAll('th')].map(e => e.textContent), cells: [...m.querySelectorAll('td')].map(e => e.textContent)}",
        )
        .await;
    assert_eq!(
        md,
        json!({"strong": "good", "em": "fast", "head": ["class", "f1"], "cells": ["cat", "0.9", "dog", "0.8"]})
    );
    b.js("window.__messages = []; window.addEventListener('message', (e) => window.__messages.push(e.data));").await;
    b.js(&preview("report")).await;
    let frame = b
        .wait("the report", "const f = document.querySelector('.preview[data-view=html] iframe'); return f && {sandbox: f.getAttribute('sandbox')}")
        .await;
    assert_eq!(frame, json!({"sandbox": ""}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.js("return window.__messages").await,
        json!([]),
        "no script runs until asked"
    );
    b.js("document.querySelector('.preview input.allow-scripts').click()")
        .await;
    let ran = b
        .wait(
            "the report's script",
            "return window.__messages.length > 0 && window.__messages",
        )
        .await;
    assert_eq!(ran, json!(["script ran"]));
    assert_eq!(
        b.js("return document.querySelector('.preview iframe').getAttribute('sandbox')")
            .await,
        json!("allow-scripts"),
        "scripts run in a frame of no origin: never with allow-same-origin"
    );
    b.js(&preview("scores")).await;
    b.wait(
        "the CSV",
        "return document.querySelector('.preview table.csv')",
    )
    .await;
    b.js("document.querySelectorAll('.preview table.csv th')[1].click()")
        .await;
    let sorted = b.js("return [...document.querySelectorAll('.preview table.csv tbody tr')].map(r => r.cells[0].textContent)").await;
    assert_eq!(sorted, json!(["b", "a", "c"]), "numbers sort as numbers");
    b.js("document.querySelectorAll('.preview table.csv th')[1].click()")
        .await;
    let sorted = b.js("return [...document.querySelectorAll('.preview table.csv tbody tr')].map(r => r.cells[0].textContent)").await;
    assert_eq!(sorted, json!(["c", "a", "b"]));
    b.js(&preview("metrics")).await;
    let m = b
        .wait(
            "the metrics",
            "const p = document.querySelector('.preview[data-view=json]'); const hm = p && p.querySelector('table.heatmap'); const roc = p && p.querySelector('.roc');
             return hm && roc && {
               scalars: [...p.querySelectorAll('table.metrics tr')].map(r => r.textContent),
               cells: [...hm.querySelectorAll('tbody td')].map(td => [td.textContent, getComputedStyle(td).backgroundColor]),
               labels: [...hm.querySelectorAll('thead th')].slice(1).map(th => th.textContent),
               auc: roc.dataset.auc, points: roc.querySelector('polyline').getAttribute('points').split(' ').map(p => p.split(',').map(Number)),
               plots: p.querySelectorAll('svg.plot:not(.roc-plot)').length}",
        )
        .await;
    assert_eq!(m["scalars"], json!(["accuracy0.85"]), "{m}");
    assert_eq!(m["labels"], json!(["cat", "dog"]), "{m}");
    let cells: Vec<(String, String)> = serde_json::from_value(m["cells"].clone()).unwrap();
    assert_eq!(
        cells.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["8", "2", "1", "9"]
    );
    // A heatmap: the cells are shaded, the larger share darker.
    assert!(
        cells.iter().all(|c| c.1.starts_with("rgba(36, 87, 197")),
        "{m}"
    );
    assert_ne!(cells[0].1, cells[1].1);
    // TPR against FPR, sorted by FPR, from (0, 0) to (1, 1): x only grows; not two lines
    // against their index.
    let xs: Vec<f64> = m["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{m}");
    assert_eq!(xs.len(), 5);
    // Trapezoids through (0,0) (0,.4) (.5,.9) (1,1) (1,1): 0 + .325 + .475 + 0.
    assert_eq!(m["auc"], json!("0.8000"));
    assert_eq!(
        m["plots"],
        json!(0),
        "fpr and tpr are not plotted as series: {m}"
    );
    b.screenshot_of("#preview", "artifact-metrics.png").await;
    b.quit().await;
}

/// An 8×3 sweep: its loop starts folded (counts by state), the whole graph fits the box with
/// the first step in sight; unfolding draws every copy as a box; zoom and fit work. A stored
/// pipeline's graph marks its loop, condition and exit handler; a click shows a step's spec;
/// its YAML and the difference between two versions are a tab away.
#[tokio::test]
async fn graphs_fit_fold_and_zoom_and_a_pipeline_shows_specs_source_and_diffs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: ui-sweep
steps:
  - name: data
    image: {img}
    command: ["true"]
  - name: tune
    forEach: [1, 2, 3, 4, 5, 6, 7, 8]
    dependsOn: [data]
    steps:
      - {{name: prep, image: "{img}", command: ["true"]}}
      - {{name: train, image: "{img}", command: ["true"], dependsOn: [prep]}}
      - {{name: score, image: "{img}", command: ["true"], dependsOn: [train]}}
  - name: pick
    image: {img}
    command: ["true"]
    dependsOn: [tune]
"#
        ))
        .await;
    assert_eq!(
        run.summary.state,
        sluice_sdk::api::RunState::Succeeded,
        "{:?}",
        run.error
    );
    let b = Browser::start().await;
    b.goto(&format!("{}/runs/{}", c.url, run.summary.id)).await;
    let folded = b
        .wait(
            "the folded loop",
            "const n = document.querySelector('.node.folded[data-task=tune]'); const svg = document.querySelector('svg.dag');
             if (!n || !svg.dataset.scale) return null;
             const box = svg.getBoundingClientRect(), first = document.querySelector('[data-task=data]').getBoundingClientRect();
             return {counts: n.querySelector('.state').textContent, nodes: document.querySelectorAll('svg .node').length,
               inSight: first.left >= box.left && first.right <= box.right && first.top >= box.top && first.bottom <= box.bottom}",
        )
        .await;
    assert_eq!(
        folded,
        json!({"counts": "24 succeeded", "nodes": 3, "inSight": true})
    );
    b.screenshot("graph-folded.png").await;
    click(&b, ".node.folded[data-task=tune]").await;
    let open = b
        .wait(
            "the unfolded loop",
            "const boxes = document.querySelectorAll('svg .box').length, nodes = document.querySelectorAll('svg .node').length;
             const svg = document.querySelector('svg.dag').getBoundingClientRect();
             const all = [...document.querySelectorAll('svg .node')].map(n => n.getBoundingClientRect());
             const fits = all.every(r => r.left >= svg.left - 1 && r.right <= svg.right + 1);
             return boxes === 9 && fits && {nodes, fits, edges: document.querySelectorAll('svg path.edge').length}",
        )
        .await;
    assert_eq!(open["nodes"], json!(26));
    assert_eq!(
        open["fits"],
        json!(true),
        "the unfolded graph fits the box: {open}"
    );
    assert!(open["edges"].as_u64().unwrap() >= 18, "{open}");
    b.screenshot("graph-unfolded.png").await;
    let fit = scale(&b).await;
    assert!(fit <= 1.0);
    b.js("document.querySelector('button[aria-label=\"zoom in\"]').click()")
        .await;
    assert!((scale(&b).await - fit * 1.25).abs() < 0.01);
    b.js("document.querySelector('.graph-tools .fit').click()")
        .await;
    assert!((scale(&b).await - fit).abs() < 0.01);
    click(&b, "[data-group=tune] .box-head").await;
    b.wait(
        "folded again",
        "return document.querySelector('.node.folded[data-task=tune]')",
    )
    .await;

    // A stored pipeline, in two versions.
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/examples/sweep-groups.yaml"
    ))
    .unwrap()
    .replace("127.0.0.1:5000/sluice/busybox:1", &img);
    c.client
        .upload_pipeline(&yaml, Some("sweep.yaml"))
        .await
        .unwrap();
    c.client
        .upload_pipeline(
            &yaml.replace(
                "threshold: {type: int, default: 60}",
                "threshold: {type: int, default: 75}",
            ),
            Some("sweep.yaml"),
        )
        .await
        .unwrap();
    b.goto(&format!("{}/pipelines/sweep-groups", c.url)).await;
    let marks = b
        .wait(
            "the marks",
            "const t = (k) => [...document.querySelectorAll('svg .tag-' + k)].map(e => e.closest('[data-task]').dataset.task);
             const boxes = [...document.querySelectorAll('svg .box')].map(b => [b.dataset.group, b.querySelector('.box-head').textContent]);
             return boxes.length === 2 && {loop: t('loop'), exit: t('exit'), boxes}",
        )
        .await;
    assert_eq!(marks["loop"], json!(["tune.train"]), "{marks}");
    assert_eq!(marks["exit"], json!(["deploy.report"]), "{marks}");
    let boxes = marks["boxes"].to_string();
    assert!(
        boxes.contains("tune")
            && boxes.contains("loop")
            && boxes.contains("deploy")
            && boxes.contains("if"),
        "{marks}"
    );
    click(&b, "[data-task='tune.evaluate']").await;
    let spec = b
        .wait(
            "the step's spec",
            "const s = document.getElementById('step-yaml'); return s && s.textContent",
        )
        .await;
    let spec = spec.as_str().unwrap();
    assert!(spec.starts_with("- name: evaluate\n  image:"), "{spec}");
    assert!(
        spec.contains("echo $(( {{item.depth}} * 10 ))") && !spec.contains("name: pick"),
        "{spec}"
    );
    b.screenshot("pipeline-spec.png").await;
    b.js("document.querySelector('[data-tab=yaml]').click()")
        .await;
    let lines = b
        .wait(
            "the YAML",
            "return document.querySelectorAll('#source .src-line').length",
        )
        .await;
    assert_eq!(lines.as_u64().unwrap() as usize, yaml.split('\n').count());
    b.js("document.querySelector('[data-tab=diff]').click()")
        .await;
    let diff = b
        .wait(
            "the diff",
            "const d = document.getElementById('diff'); return d && {add: [...d.querySelectorAll('.d-add')].map(e => e.textContent), del: [...d.querySelectorAll('.d-del')].map(e => e.textContent)}",
        )
        .await;
    assert_eq!(
        diff,
        json!({"add": ["+   threshold: {type: int, default: 75}"], "del": ["-   threshold: {type: int, default: 60}"]})
    );
    b.screenshot_of("#diff", "pipeline-diff.png").await;
    b.quit().await;
}

/// Runs sorted by a column, parameter and metric columns, progress, filters by label and date,
/// archive, delete, and a clone started with edited parameters from a form that says what is
/// wrong with invalid JSON; a finished run has no Cancel; an unknown address gets a page that
/// helps.
#[tokio::test]
async fn runs_are_sorted_filtered_archived_deleted_and_cloned() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = format!(
        r#"
name: ui-org
params:
  lr: {{type: float, default: 0.1}}
  tags: {{type: list, default: [a]}}
steps:
  - name: fit
    image: {img}
    outputs: {{params: {{score: float}}}}
    command: [sh, -c, "echo {{{{params.lr}}}} > {{{{outputs.params.score}}}}"]
"#
    );
    let mut ids = std::collections::BTreeMap::new();
    for (name, lr, team) in [
        ("org-b", 0.5, Some("vision")),
        ("org-a", 0.2, Some("vision")),
        ("org-c", 0.9, None),
    ] {
        let mut req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.clone()),
            name: Some(name.into()),
            ..Default::default()
        };
        req.params.insert("lr".into(), json!(lr));
        if let Some(t) = team {
            req.labels.insert("team".into(), t.into());
        }
        let id = c.client.create_run(&req).await.unwrap().summary.id;
        wait_run(&c.client, &id, Duration::from_secs(60)).await;
        ids.insert(name, id);
    }
    let b = Browser::start().await;
    let names = "return [...document.querySelectorAll('#runs tbody tr[data-run] td:nth-child(2) a')].map(a => a.textContent)";
    b.goto(&format!("{}/runs", c.url)).await;
    b.wait(
        "the runs",
        "return document.querySelectorAll('#runs tbody tr[data-run]').length === 3",
    )
    .await;
    let row = b
        .js("const r = document.querySelector('#runs tbody tr[data-run]');
             return {head: [...document.querySelectorAll('#runs thead th')].map(th => th.textContent.replace(/[▲▼]/g, '').trim()),
               progress: r.querySelector('.progress').textContent, score: r.querySelector('[data-col=\"metrics:fit.score\"]').textContent,
               lr: r.querySelector('[data-col=\"params:lr\"]').textContent, started: r.querySelector('time').textContent}")
        .await;
    assert_eq!(
        row["head"],
        json!([
            "",
            "Name",
            "Pipeline",
            "State",
            "Progress",
            "Started",
            "Duration",
            "fit.score",
            "lr",
            "tags"
        ]),
        "{row}"
    );
    // Newest first: org-c.
    assert_eq!(row["progress"], json!("1 of 1 steps"));
    assert_eq!(
        (row["score"].clone(), row["lr"].clone()),
        (json!("0.9"), json!("0.9"))
    );
    assert!(
        ["just now", "1 min ago"].contains(&row["started"].as_str().unwrap()),
        "{row}"
    );
    click(&b, "th[data-sort=name]").await;
    b.wait(
        "sorted by name",
        &format!("const n = (() => {{ {names} }})(); return n.join() === 'org-a,org-b,org-c' && n"),
    )
    .await;
    click(&b, "th[data-sort=name]").await;
    b.wait(
        "sorted by name, descending",
        &format!("const n = (() => {{ {names} }})(); return n.join() === 'org-c,org-b,org-a' && n"),
    )
    .await;
    assert_eq!(
        b.js("return location.search").await,
        json!("?sort=name&order=desc")
    );
    // The metric column sorts the page.
    click(&b, "th.extra.metrics").await;
    b.wait(
        "sorted by score",
        &format!("const n = (() => {{ {names} }})(); return n.join() === 'org-c,org-b,org-a'"),
    )
    .await;
    b.screenshot("runs-columns.png").await;
    b.js("const l = document.getElementById('f-label'); l.value = 'team=vision'; l.dispatchEvent(new Event('input'));").await;
    b.wait(
        "the label filter",
        &format!(
            "const n = (() => {{ {names} }})(); return n.length === 2 && !n.includes('org-c')"
        ),
    )
    .await;
    b.js("const l = document.getElementById('f-label'); l.value = ''; l.dispatchEvent(new Event('input'));
          const f = document.getElementById('f-from'); f.value = new Date(Date.now() + 2 * 86400000).toISOString().slice(0, 10); f.dispatchEvent(new Event('change'));")
        .await;
    b.wait("the date filter", "const e = document.querySelector('#runs .empty-list'); return e && e.textContent === 'No runs match these filters.'").await;
    // Archive from the run's page; a finished run has no Cancel, and its actions are buttons
    // beside the title, not in it.
    b.goto(&format!("{}/runs/{}", c.url, ids["org-a"])).await;
    let page = b
        .wait("the run page", "return document.getElementById('archive') && {cancel: !!document.getElementById('cancel'), inTitle: document.querySelectorAll('h1 button').length, name: document.querySelector('h1 .run-name').innerText}")
        .await;
    assert_eq!(
        page,
        json!({"cancel": false, "inTitle": 0, "name": "org-a"})
    );
    b.js("document.getElementById('archive').click()").await;
    b.wait(
        "archived",
        "return document.querySelector('h1 .badge.archived')",
    )
    .await;
    b.goto(&format!("{}/runs", c.url)).await;
    b.wait(
        "without the archived run",
        &format!(
            "const n = (() => {{ {names} }})(); return n.length === 2 && !n.includes('org-a')"
        ),
    )
    .await;
    b.js("const a = document.getElementById('f-archived'); a.value = 'true'; a.dispatchEvent(new Event('change'));").await;
    b.wait(
        "the archived runs",
        &format!("const n = (() => {{ {names} }})(); return n.join() === 'org-a'"),
    )
    .await;
    // Delete.
    b.goto(&format!("{}/runs/{}", c.url, ids["org-c"])).await;
    b.wait("the run page", "return document.getElementById('delete')")
        .await;
    b.js("window.confirm = () => true; document.getElementById('delete').click()")
        .await;
    b.wait("back at the list", "return location.pathname === '/runs'")
        .await;
    let gone = c
        .client
        .get_run(&ids["org-c"])
        .await
        .unwrap_err()
        .to_string();
    assert!(gone.contains("no run"), "{gone}");
    // Clone with edited parameters; invalid JSON is named.
    b.goto(&format!("{}/runs/{}", c.url, ids["org-b"])).await;
    b.wait("the run page", "return document.getElementById('clone')")
        .await;
    b.js("document.getElementById('clone').click()").await;
    let form = b
        .wait("the clone's form", "const f = document.getElementById('p-lr'); return f && {lr: f.value, tags: document.getElementById('p-tags').value, name: document.getElementById('run-name').value, labels: document.getElementById('run-labels').value}")
        .await;
    assert_eq!(
        form,
        json!({"lr": "0.5", "tags": "[\"a\"]", "name": "org-b-clone", "labels": "team=vision"})
    );
    b.js("document.getElementById('p-tags').value = '[oops'; document.querySelector('#start-form button[type=submit]').click()").await;
    let err = b
        .wait(
            "the form's error",
            "const e = document.getElementById('form-error'); return e && e.textContent",
        )
        .await;
    assert!(
        err.as_str()
            .unwrap()
            .starts_with("parameter tags is not valid JSON"),
        "{err}"
    );
    b.screenshot_of("#form-error", "clone-error.png").await;
    b.js("document.getElementById('p-tags').value = '[\"x\", \"y\"]'; document.getElementById('p-lr').value = '0.75';
          document.getElementById('run-labels').value = 'team=nlp'; document.getElementById('run-cache').checked = false;
          document.querySelector('#start-form button[type=submit]').click()")
        .await;
    let new = b
        .wait("the clone", "const m = location.pathname.match(/^\\/runs\\/([^/]+)$/); return m && m[1] !== 'new' && m[1]")
        .await;
    let clone = wait_run(&c.client, new.as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(clone.summary.name, "org-b-clone");
    assert_eq!(clone.summary.params["lr"], json!(0.75));
    assert_eq!(clone.summary.params["tags"], json!(["x", "y"]));
    assert_eq!(clone.summary.labels["team"], "nlp");
    assert_eq!(clone.tasks[0].outputs["score"], json!(0.75));
    // Pages for what is not there.
    b.goto(&format!("{}/nowhere", c.url)).await;
    let nf = b.wait("the 404 page", "const n = document.querySelector('.notfound'); return n && [...n.querySelectorAll('a')].map(a => a.getAttribute('href'))").await;
    assert_eq!(nf, json!(["/runs", "/pipelines", "/api/v1/openapi.json"]));
    b.goto(&format!("{}/runs/{}", c.url, ids["org-c"])).await;
    let nf = b
        .wait(
            "the deleted run's page",
            "const n = document.querySelector('.notfound'); return n && n.textContent",
        )
        .await;
    assert!(nf.as_str().unwrap().contains("There is no run"), "{nf}");
    b.screenshot("not-found.png").await;
    b.quit().await;
}
