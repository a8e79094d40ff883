//! Containers on the real Docker engine: flows made inside containers carry the
//! container's id (as `docker inspect` has it), name, image, Kubernetes pod and
//! namespace, and users named by the container's own `/etc/passwd`.

use packetless_tests::docker::{bridge_ip, docker_tests_enabled, test_image, Container};
use packetless_tests::{free_port, LineProcess, Peer, ProbeProcess};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// `packetless run`, once it follows the Docker engine (records are made once: a
/// container named late would stay unnamed).
fn run_probe() -> ProbeProcess {
    let probe = ProbeProcess::start(EXE, &["run", "--pair-window", "200ms"]);
    probe.wait_for_stderr("following the Docker engine", 1);
    probe
}

/// The completed (FIN) flow to `port` whose client runs in container `id` (clients
/// may have retried while their server started).
fn container_flow(probe: &mut ProbeProcess, id: &str, port: u16) -> Value {
    let line = probe.line_where(&format!("the completed flow to port {port} from container {id}"), |l| {
        let v = parse(l);
        v["kind"] == "flow"
            && v["end_reason"] == "fin"
            && v["dst_port"] == port
            && v["src_process"]["container"]["id"] == id
    });
    parse(&line)
}

/// A client and a server on the container's own loopback, the client retrying until
/// the server listens; the container then stays a second, as containers do, which
/// lets the probe read its files after the short-lived nc processes are gone.
const LOOPBACK_EXCHANGE: &str =
    "nc -l -p 8080 >/dev/null & until echo hello | nc -w 1 127.0.0.1 8080; do sleep 0.05; done; wait; sleep 1";

#[test]
fn container_loopback_flow_names_the_container_and_its_pod() {
    if !docker_tests_enabled("docker: container loopback") {
        return;
    }
    test_image();
    let mut probe = run_probe();
    let c = Container::run(
        "pl-api",
        &[
            "--label",
            "io.kubernetes.pod.name=api-7d9f",
            "--label",
            "io.kubernetes.pod.namespace=prod",
            "--label",
            "io.kubernetes.container.name=api",
        ],
        LOOPBACK_EXCHANGE,
    );
    assert_eq!(c.wait(), 0);
    let flow = container_flow(&mut probe, &c.id, 8080);
    assert_eq!(flow["direction"], "local");
    for end in ["src_process", "dst_process"] {
        let container = &flow[end]["container"];
        assert_eq!(container["id"], c.id.as_str(), "{end}: the id docker inspect reports");
        assert_eq!(container["runtime"], "docker");
        assert_eq!(container["name"], c.name.as_str());
        assert_eq!(container["image"], test_image());
        assert_eq!(container["pod"], "api-7d9f");
        assert_eq!(container["namespace"], "prod");
        assert_eq!(container["k8s_container"], "api");
    }
    assert_eq!(flow["src_process"]["comm"], "nc");
    assert_eq!(flow["src_process"]["user"], "root");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn container_connecting_to_a_host_server_is_one_record_with_both_sides() {
    if !docker_tests_enabled("docker: container to host") {
        return;
    }
    test_image();
    let mut probe = run_probe();
    let host = bridge_ip();
    let server = Peer::spawn(None, &["tcp-sink", &format!("{host}:0")]);
    let script = format!("echo hello | nc -w 1 {host} {}", server.port);
    let c = Container::run("pl-client", &[], &script);
    assert_eq!(c.wait(), 0);
    let (spid, port) = (server.pid, server.port);
    server.finish();
    let flow = container_flow(&mut probe, &c.id, port);
    assert_eq!(flow["direction"], "local", "both ends are on this host");
    assert_eq!(flow["dst_process"]["pid"], spid);
    assert!(flow["dst_process"].get("container").is_none(), "the server runs on the host");
    assert_eq!(flow["src_bytes"], 6);
    assert_ne!(flow["src_process"]["netns"], flow["dst_process"]["netns"], "two network namespaces");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn a_container_user_unknown_to_the_host_is_named_from_the_container() {
    if !docker_tests_enabled("docker: container user") {
        return;
    }
    test_image();
    let mut probe = run_probe();
    let c = Container::run("pl-user", &["--user", "4321:4321"], LOOPBACK_EXCHANGE);
    assert_eq!(c.wait(), 0);
    let flow = container_flow(&mut probe, &c.id, 8080);
    let client = &flow["src_process"];
    assert_eq!((client["uid"].as_u64(), client["gid"].as_u64()), (Some(4321), Some(4321)));
    assert_eq!(client["user"], "pluser", "from the container's /etc/passwd; the host has no uid 4321");
    assert_eq!(client["group"], "plgroup");
    assert_eq!(probe.terminate(), Some(0));
}

/// The probe itself in a container, as deployed: not privileged, only the least
/// capabilities (this engine predates `CAP_BPF` and `CAP_PERFMON`, so `CAP_SYS_ADMIN`
/// stands for both, with Docker's default seccomp profile), the host's pid and
/// network namespaces, and the documented read-only mounts. It names another
/// container's flows. The binary and the host's shared libraries are mounted into
/// the test image, which has neither.
#[test]
fn the_probe_in_a_least_privileged_container_names_another_containers_flows() {
    if !docker_tests_enabled("docker: containerised probe") {
        return;
    }
    let image = test_image();
    let name = format!("pl-probe-{}", std::process::id());
    let _cleanup = RemoveOnDrop(name.clone());
    let mut cmd = least_privileged_run(&name);
    for lib in ["/lib", "/lib64", "/usr/lib"] {
        cmd.args(["-v", &format!("{lib}:{lib}:ro")]);
    }
    cmd.args(["-v", &format!("{EXE}:/usr/local/bin/packetless:ro"), image]);
    cmd.args(["/usr/local/bin/packetless", "run", "--pair-window", "200ms"]);
    let mut probe = ProbeProcess::start_command(cmd);
    probe.wait_for_stderr("following the Docker engine", 1);

    let c = Container::run("pl-seen", &[], LOOPBACK_EXCHANGE);
    assert_eq!(c.wait(), 0);
    let flow = container_flow(&mut probe, &c.id, 8080);
    assert_eq!(flow["src_process"]["container"]["name"], c.name.as_str());
    assert_eq!(flow["src_process"]["container"]["image"], image, "the engine is asked through the mounted socket");
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.HostConfig.Privileged}}", &name])
        .output()
        .expect("docker inspect");
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "false");
    assert_eq!(probe.terminate(), Some(0), "docker stop ends the probe cleanly");
    assert!(!probe.stderr().contains("missing CAP_"), "no capability reported missing");
}

/// The image as the Dockerfile builds it (from local Debian bases: no registry is
/// needed), run as the README documents for engines before Docker 23.0, as its
/// unprivileged user, not privileged: it exports another container's flow, with the container's id, to a
/// ZMQ subscriber, and prints it with the container's name.
#[test]
fn the_image_runs_least_privileged_and_exports_another_containers_flows() {
    if !docker_tests_enabled("docker: the image") {
        return;
    }
    test_image();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/build-image");
    let status = std::process::Command::new(script).arg("packetless:test").status().expect("scripts/build-image runs");
    assert!(status.success(), "scripts/build-image failed");

    let port = free_port();
    let mut collector = LineProcess::collector(&["--bind", &format!("tcp://127.0.0.1:{port}")]);
    let name = format!("pl-image-{}", std::process::id());
    let _cleanup = RemoveOnDrop(name.clone());
    let socket_group = std::fs::metadata("/var/run/docker.sock").map(|m| std::os::unix::fs::MetadataExt::gid(&m));
    let group = socket_group.expect("the engine's socket").to_string();
    let mut cmd = least_privileged_run(&name);
    cmd.args(["--group-add", &group]);
    cmd.args(["packetless:test", "--zmq", &format!("tcp://127.0.0.1:{port}c"), "--output", "json"]);
    cmd.args(["--pair-window", "200ms"]);
    let mut probe = ProbeProcess::start_command(cmd);
    probe.wait_for_stderr("following the Docker engine", 1);

    let c = Container::run("pl-exported", &[], LOOPBACK_EXCHANGE);
    assert_eq!(c.wait(), 0);
    let printed = container_flow(&mut probe, &c.id, 8080);
    assert_eq!(printed["src_process"]["container"]["name"], c.name.as_str());
    let (dst_port, container_id) = ("11", "58030");
    collector.line_where("the container's flow exported over ZMQ", |l| {
        let v: Value = serde_json::from_str(l).unwrap_or_default();
        v["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r[dst_port] == 8080 && r[container_id] == c.id.as_str()))
    });
    assert_eq!(probe.terminate(), Some(0), "docker stop ends the probe cleanly");
}

/// `docker run` of a probe container named `name` as the README documents it for
/// engines before Docker 23.0: host pid and network namespaces, every capability
/// dropped but the least set (`SYS_ADMIN` standing for `BPF` and `PERFMON`), and the
/// host's views mounted read-only. Image and arguments follow.
fn least_privileged_run(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("docker");
    cmd.args(["run", "--rm", "--name", name, "--pid=host", "--network=host", "--cap-drop=ALL"]);
    for cap in ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"] {
        cmd.arg(format!("--cap-add={cap}"));
    }
    for path in ["/sys/kernel/btf", "/sys/fs/cgroup", "/sys/kernel/tracing", "/var/run/docker.sock"] {
        cmd.args(["-v", &format!("{path}:{path}:ro")]);
    }
    cmd
}

/// Removes a container however the test ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}
