//! packetless enrichment: who is behind a socket, beyond what the kernel records.
//!
//! The kernel side records, at socket creation, the pid, uid/gid, comm, cgroup id,
//! parent pid and comm, executable basename and start time of the owner. This crate
//! adds what procfs, the process's own `/etc/passwd`, the cgroup hierarchy and the
//! Docker engine know: executable path, command line, user and group names, the
//! parent's executable, and the container (runtime, id, name, image, Kubernetes pod,
//! namespace and container name).
//!
//! Processes are observed when their first event arrives ([`Enricher::observe`]),
//! while they most likely still run; records take the details later
//! ([`Enricher::details`]). Every lookup is best effort: a miss leaves fields empty,
//! counts, and never holds up a record.

pub mod cache;
pub mod cgroup;
pub mod cgroupfs;
pub mod docker;
pub mod procfs;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use self::cache::Cache;
use self::cgroup::{parse_cgroup_path, path_from_proc_cgroup, CgroupOwner, Runtime};
use self::cgroupfs::CgroupPaths;
use self::docker::{DockerCounters, DockerDirectory};
use self::procfs::{clock_ticks, format_cmdline, ProcSource, RootKey};
use self::users::NameTable;

/// What the kernel recorded about a socket's owner.
#[derive(Clone, Copy, Debug)]
pub struct KernelFacts {
    /// Process id.
    pub pid: u32,
    /// Start time, `CLOCK_BOOTTIME` ns (0 when unknown).
    pub start_ns: u64,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Parent process id.
    pub ppid: u32,
}

/// A container, as records show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Container id.
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, `lxc`, `kubernetes`.
    pub runtime: &'static str,
    /// Container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Kubernetes pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Kubernetes namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_container: Option<String>,
    /// Kubernetes pod uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// A string shared by every record that shows it (cloning is a reference count).
pub type Shared = Arc<str>;

/// What enrichment adds to a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// Path of the executable.
    pub exe: Option<Shared>,
    /// Command line, arguments joined by spaces, bounded.
    pub cmdline: Option<Shared>,
    /// User name (from the process's own root).
    pub user: Option<Shared>,
    /// Group name (from the process's own root).
    pub group: Option<Shared>,
    /// Path of the parent's executable.
    pub parent_exe: Option<Shared>,
    /// The container, when the process runs in one.
    pub container: Option<Arc<Container>>,
}

/// A record of cgroup paths kept outside cgroupfs (the kernel's, made as cgroups
/// are created): it still answers for cgroups already removed.
pub trait CgroupRecord: Send {
    /// The path of cgroup v2 `id` below the hierarchy's root, if recorded.
    fn path(&self, id: u64) -> Option<String>;
}

/// Where enrichment reads from.
#[derive(Clone, Debug)]
pub struct EnrichConfig {
    /// The cgroup v2 mount, to map cgroup ids of exited processes to paths.
    pub cgroup_mount: Option<PathBuf>,
    /// The Docker engine's socket; `None` to not ask Docker.
    pub docker_socket: Option<PathBuf>,
}

/// Counters of the enrichment stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EnrichCounters {
    /// Processes looked up in procfs.
    pub processes_observed: u64,
    /// Processes gone (or replaced by another with the same pid) before procfs was read.
    pub processes_gone: u64,
    /// Process cache entries evicted for room.
    pub process_cache_evicted: u64,
    /// Docker directory, when used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerCounters>,
}

#[derive(Clone, Debug, Default)]
struct Observed {
    exe: Option<Shared>,
    cmdline: Option<Shared>,
    parent_exe: Option<Shared>,
    root: Option<RootKey>,
    cgroup_path: Option<String>,
}

type Names = Arc<(NameTable, NameTable)>;

/// Process entries kept at once.
const PROCESS_CACHE: usize = 65_536;
/// How long a process entry is trusted (a process may exec another program).
const PROCESS_TTL: Duration = Duration::from_secs(300);
/// How long a container's identity is trusted before Docker is asked again.
const CONTAINER_TTL: Duration = Duration::from_secs(30);
/// Distinct roots (hosts and containers) whose user names are kept.
const ROOT_CACHE: usize = 1024;

/// The enrichment stage.
pub struct Enricher {
    proc: Box<dyn ProcSource>,
    processes: Cache<(u32, u64), Observed>,
    names: Cache<RootKey, Names>,
    root_of_cgroup: Cache<u64, RootKey>,
    cgroup_paths: Cache<u64, String>,
    containers: Cache<String, Arc<Container>>,
    cgroups: CgroupPaths,
    docker: Option<DockerDirectory>,
    recorded_cgroups: Option<Box<dyn CgroupRecord>>,
    ticks_per_sec: u64,
    counters: EnrichCounters,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher").field("counters", &self.counters).finish_non_exhaustive()
    }
}

impl Enricher {
    /// An enricher reading `proc`; starts following Docker when a socket is given
    /// (which needs a tokio runtime).
    #[must_use]
    pub fn new(config: EnrichConfig, proc: Box<dyn ProcSource>) -> Self {
        Self {
            proc,
            processes: Cache::new(PROCESS_CACHE, PROCESS_TTL),
            names: Cache::new(ROOT_CACHE, PROCESS_TTL),
            root_of_cgroup: Cache::new(PROCESS_CACHE, PROCESS_TTL),
            cgroup_paths: Cache::new(PROCESS_CACHE, PROCESS_TTL),
            containers: Cache::new(ROOT_CACHE, CONTAINER_TTL),
            docker: config.docker_socket.map(|socket| DockerDirectory::start(socket, config.cgroup_mount.clone())),
            cgroups: CgroupPaths::new(config.cgroup_mount, Duration::from_secs(1)),
            recorded_cgroups: None,
            ticks_per_sec: clock_ticks(),
            counters: EnrichCounters::default(),
        }
    }

    /// Also asks `record` for cgroups no longer in cgroupfs.
    #[must_use]
    pub fn with_cgroup_record(mut self, record: Box<dyn CgroupRecord>) -> Self {
        self.recorded_cgroups = Some(record);
        self
    }

    /// Reads what procfs knows about the process now, unless already known. Cheap
    /// when it is (one cache lookup): call it for every event.
    pub fn observe(&mut self, facts: &KernelFacts, now: Instant) {
        let key = (facts.pid, facts.start_ns);
        if facts.pid == 0 || self.processes.get(&key, now).is_some() {
            return;
        }
        self.counters.processes_observed += 1;
        // The cgroup outlives the process briefly; resolve it while it exists.
        if facts.cgroup_id != 0 && self.cgroup_paths.get(&facts.cgroup_id, now).is_none() {
            if let Some(path) = self.cgroup_path(facts.cgroup_id, now) {
                self.cgroup_paths.insert(facts.cgroup_id, path, now);
            }
        }
        let observed = if self.same_process(facts) {
            self.read_process(facts, now)
        } else {
            self.counters.processes_gone += 1;
            self.read_parent_root(facts, now);
            Observed::default()
        };
        self.processes.insert(key, observed, now);
        self.counters.process_cache_evicted = self.processes.evicted();
    }

    /// The path of cgroup `id`: from the kernel's record of new cgroups, from
    /// cgroupfs while it exists, else from the container the Docker directory saw
    /// running in it.
    fn cgroup_path(&mut self, id: u64, now: Instant) -> Option<String> {
        self.recorded_cgroups
            .as_ref()
            .and_then(|r| r.path(id))
            .or_else(|| self.cgroups.path(id, now))
            .or_else(|| self.docker.as_ref()?.cgroup_path(id))
    }

    /// Whether the process at `facts.pid` is the one the kernel saw (not gone, not a
    /// reused pid): same start time, to the clock tick.
    fn same_process(&self, facts: &KernelFacts) -> bool {
        let Ok(ticks) = self.proc.start_ticks(facts.pid) else { return false };
        if facts.start_ns == 0 {
            return true;
        }
        let expected = u128::from(facts.start_ns) * u128::from(self.ticks_per_sec) / 1_000_000_000;
        u128::from(ticks).abs_diff(expected) <= 1
    }

    /// Remembers the root of `pid` as that of its cgroup, with its user names.
    fn learn_root(&mut self, pid: u32, cgroup_id: u64, now: Instant) -> Option<RootKey> {
        let root = self.proc.root_key(pid).ok()?;
        self.root_of_cgroup.insert(cgroup_id, root, now);
        if self.names.get(&root, now).is_none() {
            let read =
                |file: &str| self.proc.root_file(pid, file).map(|b| users::parse(b.as_slice())).unwrap_or_default();
            let names = Arc::new((read("etc/passwd"), read("etc/group")));
            self.names.insert(root, names, now);
        }
        Some(root)
    }

    /// A process gone before it was observed shares its root (and user names) with
    /// the processes still in its cgroup: its parent when it is one of them (a shell
    /// in the same container), else any member.
    fn read_parent_root(&mut self, facts: &KernelFacts, now: Instant) {
        if self.root_of_cgroup.get(&facts.cgroup_id, now).is_some() {
            return;
        }
        let Some(own) = self.cgroup_paths.get(&facts.cgroup_id, now).cloned() else { return };
        let parent_here = facts.ppid != 0
            && self.proc.cgroup(facts.ppid).ok().and_then(|text| path_from_proc_cgroup(&text)).as_deref()
                == Some(own.as_str());
        let candidates = if parent_here { vec![facts.ppid] } else { self.cgroups.members(&own, 4) };
        for pid in candidates {
            if self.learn_root(pid, facts.cgroup_id, now).is_some() {
                return;
            }
        }
    }

    fn read_process(&mut self, facts: &KernelFacts, now: Instant) -> Observed {
        let pid = facts.pid;
        let root = self.learn_root(pid, facts.cgroup_id, now);
        Observed {
            exe: self.proc.exe(pid).ok().map(Shared::from),
            cmdline: self
                .proc
                .cmdline(pid)
                .ok()
                .map(|raw| format_cmdline(&raw))
                .filter(|c| !c.is_empty())
                .map(Shared::from),
            parent_exe: (facts.ppid != 0).then(|| self.proc.exe(facts.ppid).ok()).flatten().map(Shared::from),
            root,
            cgroup_path: self.proc.cgroup(pid).ok().and_then(|text| path_from_proc_cgroup(&text)),
        }
    }

    /// Everything known about the process, observing it first if it was not.
    pub fn details(&mut self, facts: &KernelFacts, now: Instant) -> Details {
        self.observe(facts, now);
        let observed = self.processes.get(&(facts.pid, facts.start_ns), now).cloned().unwrap_or_default();
        let root = observed.root.or_else(|| self.root_of_cgroup.get(&facts.cgroup_id, now).copied());
        let names = root.and_then(|r| self.names.get(&r, now).cloned());
        let path = observed
            .cgroup_path
            .clone()
            .or_else(|| self.cgroup_paths.get(&facts.cgroup_id, now).cloned())
            .or_else(|| self.cgroup_path(facts.cgroup_id, now));
        Details {
            exe: observed.exe,
            cmdline: observed.cmdline,
            user: names.as_ref().and_then(|n| n.0.shared(facts.uid)),
            group: names.as_ref().and_then(|n| n.1.shared(facts.gid)),
            parent_exe: observed.parent_exe,
            container: path.and_then(|p| self.container(&p)),
        }
    }

    fn container(&mut self, path: &str) -> Option<Arc<Container>> {
        if let Some(c) = self.containers.get(&path.to_owned(), Instant::now()) {
            // Docker names may arrive after the first lookup: keep asking until they do.
            if c.name.is_some() || self.docker.is_none() {
                return Some(Arc::clone(c));
            }
        }
        let c = Arc::new(self.container_uncached(path)?);
        self.containers.insert(path.to_owned(), Arc::clone(&c), Instant::now());
        Some(c)
    }

    fn container_uncached(&self, path: &str) -> Option<Container> {
        let CgroupOwner::Container { runtime, id, pod_uid } = parse_cgroup_path(path) else { return None };
        let meta = match (runtime, &self.docker) {
            (Runtime::Docker | Runtime::Kubernetes, Some(docker)) => docker.lookup(&id),
            _ => None,
        };
        let runtime = if runtime == Runtime::Kubernetes && meta.is_some() { Runtime::Docker } else { runtime };
        Some(Container {
            runtime: runtime.name(),
            name: meta.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty()),
            image: meta.as_ref().map(|m| m.image.clone()).filter(|i| !i.is_empty()),
            pod: meta.as_ref().and_then(|m| m.pod().map(str::to_owned)),
            namespace: meta.as_ref().and_then(|m| m.namespace().map(str::to_owned)),
            k8s_container: meta.as_ref().and_then(|m| m.k8s_container().map(str::to_owned)),
            pod_uid,
            id,
        })
    }

    /// Current counters.
    #[must_use]
    pub fn counters(&self) -> EnrichCounters {
        EnrichCounters { docker: self.docker.as_ref().map(DockerDirectory::counters), ..self.counters }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io;

    /// A fake procfs: processes by pid, each with its facts.
    #[derive(Default)]
    struct FakeProc {
        processes: HashMap<u32, FakeProcess>,
    }

    #[derive(Clone, Default)]
    struct FakeProcess {
        exe: String,
        cmdline: Vec<u8>,
        start_ticks: u64,
        cgroup: String,
        root: RootKey,
        passwd: String,
        group: String,
    }

    impl ProcSource for FakeProc {
        fn exe(&self, pid: u32) -> io::Result<String> {
            self.get(pid).map(|p| p.exe.clone())
        }
        fn cmdline(&self, pid: u32) -> io::Result<Vec<u8>> {
            self.get(pid).map(|p| p.cmdline.clone())
        }
        fn start_ticks(&self, pid: u32) -> io::Result<u64> {
            self.get(pid).map(|p| p.start_ticks)
        }
        fn cgroup(&self, pid: u32) -> io::Result<String> {
            self.get(pid).map(|p| p.cgroup.clone())
        }
        fn root_key(&self, pid: u32) -> io::Result<RootKey> {
            self.get(pid).map(|p| p.root)
        }
        fn root_file(&self, pid: u32, relative: &str) -> io::Result<Vec<u8>> {
            let p = self.get(pid)?;
            Ok(match relative {
                "etc/passwd" => p.passwd.clone().into_bytes(),
                "etc/group" => p.group.clone().into_bytes(),
                _ => return Err(io::ErrorKind::NotFound.into()),
            })
        }
    }

    impl FakeProc {
        fn get(&self, pid: u32) -> io::Result<&FakeProcess> {
            self.processes.get(&pid).ok_or_else(|| io::ErrorKind::NotFound.into())
        }
    }

    const ID: &str = "3f4c1a9e5b7d2c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";

    fn enricher(procs: Vec<(u32, FakeProcess)>) -> Enricher {
        let fake = FakeProc { processes: procs.into_iter().collect() };
        let mut e = Enricher::new(EnrichConfig { cgroup_mount: None, docker_socket: None }, Box::new(fake));
        e.ticks_per_sec = 100;
        e
    }

    fn facts(pid: u32, start_ns: u64, uid: u32) -> KernelFacts {
        KernelFacts { pid, start_ns, uid, gid: uid, cgroup_id: 77, ppid: 1 }
    }

    fn container_process() -> FakeProcess {
        FakeProcess {
            exe: "/usr/bin/curl".into(),
            cmdline: b"curl\0-s\0http://x\0".to_vec(),
            start_ticks: 500,
            cgroup: format!("0::/system.slice/docker-{ID}.scope\n"),
            root: (9, 1234),
            passwd: "root:x:0:0::/:/bin/sh\nappuser:x:4321:4321::/:/bin/sh\n".into(),
            group: "appgroup:x:4321:\n".into(),
        }
    }

    #[test]
    fn a_container_process_is_named_from_its_own_passwd() {
        let mut e = enricher(vec![
            (42, container_process()),
            (1, FakeProcess { exe: "/sbin/init".into(), start_ticks: 1, ..FakeProcess::default() }),
        ]);
        let d = e.details(&facts(42, 5_000_000_000, 4321), Instant::now());
        assert_eq!(d.exe.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(d.cmdline.as_deref(), Some("curl -s http://x"));
        assert_eq!((d.user.as_deref(), d.group.as_deref()), (Some("appuser"), Some("appgroup")));
        assert_eq!(d.parent_exe.as_deref(), Some("/sbin/init"));
        let c = d.container.unwrap();
        assert_eq!((c.id.as_str(), c.runtime, c.name.clone()), (ID, "docker", None), "no engine: id and runtime only");
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_the_process_the_kernel_saw() {
        let mut e = enricher(vec![(42, container_process())]);
        // The kernel saw pid 42 start at 9 s; procfs's pid 42 started at 5 s.
        let d = e.details(&facts(42, 9_000_000_000, 4321), Instant::now());
        assert_eq!(d.exe, None);
        assert_eq!(e.counters().processes_gone, 1);
    }

    #[test]
    fn an_exited_process_keeps_its_container_user_names_through_its_cgroup() {
        let mut e = enricher(vec![(42, container_process())]);
        let now = Instant::now();
        e.observe(&facts(42, 5_000_000_000, 4321), now);
        // A sibling in the same container, already gone when asked about.
        let d = e.details(&facts(43, 6_000_000_000, 4321), now);
        assert_eq!(d.user.as_deref(), Some("appuser"));
        assert_eq!(d.exe, None);
    }

    #[test]
    fn observing_twice_reads_procfs_once() {
        let mut e = enricher(vec![(42, container_process())]);
        let now = Instant::now();
        for _ in 0..10 {
            e.observe(&facts(42, 5_000_000_000, 0), now);
        }
        assert_eq!(e.counters().processes_observed, 1);
    }
}
