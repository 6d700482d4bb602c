//! Kubeflow's runs over sluice's: create from an inline `pipeline_spec` or a pipeline version,
//! list (filter, sort, pages), get with task details, terminate, retry, archive, delete.

use super::filter;
use super::pipelines::find_version;
use super::{bad, spec_file, spec_json, ts, ListQuery};
use crate::api::auth::Caller;
use crate::api::error::{ApiErr, ApiResult, Body};
use crate::api::runs::{self as sluice_runs, Start};
use crate::api::{experiments as sluice_experiments, pipelines as sluice_pipelines, App};
use crate::store::{RunFilter, RunRow, RunSort};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_sdk::api::{ErrorCode, Params, RunState, TaskInfo, TaskState};
use std::collections::HashMap;

#[derive(Deserialize, Default)]
pub struct VersionRef {
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub parameters: Option<Params>,
}

#[derive(Deserialize)]
pub struct NewRun {
    display_name: Option<String>,
    experiment_id: Option<String>,
    pipeline_spec: Option<Value>,
    pipeline_version_reference: Option<VersionRef>,
    pipeline_version_id: Option<String>,
    runtime_config: Option<RuntimeConfig>,
}

/// What a run or recurring run runs: an inline spec, or a pipeline version (its latest with a
/// pipeline only). Returns the file, and the version's id and number.
pub(super) async fn source(
    app: &App,
    spec: Option<&Value>,
    reference: Option<&VersionRef>,
    version_id: Option<&str>,
) -> ApiResult<(String, Option<String>, Option<u32>)> {
    let pipeline_id = reference.and_then(|r| r.pipeline_id.as_deref());
    let version_id = reference
        .and_then(|r| r.pipeline_version_id.as_deref())
        .or(version_id)
        .filter(|v| !v.is_empty());
    match (spec, pipeline_id.filter(|p| !p.is_empty()), version_id) {
        (Some(s), None, None) => Ok((spec_file(s)?, None, None)),
        (None, Some(p), Some(v)) => {
            let (v, _) = find_version(app, p, v).await?;
            Ok((v.yaml, Some(v.id), Some(v.version)))
        }
        (None, Some(p), None) => {
            let found = sluice_pipelines::find(app, p).await?;
            let v = app
                .store()
                .get_version(&found.id, None)
                .await?
                .ok_or_else(|| ApiErr::not_found(format!("pipeline `{p}` has no version")))?;
            Ok((v.yaml, Some(v.id), Some(v.version)))
        }
        (None, None, Some(_)) => Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "give `pipeline_version_reference.pipeline_id` with the version",
        )),
        (None, None, None) => Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "give `pipeline_spec` or `pipeline_version_reference`",
        )),
        (Some(_), _, _) => Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "give `pipeline_spec` or `pipeline_version_reference`, not both",
        )),
    }
}

pub async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<NewRun>,
) -> ApiResult<Json<Value>> {
    let (yaml, version_id, version) = source(
        &app,
        req.pipeline_spec.as_ref(),
        req.pipeline_version_reference.as_ref(),
        req.pipeline_version_id.as_deref(),
    )
    .await?;
    let experiment_id = sluice_experiments::resolve(&app, req.experiment_id.as_deref()).await?;
    let created = sluice_runs::start(
        &app,
        &caller,
        Start {
            file_name: None,
            yaml,
            version_id,
            version,
            name: req.display_name.filter(|n| !n.is_empty()),
            params: req
                .runtime_config
                .and_then(|r| r.parameters)
                .unwrap_or_default(),
            // Kubeflow's runtime config gives parameters only.
            inputs: Default::default(),
            inherited: Vec::new(),
            labels: Default::default(),
            cache: true,
            experiment_id,
            idempotency: None,
        },
    )
    .await?;
    get(State(app), Path(created.id().to_string())).await
}

/// A run state under Kubeflow's name.
pub(super) fn run_state(s: RunState) -> &'static str {
    match s {
        RunState::Running => "RUNNING",
        RunState::Succeeded => "SUCCEEDED",
        RunState::Failed => "FAILED",
        RunState::Cancelling => "CANCELING",
        RunState::Cancelled => "CANCELED",
    }
}

fn task_state(s: TaskState) -> &'static str {
    match s {
        TaskState::Pending | TaskState::Ready | TaskState::Leased => "PENDING",
        TaskState::Running => "RUNNING",
        TaskState::Succeeded => "SUCCEEDED",
        TaskState::Failed => "FAILED",
        TaskState::Cancelled => "CANCELED",
        TaskState::Skipped => "SKIPPED",
    }
}

/// Pipeline ids by name, looked up once per answer.
#[derive(Default)]
pub(super) struct PipelineIds(HashMap<String, Option<String>>);

impl PipelineIds {
    pub(super) async fn of(&mut self, app: &App, name: &str) -> ApiResult<Option<String>> {
        if let Some(id) = self.0.get(name) {
            return Ok(id.clone());
        }
        let id = app.store().get_pipeline(name).await?.map(|p| p.id);
        self.0.insert(name.to_string(), id.clone());
        Ok(id)
    }
}

async fn run_json(app: &App, r: &RunRow, ids: &mut PipelineIds) -> ApiResult<Value> {
    let mut out = json!({
        "run_id": r.id,
        "display_name": r.name,
        "experiment_id": r.experiment_id,
        "storage_state": if r.archived { "ARCHIVED" } else { "AVAILABLE" },
        "description": "",
        "runtime_config": {"parameters": r.params},
        "created_at": ts(r.created_at),
        "state": run_state(r.state),
    });
    let mut history = vec![json!({"update_time": ts(r.created_at), "state": "RUNNING"})];
    if let Some(f) = r.finished_at {
        out["finished_at"] = json!(ts(f));
        history.push(json!({"update_time": ts(f), "state": run_state(r.state)}));
    }
    out["state_history"] = json!(history);
    if let Some(e) = &r.error {
        out["error"] = json!({"code": 2, "message": e});
    }
    if let (Some(s), Some(at)) = (&r.schedule_id, r.scheduled_at) {
        out["recurring_run_id"] = json!(s);
        out["scheduled_at"] = json!(ts(at));
    }
    if let Some(v) = &r.pipeline_version_id {
        out["pipeline_version_id"] = json!(v);
        out["pipeline_version_reference"] = json!({
            "pipeline_id": ids.of(app, &r.pipeline_name).await?,
            "pipeline_version_id": v,
        });
    }
    Ok(out)
}

fn task_json(run_id: &str, t: &TaskInfo) -> Value {
    let mut out = json!({
        "run_id": run_id,
        "task_id": format!("{run_id}.{}", t.name),
        "display_name": t.display_name.clone().unwrap_or_else(|| t.name.clone()),
        "state": task_state(t.state),
        "child_tasks": [],
    });
    if let Some(at) = t.ready_at.as_ref().or(t.started_at.as_ref()) {
        out["create_time"] = json!(at);
    }
    if let Some(at) = &t.started_at {
        out["start_time"] = json!(at);
    }
    if let Some(at) = &t.finished_at {
        out["end_time"] = json!(at);
    }
    if let Some(e) = &t.error {
        out["error"] = json!({"code": 2, "message": e});
    }
    out
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let stored = sluice_runs::find(&app, &id).await?;
    let mut out = run_json(&app, &stored.row, &mut PipelineIds::default()).await?;
    if stored.row.pipeline_version_id.is_none() {
        if let Some(yaml) = app.store().source(&stored.row.digest).await? {
            out["pipeline_spec"] = spec_json(&yaml);
        }
    }
    let detail = sluice_runs::to_detail(stored);
    out["run_details"] = json!({
        "task_details": detail.tasks.iter().map(|t| task_json(&id, t)).collect::<Vec<_>>(),
    });
    Ok(Json(out))
}

pub async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let preds = filter::for_runs(&filter::parse(q.filter.as_deref())?)?;
    let s = q.sort_by.as_deref().unwrap_or("").trim();
    let (key, descending) = match s.split_once(' ') {
        Some((k, "desc")) => (k, true),
        Some((k, "asc")) => (k, false),
        Some(_) => return Err(bad(format!("sort_by `{s}`: expected FIELD or FIELD desc"))),
        None => (s, false),
    };
    let sort = match key {
        "" | "created_at" | "id" | "run_id" => RunSort::Created,
        "name" | "display_name" => RunSort::Name,
        "state" => RunSort::State,
        k => {
            return Err(bad(format!(
                "cannot sort runs by `{k}`: sort by created_at, display_name or state"
            )))
        }
    };
    let size = match q.page_size {
        None | Some(0) => 20,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(n) => return Err(bad(format!("page_size must be 1 to 1000, not {n}"))),
    };
    // In creation order a page goes on after the last run seen; in another, after as many
    // runs as were shown.
    let token = q.page_token.as_deref().filter(|t| !t.is_empty());
    let bad_token = |t: &str| bad(format!("page_token `{t}` is not one this server gave"));
    let (before, offset) = match (token, &sort) {
        (None, _) => (None, 0),
        (Some(t), RunSort::Created) => (
            Some(
                t.strip_prefix("k:")
                    .ok_or_else(|| bad_token(t))?
                    .to_string(),
            ),
            0,
        ),
        (Some(t), _) => (
            None,
            t.strip_prefix("o:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| bad_token(t))?,
        ),
    };
    let experiment = match q.experiment_id.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(sluice_experiments::find(&app, e).await?.id),
        None => None,
    };
    let filter = RunFilter {
        experiment,
        predicates: preds,
        archived: None,
        before,
        sort: sort.clone(),
        descending,
        offset,
        limit: size + 1,
        ..Default::default()
    };
    let mut rows = app.store().list_runs(&filter).await?;
    let next = if rows.len() > size as usize {
        rows.truncate(size as usize);
        match sort {
            RunSort::Created => rows
                .last()
                .map(|r| format!("k:{}", r.id))
                .unwrap_or_default(),
            _ => format!("o:{}", offset + u64::from(size)),
        }
    } else {
        String::new()
    };
    let mut ids = PipelineIds::default();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(run_json(&app, r, &mut ids).await?);
    }
    Ok(Json(json!({"runs": out, "next_page_token": next})))
}

/// `POST /runs/{id}:terminate`, `:retry`, `:archive`, `:unarchive`.
pub async fn action(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(target): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = target.rsplit_once(':').unwrap_or((&target, ""));
    let run = sluice_runs::find(&app, id).await?;
    caller.may_submit(&run.row.pipeline_name)?;
    match verb {
        "terminate" => {
            if !app.sched.cancel_run(id).await? {
                return Err(ApiErr::new(
                    StatusCode::CONFLICT,
                    ErrorCode::RunFinished,
                    format!("run `{id}` has ended; there is nothing to terminate"),
                ));
            }
        }
        // sluice reruns a run as a new run that reuses what the old one's succeeded steps
        // made; the old run stays as it ended.
        "retry" => {
            let _made =
                sluice_runs::rerun(State(app.clone()), Extension(caller), Path(id.to_string()))
                    .await?;
        }
        "archive" | "unarchive" => {
            app.store().set_archived(id, verb == "archive").await?;
        }
        _ => {
            return Err(ApiErr::new(
                StatusCode::NOT_IMPLEMENTED,
                ErrorCode::Unimplemented,
                format!(
                    "sluice does not serve POST runs/{target}: it serves :terminate, :retry, :archive and :unarchive"
                ),
            ))
        }
    }
    Ok(Json(json!({})))
}

pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    sluice_runs::delete(State(app), Extension(caller), Path(id)).await?;
    Ok(Json(json!({})))
}
