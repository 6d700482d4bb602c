//! `/workers`: what workers call: register, lease (long poll), heartbeat, report.

use super::error::{ApiErr, ApiResult, Body};
use super::App;
use crate::scheduler::seen;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{
    format_ts, Heartbeat, HeartbeatResponse, LeaseRequest, LeaseResponse, RegisterWorker, Report,
    ReportResponse, TaskInfo, TaskState, WorkerInfo, WorkerRegistration, WorkerTask,
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
    sluice_sdk::api::check_labels(&req.labels)
        .map_err(|e| ApiErr::bad_request(ErrorCode::InvalidBody, format!("`labels`: {e}")))?;
    if req.gpus > 1024 {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "`gpus` must be at most 1024",
        ));
    }
    let (reg, hash) = app.sched.register_worker(&req).await?;
    app.auth.worker_registered(reg.id.as_str(), &hash);
    Ok((StatusCode::CREATED, Json(reg)))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<Vec<WorkerInfo>>> {
    let mut loads = app.sched.worker_loads().await;
    let workers = app.store().list_workers().await?;
    let since = sluice_sdk::api::now_ms() - app.sched.config().lease_ttl_ms;
    Ok(Json(
        workers
            .into_iter()
            .map(|w| {
                let load = loads.remove(&w.id).unwrap_or_default();
                let (seen, alive) = seen(&w, Some(&load), since);
                WorkerInfo {
                    active_leases: load.tasks.len() as u32,
                    alive,
                    gpus_in_use: load.gpus,
                    tasks: load
                        .tasks
                        .into_iter()
                        .map(|(run_id, run_name, task, attempt)| WorkerTask {
                            run_id,
                            run_name,
                            task,
                            attempt,
                        })
                        .collect(),
                    id: w.id,
                    name: w.name,
                    capacity: w.capacity,
                    registered_at: format_ts(w.registered_at),
                    last_seen_at: format_ts(seen),
                    labels: w.labels,
                    gpus: w.gpus,
                }
            })
            .collect(),
    ))
}

/// Says, for each ready task that asks for labels or GPUs, why no worker that is up takes it
/// now, when none can: as Kubernetes says why a pod is pending.
pub(super) async fn why_waiting(app: &App, tasks: &mut [TaskInfo]) -> ApiResult<()> {
    let asks = |t: &TaskInfo| {
        t.state == TaskState::Ready
            && (!t.node_selector.is_empty() || t.resources.as_ref().is_some_and(|r| r.gpu > 0))
    };
    if !tasks.iter().any(asks) {
        return Ok(());
    }
    let loads = app.sched.worker_loads().await;
    let since = sluice_sdk::api::now_ms() - app.sched.config().lease_ttl_ms;
    let mut up = app.store().list_workers().await?;
    up.retain(|w| seen(w, loads.get(&w.id), since).1);
    for t in tasks.iter_mut().filter(|t| asks(t)) {
        let gpus = t.resources.as_ref().map_or(0, |r| r.gpu);
        let labelled: Vec<_> = up
            .iter()
            .filter(|w| sluice_spec::labels::selects(&t.node_selector, &w.labels))
            .collect();
        let with_gpus: Vec<_> = labelled.iter().filter(|w| w.gpus >= gpus).collect();
        let free = with_gpus
            .iter()
            .any(|w| w.gpus - loads.get(&w.id).map_or(0, |l| l.gpus).min(w.gpus) >= gpus);
        let wanted: Vec<String> = t
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        t.waiting = if up.is_empty() {
            Some("no worker is up".to_string())
        } else if labelled.is_empty() {
            Some(format!(
                "no worker that is up has the labels {}",
                wanted.join(", ")
            ))
        } else if with_gpus.is_empty() {
            Some(format!(
                "no worker that is up{} has {gpus} GPU{}",
                if wanted.is_empty() {
                    String::new()
                } else {
                    format!(" with the labels {}", wanted.join(", "))
                },
                if gpus == 1 { "" } else { "s" }
            ))
        } else if !free {
            Some(format!(
                "waiting for {gpus} free GPU{}: the workers that have them are using them",
                if gpus == 1 { "" } else { "s" }
            ))
        } else {
            None
        };
    }
    Ok(())
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
