//! `/hooks`: webhooks that start runs. A delivery to `POST /hooks/NAME` is verified as its sender
//! signs it — GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the body under the hook's secret),
//! GitLab's `X-Gitlab-Token` — before anything of it is read; an unsigned or badly signed one is
//! a 401 and starts nothing. Its parameters and labels come from paths into its JSON payload; a
//! delivery sent again (same delivery id) gets the run the first one started.

use super::auth::Caller;
use super::error::{check_name, ApiErr, ApiResult, Body};
use super::runs::{start, Start};
use super::{experiments, pipelines, App};
use crate::store::HookRow;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ring::hmac;
use serde_json::Value;
use sluice_sdk::api::{format_ts, CreateHook, Delivered, ErrorCode, Hook, HookList};
use std::collections::BTreeMap;

/// Most parameters and labels a hook maps, and the longest path.
const MOST_FIELDS: usize = 64;
const LONGEST_PATH: usize = 200;

fn bad(m: impl Into<String>) -> ApiErr {
    ApiErr::bad_request(ErrorCode::InvalidBody, m)
}

fn to_api(h: HookRow) -> Hook {
    Hook {
        name: h.name,
        pipeline: h.pipeline,
        kind: h.kind,
        secret: h.secret,
        params: h.params,
        labels: h.labels,
        events: h.events,
        experiment_id: h.experiment_id,
        created_at: format_ts(h.created_at),
    }
}

fn check_paths(what: &str, m: &BTreeMap<String, String>) -> ApiResult<()> {
    if m.len() > MOST_FIELDS {
        return Err(bad(format!(
            "at most {MOST_FIELDS} {what}, not {}",
            m.len()
        )));
    }
    for (k, path) in m {
        if path.is_empty() || path.len() > LONGEST_PATH || path.chars().any(char::is_control) {
            return Err(bad(format!(
                "{what} `{k}`: the payload path must be 1 to {LONGEST_PATH} printable characters"
            )));
        }
    }
    Ok(())
}

pub async fn create(
    State(app): State<App>,
    Body(req): Body<CreateHook>,
) -> ApiResult<(StatusCode, Json<Hook>)> {
    check_name("name", &req.name, 100)?;
    if !req
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(bad(format!(
            "hook name `{}`: letters, digits, `-`, `_` and `.` only (it is part of the hook's URL)",
            req.name
        )));
    }
    if !["github", "gitlab"].contains(&req.kind.as_str()) {
        return Err(bad(format!(
            "`kind` must be github or gitlab, not `{}`",
            req.kind
        )));
    }
    pipelines::find(&app, &req.pipeline).await?;
    if app.store().get_secret(&req.secret).await?.is_none() {
        return Err(ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            format!(
                "secret `{}` is not set (`sluice secrets set {}`): deliveries are verified with it",
                req.secret, req.secret
            ),
        ));
    }
    check_paths("parameters", &req.params)?;
    check_paths("labels", &req.labels)?;
    for name in req.labels.keys() {
        if let Some(p) = sluice_spec::labels::label_problem(name, "x") {
            return Err(bad(format!("label `{name}`: {p}")));
        }
    }
    let events = req.events.unwrap_or_else(|| vec!["push".into()]);
    if events.is_empty() || events.len() > 16 || events.iter().any(|e| e.is_empty() || e.len() > 64)
    {
        return Err(bad("`events` must name 1 to 16 events"));
    }
    let row = HookRow {
        name: req.name,
        pipeline: req.pipeline,
        kind: req.kind,
        secret: req.secret,
        params: req.params,
        labels: req.labels,
        events,
        experiment_id: experiments::resolve(&app, req.experiment.as_deref()).await?,
        created_at: crate::scheduler::now_ms(),
    };
    if !app.store().create_hook(&row).await? {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("a hook named `{}` exists already", row.name),
        ));
    }
    Ok((StatusCode::CREATED, Json(to_api(row))))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<HookList>> {
    let hooks = app.store().list_hooks().await?;
    Ok(Json(HookList {
        hooks: hooks.into_iter().map(to_api).collect(),
    }))
}

pub async fn delete(State(app): State<App>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    if !app.store().delete_hook(&name).await? {
        return Err(ApiErr::not_found(format!("no hook named `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(m: impl Into<String>) -> ApiErr {
    ApiErr::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, m)
}

/// Checks a delivery's signature (GitHub) or token (GitLab) against the hook's secret, in
/// constant time.
fn verify(kind: &str, secret: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    match kind {
        "github" => {
            let sig = header(headers, "x-hub-signature-256").ok_or_else(|| {
                unauthorized("the delivery is not signed: GitHub signs with X-Hub-Signature-256 (set the webhook's secret)")
            })?;
            let tag = sig
                .strip_prefix("sha256=")
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| unauthorized("X-Hub-Signature-256 is not `sha256=HEX`"))?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
            hmac::verify(&key, body, &tag).map_err(|_| {
                unauthorized("the delivery's signature does not match the hook's secret")
            })
        }
        _ => {
            let given = header(headers, "x-gitlab-token").ok_or_else(|| {
                unauthorized("the delivery has no X-Gitlab-Token (set the webhook's secret token)")
            })?;
            // Compared as HMACs under one key, in constant time.
            let key = hmac::Key::new(hmac::HMAC_SHA256, b"sluice: a GitLab hook's token");
            let want = hmac::sign(&key, secret.as_bytes());
            hmac::verify(&key, given.as_bytes(), want.as_ref())
                .map_err(|_| unauthorized("the delivery's X-Gitlab-Token is not the hook's secret"))
        }
    }
}

/// A value in the payload at a dotted path (`head_commit.id`, `commits.0.id`), or one of the
/// names sluice works out: `$branch` and `$tag` (from `ref`), `$commit` (`after`, else
/// `checkout_sha`), `$event`, `$delivery`.
fn lookup(payload: &Value, path: &str, event: &str, delivery: &str) -> Option<Value> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let r = || text(&payload["ref"]);
    let found = match path {
        "$branch" => r().and_then(|r| r.strip_prefix("refs/heads/").map(str::to_string)),
        "$tag" => r().and_then(|r| r.strip_prefix("refs/tags/").map(str::to_string)),
        "$commit" => text(&payload["after"]).or_else(|| text(&payload["checkout_sha"])),
        "$event" => Some(event.to_string()),
        "$delivery" => Some(delivery.to_string()),
        _ => {
            let mut v = payload;
            for part in path.split('.') {
                v = match v {
                    Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                    Value::Object(o) => o.get(part)?,
                    _ => return None,
                };
            }
            return (!v.is_null()).then(|| v.clone());
        }
    };
    found.map(Value::String)
}

/// The event a delivery says it is, as a hook names events: GitHub's as sent (`push`),
/// GitLab's without ` Hook`, in lower case (`Push Hook` is `push`).
fn event_of(kind: &str, headers: &HeaderMap) -> String {
    match kind {
        "github" => header(headers, "x-github-event").unwrap_or("").to_string(),
        _ => header(headers, "x-gitlab-event")
            .unwrap_or("")
            .trim_end_matches(" Hook")
            .to_lowercase(),
    }
}

/// `POST /hooks/{name}`: a delivery.
pub async fn deliver(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let hook = app
        .store()
        .get_hook(&name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no hook named `{name}`")))?;
    let secret = match app.store().get_secret(&hook.secret).await? {
        Some(row) => app.secrets.open(&row).map_err(|e| {
            ApiErr::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("the hook's secret does not open: {e}"),
            )
        })?,
        None => {
            return Err(ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Other("hook_secret_missing".into()),
                format!(
                    "the secret `{}` the hook is verified with is not set: nothing was started",
                    hook.secret
                ),
            ))
        }
    };
    verify(&hook.kind, &secret, &headers, &body)?;
    let event = event_of(&hook.kind, &headers);
    if !hook.events.iter().any(|e| e.eq_ignore_ascii_case(&event)) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(Delivered {
                run_id: None,
                duplicate: false,
                ignored: Some(format!(
                    "the hook starts runs for {} events, not `{event}`",
                    hook.events.join(", ")
                )),
            }),
        )
            .into_response());
    }
    let delivery = header(&headers, "x-github-delivery")
        .or_else(|| header(&headers, "x-gitlab-event-uuid"))
        .or_else(|| header(&headers, "x-gitlab-webhook-uuid"))
        .map(str::to_string)
        .unwrap_or_else(|| sluice_spec::digest(&String::from_utf8_lossy(&body)));
    if delivery.len() > 200 {
        return Err(bad("the delivery id is over 200 bytes"));
    }
    if let Some(run) = app.store().hook_delivery(&name, &delivery).await? {
        return Ok(Json(Delivered {
            run_id: Some(run),
            duplicate: true,
            ignored: None,
        })
        .into_response());
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the delivery's payload is not JSON: {e}")))?;
    let mut params = sluice_sdk::api::Params::new();
    for (param, path) in &hook.params {
        let v = lookup(&payload, path, &event, &delivery).ok_or_else(|| {
            ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidParams,
                format!("parameter `{param}`: the payload has nothing at `{path}`"),
            )
        })?;
        params.insert(param.clone(), v);
    }
    let mut labels = sluice_sdk::api::Labels::new();
    for (label, path) in &hook.labels {
        if let Some(v) = lookup(&payload, path, &event, &delivery) {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            labels.insert(label.clone(), text);
        }
    }
    labels.insert("hook".into(), hook.name.clone());
    sluice_sdk::api::check_labels(&labels)
        .map_err(|e| bad(format!("the labels this delivery gives: {e}")))?;
    let (_, version) = pipelines::version_of(&app, &hook.pipeline, None).await?;
    let created = start(
        &app,
        &Caller::Anonymous,
        Start {
            file_name: None,
            yaml: version.yaml,
            version_id: Some(version.id),
            version: Some(version.version),
            name: None,
            params,
            // A delivery carries no files: a pipeline that takes input artifacts is refused.
            inputs: Default::default(),
            inherited: Vec::new(),
            labels,
            cache: true,
            experiment_id: hook.experiment_id.clone(),
            // Two copies of one delivery at once start one run.
            idempotency: Some((
                format!("hook:{name}:{delivery}"),
                sluice_spec::digest(&String::from_utf8_lossy(&body)),
            )),
        },
    )
    .await?;
    let run = created.id().to_string();
    app.store()
        .record_delivery(&name, &delivery, &run, crate::scheduler::now_ms())
        .await?;
    tracing::info!(hook = %name, delivery = %delivery, run = %run, "a webhook started a run");
    Ok((
        StatusCode::CREATED,
        Json(Delivered {
            run_id: Some(run),
            duplicate: false,
            ignored: None,
        }),
    )
        .into_response())
}
