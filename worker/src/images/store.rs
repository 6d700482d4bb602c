//! The image store under a worker's data directory: blobs kept by digest and verified on the way
//! in, each layer unpacked once (by its diff id) and shared by every image that has it, and an
//! index of named images with the config the runtime needs.
//!
//! ```text
//! images/blobs/sha256/<hex>        manifests, configs, layer blobs
//! images/layers/sha256/<hex>/      unpacked layers, by diff id, overlay-ready
//! images/index.json                reference -> image record
//! images/tmp/                      downloads and loads in progress
//! ```

use super::unpack;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Invalid(String),
    #[error("blob {what} has digest {got}, expected {want}")]
    DigestMismatch {
        what: String,
        want: String,
        got: String,
    },
    #[error("no image `{0}` in the store")]
    NotFound(String),
    #[error("cannot unpack layer {digest}: {source}")]
    Unpack {
        digest: String,
        source: unpack::UnpackError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// What the runtime takes from an image's config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunConfig {
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub reference: String,
    /// `sha256:<hex>` of the manifest: what "exactly this image" means.
    pub digest: String,
    pub config_digest: String,
    /// Diff ids, bottom layer first.
    pub layers: Vec<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    pub config: RunConfig,
    pub created_ms: i64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

pub struct ImageStore {
    root: PathBuf,
    index: Mutex<()>,
    /// The index as last read, with the file's modification time and length: read again only
    /// when the file changed (another process, such as `sluice image rm`, may write it).
    cached: std::sync::Mutex<Option<(std::time::SystemTime, u64, Index)>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => Err(ImageError::Invalid(format!(
            "unsupported digest `{digest}`: expected sha256:<64 hex digits>"
        ))),
    }
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        for d in ["blobs/sha256", "layers/sha256", "tmp"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(io(format!("cannot create {}", root.join(d).display())))?;
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
            index: Mutex::new(()),
            cached: std::sync::Mutex::new(None),
        })
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers/sha256").join(hex_of(diff_id)?))
    }

    /// Stores a blob from a reader, verifying it against `want` when given; returns its digest.
    /// It lands under its digest only once complete and verified.
    pub fn put_blob(
        &self,
        mut r: impl Read,
        want: Option<&str>,
        what: &str,
    ) -> Result<String, ImageError> {
        let tmp = self
            .tmp_dir()
            .join(format!("blob-{}-{}", std::process::id(), uuid_like()));
        let mut f =
            std::fs::File::create(&tmp).map_err(io(format!("cannot write {}", tmp.display())))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(io(format!("cannot read {what}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n])
                .map_err(io(format!("cannot write {}", tmp.display())))?;
        }
        drop(f);
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        if let Some(want) = want {
            if want != got {
                let _ = std::fs::remove_file(&tmp);
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    want: want.to_string(),
                    got,
                });
            }
        }
        let dest = self.blob_path(&got)?;
        std::fs::rename(&tmp, &dest).map_err(io(format!("cannot store blob {got}")))?;
        Ok(got)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        std::fs::read(self.blob_path(digest)?).map_err(io(format!("cannot read blob {digest}")))
    }

    /// Unpacks a stored layer blob under its diff id, unless it already is; returns its size.
    pub fn ensure_layer(&self, blob: &str, diff_id: &str) -> Result<u64, ImageError> {
        let dest = self.layer_path(diff_id)?;
        if dest.is_dir() {
            return Ok(dir_size(&dest));
        }
        let f = std::fs::File::open(self.blob_path(blob)?)
            .map_err(io(format!("cannot open blob {blob}")))?;
        let stats =
            unpack::unpack_layer(f, &dest, Some(diff_id)).map_err(|source| ImageError::Unpack {
                digest: blob.to_string(),
                source,
            })?;
        Ok(stats.bytes)
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.root.join("index.json");
        let stamp = std::fs::metadata(&path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if let Some((mtime, len)) = stamp {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((t, l, index)) = cached.as_ref() {
                if *t == mtime && *l == len {
                    return Ok(index.clone());
                }
            }
        }
        let index = self.read_index_file()?;
        if let Some((mtime, len)) = stamp {
            *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((mtime, len, index.clone()));
        }
        Ok(index)
    }

    fn read_index_file(&self) -> Result<Index, ImageError> {
        match std::fs::read(self.root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Invalid(format!("image index is corrupt: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io("cannot read the image index")(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let tmp = self.root.join("index.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(index).unwrap_or_default())
            .map_err(io("cannot write the image index"))?;
        std::fs::rename(&tmp, self.root.join("index.json"))
            .map_err(io("cannot write the image index"))
    }

    /// Names an image (replacing what the name pointed at before).
    pub fn tag(&self, record: ImageRecord) -> Result<(), ImageError> {
        let _g = self.index.lock();
        let mut index = self.read_index()?;
        index.images.insert(record.reference.clone(), record);
        self.write_index(&index)
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let _g = self.index.lock();
        Ok(self.read_index()?.images.into_values().collect())
    }

    pub fn get(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        let _g = self.index.lock();
        Ok(self.read_index()?.images.remove(reference))
    }

    /// Forgets a name; the image's layers stay until `prune` finds nothing using them.
    pub fn remove(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let _g = self.index.lock();
        let mut index = self.read_index()?;
        let rec = index
            .images
            .remove(reference)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        self.write_index(&index)?;
        Ok(rec)
    }

    /// Deletes blobs and layers that no named image uses, except those in `in_use` (layers of
    /// images running tasks). Returns how many entries were removed.
    pub fn prune(&self, in_use: &[String]) -> Result<usize, ImageError> {
        let _g = self.index.lock();
        let index = self.read_index()?;
        let mut keep: std::collections::HashSet<String> = in_use
            .iter()
            .filter_map(|d| hex_of(d).ok().map(str::to_string))
            .collect();
        for rec in index.images.values() {
            for d in rec.layers.iter().chain([&rec.digest, &rec.config_digest]) {
                if let Ok(h) = hex_of(d) {
                    keep.insert(h.to_string());
                }
            }
            // The manifest names the layer blobs (compressed digests).
            if let Ok(bytes) = self.read_blob(&rec.digest) {
                if let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    for l in m["layers"].as_array().into_iter().flatten() {
                        if let Some(h) = l["digest"].as_str().and_then(|d| hex_of(d).ok()) {
                            keep.insert(h.to_string());
                        }
                    }
                }
            }
        }
        let mut removed = 0;
        for sub in ["blobs/sha256", "layers/sha256"] {
            for e in
                std::fs::read_dir(self.root.join(sub)).map_err(io("cannot list the image store"))?
            {
                let e = e.map_err(io("cannot list the image store"))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    let p = e.path();
                    let r = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    r.map_err(io(format!("cannot remove {}", p.display())))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}")
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
