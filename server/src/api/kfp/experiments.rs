//! Kubeflow's experiments over sluice's.

use super::{listed, ts, ListQuery};
use crate::api::auth::Caller;
use crate::api::error::{ApiErr, ApiResult};
use crate::api::{experiments as sluice_experiments, App};
use crate::store::ExperimentRow;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_sdk::api::ErrorCode;

pub(super) fn experiment_json(e: &ExperimentRow) -> Value {
    json!({
        "experiment_id": e.id,
        "display_name": e.name,
        "description": e.description.clone().unwrap_or_default(),
        "created_at": ts(e.created_at),
        "storage_state": if e.archived { "ARCHIVED" } else { "AVAILABLE" },
    })
}

#[derive(Deserialize)]
pub struct NewExperiment {
    display_name: Option<String>,
    description: Option<String>,
}

pub async fn create(
    State(app): State<App>,
    crate::api::error::Body(req): crate::api::error::Body<NewExperiment>,
) -> ApiResult<Json<Value>> {
    let name = req.display_name.unwrap_or_default();
    let e = sluice_experiments::make(&app, &name, req.description).await?;
    Ok(Json(experiment_json(&e)))
}

pub async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let all: Vec<Value> = app
        .store()
        .list_experiments(None)
        .await?
        .iter()
        .map(experiment_json)
        .collect();
    let keys = [
        "display_name",
        "experiment_id",
        "created_at",
        "storage_state",
        "description",
    ];
    listed("experiments", all, "experiments", &keys, &q)
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(experiment_json(
        &sluice_experiments::find(&app, &id).await?,
    )))
}

/// `POST /experiments/{id}:archive` and `:unarchive`.
pub async fn action(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(target): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = target.rsplit_once(':').unwrap_or((&target, ""));
    let archived = match verb {
        "archive" => true,
        "unarchive" => false,
        _ => {
            return Err(ApiErr::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                ErrorCode::Unimplemented,
                format!("sluice does not serve POST experiments/{target}: it serves :archive and :unarchive"),
            ))
        }
    };
    sluice_experiments::set_archived(&app, &caller, id, archived).await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    sluice_experiments::remove(&app, &caller, &id).await?;
    Ok(Json(json!({})))
}
