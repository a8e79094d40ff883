//! cgroup ids to cgroup paths. The kernel reports a cgroup v2 id, which is also the
//! kernfs file handle of the cgroup's directory: `open_by_handle_at` on the v2
//! mount opens it directly (needs `CAP_DAC_READ_SEARCH`), and the path is read back
//! from `/proc/self/fd`. Without that capability, walking the hierarchy maps
//! directory inode numbers (the same ids) to paths; the walk is repeated on a miss,
//! at most once per `rescan_after`, since cgroups come and go with containers.

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
        if let Some(path) = self.mount.as_deref().and_then(|m| open_by_id(m, id)) {
            self.paths.insert(id, path.clone());
            return Some(path);
        }
        if self.scanned.is_some_and(|at| now.duration_since(at) < self.rescan_after) {
            return None;
        }
        self.rescan(now);
        self.paths.get(&id).cloned()
    }

    /// Processes in the cgroup at `path` now (`cgroup.procs`), first ones first.
    #[must_use]
    pub fn members(&self, path: &str, limit: usize) -> Vec<u32> {
        let Some(mount) = &self.mount else { return Vec::new() };
        let file = mount.join(path.trim_start_matches('/')).join("cgroup.procs");
        std::fs::read_to_string(file)
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).take(limit).collect())
            .unwrap_or_default()
    }

    fn rescan(&mut self, now: Instant) {
        self.scanned = Some(now);
        let Some(mount) = self.mount.clone() else { return };
        let mut paths = HashMap::new();
        walk(&mount, &mount, 0, &mut paths);
        self.paths = paths;
    }
}

/// `FILEID_KERNFS`: kernfs file handles are the node's 64-bit id.
const FILEID_KERNFS: i32 = 0xfe;

#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

/// The path of cgroup `id` below `mount`, by opening its directory from its file
/// handle; `None` without `CAP_DAC_READ_SEARCH` or when the cgroup is gone.
fn open_by_id(mount: &Path, id: u64) -> Option<String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mount_dir = std::fs::File::open(mount).ok()?;
    let mut handle = KernfsHandle { handle_bytes: 8, handle_type: FILEID_KERNFS, id };
    // SAFETY: handle is a valid struct file_handle with 8 bytes of f_handle, and the
    // mount fd is open for the duration of the call.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_dir.as_raw_fd(),
            (&raw mut handle).cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by the kernel and is owned here only.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let relative = target.strip_prefix(mount).ok()?;
    Some(format!("/{}", relative.display()))
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

/// The cgroup v2 mount of this machine, for tests against the real hierarchy.
#[cfg(test)]
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(mount_point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::cgroup2_mount;

    #[test]
    fn ids_map_to_paths_below_the_mount() {
        let dir = std::env::temp_dir().join(format!("pl-cgroupfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("system.slice/web.service")).unwrap();
        let id = std::fs::metadata(dir.join("system.slice/web.service")).unwrap().ino();
        let mut paths = CgroupPaths::new(Some(dir.clone()), Duration::from_secs(1));
        let now = Instant::now();
        // A plain directory is no kernfs: only the walk can answer here.
        assert_eq!(paths.path(id, now).as_deref(), Some("/system.slice/web.service"));
        let root = std::fs::metadata(&dir).unwrap().ino();
        assert_eq!(paths.path(root, now).as_deref(), Some("/"));
        assert_eq!(paths.path(1, now), None, "unknown ids miss without a rescan storm");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_real_hierarchy_answers_for_our_own_cgroup() {
        let Some(mount) = cgroup2_mount() else {
            eprintln!("no cgroup v2 mount here");
            return;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_owned();
        let dir = mount.join(path.trim_start_matches('/'));
        let id = std::fs::metadata(&dir).unwrap().ino();
        let mut paths = CgroupPaths::new(Some(mount), Duration::from_secs(1));
        assert_eq!(paths.path(id, Instant::now()), Some(path));
    }
}
