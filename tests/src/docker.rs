//! Containers for the tests, on the real Docker engine: an image built locally from
//! Debian's busybox-static (no registry is reachable), containers removed on drop.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The test image: busybox with an `/etc/passwd` whose user `pluser` (4321) and
/// group `plgroup` (4321) exist nowhere on the host.
pub const IMAGE: &str = "packetless-test/busybox:1";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether Docker tests can run: root (for the kernel side) and an engine that
/// answers. Under `CI=true` a missing engine fails the test.
#[must_use]
pub fn docker_tests_enabled(test: &str) -> bool {
    if !crate::kernel_tests_enabled(test) {
        return false;
    }
    let answers = engine_answers();
    if answers {
        return true;
    }
    assert!(!in_ci(), "{test}: CI=true but the Docker engine does not answer (`docker info` failed)");
    eprintln!("skipping {test}: no Docker engine answers (start dockerd)");
    false
}

fn run(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds [`IMAGE`] once per test process (and reuses one already built).
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exists =
            Command::new("docker").args(["image", "inspect", IMAGE]).output().is_ok_and(|o| o.status.success());
        if exists {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox-static is installed (apt-get install busybox-static)");
        let root = std::env::temp_dir().join(format!("pl-rootfs-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "nc", "sleep", "echo", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\npluser:x:4321:4321:pl user:/:/bin/sh\n")
            .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nplgroup:x:4321:\n").unwrap();
        let mut tar =
            Command::new("tar").arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped()).spawn().unwrap();
        let status = Command::new("docker")
            .args(["import", "-", IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(tar.wait().unwrap().success(), "tar of the busybox rootfs failed");
        assert!(status.success(), "docker import of the busybox rootfs failed");
        std::fs::remove_dir_all(root).unwrap();
    });
    IMAGE
}

/// A container started detached; removed (forcibly) on drop.
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Name.
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME OPTIONS IMAGE sh -c SCRIPT`.
    #[must_use]
    pub fn run(name: &str, options: &[&str], script: &str) -> Self {
        let name = format!("{name}-{}", std::process::id());
        let image = test_image();
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(options);
        args.extend_from_slice(&[image, "sh", "-c", script]);
        let id = run(&args);
        Self { id, name }
    }

    /// Waits for the container to exit and returns its exit code.
    #[must_use]
    pub fn wait(&self) -> i32 {
        run(&["wait", &self.id]).parse().expect("docker wait prints the exit code")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// The IPv4 address of the `docker0` bridge (the host, seen from containers).
#[must_use]
pub fn bridge_ip() -> String {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]).output().expect("ip runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .expect("docker0 has an IPv4 address")
        .to_owned()
}

/// Stops the Docker engine (SIGTERM to the pid in `/var/run/docker.pid`) and waits
/// until it no longer answers.
pub fn stop_engine() {
    let pid: i32 = std::fs::read_to_string("/var/run/docker.pid")
        .expect("/var/run/docker.pid (dockerd started by scripts/setup)")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: kill with a pid read from dockerd's pid file.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for_engine(false);
    // Fully gone (its containerd too) before anyone starts another.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(std::time::Instant::now() < deadline, "dockerd {pid} did not exit");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Starts the Docker engine the way scripts/setup does (detached, in its own
/// session, logging to /var/log/packetless-dockerd.log) and waits until it answers.
pub fn start_engine() {
    let status = Command::new("sh")
        .args(["-c", "setsid dockerd >>/var/log/packetless-dockerd.log 2>&1 </dev/null &"])
        .status()
        .expect("sh runs");
    assert!(status.success(), "starting dockerd failed");
    wait_for_engine(true);
}

/// Whether `docker info` succeeds.
fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for_engine(up: bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answers = engine_answers();
        if answers == up {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Docker engine did not {}",
            if up { "start" } else { "stop" }
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
