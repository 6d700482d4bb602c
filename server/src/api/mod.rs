//! The REST API under `/api/v1` (axum, JSON), with server-sent event streams for live runs and logs.
//! The OpenAPI document that describes it is served at `/api/v1/openapi.json`.

mod artifacts;
pub mod error;
mod pipelines;
mod runs;
mod stream;
mod workers;

use crate::scheduler::Scheduler;
use crate::store::DynStore;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use error::ApiErr;
use sluice_sdk::api::ErrorCode;
use std::sync::{Arc, OnceLock};

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub sched: Arc<Scheduler>,
    /// When set, every API call must carry `Authorization: Bearer <token>` (or, for browsers'
    /// event streams, `?access_token=<token>`).
    pub token: Option<Arc<str>>,
    /// Artifact files under this directory (the server's data directory, which holds the built-in
    /// worker's) can be downloaded through the API.
    /// Where the artifacts the server serves are kept (its data directory).
    pub artifacts: Arc<dyn sluice_sdk::artifacts::ArtifactStore>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

impl App {
    pub fn store(&self) -> &DynStore {
        self.sched.store()
    }
}

/// The API's routes as they are built: the router, and each route's method and path, so that
/// what is served and what is listed (the OpenAPI document, checked by a test) cannot drift.
struct Table {
    router: Router<App>,
    routes: Vec<(Method, &'static str)>,
}

impl Table {
    fn new() -> Table {
        Table {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Table
    where
        H: Handler<T, App>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a plain HTTP method");
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((method, path));
        self
    }
}

/// The routes that need a credential when the server has one.
fn guarded() -> Table {
    use Method as M;
    Table::new()
        .add(M::POST, "/pipelines", pipelines::upload)
        .add(M::GET, "/pipelines", pipelines::list)
        .add(M::GET, "/pipelines/{name}", pipelines::get)
        .add(M::GET, "/pipelines/{name}/versions", pipelines::versions)
        .add(
            M::GET,
            "/pipelines/{name}/versions/{version}",
            pipelines::version,
        )
        .add(M::POST, "/runs", runs::create)
        .add(M::GET, "/runs", runs::list)
        .add(M::GET, "/runs/{id}", runs::get)
        .add(M::POST, "/runs/{id}/cancel", runs::cancel)
        .add(M::POST, "/runs/{id}/rerun", runs::rerun)
        .add(M::GET, "/runs/{id}/events", stream::run_events)
        .add(M::GET, "/runs/{id}/tasks/{task}/logs", stream::task_logs)
        .add(
            M::GET,
            "/runs/{id}/tasks/{task}/artifacts/{name}",
            artifacts::download,
        )
        .add(M::GET, "/events", stream::all_runs)
        .add(M::POST, "/workers", workers::register)
        .add(M::GET, "/workers", workers::list)
        .add(M::POST, "/workers/{id}/lease", workers::lease)
        .add(M::POST, "/workers/{id}/heartbeat", workers::heartbeat)
        .add(M::POST, "/workers/{id}/report", workers::report)
}

/// The routes anyone may call.
fn open() -> Table {
    Table::new()
        .add(Method::GET, "/health", || async {
            Json(serde_json::json!({"status": "ok"}))
        })
        .add(Method::GET, "/openapi.json", openapi)
}

/// Every route the API serves under `/api/v1`: method and path.
pub fn routes() -> Vec<(Method, &'static str)> {
    let mut all = guarded().routes;
    all.extend(open().routes);
    all
}

pub fn router(app: App) -> Router {
    let api = guarded()
        .router
        .route_layer(middleware::from_fn_with_state(app.clone(), auth))
        .route_layer(middleware::from_fn_with_state(app.clone(), announced_size))
        .layer(axum::extract::DefaultBodyLimit::max(app.max_body))
        .merge(open().router)
        .fallback(|| async { ApiErr::not_found("no such API endpoint") })
        .with_state(app);
    Router::new().nest("/api/v1", api)
}

/// Longest request target (path and query) served: a longer one gets a 414 that says so.
pub const MAX_URI: usize = 8192;

/// What every answer of the server holds to, around the API and the UI alike: an over-long
/// request target is refused with a 414 naming the limit, and every error answer has a JSON
/// body with a code and a message (the router's own 405s had none).
pub fn edges(router: Router) -> Router {
    router
        .layer(middleware::map_response(error_body))
        .layer(middleware::from_fn(uri_limit))
}

/// A body announced (`Content-Length`) over the limit is refused before any of it is read.
async fn announced_size(State(app): State<App>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > app.max_body as u64) {
        return error::too_large(app.max_body).into_response();
    }
    next.run(req).await
}

async fn uri_limit(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI {
        return ApiErr::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the request's path and query are {len} bytes, over the limit of {MAX_URI}"),
        )
        .into_response();
    }
    next.run(req).await
}

async fn error_body(resp: Response) -> Response {
    let status = resp.status();
    let empty = resp.headers().get(header::CONTENT_TYPE).is_none()
        && axum::body::HttpBody::size_hint(resp.body()).exact() == Some(0);
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = resp
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                ErrorCode::MethodNotAllowed,
                format!("this endpoint does not take that method (it takes: {allowed})"),
            )
        }
        StatusCode::URI_TOO_LONG => (
            ErrorCode::UriTooLong,
            "the request's path is too long".into(),
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such endpoint".into()),
        s => (
            ErrorCode::HttpError,
            s.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    let mut out = ApiErr::new(status, code, message).into_response();
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

async fn auth(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let from_query = take_query_token(&mut req);
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or(from_query.as_deref());
        if given != Some(&**token) {
            return ApiErr::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "missing or wrong bearer token (set SLUICE_TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Takes `access_token` (percent-decoded) out of the request's query, where browsers' event
/// streams and downloads, which cannot send headers, put it: the handlers never see it, so their
/// queries can refuse every field they do not know.
fn take_query_token(req: &mut Request) -> Option<String> {
    let query = req.uri().query()?;
    let is_token = |piece: &&str| piece.split('=').next() == Some("access_token");
    if !query.split('&').any(|p| is_token(&p)) {
        return None;
    }
    let token = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .ok()?
        .0
        .into_iter()
        .find_map(|(k, v)| (k == "access_token").then_some(v));
    let rest: Vec<&str> = query.split('&').filter(|p| !is_token(p)).collect();
    let mut target = req.uri().path().to_string();
    if !rest.is_empty() {
        target.push('?');
        target.push_str(&rest.join("&"));
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = target.parse().ok();
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    token
}

/// The OpenAPI document, written as YAML beside this file and served as JSON.
pub fn openapi_document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut d = sluice_spec::diag::Diagnostics::new("openapi.yaml");
        sluice_spec::yaml::parse(include_str!("openapi.yaml"), &mut d)
            .map(|n| n.to_json())
            .unwrap_or_default()
    })
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_document().clone())
}
