//! Bringing images in from files: a `docker save` tarball, an OCI image layout (directory or
//! tar), or a root filesystem tarball imported as a one-layer image.

use super::reference;
use super::store::{io, sha256_hex, ImageError, ImageRecord, ImageStore, RunConfig};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

use sluice_sdk::api::now_ms;

/// Loads every image in a `docker save` tarball or an OCI layout (directory or tar). `tag`
/// names the image when the file does not (an OCI layout without full reference names).
pub fn load(
    store: &ImageStore,
    path: &Path,
    tag: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let meta = std::fs::metadata(path).map_err(io(format!("cannot read {}", path.display())))?;
    if meta.is_dir() {
        return load_dir(store, path, tag);
    }
    // A tarball: unpacked to a scratch directory (the tar reader refuses entries that escape it).
    let scratch = store
        .tmp_dir()
        .join(format!("load-{}-{}", std::process::id(), now_ms()));
    let f = std::fs::File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
    let mut buf = std::io::BufReader::new(f);
    let gz = std::io::BufRead::fill_buf(&mut buf)
        .map(|h| h.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let reader: Box<dyn std::io::Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(buf))
    } else {
        Box::new(buf)
    };
    let result = tar::Archive::new(reader)
        .unpack(&scratch)
        .map_err(io(format!("{} is not a readable tar", path.display())))
        .and_then(|_| load_dir(store, &scratch, tag));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn read_json(path: &Path) -> Result<Value, ImageError> {
    let bytes = std::fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{} is not valid JSON: {e}", path.display())))
}

fn load_dir(
    store: &ImageStore,
    dir: &Path,
    tag: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    if dir.join("manifest.json").is_file() {
        load_docker(store, dir, tag)
    } else if dir.join("index.json").is_file() {
        load_oci(store, dir, tag)
    } else {
        Err(invalid(format!("{} is neither a `docker save` archive (manifest.json) nor an OCI image layout (index.json)", dir.display())))
    }
}

/// A path inside the archive, refusing ones that leave it.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(invalid(format!("archive names `{rel}`, outside itself")));
    }
    Ok(dir.join(p))
}

fn run_config(cfg: &ImageConfiguration) -> RunConfig {
    let c = cfg.config().clone().unwrap_or_default();
    RunConfig {
        env: c.env().clone().unwrap_or_default(),
        entrypoint: c.entrypoint().clone(),
        cmd: c.cmd().clone(),
        working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
        user: c.user().clone().filter(|u| !u.is_empty()),
    }
}

/// Stores config and layers, unpacks each layer once, writes a manifest, names the image.
fn finish(
    store: &ImageStore,
    names: &[String],
    config_bytes: &[u8],
    layer_blobs: Vec<(String, String, u64)>,
) -> Result<Vec<ImageRecord>, ImageError> {
    finish_with_manifest(store, names, config_bytes, layer_blobs, None)
}

/// As [`finish`], keeping a registry's own manifest bytes (verified against their digest) instead
/// of writing one.
pub(super) fn finish_with_manifest(
    store: &ImageStore,
    names: &[String],
    config_bytes: &[u8],
    layer_blobs: Vec<(String, String, u64)>,
    manifest: Option<(&[u8], &str)>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let cfg = ImageConfiguration::from_reader(config_bytes)
        .map_err(|e| invalid(format!("image config is invalid: {e}")))?;
    let diff_ids: Vec<String> = cfg.rootfs().diff_ids().to_vec();
    if diff_ids.len() != layer_blobs.len() {
        return Err(invalid(format!(
            "image config lists {} layers but the image has {}",
            diff_ids.len(),
            layer_blobs.len()
        )));
    }
    let config_digest = store.put_blob(config_bytes, None, "image config")?;
    let mut size = 0;
    for ((blob, _, _), diff_id) in layer_blobs.iter().zip(&diff_ids) {
        size += store.ensure_layer(blob, diff_id)?;
    }
    let digest = match manifest {
        Some((bytes, want)) => store.put_blob(bytes, Some(want), "manifest")?,
        None => write_manifest(store, &config_digest, config_bytes.len(), &layer_blobs)?,
    };
    let mut out = Vec::new();
    for name in names {
        let rec = ImageRecord {
            reference: name.clone(),
            digest: digest.clone(),
            config_digest: config_digest.clone(),
            layers: diff_ids.clone(),
            size,
            config: run_config(&cfg),
            created_ms: now_ms(),
        };
        store.tag(rec.clone())?;
        out.push(rec);
    }
    Ok(out)
}

fn write_manifest(
    store: &ImageStore,
    config_digest: &str,
    config_len: usize,
    layer_blobs: &[(String, String, u64)],
) -> Result<String, ImageError> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_len},
        "layers": layer_blobs.iter().map(|(d, mt, sz)| json!({"mediaType": mt, "digest": d, "size": sz})).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    store.put_blob(&manifest_bytes[..], None, "manifest")
}

fn full_names(raw: &[String]) -> Result<Vec<String>, ImageError> {
    raw.iter()
        .map(|n| reference::parse(n).map(|r| r.to_string()).map_err(invalid))
        .collect()
}

fn load_docker(
    store: &ImageStore,
    dir: &Path,
    tag: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let manifest = read_json(&dir.join("manifest.json"))?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| invalid("manifest.json must be a list of images"))?;
    let mut out = Vec::new();
    for e in entries {
        let config_path = e["Config"]
            .as_str()
            .ok_or_else(|| invalid("manifest.json entry without `Config`"))?;
        let config_bytes = std::fs::read(inside(dir, config_path)?)
            .map_err(io(format!("cannot read {config_path}")))?;
        let mut layers = Vec::new();
        for l in e["Layers"].as_array().into_iter().flatten() {
            let rel = l
                .as_str()
                .ok_or_else(|| invalid("`Layers` must list paths"))?;
            let path = inside(dir, rel)?;
            let f = std::fs::File::open(&path).map_err(io(format!("cannot open layer {rel}")))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            // A blobs/sha256/<hex> path names its own digest: verify it.
            let want = rel
                .strip_prefix("blobs/sha256/")
                .map(|h| format!("sha256:{h}"));
            let d = store.put_blob(f, want.as_deref(), rel)?;
            layers.push((
                d,
                "application/vnd.oci.image.layer.v1.tar".to_string(),
                size,
            ));
        }
        let mut names: Vec<String> = e["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        if let Some(t) = tag {
            names = vec![t.to_string()];
        }
        if names.is_empty() {
            return Err(invalid(
                "the archive names no image (no RepoTags): give one with --tag",
            ));
        }
        out.extend(finish(store, &full_names(&names)?, &config_bytes, layers)?);
    }
    Ok(out)
}

fn oci_blob(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| invalid(format!("bad digest `{digest}`")))?;
    inside(dir, &format!("blobs/{alg}/{hex}"))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Follows an index to the manifest for this host's platform.
fn pick_manifest(dir: &Path, desc: &Value) -> Result<(String, Value), ImageError> {
    let digest = desc["digest"]
        .as_str()
        .ok_or_else(|| invalid("index entry without a digest"))?
        .to_string();
    let bytes =
        std::fs::read(oci_blob(dir, &digest)?).map_err(io(format!("cannot read blob {digest}")))?;
    let got = sha256_hex(&bytes);
    if got != digest {
        return Err(ImageError::DigestMismatch {
            what: "manifest".into(),
            want: digest,
            got,
        });
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("manifest {digest} is not JSON: {e}")))?;
    if v["manifests"].is_array() {
        let m = v["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["platform"]["os"] == "linux" && m["platform"]["architecture"] == host_arch()
            })
            .ok_or_else(|| {
                invalid(format!(
                    "image index {digest} has no linux/{} image",
                    host_arch()
                ))
            })?;
        return pick_manifest(dir, m);
    }
    Ok((digest, v))
}

fn load_oci(
    store: &ImageStore,
    dir: &Path,
    tag: Option<&str>,
) -> Result<Vec<ImageRecord>, ImageError> {
    let index = read_json(&dir.join("index.json"))?;
    let mut out = Vec::new();
    for desc in index["manifests"].as_array().into_iter().flatten() {
        let ann = &desc["annotations"];
        let name = tag
            .map(str::to_string)
            .or_else(|| ann["io.containerd.image.name"].as_str().map(str::to_string))
            .or_else(|| ann["org.opencontainers.image.ref.name"].as_str().filter(|n| reference::parse(n).is_ok() && n.contains([':', '/'])).map(str::to_string))
            .ok_or_else(|| invalid("the OCI layout does not name its image with a full reference: give one with --tag"))?;
        let (_, manifest) = pick_manifest(dir, desc)?;
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| invalid("manifest without a config"))?;
        let config_bytes = std::fs::read(oci_blob(dir, config_digest)?)
            .map_err(io(format!("cannot read config {config_digest}")))?;
        let got = sha256_hex(&config_bytes);
        if got != config_digest {
            return Err(ImageError::DigestMismatch {
                what: "image config".into(),
                want: config_digest.into(),
                got,
            });
        }
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let d = l["digest"]
                .as_str()
                .ok_or_else(|| invalid("layer without a digest"))?;
            let f = std::fs::File::open(oci_blob(dir, d)?)
                .map_err(io(format!("cannot open layer {d}")))?;
            let stored = store.put_blob(f, Some(d), &format!("layer {d}"))?;
            let mt = l["mediaType"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.layer.v1.tar+gzip")
                .to_string();
            layers.push((stored, mt, l["size"].as_u64().unwrap_or(0)));
        }
        out.extend(finish(store, &full_names(&[name])?, &config_bytes, layers)?);
    }
    if out.is_empty() {
        return Err(invalid("the OCI layout's index.json lists no images"));
    }
    Ok(out)
}

/// Imports a root filesystem tarball (plain or gzip) as a one-layer image named `name`.
pub fn import(
    store: &ImageStore,
    rootfs_tar: &Path,
    name: &str,
) -> Result<ImageRecord, ImageError> {
    import_with(store, rootfs_tar, name, &[])
}

/// The image config of a root filesystem imported with Dockerfile-style `changes` applied, as
/// `docker import --change` has them: `ENTRYPOINT`, `CMD` (JSON or shell form), `ENV`, `USER`,
/// `WORKDIR`.
pub fn import_config(changes: &[String]) -> Result<Value, ImageError> {
    let mut c =
        json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
    for change in changes {
        let (word, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change.trim(), ""));
        let rest = rest.trim();
        let command = || -> Result<Value, ImageError> {
            if rest.starts_with('[') {
                let v: Vec<String> = serde_json::from_str(rest)
                    .map_err(|e| invalid(format!("`{change}`: not a JSON list of strings: {e}")))?;
                Ok(json!(v))
            } else {
                Ok(json!(["/bin/sh", "-c", rest]))
            }
        };
        match word.to_ascii_uppercase().as_str() {
            "ENTRYPOINT" => c["Entrypoint"] = command()?,
            "CMD" => c["Cmd"] = command()?,
            "WORKDIR" if rest.starts_with('/') => c["WorkingDir"] = json!(rest),
            "USER" if !rest.is_empty() => c["User"] = json!(rest),
            "ENV" => {
                let (k, v) = rest
                    .split_once('=')
                    .or_else(|| rest.split_once(char::is_whitespace))
                    .ok_or_else(|| invalid(format!("`{change}`: expected ENV NAME=value")))?;
                let env = c["Env"].as_array_mut().expect("Env is a list");
                env.retain(|e| {
                    e.as_str().and_then(|e| e.split_once('=')).map(|(n, _)| n) != Some(k)
                });
                env.push(json!(format!("{k}={}", v.trim())));
            }
            _ => {
                return Err(invalid(format!(
                "`{change}`: a change is ENTRYPOINT, CMD, ENV, USER or WORKDIR (an absolute path)"
            )))
            }
        }
    }
    Ok(c)
}

/// Imports a root filesystem tarball as a one-layer image, its config made from `changes` (see
/// [`import_config`]).
pub fn import_with(
    store: &ImageStore,
    rootfs_tar: &Path,
    name: &str,
    changes: &[String],
) -> Result<ImageRecord, ImageError> {
    let run_config = import_config(changes)?;
    let full = reference::parse(name).map_err(invalid)?.to_string();
    let f = std::fs::File::open(rootfs_tar)
        .map_err(io(format!("cannot open {}", rootfs_tar.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let blob = store.put_blob(f, None, &rootfs_tar.display().to_string())?;
    // The diff id is the digest of the uncompressed tar: unpack into scratch to learn it.
    let scratch = store
        .tmp_dir()
        .join(format!("import-{}-{}", std::process::id(), now_ms()));
    let bf = std::fs::File::open(store.blob_path(&blob)?)
        .map_err(io("cannot reopen the imported blob"))?;
    let stats =
        super::unpack::unpack_layer(bf, &scratch, None).map_err(|source| ImageError::Unpack {
            digest: blob.clone(),
            source,
        })?;
    let layer = store.layer_path(&stats.diff_id)?;
    if layer.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        std::fs::rename(&scratch, &layer).map_err(io("cannot store the imported layer"))?;
    }
    let gz = std::fs::read(store.blob_path(&blob)?)
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let mt = if gz {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": [stats.diff_id]},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let mut recs = finish(
        store,
        &[full],
        &config_bytes,
        vec![(blob, mt.to_string(), size)],
    )?;
    recs.pop()
        .ok_or_else(|| invalid("import produced no image"))
}

#[cfg(test)]
mod tests;
