//! Pulling images from, and pushing them to, OCI registries (with `oci-client`). Blobs stream to
//! disk and are verified by digest; an interrupted download resumes from what it already has;
//! layers already stored cost nothing; concurrent pulls of one image download it once.

use super::store::{io, ImageError, ImageRecord, ImageStore};
use super::{auth, load, reference};
use futures_util::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::{
    OciDescriptor, OciImageManifest, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// How long connecting to a registry may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a registry may go without sending anything while it answers.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Registries reached over plain HTTP: loopback ones always, others when listed.
fn insecure(registry: &str, listed: &[String]) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || listed.iter().any(|r| r == registry)
}

fn err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(e.to_string())
}

/// What a pull reports as it goes, for a progress display.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Bytes of one layer blob received so far (and its size, when known).
    Layer {
        digest: String,
        done: u64,
        total: u64,
    },
    /// A layer that was already stored.
    Cached { digest: String },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A mirror of a registry, as containerd's `hosts.toml` and Docker's `registry-mirrors` give
/// them: images named on `registry` are pulled from `endpoint` first (the upstream after it,
/// when the mirror does not have them), and stored under their own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry mirrored, as references name it (`docker.io`).
    pub registry: String,
    /// The mirror's `host:port`.
    pub endpoint: String,
    /// Reached over plain HTTP (`http://` was given).
    pub http: bool,
}

impl std::str::FromStr for Mirror {
    type Err = String;

    /// `REGISTRY=URL`: `docker.io=http://127.0.0.1:5000`, `ghcr.io=https://mirror.example`.
    fn from_str(s: &str) -> Result<Mirror, String> {
        let bad = |why: &str| {
            format!("invalid registry mirror `{s}`: {why}; write REGISTRY=URL, such as docker.io=http://127.0.0.1:5000")
        };
        let (registry, url) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let (http, endpoint) = if let Some(e) = url.strip_prefix("http://") {
            (true, e)
        } else if let Some(e) = url.strip_prefix("https://") {
            (false, e)
        } else {
            (false, url)
        };
        let endpoint = endpoint.trim_end_matches('/');
        let ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        };
        if !ok(registry) || !ok(endpoint) {
            return Err(bad(
                "a registry and a mirror are host names, with a port if need be, and no path",
            ));
        }
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => "docker.io",
            r => r,
        };
        Ok(Mirror {
            registry: registry.to_string(),
            endpoint: endpoint.to_string(),
            http,
        })
    }
}

pub struct Registries {
    progress: Option<ProgressFn>,
    store: Arc<ImageStore>,
    insecure: Vec<String>,
    mirrors: Vec<Mirror>,
    docker_config: Option<std::path::PathBuf>,
    clients: std::sync::Mutex<HashMap<String, Client>>,
    /// One lock per image reference and per blob digest, so concurrent pulls share the work.
    inflight: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When each tag was last checked against its registry (see [`Registries::ensure_fresh`]).
    checked: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

impl Registries {
    /// Credentials for `registry`: the Docker config file is read and a credential helper run
    /// off the async threads (a helper is a process that may take its time).
    async fn auth_for(&self, registry: &str) -> Result<oci_client::secrets::RegistryAuth, String> {
        let (registry, config) = (registry.to_string(), self.docker_config.clone());
        tokio::task::spawn_blocking(move || auth::for_registry(&registry, config.as_deref()))
            .await
            .map_err(|e| format!("reading credentials failed: {e}"))?
    }

    /// `insecure` lists registries (host:port) to reach over plain HTTP besides loopback ones.
    pub fn new(store: Arc<ImageStore>, insecure: Vec<String>) -> Registries {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Registries {
            store,
            insecure,
            mirrors: Vec::new(),
            docker_config: auth::default_config_path(),
            clients: Default::default(),
            inflight: Default::default(),
            checked: Default::default(),
            progress: None,
        }
    }

    /// Pulls through these mirrors first.
    pub fn with_mirrors(mut self, mirrors: Vec<Mirror>) -> Registries {
        for m in &mirrors {
            if m.http {
                self.insecure.push(m.endpoint.clone());
            }
        }
        self.mirrors = mirrors;
        self
    }

    /// Where an image is pulled from, in order: each mirror of its registry, then the registry.
    fn sources(&self, parsed: &reference::Reference) -> Vec<(String, Reference)> {
        let mut out = Vec::new();
        for m in self
            .mirrors
            .iter()
            .filter(|m| m.registry == parsed.registry)
        {
            let on = reference::Reference {
                registry: m.endpoint.clone(),
                ..parsed.clone()
            };
            if let Ok(r) = on.to_string().parse() {
                out.push((m.endpoint.clone(), r));
            }
        }
        if let Ok(r) = parsed.to_string().parse() {
            out.push((parsed.registry.clone(), r));
        }
        out
    }

    /// Calls `f` as layers arrive.
    pub fn with_progress(mut self, f: ProgressFn) -> Registries {
        self.progress = Some(f);
        self
    }

    fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(p);
        }
    }

    /// Reads credentials from this Docker config file instead of the default one.
    pub fn with_docker_config(mut self, path: std::path::PathBuf) -> Registries {
        self.docker_config = Some(path);
        self
    }

    fn client(&self, registry: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(registry.to_string())
            .or_insert_with(|| {
                let protocol = if insecure(registry, &self.insecure) {
                    ClientProtocol::Http
                } else {
                    ClientProtocol::Https
                };
                Client::new(ClientConfig {
                    protocol,
                    // A registry that accepts and never answers fails the pull instead of
                    // holding it for ever (the step's timeout and cancel cover it too).
                    connect_timeout: Some(CONNECT_TIMEOUT),
                    read_timeout: Some(READ_TIMEOUT),
                    ..Default::default()
                })
            })
            .clone()
    }

    fn lock(&self, key: &str) -> Arc<Mutex<()>> {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// The stored image, pulling it first when it is missing (as `docker run` does). Tasks
    /// asking for one image at once wait for one pull.
    pub async fn ensure(&self, image: &str) -> Result<ImageRecord, ImageError> {
        let full = reference::parse(image)
            .map_err(ImageError::Invalid)?
            .to_string();
        if let Some(rec) = self.store.get(&full)? {
            return Ok(rec);
        }
        let lock = self.lock(&full);
        let _g = lock.lock().await;
        // Pulled while this one waited.
        if let Some(rec) = self.store.get(&full)? {
            return Ok(rec);
        }
        self.pull_locked(image).await
    }

    /// Like [`Registries::ensure`], but a tag stored locally is checked against its registry
    /// when it was last checked more than `ttl` ago, and pulled again when it moved (so that a
    /// result cached for the old image is not reused for the new). A registry that cannot be
    /// reached leaves the local image in use.
    pub async fn ensure_fresh(
        &self,
        image: &str,
        ttl: std::time::Duration,
    ) -> Result<ImageRecord, ImageError> {
        let parsed = reference::parse(image).map_err(ImageError::Invalid)?;
        let full = parsed.to_string();
        let Some(rec) = self.store.get(&full)? else {
            return self.ensure(image).await;
        };
        let fresh = |checked: &HashMap<String, std::time::Instant>| {
            checked.get(&full).is_some_and(|t| t.elapsed() < ttl)
        };
        if parsed.digest.is_some() || fresh(&self.checked.lock().unwrap_or_else(|p| p.into_inner()))
        {
            return Ok(rec);
        }
        let mark = || {
            self.checked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(full.clone(), std::time::Instant::now());
        };
        let Some((registry, r)) = self.sources(&parsed).into_iter().next() else {
            return Ok(rec);
        };
        let remote = match self.auth_for(&registry).await {
            Ok(a) => {
                let client = self.client(&registry);
                tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    client.fetch_manifest_digest(&r, &a),
                )
                .await
                .ok()
                .and_then(|r| r.ok())
            }
            Err(_) => None,
        };
        match remote {
            Some(d) if d != rec.digest => {
                tracing::info!(image = %full, was = %rec.digest, now = %d, "the tag moved; pulling");
                let new = self.pull(image).await?;
                mark();
                Ok(new)
            }
            Some(_) => {
                mark();
                Ok(rec)
            }
            None => {
                tracing::debug!(image = %full, "cannot check the tag against its registry; using the local image");
                mark();
                Ok(rec)
            }
        }
    }

    /// Pulls an image (the host's platform from a multi-arch index) and names it.
    pub async fn pull(&self, image: &str) -> Result<ImageRecord, ImageError> {
        let full = reference::parse(image)
            .map_err(ImageError::Invalid)?
            .to_string();
        let lock = self.lock(&full);
        let _g = lock.lock().await;
        self.pull_locked(image).await
    }

    /// [`Registries::pull`], with the image's lock held.
    async fn pull_locked(&self, image: &str) -> Result<ImageRecord, ImageError> {
        let parsed = reference::parse(image).map_err(ImageError::Invalid)?;
        let full = parsed.to_string();
        // Each mirror, then the registry: the first that has the image serves every blob.
        let mut tried = Vec::new();
        let mut found = None;
        for (registry, r) in self.sources(&parsed) {
            let auth = self
                .auth_for(&registry)
                .await
                .map_err(ImageError::Invalid)?;
            let client = self.client(&registry);
            match client.pull_image_manifest(&r, &auth).await {
                Ok(m) => {
                    found = Some((r, auth, client, m));
                    break;
                }
                Err(e) => tried.push(if registry == parsed.registry {
                    e.to_string()
                } else {
                    format!("mirror {registry}: {e}")
                }),
            }
        }
        let Some((r, auth, client, (manifest, digest))) = found else {
            return Err(err(format!("cannot pull {full}: {}", tried.join("; "))));
        };
        if let Some(rec) = self.store.list()?.into_iter().find(|i| i.digest == digest) {
            // The image is here already (under another name): the manifest was all it cost.
            let rec = ImageRecord {
                reference: full,
                ..rec
            };
            self.store.tag(rec.clone())?;
            return Ok(rec);
        }
        let pinned = r.clone_with_digest(digest.clone());
        // The config, stored and verified like any blob.
        self.fetch_blob(&client, &pinned, &manifest.config).await?;
        let config = String::from_utf8(self.store.read_blob(&manifest.config.digest)?)
            .map_err(|_| err(format!("the config of {full} is not UTF-8 JSON")))?;
        let (raw, _) = client
            .pull_manifest_raw(
                &pinned,
                &auth,
                &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|e| err(format!("cannot pull the manifest of {full}: {e}")))?;
        let mut layers = Vec::new();
        for l in &manifest.layers {
            self.fetch_blob(&client, &pinned, l).await?;
            layers.push((l.digest.clone(), l.media_type.clone(), l.size.max(0) as u64));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            load::finish_with_manifest(
                &store,
                &[full],
                config.as_bytes(),
                layers,
                Some((&raw[..], &digest)),
            )
        })
        .await
        .map_err(err)?
        .and_then(|mut v| v.pop().ok_or_else(|| err("pull produced no image")))
    }

    /// Downloads one blob into the store unless it is there, resuming a partial download.
    async fn fetch_blob(
        &self,
        client: &Client,
        r: &Reference,
        desc: &OciDescriptor,
    ) -> Result<(), ImageError> {
        let dest = self.store.blob_path(&desc.digest)?;
        let lock = self.lock(&desc.digest);
        let _g = lock.lock().await;
        if dest.exists() {
            self.report(Progress::Cached {
                digest: desc.digest.clone(),
            });
            return Ok(());
        }
        let partial = self
            .store
            .tmp_dir()
            .join(format!("{}.partial", &desc.digest[7..]));
        let mut hash = Sha256::new();
        let have = match tokio::fs::read(&partial).await {
            Ok(bytes) => {
                hash.update(&bytes);
                bytes.len() as u64
            }
            Err(_) => 0,
        };
        let stream = if have > 0 {
            match client
                .pull_blob_stream_partial(r, desc, have, None)
                .await
                .map_err(|e| err(format!("cannot pull blob {}: {e}", desc.digest)))?
            {
                BlobResponse::Partial(s) => (s, true),
                BlobResponse::Full(s) => {
                    hash = Sha256::new();
                    (s, false)
                }
            }
        } else {
            (
                client
                    .pull_blob_stream(r, desc)
                    .await
                    .map_err(|e| err(format!("cannot pull blob {}: {e}", desc.digest)))?,
                false,
            )
        };
        let (mut stream, append) = stream;
        let total = desc.size.max(0) as u64;
        let mut done = if append { have } else { 0 };
        let mut last_report = 0u64;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&partial)
            .await
            .map_err(io(format!("cannot write {}", partial.display())))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| err(format!("download of blob {} broke off: {e}", desc.digest)))?;
            hash.update(&chunk);
            f.write_all(&chunk)
                .await
                .map_err(io(format!("cannot write {}", partial.display())))?;
            done += chunk.len() as u64;
            if done - last_report >= 1 << 20 || done == total {
                last_report = done;
                self.report(Progress::Layer {
                    digest: desc.digest.clone(),
                    done,
                    total,
                });
            }
        }
        f.flush().await.map_err(io("cannot flush a blob"))?;
        drop(f);
        let got = format!("sha256:{}", hex::encode(hash.finalize()));
        if got != desc.digest {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ImageError::DigestMismatch {
                what: format!("layer of {}", r.whole()),
                want: desc.digest.clone(),
                got,
            });
        }
        tokio::fs::rename(&partial, &dest)
            .await
            .map_err(io(format!("cannot store blob {}", desc.digest)))
    }

    /// Pushes a stored image to `target` (defaults to its own name).
    pub async fn push(&self, image: &str, target: Option<&str>) -> Result<String, ImageError> {
        let full = reference::parse(image)
            .map_err(ImageError::Invalid)?
            .to_string();
        let rec = self
            .store
            .get(&full)?
            .ok_or_else(|| ImageError::NotFound(full.clone()))?;
        let dest = reference::parse(target.unwrap_or(image)).map_err(ImageError::Invalid)?;
        let r: Reference = dest.to_string().parse().map_err(err)?;
        let auth = self
            .auth_for(&dest.registry)
            .await
            .map_err(ImageError::Invalid)?;
        let client = self.client(&dest.registry);
        client
            .auth(&r, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| err(format!("cannot log in to {}: {e}", dest.registry)))?;
        let raw = self.store.read_blob(&rec.digest)?;
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| err(format!("stored manifest is invalid: {e}")))?;
        for desc in manifest.layers.iter().chain([&manifest.config]) {
            if client.blob_exists(&r, &desc.digest).await.unwrap_or(false) {
                continue;
            }
            let data = self.store.read_blob(&desc.digest)?;
            client
                .push_blob(&r, data, &desc.digest)
                .await
                .map_err(|e| err(format!("cannot push blob {}: {e}", desc.digest)))?;
        }
        let media = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string());
        let ct = media.parse().map_err(err)?;
        client
            .push_manifest_raw(&r, raw, ct)
            .await
            .map_err(|e| err(format!("cannot push the manifest to {dest}: {e}")))?;
        Ok(dest.to_string())
    }
}
