//! A throwaway S3 server, for tests and benchmarks: Garage (a real S3-compatible object store,
//! built from crates.io with `cargo install --locked garage` and kept outside the checkout),
//! one node in a temporary directory, with a bucket and a key made for it, killed and removed
//! when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/test` installs Garage; `SLUICE_GARAGE` names another, else `garage` on PATH.
pub const GARAGE_INSTALL: &str = "/var/cache/sluice/garage-2.5.0/bin/garage";

pub struct ThrowawayS3 {
    dir: tempfile::TempDir,
    child: Child,
    bin: PathBuf,
    /// `http://ADDR:PORT`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_GARAGE") {
        return PathBuf::from(p);
    }
    if std::path::Path::new(GARAGE_INSTALL).exists() {
        return PathBuf::from(GARAGE_INSTALL);
    }
    PathBuf::from("garage")
}

fn free_port(ip: std::net::IpAddr) -> Result<u16, String> {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on {ip}: {e}"))
}

impl ThrowawayS3 {
    /// Starts Garage with its S3 API on `ip` (127.0.0.1, or 0.0.0.0 for other network namespaces
    /// to reach it; `endpoint` then names 127.0.0.1), a bucket `sluice`, and a key allowed to read and write it.
    pub fn start(ip: std::net::IpAddr) -> Result<ThrowawayS3, String> {
        let bin = garage_bin();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir
            .path()
            .to_str()
            .ok_or("a temporary directory that is not UTF-8")?;
        let (s3_port, rpc_port) = (free_port(ip)?, free_port("127.0.0.1".parse().unwrap())?);
        let secret_hex = |n: usize| {
            let mut s = String::new();
            while s.len() < n {
                s.push_str(&uuid::Uuid::new_v4().simple().to_string());
            }
            s.truncate(n);
            s
        };
        let config = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{}\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"{}\"\nroot_domain = \".s3.garage\"\n",
            secret_hex(64),
            SocketAddr::new(ip, s3_port),
        );
        let cfg = format!("{d}/garage.toml");
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(format!("{d}/log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args(["-c", &cfg, "server"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start Garage ({}): {e}; `scripts/test` installs it",
                    bin.display()
                )
            })?;
        let s3 = ThrowawayS3 {
            dir,
            child,
            bin,
            endpoint: format!(
                "http://{}",
                SocketAddr::new(
                    if ip.is_unspecified() {
                        [127, 0, 0, 1].into()
                    } else {
                        ip
                    },
                    s3_port
                )
            ),
            region: "garage".into(),
            bucket: "sluice".into(),
            key_id: format!("GK{}", secret_hex(24)),
            secret: secret_hex(64),
        };
        // The node answers on its RPC port, then takes a role in a layout of one.
        let deadline = Instant::now() + Duration::from_secs(30);
        let node = loop {
            match s3.garage(&["node", "id", "-q"]) {
                Ok(out) => break out.chars().take(16).collect::<String>(),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s3.garage(&["layout", "assign", "-z", "dc1", "-c", "10G", &node])?;
        s3.garage(&["layout", "apply", "--version", "1"])?;
        let bucket = s3.bucket.clone();
        let (key, secret) = (s3.key_id.clone(), s3.secret.clone());
        s3.garage(&["bucket", "create", &bucket])?;
        s3.garage(&["key", "import", "--yes", &key, &secret, "-n", "sluice"])?;
        s3.garage(&[
            "bucket", "allow", "--read", "--write", "--owner", &bucket, "--key", &key,
        ])?;
        Ok(s3)
    }

    /// Runs a `garage` administration command against this node.
    pub fn garage(&self, args: &[&str]) -> Result<String, String> {
        let cfg = self.dir.path().join("garage.toml");
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .map_err(|e| format!("garage: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "garage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `--artifacts` for a store beneath `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region={}",
            self.bucket, self.endpoint, self.region
        )
    }

    /// The credentials, as the AWS SDKs read them from the environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }

    /// A client of the store beneath `prefix`, with this server's credentials.
    pub fn store(&self, prefix: &str) -> sluice_sdk::artifacts::ObjectArtifacts {
        sluice_sdk::artifacts::ObjectArtifacts::from_url_with(
            &self.url(prefix),
            Some((&self.key_id, &self.secret)),
        )
        .expect("the throwaway store's URL is well formed")
    }

    /// What the node wrote to its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for ThrowawayS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
