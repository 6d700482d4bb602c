//! The REST API under `/api/v1` (axum, JSON), with server-sent event streams for live runs and logs.
//! The OpenAPI document that describes it is served at `/api/v1/openapi.json`.

mod artifacts;
pub mod auth;
pub mod error;
pub mod experiments;
mod hooks;
pub mod kfp;
mod login;
mod ops;
mod pipelines;
mod runs;
pub mod schedules;
mod secrets;
mod stream;
pub mod tokens;
pub mod uploads;
mod workers;

use crate::scheduler::Scheduler;
use crate::store::DynStore;
use auth::{Access, RouteAccess};
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use error::ApiErr;
use sluice_sdk::api::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub sched: Arc<Scheduler>,
    /// Who may call: tokens, workers' credentials.
    pub auth: Arc<auth::Auth>,
    /// What pipelines may ask of the hosts their steps run on.
    pub policy: Arc<crate::policy::Policy>,
    /// The key secrets are kept under.
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// Where the artifacts the server serves are kept (its data directory).
    pub artifacts: Arc<sluice_sdk::artifacts::Artifacts>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// The largest upload (`PUT /uploads/{digest}`) accepted, in bytes.
    pub max_upload: u64,
    /// How many uploads are taken at once, and how long one may send nothing.
    pub uploads: Arc<uploads::Limits>,
}

impl App {
    pub fn store(&self) -> &DynStore {
        self.sched.store()
    }
}

/// The API's routes as they are built: the router, and each route's method, path and who may
/// call it, so that what is served, what is listed (the OpenAPI document, checked by a test) and
/// what is allowed cannot drift.
struct Table {
    router: Router<App>,
    routes: Vec<(Method, &'static str, RouteAccess)>,
}

impl Table {
    fn new() -> Table {
        Table {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add<H, T>(self, method: Method, path: &'static str, access: Access, handler: H) -> Table
    where
        H: Handler<T, App>,
        T: 'static,
    {
        self.route(method, path, access, false, handler)
    }

    /// A route a browser opens without headers (an event stream, a download): it also takes
    /// the token as `?access_token=`.
    fn add_browsable<H, T>(
        self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Table
    where
        H: Handler<T, App>,
        T: 'static,
    {
        self.route(method, path, access, true, handler)
    }

    fn route<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        query_token: bool,
        handler: H,
    ) -> Table
    where
        H: Handler<T, App>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a plain HTTP method");
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((
            method,
            path,
            RouteAccess {
                access,
                query_token,
            },
        ));
        self
    }
}

/// Every route, with who may call it.
fn table() -> Table {
    use Access::*;
    use Method as M;
    Table::new()
        .add(M::GET, "/health", Open, || async {
            Json(serde_json::json!({"status": "ok"}))
        })
        .add(M::GET, "/openapi.json", Open, openapi)
        .add(M::GET, "/livez", Open, ops::livez)
        .add(M::GET, "/readyz", Open, ops::readyz)
        .add(M::GET, "/metrics", Read, ops::metrics)
        .add(M::POST, "/login", Open, login::login)
        .add(M::POST, "/logout", Open, login::logout)
        .add(M::GET, "/whoami", Read, login::whoami)
        .add(M::POST, "/pipelines", Submit, pipelines::upload)
        .add(M::GET, "/pipelines", Read, pipelines::list)
        .add(M::GET, "/pipelines/{name}", Read, pipelines::get)
        .add(
            M::GET,
            "/pipelines/{name}/versions",
            Read,
            pipelines::versions,
        )
        .add(
            M::GET,
            "/pipelines/{name}/versions/{version}",
            Read,
            pipelines::version,
        )
        .add(M::POST, "/runs", Submit, runs::create)
        .add(M::GET, "/runs", Read, runs::list)
        .add(M::GET, "/runs/{id}", Read, runs::get)
        .add(M::POST, "/runs/{id}/cancel", Submit, runs::cancel)
        .add(M::POST, "/runs/{id}/rerun", Submit, runs::rerun)
        .add(M::POST, "/runs/{id}/archive", Submit, runs::archive)
        .add(M::POST, "/runs/{id}/unarchive", Submit, runs::unarchive)
        .add(M::DELETE, "/runs/{id}", Submit, runs::delete)
        .add(M::GET, "/lineage", Read, runs::lineage)
        .add(M::POST, "/experiments", Submit, experiments::create)
        .add(M::GET, "/experiments", Read, experiments::list)
        .add(M::GET, "/experiments/{id}", Read, experiments::get)
        .add(
            M::POST,
            "/experiments/{id}/archive",
            Submit,
            experiments::archive,
        )
        .add(
            M::POST,
            "/experiments/{id}/unarchive",
            Submit,
            experiments::unarchive,
        )
        .add(M::DELETE, "/experiments/{id}", Submit, experiments::delete)
        .add(M::POST, "/schedules", Submit, schedules::create)
        .add(M::GET, "/schedules", Read, schedules::list)
        .add(M::GET, "/schedules/{id}", Read, schedules::get)
        .add(M::POST, "/schedules/{id}/pause", Submit, schedules::pause)
        .add(M::POST, "/schedules/{id}/resume", Submit, schedules::resume)
        .add(M::DELETE, "/schedules/{id}", Submit, schedules::delete)
        .add_browsable(M::GET, "/runs/{id}/events", Read, stream::run_events)
        .add_browsable(
            M::GET,
            "/runs/{id}/tasks/{task}/logs",
            Read,
            stream::task_logs,
        )
        .add_browsable(
            M::GET,
            "/runs/{id}/tasks/{task}/artifacts/{name}",
            Read,
            artifacts::download,
        )
        .add_browsable(M::GET, "/events", Read, stream::all_runs)
        .add(M::POST, "/workers", Register, workers::register)
        .add(M::GET, "/workers", Read, workers::list)
        .add(M::POST, "/workers/{id}/lease", WorkerSelf, workers::lease)
        .add(
            M::POST,
            "/workers/{id}/heartbeat",
            WorkerSelf,
            workers::heartbeat,
        )
        .add(M::POST, "/workers/{id}/report", WorkerSelf, workers::report)
        .add(
            M::GET,
            "/workers/{id}/uploads/{digest}",
            WorkerSelf,
            uploads::content,
        )
        .add(M::POST, "/tokens", Admin, tokens::create)
        .add(M::GET, "/tokens", Admin, tokens::list)
        .add(M::DELETE, "/tokens/{id}", Admin, tokens::revoke)
        .add(M::POST, "/hooks", Admin, hooks::create)
        .add(M::GET, "/hooks", Admin, hooks::list)
        .add(M::DELETE, "/hooks/{name}", Admin, hooks::delete)
        // A delivery is verified by its signature, not a token.
        .add(M::POST, "/hooks/{name}", Open, hooks::deliver)
        // A run's input artifacts, sent before the run is made.
        .add(M::GET, "/uploads/{digest}", Submit, uploads::get)
        .add(M::PUT, "/uploads/{digest}", Submit, uploads::put)
        .add(M::GET, "/secrets", Admin, secrets::list)
        .add(M::PUT, "/secrets/{name}", Admin, secrets::set)
        .add(M::DELETE, "/secrets/{name}", Admin, secrets::delete)
}

/// Every route the API serves under `/api/v1`: method, path, and who may call it.
pub fn routes() -> Vec<(Method, &'static str, RouteAccess)> {
    table().routes
}

/// What the route at `path` (as matched, under `/api/v1`) requires.
fn route_access(method: &Method, path: &str) -> Option<RouteAccess> {
    static ACCESS: OnceLock<HashMap<(Method, &'static str), RouteAccess>> = OnceLock::new();
    static KFP: OnceLock<HashMap<(Method, &'static str), RouteAccess>> = OnceLock::new();
    let (map, path) = match path.strip_prefix(kfp::PREFIX) {
        Some(rest) => (
            KFP.get_or_init(|| {
                kfp::routes()
                    .into_iter()
                    .map(|(m, p, a)| ((m, p), a))
                    .collect()
            }),
            rest,
        ),
        None => (
            ACCESS.get_or_init(|| routes().into_iter().map(|(m, p, a)| ((m, p), a)).collect()),
            path.strip_prefix("/api/v1").unwrap_or(path),
        ),
    };
    // HEAD is answered by GET's route.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    map.get(&(method.clone(), path)).copied()
}

pub fn router(app: App) -> Router {
    let api = table()
        .router
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::check))
        .route_layer(middleware::from_fn_with_state(app.clone(), announced_size))
        .layer(axum::extract::DefaultBodyLimit::max(app.max_body))
        .fallback(|| async { ApiErr::not_found("no such API endpoint") })
        .with_state(app.clone());
    let app_for_kfp = app.clone();
    // Where operators' tools look for them, with the same access as under `/api/v1`.
    let ops = Router::new()
        .route("/metrics", axum::routing::get(ops::metrics))
        .route("/livez", axum::routing::get(ops::livez))
        .route("/readyz", axum::routing::get(ops::readyz))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::check))
        .with_state(app);
    Router::new()
        .nest("/api/v1", api)
        .merge(ops)
        .nest(kfp::PREFIX, kfp::router(app_for_kfp))
}

/// Longest request target (path and query) served: a longer one gets a 414 that says so.
pub const MAX_URI: usize = 8192;

/// What every answer of the server holds to, around the API and the UI alike: an over-long
/// request target is refused with a 414 naming the limit, and every error answer has a JSON
/// body with a code and a message (the router's own 405s had none).
/// A request for a host name the server does not answer to is refused first of all.
pub fn edges(router: Router, hosts: auth::HostPolicy) -> Router {
    router
        .layer(middleware::map_response(error_body))
        .layer(middleware::from_fn(uri_limit))
        .layer(middleware::from_fn_with_state(
            Arc::new(hosts),
            auth::host_check,
        ))
}

/// A body announced (`Content-Length`) over the limit is refused before any of it is read.
async fn announced_size(State(app): State<App>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // An upload has a limit of its own, and is streamed rather than read whole.
    let upload = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|p| p.as_str().ends_with("/uploads/{digest}"));
    if !upload && announced.is_some_and(|n| n > app.max_body as u64) {
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

/// Takes `access_token` (percent-decoded) out of the request's query, where browsers' event
/// streams and downloads, which cannot send headers, put it: the handlers never see it, so their
/// queries can refuse every field they do not know.
pub(crate) fn take_query_token(req: &mut Request) -> Option<String> {
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
        let mut doc = sluice_spec::yaml::parse(include_str!("openapi.yaml"), &mut d)
            .map(|n| n.to_json())
            .unwrap_or_default();
        // Each operation names the roles it takes, from the route table itself.
        for (method, path, route) in routes() {
            // Looked up, never made: a route missing from the document stays missing (and
            // the test that compares the two says so).
            let op = doc
                .get_mut("paths")
                .and_then(|p| p.get_mut(path))
                .and_then(|p| p.get_mut(method.as_str().to_ascii_lowercase()));
            if let Some(op) = op.filter(|o| o.is_object()) {
                op["x-roles"] = match route.access {
                    Access::WorkerSelf => serde_json::json!(["the worker's own credential"]),
                    a => auth::Role::ALL
                        .into_iter()
                        .filter(|r| a.admits(*r))
                        .map(|r| r.as_str())
                        .collect(),
                };
            }
        }
        doc
    })
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_document().clone())
}
