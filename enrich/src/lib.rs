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
pub mod fake;
mod memo;
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
use self::memo::{Memo, Validity};
use self::procfs::{clock_ticks, format_cmdline, ProcSource, RootKey};
use self::users::NameTable;

/// What the kernel recorded about a socket's owner.
#[derive(Clone, Copy, Debug)]
pub struct KernelFacts {
    /// Process id.
    pub pid: u32,
    /// Start time, `CLOCK_BOOTTIME` ns (0 when unknown).
    pub start_ns: u64,
    /// Exec counter (+1 at every execve): a process that execs keeps its pid and
    /// start time, so this is what tells its programs apart.
    pub exec_id: u32,
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
    cgroup_path: Option<Shared>,
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

/// A program image of a process: pid, start time (pid reuse), exec counter (exec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ProcessKey {
    pid: u32,
    start_ns: u64,
    exec_id: u32,
}

impl ProcessKey {
    fn of(facts: &KernelFacts) -> Self {
        Self { pid: facts.pid, start_ns: facts.start_ns, exec_id: facts.exec_id }
    }
}

/// The enrichment stage.
pub struct Enricher {
    proc: Box<dyn ProcSource>,
    processes: Cache<ProcessKey, Observed>,
    names: Cache<RootKey, Names>,
    root_of_cgroup: Cache<u64, RootKey>,
    cgroup_paths: Cache<u64, Shared>,
    containers: Cache<String, Arc<Container>>,
    memo: Memo,
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
            memo: Memo::default(),
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
    /// when it is (a look at the last few answers of [`Enricher::details`], else one
    /// cache lookup): call it for every event.
    pub fn observe(&mut self, facts: &KernelFacts, now: Instant) {
        if facts.pid == 0 || self.memo.observed(facts, self.generation(), now) {
            return;
        }
        let key = ProcessKey::of(facts);
        if self.processes.get(&key, now).is_some() {
            return;
        }
        self.counters.processes_observed += 1;
        // The cgroup outlives the process briefly; resolve it while it exists.
        if facts.cgroup_id != 0 && self.cgroup_paths.get(&facts.cgroup_id, now).is_none() {
            if let Some(path) = self.cgroup_path(facts.cgroup_id, now) {
                self.cgroup_paths.insert(facts.cgroup_id, path.into(), now);
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
                == Some(&*own);
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
            cgroup_path: self.proc.cgroup(pid).ok().and_then(|text| path_from_proc_cgroup(&text)).map(Shared::from),
        }
    }

    /// The generation of every cache the memo's answers are made of: it changes
    /// with any insertion into any of them.
    fn generation(&self) -> u64 {
        self.processes.generation()
            + self.names.generation()
            + self.root_of_cgroup.generation()
            + self.cgroup_paths.generation()
            + self.containers.generation()
    }

    /// Everything known about the process, observing it first if it was not.
    /// Asking again about the same process is a few comparisons, until an entry it
    /// was made of expires or any process, cgroup or container is newly cached.
    pub fn details(&mut self, facts: &KernelFacts, now: Instant) -> Details {
        // Unwrapped when nothing kept it; copied when the memo holds it.
        Arc::try_unwrap(self.details_shared(facts, now)).unwrap_or_else(|kept| Details::clone(&kept))
    }

    /// As [`Enricher::details`], shared: asking again about the same process then
    /// costs one reference count instead of one per field.
    pub fn details_shared(&mut self, facts: &KernelFacts, now: Instant) -> Arc<Details> {
        if let Some(details) = self.memo.details(facts, self.generation(), now) {
            return Arc::clone(details);
        }
        self.details_uncached(facts, now)
    }

    /// `details` from the caches (and procfs, cgroupfs, Docker when they miss);
    /// kept in the memo when only cache entries made it.
    fn details_uncached(&mut self, facts: &KernelFacts, now: Instant) -> Arc<Details> {
        self.observe(facts, now);
        let mut validity = Validity::new(now);
        let observed = self.processes.get_with_expiry(&ProcessKey::of(facts), now).map(|(observed, expiry)| {
            validity.bound(expiry);
            observed.clone()
        });
        let found = observed.is_some();
        let observed = observed.unwrap_or_default();
        let root = observed.root.or_else(|| {
            let (root, expiry) = self.root_of_cgroup.get_with_expiry(&facts.cgroup_id, now)?;
            validity.bound(expiry);
            Some(*root)
        });
        let names = root.and_then(|r| {
            let (names, expiry) = self.names.get_with_expiry(&r, now)?;
            validity.bound(expiry);
            Some(Arc::clone(names))
        });
        let path = observed.cgroup_path.clone().or_else(|| {
            if let Some((path, expiry)) = self.cgroup_paths.get_with_expiry(&facts.cgroup_id, now) {
                validity.bound(expiry);
                return Some(Arc::clone(path));
            }
            // Asked anew each time: the sources learn of cgroups behind the caches' backs.
            validity.uncached();
            self.cgroup_path(facts.cgroup_id, now).map(Shared::from)
        });
        let details = Arc::new(Details {
            exe: observed.exe,
            cmdline: observed.cmdline,
            user: names.as_ref().and_then(|n| n.0.shared(facts.uid)),
            group: names.as_ref().and_then(|n| n.1.shared(facts.gid)),
            parent_exe: observed.parent_exe,
            container: path.and_then(|p| self.container(&p, now, &mut validity)),
        });
        self.memo.keep(*facts, found, self.generation(), validity, Arc::clone(&details));
        details
    }

    /// The container running in cgroup `path`; narrows `validity` to the cache
    /// entry it came from, or marks it uncached when the next call asks Docker again.
    fn container(&mut self, path: &str, now: Instant, validity: &mut Validity) -> Option<Arc<Container>> {
        // Docker names may arrive after the first lookup: keep asking until they do.
        let settled = |c: &Container| c.name.is_some() || self.docker.is_none();
        if let Some((c, expiry)) = self.containers.get_with_expiry(path, now) {
            if settled(c) {
                validity.bound(expiry);
                return Some(Arc::clone(c));
            }
        }
        // A path naming no container names none on every call: that answer stands.
        let c = Arc::new(self.container_uncached(path)?);
        self.containers.insert(path.to_owned(), Arc::clone(&c), now);
        match self.containers.get_with_expiry(path, now) {
            Some((_, expiry)) if settled(&c) => validity.bound(expiry),
            _ => validity.uncached(),
        }
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
    use crate::fake::{FakeProc, FakeProcess};

    const ID: &str = "3f4c1a9e5b7d2c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";

    fn enricher(procs: Vec<(u32, FakeProcess)>) -> Enricher {
        let fake = FakeProc::new(procs);
        let mut e = Enricher::new(EnrichConfig { cgroup_mount: None, docker_socket: None }, Box::new(fake));
        e.ticks_per_sec = 100;
        e
    }

    fn facts(pid: u32, start_ns: u64, uid: u32) -> KernelFacts {
        KernelFacts { pid, start_ns, exec_id: 1, uid, gid: uid, cgroup_id: 77, ppid: 1 }
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

    /// A procfs the test changes after handing it over, as processes exec and exit.
    #[derive(Clone, Default)]
    struct LiveProc(Arc<std::sync::Mutex<FakeProc>>);

    impl LiveProc {
        fn set(&self, pid: u32, process: FakeProcess) {
            self.0.lock().unwrap().processes.insert(pid, process);
        }
    }

    impl ProcSource for LiveProc {
        fn exe(&self, pid: u32) -> std::io::Result<String> {
            self.0.lock().unwrap().exe(pid)
        }
        fn cmdline(&self, pid: u32) -> std::io::Result<Vec<u8>> {
            self.0.lock().unwrap().cmdline(pid)
        }
        fn start_ticks(&self, pid: u32) -> std::io::Result<u64> {
            self.0.lock().unwrap().start_ticks(pid)
        }
        fn cgroup(&self, pid: u32) -> std::io::Result<String> {
            self.0.lock().unwrap().cgroup(pid)
        }
        fn root_key(&self, pid: u32) -> std::io::Result<RootKey> {
            self.0.lock().unwrap().root_key(pid)
        }
        fn root_file(&self, pid: u32, relative: &str) -> std::io::Result<Vec<u8>> {
            self.0.lock().unwrap().root_file(pid, relative)
        }
    }

    /// The kernel's record of cgroups, filled by the test as cgroups are made.
    #[derive(Clone, Default)]
    struct LiveRecord(Arc<std::sync::Mutex<std::collections::HashMap<u64, String>>>);

    impl CgroupRecord for LiveRecord {
        fn path(&self, id: u64) -> Option<String> {
            self.0.lock().unwrap().get(&id).cloned()
        }
    }

    fn live_enricher(proc: &LiveProc) -> Enricher {
        let mut e = Enricher::new(EnrichConfig { cgroup_mount: None, docker_socket: None }, Box::new(proc.clone()));
        e.ticks_per_sec = 100;
        e
    }

    const NS: Duration = Duration::from_nanos(1);

    #[test]
    fn asking_again_about_a_process_reuses_the_answer() {
        let mut e = enricher(vec![(42, container_process())]);
        let now = Instant::now();
        let first = e.details_shared(&facts(42, 5_000_000_000, 4321), now);
        let again = e.details_shared(&facts(42, 5_000_000_000, 4321), now + Duration::from_secs(1));
        assert!(Arc::ptr_eq(&first, &again), "the second answer is the memo's");
        assert_eq!(e.details(&facts(42, 5_000_000_000, 4321), now), *first);
        assert_eq!(e.counters(), EnrichCounters { processes_observed: 1, ..EnrichCounters::default() });
    }

    #[test]
    fn a_process_is_read_again_once_its_entry_expires_even_when_asked_about_often() {
        let proc = LiveProc::default();
        proc.set(42, container_process());
        let mut e = live_enricher(&proc);
        let t = Instant::now();
        let f = facts(42, 5_000_000_000, 4321);
        assert_eq!(e.details(&f, t).exe.as_deref(), Some("/usr/bin/curl"));
        // The process execs another program; the cache trusts its entry for the TTL.
        proc.set(42, FakeProcess { exe: "/usr/bin/wget".into(), ..container_process() });
        assert_eq!(e.details(&f, t + PROCESS_TTL.saturating_sub(NS)).exe.as_deref(), Some("/usr/bin/curl"));
        e.observe(&f, t + PROCESS_TTL.saturating_sub(NS));
        assert_eq!(e.counters().processes_observed, 1);
        e.observe(&f, t + PROCESS_TTL);
        assert_eq!(e.counters().processes_observed, 2, "the memo does not outlive the entry");
        assert_eq!(e.details(&f, t + PROCESS_TTL).exe.as_deref(), Some("/usr/bin/wget"));
    }

    #[test]
    fn a_reused_pid_is_not_given_the_previous_process_details() {
        let proc = LiveProc::default();
        proc.set(42, container_process());
        let mut e = live_enricher(&proc);
        let now = Instant::now();
        assert_eq!(e.details(&facts(42, 5_000_000_000, 4321), now).exe.as_deref(), Some("/usr/bin/curl"));
        proc.set(42, FakeProcess { exe: "/usr/bin/wget".into(), start_ticks: 700, ..container_process() });
        assert_eq!(e.details(&facts(42, 7_000_000_000, 4321), now).exe.as_deref(), Some("/usr/bin/wget"));
        assert_eq!(
            e.details(&facts(42, 5_000_000_000, 4321), now).exe.as_deref(),
            Some("/usr/bin/curl"),
            "records of the first process still name it"
        );
    }

    #[test]
    fn a_process_that_execs_is_read_again_for_its_new_program() {
        let proc = LiveProc::default();
        // A child between fork and exec still runs its parent's program.
        proc.set(42, FakeProcess { exe: "/usr/bin/cargo".into(), ..container_process() });
        let mut e = live_enricher(&proc);
        let now = Instant::now();
        let forked = facts(42, 5_000_000_000, 4321);
        assert_eq!(e.details(&forked, now).exe.as_deref(), Some("/usr/bin/cargo"));
        // Same pid, same start time; the exec counter moved on.
        proc.set(42, container_process());
        let execed = KernelFacts { exec_id: forked.exec_id + 1, ..forked };
        let d = e.details(&execed, now);
        assert_eq!((d.exe.as_deref(), d.cmdline.as_deref()), (Some("/usr/bin/curl"), Some("curl -s http://x")));
        assert_eq!(e.counters().processes_observed, 2);
        assert_eq!(e.details(&forked, now).exe.as_deref(), Some("/usr/bin/cargo"), "the older program stays itself");
    }

    #[test]
    fn another_user_or_group_of_the_same_process_is_named_for_itself() {
        let mut e = enricher(vec![(42, container_process())]);
        let now = Instant::now();
        let names = |d: Details| (d.user.as_deref().map(str::to_owned), d.group.as_deref().map(str::to_owned));
        let app = facts(42, 5_000_000_000, 4321);
        let named = |user: &str, group: Option<&str>| (Some(user.to_owned()), group.map(str::to_owned));
        assert_eq!(names(e.details(&app, now)), named("appuser", Some("appgroup")));
        assert_eq!(names(e.details(&KernelFacts { uid: 0, ..app }, now)), named("root", Some("appgroup")));
        assert_eq!(names(e.details(&KernelFacts { gid: 0, ..app }, now)), named("appuser", None));
        assert_eq!(names(e.details(&app, now)), named("appuser", Some("appgroup")));
    }

    #[test]
    fn a_container_is_made_again_once_its_entry_expires() {
        let mut e = enricher(vec![(42, container_process())]);
        let t = Instant::now();
        let f = facts(42, 5_000_000_000, 4321);
        let first = e.details(&f, t).container.unwrap();
        let before = e.details(&f, t + CONTAINER_TTL.saturating_sub(NS)).container.unwrap();
        let after = e.details(&f, t + CONTAINER_TTL).container.unwrap();
        assert!(Arc::ptr_eq(&first, &before), "the cached container, within its TTL");
        assert!(!Arc::ptr_eq(&first, &after), "made again after it");
        assert_eq!(first, after);
    }

    #[test]
    fn a_gone_process_is_named_once_a_sibling_teaches_its_root() {
        let proc = LiveProc::default();
        let record = LiveRecord::default();
        record.0.lock().unwrap().insert(77, format!("/system.slice/docker-{ID}.scope"));
        let mut e = live_enricher(&proc).with_cgroup_record(Box::new(record));
        let now = Instant::now();
        // Gone before observed, and nothing yet knows the root of its container.
        let gone = facts(43, 6_000_000_000, 4321);
        let d = e.details(&gone, now);
        assert_eq!((d.user, d.container.map(|c| c.id.clone()).as_deref()), (None, Some(ID)));
        proc.set(42, container_process());
        e.observe(&facts(42, 5_000_000_000, 4321), now);
        assert_eq!(e.details(&gone, now).user.as_deref(), Some("appuser"), "no stale answer from the memo");
    }

    #[test]
    fn a_cgroup_the_caches_do_not_hold_is_looked_for_on_every_call() {
        let record = LiveRecord::default();
        let mut e = live_enricher(&LiveProc::default()).with_cgroup_record(Box::new(record.clone()));
        let now = Instant::now();
        let gone = facts(43, 6_000_000_000, 4321);
        assert_eq!(e.details(&gone, now).container, None);
        // The kernel's record learns of the cgroup only now.
        record.0.lock().unwrap().insert(77, format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(e.details(&gone, now).container.map(|c| c.id.clone()).as_deref(), Some(ID));
    }

    #[test]
    fn a_gone_process_seen_in_another_cgroup_is_placed_by_that_cgroup() {
        const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let record = LiveRecord::default();
        record.0.lock().unwrap().extend([
            (77, format!("/system.slice/docker-{ID}.scope")),
            (78, format!("/system.slice/docker-{OTHER}.scope")),
        ]);
        let mut e = live_enricher(&LiveProc::default()).with_cgroup_record(Box::new(record));
        let now = Instant::now();
        let gone = facts(43, 6_000_000_000, 4321);
        let id = |d: Details| d.container.map(|c| c.id.clone());
        assert_eq!(id(e.details(&gone, now)).as_deref(), Some(ID));
        assert_eq!(id(e.details(&KernelFacts { cgroup_id: 78, ..gone }, now)).as_deref(), Some(OTHER));
        assert_eq!(id(e.details(&gone, now)).as_deref(), Some(ID));
    }

    #[tokio::test]
    async fn a_container_docker_has_not_named_yet_is_asked_about_on_every_call() {
        let mut e = enricher(vec![(42, container_process())]);
        let docker = DockerDirectory::start(PathBuf::from("/nonexistent/docker.sock"), None);
        e.docker = Some(docker.clone());
        let now = Instant::now();
        let f = facts(42, 5_000_000_000, 4321);
        let name = |d: Arc<Details>| d.container.as_ref().and_then(|c| c.name.clone());
        assert_eq!(name(e.details_shared(&f, now)), None);
        assert_eq!(name(e.details_shared(&f, now)), None);
        assert_eq!(docker.counters().lookups_missed, 2, "not answered from the memo while nameless");
        docker.learn(ID, "/web");
        let named = e.details_shared(&f, now);
        assert_eq!(name(Arc::clone(&named)).as_deref(), Some("web"));
        assert!(Arc::ptr_eq(&named, &e.details_shared(&f, now)), "named, it is kept");
    }

    #[test]
    fn an_answer_ends_with_its_process_entry_even_when_its_cgroup_entry_outlives_it() {
        let proc = LiveProc::default();
        let record = LiveRecord::default();
        let mut e = live_enricher(&proc).with_cgroup_record(Box::new(record.clone()));
        let t = Instant::now();
        let unreadable = facts(42, 5_000_000_000, 0);
        // procfs cannot tell pid 42 at first, nor anything where cgroup 77 is.
        assert_eq!(e.details(&unreadable, t).exe, None);
        // A sibling's event later teaches the cgroup, cached until after pid 42's entry.
        record.0.lock().unwrap().insert(77, "/system.slice/web.service".into());
        e.observe(&facts(43, 6_000_000_000, 0), t + Duration::from_secs(100));
        proc.set(42, container_process());
        assert_eq!(e.details(&unreadable, t + PROCESS_TTL.saturating_sub(NS)).exe, None, "its entry is still trusted");
        assert_eq!(e.details(&unreadable, t + PROCESS_TTL).exe.as_deref(), Some("/usr/bin/curl"));
    }

    #[test]
    fn an_answer_ends_with_its_cgroup_entry_even_when_its_process_entry_outlives_it() {
        let record = LiveRecord::default();
        record.0.lock().unwrap().insert(77, format!("/system.slice/docker-{ID}.scope"));
        let mut e = live_enricher(&LiveProc::default()).with_cgroup_record(Box::new(record.clone()));
        let t = Instant::now();
        let id = |d: Details| d.container.map(|c| c.id.clone());
        // A sibling's event caches the cgroup before pid 42, gone, is first asked about.
        e.observe(&facts(43, 6_000_000_000, 0), t);
        let gone = facts(42, 5_000_000_000, 0);
        assert_eq!(id(e.details(&gone, t + Duration::from_secs(100))).as_deref(), Some(ID));
        // The kernel's record lets the cgroup go; the cache keeps it for its TTL.
        record.0.lock().unwrap().clear();
        assert_eq!(id(e.details(&gone, t + PROCESS_TTL.saturating_sub(NS))).as_deref(), Some(ID));
        assert_eq!(id(e.details(&gone, t + PROCESS_TTL)), None);
    }
}
