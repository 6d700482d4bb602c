//! NVIDIA GPUs for steps that ask for them, the way the NVIDIA container toolkit provides them: the
//! host's device nodes for the GPUs handed out, its control devices, and its driver libraries and
//! tools mounted read-only under `/usr/local/nvidia`. Each GPU goes to one container at a time.

use super::config::BindMount;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/local/nvidia/lib64",
];
const LIB_PREFIXES: &[&str] = &[
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-",
    "libnvcuvid.so",
    "libnvoptix.so",
];
const BIN_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"];
const BINS: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];
pub const LIB_TARGET: &str = "/usr/local/nvidia/lib64";
pub const BIN_TARGET: &str = "/usr/local/nvidia/bin";

#[derive(Clone, Default)]
pub struct Gpus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `/dev/nvidiaN`, by index.
    devices: Vec<PathBuf>,
    /// Control devices every GPU container needs (`nvidiactl`, `nvidia-uvm`, …).
    shared: Vec<PathBuf>,
    /// Driver libraries and tools: host path, container path.
    files: Vec<(PathBuf, String)>,
    free: Mutex<Vec<bool>>,
}

/// GPUs held by one container, given back when it is dropped.
pub struct GpuLease {
    gpus: Gpus,
    pub ids: Vec<usize>,
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.gpus.inner.free.lock() {
            for i in &self.ids {
                free[*i] = true;
            }
        }
    }
}

impl Gpus {
    /// Finds the host's NVIDIA devices, driver libraries and tools.
    pub fn detect() -> Gpus {
        Gpus::detect_in(Path::new("/dev"))
    }

    fn detect_in(dev: &Path) -> Gpus {
        let mut devices: Vec<(usize, PathBuf)> = Vec::new();
        let mut shared = Vec::new();
        for e in std::fs::read_dir(dev).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("nvidia") else {
                continue;
            };
            if let Ok(i) = rest.parse::<usize>() {
                devices.push((i, e.path()));
            } else if matches!(rest, "ctl" | "-uvm" | "-uvm-tools" | "-modeset" | "-caps") {
                shared.push(e.path());
            }
        }
        devices.sort();
        let mut files = Vec::new();
        if !devices.is_empty() {
            for dir in LIB_DIRS {
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if LIB_PREFIXES.iter().any(|p| name.starts_with(p))
                        && name.contains(".so")
                        && e.path().exists()
                        && !files
                            .iter()
                            .any(|(_, t): &(PathBuf, String)| t.ends_with(&format!("/{name}")))
                    {
                        files.push((e.path(), format!("{LIB_TARGET}/{name}")));
                    }
                }
            }
            let bin_dirs: Vec<&Path> = BIN_DIRS.iter().map(Path::new).collect();
            for bin in BINS {
                if let Some(p) = driver_tool(&bin_dirs, bin) {
                    files.push((p, format!("{BIN_TARGET}/{bin}")));
                }
            }
        }
        let n = devices.len();
        Gpus {
            inner: Arc::new(Inner {
                devices: devices.into_iter().map(|(_, p)| p).collect(),
                shared,
                files,
                free: Mutex::new(vec![true; n]),
            }),
        }
    }

    pub fn count(&self) -> usize {
        self.inner.devices.len()
    }

    /// Takes `n` GPUs, waiting while others hold them; an error when the host has too few.
    pub async fn acquire(&self, n: u32) -> Result<GpuLease, String> {
        let n = n as usize;
        let have = self.count();
        if have == 0 {
            return Err(format!(
                "the step asks for {n} GPU(s) but this worker has no NVIDIA GPU (no /dev/nvidia0: no GPU, or its driver is not loaded)"
            ));
        }
        if n > have {
            return Err(format!(
                "the step asks for {n} GPUs but this worker has only {have}"
            ));
        }
        loop {
            if let Ok(mut free) = self.inner.free.lock() {
                let ids: Vec<usize> = (0..have).filter(|i| free[*i]).take(n).collect();
                if ids.len() == n {
                    for i in &ids {
                        free[*i] = false;
                    }
                    return Ok(GpuLease {
                        gpus: self.clone(),
                        ids,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a container holding `lease` mounts, and the environment it gets.
    pub fn mounts(&self, lease: &GpuLease) -> (Vec<BindMount>, Vec<(String, String)>) {
        let mut binds = Vec::new();
        let dev = |p: &PathBuf| BindMount {
            source: p.clone(),
            target: format!(
                "/dev/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            readonly: false,
            beneath: None,
        };
        binds.extend(self.inner.shared.iter().map(dev));
        binds.extend(lease.ids.iter().map(|i| dev(&self.inner.devices[*i])));
        binds.extend(self.inner.files.iter().map(|(s, t)| BindMount {
            source: s.clone(),
            target: t.clone(),
            readonly: true,
            beneath: None,
        }));
        let visible = lease
            .ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let env = vec![
            ("NVIDIA_VISIBLE_DEVICES".to_string(), visible),
            ("PATH".to_string(), BIN_TARGET.to_string()),
            ("LD_LIBRARY_PATH".to_string(), LIB_TARGET.to_string()),
        ];
        (binds, env)
    }
}

/// The driver's own program `name`: the first in `dirs` that is an ELF executable. A host may put
/// a script of the same name earlier (a wrapper that finds the real program on its `PATH`); in a
/// container, mounted where the real one should be, such a wrapper finds only itself.
fn driver_tool(dirs: &[&Path], name: &str) -> Option<PathBuf> {
    use std::io::Read;
    dirs.iter().map(|d| d.join(name)).find(|p| {
        let mut magic = [0u8; 4];
        std::fs::File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|()| &magic == b"\x7fELF")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapper_script_is_passed_over_for_the_driver_s_own_program() {
        let d = tempfile::tempdir().unwrap();
        let (wrap, real, none) = (
            d.path().join("bin"),
            d.path().join("nvidia"),
            d.path().join("x"),
        );
        for dir in [&wrap, &real, &none] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(
            wrap.join("nvidia-smi"),
            "#!/bin/sh\nexec nvidia-smi \"$@\"\n",
        )
        .unwrap();
        std::fs::write(real.join("nvidia-smi"), b"\x7fELF\x02\x01\x01").unwrap();
        let dirs = [wrap.as_path(), real.as_path()];
        assert_eq!(
            driver_tool(&dirs, "nvidia-smi"),
            Some(real.join("nvidia-smi"))
        );
        assert_eq!(
            driver_tool(&[none.as_path(), wrap.as_path()], "nvidia-smi"),
            None
        );
    }

    #[tokio::test]
    async fn a_host_without_gpus_says_so_and_devices_are_handed_out_once() {
        let none = Gpus::detect_in(Path::new("/nonexistent"));
        let e = none.acquire(1).await.err().unwrap();
        assert!(e.contains("no NVIDIA GPU"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        for f in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let two = Gpus::detect_in(dir.path());
        assert_eq!(two.count(), 2);
        assert!(two.acquire(3).await.err().unwrap().contains("only 2"));
        let a = two.acquire(1).await.unwrap();
        let b = two.acquire(1).await.unwrap();
        assert_ne!(a.ids, b.ids);
        let (binds, env) = two.mounts(&a);
        let targets: Vec<&str> = binds.iter().map(|b| b.target.as_str()).collect();
        assert!(targets.contains(&"/dev/nvidiactl") && targets.contains(&"/dev/nvidia-uvm"));
        assert!(targets.contains(&format!("/dev/nvidia{}", a.ids[0]).as_str()));
        assert!(!targets.contains(&format!("/dev/nvidia{}", b.ids[0]).as_str()));
        assert_eq!(
            env[0],
            ("NVIDIA_VISIBLE_DEVICES".into(), a.ids[0].to_string())
        );
        drop(a);
        // The freed GPU is handed out again at once.
        let c = tokio::time::timeout(Duration::from_secs(1), two.acquire(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.ids.len(), 1);
    }
}
