//! `sluice tokens` and `sluice secrets`: who may do what, and the secrets steps use.

use super::{print_json, Conn, Output};
use anyhow::Context;
use clap::{Args, Subcommand};
use sluice_sdk::api::{CreateToken, CreatedToken, TokenInfo};
use std::io::Read;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Make a token; its secret is printed once (the server keeps only its hash).
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a token by its id (or by its name, when one live token has it).
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// What the token is for (shown in lists and logs).
    name: String,
    /// admin (everything), submit (upload and run pipelines; read), read, or worker (register
    /// workers).
    #[arg(long)]
    role: String,
    /// Limit a submit token to these pipelines (repeat, or separate with commas): a CI token.
    #[arg(long = "pipeline", value_delimiter = ',')]
    pipelines: Vec<String>,
    /// Write the token into this data directory's database directly, with no server running (to
    /// make the first admin token before serving beyond loopback).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write it into this PostgreSQL database directly (a server's `--database`).
    #[arg(long, env = "SLUICE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    #[command(flatten)]
    conn: Conn,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

fn print_token(t: &TokenInfo) {
    let scope = match &t.pipelines {
        Some(p) => format!("  pipelines {}", p.join(",")),
        None => String::new(),
    };
    let state = match &t.revoked_at {
        Some(at) => format!("  revoked {at}"),
        None => String::new(),
    };
    println!(
        "{:<12}  {:<7}  {:<24}  created {}{scope}{state}",
        t.id, t.role, t.name, t.created_at
    );
}

pub async fn tokens(cmd: TokensCmd) -> anyhow::Result<u8> {
    match cmd {
        TokensCmd::Create(a) => {
            let req = CreateToken {
                name: a.name,
                role: a.role,
                pipelines: (!a.pipelines.is_empty()).then_some(a.pipelines),
            };
            let made: CreatedToken = match (&a.data_dir, &a.database) {
                (None, None) => a.conn.client().create_token(&req).await?,
                (dir, database) => {
                    let dir = dir.clone().unwrap_or_else(super::serve::default_data_dir);
                    let store = sluice_server::store::open(database.as_deref(), &dir)
                        .await
                        .with_context(|| format!("cannot open the store of {}", dir.display()))?;
                    let now = sluice_sdk::api::now_ms();
                    let made = sluice_server::api::tokens::make(&store, &req, now).await;
                    store.close().await;
                    made.map_err(|e| anyhow::anyhow!("{}", e.message))?
                }
            };
            match a.output {
                Output::Json => print_json(&made),
                Output::Text => {
                    eprintln!(
                        "token `{}` ({}, id {}) made; keep it now, it is not shown again:",
                        made.info.name, made.info.role, made.info.id
                    );
                    println!("{}", made.token);
                }
            }
        }
        TokensCmd::List { conn, output } => {
            let list = conn.client().list_tokens().await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => list.iter().for_each(print_token),
            }
        }
        TokensCmd::Revoke { id, conn } => {
            for t in conn.client().revoke_token(&id).await? {
                println!("revoked {} ({}, {})", t.id, t.name, t.role);
            }
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Set a secret's value, read from standard input (a trailing newline is dropped) or from a
    /// file; each change makes a new version.
    Set {
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List secrets: names and versions, never values.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Delete a secret.
    Rm {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// The most read for a secret's value (the server takes 64 KiB).
const MAX_READ: u64 = 1 << 20;

pub async fn secrets(cmd: SecretsCmd) -> anyhow::Result<u8> {
    match cmd {
        SecretsCmd::Set {
            name,
            from_file,
            conn,
        } => {
            let mut value = String::new();
            match &from_file {
                Some(f) => std::fs::File::open(f)
                    .with_context(|| format!("cannot open {}", f.display()))?
                    .take(MAX_READ)
                    .read_to_string(&mut value)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                None => std::io::stdin()
                    .take(MAX_READ)
                    .read_to_string(&mut value)
                    .context("cannot read the value from standard input")?,
            };
            if from_file.is_none() && value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            let s = conn.client().set_secret(&name, &value).await?;
            println!("secret `{}` set (version {})", s.name, s.version);
        }
        SecretsCmd::List { conn, output } => {
            let list = conn.client().list_secrets().await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    for s in list {
                        println!(
                            "{:<32}  v{:<4}  updated {}",
                            s.name, s.version, s.updated_at
                        );
                    }
                }
            }
        }
        SecretsCmd::Rm { name, conn } => {
            conn.client().delete_secret(&name).await?;
            println!("secret `{name}` deleted");
        }
    }
    Ok(0)
}
