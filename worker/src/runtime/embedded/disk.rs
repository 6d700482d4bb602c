//! Disk a container may use, as Kubernetes limits ephemeral storage: what a step writes (its
//! writable layer, its outputs) is measured every [`CHECK_EVERY`], and a step over its
//! `resources.disk` (or the worker's default) is stopped. Besides, the worker keeps a reserve of
//! free space on its data filesystem: when free space falls under it, the running step using the
//! most disk is stopped, so that no step can fill the disk the worker and its other steps use.
//! Measuring is not a quota: a step writing very fast can pass its limit by what it writes
//! between two checks before it is stopped.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How often usage and free space are measured.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What the worker allows containers on its disk.
#[derive(Debug, Clone, Copy)]
pub struct DiskPolicy {
    /// Limit of a step that sets none.
    pub default_limit: Option<u64>,
    /// Free space kept on the worker's data filesystem.
    pub reserve: u64,
    /// Most files and directories one step may write.
    pub max_entries: u64,
}

impl Default for DiskPolicy {
    fn default() -> Self {
        DiskPolicy {
            default_limit: None,
            reserve: 0,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// One running container's disk: where it writes, and why it must stop once it must.
pub struct Watched {
    dirs: Vec<PathBuf>,
    limit: Option<u64>,
    usage: Mutex<u64>,
    evicted: Mutex<Option<String>>,
    notify: Notify,
}

impl Watched {
    /// Resolves once the container must stop; the reason.
    pub async fn evicted(&self) -> String {
        loop {
            let notified = self.notify.notified();
            if let Some(why) = self.reason() {
                return why;
            }
            notified.await;
        }
    }

    fn reason(&self) -> Option<String> {
        self.evicted.lock().ok().and_then(|g| g.clone())
    }

    fn evict(&self, why: String) {
        if let Ok(mut g) = self.evicted.lock() {
            if g.is_none() {
                *g = Some(why);
                self.notify.notify_waiters();
            }
        }
    }
}

/// The containers being watched, and the thread that watches them.
pub struct DiskWatch {
    policy: DiskPolicy,
    data_dir: PathBuf,
    running: Mutex<HashMap<String, Arc<Watched>>>,
}

impl DiskWatch {
    /// Starts watching for the worker whose data lives in `data_dir`. The thread ends with the
    /// last reference to the returned watch.
    pub fn start(policy: DiskPolicy, data_dir: &Path) -> Arc<DiskWatch> {
        let w = Arc::new(DiskWatch {
            policy,
            data_dir: data_dir.to_path_buf(),
            running: Mutex::new(HashMap::new()),
        });
        let weak: Weak<DiskWatch> = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name("sluice-disk-watch".into())
            .spawn(move || loop {
                std::thread::sleep(CHECK_EVERY);
                let Some(w) = weak.upgrade() else { return };
                w.check();
            })
            .expect("a thread can be started");
        w
    }

    /// Watches a container writing into `dirs`, with the step's limit (or the default).
    pub fn watch(&self, id: &str, dirs: Vec<PathBuf>, limit: Option<u64>) -> Arc<Watched> {
        let w = Arc::new(Watched {
            dirs,
            limit: limit.or(self.policy.default_limit),
            usage: Mutex::new(0),
            evicted: Mutex::new(None),
            notify: Notify::new(),
        });
        if let Ok(mut r) = self.running.lock() {
            r.insert(id.to_string(), w.clone());
        }
        w
    }

    pub fn unwatch(&self, id: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(id);
        }
    }

    fn check(&self) {
        let running: Vec<Arc<Watched>> = self
            .running
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        for w in &running {
            let Usage {
                bytes: used,
                entries,
            } = usage(&w.dirs, self.policy.max_entries);
            if let Ok(mut u) = w.usage.lock() {
                *u = used;
            }
            let most = self.policy.max_entries;
            if entries > most {
                w.evict(format!(
                    "wrote more than {most} files and directories, the most a step may: stopped"
                ));
            }
            if let Some(limit) = w.limit.filter(|l| used > *l) {
                w.evict(format!(
                    "used {} of disk, over its limit of {}: stopped",
                    sluice_spec::format_bytes(used),
                    sluice_spec::format_bytes(limit)
                ));
            }
        }
        let Some(free) = free_bytes(&self.data_dir) else {
            return;
        };
        if free >= self.policy.reserve {
            return;
        }
        // Under the reserve: the step using the most goes (one at a time, as each check sees).
        let biggest = running
            .iter()
            .filter(|w| w.reason().is_none())
            .max_by_key(|w| w.usage.lock().map(|u| *u).unwrap_or(0));
        if let Some(w) = biggest {
            let used = w.usage.lock().map(|u| *u).unwrap_or(0);
            w.evict(format!(
                "evicted: the worker's disk had {} free, under its reserve of {}, and this step used the most of it ({})",
                sluice_spec::format_bytes(free),
                sluice_spec::format_bytes(self.policy.reserve),
                sluice_spec::format_bytes(used)
            ));
        }
    }
}

/// Most files and directories one step may write, by default: a step that makes more is
/// stopped, so that measuring it stays bounded in time and memory (Kubernetes evicts on inodes
/// as well as bytes).
pub const MAX_ENTRIES: u64 = 1_000_000;

/// What a step's directories hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes on disk (blocks).
    pub bytes: u64,
    /// Files, directories and links.
    pub entries: u64,
}

/// What the trees at `paths` take on disk, links not followed. The walk stops once it has seen
/// more than `max` entries (the count then says so); it holds only the directories still to read.
pub fn usage(paths: &[PathBuf], max: u64) -> Usage {
    let mut u = Usage::default();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in paths {
        if let Ok(meta) = std::fs::symlink_metadata(p) {
            u.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                dirs.push(p.clone());
            }
        }
    }
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            u.entries += 1;
            if u.entries > max {
                return u;
            }
            let Ok(meta) = e.metadata() else { continue };
            u.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                dirs.push(e.path());
            }
        }
    }
    u
}

fn free_bytes(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_blocks_and_does_not_follow_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink("/usr", d.path().join("a/usr")).unwrap();
        let u = usage(&[d.path().to_path_buf()], MAX_ENTRIES);
        assert!(
            (1 << 20..(1 << 20) + (64 << 10)).contains(&u.bytes),
            "{u:?}"
        );
        assert_eq!(u.entries, 4, "a, a/b, a/b/f and the link a/usr");
    }

    #[test]
    fn the_walk_stops_past_its_most_entries() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::create_dir_all(d.path().join(format!("d{i}/e"))).unwrap();
        }
        let all = usage(&[d.path().to_path_buf()], 1000);
        assert_eq!(all.entries, 100);
        let cut = usage(&[d.path().to_path_buf()], 30);
        assert_eq!(cut.entries, 31, "it stops at the first entry past the most");
    }

    #[tokio::test]
    async fn a_step_over_its_limit_is_told_to_stop_and_why() {
        let d = tempfile::tempdir().unwrap();
        let watch = DiskWatch::start(
            DiskPolicy {
                default_limit: Some(1 << 20),
                ..Default::default()
            },
            d.path(),
        );
        let w = watch.watch("c", vec![d.path().join("upper")], None);
        std::fs::create_dir_all(d.path().join("upper")).unwrap();
        std::fs::write(d.path().join("upper/big"), vec![1u8; 2 << 20]).unwrap();
        let why = tokio::time::timeout(Duration::from_secs(10), w.evicted())
            .await
            .unwrap();
        assert!(why.contains("over its limit of 1.0 MiB"), "{why}");
        watch.unwatch("c");
    }

    #[tokio::test]
    async fn a_step_writing_too_many_files_is_told_to_stop_and_why() {
        let d = tempfile::tempdir().unwrap();
        let watch = DiskWatch::start(
            DiskPolicy {
                max_entries: 50,
                ..Default::default()
            },
            d.path(),
        );
        let upper = d.path().join("upper");
        let w = watch.watch("c", vec![upper.clone()], None);
        std::fs::create_dir_all(&upper).unwrap();
        for i in 0..100 {
            std::fs::write(upper.join(format!("f{i}")), b"").unwrap();
        }
        let why = tokio::time::timeout(Duration::from_secs(10), w.evicted())
            .await
            .unwrap();
        assert!(why.contains("more than 50 files and directories"), "{why}");
        watch.unwatch("c");
    }
}
