//! What CI systems read of a run: a Markdown summary (GitHub's step summary), JUnit XML (GitLab,
//! Jenkins), and quality gates against a baseline run (`sluice runs check`, `submit --require`).

use super::gates::{self, Baseline, Checked, Values};
use sluice_sdk::api::{RunDetail, RunState, Stream, TaskState};
use sluice_sdk::client::Client;
use std::fmt::Write;

/// Lines of a failed step's log kept in its JUnit failure.
const LOG_TAIL: usize = 50;
/// Lines read of a log to find its tail, at most.
const LOG_READ: u64 = 200_000;

/// A run's numbers: its metrics (`STEP.NAME`) and its numeric outputs.
pub fn values(d: &RunDetail) -> Values {
    let mut v = Values::new();
    for (k, x) in d.summary.metrics.iter().chain(&d.outputs) {
        let n = x
            .as_f64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()));
        if let Some(n) = n.filter(|n| n.is_finite()) {
            v.insert(k.clone(), n);
        }
    }
    v
}

/// The baseline run `sel` names, for `run`: never `run` itself. `None` when none matches.
pub async fn find_baseline(
    client: &Client,
    sel: &Baseline,
    run: &RunDetail,
) -> anyhow::Result<Option<RunDetail>> {
    let (state, pipeline, experiment, labels) = match sel {
        Baseline::Run(id) => return Ok(Some(client.get_run(id).await?)),
        Baseline::Latest {
            state,
            pipeline,
            experiment,
            labels,
        } => (state, pipeline, experiment, labels),
    };
    let mut q = vec![
        ("page_size", "200".to_string()),
        ("archived", "all".to_string()),
    ];
    if let Some(s) = state {
        q.push(("state", s.clone()));
    }
    match pipeline {
        Some(Some(p)) => q.push(("pipeline", p.clone())),
        Some(None) => q.push(("pipeline", run.summary.pipeline.clone())),
        None => {}
    }
    if let Some(e) = experiment {
        q.push(("experiment", e.clone()));
    }
    if let Some((k, v)) = labels.first() {
        q.push(("label", format!("{k}={v}")));
    }
    // Newest first, a few pages at most: the first that holds every label and is not the run.
    for _ in 0..10 {
        let page = client.list_runs_where(&q).await?;
        if let Some(r) = page.runs.iter().find(|r| {
            r.id != run.summary.id
                && r.state.is_terminal()
                && labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
        }) {
            return Ok(Some(client.get_run(&r.id).await?));
        }
        match page.next_page_token {
            Some(t) => {
                q.retain(|(k, _)| *k != "page_token");
                q.push(("page_token", t));
            }
            None => break,
        }
    }
    Ok(None)
}

fn num(v: &Result<f64, String>) -> String {
    match v {
        Ok(n) => format!("{}", (n * 1e6).round() / 1e6),
        Err(_) => "—".into(),
    }
}

/// The gates' table, side by side: each gate, its two sides, and whether it holds.
pub fn gates_table(checked: &[Checked], baseline: Option<&RunDetail>) -> String {
    let mut s = String::new();
    let base = baseline.map_or("none".to_string(), |b| {
        format!("{} ({})", b.summary.name, b.summary.id)
    });
    let _ = writeln!(s, "baseline: {base}");
    let width = checked
        .iter()
        .map(|c| c.gate.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "{:<width$}  {:>12}  {:<2}  {:>12}  RESULT",
        "GATE", "RUN SIDE", "", "NEEDED"
    );
    for c in checked {
        let _ = writeln!(
            s,
            "{:<width$}  {:>12}  {:<2}  {:>12}  {}",
            c.gate,
            num(&c.left),
            c.op,
            num(&c.right),
            if c.holds { "ok" } else { "FAILED" }
        );
        for e in [&c.left, &c.right]
            .into_iter()
            .filter_map(|x| x.as_ref().err())
        {
            let _ = writeln!(s, "    {e}");
        }
    }
    s
}

/// Checks `gates` for `run` against the baseline `sel` names; prints the table to stderr.
/// Returns whether every gate holds, and what was checked (for the summaries).
pub async fn run_gates(
    client: &Client,
    run: &RunDetail,
    gates: &[gates::Gate],
    sel: Option<&Baseline>,
    if_no_baseline: NoBaseline,
) -> anyhow::Result<(bool, Vec<Checked>)> {
    let base = match sel {
        Some(sel) => find_baseline(client, sel, run).await?,
        None => None,
    };
    if base.is_none() && gates.iter().any(gates::needs_baseline) {
        eprintln!(
            "no baseline run matches: {}",
            sel.map_or("(none given)".to_string(), |s| format!("{s:?}"))
        );
        if if_no_baseline == NoBaseline::Pass {
            eprintln!("gates that need one pass (--if-no-baseline pass)");
            let only: Vec<_> = gates
                .iter()
                .filter(|g| !gates::needs_baseline(g))
                .cloned()
                .collect();
            let checked: Vec<Checked> = only
                .iter()
                .map(|g| gates::check(g, &values(run), None))
                .collect();
            eprint!("{}", gates_table(&checked, None));
            return Ok((checked.iter().all(|c| c.holds), checked));
        }
    }
    let mine = values(run);
    let theirs = base.as_ref().map(values);
    let checked: Vec<Checked> = gates
        .iter()
        .map(|g| gates::check(g, &mine, theirs.as_ref()))
        .collect();
    eprint!("{}", gates_table(&checked, base.as_ref()));
    Ok((checked.iter().all(|c| c.holds), checked))
}

/// What a gate that needs a baseline does when none matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum NoBaseline {
    /// It fails (the default: nothing was compared).
    #[default]
    Fail,
    /// It is left out (a first run on a branch).
    Pass,
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("—".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// A run as Markdown, for GitHub's step summary.
pub fn markdown(d: &RunDetail, ui: &str, checked: &[Checked]) -> String {
    let r = &d.summary;
    let icon = match r.state {
        RunState::Succeeded => "✅",
        RunState::Failed => "❌",
        _ => "⚠️",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {icon} sluice run `{}` {} in {}\n",
        md_cell(&r.name),
        r.state,
        secs(r.duration_ms)
    );
    let mut facts = vec![format!("[open in sluice]({ui}/runs/{})", r.id)];
    facts.push(format!(
        "pipeline `{}`{}",
        md_cell(&r.pipeline),
        r.pipeline_version
            .map(|v| format!(" v{v}"))
            .unwrap_or_default()
    ));
    for (k, v) in &r.labels {
        facts.push(format!("`{}={}`", md_cell(k), md_cell(v)));
    }
    let _ = writeln!(s, "{}\n", facts.join(" · "));
    if let Some(e) = &d.error {
        let _ = writeln!(s, "> {}\n", md_cell(e));
    }
    let _ = writeln!(
        s,
        "| step | state | duration | outputs |\n|---|---|---|---|"
    );
    for t in d.tasks.iter().filter(|t| t.shape.kind == "step") {
        let outs: Vec<String> = t
            .outputs
            .iter()
            .map(|(k, v)| format!("{k}={}", sluice_spec::render(v)))
            .collect();
        let _ = writeln!(
            s,
            "| [{}]({ui}/runs/{}/tasks/{}) | {} | {} | {} |",
            md_cell(t.display_name.as_deref().unwrap_or(&t.name)),
            r.id,
            t.name,
            t.state,
            secs(t.duration_ms),
            md_cell(&outs.join(" "))
        );
    }
    let metrics = values(d);
    if !metrics.is_empty() {
        let _ = writeln!(s, "\n| metric | value |\n|---|---|");
        for (k, v) in &metrics {
            let _ = writeln!(s, "| `{}` | {} |", md_cell(k), v);
        }
    }
    if !r.params.is_empty() {
        let params: Vec<String> = r
            .params
            .iter()
            .map(|(k, v)| format!("`{}={}`", k, md_cell(&sluice_spec::render(v))))
            .collect();
        let _ = writeln!(s, "\nparameters: {}", params.join(" "));
    }
    if !checked.is_empty() {
        let _ = writeln!(
            s,
            "\n| quality gate | run side | | needed | result |\n|---|---|---|---|---|"
        );
        for c in checked {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} |",
                md_cell(&c.gate),
                num(&c.left),
                md_cell(c.op),
                num(&c.right),
                if c.holds { "✅" } else { "❌" }
            );
        }
    }
    s
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // What XML 1.0 cannot hold at all (ANSI escapes, NUL) is left out.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The last lines of a task's log (its last attempt's, stderr and stdout as written).
async fn tail(client: &Client, run: &str, task: &str) -> Vec<String> {
    let mut lines: std::collections::VecDeque<String> = Default::default();
    let mut after = 0;
    while after < LOG_READ {
        let Ok(page) = client.logs(run, task, after, 10_000).await else {
            break;
        };
        let n = page.lines.len();
        for l in page.lines {
            let tag = if l.stream == Stream::Stderr {
                "stderr: "
            } else {
                ""
            };
            lines.push_back(format!("{tag}{}", l.line));
            if lines.len() > LOG_TAIL {
                lines.pop_front();
            }
        }
        if n == 0 || page.complete || page.next_after <= after {
            break;
        }
        after = page.next_after;
    }
    lines.into()
}

/// A run as JUnit XML: a test case per step (the failing step's log tail as its failure) and
/// per quality gate.
pub async fn junit(client: &Client, d: &RunDetail, ui: &str, checked: &[Checked]) -> String {
    let r = &d.summary;
    let steps: Vec<_> = d.tasks.iter().filter(|t| t.shape.kind == "step").collect();
    let failed = |s: TaskState| matches!(s, TaskState::Failed);
    let failures = steps.iter().filter(|t| failed(t.state)).count()
        + checked.iter().filter(|c| !c.holds).count();
    let skipped = steps
        .iter()
        .filter(|t| matches!(t.state, TaskState::Skipped | TaskState::Cancelled))
        .count();
    let time = r.duration_ms.unwrap_or(0) as f64 / 1000.0;
    let tests = steps.len() + checked.len();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"sluice\" tests=\"{tests}\" failures=\"{failures}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\">",
        xml(&format!("{} ({})", r.pipeline, r.name)),
        xml(&r.created_at)
    );
    let _ = writeln!(
        s,
        "    <properties><property name=\"run\" value=\"{}\"/><property name=\"url\" value=\"{}\"/></properties>",
        xml(&r.id),
        xml(&format!("{ui}/runs/{}", r.id))
    );
    for t in &steps {
        let name = t.display_name.as_deref().unwrap_or(&t.name);
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&r.pipeline),
            xml(name),
            t.duration_ms.unwrap_or(0) as f64 / 1000.0
        );
        match t.state {
            TaskState::Failed => {
                let why = t.error.clone().unwrap_or_else(|| match t.exit_code {
                    Some(c) => format!("exit code {c}"),
                    None => "failed".into(),
                });
                let log = tail(client, &r.id, &t.name).await.join("\n");
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\" type=\"StepFailed\">{}</failure>\n    </testcase>",
                    xml(&why),
                    xml(&log)
                );
            }
            TaskState::Skipped | TaskState::Cancelled => {
                let _ = writeln!(
                    s,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    t.state
                );
            }
            _ => {
                let _ = writeln!(s, "/>");
            }
        }
    }
    for c in checked {
        let _ = write!(
            s,
            "    <testcase classname=\"quality gates\" name=\"{}\" time=\"0\"",
            xml(&c.gate)
        );
        if c.holds {
            let _ = writeln!(s, "/>");
        } else {
            let why = match (&c.left, &c.right) {
                (Err(e), _) | (_, Err(e)) => e.clone(),
                _ => format!("{} {} {} does not hold", num(&c.left), c.op, num(&c.right)),
            };
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"GateFailed\"/>\n    </testcase>",
                xml(&why)
            );
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// Appends `text` to the file at `path` (GitHub's step summary is appended to), or writes it.
pub fn write_out(path: &std::path::Path, text: &str, append: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_escapes_and_drops_what_xml_cannot_hold() {
        assert_eq!(
            super::xml("a<b & \"c\" \u{1b}[31mred\u{1b}[0m"),
            "a&lt;b &amp; &quot;c&quot; [31mred[0m"
        );
    }
}
