//! `sluice backup DIR`: a consistent copy of a server's state, taken while it runs: the database
//! (SQLite's online copy) and the key its secrets are sealed under. `sluice server --data-dir
//! DIR` serves the copy.

use anyhow::Context;
use clap::Args;
use sluice_server::store::Store;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct BackupArgs {
    /// A directory to create, holding `sluice.db` and `secrets.key`.
    dest: PathBuf,
    /// The data directory whose state is copied (the server's `--data-dir`).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = super::serve::default_data_dir())]
    data_dir: PathBuf,
    /// A server whose state is in PostgreSQL (`--database`): sluice says how to back it up.
    #[arg(long, env = "SLUICE_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

pub async fn backup(a: BackupArgs) -> anyhow::Result<u8> {
    if let Some(url) = &a.database {
        let store = sluice_server::store::open(Some(url), &a.data_dir).await?;
        let said = store.backup(&a.dest).await;
        store.close().await;
        if let Err(e) = said {
            eprintln!("error: {e}");
        }
        return Ok(super::EXIT_INVALID);
    }
    let db = a.data_dir.join("sluice.db");
    if !db.is_file() {
        eprintln!("error: no database at {}", db.display());
        return Ok(super::EXIT_INVALID);
    }
    if a.dest.exists() {
        eprintln!(
            "error: {} exists; a backup goes into a new directory",
            a.dest.display()
        );
        return Ok(super::EXIT_INVALID);
    }
    // Made beside its final name, then renamed: a backup is whole or absent.
    let parent = match a.dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".sluice-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    copy_into(&a.data_dir, tmp.path()).await?;
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &a.dest)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), a.dest.display()))?;
    println!(
        "backed up {} to {} (serve it with `sluice server --data-dir {}`)",
        a.data_dir.display(),
        a.dest.display(),
        a.dest.display()
    );
    Ok(0)
}

async fn copy_into(data_dir: &Path, dir: &Path) -> anyhow::Result<()> {
    let store = sluice_server::store::SqliteStore::open(data_dir)
        .await
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let copied = store.backup(&dir.join("sluice.db")).await;
    store.close().await;
    copied.context("cannot copy the database")?;
    let key = data_dir.join("secrets.key");
    if key.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let bytes =
            std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("secrets.key"))
            .context("cannot write the secrets key")?;
        std::io::Write::write_all(&mut f, &bytes).context("cannot write the secrets key")?;
        f.sync_all()?;
    }
    Ok(())
}
