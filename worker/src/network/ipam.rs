//! Addresses of the bridge network, allocated on disk and shared by every worker of the host.
//!
//! The pool (`--bridge-subnet`, a /8 to /24) is cut into /24s, one per run on a worker: its `.1`
//! is the bridge's (the steps' gateway), `.2` to `.254` its steps'. Each claim is a file created
//! exclusively (`O_EXCL`), so workers sharing a host never hand out one twice, and a restarted
//! worker sees what is still in use. The directory lives under `/run` (a tmpfs): claims go when
//! the links they stand for do, at a reboot.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// An IPv4 network: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Net, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            format!("`{s}` is not a subnet: expected ADDRESS/PREFIX, as 198.19.0.0/16")
        })?;
        let base: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` in `{s}` is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (8..=24).contains(p))
            .ok_or_else(|| {
                format!("the prefix of `{s}` must be from 8 to 24 (each run gets a /24 of it)")
            })?;
        if u32::from(base) & !mask(prefix) != 0 {
            return Err(format!(
                "`{s}` has host bits set: its network is {}/{prefix}",
                Ipv4Addr::from(u32::from(base) & mask(prefix))
            ));
        }
        Ok(Net { base, prefix })
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)
}

impl Net {
    /// How many /24s it holds.
    pub fn subnets(&self) -> u32 {
        1 << (24 - self.prefix)
    }

    /// Its `k`th /24.
    pub fn subnet(&self, k: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + (k << 8))
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.prefix) == u32::from(self.base)
    }
}

/// A claimed /24: the bridge of one run on one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub index: u32,
    pub base: Ipv4Addr,
}

impl Subnet {
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }
    pub fn host(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + n as u32)
    }
}

/// The claims of one pool, in a directory of the host.
#[derive(Debug)]
pub struct Ipam {
    pub net: Net,
    dir: PathBuf,
}

/// What a subnet claim records: whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The worker's scope (see [`super::Bridges`]).
    pub scope: String,
    pub run: String,
}

impl Ipam {
    /// The pool's claims under `root` (made if missing, readable by root only).
    pub fn open(root: &Path, net: Net) -> Result<Ipam, String> {
        let dir = root.join(format!("{}-{}", net.base, net.prefix));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
        Ok(Ipam { net, dir })
    }

    fn claim(path: &Path, content: &str) -> std::io::Result<bool> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(content.as_bytes())?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Claims a free /24 for `owner`, looking from `hint` on.
    pub fn claim_subnet(&self, owner: &Owner, hint: u32) -> Result<Subnet, String> {
        let n = self.net.subnets();
        for i in 0..n {
            let k = (hint + i) % n;
            let path = self.dir.join(k.to_string());
            let content = format!("{}\n{}\n", owner.scope, owner.run);
            match Self::claim(&path, &content) {
                Ok(true) => {
                    let _ = std::fs::remove_dir_all(self.dir.join(format!("{k}.hosts")));
                    std::fs::create_dir(self.dir.join(format!("{k}.hosts"))).map_err(|e| {
                        let _ = std::fs::remove_file(&path);
                        format!("cannot record the addresses of subnet {k}: {e}")
                    })?;
                    return Ok(Subnet {
                        index: k,
                        base: self.net.subnet(k),
                    });
                }
                Ok(false) => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot claim a subnet in {}: {e}",
                        self.dir.display()
                    ))
                }
            }
        }
        Err(format!(
            "every /24 of the bridge network {} is in use ({} runs on this host's workers): a larger --bridge-subnet gives more",
            self.net, n
        ))
    }

    /// Gives a /24 back, with what is left of its addresses' claims.
    pub fn release_subnet(&self, k: u32) {
        let _ = std::fs::remove_dir_all(self.dir.join(format!("{k}.hosts")));
        let _ = std::fs::remove_file(self.dir.join(k.to_string()));
    }

    /// Claims a free address of subnet `s` (from `.2` to `.254`, looking from `hint` on) for a
    /// container, recording its id and host name (other steps of the run find it so).
    pub fn claim_host(
        &self,
        s: &Subnet,
        container: &str,
        name: &str,
        hint: u8,
    ) -> Result<u8, String> {
        let hosts = self.dir.join(format!("{}.hosts", s.index));
        for i in 0..253u32 {
            let n = 2 + ((hint.saturating_sub(2) as u32 + i) % 253) as u8;
            match Self::claim(
                &hosts.join(n.to_string()),
                &format!("{container}\n{name}\n"),
            ) {
                Ok(true) => return Ok(n),
                Ok(false) => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot claim an address in {}: {e}",
                        hosts.display()
                    ))
                }
            }
        }
        Err(format!(
            "the run's network {}/24 has no free address: 253 of its steps run on this worker at once",
            s.base
        ))
    }

    pub fn release_host(&self, s: &Subnet, n: u8) {
        let _ = std::fs::remove_file(
            self.dir
                .join(format!("{}.hosts", s.index))
                .join(n.to_string()),
        );
    }

    /// The addresses claimed in subnet `s` with the host names they were claimed for.
    pub fn hosts(&self, s: &Subnet) -> Vec<(Ipv4Addr, String)> {
        let mut out = Vec::new();
        let dir = self.dir.join(format!("{}.hosts", s.index));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<u8>().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            if let Some(name) = text.lines().nth(1) {
                out.push((s.host(n), name.to_string()));
            }
        }
        out.sort();
        out
    }

    /// Every claimed /24 with its owner.
    pub fn subnets(&self) -> Vec<(Subnet, Owner)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Some(k) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if k >= self.net.subnets() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let mut lines = text.lines();
            let (Some(scope), Some(run)) = (lines.next(), lines.next()) else {
                continue;
            };
            out.push((
                Subnet {
                    index: k,
                    base: self.net.subnet(k),
                },
                Owner {
                    scope: scope.into(),
                    run: run.into(),
                },
            ));
        }
        out.sort_by_key(|(s, _)| s.index);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_with_places_named() {
        let n: Net = "198.19.0.0/16".parse().unwrap();
        assert_eq!(n.subnets(), 256);
        assert_eq!(n.subnet(3), Ipv4Addr::new(198, 19, 3, 0));
        assert!(n.contains(Ipv4Addr::new(198, 19, 200, 7)));
        assert!(!n.contains(Ipv4Addr::new(198, 18, 0, 1)));
        let e = "198.19.0.1/16".parse::<Net>().unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        let e = "198.19.0.0/28".parse::<Net>().unwrap_err();
        assert!(e.contains("from 8 to 24"), "{e}");
        assert!("198.19.0.0".parse::<Net>().is_err());
        assert!("x/16".parse::<Net>().is_err());
    }

    #[test]
    fn claims_are_exclusive_and_kept_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let net: Net = "198.19.0.0/23".parse().unwrap();
        let a = Ipam::open(root.path(), net).unwrap();
        let owner = |run: &str| Owner {
            scope: "ab12".into(),
            run: run.into(),
        };
        let s0 = a.claim_subnet(&owner("r1"), 0).unwrap();
        // Another worker of the host (or this one restarted) sees the claim.
        let b = Ipam::open(root.path(), net).unwrap();
        let s1 = b.claim_subnet(&owner("r2"), 0).unwrap();
        assert_ne!(s0.index, s1.index);
        let e = b.claim_subnet(&owner("r3"), 0).unwrap_err();
        assert!(e.contains("every /24"), "{e}");
        assert_eq!(s1.gateway(), Ipv4Addr::new(198, 19, 1, 1));
        let h = a.claim_host(&s0, "c1", "train", 2).unwrap();
        let h2 = b.claim_host(&s0, "c2", "serve", 2).unwrap();
        assert_ne!(h, h2);
        assert_eq!(
            a.hosts(&s0),
            vec![
                (s0.host(h), "train".to_string()),
                (s0.host(h2), "serve".to_string())
            ]
        );
        for n in 0..251 {
            a.claim_host(&s0, &format!("x{n}"), "x", 2).unwrap();
        }
        assert!(a.claim_host(&s0, "full", "x", 2).is_err());
        a.release_host(&s0, h);
        assert_eq!(a.claim_host(&s0, "again", "y", 2).unwrap(), h);
        let owners: Vec<String> = a.subnets().into_iter().map(|(_, o)| o.run).collect();
        assert_eq!(owners, ["r1", "r2"]);
        a.release_subnet(s0.index);
        assert_eq!(a.subnets().len(), 1);
        assert_eq!(a.claim_subnet(&owner("r4"), 0).unwrap().index, s0.index);
        assert!(
            a.hosts(&s0).is_empty(),
            "a subnet claimed again starts empty"
        );
    }
}
