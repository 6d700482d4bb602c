//! A throwaway PostgreSQL cluster, for tests and benchmarks, from Debian's `postgresql` package:
//! `initdb` in a temporary directory (as the `postgres` user: it refuses root), a server listening
//! on a unix socket in that directory only, stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The database's URL, for `--database`.
    pub url: String,
}

/// The newest PostgreSQL's programs, where Debian puts them.
fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (Debian's `postgresql`): {e}"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql".to_string())
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .map_err(|e| format!("runuser: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Postgres {
    /// Starts a cluster (as root: its programs run as the `postgres` user).
    pub fn start() -> Result<Postgres, String> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("chown")
            .args(["postgres:postgres", &dir.path().to_string_lossy()])
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("cannot give the cluster's directory to the postgres user".into());
        }
        let d = dir
            .path()
            .to_str()
            .ok_or("a temporary directory that is not UTF-8")?;
        let data = format!("{d}/data");
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "sluice",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        // No TCP: the socket in its own directory only. Commits are not waited on to reach the
        // disk, as SQLite's in sluice's WAL mode (`synchronous = NORMAL`): their figures compare.
        let opts =
            format!("-k {d} -c listen_addresses= -c synchronous_commit=off -c max_connections=200");
        as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &opts,
                "-l",
                &format!("{d}/log"),
                "-w",
                "start",
            ],
        )?;
        Ok(Postgres {
            url: format!("postgres:///postgres?host={d}&user=sluice"),
            bin,
            dir,
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
