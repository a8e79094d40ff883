//! The deployment files in deploy/ and the Dockerfile: they grant the same least
//! capabilities, the mounts the probe reads, and the systemd unit verifies. The
//! capability set itself is proven on the real kernel: an unprivileged user holding
//! only these capabilities (as file capabilities, the image's way) traces flows of
//! other users' processes, executables included.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use packetless_tests::{kernel_tests_enabled, ProbeProcess};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

/// The least capabilities, without the `CAP_` prefix: tracing (`BPF`, `PERFMON`,
/// `NET_ADMIN`) and enrichment (`SYS_PTRACE`, `DAC_READ_SEARCH`).
const CAPABILITIES: [&str; 5] = ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"];

/// Host paths the probe reads, mounted read-only into containers.
const HOST_MOUNTS: [&str; 3] = ["/sys/kernel/btf", "/sys/fs/cgroup", "/sys/kernel/tracing"];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn expected() -> BTreeSet<String> {
    CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()
}

/// A YAML file as JSON, parsed by Debian's python3-yaml.
fn yaml(relative: &str) -> Option<Value> {
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = match Command::new("python3").args(["-c", script]).arg(repo_file(relative)).output() {
        Ok(out) if out.status.success() => out,
        other => {
            assert!(!in_ci(), "CI=true but python3 with python3-yaml cannot parse {relative}: {other:?}");
            eprintln!("skipping {relative}: python3-yaml unavailable ({other:?})");
            return None;
        }
    };
    Some(serde_json::from_slice(&out.stdout).expect("python prints JSON"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_owned()).collect()
}

#[test]
fn compose_runs_ntopng_and_packetless_with_the_least_capabilities_and_read_only_mounts() {
    let Some(compose) = yaml("deploy/compose.yaml") else { return };
    let services = &compose["services"];
    let ntopng = &services["ntopng"];
    assert!(ntopng["image"].as_str().unwrap().starts_with("ntop/ntopng:"), "ntop's public image");
    let ntopng_args = strings(&ntopng["command"]);
    assert!(ntopng_args.contains("tcp://*:5556c"), "ntopng collects in collector mode: {ntopng_args:?}");
    let probe = &services["packetless"];
    let args: Vec<&str> = probe["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..2], ["--zmq", "tcp://127.0.0.1:5556c"], "packetless connects to ntopng's port");
    assert_eq!((probe["network_mode"].as_str(), probe["pid"].as_str()), (Some("host"), Some("host")));
    assert_eq!(strings(&probe["cap_drop"]), BTreeSet::from(["ALL".to_owned()]));
    assert_eq!(strings(&probe["cap_add"]), expected());
    assert!(probe.get("privileged").is_none_or(|p| p == false), "never privileged");
    let volumes = strings(&probe["volumes"]);
    for path in HOST_MOUNTS.iter().chain(&["/var/run/docker.sock"]) {
        assert!(volumes.contains(&format!("{path}:{path}:ro")), "{path} mounted read-only: {volumes:?}");
    }
}

#[test]
fn daemonset_runs_on_every_node_with_the_least_capabilities_limits_and_the_secret() {
    let Some(ds) = yaml("deploy/daemonset.yaml") else { return };
    assert_eq!((ds["apiVersion"].as_str(), ds["kind"].as_str()), (Some("apps/v1"), Some("DaemonSet")));
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(ds["spec"]["selector"]["matchLabels"], ds["spec"]["template"]["metadata"]["labels"]);
    let container = &spec["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(strings(&security["capabilities"]["drop"]), BTreeSet::from(["ALL".to_owned()]));
    assert_eq!(strings(&security["capabilities"]["add"]), expected());
    assert!(security.get("privileged").is_none_or(|p| p == false), "never privileged");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(container["resources"][kind][resource].is_string(), "{kind}.{resource} set");
        }
    }
    let env = container["env"].as_array().unwrap();
    let from_secret =
        |name: &str| env.iter().any(|e| e["name"] == name && e["valueFrom"]["secretKeyRef"]["name"].is_string());
    assert!(from_secret("ZMQ_ENDPOINT") && from_secret("PACKETLESS_ZMQ_KEY"), "endpoint and key from a Secret");
    assert!(strings(&container["args"]).contains("$(ZMQ_ENDPOINT)"));
    let mounts = container["volumeMounts"].as_array().unwrap();
    for path in HOST_MOUNTS {
        let mount = mounts.iter().find(|m| m["mountPath"] == path).unwrap_or_else(|| panic!("{path} mounted"));
        assert_eq!(mount["readOnly"], true, "{path} read-only");
        let volume = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
        assert_eq!(volume["hostPath"]["path"], path, "{path} from the host");
    }
    // The key variable is the one the CLI reads.
    let help = String::from_utf8(Command::new(EXE).args(["run", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("PACKETLESS_ZMQ_KEY"), "run --help names the key's variable");
}

#[test]
fn dockerfile_and_systemd_unit_grant_the_same_capabilities() {
    let dockerfile = read("Dockerfile");
    let setcap = dockerfile.lines().find(|l| l.contains("setcap ")).expect("the Dockerfile sets file capabilities");
    let spec = setcap.split_whitespace().find(|w| w.starts_with("cap_")).unwrap();
    let (list, flags) = spec.split_once('+').unwrap();
    assert_eq!(flags, "p", "permitted only: the binary starts with whatever subset the engine grants");
    let file_caps: BTreeSet<String> = list.split(',').map(|c| c.trim_start_matches("cap_").to_uppercase()).collect();
    let mut with_old_engines = expected();
    with_old_engines.insert("SYS_ADMIN".to_owned());
    assert_eq!(file_caps, with_old_engines, "Dockerfile setcap: the least set, and SYS_ADMIN for old engines");
    let run_caps: BTreeSet<String> =
        dockerfile.split("--cap-add=").skip(1).map(|rest| rest.split_whitespace().next().unwrap().to_owned()).collect();
    assert_eq!(run_caps, expected(), "the docker run in the Dockerfile's header");
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/packetless\", \"run\"]"));
    assert!(dockerfile.contains("ARG BUILDER=") && dockerfile.contains("ARG RUNTIME="), "bases are arguments");

    let unit = read("deploy/packetless.service");
    for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
        let line = unit.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in the unit"));
        let caps: BTreeSet<String> =
            line[key.len()..].split_whitespace().map(|c| c.trim_start_matches("CAP_").to_owned()).collect();
        assert_eq!(caps, expected(), "{key}");
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        assert!(!in_ci(), "CI=true but systemd-analyze is missing (Debian package systemd)");
        eprintln!("skipping: systemd-analyze not installed");
        return;
    };
    assert!(probe.status.success());
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = read("deploy/packetless.service").replace("/usr/local/bin/packetless", EXE);
    let dir = std::env::temp_dir().join(format!("pl-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("packetless.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.trim().is_empty(), "systemd-analyze verify: {report}");
}

#[test]
fn an_unprivileged_user_with_the_file_capabilities_traces_other_users_processes() {
    if !kernel_tests_enabled("least capabilities") {
        return;
    }
    // A copy carries the file capabilities, as the image's binary does; nobody runs it.
    let dir = std::env::temp_dir().join(format!("pl-caps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("packetless");
    std::fs::copy(EXE, &exe).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let caps = CAPABILITIES.map(|c| format!("cap_{}", c.to_lowercase())).join(",");
    // Permitted only, as in the image: the probe raises them itself.
    let status = Command::new("setcap").arg(format!("{caps}+p")).arg(&exe).status().expect("setcap (libcap2-bin)");
    assert!(status.success(), "setcap failed");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&exe);
    cmd.args(["run", "--no-docker", "--pair-window", "200ms"]);
    let mut probe = ProbeProcess::start_command(cmd);

    // A connection made by root (this test), seen by nobody with its executable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    drop(listener.accept().unwrap());
    drop(listener);
    let line = probe.line_where("root's flow with its executable", |l| {
        let v: Value = serde_json::from_str(l).unwrap_or_default();
        v["kind"] == "flow" && v["dst_port"] == port && v["src_process"]["exe"].is_string()
    });
    let flow: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(flow["src_process"]["uid"], 0);
    assert_eq!(flow["src_process"]["exe"].as_str(), std::env::current_exe().unwrap().to_str());
    assert_eq!(probe.terminate(), Some(0));
    let log = probe.stderr();
    assert!(!log.contains("missing CAP_"), "no capability reported missing: {log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
