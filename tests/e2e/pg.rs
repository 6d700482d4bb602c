//! A throwaway PostgreSQL cluster for a test, from Debian's `postgresql` package: `initdb` in a
//! temporary directory (as the `postgres` user: it refuses root), a server listening on a unix
//! socket in that directory only, stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The database's URL, for `--database`.
    pub url: String,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (Debian's `postgresql`; scripts/test installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let d = dir.path().to_str().unwrap();
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
        );
        // No TCP: the socket in the test's own directory only. Durability is not what is
        // tested here (fsync off).
        let opts = format!("-k {d} -c listen_addresses= -c fsync=off -c max_connections=200");
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
        );
        Postgres {
            url: format!("postgres:///postgres?host={d}&user=sluice"),
            bin,
            dir,
        }
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
