//! Registry credentials the way Docker keeps them: `~/.docker/config.json` (or `$DOCKER_CONFIG`),
//! with `auths` entries and credential helpers (`credHelpers`, `credsStore`).

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The keys Docker may have used for a registry in `auths`.
fn keys(registry: &str) -> Vec<String> {
    let mut k = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        k.extend(
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    k
}

/// Credentials for `registry` from the Docker config file at `path`, anonymous when none are configured.
pub fn for_registry(
    registry: &str,
    path: Option<&std::path::Path>,
) -> Result<RegistryAuth, String> {
    let Some(path) = path else {
        return Ok(RegistryAuth::Anonymous);
    };
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let cfg: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let helper = keys(registry)
        .iter()
        .find_map(|k| cfg["credHelpers"][k].as_str().map(str::to_string))
        .or_else(|| cfg["credsStore"].as_str().map(str::to_string));
    for k in keys(registry) {
        let entry = &cfg["auths"][&k];
        if let Some(token) = entry["identitytoken"].as_str() {
            return Ok(RegistryAuth::Bearer(token.to_string()));
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
        }
        if let Some(b64) = entry["auth"].as_str() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("{}: `auths.{k}.auth` is not base64: {e}", path.display()))?;
            let text = String::from_utf8_lossy(&raw);
            let (u, p) = text.split_once(':').ok_or_else(|| {
                format!("{}: `auths.{k}.auth` is not user:password", path.display())
            })?;
            return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
        }
    }
    match helper {
        Some(h) => helper_get(&h, registry),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// Asks `docker-credential-<helper>` for a registry's credentials.
fn helper_get(helper: &str, registry: &str) -> Result<RegistryAuth, String> {
    let bin = format!("docker-credential-{helper}");
    let mut child = Command::new(&bin)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run credential helper {bin}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("credential helper {bin} failed: {e}"))?;
    if !out.status.success() {
        // Helpers say "credentials not found" when they have nothing: that is anonymous access.
        return Ok(RegistryAuth::Anonymous);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("credential helper {bin} answered with invalid JSON: {e}"))?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some("<token>"), Some(t)) => Ok(RegistryAuth::Bearer(t.to_string())),
        (Some(u), Some(s)) => Ok(RegistryAuth::Basic(u.to_string(), s.to_string())),
        _ => Ok(RegistryAuth::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_entries() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(dir.path().join("config.json"), format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{b64}"}}, "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}}}}}}"#)).unwrap();
        let path = Some(dir.path().join("config.json"));
        assert!(
            matches!(for_registry("127.0.0.1:5000", path.as_deref()).unwrap(), RegistryAuth::Basic(u, p) if u == "alice" && p == "s3cret")
        );
        assert!(
            matches!(for_registry("docker.io", path.as_deref()).unwrap(), RegistryAuth::Basic(u, _) if u == "bob")
        );
        assert!(matches!(
            for_registry("ghcr.io", path.as_deref()).unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(matches!(
            for_registry("ghcr.io", None).unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn asks_credential_helpers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-sluicetest");
        std::fs::write(&helper, "#!/bin/sh\nread reg\n[ \"$reg\" = 127.0.0.1:5000 ] && echo '{\"Username\":\"carol\",\"Secret\":\"pw\"}' && exit 0\necho 'credentials not found' >&2; exit 1\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"credHelpers": {"127.0.0.1:5000": "sluicetest"}, "credsStore": "sluicetest"}"#,
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::env::set_var("PATH", path);
        assert!(
            matches!(for_registry("127.0.0.1:5000", Some(&config)).unwrap(), RegistryAuth::Basic(u, p) if u == "carol" && p == "pw")
        );
        assert!(
            matches!(
                for_registry("ghcr.io", Some(&config)).unwrap(),
                RegistryAuth::Anonymous
            ),
            "a helper with nothing stored means anonymous"
        );
    }
}
