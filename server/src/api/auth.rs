//! Who is calling, and what each route lets them do.
//!
//! A caller presents a token as `Authorization: Bearer …`, as the UI's login cookie, or — on the
//! event streams and downloads a browser cannot send headers on — as `?access_token=`. Tokens have
//! a role (`admin`, `submit`, `read`, `worker`) and are kept hashed; each worker, once registered,
//! acts with its own credential and only on its own leases. A server with no token configured
//! (loopback, or `--insecure`) lets anyone do what an admin may, workers still bound to their own
//! credentials.

use super::error::ApiErr;
use super::App;
use crate::store::TokenRow;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sluice_sdk::api::ErrorCode;
use sluice_spec::ids::WorkerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The cookie the UI's login sets.
pub const COOKIE: &str = "sluice_token";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything: tokens, secrets, and what every other role may do.
    Admin,
    /// Upload pipelines and start, cancel and rerun runs (of named pipelines only, if the token
    /// names some), and read.
    Submit,
    /// Read pipelines, runs, logs, artifacts and workers.
    Read,
    /// Register workers (each then acts with its own credential).
    Worker,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Submit, Role::Read, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submit => "submit",
            Role::Read => "read",
            Role::Worker => "worker",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// Anyone, on a server that requires no credential: what an admin may do.
    Anonymous,
    /// A token's holder.
    Token {
        id: String,
        name: String,
        role: Role,
        /// A `submit` token's pipelines, when it is limited to some.
        pipelines: Option<Vec<String>>,
    },
    /// A registered worker, by its own credential.
    Worker(WorkerId),
}

impl Caller {
    fn role(&self) -> Option<Role> {
        match self {
            Caller::Anonymous => Some(Role::Admin),
            Caller::Token { role, .. } => Some(*role),
            Caller::Worker(_) => None,
        }
    }

    /// Whether the caller may upload and run the pipeline named `name`: a `submit` token limited
    /// to some pipelines may touch only those.
    pub fn may_submit(&self, pipeline: &str) -> Result<(), ApiErr> {
        match self {
            Caller::Token {
                name,
                pipelines: Some(allowed),
                role: Role::Submit,
                ..
            } if !allowed.iter().any(|p| p == pipeline) => Err(ApiErr::forbidden(format!(
                "token `{name}` may submit only pipeline(s) {}, not `{pipeline}`",
                allowed
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// What may touch runs of every pipeline at once (an experiment's): not a token limited to
    /// some pipelines.
    pub fn may_touch_all(&self, what: &str) -> Result<(), ApiErr> {
        match self {
            Caller::Token {
                name,
                pipelines: Some(_),
                role: Role::Submit,
                ..
            } => Err(ApiErr::forbidden(format!(
                "token `{name}` is limited to some pipelines, and may not {what}"
            ))),
            _ => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Token { name, role, .. } => format!("token `{name}` ({})", role.as_str()),
            Caller::Worker(id) => format!("worker {id}"),
        }
    }
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the API document, logging in).
    Open,
    /// `read`, `submit` or `admin`.
    Read,
    /// `submit` or `admin`.
    Submit,
    /// `admin` only.
    Admin,
    /// A `worker` or `admin` token: registering a worker.
    Register,
    /// The worker named in the path, by the credential it was given when it registered.
    WorkerSelf,
}

impl Access {
    /// Whether `role` may call a route that requires this (for routes that take tokens).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Open => true,
            Access::Read => matches!(role, Role::Read | Role::Submit | Role::Admin),
            Access::Submit => matches!(role, Role::Submit | Role::Admin),
            Access::Admin => role == Role::Admin,
            Access::Register => matches!(role, Role::Worker | Role::Admin),
            Access::WorkerSelf => false,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Access::Open => "nothing",
            Access::Read => "a read, submit or admin token",
            Access::Submit => "a submit or admin token",
            Access::Admin => "an admin token",
            Access::Register => "a worker or admin token",
            Access::WorkerSelf => "the worker's own credential",
        }
    }
}

/// A route's requirements, as the route table declares them.
#[derive(Debug, Clone, Copy)]
pub struct RouteAccess {
    pub access: Access,
    /// Whether `?access_token=` is taken (event streams and downloads, which browsers open
    /// without headers).
    pub query_token: bool,
}

/// Makes a new secret: a prefix naming what it is (so that secret scanners find it), then 256
/// random bits in hex.
pub fn new_secret(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random source works");
    format!("{prefix}{}", hex::encode(b))
}

/// What a secret is kept as.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The server's authentication state.
pub struct Auth {
    /// Whether a credential is required (tokens are configured). Turned on, never off, while the
    /// server runs: making the first token locks an open server.
    required: AtomicBool,
    /// Tokens given at start (`--token`, the built-in worker's), by hash: never stored.
    given: HashMap<String, Caller>,
    /// Tokens read from the store, by hash, for a few seconds (a revoked token is dropped at once
    /// when revoked through the API, within [`CACHE_TTL`] otherwise).
    cache: RwLock<HashMap<String, (Caller, Instant)>>,
    /// Each worker's credential hash, by worker id.
    workers: RwLock<HashMap<String, String>>,
    /// Whether the server speaks TLS (the login cookie is then `Secure`).
    pub tls: bool,
}

const CACHE_TTL: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 4096;

impl Auth {
    pub fn new(required: bool, given: HashMap<String, Caller>, tls: bool) -> Auth {
        Auth {
            required: AtomicBool::new(required),
            given,
            cache: Default::default(),
            workers: Default::default(),
            tls,
        }
    }

    pub fn required(&self) -> bool {
        self.required.load(Ordering::Relaxed)
    }

    pub fn require(&self) {
        self.required.store(true, Ordering::Relaxed);
    }

    /// Forgets what was cached of the store's tokens (one was revoked).
    pub fn forget_tokens(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }

    pub fn worker_registered(&self, id: &str, credential_hash: &str) {
        if let Ok(mut w) = self.workers.write() {
            w.insert(id.to_string(), credential_hash.to_string());
        }
    }

    /// The holder of `token`, if it is a live token.
    pub async fn token(&self, app: &App, token: &str) -> Result<Option<Caller>, ApiErr> {
        let h = hash(token);
        if let Some(c) = self.given.get(&h) {
            return Ok(Some(c.clone()));
        }
        if let Some((c, at)) = self.cache.read().ok().and_then(|c| c.get(&h).cloned()) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(c));
            }
        }
        let Some(row) = app.store().token_by_hash(&h).await? else {
            return Ok(None);
        };
        let caller = caller_of(&row);
        if let (Some(c), Ok(mut cache)) = (&caller, self.cache.write()) {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(h, (c.clone(), Instant::now()));
        }
        Ok(caller)
    }

    /// Whether `credential` is worker `id`'s own: `None` when there is no such worker (it
    /// registers again).
    async fn worker(&self, app: &App, id: &str, credential: &str) -> Result<Option<bool>, ApiErr> {
        let h = hash(credential);
        let known = self.workers.read().ok().and_then(|w| w.get(id).cloned());
        let expected = match known {
            Some(k) => Some(k),
            None => {
                let Some(row) = app.store().get_worker(id).await? else {
                    return Ok(None);
                };
                let k = row.credential_hash;
                if let (Some(k), Ok(mut w)) = (&k, self.workers.write()) {
                    if w.len() >= CACHE_MAX {
                        w.clear();
                    }
                    w.insert(id.to_string(), k.clone());
                }
                k
            }
        };
        Ok(Some(expected.is_some_and(|k| k == h)))
    }
}

/// The caller a stored token row stands for (none for a role this build does not know).
pub fn caller_of(row: &TokenRow) -> Option<Caller> {
    Some(Caller::Token {
        id: row.id.clone(),
        name: row.name.clone(),
        role: Role::parse(&row.role)?,
        pipelines: row.pipelines.clone(),
    })
}

fn unauthorized(msg: impl Into<String>) -> Response {
    let mut r = ApiErr::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, msg).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"sluice\""),
    );
    r
}

/// How the request carried its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    Header,
    Cookie,
    Query,
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Checks the caller against the route's requirement and hands the handlers a [`Caller`].
pub async fn check(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| super::route_access(req.method(), p.as_str()));
    let Some(route) = route else {
        // The path is served, not with this method: the router answers 405, no handler runs.
        return next.run(req).await;
    };
    let from_query = super::take_query_token(&mut req);
    if from_query.is_some() && !route.query_token {
        return ApiErr::bad_request(
            ErrorCode::InvalidQuery,
            "`access_token` is taken only on event streams and downloads; send the token as \
             `Authorization: Bearer …`",
        )
        .into_response();
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or("").trim().to_string());
    let (given, carried) = match (bearer, cookie(req.headers(), COOKIE), from_query) {
        (Some(b), _, _) => (Some(b), Carried::Header),
        (None, Some(c), _) => (Some(c), Carried::Cookie),
        (None, None, Some(q)) => (Some(q), Carried::Query),
        (None, None, None) => (None, Carried::Header),
    };
    // A cookie goes with every request a browser makes to this server, whoever's page asks:
    // a change sent with it must come from the server's own pages.
    if carried == Carried::Cookie && !safe(req.method()) {
        if let Err(e) = same_origin(req.headers()) {
            return e.into_response();
        }
    }
    let caller = match route.access {
        Access::WorkerSelf => {
            let id = worker_in_path(req.uri().path());
            let Some(cred) = given.filter(|_| carried == Carried::Header) else {
                return unauthorized(
                    "a worker calls this with the credential it was given when it registered",
                );
            };
            match app.auth.worker(&app, id, &cred).await {
                Ok(Some(true)) => Caller::Worker(WorkerId::from(id)),
                Ok(None) => {
                    return ApiErr::new(
                        StatusCode::NOT_FOUND,
                        ErrorCode::UnknownWorker,
                        format!("unknown worker `{id}`: register again"),
                    )
                    .into_response()
                }
                Ok(Some(false)) => {
                    tracing::warn!(
                        worker = id,
                        "refused a worker call with a credential that is not that worker's"
                    );
                    return unauthorized(format!(
                        "this credential is not worker `{id}`'s (a worker acts only as itself)"
                    ));
                }
                Err(e) => return e.into_response(),
            }
        }
        _ if !app.auth.required() => Caller::Anonymous,
        Access::Open => Caller::Anonymous,
        access => {
            let Some(token) = given.filter(|t| !t.is_empty()) else {
                return unauthorized(format!(
                    "this needs {}: send `Authorization: Bearer <token>` (the CLI reads \
                     SLUICE_TOKEN)",
                    access.needs()
                ));
            };
            let caller = match app.auth.token(&app, &token).await {
                Ok(Some(c)) => c,
                Ok(None) => return unauthorized("the token is unknown or revoked"),
                Err(e) => return e.into_response(),
            };
            if !caller.role().is_some_and(|r| access.admits(r)) {
                return ApiErr::forbidden(format!(
                    "{} may not {} {}: that needs {}",
                    caller.describe(),
                    req.method(),
                    req.uri().path(),
                    access.needs()
                ))
                .into_response();
            }
            caller
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The worker id in `/api/v1/workers/{id}/…`.
fn worker_in_path(path: &str) -> &str {
    path.split('/')
        .skip_while(|s| *s != "workers")
        .nth(1)
        .unwrap_or("")
}

/// A browser request that changes something must come from this server's own origin: its
/// `Origin` (which browsers send on every such request) names the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiErr> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let origin_host = origin.and_then(|o| o.split_once("://")).map(|(_, h)| h);
    match (host, origin_host) {
        (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(()),
        _ => Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CrossOrigin,
            format!(
                "a change sent with the login cookie must come from this server's own pages \
                 (Origin {} is not {})",
                origin.unwrap_or("missing"),
                host.unwrap_or("this host")
            ),
        )),
    }
}

/// Which names the server answers to: a browser page on another site can make its own name
/// point at this server's address (DNS rebinding), and its requests then carry that name.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Names beyond `localhost` and IP addresses (`--allowed-host`); `*` allows any.
    pub allowed: Vec<String>,
}

impl HostPolicy {
    pub fn allows(&self, host: &str) -> bool {
        let name = strip_port(host);
        let name = name.trim_end_matches('.');
        if name.parse::<std::net::IpAddr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
        {
            return true;
        }
        name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || self
                .allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(name))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Refuses a request whose `Host` is not a name the server answers to.
pub async fn host_check(
    State(policy): State<Arc<HostPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(host) = req.headers().get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !policy.allows(host) {
            tracing::warn!(
                host,
                "refused a request for a host name this server does not answer to"
            );
            return ApiErr::new(
                StatusCode::FORBIDDEN,
                ErrorCode::HostNotAllowed,
                format!(
                    "this server does not answer to the name `{}` (start it with \
                     --allowed-host {} if it should)",
                    strip_port(host),
                    strip_port(host)
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_localhost_or_named_by_the_operator() {
        let p = HostPolicy {
            allowed: vec!["sluice.example.org".into()],
        };
        for ok in [
            "127.0.0.1:8686",
            "localhost:8686",
            "LOCALHOST",
            "app.localhost",
            "[::1]:8686",
            "198.18.0.5",
            "sluice.example.org",
            "Sluice.Example.Org:443",
            "sluice.example.org.",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "sluice.example.org.evil",
            "[::1",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        assert!(HostPolicy {
            allowed: vec!["*".into()]
        }
        .allows("anything.example"));
    }

    #[test]
    fn roles_admit_what_they_should() {
        use Access::*;
        let table = [
            (Read, [true, true, true, false]),
            (Submit, [true, true, false, false]),
            (Admin, [true, false, false, false]),
            (Register, [true, false, false, true]),
            (WorkerSelf, [false, false, false, false]),
            (Open, [true, true, true, true]),
        ];
        for (access, want) in table {
            for (role, w) in Role::ALL.into_iter().zip(want) {
                assert_eq!(access.admits(role), w, "{access:?} {role:?}");
            }
        }
    }

    #[test]
    fn a_submit_token_limited_to_pipelines_submits_only_those() {
        let c = Caller::Token {
            id: "t".into(),
            name: "ci".into(),
            role: Role::Submit,
            pipelines: Some(vec!["iris".into()]),
        };
        assert!(c.may_submit("iris").is_ok());
        let e = c.may_submit("other").unwrap_err();
        assert!(e.message.contains("`iris`") && e.message.contains("`other`"));
        assert!(Caller::Anonymous.may_submit("other").is_ok());
    }

    #[test]
    fn secrets_are_random_and_kept_as_hashes() {
        let (a, b) = (new_secret("slc_"), new_secret("slc_"));
        assert_ne!(a, b);
        assert!(a.starts_with("slc_") && a.len() == 4 + 64);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; sluice_token=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
