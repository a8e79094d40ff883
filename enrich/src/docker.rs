//! Container names, images and Kubernetes labels from the Docker engine.
//!
//! A background task keeps a directory of containers: it lists them when it
//! connects, follows the engine's event stream (so a container that starts and dies
//! within a second is still named), and inspects any id a lookup missed. Entries of
//! removed containers stay for a while, because their flows are reported after they
//! end. When the engine is absent or dies, lookups keep answering from what is known
//! and the task reconnects with backoff; nothing waits on Docker.
//!
//! When a container starts, the directory also notes its cgroup (id and path, read
//! from its first process): a short-lived container's cgroup is gone by the time
//! its flows are enriched, and the kernel's cgroup id alone no longer leads to it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Longest wait between reconnection attempts (the engine is a local socket: trying
/// often costs nothing and brings names back soon after a restart).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a removed container's entry is kept.
const KEEP_REMOVED: Duration = Duration::from_secs(600);

/// What Docker says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Name, without Docker's leading `/`.
    pub name: String,
    /// Image as the container was created from (`nginx:1.27`).
    pub image: String,
    /// Labels (Kubernetes puts pod, namespace and container name there).
    pub labels: HashMap<String, String>,
}

impl ContainerMeta {
    /// `io.kubernetes.pod.name`.
    #[must_use]
    pub fn pod(&self) -> Option<&str> {
        self.labels.get("io.kubernetes.pod.name").map(String::as_str)
    }

    /// `io.kubernetes.pod.namespace`.
    #[must_use]
    pub fn namespace(&self) -> Option<&str> {
        self.labels.get("io.kubernetes.pod.namespace").map(String::as_str)
    }

    /// `io.kubernetes.container.name`.
    #[must_use]
    pub fn k8s_container(&self) -> Option<&str> {
        self.labels.get("io.kubernetes.container.name").map(String::as_str)
    }
}

struct Entry {
    meta: ContainerMeta,
    /// The container's cgroup v2 id and path, when seen running.
    cgroup: Option<(u64, String)>,
    removed_at: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    /// The cgroup v2 mount, to learn running containers' cgroup ids.
    cgroup_mount: Option<PathBuf>,
    entries: Mutex<HashMap<String, Entry>>,
    pending: Mutex<HashSet<String>>,
    connected: AtomicBool,
    lookups_missed: AtomicU64,
    reconnects: AtomicU64,
}

/// Counters of the Docker directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DockerCounters {
    /// Whether the engine is connected now.
    pub connected: bool,
    /// Containers known.
    pub containers: u64,
    /// Lookups of ids not (yet) known.
    pub lookups_missed: u64,
    /// Connections made to the engine (1 + reconnections).
    pub connections: u64,
}

/// Handle to the directory; cheap to clone.
#[derive(Clone)]
pub struct DockerDirectory {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<String>,
}

impl std::fmt::Debug for DockerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDirectory").field("counters", &self.counters()).finish()
    }
}

impl DockerDirectory {
    /// Starts following the engine at `socket` (inside a tokio runtime); with the
    /// cgroup v2 mount, it also learns each started container's cgroup.
    #[must_use]
    pub fn start(socket: PathBuf, cgroup_mount: Option<PathBuf>) -> Self {
        let shared = Arc::new(Shared { cgroup_mount, ..Shared::default() });
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(follow(socket, Arc::clone(&shared), rx));
        Self { shared, requests }
    }

    /// What is known of container `id` (full 64-hex id); a miss asks the engine, so
    /// a later lookup may succeed.
    #[must_use]
    pub fn lookup(&self, id: &str) -> Option<ContainerMeta> {
        if let Some(entry) = self.shared.entries.lock().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Some(entry.meta.clone());
        }
        self.shared.lookups_missed.fetch_add(1, Ordering::Relaxed);
        if self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned()) {
            // The task only ends with the runtime; a closed channel loses nothing then.
            let _ = self.requests.send(id.to_owned());
        }
        None
    }

    /// The cgroup path of the container whose cgroup had id `cgroup_id`, for cgroups
    /// already removed; a scan of the known containers, so only for misses.
    #[must_use]
    pub fn cgroup_path(&self, cgroup_id: u64) -> Option<String> {
        let entries = self.shared.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.values().find_map(|e| e.cgroup.as_ref().filter(|(id, _)| *id == cgroup_id).map(|(_, p)| p.clone()))
    }

    /// Current counters.
    #[must_use]
    pub fn counters(&self) -> DockerCounters {
        DockerCounters {
            connected: self.shared.connected.load(Ordering::Relaxed),
            containers: self.shared.entries.lock().unwrap_or_else(PoisonError::into_inner).len() as u64,
            lookups_missed: self.shared.lookups_missed.load(Ordering::Relaxed),
            connections: self.shared.reconnects.load(Ordering::Relaxed),
        }
    }
}

fn meta_of(name: Option<&str>, image: Option<&str>, labels: Option<&HashMap<String, String>>) -> ContainerMeta {
    ContainerMeta {
        name: name.unwrap_or_default().trim_start_matches('/').to_owned(),
        image: image.unwrap_or_default().to_owned(),
        labels: labels.cloned().unwrap_or_default(),
    }
}

/// The cgroup v2 id (its directory's inode) and path of process `pid`.
fn cgroup_of(mount: &Path, pid: i64) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = crate::cgroup::path_from_proc_cgroup(&text)?;
    let id = std::fs::metadata(mount.join(path.trim_start_matches('/'))).ok()?.ino();
    Some((id, path))
}

#[cfg(test)]
impl DockerDirectory {
    /// Learns that container `id` is named `name`, as an inspect by the engine would.
    pub(crate) fn learn(&self, id: &str, name: &str) {
        self.shared.put(id.to_owned(), meta_of(Some(name), None, None), None);
    }
}

impl Shared {
    fn put(&self, id: String, meta: ContainerMeta, pid: Option<i64>) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let seen = pid.filter(|&p| p > 0).zip(self.cgroup_mount.as_deref()).and_then(|(p, m)| cgroup_of(m, p));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let cgroup = seen.or_else(|| entries.get(&id).and_then(|e| e.cgroup.clone()));
        entries.insert(id, Entry { meta, cgroup, removed_at: None });
    }

    fn removed(&self, id: &str, now: Instant) {
        if let Some(entry) = self.entries.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            entry.removed_at = Some(now);
        }
    }

    fn prune(&self, now: Instant) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, e| e.removed_at.is_none_or(|at| now.duration_since(at) < KEEP_REMOVED));
    }
}

async fn inspect(docker: &Docker, shared: &Shared, id: &str) {
    match docker.inspect_container(id, None).await {
        Ok(c) => {
            let config = c.config.as_ref();
            let meta = meta_of(
                c.name.as_deref(),
                config.and_then(|c| c.image.as_deref()),
                config.and_then(|c| c.labels.as_ref()),
            );
            let pid = c.state.as_ref().and_then(|s| s.pid);
            shared.put(c.id.unwrap_or_else(|| id.to_owned()), meta, pid);
        }
        Err(e) => {
            debug!(container = id, error = %e, "inspecting container failed");
            shared.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        }
    }
}

/// The directory's task: connect, list, follow events, answer requests; reconnect
/// with backoff whenever the engine goes away.
async fn follow(socket: PathBuf, shared: Arc<Shared>, mut requests: mpsc::UnboundedReceiver<String>) {
    let mut backoff = Duration::from_millis(500);
    let mut warned = false;
    loop {
        let result = session(&socket, &shared, &mut requests).await;
        let was_connected = shared.connected.swap(false, Ordering::Relaxed);
        match result {
            Ok(()) => {
                // The session ran and ended (engine stopped): start over quickly.
                backoff = Duration::from_millis(500);
                warned = false;
                if was_connected {
                    warn!(socket = %socket.display(), "the Docker engine closed its event stream; reconnecting");
                }
            }
            Err(e) if was_connected => {
                warn!(socket = %socket.display(), error = %e, "lost the Docker engine; reconnecting");
            }
            Err(e) => {
                if !warned {
                    warn!(socket = %socket.display(), error = %e, "Docker engine unavailable; container names will be missing until it is back");
                    warned = true;
                }
            }
        }
        shared.prune(Instant::now());
        // A retry delay, not synchronisation: the engine is polled until it answers.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if requests.is_closed() {
            return;
        }
    }
}

async fn session(
    socket: &std::path::Path,
    shared: &Shared,
    requests: &mut mpsc::UnboundedReceiver<String>,
) -> Result<(), bollard::errors::Error> {
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 10, API_DEFAULT_VERSION)?;
    docker.ping().await?;
    let mut filters = HashMap::new();
    filters.insert("type", vec!["container"]);
    let mut events = docker.events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
    let list = docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).build())).await?;
    for c in list {
        let Some(id) = c.id.clone() else { continue };
        let name = c.names.as_ref().and_then(|n| n.first()).map(String::as_str);
        shared.put(id, meta_of(name, c.image.as_deref(), c.labels.as_ref()), None);
    }
    shared.connected.store(true, Ordering::Relaxed);
    shared.reconnects.fetch_add(1, Ordering::Relaxed);
    info!(
        containers = shared.entries.lock().unwrap_or_else(PoisonError::into_inner).len(),
        "following the Docker engine"
    );
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    let id = event.actor.as_ref().and_then(|a| a.id.clone()).unwrap_or_default();
                    match event.action.as_deref() {
                        Some("create" | "start" | "rename" | "update") => inspect(&docker, shared, &id).await,
                        Some("destroy") => shared.removed(&id, Instant::now()),
                        _ => {}
                    }
                }
                // An event this client cannot decode (engines add fields and
                // actions) is skipped; anything else ends the session.
                Some(Err(e @ (bollard::errors::Error::JsonDataError { .. } | bollard::errors::Error::JsonSerdeError { .. }))) => {
                    debug!(error = %e, "skipping a Docker event that does not decode");
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            request = requests.recv() => match request {
                Some(id) => inspect(&docker, shared, &id).await,
                None => return Ok(()),
            },
            _ = prune.tick() => shared.prune(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_labels_are_read() {
        let labels: HashMap<String, String> = [
            ("io.kubernetes.pod.name", "api-7d9f"),
            ("io.kubernetes.pod.namespace", "prod"),
            ("io.kubernetes.container.name", "api"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let meta = meta_of(Some("/k8s_api_api-7d9f"), Some("registry/api:1"), Some(&labels));
        assert_eq!(meta.name, "k8s_api_api-7d9f");
        assert_eq!((meta.pod(), meta.namespace(), meta.k8s_container()), (Some("api-7d9f"), Some("prod"), Some("api")));
    }

    #[tokio::test]
    async fn an_absent_engine_gives_misses_not_errors() {
        let dir = DockerDirectory::start(PathBuf::from("/nonexistent/docker.sock"), None);
        assert_eq!(dir.lookup(&"a".repeat(64)), None);
        let counters = dir.counters();
        assert!(!counters.connected);
        assert_eq!(counters.lookups_missed, 1);
    }

    #[tokio::test]
    async fn a_started_container_cgroup_is_remembered_after_it_is_gone() {
        let Some(mount) = crate::cgroupfs::cgroup2_mount() else {
            eprintln!("no cgroup v2 mount here");
            return;
        };
        let dir = DockerDirectory::start(PathBuf::from("/nonexistent/docker.sock"), Some(mount.clone()));
        let id = "c".repeat(64);
        // Our own process stands in for the container's first process.
        dir.shared.put(id.clone(), meta_of(Some("/web"), None, None), Some(i64::from(std::process::id())));
        let (cgroup_id, path) = cgroup_of(&mount, i64::from(std::process::id())).expect("own cgroup");
        assert_eq!(dir.cgroup_path(cgroup_id), Some(path.clone()));
        // A later inspect without a running process (a rename after exit) keeps it.
        dir.shared.put(id, meta_of(Some("/web2"), None, None), Some(0));
        assert_eq!(dir.cgroup_path(cgroup_id), Some(path));
        assert_eq!(dir.cgroup_path(cgroup_id + 1_000_000), None);
    }
}
