//! `/runs`: start a run from a stored pipeline version or inline YAML, list, read, cancel.

use super::auth::Caller;
use super::error::{check_name, ApiErr, ApiResult, Body, Query};
use super::{pipelines, App};
use crate::scheduler::{Created, NewRun};
use crate::store::{RunFilter, RunSort, StoredRun, TaskRow};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_engine::resolve_params;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{
    format_ts, AttemptInfo, CreateRun, InputArtifactInfo, Lineage, RunDetail, RunList, RunState,
    TaskInfo,
};
use sluice_spec as spec;

/// The longest `Idempotency-Key` taken.
const MAX_KEY: usize = 255;

/// The request's `Idempotency-Key`, checked: printable ASCII, 1 to [`MAX_KEY`] bytes.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiErr::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            format!("`Idempotency-Key` must be 1 to {MAX_KEY} printable ASCII characters"),
        )
    };
    let key = v.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// `POST /runs`. With an `Idempotency-Key` header, a request made again (a client retrying after
/// a lost answer) gets the run the first one made, marked `Idempotent-Replayed: true`; the same
/// key with another request is refused.
pub async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Body(req): Body<CreateRun>,
) -> ApiResult<Response> {
    let idempotency = match idempotency_key(&headers)? {
        Some(key) => {
            let body = serde_json::to_vec(&req).unwrap_or_default();
            Some((key, spec::digest(&String::from_utf8_lossy(&body))))
        }
        None => None,
    };
    let sources = [
        req.yaml.is_some(),
        req.pipeline.is_some(),
        req.clone_of.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "give one of `pipeline` (a stored pipeline), `yaml` (an inline file) or `clone_of` (a run whose pipeline to run again), not more",
        ));
    }
    sluice_sdk::api::check_labels(&req.labels)
        .map_err(|e| ApiErr::bad_request(ErrorCode::InvalidBody, format!("`labels`: {e}")))?;
    let mut inherited = Vec::new();
    let (yaml, version_id, version) = match (&req.yaml, &req.pipeline) {
        (None, None) if req.clone_of.is_some() => {
            let id = req.clone_of.as_deref().unwrap_or_default();
            if req.version.is_some() {
                return Err(ApiErr::bad_request(
                    ErrorCode::InvalidBody,
                    "`version` applies only with `pipeline`",
                ));
            }
            let old = find(&app, id).await?;
            let yaml = app.store().source(&old.row.digest).await?.ok_or_else(|| {
                ApiErr::not_found(format!("the pipeline file of run `{id}` is gone"))
            })?;
            inherited = old.row.inputs;
            (yaml, old.row.pipeline_version_id, old.row.pipeline_version)
        }
        (Some(_), Some(_)) => {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidBody,
                "give either `pipeline` (a stored pipeline) or `yaml` (an inline file), not both",
            ))
        }
        (None, None) => return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "give `pipeline` (a stored pipeline's name or id) or `yaml` (an inline pipeline file)",
        )),
        (Some(yaml), None) => {
            if req.version.is_some() {
                return Err(ApiErr::bad_request(
                    ErrorCode::InvalidBody,
                    "`version` applies only with `pipeline`",
                ));
            }
            (yaml.clone(), None, None)
        }
        (None, Some(name)) => {
            let (_, v) = pipelines::version_of(&app, name, req.version).await?;
            (v.yaml, Some(v.id), Some(v.version))
        }
    };
    let experiment_id = match (&req.experiment, &req.clone_of) {
        (None, Some(id)) => find(&app, id).await?.row.experiment_id,
        (e, _) => super::experiments::resolve(&app, e.as_deref()).await?,
    };
    let created = start(
        &app,
        &caller,
        Start {
            file_name: req.file_name.as_deref(),
            yaml,
            version_id,
            version,
            name: req.name,
            params: req.params,
            inputs: req.inputs,
            inherited,
            labels: req.labels,
            cache: req.cache.unwrap_or(true),
            experiment_id,
            idempotency,
        },
    )
    .await?;
    let mut resp = (StatusCode::CREATED, Json(detail(&app, created.id()).await?)).into_response();
    if matches!(created, Created::Replayed(_)) {
        resp.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// What a new run is made of, as a caller gave it.
pub(super) struct Start<'a> {
    pub file_name: Option<&'a str>,
    pub yaml: String,
    pub version_id: Option<String>,
    pub version: Option<u32>,
    pub name: Option<String>,
    pub params: sluice_sdk::api::Params,
    /// Input artifacts by name: the digests of uploads.
    pub inputs: std::collections::BTreeMap<String, String>,
    /// Those of the run this one clones, for what `inputs` leaves out.
    pub inherited: Vec<sluice_engine::ArtifactRecord>,
    pub labels: sluice_sdk::api::Labels,
    pub cache: bool,
    pub experiment_id: String,
    pub idempotency: Option<(String, String)>,
}

/// Checks a new run (its file loads, the policy and the caller admit it, its secrets are set,
/// its parameters fit) and starts it.
pub(super) async fn start(app: &App, caller: &Caller, s: Start<'_>) -> ApiResult<Created> {
    let pipeline = pipelines::load(app, s.file_name, &s.yaml)?;
    pipelines::admit(app, caller, &pipeline)?;
    pipelines::secrets_exist(app, &pipeline).await?;
    let params = resolve_params(&pipeline, &s.params).map_err(|errors| {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidParams,
            errors.join("; "),
        )
        .with_details(serde_json::json!(errors))
    })?;
    if let Some(name) = &s.name {
        check_name("name", name, 200)?;
    }
    let inputs = super::uploads::run_inputs(app, &pipeline, &s.inputs, &s.inherited).await?;
    let new = NewRun {
        experiment_id: s.experiment_id,
        fired: None,
        name: s.name,
        pipeline,
        digest: spec::digest(&s.yaml),
        yaml: s.yaml,
        pipeline_version_id: s.version_id,
        pipeline_version: s.version,
        params,
        inputs,
        labels: s.labels,
        cache: s.cache,
        reuse: Default::default(),
        idempotency: s.idempotency,
    };
    Ok(app.sched.create_run(new).await?)
}

/// `POST /runs/{id}/rerun`: a new run of the same pipeline file and parameters that reuses what
/// the run's succeeded steps produced and runs the others (failed, skipped, cancelled) again.
pub async fn rerun(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunDetail>)> {
    let old = find(&app, &id).await?;
    caller.may_submit(&old.row.pipeline_name)?;
    if !old.row.state.is_terminal() {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::RunActive,
            format!(
                "run `{id}` is {}; rerun it once it has ended",
                old.row.state
            ),
        ));
    }
    let yaml = app
        .store()
        .source(&old.row.digest)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("the pipeline file of run `{id}` is gone")))?;
    let pipeline = pipelines::load(&app, None, &yaml)?;
    pipelines::admit(&app, &caller, &pipeline)?;
    pipelines::secrets_exist(&app, &pipeline).await?;
    // Exit handlers run again: they report on the new run.
    let reuse = old
        .tasks
        .iter()
        .filter(|t| t.task.state == sluice_sdk::api::TaskState::Succeeded)
        .filter(|t| !pipeline.is_handler_task(&t.stat.name))
        .map(|t| {
            let outputs = t
                .task
                .outputs
                .params
                .iter()
                .map(|(k, v)| (k.clone(), spec::render(v)))
                .collect();
            (
                t.stat.name.clone(),
                sluice_engine::TaskResult {
                    outcome: sluice_sdk::api::Outcome::Succeeded,
                    exit_code: None,
                    error: None,
                    outputs,
                    artifacts: t.task.outputs.artifacts.clone(),
                    cached_from: Some(id.clone().into()),
                },
            )
        })
        .collect();
    let new = NewRun {
        name: Some(format!("{}-rerun", old.row.name.trim_end_matches("-rerun"))),
        pipeline,
        digest: old.row.digest.clone(),
        yaml,
        pipeline_version_id: old.row.pipeline_version_id.clone(),
        pipeline_version: old.row.pipeline_version,
        params: old.row.params.clone(),
        inputs: old.row.inputs.clone(),
        labels: old.row.labels.clone(),
        cache: old.row.cache,
        reuse,
        idempotency: None,
        experiment_id: old.row.experiment_id.clone(),
        fired: None,
    };
    let new_id = app.sched.create_run(new).await?;
    Ok((StatusCode::CREATED, Json(detail(&app, new_id.id()).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    pipeline: Option<String>,
    /// Runs whose name contains this text.
    q: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
    /// `created_at` (the default), `name`, `state`, `pipeline`, `duration`, `param:NAME` or
    /// `metric:NAME`.
    sort: Option<String>,
    /// `desc` (the default) or `asc`.
    order: Option<String>,
    /// Runs made at or after this time and before that one: RFC 3339 or a date (`2026-11-30`).
    created_after: Option<String>,
    created_before: Option<String>,
    /// Runs with this label: `NAME=VALUE`.
    label: Option<String>,
    /// `false` (the default): runs not archived; `true`: archived runs; `all`: both.
    archived: Option<String>,
    /// Runs of this experiment (name or id).
    experiment: Option<String>,
    /// Runs this schedule fired (name or id).
    schedule: Option<String>,
}

/// A time the run list is filtered by: RFC 3339 in UTC (`2026-11-30T12:00:00Z`), or a date
/// (its midnight, UTC).
fn time_param(name: &str, v: &str) -> ApiResult<i64> {
    let full = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_string()
    };
    humantime::parse_rfc3339(&full)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            ApiErr::bad_request(
                ErrorCode::InvalidQuery,
                format!(
                    "`{name}` must be a UTC time (2026-11-30T12:00:00Z) or a date (2026-11-30), not `{v}`"
                ),
            )
        })
}

pub async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> ApiResult<Json<RunList>> {
    let state = q
        .state
        .as_deref()
        .map(|s| RunState::parse(s).ok_or_else(|| ApiErr::bad_request(ErrorCode::InvalidQuery, format!("unknown run state `{s}`: expected running, succeeded, failed, cancelling or cancelled"))))
        .transpose()?;
    let limit = q.page_size.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidQuery,
            "page_size must be between 1 and 1000",
        ));
    }
    let bad = |m: String| ApiErr::bad_request(ErrorCode::InvalidQuery, m);
    let sort = match q.sort.as_deref() {
        None | Some("") => RunSort::Created,
        Some(s) => RunSort::parse(s).ok_or_else(|| {
            bad(format!(
                "unknown sort `{s}`: expected created_at, name, state, pipeline, duration, param:NAME or metric:NAME"
            ))
        })?,
    };
    let descending = match q.order.as_deref() {
        None | Some("") | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(bad(format!("unknown order `{o}`: expected asc or desc"))),
    };
    let archived = match q.archived.as_deref() {
        None | Some("") | Some("false") => Some(false),
        Some("true") => Some(true),
        Some("all") => None,
        Some(a) => {
            return Err(bad(format!(
                "`archived` must be true, false or all, not `{a}`"
            )))
        }
    };
    let label = match q.label.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
            _ => return Err(bad(format!("`label` must be NAME=VALUE, not `{l}`"))),
        },
    };
    // In the default order a page continues after the last run seen; in another, after as
    // many runs as were shown (`o:N`).
    let (before, offset) = match q.page_token {
        Some(t) if sort != RunSort::Created => (
            None,
            t.strip_prefix("o:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| bad(format!("`page_token` `{t}` is not one this list gave")))?,
        ),
        t => (t, 0),
    };
    let experiment = match q.experiment.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(super::experiments::find(&app, e).await?.id),
        None => None,
    };
    // The runs of a schedule since deleted stay, found by its id.
    let schedule = match q.schedule.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(match app.store().get_schedule(s).await? {
            Some(found) => found.id,
            None => s.to_string(),
        }),
        None => None,
    };
    let filter = RunFilter {
        experiment,
        schedule,
        predicates: Vec::new(),
        state,
        pipeline: q.pipeline,
        search: q.q.filter(|s| !s.is_empty()),
        before,
        created_after: q
            .created_after
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| time_param("created_after", v))
            .transpose()?,
        created_before: q
            .created_before
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| time_param("created_before", v))
            .transpose()?,
        label,
        archived,
        sort,
        descending,
        offset,
        limit: limit + 1,
    };
    let mut rows = app.store().list_runs(&filter).await?;
    let next_page_token = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        if filter.sort == RunSort::Created {
            rows.last().map(|r| r.id.clone())
        } else {
            Some(format!("o:{}", offset + u64::from(limit)))
        }
    } else {
        None
    };
    Ok(Json(RunList {
        runs: rows.iter().map(|r| r.summary()).collect(),
        next_page_token,
    }))
}

pub(super) async fn find(app: &App, id: &str) -> ApiResult<StoredRun> {
    app.store()
        .get_run(id)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no run with id `{id}`")))
}

pub(super) fn to_detail(run: StoredRun) -> RunDetail {
    // Steps (tasks that run a container) ended of planned, as the run list counts them.
    let steps: Vec<&TaskRow> = run
        .tasks
        .iter()
        .filter(|t| t.stat.shape.kind == "step" && !t.stat.image.is_empty())
        .collect();
    let step_count = sluice_sdk::api::StepCount {
        done: steps.iter().filter(|t| t.task.state.is_terminal()).count() as u32,
        total: steps.len() as u32,
    };
    let mut row = run.row;
    row.steps = Some(step_count);
    let tasks = run
        .tasks
        .into_iter()
        .map(|r| {
            let t = r.task;
            TaskInfo {
                daemon: t.spec.as_ref().is_some_and(|s| s.daemon.is_some()),
                node_selector: t
                    .spec
                    .as_ref()
                    .map(|s| s.node_selector.clone())
                    .unwrap_or_default(),
                waiting: None,
                address: t.address.clone(),
                serving: t.serving(),
                name: r.stat.name.clone(),
                display_name: r.stat.display_name.clone(),
                state: t.state,
                attempt: t.attempt,
                depends_on: r.stat.depends_on.clone(),
                image: t
                    .spec
                    .as_ref()
                    .map_or_else(|| r.stat.image.clone(), |s| s.image.clone()),
                image_digest: t.image_digest,
                resources: t
                    .spec
                    .as_ref()
                    .map(|s| crate::wire::resources_of(s.resources.clone())),
                // The worker that holds it, else the one its last attempt ran on.
                worker: t
                    .lease
                    .map(|l| l.worker)
                    .or_else(|| t.attempts.last().and_then(|a| a.worker.clone()))
                    .map(|w| w.into_string()),
                ready_at: t.ready_at.map(format_ts),
                started_at: t.started_at.map(format_ts),
                finished_at: t.finished_at.map(format_ts),
                duration_ms: t
                    .started_at
                    .zip(t.finished_at)
                    .map(|(s, f)| (f - s).max(0) as u64),
                exit_code: t.exit_code,
                error: t.error,
                inputs: t.inputs,
                outputs: t.outputs.params,
                artifacts: crate::wire::artifacts(&t.outputs.artifacts),
                retry_at: t.retry_at.map(format_ts),
                attempts: t
                    .attempts
                    .into_iter()
                    .map(|a| AttemptInfo {
                        attempt: a.attempt,
                        worker: a.worker.map(|w| w.into_string()),
                        state: a.state,
                        exit_code: a.exit_code,
                        error: a.error,
                        started_at: a.started_at.map(format_ts),
                        finished_at: format_ts(a.finished_at),
                    })
                    .collect(),
                cached_from: t.cached_from.map(|r| r.into_string()),
                shape: r.stat.shape.clone(),
                command: t.spec.as_ref().and_then(|s| {
                    let argv: Vec<String> = s
                        .command
                        .iter()
                        .flatten()
                        .chain(s.args.iter().flatten())
                        .cloned()
                        .collect();
                    (!argv.is_empty()).then_some(argv)
                }),
                script: t.spec.as_ref().and_then(|s| s.script.clone()),
                input_artifacts: t
                    .spec
                    .as_ref()
                    .map(|s| {
                        s.input_artifacts
                            .iter()
                            .map(|a| InputArtifactInfo {
                                name: a.name.clone(),
                                producer: a.producer.clone(),
                                uri: a.uri.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let summary = row.summary();
    RunDetail {
        summary,
        digest: row.digest,
        error: row.error,
        outputs: row.outputs.params,
        output_artifacts: crate::wire::artifacts(&row.outputs.artifacts),
        inputs: crate::wire::artifacts(&row.inputs),
        tasks,
    }
}

async fn detail(app: &App, id: &str) -> ApiResult<RunDetail> {
    let mut d = to_detail(find(app, id).await?);
    super::workers::why_waiting(app, &mut d.tasks).await?;
    Ok(d)
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<RunDetail>> {
    Ok(Json(detail(&app, &id).await?))
}

pub async fn cancel(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    let run = find(&app, &id).await?;
    caller.may_submit(&run.row.pipeline_name)?;
    if run.row.state.is_terminal() {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::RunFinished,
            format!("run `{id}` already {}", run.row.state),
        ));
    }
    app.sched.cancel_run(&id).await?;
    Ok(Json(detail(&app, &id).await?))
}

/// `POST /runs/{id}/archive` and `/unarchive`: an archived run is left out of the run list
/// unless it asks for archived runs; nothing else changes.
pub async fn archive(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    set_archived(app, caller, id, true).await
}

pub async fn unarchive(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    set_archived(app, caller, id, false).await
}

async fn set_archived(
    app: App,
    caller: Caller,
    id: String,
    archived: bool,
) -> ApiResult<Json<RunDetail>> {
    let run = find(&app, &id).await?;
    caller.may_submit(&run.row.pipeline_name)?;
    app.store().set_archived(&id, archived).await?;
    Ok(Json(detail(&app, &id).await?))
}

/// `DELETE /runs/{id}`: forgets an ended run (its tasks, logs, artifact records and cached
/// results; the artifacts' files stay where the worker left them). A run that has not ended is
/// refused: cancel it first.
pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let run = find(&app, &id).await?;
    caller.may_submit(&run.row.pipeline_name)?;
    if !run.row.state.is_terminal() {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::RunActive,
            format!(
                "run `{id}` is {}; cancel it, then delete it once it has ended",
                run.row.state
            ),
        ));
    }
    app.store().delete_run(&id).await?;
    // The rows first: nothing points at the bytes once they go.
    let left = super::artifacts::remove_run_artifacts(&app, &run).await;
    if left > 0 {
        tracing::info!(run = %id, left, "a deleted run's artifacts on workers' disks are left to them");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageQuery {
    uri: String,
}

/// Most tasks listed on each side of an artifact's lineage.
const LINEAGE_LIMIT: u32 = 200;

/// `GET /lineage?uri=URI`: the tasks that made an artifact (the first made it; the others
/// reused it from the cache) and the tasks that read it, across runs.
pub async fn lineage(
    State(app): State<App>,
    Query(q): Query<LineageQuery>,
) -> ApiResult<Json<Lineage>> {
    if q.uri.is_empty() || q.uri.len() > 4096 {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidQuery,
            "`uri` must be an artifact's URI of 1 to 4096 bytes",
        ));
    }
    let (producers, consumers) = app.store().lineage(&q.uri, LINEAGE_LIMIT).await?;
    if producers.is_empty() && consumers.is_empty() {
        return Err(ApiErr::not_found(format!(
            "no run made or read an artifact at `{}`",
            q.uri
        )));
    }
    Ok(Json(Lineage {
        uri: q.uri,
        producers,
        consumers,
    }))
}
