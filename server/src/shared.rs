//! Several servers over one PostgreSQL database. Each serves the UI and the API; one at a time
//! schedules: it holds PostgreSQL's advisory lock `sluice scheduler`, keeps the active runs in
//! memory, hands out leases and applies what workers report, as a lone server does, and says
//! where it is in `scheduler_leader`. The others send API calls on to it (event streams and long
//! polls included) and try the lock every half second. When the scheduling server dies, its lock
//! goes with its database connection; another server takes it, takes the active runs up from the
//! database as a restarted server does (leases that live workers hold stay theirs, so nothing
//! runs twice), and schedules from then on. Meanwhile calls get 503 `scheduler_unavailable`,
//! which clients and workers retry. A scheduling server whose lock's connection stops answering
//! stops, so that two never schedule at once.

use crate::api::{self, auth::HostPolicy, error::ApiErr};
use crate::serve::{check_exposure, serve_router, Server, ServerConfig};
use crate::store::{AccessStore, PgStore, Store};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sluice_sdk::api::ErrorCode;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How often a server that does not schedule tries the lock.
const CAMPAIGN_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
struct Shared {
    /// The API and the UI, once this server schedules.
    app: Arc<RwLock<Option<Router>>>,
    store: PgStore,
    /// Sends calls on to the scheduling server.
    client: reqwest::Client,
    /// Where the scheduling server is, as last read (for a second).
    leader: Arc<Mutex<Option<(Instant, String)>>>,
}

pub async fn serve(
    cfg: ServerConfig,
    url: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let store = PgStore::open(url).await?;
    let me = uuid::Uuid::now_v7().to_string();
    let addr = listener.local_addr()?;
    let tls = cfg.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let advertise = cfg
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let required =
        cfg.token.as_deref().is_some_and(|t| !t.is_empty()) || store.live_tokens().await? > 0;
    check_exposure(addr, required, cfg.insecure, &cfg.data_dir)?;
    // Calls sent on to a scheduling server that speaks TLS trust this server's own certificate
    // (the servers of one deployment share it, or its authority).
    let client = match &cfg.tls {
        Some(t) => sluice_sdk::client::http_client_trusting(&t.cert).map_err(anyhow::Error::msg)?,
        None => sluice_sdk::client::http_client(),
    };
    let shared = Shared {
        app: Arc::new(RwLock::new(None)),
        store: store.clone(),
        client,
        leader: Arc::new(Mutex::new(None)),
    };
    let hosts = HostPolicy {
        allowed: cfg.allowed_hosts.clone(),
    };
    let router = api::edges(
        Router::new().fallback(dispatch).with_state(shared.clone()),
        hosts,
    );
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let mut stop_serving = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // A server that finds the lock free schedules before it answers anything; one that does not
    // answers at once, sending the API on, and keeps trying.
    let first = store.try_lock_scheduler().await?;
    let lead = |lock: crate::store::SchedulerLock| {
        let (shared, store, me, advertise, cfg) = (
            shared.clone(),
            store.clone(),
            me.clone(),
            advertise.clone(),
            cfg.clone(),
        );
        async move {
            tracing::info!(server = %me, "holding the scheduler lock: taking up the active runs");
            let server = Server::start(cfg).await?;
            let background = server.background();
            *shared.app.write().unwrap_or_else(|e| e.into_inner()) = Some(server.router());
            store
                .set_leader(&me, &advertise, sluice_sdk::api::now_ms())
                .await?;
            tracing::info!(server = %me, url = %advertise, "this server schedules");
            anyhow::Ok((lock, background))
        }
    };
    let mut leading = match first {
        Some(lock) => Some(lead(lock).await?),
        None => None,
    };
    tracing::info!(%addr, server = %me, scheduling = leading.is_some(), "sluice server listening");
    let serving = tokio::spawn(serve_router(listener, tls, router, async move {
        stopped(&mut stop_serving).await
    }));

    let campaign = async {
        let (mut lock, background) = match leading.take() {
            Some(l) => l,
            None => loop {
                if let Some(l) = store.try_lock_scheduler().await? {
                    break lead(l).await?;
                }
                tokio::select! {
                    _ = tokio::time::sleep(CAMPAIGN_EVERY) => {}
                    _ = stopped(&mut stop) => return anyhow::Ok(()),
                }
            },
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if !lock.held().await {
                        anyhow::bail!("the database connection holding the scheduler lock stopped answering: stopping, so that another server schedules");
                    }
                }
                _ = stopped(&mut stop) => break,
            }
        }
        drop(background);
        anyhow::Ok(())
    };
    let campaigned = campaign.await;
    if campaigned.is_err() {
        serving.abort();
    }
    campaigned?;
    serving.await??;
    store.close().await;
    Ok(())
}

/// Once the server is told to stop.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// To this server's API while it schedules; else probes answered here, the UI served here and
/// API calls sent on to the scheduling server.
async fn dispatch(State(s): State<Shared>, req: Request) -> Response {
    let app = s.app.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(app) = app {
        return app.oneshot(req).await.into_response();
    }
    let path = req.uri().path();
    match path {
        "/livez" | "/api/v1/livez" => {
            axum::Json(serde_json::json!({"status": "ok"})).into_response()
        }
        "/readyz" | "/api/v1/readyz" => match s.store.ping().await {
            Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "reason": e.to_string()})),
            )
                .into_response(),
        },
        p if p.starts_with("/api/") || p.starts_with("/apis/") || p == "/metrics" => {
            forward(&s, req).await
        }
        _ => crate::ui::router().oneshot(req).await.into_response(),
    }
}

fn unavailable(why: String) -> Response {
    ApiErr::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::SchedulerUnavailable,
        why,
    )
    .into_response()
}

/// Headers that belong to one connection, not to the request or answer sent on.
fn hop_by_hop(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

impl Shared {
    /// Where the scheduling server is: read from the database at most once a second.
    async fn leader_url(&self) -> Option<String> {
        if let Some((at, url)) = self.leader.lock().ok()?.clone() {
            if at.elapsed() < Duration::from_secs(1) {
                return Some(url);
            }
        }
        let url = self
            .store
            .leader()
            .await
            .ok()
            .flatten()
            .map(|(_, url)| url)?;
        if let Ok(mut l) = self.leader.lock() {
            *l = Some((Instant::now(), url.clone()));
        }
        Some(url)
    }

    fn forget_leader(&self) {
        if let Ok(mut l) = self.leader.lock() {
            *l = None;
        }
    }
}

/// Sends the call on to the scheduling server, with its method, path, query, headers (its
/// credential and `Host` included: the scheduling server checks them as its own) and body
/// streamed, and streams the answer back.
async fn forward(s: &Shared, req: Request) -> Response {
    let Some(base) = s.leader_url().await else {
        return unavailable(
            "no server schedules yet (one is starting or taking over): try again shortly".into(),
        );
    };
    let (parts, body) = req.into_parts();
    let target = format!(
        "{}{}",
        base.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = s.client.request(parts.method, &target);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            out = out.header(k, v);
        }
    }
    let out = out.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            s.forget_leader();
            return unavailable(format!(
                "the scheduling server at {base} does not answer ({e}); another takes over within seconds: try again"
            ));
        }
    };
    let mut answer = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            answer = answer.header(k, v);
        }
    }
    answer
        .header(header::VIA, "1.1 sluice")
        .body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|e| unavailable(format!("cannot pass on the answer: {e}")))
}
