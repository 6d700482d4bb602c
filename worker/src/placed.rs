//! Where a task's artifacts are: its inputs found on this host (a producer's own copy, or a copy
//! fetched from the object store into the cache) and its outputs published to the object store
//! when there is one. The bytes are moved by [`crate::transfer`].

use sluice_sdk::api::{Lease, TaskResult, TaskSpec};

/// Which attempt's outputs these are: what names their place in the object store.
#[derive(Clone)]
pub(crate) struct Attempt {
    run: String,
    task: String,
    attempt: String,
}

impl Attempt {
    pub(crate) fn of(lease: &Lease) -> Attempt {
        Attempt {
            run: lease.run_id.to_string(),
            task: lease.task.to_string(),
            attempt: lease.attempt.to_string(),
        }
    }
}
use sluice_sdk::artifacts::{
    ArtifactError, ArtifactStore, Artifacts, ObjectArtifacts, UPLOAD_SCHEME,
};
use sluice_spec::uri::ArtifactUri;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where each of the task's input artifacts is on this host: a file or directory beneath
/// this worker's artifact root with no link on the way (the runtime checks again as it
/// mounts). One kept in the object store is read from its producer's own copy when that
/// producer ran here, and is otherwise to be fetched.
pub(crate) fn resolve_inputs(artifacts: &Artifacts, spec: &TaskSpec) -> Result<Vec<Input>, String> {
    spec.input_artifacts
        .iter()
        .map(|a| {
            local_artifact(artifacts, &a.uri)
                .map_err(|why| format!("input artifact `{}` {}: {why}", a.name, source(a)))
        })
        .collect()
}

fn local_artifact(artifacts: &Artifacts, uri: &str) -> Result<Input, String> {
    let parsed = ArtifactUri::parse(uri).map_err(|e| e.to_string())?;
    let here = match (&parsed, &artifacts.object) {
        (ArtifactUri::File(_), _) => parsed.clone(),
        // An upload the server keeps: where `sluice up`'s server puts it, else fetched from it.
        (ArtifactUri::Other { scheme, .. }, _) if scheme == UPLOAD_SCHEME => {
            let name = upload_name(uri)?;
            ArtifactUri::file(&artifacts.local.root().join("uploads").join(name))
        }
        // Its producer's area, had it run on this worker: RUN/TASK/ATTEMPT/NAME.
        (ArtifactUri::Other { .. }, Some(o)) => {
            let parts = o.parts_of(uri).map_err(|e| e.to_string())?;
            let root = artifacts.local.root().to_path_buf();
            ArtifactUri::file(&parts.iter().fold(root, |p, s| p.join(s)))
        }
        (ArtifactUri::Other { .. }, None) => {
            return Err(format!(
                "it is at {uri}, and this worker was given no object store to read it from"
            ))
        }
    };
    let upload = matches!(&parsed, ArtifactUri::Other { scheme, .. } if scheme == UPLOAD_SCHEME);
    match artifacts.local.locate(&here) {
        Ok(l) => Ok(Input::Here(l.path)),
        Err(ArtifactError::Gone(_)) if upload => Ok(Input::FromServer),
        Err(ArtifactError::Gone(_)) if here != parsed => Ok(Input::Fetch),
        Err(e @ ArtifactError::Elsewhere { .. }) => {
            Err(format!("{e}: this worker cannot reach it"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Where an input comes from, for messages: a step, or the run's own inputs.
fn source(a: &sluice_sdk::api::InputArtifact) -> String {
    if a.producer.is_empty() {
        "(given to the run)".into()
    } else {
        format!("from step `{}`", a.producer)
    }
}

/// The `blake3-HEX` an `upload://` URI names.
fn upload_name(uri: &str) -> Result<&str, String> {
    uri.split_once("://")
        .map(|(_, n)| n)
        .filter(|n| {
            n.strip_prefix("blake3-").is_some_and(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
        })
        .ok_or_else(|| format!("`{uri}` does not name an upload"))
}

/// The server a worker fetches the uploads runs were given from, when it keeps them itself.
pub(crate) struct Server<'a> {
    pub client: &'a sluice_sdk::client::Client,
    pub identity: sluice_sdk::api::WorkerIdentity,
}

/// The host paths of the inputs, fetching from the object store those not here.
pub(crate) async fn fetch_inputs(
    artifacts: &Artifacts,
    spec: &TaskSpec,
    inputs: Vec<Input>,
    server: &Server<'_>,
) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::with_capacity(inputs.len());
    for (a, i) in spec.input_artifacts.iter().zip(inputs) {
        let path = match (i, &artifacts.object) {
            (Input::Here(p), _) => p,
            (Input::FromServer, _) => {
                let cache = artifacts.local.root().join(CACHE_DIR);
                let digest = a.digest.as_deref().unwrap_or_default();
                let t = Instant::now();
                let p = server
                    .client
                    .fetch_upload(&server.identity, digest, &cache)
                    .await
                    .map_err(|why| format!("input artifact `{}` {}: {why}", a.name, source(a)))?;
                tracing::info!(artifact = %a.name, bytes = a.size, secs = t.elapsed().as_secs_f64(), uri = %a.uri, "input artifact fetched from the server");
                p
            }
            (Input::Fetch, Some(store)) => {
                let cache = artifacts.local.root().join(CACHE_DIR);
                let t = Instant::now();
                let p = crate::transfer::fetch(store, &a.uri, a.digest.as_deref(), a.size, &cache)
                    .await
                    .map_err(|why| format!("input artifact `{}` {}: {why}", a.name, source(a)))?;
                tracing::info!(artifact = %a.name, bytes = a.size, secs = t.elapsed().as_secs_f64(), uri = %a.uri, "input artifact ready");
                p
            }
            (Input::Fetch, None) => {
                return Err(format!(
                    "input artifact `{}`: no object store to fetch it from",
                    a.name
                ))
            }
        };
        out.push(path);
    }
    Ok(out)
}

/// With an object store, a succeeded attempt's outputs are uploaded there before it is
/// reported, and recorded at their place in it; an upload that fails fails the attempt.
/// `uploaded` holds what was uploaded already (by artifact name); the rest are uploaded now.
pub(crate) async fn publish(
    artifacts: &Artifacts,
    lease: &Attempt,
    area: &Path,
    mut r: TaskResult,
    mut uploaded: HashMap<String, Result<String, String>>,
) -> TaskResult {
    let Some(store) = &artifacts.object else {
        return r;
    };
    if r.outcome != sluice_spec::state::Outcome::Succeeded || r.cached_from.is_some() {
        return r;
    }
    for a in &mut r.artifacts {
        let done = match uploaded.remove(&a.name) {
            Some(done) => done,
            None => upload_one(store, lease, area, &a.name).await,
        };
        match done {
            Ok(uri) => a.uri = uri,
            Err(e) => return TaskResult::failed(e),
        }
    }
    r
}

/// Uploads the artifact `name` of the attempt `lease` from `area` to its place in the store.
async fn upload_one(
    store: &ObjectArtifacts,
    lease: &Attempt,
    area: &Path,
    name: &str,
) -> Result<String, String> {
    let uri = store.uri_of(&[&lease.run, &lease.task, &lease.attempt, name]);
    let t = Instant::now();
    crate::transfer::upload(store, area, name, &uri).await?;
    tracing::info!(artifact = name, secs = t.elapsed().as_secs_f64(), %uri, "artifact uploaded");
    Ok(uri)
}

/// Uploads the declared outputs the step left (one it did not write is left out, as when
/// they are read), each to its place in the store.
pub(crate) async fn upload_all(
    store: Arc<ObjectArtifacts>,
    lease: Attempt,
    area: PathBuf,
    names: Vec<String>,
) -> HashMap<String, Result<String, String>> {
    let mut out = HashMap::new();
    for name in names {
        if std::fs::symlink_metadata(area.join(&name)).is_err() {
            continue;
        }
        let r = upload_one(&store, &lease, &area, &name).await;
        out.insert(name, r);
    }
    out
}

/// Where an input artifact is: on this host, or in the object store only.
pub(crate) enum Input {
    Here(PathBuf),
    /// From the object store.
    Fetch,
    /// An upload the server keeps, from the server.
    FromServer,
}

/// Where fetched inputs are kept, by content digest, beneath the artifact root (so that the
/// runtime mounts them as it mounts any input).
pub(crate) const CACHE_DIR: &str = ".cache";
