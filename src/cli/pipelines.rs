//! `sluice validate` and `sluice pipelines …`.

use super::{print_json, Conn, Output, EXIT_INVALID};
use clap::Subcommand;
use sluice_sdk::client::ClientError;
use sluice_spec::diag::Diagnostics;
use std::path::{Path, PathBuf};

/// Reads and validates a pipeline file, printing diagnostics (with source excerpts) on failure.
pub fn load_file(path: &Path) -> Result<(String, sluice_spec::Pipeline), u8> {
    use std::io::Read;
    let name = path.display().to_string();
    let limits = sluice_spec::Limits::default();
    // Read no more than the limit (and one byte to know it was passed).
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        f.take(limits.yaml.max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        eprintln!("error: cannot read {name}: {e}");
        return Err(EXIT_INVALID);
    }
    if bytes.len() > limits.yaml.max_bytes {
        eprintln!(
            "{name}: error: the file is over the limit of {} bytes",
            limits.yaml.max_bytes
        );
        return Err(EXIT_INVALID);
    }
    let Ok(text) = String::from_utf8(bytes) else {
        eprintln!("{name}: error: the file is not UTF-8 text");
        return Err(EXIT_INVALID);
    };
    match sluice_spec::load_with(&name, &text, &limits) {
        Ok(p) => Ok((text, p)),
        Err(d) => {
            eprint!("{}", d.render(&text));
            eprintln!("{name}: {} error(s)", d.len());
            Err(EXIT_INVALID)
        }
    }
}

pub fn validate(files: &[PathBuf]) -> u8 {
    let mut code = 0;
    for f in files {
        let p = match load_file(f) {
            Ok((_, p)) => p,
            Err(c) => {
                code = c;
                continue;
            }
        };
        // With every parameter defaulted, the run is planned too (loops expanded, within the
        // limits a server applies).
        let params = sluice_engine::resolve_params(&p, &Default::default());
        if let Ok(params) = params {
            let limits = sluice_spec::Limits::default();
            if let Err(e) = sluice_engine::plan(&p, &params, &limits) {
                eprintln!(
                    "{}: error: a run with the default parameters cannot be planned: {e}",
                    f.display()
                );
                code = EXIT_INVALID;
                continue;
            }
        }
        println!(
            "{}: ok (pipeline `{}`, {} step(s))",
            f.display(),
            p.name,
            p.steps.len()
        );
    }
    code
}

/// Prints an API error, with the pipeline's diagnostics rendered against its source when present.
pub fn explain(e: &ClientError, source: Option<&str>) {
    if let (ClientError::Api { error, .. }, Some(src)) = (e, source) {
        if let Some(d) = error
            .details
            .as_ref()
            .and_then(|d| serde_json::from_value::<Diagnostics>(d.clone()).ok())
        {
            eprint!("{}", d.render(src));
            return;
        }
    }
    eprintln!("error: {e}");
}

#[derive(Subcommand)]
pub enum PipelinesCmd {
    /// Store a pipeline file as a new version of the pipeline it names.
    Upload {
        file: PathBuf,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// List stored pipelines.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// List a pipeline's versions.
    Versions {
        name: String,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn pipelines(cmd: PipelinesCmd) -> anyhow::Result<u8> {
    match cmd {
        PipelinesCmd::Upload { file, conn, output } => {
            let (text, _) = match load_file(&file) {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            let v = match conn
                .client()
                .upload_pipeline(&text, Some(&file.display().to_string()))
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    explain(&e, Some(&text));
                    return Ok(super::exit_code_of(&e.into()));
                }
            };
            match output {
                Output::Json => print_json(&v),
                Output::Text if v.created => println!(
                    "pipeline `{}` version {} stored ({})",
                    v.pipeline_name, v.version, v.digest
                ),
                Output::Text => println!(
                    "pipeline `{}` version {} already holds this file ({})",
                    v.pipeline_name, v.version, v.digest
                ),
            }
        }
        PipelinesCmd::List { conn, output } => {
            let list = conn.client().list_pipelines().await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!(
                        "{:<32} {:>7}  {:<24}  DESCRIPTION",
                        "NAME", "VERSION", "UPDATED"
                    );
                    for p in list.pipelines {
                        println!(
                            "{:<32} {:>7}  {:<24}  {}",
                            p.name,
                            p.latest_version,
                            p.updated_at,
                            p.description.unwrap_or_default()
                        );
                    }
                }
            }
        }
        PipelinesCmd::Versions { name, conn, output } => {
            let list = conn.client().pipeline_versions(&name).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    println!("{:>7}  {:<24}  DIGEST", "VERSION", "CREATED");
                    for v in list.versions {
                        println!("{:>7}  {:<24}  {}", v.version, v.created_at, v.digest);
                    }
                }
            }
        }
    }
    Ok(0)
}
