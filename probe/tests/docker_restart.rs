//! The Docker engine stops during a run: the probe neither crashes nor stops
//! reporting flows, and names containers again once the engine is back. A test
//! binary of its own, since it stops the engine other tests use.

use packetless_tests::docker::{docker_tests_enabled, start_engine, stop_engine, test_image, Container};
use packetless_tests::{Peer, ProbeProcess};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Runs a container making one TCP exchange on its loopback and returns the name
/// the probe reports for it.
fn named_container_flow(probe: &mut ProbeProcess, label: &str) -> (Container, Value) {
    let c = Container::run(
        label,
        &[],
        "nc -l -p 8080 >/dev/null & until echo hello | nc -w 1 127.0.0.1 8080; do sleep 0.05; done; wait",
    );
    assert_eq!(c.wait(), 0);
    let line = probe.line_where(&format!("a named flow of {}", c.name), |l| {
        let v = parse(l);
        v["kind"] == "flow" && v["end_reason"] == "fin" && v["src_process"]["container"]["name"] == c.name.as_str()
    });
    let flow = parse(&line);
    (c, flow)
}

#[test]
fn engine_stopped_mid_run_leaves_the_probe_running_and_names_return_after_restart() {
    if !docker_tests_enabled("docker: engine restart") {
        return;
    }
    test_image();
    let mut probe = ProbeProcess::start(EXE, &["run", "--pair-window", "200ms"]);
    probe.wait_for_stderr("following the Docker engine", 1);
    let (before, _) = named_container_flow(&mut probe, "pl-before");
    drop(before);

    stop_engine();
    // Flows keep coming while the engine is away.
    let server = Peer::spawn(None, &["tcp-server", "127.0.0.1:0", "10", "10"]);
    let client = Peer::spawn(None, &["tcp-client", &format!("127.0.0.1:{}", server.port), "10", "10"]);
    let port = server.port;
    client.finish();
    server.finish();
    probe.line_where("a flow while the engine is stopped", |l| {
        let v = parse(l);
        v["kind"] == "flow" && v["state"] == "closed" && v["dst_port"] == port
    });

    start_engine();
    // Records are made once: wait for the probe to follow the engine again before
    // the container whose name must come back.
    probe.wait_for_stderr("following the Docker engine", 2);
    let (after, flow) = named_container_flow(&mut probe, "pl-after");
    assert_eq!(flow["src_process"]["container"]["id"], after.id.as_str());
    assert_eq!(probe.terminate(), Some(0), "the probe ran through the engine's absence");
    let log = probe.stderr();
    assert!(log.contains("lost the Docker engine") || log.contains("closed its event stream"), "the loss is reported");
}
