//! Live streams over server-sent events: a run's events (task changes, log lines, the run's end)
//! and one task's log. Each starts from what is stored, then follows what the scheduler announces.

use super::error::{ApiErr, ApiResult, Query};
use super::{runs, App};
use crate::store::LogCursor;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{format_ts, LogPage, RunEvent};
use std::collections::HashMap;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Tx = mpsc::Sender<Result<Event, Infallible>>;

fn sse(rx: mpsc::Receiver<Result<Event, Infallible>>) -> Response {
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn send(tx: &Tx, ev: &RunEvent) -> bool {
    let name = match ev {
        RunEvent::Task { .. } => "task",
        RunEvent::Log(_) => "log",
        RunEvent::Run { .. } => "run",
    };
    let data = serde_json::to_string(ev).unwrap_or_default();
    tx.send(Ok(Event::default().event(name).data(data)))
        .await
        .is_ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    after: Option<u64>,
    limit: Option<u32>,
    #[serde(default)]
    follow: bool,
}

/// `GET /runs/{id}/tasks/{task}/logs`: a page of the task's log, or with `follow=true` the whole
/// log as server-sent events (`log` events) that go on while the task runs.
pub async fn task_logs(
    State(app): State<App>,
    Path((run_id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let run = runs::find(&app, &run_id).await?;
    let Some(row) = run.tasks.iter().find(|t| t.stat.name == task) else {
        return Err(ApiErr::not_found(format!(
            "run `{run_id}` has no task `{task}`"
        )));
    };
    let idx = row.idx;
    let after = LogCursor(q.after.unwrap_or(0));
    if !q.follow {
        let limit = q.limit.unwrap_or(1000);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 10000",
            ));
        }
        let lines = app
            .store()
            .read_logs(&run_id, idx, &task, after, limit)
            .await?;
        let next_after = lines.last().map(|(c, _)| c.0).unwrap_or(after.0);
        let complete = row.task.state.is_terminal() && (lines.len() as u32) < limit;
        let page = LogPage {
            lines: lines.into_iter().map(|(_, l)| l).collect(),
            next_after,
            complete,
        };
        return Ok(Json(page).into_response());
    }
    let (tx, rx) = mpsc::channel(256);
    let mut events = app.sched.subscribe();
    tokio::spawn(async move {
        let mut cursor = after;
        let mut done = false;
        // What is stored first, page by page; then live lines, skipping what was already sent.
        loop {
            let lines = match app
                .store()
                .read_logs(&run_id, idx, &task, cursor, 1000)
                .await
            {
                Ok(l) => l,
                Err(_) => return,
            };
            if lines.is_empty() {
                break;
            }
            for (c, l) in lines {
                cursor = c;
                if !send(&tx, &RunEvent::Log(l)).await {
                    return;
                }
            }
        }
        if let Ok(Some(r)) = app.store().get_run(&run_id).await {
            done = r.tasks.get(idx).is_some_and(|t| t.task.state.is_terminal());
        }
        while !done {
            match events.recv().await {
                Ok(a) if a.run_id == run_id => match &a.event {
                    RunEvent::Log(l) if l.task == task => {
                        let c = LogCursor::of(l.attempt, l.seq);
                        if c > cursor {
                            cursor = c;
                            if !send(&tx, &a.event).await {
                                return;
                            }
                        }
                    }
                    RunEvent::Task { task: t, state, .. } if *t == task && state.is_terminal() => {
                        done = true
                    }
                    RunEvent::Run { state, .. } if state.is_terminal() => done = true,
                    _ => {}
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // Catch up from the store.
                    if let Ok(lines) = app
                        .store()
                        .read_logs(&run_id, idx, &task, cursor, 10_000)
                        .await
                    {
                        for (c, l) in lines {
                            cursor = c;
                            if !send(&tx, &RunEvent::Log(l)).await {
                                return;
                            }
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(sse(rx))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Replay the log lines already stored before following (default true).
    logs: Option<bool>,
}

/// Sends every task's current state and the stored log lines past each task's cursor. Returns
/// `None` when the client went away, else whether the run has ended (its `run` event then sent).
async fn replay(
    app: &App,
    run_id: &str,
    tx: &Tx,
    cursors: &mut HashMap<String, LogCursor>,
    logs: bool,
) -> Option<bool> {
    let run = app.store().get_run(run_id).await.ok()??;
    let ts = format_ts(crate::scheduler::now_ms());
    for t in &run.tasks {
        let ev = RunEvent::Task {
            task: t.stat.name.clone(),
            state: t.task.state,
            attempt: t.task.attempt,
            exit_code: t.task.exit_code,
            error: t.task.error.clone(),
            ts: ts.clone(),
        };
        if !send(tx, &ev).await {
            return None;
        }
        // A task never leased has no log: no query for it (a run of thousands of steps that
        // have not started is followed without reading a log per step).
        if logs && t.task.attempt > 0 {
            let cursor = cursors.entry(t.stat.name.clone()).or_default();
            loop {
                let lines = app
                    .store()
                    .read_logs(run_id, t.idx, &t.stat.name, *cursor, 1000)
                    .await
                    .ok()?;
                if lines.is_empty() {
                    break;
                }
                for (c, l) in lines {
                    *cursor = c;
                    if !send(tx, &RunEvent::Log(l)).await {
                        return None;
                    }
                }
            }
        }
    }
    if run.row.state.is_terminal() {
        let ev = RunEvent::Run {
            state: run.row.state,
            error: run.row.error,
            ts: format_ts(run.row.finished_at.unwrap_or(0)),
        };
        send(tx, &ev).await;
        return Some(true);
    }
    Some(false)
}

/// `GET /runs/{id}/events`: every task's state, then each change, log line and finally the run's
/// end, as server-sent events named `task`, `log` and `run`.
pub async fn run_events(
    State(app): State<App>,
    Path(run_id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let mut events = app.sched.subscribe();
    runs::find(&app, &run_id).await?;
    let logs = q.logs.unwrap_or(true);
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut cursors: HashMap<String, LogCursor> = HashMap::new();
        // Subscribed before the replay, so nothing falls between the two; repeats are harmless
        // for task states and skipped for log lines.
        if replay(&app, &run_id, &tx, &mut cursors, logs).await != Some(false) {
            return;
        }
        loop {
            match events.recv().await {
                Ok(a) if a.run_id == run_id => {
                    if let RunEvent::Log(l) = &a.event {
                        if !logs {
                            continue;
                        }
                        let c = LogCursor::of(l.attempt, l.seq);
                        let seen = cursors.entry(l.task.clone()).or_default();
                        if c <= *seen {
                            continue;
                        }
                        *seen = c;
                    }
                    if !send(&tx, &a.event).await {
                        return;
                    }
                    if matches!(&a.event, RunEvent::Run { state, .. } if state.is_terminal()) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(run = %run_id, skipped = n, "event stream fell behind; catching up from the store");
                    if replay(&app, &run_id, &tx, &mut cursors, logs).await != Some(false) {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(sse(rx))
}

/// `GET /events`: every run's changes of state (`run` events carrying `run_id`), for live lists.
pub async fn all_runs(State(app): State<App>) -> Response {
    let (tx, rx) = mpsc::channel(256);
    let mut events = app.sched.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(a) => {
                    if let RunEvent::Run { state, error, ts } = &a.event {
                        let data = serde_json::json!({
                            "run_id": a.run_id, "state": state, "error": error, "ts": ts,
                        });
                        let ev = Event::default().event("run").data(data.to_string());
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
                // Missed some: tell the page to reload its list.
                Err(RecvError::Lagged(_)) => {
                    let ev = Event::default().event("lagged").data("{}");
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    sse(rx)
}
