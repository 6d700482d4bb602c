//! `sluice image …`: the worker's local image store.

use super::{print_json, Output};
use clap::Subcommand;
use sluice_worker::images::registry::{Progress, Registries};
use sluice_worker::images::{load, reference, store::ImageStore};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// List stored images.
    Ls {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Load a `docker save` tarball or an OCI image layout (directory or tar).
    Load {
        path: PathBuf,
        /// Name for the image when the file does not name it.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Import a root filesystem tarball (plain or gzip) as a one-layer image.
    Import {
        rootfs: PathBuf,
        /// The image's name, such as 127.0.0.1:5000/sluice/busybox:1.
        #[arg(long)]
        tag: String,
        /// A Dockerfile instruction for the image's config, as `docker import --change` takes
        /// them: `ENTRYPOINT`, `CMD`, `ENV`, `USER` or `WORKDIR` (repeatable).
        #[arg(long = "change", short = 'c', value_name = "INSTRUCTION")]
        changes: Vec<String>,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Pull an image from its registry (HTTPS; plain HTTP for loopback and --insecure registries).
    Pull {
        image: String,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Push a stored image to a registry, under its own name or another.
    Push {
        image: String,
        /// Where to push it (default: the image's own name).
        target: Option<String>,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Forget an image's name (its layers stay until `prune`).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        #[command(flatten)]
        dir: StoreDir,
    },
    /// Delete layers and blobs no stored image or running task uses.
    Prune {
        #[command(flatten)]
        dir: StoreDir,
    },
}

#[derive(clap::Args)]
pub struct StoreDir {
    /// sluice's data directory (a worker's images live in its `worker/images/`).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = super::serve::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    insecure: super::Insecure,
}

impl StoreDir {
    fn open(&self) -> anyhow::Result<ImageStore> {
        Ok(ImageStore::open(&self.worker_dir().join("images"))?)
    }

    fn worker_dir(&self) -> PathBuf {
        super::serve::worker_dir(&self.data_dir)
    }
}

/// One line per layer on a terminal, rewritten as bytes arrive.
fn progress_line(p: Progress) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = match p {
        Progress::Cached { digest } => writeln!(err, "{}: already stored", short(&digest)),
        Progress::Layer {
            digest,
            done,
            total,
        } if done >= total => writeln!(
            err,
            "\r{}: {:.1} MB done      ",
            short(&digest),
            done as f64 / 1e6
        ),
        Progress::Layer {
            digest,
            done,
            total,
        } => write!(
            err,
            "\r{}: {:.1} / {:.1} MB",
            short(&digest),
            done as f64 / 1e6,
            total as f64 / 1e6
        ),
    };
}

fn short(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .map(|h| &h[..12.min(h.len())])
        .unwrap_or(digest)
}

pub async fn image(cmd: ImageCmd) -> anyhow::Result<u8> {
    match cmd {
        ImageCmd::Ls { output, dir } => {
            let list = dir.open()?.list()?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!(
                        "{:<56} {:<14} {:>7} {:>10}",
                        "IMAGE", "DIGEST", "LAYERS", "SIZE"
                    );
                    for i in list {
                        println!(
                            "{:<56} {:<14} {:>7} {:>9.1}M",
                            i.reference,
                            short(&i.digest),
                            i.layers.len(),
                            i.size as f64 / 1048576.0
                        );
                    }
                }
            }
        }
        ImageCmd::Load { path, tag, dir } => {
            for r in load::load(&dir.open()?, &path, tag.as_deref())? {
                println!("loaded {} ({})", r.reference, r.digest);
            }
        }
        ImageCmd::Import {
            rootfs,
            tag,
            changes,
            dir,
        } => {
            let r = load::import_with(&dir.open()?, &rootfs, &tag, &changes)?;
            println!("imported {} ({})", r.reference, r.digest);
        }
        ImageCmd::Pull { image, dir } => {
            let mut regs = Registries::new(
                std::sync::Arc::new(dir.open()?),
                dir.insecure.registries.clone(),
            )
            .with_mirrors(dir.insecure.mirrors.clone());
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                regs = regs.with_progress(std::sync::Arc::new(progress_line));
            }
            let r = regs.pull(&image).await?;
            println!(
                "pulled {} ({}, {} layer(s))",
                r.reference,
                r.digest,
                r.layers.len()
            );
        }
        ImageCmd::Push { image, target, dir } => {
            let regs = Registries::new(
                std::sync::Arc::new(dir.open()?),
                dir.insecure.registries.clone(),
            );
            let to = regs.push(&image, target.as_deref()).await?;
            println!("pushed {to}");
        }
        ImageCmd::Rm { images, dir } => {
            let store = dir.open()?;
            for name in images {
                let full = reference::parse(&name)
                    .map_err(anyhow::Error::msg)?
                    .to_string();
                store.remove(&full)?;
                println!("removed {full}");
            }
        }
        ImageCmd::Prune { dir } => {
            // Layers of containers that exist now (running tasks) are kept.
            let in_use = sluice_worker::runtime::embedded::layers_in_use(&dir.worker_dir());
            let n = dir.open()?.prune(&in_use)?;
            println!("removed {n} unused blob(s) and layer(s)");
        }
    }
    Ok(0)
}
