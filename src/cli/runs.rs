//! `sluice submit`, `sluice runs …` and `sluice logs`.

use super::pipelines::{explain, load_file};
use super::{exit_code_of, print_json, Conn, Output, EXIT_FAILED, EXIT_INVALID};
use anyhow::Context;
use clap::{Args, Subcommand};
use sluice_sdk::api::{
    CreateRun, LogLine, Params, RunDetail, RunEvent, RunState, Stream, TaskState,
};
use sluice_sdk::client::{Client, ClientError};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct SubmitArgs {
    /// The pipeline file to run.
    #[arg(required_unless_present = "pipeline", conflicts_with = "pipeline")]
    file: Option<PathBuf>,
    /// Run a stored pipeline (by name or id) instead of a file.
    #[arg(long)]
    pipeline: Option<String>,
    /// With --pipeline: the version to run (default: the latest).
    #[arg(long, requires = "pipeline")]
    version: Option<u32>,
    /// A parameter value, `name=value` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A label to find the run by, `name=value` (repeatable; `sluice runs list --label`, the UI's
    /// label filter).
    #[arg(short = 'l', long = "label", value_name = "NAME=VALUE", value_parser = super::serve::parse_label)]
    labels: Vec<(String, String)>,
    /// A local file or directory as the pipeline's input artifact NAME (repeatable): hashed,
    /// sent to the server unless it holds that content already, bound to `{{artifacts.NAME}}`.
    #[arg(short = 'i', long = "input", value_name = "NAME=PATH", value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
    /// The run's display name.
    #[arg(long)]
    name: Option<String>,
    /// The experiment the run goes into, by name or id (`Default` if none; `sluice experiments
    /// create NAME` makes one).
    #[arg(long)]
    experiment: Option<String>,
    /// Run every step afresh instead of reusing cached results.
    #[arg(long)]
    no_cache: bool,
    /// Follow the run, printing task changes and logs; exit 0 if it succeeds, 1 if not.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    report: Report,
    /// While the server cannot be reached (or fails), try again for this long before giving up
    /// with exit code 3. Every try carries the same idempotency key: one run is made.
    #[arg(long, default_value = "30s", value_parser = super::serve::parse_duration)]
    retry_for: std::time::Duration,
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    conn: Conn,
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((k, p)) if !k.is_empty() && !p.is_empty() => Ok((k.to_string(), PathBuf::from(p))),
        _ => Err(format!("input `{s}` must be written NAME=PATH")),
    }
}

/// Sends each input's file or directory (once per content) and returns their digests by name.
async fn send_inputs(
    client: &Client,
    inputs: &[(String, PathBuf)],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, path) in inputs {
        if out.contains_key(name) {
            return Err(ClientError::Local(format!("input `{name}` is given twice")).into());
        }
        let up = client
            .upload_path(path)
            .await
            .with_context(|| format!("input `{name}` ({})", path.display()))?;
        let size = sluice_spec::format_bytes(up.info.size);
        let how = if up.sent {
            "sent"
        } else {
            "on the server already"
        };
        eprintln!(
            "input {name}: {} {} ({size}, {}) {how}",
            up.info.kind,
            path.display(),
            up.info.digest
        );
        out.insert(name.clone(), up.info.digest);
    }
    Ok(out)
}

pub(super) fn parse_params(raw: &[String]) -> Result<Params, String> {
    let mut out = Params::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("parameter `{p}` must be written NAME=VALUE"));
        };
        if out
            .insert(k.to_string(), serde_json::Value::String(v.to_string()))
            .is_some()
        {
            return Err(format!("parameter `{k}` is given twice"));
        }
    }
    Ok(out)
}

pub async fn submit(a: SubmitArgs) -> anyhow::Result<u8> {
    if a.report.wanted() && !a.wait {
        eprintln!("error: --summary, --junit and --require need --wait");
        return Ok(EXIT_INVALID);
    }
    if let Err(e) = a.report.parse() {
        eprintln!("error: {e}");
        return Ok(EXIT_INVALID);
    }
    let params = match parse_params(&a.params) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let mut source = None;
    let req = match &a.file {
        Some(file) => {
            let (text, pipeline) = match load_file(file) {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            // Named inputs the file does not declare are refused before anything is sent.
            let declared: Vec<&str> = pipeline.artifacts.iter().map(|a| a.name.as_str()).collect();
            if let Some((extra, _)) = a
                .inputs
                .iter()
                .find(|(n, _)| !declared.contains(&n.as_str()))
            {
                let has = if declared.is_empty() {
                    "declares no input artifacts".to_string()
                } else {
                    format!("declares {}", declared.join(", "))
                };
                eprintln!("error: input `{extra}`: {} {has}", file.display());
                return Ok(EXIT_INVALID);
            }
            source = Some(text.clone());
            CreateRun {
                yaml: Some(text),
                file_name: Some(file.display().to_string()),
                params,
                name: a.name.clone(),
                ..Default::default()
            }
        }
        None => CreateRun {
            pipeline: a.pipeline.clone(),
            version: a.version,
            params,
            name: a.name.clone(),
            ..Default::default()
        },
    };
    let mut req = req;
    req.experiment = a.experiment.clone();
    req.labels.extend(a.labels.iter().cloned());
    if let Err(e) = sluice_sdk::api::check_labels(&req.labels) {
        eprintln!("error: {e}");
        return Ok(EXIT_INVALID);
    }
    if a.no_cache {
        req.cache = Some(false);
    }
    let client = a.conn.client();
    req.inputs = match send_inputs(&client, &a.inputs).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::exit_code_of(&e));
        }
    };
    // Retried under one idempotency key while the server is away (restarting, say): one run.
    let run = match client.create_run_retrying(&req, a.retry_for).await {
        Ok(r) => r,
        Err(e) => {
            explain(&e, source.as_deref());
            return Ok(exit_code_of(&e.into()));
        }
    };
    if !a.wait {
        match a.output {
            Output::Json => print_json(&run),
            Output::Text => println!("{}", run.summary.id),
        }
        return Ok(0);
    }
    if a.output == Output::Text {
        eprintln!(
            "run {} ({}) started; following it",
            run.summary.id, run.summary.name
        );
    }
    let state = follow(&client, &run.summary.id, a.output == Output::Text).await?;
    let detail = client.get_run(&run.summary.id).await?;
    match a.output {
        Output::Json => print_json(&detail),
        Output::Text => print_outcome(&detail),
    }
    let gates_hold = a.report.deliver(&client, &a.conn.server, &detail).await?;
    Ok(if state == RunState::Succeeded && gates_hold {
        0
    } else {
        EXIT_FAILED
    })
}

fn print_outcome(d: &RunDetail) {
    let took = d
        .summary
        .duration_ms
        .map(|ms| format!(" in {:.1}s", ms as f64 / 1000.0))
        .unwrap_or_default();
    eprintln!("run {} {}{took}", d.summary.id, d.summary.state);
    if let Some(e) = &d.error {
        eprintln!("  {e}");
    }
    if let Some(o) = outputs_line(d) {
        eprintln!("  outputs: {o}");
    }
    for t in &d.tasks {
        if !t.outputs.is_empty() {
            let outs: Vec<String> = t
                .outputs
                .iter()
                .map(|(k, v)| format!("{k}={}", sluice_spec::render(v)))
                .collect();
            eprintln!("  {}: {}", shown(t), outs.join(" "));
        }
    }
}

/// Follows a run's events until it ends, reconnecting when the stream breaks. Prints task changes
/// and log lines when `print` is set. Returns the run's final state.
pub async fn follow(client: &Client, run_id: &str, print: bool) -> anyhow::Result<RunState> {
    let mut seen_logs: HashMap<String, (u32, u64)> = HashMap::new();
    let mut seen_state: HashMap<String, (TaskState, u32)> = HashMap::new();
    let mut backoff = Duration::from_millis(200);
    let mut out = std::io::stdout().lock();
    loop {
        let mut stream = match client.run_events(run_id).await {
            Ok(s) => s,
            Err(e @ ClientError::Api { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "lost the server; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        while let Some(ev) = stream.next::<RunEvent>().await {
            let Ok(ev) = ev else { break };
            backoff = Duration::from_millis(200);
            match ev {
                RunEvent::Task {
                    task,
                    state,
                    attempt,
                    error,
                    ts,
                    ..
                } => {
                    if seen_state.get(&task) == Some(&(state, attempt)) {
                        continue;
                    }
                    let first = !seen_state.contains_key(&task);
                    seen_state.insert(task.clone(), (state, attempt));
                    if print && !(first && state == TaskState::Pending) {
                        let why = error.map(|e| format!(": {e}")).unwrap_or_default();
                        let _ = writeln!(out, "{} {task} {state}{why}", &ts[11..19.min(ts.len())]);
                    }
                }
                RunEvent::Log(l) => {
                    let key = (l.attempt, l.seq);
                    if seen_logs.get(&l.task).is_some_and(|k| *k >= key) {
                        continue;
                    }
                    seen_logs.insert(l.task.clone(), key);
                    if print {
                        print_line(&mut out, &l, true);
                    }
                }
                RunEvent::Run { state, .. } if state.is_terminal() => return Ok(state),
                RunEvent::Run { .. } => {}
            }
        }
        // The stream ended without the run ending: the server went away. Try again.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn print_line(out: &mut impl Write, l: &LogLine, prefix: bool) {
    let tag = if l.stream == Stream::Stderr { "!" } else { "|" };
    if prefix {
        let _ = writeln!(out, "{} {tag} {}", l.task, l.line);
    } else {
        let _ = writeln!(out, "{}", l.line);
    }
}

/// What CI reads of a run, and the gates it must pass.
#[derive(Args, Default)]
pub struct Report {
    /// Also write the run as Markdown to FILE, appended (GitHub Actions: `$GITHUB_STEP_SUMMARY`):
    /// its state, steps with their durations and outputs, metrics, parameters, gates, links.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Also write the run as JUnit XML to FILE: a test case per step, a failed step's log tail
    /// as its failure, a test case per gate (GitLab, Jenkins).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// A quality gate the run must pass, on its metrics (repeatable):
    /// `accuracy >= baseline.accuracy - 0.01` (docs/ci.md).
    #[arg(long = "require", value_name = "GATE")]
    require: Vec<String>,
    /// The run gates compare with: a run id, or `latest succeeded run of this pipeline with
    /// label branch=main` (docs/ci.md).
    #[arg(long, value_name = "SELECTOR")]
    baseline: Option<String>,
    /// When no run matches the baseline: the gates that need one fail (the default) or pass.
    #[arg(long, value_enum, default_value_t)]
    if_no_baseline: super::ci::NoBaseline,
}

impl Report {
    fn wanted(&self) -> bool {
        self.summary.is_some() || self.junit.is_some() || !self.require.is_empty()
    }

    /// The gates and the baseline selector, parsed; the error says which is wrong.
    fn parse(&self) -> Result<(Vec<super::gates::Gate>, Option<super::gates::Baseline>), String> {
        let gates = self
            .require
            .iter()
            .map(|g| super::gates::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        let baseline = self
            .baseline
            .as_deref()
            .map(super::gates::baseline)
            .transpose()?;
        if baseline.is_some() && gates.is_empty() {
            return Err("--baseline is what --require gates compare with: give a --require".into());
        }
        Ok((gates, baseline))
    }

    /// Checks the gates and writes the summaries of run `d`. Returns whether every gate holds.
    async fn deliver(&self, client: &Client, ui: &str, d: &RunDetail) -> anyhow::Result<bool> {
        let (gates, baseline) = self.parse().map_err(anyhow::Error::msg)?;
        let (holds, checked) = if gates.is_empty() {
            (true, Vec::new())
        } else {
            super::ci::run_gates(client, d, &gates, baseline.as_ref(), self.if_no_baseline).await?
        };
        if let Some(f) = &self.summary {
            super::ci::write_out(f, &super::ci::markdown(d, ui, &checked), true)?;
        }
        if let Some(f) = &self.junit {
            let xml = super::ci::junit(client, d, ui, &checked).await;
            super::ci::write_out(f, &xml, false)?;
        }
        Ok(holds)
    }
}

#[derive(Subcommand)]
pub enum RunsCmd {
    /// Check a run against quality gates on its metrics, compared with a baseline run; print them
    /// side by side; exit 1 if a gate fails (docs/ci.md).
    Check {
        run: String,
        #[command(flatten)]
        report: Report,
        #[command(flatten)]
        conn: Conn,
    },
    /// List runs, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
        /// Only runs with this label (`name=value`).
        #[arg(long, value_name = "NAME=VALUE")]
        label: Option<String>,
        /// Archived runs (`true`), or all runs (`all`), instead of the runs not archived.
        #[arg(long, value_name = "true|all")]
        archived: Option<String>,
        /// Only runs of this experiment (name or id).
        #[arg(long)]
        experiment: Option<String>,
        /// Only runs this schedule fired (name or id).
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        conn: Conn,
    },
    /// Archive a run: it is kept, and left out of the run list unless asked for.
    Archive {
        id: String,
        /// Bring it back to the run list instead.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete an ended run: its tasks, logs, artifact records and cached results.
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a run with every task's state, timings and outputs.
    Get {
        id: String,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel a run: running tasks are killed, pending ones never start.
    Cancel {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Rerun from failure: a new run that reuses what the run's succeeded steps produced and runs
    /// the failed, skipped and cancelled ones again.
    Rerun {
        id: String,
        /// Follow the new run; exit 0 if it succeeds, 1 if not.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn runs(cmd: RunsCmd) -> anyhow::Result<u8> {
    match cmd {
        RunsCmd::List {
            state,
            pipeline,
            limit,
            page_token,
            label,
            archived,
            experiment,
            schedule,
            output,
            conn,
        } => {
            let mut q = vec![("page_size", limit.to_string())];
            for (k, v) in [
                ("state", state),
                ("pipeline", pipeline),
                ("page_token", page_token),
                ("label", label),
                ("archived", archived),
                ("experiment", experiment),
                ("schedule", schedule),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let list = conn.client().list_runs_where(&q).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!(
                        "{:<36}  {:<28} {:<10}  {:<24}  DURATION",
                        "ID", "NAME", "STATE", "CREATED"
                    );
                    for r in &list.runs {
                        let d = seconds(r.duration_ms);
                        println!(
                            "{:<36}  {:<28} {:<10}  {:<24}  {d}",
                            r.id, r.name, r.state, r.created_at
                        );
                    }
                    if let Some(t) = list.next_page_token {
                        println!("(more: --page-token {t})");
                    }
                }
            }
            Ok(0)
        }
        RunsCmd::Archive { id, undo, conn } => {
            let r = conn.client().archive_run(&id, !undo).await?;
            println!(
                "run {} {}",
                r.summary.id,
                if undo {
                    "is back in the run list"
                } else {
                    "archived"
                }
            );
            Ok(0)
        }
        RunsCmd::Delete { id, conn } => {
            conn.client().delete_run(&id).await?;
            println!("run {id} deleted");
            Ok(0)
        }
        RunsCmd::Get { id, output, conn } => {
            let d = conn.client().get_run(&id).await?;
            match output {
                Output::Json => print_json(&d),
                Output::Text => {
                    println!("run       {} ({})", d.summary.id, d.summary.name);
                    println!(
                        "pipeline  {}{}",
                        d.summary.pipeline,
                        d.summary
                            .pipeline_version
                            .map(|v| format!(" v{v}"))
                            .unwrap_or_default()
                    );
                    println!("state     {}", d.summary.state);
                    if let Some(r) = d.summary.end_reason {
                        println!("ended by  {r}");
                    }
                    if let Some(e) = &d.error {
                        println!("error     {e}");
                    }
                    for a in &d.inputs {
                        println!(
                            "input     {} ({}, {})",
                            a.name,
                            sluice_spec::format_bytes(a.size),
                            a.digest
                        );
                    }
                    if let Some(o) = outputs_line(&d) {
                        println!("outputs   {o}");
                    }
                    println!(
                        "\n{:<24} {:<10} {:>7} {:>10}  OUTPUTS",
                        "TASK", "STATE", "ATTEMPT", "DURATION"
                    );
                    for t in &d.tasks {
                        let dur = seconds(t.duration_ms);
                        let outs: Vec<String> = t
                            .outputs
                            .iter()
                            .map(|(k, v)| format!("{k}={}", sluice_spec::render(v)))
                            .collect();
                        println!(
                            "{:<24} {:<10} {:>7} {:>10}  {}",
                            t.name,
                            t.state.to_string(),
                            t.attempt,
                            dur,
                            outs.join(" ")
                        );
                        if let Some(d) = &t.display_name {
                            println!("{:<24} └ shown as \"{d}\"", "");
                        }
                        if let Some(from) = &t.cached_from {
                            println!("{:<24} └ cached: reused the result of run {from}", "");
                        }
                        // Earlier attempts, when the task was retried.
                        for a in t.attempts.iter().filter(|a| a.attempt != t.attempt) {
                            let why = a.error.as_deref().unwrap_or("");
                            println!("{:<24} └ attempt {} {}: {why}", "", a.attempt, a.state);
                        }
                        if let Some(e) = &t.error {
                            println!("{:<24} └ {e}", "");
                        }
                    }
                }
            }
            Ok(0)
        }
        RunsCmd::Cancel { id, conn } => {
            let d = conn.client().cancel_run(&id).await?;
            println!("run {} {}", d.summary.id, d.summary.state);
            Ok(0)
        }
        RunsCmd::Check { run, report, conn } => {
            if report.require.is_empty() {
                eprintln!("error: give at least one --require GATE");
                return Ok(EXIT_INVALID);
            }
            if let Err(e) = report.parse() {
                eprintln!("error: {e}");
                return Ok(EXIT_INVALID);
            }
            let client = conn.client();
            let d = client.get_run(&run).await?;
            if !d.summary.state.is_terminal() {
                eprintln!(
                    "error: run {run} is {}; check it once it has ended",
                    d.summary.state
                );
                return Ok(EXIT_INVALID);
            }
            let holds = report.deliver(&client, &conn.server, &d).await?;
            Ok(if holds { 0 } else { EXIT_FAILED })
        }
        RunsCmd::Rerun { id, wait, conn } => {
            let client = conn.client();
            let d = client.rerun(&id).await?;
            let reused = d.tasks.iter().filter(|t| t.cached_from.is_some()).count();
            println!(
                "run {} ({}) started from {id}: {reused} of {} step(s) reused",
                d.summary.id,
                d.summary.name,
                d.tasks.len()
            );
            if !wait {
                return Ok(0);
            }
            let state = follow(&client, &d.summary.id, true).await?;
            Ok(if state == RunState::Succeeded { 0 } else { 1 })
        }
    }
}

#[derive(Args)]
pub struct LogsArgs {
    run: String,
    /// One task's log; every task's when left out.
    task: Option<String>,
    /// Keep printing new lines until the task (or run) ends.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn logs(a: LogsArgs) -> anyhow::Result<u8> {
    let client = a.conn.client();
    let run = client.get_run(&a.run).await?;
    let mut out = std::io::stdout().lock();
    match (&a.task, a.follow) {
        (Some(task), true) => {
            let mut s = client.follow_logs(&a.run, task).await?;
            while let Some(l) = s.next::<RunEvent>().await {
                if let RunEvent::Log(l) = l? {
                    print_line(&mut out, &l, false);
                }
            }
        }
        (None, true) => {
            drop(out);
            let state = follow(&client, &a.run, true).await?;
            return Ok(if state == RunState::Succeeded {
                0
            } else {
                EXIT_FAILED
            });
        }
        (task, false) => {
            let tasks: Vec<String> = match task {
                Some(t) => vec![t.clone()],
                None => run.tasks.iter().map(|t| t.name.clone()).collect(),
            };
            for t in &tasks {
                let mut after = 0;
                loop {
                    let page = client
                        .logs(&a.run, t, after, 5000)
                        .await
                        .with_context(|| format!("reading the log of task `{t}`"))?;
                    for l in &page.lines {
                        print_line(&mut out, l, task.is_none());
                    }
                    if page.lines.is_empty() {
                        break;
                    }
                    after = page.next_after;
                }
            }
        }
    }
    Ok(0)
}

/// A duration for tables: `12.3s`, or `-` when unknown.
fn seconds(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// A task's name, with the name it is shown by where that differs (`use "Use it"`).
fn shown(t: &sluice_sdk::api::TaskInfo) -> String {
    match &t.display_name {
        Some(d) => format!("{} \"{d}\"", t.name),
        None => t.name.clone(),
    }
}

/// The run's own outputs on one line (`accuracy=0.97 model=<artifact from train>`), if it has any.
fn outputs_line(d: &sluice_sdk::api::RunDetail) -> Option<String> {
    let params = d
        .outputs
        .iter()
        .map(|(k, v)| format!("{k}={}", sluice_spec::render(v)));
    let artifacts = d.output_artifacts.iter().map(|a| {
        format!(
            "{}=<artifact, {}>",
            a.name,
            sluice_spec::format_bytes(a.size)
        )
    });
    let all: Vec<String> = params.chain(artifacts).collect();
    (!all.is_empty()).then(|| all.join(" "))
}
