//! `/workers`: what workers call: register, lease (long poll), heartbeat, report.

use super::error::{ApiErr, ApiResult, Body};
use super::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{
    format_ts, Heartbeat, HeartbeatResponse, LeaseRequest, LeaseResponse, RegisterWorker, Report,
    ReportResponse, WorkerInfo, WorkerRegistration,
};
use std::time::Duration;

pub async fn register(
    State(app): State<App>,
    Body(req): Body<RegisterWorker>,
) -> ApiResult<(StatusCode, Json<WorkerRegistration>)> {
    super::error::check_name("name", &req.name, 200)?;
    if !(1..=4096).contains(&req.capacity) {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "`capacity` must be between 1 and 4096",
        ));
    }
    if let Some(root) = &req.artifact_root {
        let p = std::path::Path::new(root);
        if root.len() > 4096 || !sluice_sdk::beneath::plain_absolute(p) || p.parent().is_none() {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidBody,
                "`artifact_root` must be an absolute path below / with no `.` or `..`",
            ));
        }
    }
    let (reg, hash) = app
        .sched
        .register_worker(&req.name, req.capacity, req.artifact_root.as_deref())
        .await?;
    app.auth.worker_registered(reg.id.as_str(), &hash);
    Ok((StatusCode::CREATED, Json(reg)))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<Vec<WorkerInfo>>> {
    let counts = app.sched.active_leases_by_worker().await;
    let workers = app.store().list_workers().await?;
    Ok(Json(
        workers
            .into_iter()
            .map(|w| WorkerInfo {
                active_leases: counts.get(&w.id).copied().unwrap_or(0),
                id: w.id,
                name: w.name,
                capacity: w.capacity,
                registered_at: format_ts(w.registered_at),
                last_seen_at: format_ts(w.last_seen_at),
            })
            .collect(),
    ))
}

pub async fn lease(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(req): Body<LeaseRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    if !(1..=1024).contains(&req.max) {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "`max` must be between 1 and 1024",
        ));
    }
    if req.wait_ms > 60_000 {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "`wait_ms` must be at most 60000",
        ));
    }
    let leases = app
        .sched
        .lease(&id, req.max, Duration::from_millis(req.wait_ms))
        .await?;
    Ok(Json(LeaseResponse { leases }))
}

pub async fn heartbeat(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(req): Body<Heartbeat>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let (lost, cancel) = app.sched.heartbeat(&id, &req.leases).await?;
    Ok(Json(HeartbeatResponse { lost, cancel }))
}

pub async fn report(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(req): Body<Report>,
) -> ApiResult<Json<ReportResponse>> {
    let lost = app.sched.report(&id, req.events).await?;
    Ok(Json(ReportResponse { lost }))
}
