//! cgroup ids to cgroup paths. The kernel reports a cgroup v2 id, which is the
//! inode number of the cgroup's directory in the v2 hierarchy: walking that
//! hierarchy maps ids to paths. The walk is repeated on a miss, at most once per
//! `rescan_after`, since cgroups come and go with containers.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Deepest directory level walked (real hierarchies are far shallower).
const MAX_DEPTH: usize = 16;

/// The id -> path map of one cgroup v2 mount.
#[derive(Debug)]
pub struct CgroupPaths {
    mount: Option<PathBuf>,
    paths: HashMap<u64, String>,
    scanned: Option<Instant>,
    rescan_after: Duration,
}

impl CgroupPaths {
    /// Paths below `mount` (the cgroup v2 mount point), or none when `None`.
    #[must_use]
    pub fn new(mount: Option<PathBuf>, rescan_after: Duration) -> Self {
        Self { mount, paths: HashMap::new(), scanned: None, rescan_after }
    }

    /// The path of cgroup `id` (`/system.slice/docker-....scope`).
    pub fn path(&mut self, id: u64, now: Instant) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        if self.scanned.is_some_and(|at| now.duration_since(at) < self.rescan_after) {
            return None;
        }
        self.rescan(now);
        self.paths.get(&id).cloned()
    }

    fn rescan(&mut self, now: Instant) {
        self.scanned = Some(now);
        let Some(mount) = self.mount.clone() else { return };
        let mut paths = HashMap::new();
        walk(&mount, &mount, 0, &mut paths);
        self.paths = paths;
    }
}

fn walk(mount: &Path, dir: &Path, depth: usize, out: &mut HashMap<u64, String>) {
    let Ok(meta) = std::fs::metadata(dir) else { return };
    let relative = dir.strip_prefix(mount).map_or_else(|_| String::from("/"), |r| format!("/{}", r.display()));
    out.insert(meta.ino(), relative);
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(mount, &entry.path(), depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_paths_below_the_mount() {
        let dir = std::env::temp_dir().join(format!("pl-cgroupfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("system.slice/web.service")).unwrap();
        let id = std::fs::metadata(dir.join("system.slice/web.service")).unwrap().ino();
        let mut paths = CgroupPaths::new(Some(dir.clone()), Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(paths.path(id, now).as_deref(), Some("/system.slice/web.service"));
        let root = std::fs::metadata(&dir).unwrap().ino();
        assert_eq!(paths.path(root, now).as_deref(), Some("/"));
        assert_eq!(paths.path(1, now), None, "unknown ids miss without a rescan storm");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
