//! `/schedules`: recurring runs. A schedule runs a stored pipeline (its latest version at each
//! firing, or one version) or a file given inline, on a cron expression in a time zone or at
//! an interval, with a catch-up policy and a concurrency limit; the scheduling server fires it
//! (`scheduler::schedules`).

use super::auth::Caller;
use super::error::{check_name, ApiErr, ApiResult, Body, Query};
use super::{experiments, pipelines, App};
use crate::scheduler::schedules::{next_due, timing};
use crate::store::ScheduleRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_sdk::api::{format_ts, CreateSchedule, ErrorCode, Schedule, ScheduleList};
use sluice_spec as spec;

/// Most runs of one schedule at once.
pub const MAX_CONCURRENCY: u32 = 100;

fn bad(m: impl Into<String>) -> ApiErr {
    ApiErr::bad_request(ErrorCode::InvalidBody, m)
}

/// An RFC 3339 time, in milliseconds.
pub fn time_field(field: &str, v: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(format!(
                "`{field}` must be an RFC 3339 time (2026-12-01T09:00:00Z), not `{v}`"
            ))
        })
}

/// A schedule as the API shows it.
pub async fn to_api(app: &App, s: ScheduleRow) -> ApiResult<Schedule> {
    let (mut pipeline, mut version) = (None, None);
    if let Some(pid) = &s.pipeline_id {
        if let Some(p) = app.store().get_pipeline(pid).await? {
            pipeline = Some(p.name);
        }
        if let Some(vid) = &s.pipeline_version_id {
            version = app
                .store()
                .list_versions(pid)
                .await?
                .into_iter()
                .find(|v| v.id == *vid)
                .map(|v| v.version);
        }
    }
    Ok(Schedule {
        id: s.id,
        name: s.name,
        description: s.description,
        experiment_id: s.experiment_id,
        pipeline,
        pipeline_id: s.pipeline_id,
        pipeline_version_id: s.pipeline_version_id,
        version,
        digest: s.digest,
        params: s.params,
        labels: s.labels,
        cron: s.cron,
        timezone: s.timezone,
        interval_seconds: s.interval_s.map(|i| i.max(0) as u64),
        start_at: s.start_at.map(format_ts),
        end_at: s.end_at.map(format_ts),
        catchup: s.catchup,
        max_concurrency: s.max_concurrency,
        enabled: s.enabled,
        cache: s.cache,
        created_at: format_ts(s.created_at),
        updated_at: format_ts(s.updated_at),
        last_fired_at: s.last_fired_at.map(format_ts),
        next_at: s.next_at.filter(|_| s.enabled).map(format_ts),
        last_error: s.last_error,
    })
}

/// A schedule by id or name, or a 404 naming it.
pub async fn find(app: &App, id_or_name: &str) -> ApiResult<ScheduleRow> {
    app.store()
        .get_schedule(id_or_name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no schedule named `{id_or_name}`")))
}

/// Checks a new schedule and keeps it: what it runs loads and is admitted for the caller, its
/// parameters fit the pipeline, its trigger parses.
pub async fn make(app: &App, caller: &Caller, req: CreateSchedule) -> ApiResult<ScheduleRow> {
    check_name("name", &req.name, 200)?;
    if req.description.as_ref().is_some_and(|d| d.len() > 10_000) {
        return Err(bad("`description` is over 10000 bytes"));
    }
    sluice_sdk::api::check_labels(&req.labels).map_err(|e| bad(format!("`labels`: {e}")))?;
    let (yaml, pipeline_id, version_id, source) = match (&req.pipeline, &req.yaml) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(bad(
                "give `pipeline` (a stored pipeline's name or id) or `yaml` (a pipeline file), one of them",
            ))
        }
        (None, Some(yaml)) => {
            if req.version.is_some() {
                return Err(bad("`version` applies only with `pipeline`"));
            }
            (yaml.clone(), None, None, true)
        }
        (Some(name), None) => {
            let (p, v) = pipelines::version_of(app, name, req.version).await?;
            let version_id = req.version.map(|_| v.id.clone());
            (v.yaml, Some(p.id), version_id, false)
        }
    };
    let pipeline = pipelines::load(app, req.file_name.as_deref(), &yaml)?;
    pipelines::admit(app, caller, &pipeline)?;
    pipelines::secrets_exist(app, &pipeline).await?;
    let params = sluice_engine::resolve_params(&pipeline, &req.params).map_err(|errors| {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidParams,
            errors.join("; "),
        )
    })?;
    let max_concurrency = req.max_concurrency.unwrap_or(1);
    if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
        return Err(bad(format!(
            "`max_concurrency` must be 1 to {MAX_CONCURRENCY}, not {max_concurrency}"
        )));
    }
    let interval_s = req
        .interval_seconds
        .map(|i| i64::try_from(i).unwrap_or(i64::MAX));
    let now = crate::scheduler::now_ms();
    let start_at = req
        .start_at
        .as_deref()
        .map(|v| time_field("start_at", v))
        .transpose()?;
    let end_at = req
        .end_at
        .as_deref()
        .map(|v| time_field("end_at", v))
        .transpose()?;
    if let (Some(s), Some(e)) = (start_at, end_at) {
        if e < s {
            return Err(bad("`end_at` is before `start_at`"));
        }
    }
    let digest = spec::digest(&yaml);
    let mut row = ScheduleRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: req.name,
        description: req.description,
        experiment_id: experiments::resolve(app, req.experiment.as_deref()).await?,
        pipeline_id,
        pipeline_version_id: version_id,
        digest: source.then(|| digest.clone()),
        params,
        labels: req.labels,
        cron: req.cron.filter(|c| !c.trim().is_empty()),
        timezone: req.timezone.filter(|z| !z.is_empty()),
        interval_s,
        start_at,
        end_at,
        catchup: req.catchup.unwrap_or(true),
        max_concurrency,
        enabled: req.enabled.unwrap_or(true),
        cache: req.cache.unwrap_or(true),
        created_at: now,
        updated_at: now,
        last_fired_at: None,
        next_at: None,
        resumed_at: None,
        last_error: None,
    };
    timing(&row).map_err(bad)?;
    row.next_at = next_due(&row, now);
    app.store()
        .create_schedule(&row, source.then_some((digest.as_str(), yaml.as_str())))
        .await?;
    tracing::info!(schedule = %row.name, id = %row.id, "schedule made");
    Ok(row)
}

pub async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<CreateSchedule>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let row = make(&app, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(to_api(&app, row).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Schedules of this experiment (name or id).
    experiment: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ScheduleList>> {
    let experiment = match q.experiment.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(experiments::find(&app, e).await?.id),
        None => None,
    };
    let mut out = Vec::new();
    for s in app.store().list_schedules(experiment.as_deref()).await? {
        out.push(to_api(&app, s).await?);
    }
    Ok(Json(ScheduleList { schedules: out }))
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Schedule>> {
    let s = find(&app, &id).await?;
    Ok(Json(to_api(&app, s).await?))
}

/// The name of the pipeline a schedule runs (a token limited to pipelines touches only theirs).
async fn pipeline_of(app: &App, s: &ScheduleRow) -> ApiResult<String> {
    if let Some(p) = &s.pipeline_id {
        return Ok(pipelines::find(app, p).await?.name);
    }
    let yaml = match &s.digest {
        Some(d) => app.store().source(d).await?,
        None => None,
    }
    .ok_or_else(|| {
        ApiErr::not_found(format!(
            "the pipeline file of schedule `{}` is gone",
            s.name
        ))
    })?;
    Ok(pipelines::load(app, None, &yaml)?.name)
}

/// A schedule the caller may change: by id or name, its pipeline one the caller may submit.
pub async fn find_for(app: &App, caller: &Caller, id_or_name: &str) -> ApiResult<ScheduleRow> {
    let s = find(app, id_or_name).await?;
    caller.may_submit(&pipeline_of(app, &s).await?)?;
    Ok(s)
}

/// Pauses or resumes a schedule; a resumed one fires from now on, passing over the due times
/// it was paused for.
pub async fn set_enabled(
    app: &App,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> ApiResult<ScheduleRow> {
    let s = find_for(app, caller, id).await?;
    let now = crate::scheduler::now_ms();
    if enabled {
        if let Some(e) = app.store().get_experiment(&s.experiment_id).await? {
            if e.archived {
                return Err(bad(format!(
                    "its experiment `{}` is archived: unarchive it first",
                    e.name
                )));
            }
        }
    }
    let next = if enabled { next_due(&s, now) } else { None };
    app.store()
        .set_schedule_enabled(&s.id, enabled, next, now)
        .await?;
    find(app, &s.id).await
}

pub async fn pause(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    let s = set_enabled(&app, &caller, &id, false).await?;
    Ok(Json(to_api(&app, s).await?))
}

pub async fn resume(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    let s = set_enabled(&app, &caller, &id, true).await?;
    Ok(Json(to_api(&app, s).await?))
}

/// Forgets a schedule; the runs it fired stay.
pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = find_for(&app, &caller, &id).await?;
    app.store().delete_schedule(&s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
