//! The worker's nftables table: NAT out of its bridges, and the walls between them.
//!
//! One table per worker (`inet sluice_SCOPE`), written once when the worker starts and deleted
//! when it stops; a container's start adds no rule. Its rules match the worker's link names by
//! prefix (`slSCOPEb*` its bridges, `slSCOPE*` its bridges and their ports), so runs come and go
//! without touching it:
//!
//! - `forward`: a packet into a bridge is let through if it answers a connection made from
//!   inside, or if it came in through that same bridge (a step of the same run: its destination
//!   is routed out through the interface it came in by); anything else (another run's step,
//!   another host) is dropped. A packet out of a bridge must
//!   come from that bridge's subnet (no step sends as another run's).
//! - `input`: the host takes nothing from a bridge but answers (its loopback services, the API,
//!   the registry stay out of reach; the bridge's own address too).
//! - `postrouting`: what leaves the pool for elsewhere is masqueraded.
//!
//! Written through `nft -f -`, one atomic transaction.

use super::ipam::Net;
use std::io::Write;
use std::process::{Command, Stdio};

/// The table's name for a worker scope.
pub fn table(scope: &str) -> String {
    format!("sluice_{scope}")
}

/// The ruleset: the table replaced as a whole (made, emptied of any earlier copy, refilled).
pub fn ruleset(scope: &str, pool: Net) -> String {
    let t = table(scope);
    let bridges = format!("\"sl{scope}b*\"");
    let ours = format!("\"sl{scope}*\"");
    format!(
        r#"table inet {t} {{}}
delete table inet {t}
table inet {t} {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    oifname {bridges} ct state established,related accept
    oifname {bridges} fib daddr . iif oif missing drop
    iifname {bridges} fib saddr . iif oif missing drop
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname {ours} ct state established,related accept
    iifname {ours} drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {pool} ip daddr != {pool} oifname != {ours} masquerade
  }}
}}
"#
    )
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "the bridge network needs nftables' `nft` (`apt-get install nftables`); or start the worker with --default-network none".to_string(),
            _ => format!("cannot run nft: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft refused the worker's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Writes the worker's table (replacing a copy a crashed worker left).
pub fn install(scope: &str, pool: Net) -> Result<(), String> {
    nft(&ruleset(scope, pool))
}

/// Deletes the worker's table, if it has one.
pub fn remove(scope: &str) -> Result<(), String> {
    let t = table(scope);
    nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n"))
}

/// The worker's table as nft lists it, when it exists.
pub fn list(scope: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", "inet", &table(scope)])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ruleset_names_only_this_workers_links_and_pool() {
        let r = super::ruleset("ab12", "198.19.0.0/16".parse().unwrap());
        assert!(r.starts_with("table inet sluice_ab12 {}\ndelete table inet sluice_ab12\n"));
        assert!(r.contains(r#"oifname "slab12b*" fib daddr . iif oif missing drop"#));
        assert!(r.contains(r#"iifname "slab12*" drop"#));
        assert!(r.contains(
            r#"ip saddr 198.19.0.0/16 ip daddr != 198.19.0.0/16 oifname != "slab12*" masquerade"#
        ));
    }
}
