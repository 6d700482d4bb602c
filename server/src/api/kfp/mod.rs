//! Kubeflow Pipelines' REST API (v2beta1) under `/apis/v2beta1`, the part `kfp.Client` calls:
//! pipelines and their versions, experiments, runs and recurring runs, in Kubeflow's
//! protobuf-JSON shapes, over sluice's own store and scheduler. Errors come in Kubeflow's shape
//! (`{"code": gRPC code, "message", "details"}`); an endpoint sluice does not serve is a 501
//! that names it.

mod experiments;
mod filter;
mod pipelines;
mod recurring;
mod runs;

use super::auth::{Access, RouteAccess};
use super::error::ApiErr;
use super::{App, Table};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use sluice_sdk::api::ErrorCode;

/// Where this API is served.
pub const PREFIX: &str = "/apis/v2beta1";

fn table() -> Table {
    use Access::*;
    use Method as M;
    Table::new()
        .add(M::GET, "/healthz", Open, || async {
            Json(json!({"multi_user": false, "pipeline_store": "sluice"}))
        })
        .add(M::POST, "/pipelines/upload", Submit, pipelines::upload)
        .add(
            M::POST,
            "/pipelines/upload_version",
            Submit,
            pipelines::upload_version,
        )
        .add(M::GET, "/pipelines", Read, pipelines::list)
        .add(
            M::GET,
            "/pipelines/names/{name}",
            Read,
            pipelines::get_by_name,
        )
        .add(M::GET, "/pipelines/{id}", Read, pipelines::get)
        .add(M::DELETE, "/pipelines/{id}", Submit, pipelines::delete)
        .add(
            M::GET,
            "/pipelines/{id}/versions",
            Read,
            pipelines::versions,
        )
        .add(
            M::GET,
            "/pipelines/{id}/versions/{version}",
            Read,
            pipelines::version,
        )
        .add(
            M::DELETE,
            "/pipelines/{id}/versions/{version}",
            Submit,
            pipelines::delete_version,
        )
        .add(M::POST, "/experiments", Submit, experiments::create)
        .add(M::GET, "/experiments", Read, experiments::list)
        .add(M::GET, "/experiments/{id}", Read, experiments::get)
        .add(M::POST, "/experiments/{id}", Submit, experiments::action)
        .add(M::DELETE, "/experiments/{id}", Submit, experiments::delete)
        .add(M::POST, "/runs", Submit, runs::create)
        .add(M::GET, "/runs", Read, runs::list)
        .add(M::GET, "/runs/{id}", Read, runs::get)
        .add(M::POST, "/runs/{id}", Submit, runs::action)
        .add(M::DELETE, "/runs/{id}", Submit, runs::delete)
        .add(M::POST, "/recurringruns", Submit, recurring::create)
        .add(M::GET, "/recurringruns", Read, recurring::list)
        .add(M::GET, "/recurringruns/{id}", Read, recurring::get)
        .add(M::POST, "/recurringruns/{id}", Submit, recurring::action)
        .add(M::DELETE, "/recurringruns/{id}", Submit, recurring::delete)
}

/// Every route of this API, with who may call it (paths under [`PREFIX`]).
pub fn routes() -> Vec<(Method, &'static str, RouteAccess)> {
    table().routes
}

pub fn router(app: App) -> Router {
    table()
        .router
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            super::auth::check,
        ))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            super::announced_size,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(app.max_body))
        .fallback(unserved)
        .layer(middleware::from_fn(kubeflow_errors))
        .with_state(app)
}

/// An endpoint of Kubeflow's API that sluice does not serve.
async fn unserved(req: Request) -> ApiErr {
    ApiErr::new(
        StatusCode::NOT_IMPLEMENTED,
        ErrorCode::Unimplemented,
        format!(
            "sluice does not serve {} {PREFIX}{} of Kubeflow's API: it serves healthz, pipelines (upload, upload_version, list, get, get by name, delete) and their versions (list, get, delete), experiments, runs and recurring runs under {PREFIX}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// gRPC's code for an HTTP status, as Kubeflow's gateway maps them.
fn grpc_code(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 | 413 | 414 | 422 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        405 | 501 => 12,
        409 => 6,
        429 => 8,
        503 => 14,
        504 => 4,
        _ => 13,
    }
}

/// Rewrites sluice's error bodies (`{"error": {"code", "message"}}`) into Kubeflow's
/// (`{"error", "code", "message", "details"}`), which `kfp-server-api` reads.
async fn kubeflow_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if status == StatusCode::METHOD_NOT_ALLOWED {
                "sluice does not serve this method on this endpoint of Kubeflow's API".into()
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            }
        });
    let reason = v["error"]["code"].as_str().unwrap_or("").to_string();
    let out = json!({
        "error": message,
        "code": grpc_code(status),
        "message": message,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "sluice"}],
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(out.to_string())).into_response()
}

/// A time as Kubeflow writes it (RFC 3339, UTC).
pub(super) fn ts(ms: i64) -> String {
    sluice_sdk::api::format_ts(ms)
}

/// A Kubeflow list's paging: `page_size` (default 20, at most 1000) and the offset a
/// `page_token` this API gave stands for.
pub(super) fn paging(size: Option<i64>, token: Option<&str>) -> Result<(usize, usize), ApiErr> {
    let size = match size {
        None | Some(0) => 20,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(n) => return Err(bad(format!("page_size must be 1 to 1000, not {n}"))),
    };
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix("o:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| bad(format!("page_token `{t}` is not one this server gave")))?,
    };
    Ok((size, offset))
}

/// One page of `items` from `offset`, with the token of the next.
pub(super) fn page<T>(items: Vec<T>, size: usize, offset: usize) -> (Vec<T>, String) {
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(offset).take(size).collect();
    let next = if offset + size < total {
        format!("o:{}", offset + size)
    } else {
        String::new()
    };
    (out, next)
}

pub(super) fn bad(m: impl Into<String>) -> ApiErr {
    ApiErr::bad_request(ErrorCode::InvalidQuery, m)
}

/// A pipeline file as the JSON object Kubeflow shows as `pipeline_spec` (its first document).
pub(super) fn spec_json(yaml: &str) -> Value {
    let mut d = sluice_spec::diag::Diagnostics::new("pipeline.yaml");
    sluice_spec::yaml::parse(yaml, &mut d)
        .map(|n| n.to_json())
        .unwrap_or(Value::Null)
}

/// A `pipeline_spec` as Kubeflow's client sends it (the IR, or the IR and a platform spec) as a
/// pipeline file sluice loads: JSON is YAML, one document each.
pub(super) fn spec_file(spec: &Value) -> Result<String, ApiErr> {
    if !spec.is_object() {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            "`pipeline_spec` must be an object (a compiled Kubeflow pipeline)",
        ));
    }
    Ok(
        match (spec.get("pipeline_spec"), spec.get("platform_spec")) {
            (Some(p), Some(platform)) => format!("{p}\n---\n{platform}\n"),
            (Some(p), None) => p.to_string(),
            _ => spec.to_string(),
        },
    )
}

/// An int64 as protobuf's JSON carries it: a number or a string of one.
pub(super) fn int64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// What Kubeflow's lists take.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    pub experiment_id: Option<String>,
    pub page_token: Option<String>,
    pub page_size: Option<i64>,
    pub sort_by: Option<String>,
    pub filter: Option<String>,
}

/// Sorts Kubeflow objects by `sort_by` (`FIELD` or `FIELD desc`; created_at if none).
fn sort(items: &mut [Value], sort_by: Option<&str>, fields: &[&str]) -> Result<(), ApiErr> {
    let s = sort_by.unwrap_or("").trim();
    let (key, desc) = match s.split_once(' ') {
        Some((k, d)) if d.trim() == "desc" => (k, true),
        Some((k, d)) if d.trim() == "asc" => (k, false),
        Some(_) => return Err(bad(format!("sort_by `{s}`: expected FIELD or FIELD desc"))),
        None if s.is_empty() => ("created_at", false),
        None => (s, false),
    };
    let key = if key == "name" { "display_name" } else { key };
    if !fields.contains(&key) {
        return Err(bad(format!(
            "cannot sort by `{key}`: sort by {}",
            fields.join(", ")
        )));
    }
    items.sort_by(|a, b| {
        let o = a[key].as_str().cmp(&b[key].as_str());
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(())
}

/// Filters, sorts and pages a short list of Kubeflow objects (`what`, filtered and sorted by
/// `keys`) as `q` asks: `{LIST: […], "total_size", "next_page_token"}`.
pub(super) fn listed(
    list: &str,
    items: Vec<Value>,
    what: &str,
    keys: &[&str],
    q: &ListQuery,
) -> Result<Json<Value>, ApiErr> {
    let preds = filter::parse(q.filter.as_deref())?;
    let mut kept = Vec::new();
    for i in items {
        if filter::matches(&i, &preds, what, keys)? {
            kept.push(i);
        }
    }
    sort(&mut kept, q.sort_by.as_deref(), keys)?;
    let (size, offset) = paging(q.page_size, q.page_token.as_deref())?;
    let total = kept.len();
    let (out, next) = page(kept, size, offset);
    Ok(Json(
        json!({list: out, "total_size": total, "next_page_token": next}),
    ))
}
