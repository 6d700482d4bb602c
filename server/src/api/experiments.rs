//! `/experiments`: what runs are grouped under. Every run belongs to one (`Default` unless it
//! names another); archiving an experiment archives its runs and pauses its schedules.

use super::auth::Caller;
use super::error::{check_name, ApiErr, ApiResult, Body, Query};
use super::App;
use crate::store::{ExperimentRow, DEFAULT_EXPERIMENT};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_sdk::api::{format_ts, CreateExperiment, ErrorCode, Experiment, ExperimentList};

pub fn to_api(e: ExperimentRow) -> Experiment {
    Experiment {
        id: e.id,
        name: e.name,
        description: e.description,
        created_at: format_ts(e.created_at),
        archived: e.archived,
    }
}

/// An experiment by id or name, or a 404 naming it.
pub async fn find(app: &App, id_or_name: &str) -> ApiResult<ExperimentRow> {
    app.store()
        .get_experiment(id_or_name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no experiment named `{id_or_name}`")))
}

/// The id of the experiment a new run goes into: `Default`'s when none is named; an archived
/// one takes no new runs.
pub async fn resolve(app: &App, named: Option<&str>) -> ApiResult<String> {
    let Some(name) = named.filter(|n| !n.is_empty()) else {
        return Ok(DEFAULT_EXPERIMENT.to_string());
    };
    let e = find(app, name).await?;
    if e.archived {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!(
                "experiment `{}` is archived: unarchive it to start runs in it",
                e.name
            ),
        ));
    }
    Ok(e.id)
}

/// Makes an experiment; a taken name is a 409.
pub async fn make(app: &App, name: &str, description: Option<String>) -> ApiResult<ExperimentRow> {
    check_name("name", name, 200)?;
    if let Some(d) = &description {
        if d.len() > 10_000 {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidBody,
                "`description` is over 10000 bytes",
            ));
        }
    }
    let row = ExperimentRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        description,
        created_at: crate::scheduler::now_ms(),
        archived: false,
    };
    if !app.store().create_experiment(&row).await? {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("an experiment named `{name}` exists already"),
        ));
    }
    Ok(row)
}

pub async fn create(
    State(app): State<App>,
    Body(req): Body<CreateExperiment>,
) -> ApiResult<(StatusCode, Json<Experiment>)> {
    let row = make(&app, &req.name, req.description).await?;
    Ok((StatusCode::CREATED, Json(to_api(row))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `false`: those not archived; `true`: archived ones; `all` (the default): both.
    archived: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ExperimentList>> {
    let archived = match q.archived.as_deref() {
        None | Some("") | Some("all") => None,
        Some("false") => Some(false),
        Some("true") => Some(true),
        Some(a) => {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidQuery,
                format!("`archived` must be true, false or all, not `{a}`"),
            ))
        }
    };
    let rows = app.store().list_experiments(archived).await?;
    Ok(Json(ExperimentList {
        experiments: rows.into_iter().map(to_api).collect(),
    }))
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Experiment>> {
    Ok(Json(to_api(find(&app, &id).await?)))
}

pub async fn set_archived(
    app: &App,
    caller: &Caller,
    id: &str,
    archived: bool,
) -> ApiResult<ExperimentRow> {
    caller.may_touch_all("archive an experiment (it archives runs of any pipeline)")?;
    let e = find(app, id).await?;
    if archived && e.id == DEFAULT_EXPERIMENT {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "the Default experiment cannot be archived (runs that name no experiment go there)",
        ));
    }
    app.store().set_experiment_archived(&e.id, archived).await?;
    find(app, &e.id).await
}

pub async fn archive(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Experiment>> {
    Ok(Json(to_api(set_archived(&app, &caller, &id, true).await?)))
}

pub async fn unarchive(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Experiment>> {
    Ok(Json(to_api(set_archived(&app, &caller, &id, false).await?)))
}

/// Forgets an experiment that holds no runs and no schedules.
pub async fn remove(app: &App, caller: &Caller, id: &str) -> ApiResult<()> {
    caller.may_touch_all("delete an experiment")?;
    let e = find(app, id).await?;
    if e.id == DEFAULT_EXPERIMENT {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "the Default experiment cannot be deleted",
        ));
    }
    let holds = app.store().experiment_holds(&e.id).await?;
    if holds.runs > 0 || holds.schedules > 0 {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "experiment `{}` still holds {} run(s) and {} schedule(s): delete them first",
                e.name, holds.runs, holds.schedules
            ),
        ));
    }
    app.store().delete_experiment(&e.id).await?;
    Ok(())
}

pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    remove(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
