//! What operators point their tools at, served at the top level and under `/api/v1` alike:
//! `/metrics` (Prometheus), `/livez` (the process answers) and `/readyz` (its database does too).

use super::error::ApiResult;
use super::App;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn metrics(State(app): State<App>) -> ApiResult<Response> {
    let now = app.sched.gauges().await?;
    let body = app.sched.metrics().render(&now);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response())
}

pub async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready while the database answers; 503 naming the error when it does not.
pub async fn readyz(State(app): State<App>) -> Response {
    match app.store().ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reason": e.to_string()})),
        )
            .into_response(),
    }
}
