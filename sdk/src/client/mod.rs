//! An HTTP client for the sluice server, used by the CLI and by workers.

use crate::api::*;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an API error.
    #[error("{} ({})", .error.message, .error.code)]
    Api { status: u16, error: ApiError },
    #[error("cannot reach the sluice server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// Something of this host the request needed could not be read (a file to upload).
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    /// The API error code, when the server gave one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// An HTTP client set up as sluice's own: TLS with rustls and the ring provider (lighter to build
/// than aws-lc), short connect timeout, no Nagle delay.
pub fn http_client() -> reqwest::Client {
    builder().build().unwrap_or_default()
}

fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true)
}

/// The same client, also trusting the certificates in the PEM file `ca` (a server with its own,
/// or a private, certificate authority).
pub fn http_client_trusting(ca: &std::path::Path) -> std::result::Result<reqwest::Client, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca.display()));
    }
    builder()
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| format!("{}: {}", ca.display(), describe(&e)))
}

impl Client {
    /// A client for the server at `base` (such as `http://127.0.0.1:8686`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client::with_http(base, token, http_client())
    }

    /// A client that also trusts the certificates in `ca` (a PEM file), when given.
    pub fn trusting(
        base: &str,
        token: Option<String>,
        ca: Option<&std::path::Path>,
    ) -> std::result::Result<Client, String> {
        let http = match ca {
            Some(ca) => http_client_trusting(ca)?,
            None => http_client(),
        };
        Ok(Client::with_http(base, token, http))
    }

    pub fn with_http(base: &str, token: Option<String>, http: reqwest::Client) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: describe(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: describe(&e),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Protocol(format!(
                    "{e} in {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api {
                status: status.as_u16(),
                error: body.error,
            }),
            Err(_) => Err(ClientError::Protocol(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn health(&self) -> Result<serde_json::Value> {
        self.get("/health").await
    }

    // ---- pipelines ----

    pub async fn upload_pipeline(
        &self,
        yaml: &str,
        file_name: Option<&str>,
    ) -> Result<PipelineVersion> {
        self.post(
            "/pipelines",
            &UploadPipeline {
                yaml: yaml.to_string(),
                file_name: file_name.map(str::to_string),
            },
        )
        .await
    }

    pub async fn list_pipelines(&self) -> Result<PipelineList> {
        self.get("/pipelines").await
    }

    pub async fn pipeline_versions(&self, name: &str) -> Result<VersionList> {
        self.get(&format!("/pipelines/{}/versions", enc(name)))
            .await
    }

    // ---- runs ----

    pub async fn create_run(&self, req: &CreateRun) -> Result<RunDetail> {
        self.post("/runs", req).await
    }

    /// Starts a run, retrying while the server cannot be reached or fails (5xx) for up to
    /// `patience`, under one idempotency key: however many times the request gets through,
    /// one run is made.
    pub async fn create_run_retrying(
        &self,
        req: &CreateRun,
        patience: Duration,
    ) -> Result<RunDetail> {
        let key = uuid::Uuid::new_v4().to_string();
        let start = std::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        loop {
            let r = self
                .send(
                    self.req(reqwest::Method::POST, "/runs")
                        .header("Idempotency-Key", &key)
                        .json(req),
                )
                .await;
            let again = match &r {
                Err(ClientError::Unreachable { .. }) => true,
                Err(ClientError::Api { status, .. }) => *status >= 500,
                _ => false,
            };
            if !again || start.elapsed() + backoff > patience {
                return r;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    pub async fn list_runs(
        &self,
        state: Option<&str>,
        pipeline: Option<&str>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<RunList> {
        let mut q = vec![("page_size", page_size.to_string())];
        if let Some(s) = state {
            q.push(("state", s.to_string()));
        }
        if let Some(p) = pipeline {
            q.push(("pipeline", p.to_string()));
        }
        if let Some(t) = page_token {
            q.push(("page_token", t.to_string()));
        }
        self.list_runs_where(&q).await
    }

    /// The run list with any of its query's filters (`label`, `archived`, `sort`, …).
    pub async fn list_runs_where(&self, q: &[(&str, String)]) -> Result<RunList> {
        self.send(self.req(reqwest::Method::GET, "/runs").query(q))
            .await
    }

    /// Archives run `id` (or, with `false`, brings it back to the run list).
    pub async fn archive_run(&self, id: &str, archived: bool) -> Result<RunDetail> {
        let verb = if archived { "archive" } else { "unarchive" };
        self.post(&format!("/runs/{}/{verb}", enc(id)), &serde_json::json!({}))
            .await
    }

    /// Who made the artifact at `uri` and who read it, across runs.
    pub async fn lineage(&self, uri: &str) -> Result<Lineage> {
        self.send(
            self.req(reqwest::Method::GET, "/lineage")
                .query(&[("uri", uri)]),
        )
        .await
    }

    /// Forgets an ended run.
    pub async fn delete_run(&self, id: &str) -> Result<()> {
        let path = format!("/runs/{}", enc(id));
        self.answered(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(|_| ())
    }

    pub async fn get_run(&self, id: &str) -> Result<RunDetail> {
        self.get(&format!("/runs/{}", enc(id))).await
    }

    /// A new run that reuses what run `id`'s succeeded steps produced and runs the rest again.
    pub async fn rerun(&self, id: &str) -> Result<RunDetail> {
        self.post(&format!("/runs/{}/rerun", enc(id)), &serde_json::json!({}))
            .await
    }

    pub async fn cancel_run(&self, id: &str) -> Result<RunDetail> {
        self.post(&format!("/runs/{}/cancel", enc(id)), &serde_json::json!({}))
            .await
    }

    pub async fn logs(&self, run: &str, task: &str, after: u64, limit: u32) -> Result<LogPage> {
        let q = [("after", after.to_string()), ("limit", limit.to_string())];
        self.send(
            self.req(
                reqwest::Method::GET,
                &format!("/runs/{}/tasks/{}/logs", enc(run), enc(task)),
            )
            .query(&q),
        )
        .await
    }

    /// The run's live events: every task's state first, then changes and log lines, until the run ends.
    pub async fn run_events(&self, run: &str) -> Result<EventStream> {
        self.events(&format!("/runs/{}/events", enc(run))).await
    }

    /// A task's whole log, then new lines as they come, until the task ends.
    pub async fn follow_logs(&self, run: &str, task: &str) -> Result<EventStream> {
        self.events(&format!(
            "/runs/{}/tasks/{}/logs?follow=true",
            enc(run),
            enc(task)
        ))
        .await
    }

    /// Sends a request whose answer is read as it comes; one that is not a success becomes the
    /// API error it carries.
    async fn answered(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: describe(&e),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => ClientError::Api {
                status,
                error: b.error,
            },
            Err(_) => ClientError::Protocol(format!("HTTP {status}")),
        })
    }

    async fn events(&self, path: &str) -> Result<EventStream> {
        let req = self
            .req(reqwest::Method::GET, path)
            .header("accept", "text/event-stream");
        let resp = self.answered(req).await?;
        use eventsource_stream::Eventsource;
        Ok(EventStream {
            events: Box::pin(resp.bytes_stream().eventsource()),
        })
    }

    // ---- workers ----

    /// Registers a worker: its name, capacity, where its tasks write their outputs (on its
    /// host), its labels and its GPUs.
    pub async fn register_worker(&self, req: &RegisterWorker) -> Result<WorkerRegistration> {
        self.post("/workers", req).await
    }

    /// A request a registered worker makes, with its own credential.
    fn as_worker(
        &self,
        worker: &WorkerIdentity,
        what: &str,
        body: &impl Serialize,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(&format!("/workers/{}/{what}", enc(worker.id.as_str()))))
            .bearer_auth(&worker.credential)
            .json(body)
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>> {
        self.get("/workers").await
    }

    pub async fn lease(
        &self,
        worker: &WorkerIdentity,
        max: u32,
        wait_ms: u64,
    ) -> Result<LeaseResponse> {
        let req = self
            .as_worker(worker, "lease", &LeaseRequest { max, wait_ms })
            .timeout(Duration::from_millis(wait_ms + 15_000));
        self.send(req).await
    }

    pub async fn heartbeat(
        &self,
        worker: &WorkerIdentity,
        leases: Vec<LeaseId>,
    ) -> Result<HeartbeatResponse> {
        self.send(self.as_worker(worker, "heartbeat", &Heartbeat { leases }))
            .await
    }

    pub async fn report(
        &self,
        worker: &WorkerIdentity,
        events: Vec<ReportEvent>,
    ) -> Result<ReportResponse> {
        self.send(self.as_worker(worker, "report", &Report { events }))
            .await
    }

    // ---- access ----

    pub async fn whoami(&self) -> Result<Whoami> {
        self.get("/whoami").await
    }

    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken> {
        self.post("/tokens", req).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.get("/tokens").await
    }

    pub async fn revoke_token(&self, id_or_name: &str) -> Result<Vec<TokenInfo>> {
        let path = format!("/tokens/{}", enc(id_or_name));
        self.send(self.req(reqwest::Method::DELETE, &path)).await
    }

    pub async fn set_secret(&self, name: &str, value: &str) -> Result<SecretInfo> {
        let path = format!("/secrets/{}", enc(name));
        let body = SetSecret {
            value: value.to_string(),
        };
        self.send(self.req(reqwest::Method::PUT, &path).json(&body))
            .await
    }

    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>> {
        self.get("/secrets").await
    }

    pub async fn delete_secret(&self, name: &str) -> Result<()> {
        let path = format!("/secrets/{}", enc(name));
        self.answered(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(|_| ())
    }
}

/// What is left unescaped in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// A stream of server-sent events (parsed by `eventsource-stream`), each decoded from JSON.
pub struct EventStream {
    events: Events,
}

impl EventStream {
    /// The next event's data, decoded; `None` when the server ended the stream.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        loop {
            return match self.events.next().await? {
                // A comment or keep-alive carries no data.
                Ok(ev) if ev.data.is_empty() => continue,
                Ok(ev) => Some(
                    serde_json::from_str(&ev.data)
                        .map_err(|e| ClientError::Protocol(e.to_string())),
                ),
                Err(eventsource_stream::EventStreamError::Transport(e)) => {
                    Some(Err(ClientError::Unreachable {
                        url: String::new(),
                        reason: describe(&e),
                    }))
                }
                Err(e) => Some(Err(ClientError::Protocol(e.to_string()))),
            };
        }
    }
}

mod catalog;
mod uploads;
pub use uploads::Uploaded;
