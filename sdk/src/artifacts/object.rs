//! Artifacts in an S3-compatible object store (`--artifacts s3://bucket/prefix`), through the
//! `object_store` crate: request signing, multipart uploads and retries are its.
//!
//! Layout: a task's artifact `NAME` of attempt `A` is kept at `PREFIX/RUN/TASK/A/NAME`, as
//! Kubeflow keeps its pipeline root. A file artifact is one object there. A directory artifact
//! is its files under `PREFIX/RUN/TASK/A/NAME/…`, and, written last, a manifest object at
//! `PREFIX/RUN/TASK/A/NAME` itself (metadata `sluice-kind: directory`) that lists its files,
//! directories and links: an object store keeps neither links nor empty directories, and the
//! manifest's presence says the upload is whole.
//!
//! Configuration is read as the AWS SDKs read it: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/
//! `AWS_ENDPOINT_URL`, then the shared files (`AWS_PROFILE`, `~/.aws/credentials`,
//! `~/.aws/config`, or where `AWS_SHARED_CREDENTIALS_FILE`/`AWS_CONFIG_FILE` say), then the
//! container, web-identity and instance credentials `object_store` finds itself. Options in the
//! URL's query (`endpoint`, `region`, `path_style`) come first: they are what a server announces
//! to its workers, whose own credentials stay theirs.

use super::ArtifactError;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::{Path as Key, PathPart};
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload,
};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The metadata key that marks a directory artifact's manifest.
pub const KIND_KEY: &str = "sluice-kind";
pub const DIRECTORY: &str = "directory";
/// A manifest larger than this is refused (a million entries of ordinary names fit).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// A directory artifact's contents, as its manifest lists them (paths relative to it, `/`-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
    #[serde(default)]
    pub dirs: Vec<String>,
    #[serde(default)]
    pub links: Vec<ManifestLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLink {
    pub path: String,
    pub target: String,
}

impl Manifest {
    /// Checks every path the manifest names: plain relative paths, each named once. What a store
    /// hands back is not trusted any more than what a step writes.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        let paths = self
            .files
            .iter()
            .map(|f| f.path.as_str())
            .chain(self.dirs.iter().map(String::as_str))
            .chain(self.links.iter().map(|l| l.path.as_str()));
        for p in paths {
            if !plain_relative(p) {
                return Err(format!(
                    "the manifest names `{}`, which is not a plain relative path",
                    p.escape_debug()
                ));
            }
            if !seen.insert(p) {
                return Err(format!("the manifest names `{}` twice", p.escape_debug()));
            }
        }
        for l in &self.links {
            if l.target.is_empty() || l.target.contains('\0') {
                return Err(format!("the manifest's link `{}` has no target", l.path));
            }
        }
        Ok(())
    }
}

/// `/`-separated, relative, with no empty, `.` or `..` part and no NUL byte.
pub fn plain_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[derive(Debug, thiserror::Error)]
#[error("artifact store `{url}`: {why}")]
pub struct ConfigError {
    pub url: String,
    pub why: String,
}

/// What an `s3://` URL says, before the environment is read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    bucket: String,
    prefix: Vec<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
}

fn parse_url(url: &str) -> Result<Parsed, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or("only `s3://bucket/prefix` object stores are supported")?;
    let (loc, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = loc.split_once('/').unwrap_or((loc, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if !bucket_ok {
        return Err(format!(
            "`{}` is not a bucket name (3 to 63 lowercase letters, digits, `.` and `-`)",
            bucket.escape_debug()
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    let prefix: Vec<String> = if prefix.is_empty() {
        Vec::new()
    } else {
        if !plain_relative(prefix) {
            return Err(format!(
                "the prefix `{}` has an empty, `.` or `..` part",
                prefix.escape_debug()
            ));
        }
        prefix.split('/').map(str::to_string).collect()
    };
    let mut p = Parsed {
        bucket: bucket.to_string(),
        prefix,
        endpoint: None,
        region: None,
        path_style: None,
    };
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| format!("option `{k}` is not UTF-8"))?
            .into_owned();
        match k {
            "endpoint" => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!("endpoint `{v}` is not an http:// or https:// URL"));
                }
                p.endpoint = Some(v);
            }
            "region" if !v.is_empty() => p.region = Some(v),
            "path_style" => {
                p.path_style = Some(match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("path_style is `{v}`, not true or false")),
                })
            }
            _ => {
                return Err(format!(
                    "unknown option `{}` (known: endpoint, region, path_style)",
                    k.escape_debug()
                ))
            }
        }
    }
    Ok(p)
}

/// One profile's settings from the AWS shared files.
#[derive(Debug, Default, PartialEq, Eq)]
struct Profile {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
}

/// Reads `profile`'s keys from an INI-style AWS shared file: `[NAME]` in the credentials file,
/// `[profile NAME]` (or `[default]`) in the config file.
fn read_profile(text: &str, profile: &str, config_file: bool, into: &mut Profile) {
    let wanted = |section: &str| {
        let s = section.trim();
        if config_file && profile != "default" {
            s.strip_prefix("profile")
                .is_some_and(|n| n.starts_with(char::is_whitespace) && n.trim() == profile)
        } else {
            s == profile
        }
    };
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = wanted(section);
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let slot = match k.trim() {
            "aws_access_key_id" => &mut into.access_key_id,
            "aws_secret_access_key" => &mut into.secret_access_key,
            "aws_session_token" => &mut into.session_token,
            "region" => &mut into.region,
            "endpoint_url" => &mut into.endpoint_url,
            _ => continue,
        };
        if slot.is_none() {
            *slot = v;
        }
    }
}

/// Artifacts kept in one bucket, beneath one prefix.
pub struct ObjectArtifacts {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Vec<String>,
    /// The URL as configured (with its options, never with credentials): what workers are told.
    url: String,
}

impl std::fmt::Debug for ObjectArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl ObjectArtifacts {
    /// The store `url` names, configured from it and from this process's environment.
    pub fn from_url(url: &str) -> Result<ObjectArtifacts, ConfigError> {
        ObjectArtifacts::from_url_with(url, None)
    }

    /// The store `url` names, with these credentials (access key id, secret) if given.
    pub fn from_url_with(
        url: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<ObjectArtifacts, ConfigError> {
        // The HTTPS client's cryptography, as for the API client's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let err = |why: String| ConfigError {
            url: url.to_string(),
            why,
        };
        let p = parse_url(url).map_err(err)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let profile_name = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let mut profile = Profile::default();
        let files = [
            (
                env("AWS_SHARED_CREDENTIALS_FILE")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials"))),
                false,
            ),
            (
                env("AWS_CONFIG_FILE")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".aws/config"))),
                true,
            ),
        ];
        for (path, config) in files {
            if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
                read_profile(&text, &profile_name, config, &mut profile);
            }
        }
        // The environment's AWS_* settings, as object_store names them.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&p.bucket);
        if env("AWS_ACCESS_KEY_ID").is_none() {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = &profile.session_token {
                    b = b.with_token(t);
                }
            }
        }
        if let Some((id, secret)) = credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let region = p
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or(profile.region);
        if let Some(r) = region {
            b = b.with_region(r);
        }
        let endpoint = p
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(profile.endpoint_url);
        if let Some(e) = &endpoint {
            // An endpoint given is used as written: plain HTTP where it says so (what it stores
            // is verified by digest when read back).
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        // Path-style requests unless told otherwise: what S3-compatible servers expect; AWS
        // itself accepts both.
        b = b
            .with_virtual_hosted_style_request(!p.path_style.unwrap_or(true))
            // Bodies are verified end to end by their BLAKE3 digest; signing each part's SHA-256
            // as well would cost a second pass over every byte.
            .with_unsigned_payload(true);
        let store = b.build().map_err(|e| err(e.to_string()))?;
        Ok(ObjectArtifacts {
            store: Arc::new(store),
            bucket: p.bucket,
            prefix: p.prefix,
            url: url.to_string(),
        })
    }

    /// Whether the bucket answers to these credentials (a listing beneath the prefix): a server
    /// says so at start rather than at the first upload.
    pub async fn check(&self) -> Result<(), ConfigError> {
        let prefix = Key::from_iter(self.prefix.iter().map(|p| PathPart::from(p.as_str())));
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| ConfigError {
                url: self.url.clone(),
                why: format!("the bucket cannot be listed: {e}"),
            })
    }

    /// The URL this store was configured with (no credentials in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URI of the artifact at `parts` (run, task, attempt, name) beneath the prefix.
    pub fn uri_of(&self, parts: &[&str]) -> String {
        let mut s = format!("s3://{}", self.bucket);
        for p in self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(parts.iter().copied())
        {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    /// The parts of `uri` beneath this store's prefix (run, task, attempt, name), when it names a
    /// place in this store.
    pub fn parts_of<'u>(&self, uri: &'u str) -> Result<Vec<&'u str>, ArtifactError> {
        let elsewhere = |why: &str| ArtifactError::Elsewhere {
            uri: uri.to_string(),
            why: why.to_string(),
        };
        let rest = uri
            .strip_prefix("s3://")
            .and_then(|r| r.strip_prefix(self.bucket.as_str()))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| elsewhere("outside this server's bucket"))?;
        if !plain_relative(rest) {
            return Err(elsewhere("not a plain object key"));
        }
        let mut parts: Vec<&str> = rest.split('/').collect();
        if parts.len() <= self.prefix.len()
            || parts
                .iter()
                .zip(&self.prefix)
                .any(|(a, b)| *a != b.as_str())
        {
            return Err(elsewhere("outside this store's prefix"));
        }
        parts.drain(..self.prefix.len());
        Ok(parts)
    }

    /// The object key of `uri`, and of `rel` inside it.
    pub fn key_of(&self, uri: &str, rel: Option<&str>) -> Result<Key, ArtifactError> {
        let parts = self.parts_of(uri)?;
        let inner = rel.into_iter().flat_map(|r| r.split('/'));
        Ok(Key::from_iter(
            self.prefix
                .iter()
                .map(|p| PathPart::from(p.as_str()))
                .chain(parts.into_iter().map(PathPart::from))
                .chain(inner.map(PathPart::from)),
        ))
    }

    /// What is at `uri`: a file's size, or a directory's manifest. `Gone` when nothing (or an
    /// upload not finished) is there.
    pub async fn stat(&self, uri: &str) -> Result<Stat, ArtifactError> {
        let key = self.key_of(uri, None)?;
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let head = self
            .store
            .get_opts(&key, opts)
            .await
            .map_err(|e| gone_or(uri, e))?;
        let is_dir = head
            .attributes
            .get(&Attribute::Metadata(KIND_KEY.into()))
            .is_some_and(|v| v.as_ref() == DIRECTORY);
        if !is_dir {
            return Ok(Stat::File {
                size: head.meta.size,
            });
        }
        if head.meta.size > MAX_MANIFEST_BYTES {
            return Err(broken(
                uri,
                format!("its manifest is {} bytes", head.meta.size),
            ));
        }
        let body = self
            .store
            .get(&key)
            .await
            .map_err(|e| gone_or(uri, e))?
            .bytes()
            .await
            .map_err(|e| gone_or(uri, e))?;
        let m: Manifest = serde_json::from_slice(&body)
            .map_err(|e| broken(uri, format!("its manifest does not parse: {e}")))?;
        m.check().map_err(|why| broken(uri, why))?;
        Ok(Stat::Dir(m))
    }

    /// Whether every artifact is in this store (a missing one, or one elsewhere, is not).
    pub async fn contains_all(&self, uris: &[String]) -> bool {
        let mut checks = Vec::with_capacity(uris.len());
        for u in uris {
            let Ok(key) = self.key_of(u, None) else {
                return false;
            };
            let store = self.store.clone();
            checks.push(async move { store.head(&key).await.is_ok() });
        }
        stream::iter(checks)
            .buffer_unordered(8)
            .all(std::future::ready)
            .await
    }

    /// The bytes of the object at `key`, as one GET streamed (a request that times out or breaks
    /// off is resumed from where it stopped, by `object_store`).
    pub async fn read(
        &self,
        key: &Key,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ArtifactError> {
        self.read_from(key, 0).await
    }

    /// The bytes of the object at `key` from offset `from` on (to resume a read cut short).
    pub async fn read_from(
        &self,
        key: &Key,
        from: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ArtifactError> {
        let opts = GetOptions {
            range: (from > 0).then_some(object_store::GetRange::Offset(from)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(key, opts)
            .await
            .map_err(|e| gone_or(key.as_ref(), e))?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Writes a directory artifact's manifest at `uri`, which makes it whole.
    pub async fn put_manifest(&self, uri: &str, m: &Manifest) -> Result<(), String> {
        let key = self.key_of(uri, None).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(m).map_err(|e| e.to_string())?;
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(KIND_KEY.into()),
            AttributeValue::from(DIRECTORY),
        );
        attributes.insert(
            Attribute::ContentType,
            AttributeValue::from("application/json"),
        );
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(&key, PutPayload::from(body), opts)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot write the manifest of {uri}: {e}"))
    }

    /// Deletes the artifact at `uri`: its object, or a directory's manifest first (which makes it
    /// absent) and then its files.
    pub async fn delete(&self, uri: &str) -> Result<(), ArtifactError> {
        let key = self.key_of(uri, None)?;
        let files = match self.stat(uri).await? {
            Stat::File { .. } => Vec::new(),
            Stat::Dir(m) => m.files,
        };
        self.store.delete(&key).await.map_err(|e| gone_or(uri, e))?;
        for f in files {
            let k = self.key_of(uri, Some(&f.path))?;
            self.store.delete(&k).await.map_err(|e| gone_or(uri, e))?;
        }
        Ok(())
    }
}

/// What a URI in the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stat {
    File { size: u64 },
    Dir(Manifest),
}

fn gone_or(uri: &str, e: object_store::Error) -> ArtifactError {
    match e {
        object_store::Error::NotFound { .. } => ArtifactError::Gone(uri.to_string()),
        e => ArtifactError::Unreadable {
            uri: uri.to_string(),
            why: e.to_string(),
        },
    }
}

fn broken(uri: &str, why: String) -> ArtifactError {
    ArtifactError::Unreadable {
        uri: uri.to_string(),
        why,
    }
}

/// A relative path as the store names it (`/`-separated), refusing what it cannot keep.
pub fn store_path(rel: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().ok_or_else(|| {
                format!(
                    "`{}` is not UTF-8: an object store keeps UTF-8 names",
                    rel.display()
                )
            })?),
            _ => return Err(format!("`{}` is not a plain relative path", rel.display())),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_a_prefix_and_options_or_say_what_is_wrong() {
        let p = parse_url("s3://ml-artifacts/team/a/?endpoint=http%3A%2F%2F198.18.0.9%3A3900&region=garage&path_style=true").unwrap();
        assert_eq!(p.bucket, "ml-artifacts");
        assert_eq!(p.prefix, vec!["team", "a"]);
        assert_eq!(p.endpoint.as_deref(), Some("http://198.18.0.9:3900"));
        assert_eq!(p.region.as_deref(), Some("garage"));
        assert_eq!(p.path_style, Some(true));
        assert_eq!(parse_url("s3://bkt").unwrap().prefix, Vec::<String>::new());
        for (url, says) in [
            ("gs://b/p", "only `s3://"),
            ("s3://B/p", "not a bucket name"),
            ("s3://ab/p", "not a bucket name"),
            ("s3://key:secret@bucket/p", "not a bucket name"),
            ("s3://bkt/a/../b", "`..` part"),
            ("s3://bkt/a//b", "empty"),
            ("s3://bkt/p?endpoint=ftp://x", "not an http"),
            ("s3://bkt/p?path_style=maybe", "not true or false"),
            ("s3://bkt/p?secret=x", "unknown option `secret`"),
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn profiles_are_read_from_the_shared_files_as_the_sdks_read_them() {
        let creds = "[default]\naws_access_key_id = AKD\naws_secret_access_key=SD\n\n[ci]\n# a comment\naws_access_key_id = AKC\naws_secret_access_key = SC\naws_session_token = T\n";
        let config = "[default]\nregion = eu-west-1\n[profile ci]\nregion = garage\nendpoint_url = http://127.0.0.1:3900\n[ci]\nregion = wrong\n";
        let mut p = Profile::default();
        read_profile(creds, "ci", false, &mut p);
        read_profile(config, "ci", true, &mut p);
        assert_eq!(
            p,
            Profile {
                access_key_id: Some("AKC".into()),
                secret_access_key: Some("SC".into()),
                session_token: Some("T".into()),
                region: Some("garage".into()),
                endpoint_url: Some("http://127.0.0.1:3900".into()),
            }
        );
        let mut d = Profile::default();
        read_profile(creds, "default", false, &mut d);
        read_profile(config, "default", true, &mut d);
        assert_eq!(d.access_key_id.as_deref(), Some("AKD"));
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn uris_map_to_keys_only_beneath_the_store_prefix() {
        let s = ObjectArtifacts::from_url("s3://bkt/team?endpoint=http://127.0.0.1:9&region=x")
            .unwrap();
        let uri = s.uri_of(&["r1", "train", "1", "model"]);
        assert_eq!(uri, "s3://bkt/team/r1/train/1/model");
        assert_eq!(s.parts_of(&uri).unwrap(), vec!["r1", "train", "1", "model"]);
        assert_eq!(
            s.key_of(&uri, Some("a/b.txt")).unwrap().as_ref(),
            "team/r1/train/1/model/a/b.txt"
        );
        for bad in [
            "s3://other/team/r1/t/1/m",
            "s3://bkt/elsewhere/r1",
            "s3://bkt/team",
            "s3://bkt/team/../x",
            "s3://bkt/team//x",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(s.parts_of(bad), Err(ArtifactError::Elsewhere { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_manifest_names_only_plain_paths_each_once() {
        let f = |p: &str| ManifestFile {
            path: p.into(),
            size: 1,
        };
        let ok = Manifest {
            files: vec![f("a/b"), f("c")],
            dirs: vec!["a".into(), "e".into()],
            links: vec![ManifestLink {
                path: "l".into(),
                target: "../../etc/passwd".into(),
            }],
        };
        ok.check().unwrap();
        for bad in ["../x", "/abs", "a//b", "a/./b", ""] {
            let m = Manifest {
                files: vec![f(bad)],
                ..Default::default()
            };
            assert!(m.check().is_err(), "{bad:?}");
        }
        let twice = Manifest {
            files: vec![f("a")],
            dirs: vec!["a".into()],
            ..Default::default()
        };
        assert!(twice.check().unwrap_err().contains("twice"));
    }
}
