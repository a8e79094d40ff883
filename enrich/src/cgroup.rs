//! From a cgroup path to what runs there: a container (runtime, id, Kubernetes pod
//! uid), a systemd service, or the host.
//!
//! Covers cgroup v1 and v2 paths, cgroupfs and systemd drivers: Docker, containerd
//! (CRI and its `cri-containerd:` cgroupfs form), CRI-O, podman (rootful and
//! rootless), Kubernetes pod slices, LXC, systemd services, host processes. Helper
//! processes of runtimes (`crio-conmon-`, `libpod-conmon-`) are not containers.
//! Parsing is total: any input gives an answer, never a panic.

/// Container runtime, as named in records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (also dockershim under Kubernetes).
    Docker,
    /// containerd (Kubernetes CRI).
    Containerd,
    /// CRI-O.
    Crio,
    /// Podman.
    Podman,
    /// LXC / LXD.
    Lxc,
    /// A Kubernetes container whose runtime the path does not name.
    Kubernetes,
}

impl Runtime {
    /// Lowercase name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::Crio => "cri-o",
            Self::Podman => "podman",
            Self::Lxc => "lxc",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// What a cgroup path says about its processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupOwner {
    /// A container.
    Container {
        /// Its runtime.
        runtime: Runtime,
        /// Container id (64 hex digits for OCI runtimes; the name for LXC).
        id: String,
        /// Kubernetes pod uid, when under a pod's cgroup.
        pod_uid: Option<String>,
    },
    /// A systemd service (unit name).
    Service(String),
    /// The host (root cgroup, init, user sessions, anything else).
    Host,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `kubepods-burstable-pod1234_abcd.slice` or `pod1234-abcd`: the pod uid, with
/// dashes.
fn pod_uid(segment: &str) -> Option<String> {
    let s = segment.split(':').next().unwrap_or(segment);
    let s = s.strip_suffix(".slice").unwrap_or(s);
    let uid = s.rsplit_once("-pod").map(|(_, u)| u).or_else(|| s.strip_prefix("pod"))?;
    let uid = uid.replace('_', "-");
    let valid = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then_some(uid)
}

/// systemd escapes `-` in unit names as `\x2d`.
fn unescape_unit(s: &str) -> String {
    s.replace("\\x2d", "-")
}

/// What one path segment holds.
enum Segment {
    /// A container id, with the runtime its prefix names.
    Container(Runtime, String),
    /// A runtime's helper process (conmon), which sits beside a container.
    Helper,
    /// Anything else.
    Other,
}

/// Reads one path segment.
fn container_in(segment: &str) -> Segment {
    let s = segment.strip_suffix(".scope").unwrap_or(segment);
    if s.starts_with("crio-conmon-") || s.starts_with("libpod-conmon-") {
        return Segment::Helper;
    }
    let found = |runtime, id: &str| {
        if is_container_id(id) {
            Segment::Container(runtime, id.to_owned())
        } else {
            Segment::Other
        }
    };
    let prefixed = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, runtime) in prefixed {
        if let Some(id) = s.strip_prefix(prefix) {
            return found(runtime, id);
        }
    }
    // Runtimes' cgroupfs drivers under systemd-style names: "<pod slice>:<runtime>:<id>".
    for (infix, runtime) in
        [(":cri-containerd:", Runtime::Containerd), (":docker:", Runtime::Docker), (":crio:", Runtime::Crio)]
    {
        if let Some((_, id)) = s.rsplit_once(infix) {
            return found(runtime, id);
        }
    }
    found(Runtime::Kubernetes, s)
}

/// Classifies a cgroup path (`/proc/<pid>/cgroup`'s path part, or a path below the
/// cgroup mount).
#[must_use]
pub fn parse_cgroup_path(path: &str) -> CgroupOwner {
    let path = path.trim();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let pod = segments.iter().find_map(|s| pod_uid(s));
    // The innermost container wins (containers nested in containers).
    for (i, segment) in segments.iter().enumerate().rev() {
        match container_in(segment) {
            Segment::Container(runtime, id) => {
                let runtime = match runtime {
                    // A bare id directly under /docker/ is Docker's cgroupfs driver.
                    Runtime::Kubernetes if i > 0 && segments[i - 1] == "docker" => Runtime::Docker,
                    Runtime::Kubernetes if pod.is_none() => {
                        if i > 0 && segments[i - 1].starts_with("libpod_parent") {
                            Runtime::Podman
                        } else {
                            continue;
                        }
                    }
                    r => r,
                };
                return CgroupOwner::Container { runtime, id, pod_uid: pod };
            }
            Segment::Helper => return CgroupOwner::Host,
            Segment::Other => {}
        }
    }
    for (i, segment) in segments.iter().enumerate() {
        let lxc_name =
            if *segment == "lxc" { segments.get(i + 1).copied() } else { segment.strip_prefix("lxc.payload.") };
        if let Some(name) = lxc_name.filter(|n| !n.is_empty()) {
            return CgroupOwner::Container { runtime: Runtime::Lxc, id: name.to_owned(), pod_uid: None };
        }
    }
    if let Some(unit) = segments.last().filter(|s| s.ends_with(".service")) {
        return CgroupOwner::Service(unescape_unit(unit));
    }
    CgroupOwner::Host
}

/// The path of a `/proc/<pid>/cgroup` text that says the most: the v2 path
/// (`0::/path`) if it names a container, else the first path of any hierarchy that
/// does (hybrid hosts may place containers in v1 hierarchies only), else the v2
/// path, else the first path.
#[must_use]
pub fn path_from_proc_cgroup(text: &str) -> Option<String> {
    let (mut v2, mut container, mut first) = (None, None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(hierarchy), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let names_container = matches!(parse_cgroup_path(path), CgroupOwner::Container { .. });
        if hierarchy == "0" {
            if names_container {
                return Some(path.to_owned());
            }
            v2 = Some(path.to_owned());
        } else if names_container && container.is_none() {
            container = Some(path.to_owned());
        }
        first.get_or_insert_with(|| path.to_owned());
    }
    container.or(v2).or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4c1a9e5b7d2c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

    fn container(runtime: Runtime, pod: Option<&str>) -> CgroupOwner {
        CgroupOwner::Container { runtime, id: ID.to_owned(), pod_uid: pod.map(str::to_owned) }
    }

    #[test]
    fn corpus() {
        let uid_u = UID.replace('-', "_");
        let cases: Vec<(String, CgroupOwner)> = vec![
            // Docker
            (format!("/docker/{ID}"), container(Runtime::Docker, None)),
            (format!("/system.slice/docker-{ID}.scope"), container(Runtime::Docker, None)),
            // containerd / CRI, systemd and cgroupfs drivers
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_u}.slice/cri-containerd-{ID}.scope"),
                container(Runtime::Containerd, Some(UID)),
            ),
            (
                format!("/system.slice/containerd.service/kubepods-besteffort-pod{uid_u}.slice:cri-containerd:{ID}"),
                container(Runtime::Containerd, Some(UID)),
            ),
            // CRI-O, and its conmon helper
            (
                format!("/kubepods.slice/kubepods-pod{uid_u}.slice/crio-{ID}.scope"),
                container(Runtime::Crio, Some(UID)),
            ),
            (format!("/kubepods.slice/kubepods-pod{uid_u}.slice/crio-conmon-{ID}.scope"), CgroupOwner::Host),
            // podman, rootful and rootless, and its conmon
            (format!("/machine.slice/libpod-{ID}.scope"), container(Runtime::Podman, None)),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
                container(Runtime::Podman, None),
            ),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), CgroupOwner::Host),
            (format!("/libpod_parent/libpod-{ID}"), container(Runtime::Podman, None)),
            // Kubernetes pods, cgroupfs driver (v1 and v2)
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), container(Runtime::Kubernetes, Some(UID))),
            (format!("/kubepods/pod{UID}/{ID}"), container(Runtime::Kubernetes, Some(UID))),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_u}.slice/docker-{ID}.scope"),
                container(Runtime::Docker, Some(UID)),
            ),
            // LXC / LXD
            ("/lxc/web01".to_owned(), CgroupOwner::Container { runtime: Runtime::Lxc, id: "web01".into(), pod_uid: None }),
            ("/lxc.payload.db01/system.slice".to_owned(), CgroupOwner::Container { runtime: Runtime::Lxc, id: "db01".into(), pod_uid: None }),
            // systemd services and the host
            ("/system.slice/nginx.service".to_owned(), CgroupOwner::Service("nginx.service".into())),
            ("/system.slice/systemd\\x2dresolved.service".to_owned(), CgroupOwner::Service("systemd-resolved.service".into())),
            ("/".to_owned(), CgroupOwner::Host),
            ("/init.scope".to_owned(), CgroupOwner::Host),
            ("/user.slice/user-1000.slice/session-3.scope".to_owned(), CgroupOwner::Host),
        ];
        for (path, want) in cases {
            assert_eq!(parse_cgroup_path(&path), want, "{path}");
        }
    }

    #[test]
    fn garbage_is_the_host_never_a_panic() {
        for junk in
            ["", "////", "docker", "/docker/", "/docker/xyz", "\u{0}\u{1}", "/kubepods/podZZ/abc", &"a".repeat(10_000)]
        {
            assert_eq!(parse_cgroup_path(junk), CgroupOwner::Host, "{junk:?}");
        }
        assert_eq!(parse_cgroup_path(&format!("/docker/{}", &ID[..63])), CgroupOwner::Host, "63 hex digits");
    }

    #[test]
    fn proc_cgroup_files_give_the_v2_path_or_a_container_path() {
        let v2 = format!("12:cpu,cpuacct:/docker/{ID}\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(path_from_proc_cgroup(&v2).unwrap(), format!("/system.slice/docker-{ID}.scope"));
        let v1 = format!("12:pids:/\n11:memory:/docker/{ID}\n");
        assert_eq!(path_from_proc_cgroup(&v1).unwrap(), format!("/docker/{ID}"));
        let hybrid = format!("11:memory:/docker/{ID}\n0::/\n");
        assert_eq!(path_from_proc_cgroup(&hybrid).unwrap(), format!("/docker/{ID}"), "v1-only container");
        assert_eq!(path_from_proc_cgroup("1:cpu:/\n0::/user.slice\n").unwrap(), "/user.slice");
        assert_eq!(path_from_proc_cgroup("garbage\n"), None);
    }
}
