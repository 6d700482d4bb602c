//! Kubeflow's recurring runs over sluice's schedules: cron (six fields, seconds first, in UTC)
//! or periodic triggers, max concurrency, catch-up or not, enable, disable.

use super::pipelines::find_version;
use super::runs::{RuntimeConfig, VersionRef};
use super::{int64, listed, spec_file, spec_json, ts, ListQuery};
use crate::api::auth::Caller;
use crate::api::error::{ApiErr, ApiResult, Body};
use crate::api::{schedules as sluice_schedules, App};
use crate::store::ScheduleRow;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_sdk::api::{CreateSchedule, ErrorCode};

#[derive(Deserialize)]
pub struct NewRecurringRun {
    display_name: Option<String>,
    description: Option<String>,
    experiment_id: Option<String>,
    pipeline_spec: Option<Value>,
    pipeline_version_reference: Option<VersionRef>,
    pipeline_version_id: Option<String>,
    runtime_config: Option<RuntimeConfig>,
    max_concurrency: Option<Value>,
    trigger: Option<Value>,
    mode: Option<String>,
    no_catchup: Option<bool>,
}

fn invalid(m: impl Into<String>) -> ApiErr {
    ApiErr::bad_request(ErrorCode::InvalidBody, m)
}

/// A trigger's cron expression or interval, and its window.
type Trigger = (Option<String>, Option<u64>, Option<String>, Option<String>);

fn trigger(t: Option<&Value>) -> ApiResult<Trigger> {
    let t = t.ok_or_else(|| invalid("give a `trigger`: `cron_schedule` or `periodic_schedule`"))?;
    let window = |s: &Value| {
        (
            s["start_time"].as_str().map(str::to_string),
            s["end_time"].as_str().map(str::to_string),
        )
    };
    match (t.get("cron_schedule"), t.get("periodic_schedule")) {
        (Some(c), None) => {
            let cron = c["cron"]
                .as_str()
                .ok_or_else(|| invalid("`trigger.cron_schedule.cron` is missing"))?;
            let (s, e) = window(c);
            Ok((Some(cron.to_string()), None, s, e))
        }
        (None, Some(p)) => {
            let every = int64(&p["interval_second"])
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    invalid("`trigger.periodic_schedule.interval_second` must be a positive number")
                })?;
            let (s, e) = window(p);
            Ok((None, Some(every as u64), s, e))
        }
        _ => Err(invalid(
            "`trigger` takes one of `cron_schedule` and `periodic_schedule`",
        )),
    }
}

pub async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<NewRecurringRun>,
) -> ApiResult<Json<Value>> {
    let (cron, interval, start_at, end_at) = trigger(req.trigger.as_ref())?;
    let reference = req.pipeline_version_reference.unwrap_or_default();
    let version_id = reference
        .pipeline_version_id
        .or(req.pipeline_version_id)
        .filter(|v| !v.is_empty());
    let (pipeline, version, yaml) = match (req.pipeline_spec, reference.pipeline_id) {
        (Some(spec), None) => (None, None, Some(spec_file(&spec)?)),
        (None, Some(p)) => {
            let version = match &version_id {
                Some(v) => Some(find_version(&app, &p, v).await?.0.version),
                None => None,
            };
            (Some(p), version, None)
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give `pipeline_spec` or `pipeline_version_reference`, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "give `pipeline_spec` or `pipeline_version_reference`",
            ))
        }
    };
    let max_concurrency = match &req.max_concurrency {
        None => None,
        Some(v) => Some(
            int64(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("`max_concurrency` must be a number, not {v}")))?,
        ),
    };
    let enabled = match req.mode.as_deref() {
        None | Some("ENABLE") | Some("MODE_UNSPECIFIED") => true,
        Some("DISABLE") => false,
        Some(m) => {
            return Err(invalid(format!(
                "`mode` must be ENABLE or DISABLE, not `{m}`"
            )))
        }
    };
    let s = sluice_schedules::make(
        &app,
        &caller,
        CreateSchedule {
            name: req.display_name.unwrap_or_default(),
            description: req.description.filter(|d| !d.is_empty()),
            experiment: req.experiment_id.filter(|e| !e.is_empty()),
            pipeline,
            version,
            yaml,
            file_name: None,
            params: req
                .runtime_config
                .and_then(|r| r.parameters)
                .unwrap_or_default(),
            labels: Default::default(),
            cron,
            timezone: None,
            interval_seconds: interval,
            start_at,
            end_at,
            catchup: Some(!req.no_catchup.unwrap_or(false)),
            max_concurrency,
            enabled: Some(enabled),
            cache: None,
        },
    )
    .await?;
    Ok(Json(recurring_json(&app, &s, true).await?))
}

async fn recurring_json(app: &App, s: &ScheduleRow, with_spec: bool) -> ApiResult<Value> {
    let window = |mut v: Value| {
        if let Some(t) = s.start_at {
            v["start_time"] = json!(ts(t));
        }
        if let Some(t) = s.end_at {
            v["end_time"] = json!(ts(t));
        }
        v
    };
    let trigger = match (&s.cron, s.interval_s) {
        (Some(c), _) => json!({"cron_schedule": window(json!({"cron": c}))}),
        (None, i) => {
            json!({"periodic_schedule": window(json!({"interval_second": i.unwrap_or(0).to_string()}))})
        }
    };
    let mut out = json!({
        "recurring_run_id": s.id,
        "display_name": s.name,
        "description": s.description.clone().unwrap_or_default(),
        "experiment_id": s.experiment_id,
        "runtime_config": {"parameters": s.params},
        "max_concurrency": s.max_concurrency.to_string(),
        "trigger": trigger,
        "mode": if s.enabled { "ENABLE" } else { "DISABLE" },
        "status": if s.enabled { "ENABLED" } else { "DISABLED" },
        "created_at": ts(s.created_at),
        "updated_at": ts(s.updated_at),
        "no_catchup": !s.catchup,
    });
    if let Some(p) = &s.pipeline_id {
        out["pipeline_version_reference"] = json!({
            "pipeline_id": p,
            "pipeline_version_id": s.pipeline_version_id.clone().unwrap_or_default(),
        });
        if let Some(v) = &s.pipeline_version_id {
            out["pipeline_version_id"] = json!(v);
        }
    } else if let (Some(d), true) = (&s.digest, with_spec) {
        if let Some(yaml) = app.store().source(d).await? {
            out["pipeline_spec"] = spec_json(&yaml);
        }
    }
    if let Some(e) = &s.last_error {
        out["error"] = json!({"code": 9, "message": e});
    }
    Ok(out)
}

pub async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let experiment = match q.experiment_id.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(crate::api::experiments::find(&app, e).await?.id),
        None => None,
    };
    let mut all = Vec::new();
    for s in app.store().list_schedules(experiment.as_deref()).await? {
        all.push(recurring_json(&app, &s, false).await?);
    }
    let keys = [
        "display_name",
        "recurring_run_id",
        "created_at",
        "experiment_id",
        "status",
    ];
    listed("recurringRuns", all, "recurring runs", &keys, &q)
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let s = sluice_schedules::find(&app, &id).await?;
    Ok(Json(recurring_json(&app, &s, true).await?))
}

/// `POST /recurringruns/{id}:enable` and `:disable`.
pub async fn action(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(target): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = target.rsplit_once(':').unwrap_or((&target, ""));
    let enabled = match verb {
        "enable" => true,
        "disable" => false,
        _ => {
            return Err(ApiErr::new(
                StatusCode::NOT_IMPLEMENTED,
                ErrorCode::Unimplemented,
                format!(
                "sluice does not serve POST recurringruns/{target}: it serves :enable and :disable"
            ),
            ))
        }
    };
    sluice_schedules::set_enabled(&app, &caller, id, enabled).await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = sluice_schedules::find_for(&app, &caller, &id).await?;
    app.store().delete_schedule(&s.id).await?;
    Ok(Json(json!({})))
}
