//! Records as packetless's own protobuf schema (`wire/proto/packetless.proto`): the
//! same fields as the JSON lines, for consumers other than ntopng.

use packetless_wire::proto::v1;

use crate::classify::Direction;
use crate::flow::{EndReason, FlowState, Process, Record};
use crate::sink::json::RunStats;
use crate::sink::timefmt::epoch_seconds;
use crate::source::Proto;

fn proto(p: Proto) -> i32 {
    match p {
        Proto::Tcp => v1::Proto::Tcp,
        Proto::Udp => v1::Proto::Udp,
    }
    .into()
}

fn state(s: FlowState) -> i32 {
    match s {
        FlowState::Open => v1::FlowState::Open,
        FlowState::Update => v1::FlowState::Update,
        FlowState::Closed => v1::FlowState::Closed,
    }
    .into()
}

fn process(p: &Process) -> v1::Process {
    v1::Process {
        pid: p.pid,
        tid: p.tid,
        comm: p.comm.to_string(),
        uid: p.uid,
        gid: p.gid,
        cgroup_id: p.cgroup_id,
        netns: p.netns,
        exe: p.exe().map(str::to_owned),
        cmdline: p.cmdline().map(str::to_owned),
        user: p.user().map(str::to_owned),
        group: p.group().map(str::to_owned),
        ppid: p.ppid,
        parent_comm: p.parent_comm.map(|c| c.to_string()),
        parent_exe: p.parent_exe().map(str::to_owned),
        container: p.container().map(|c| v1::Container {
            id: c.id.clone(),
            runtime: c.runtime.to_owned(),
            name: c.name.clone(),
            image: c.image.clone(),
            pod: c.pod.clone(),
            namespace: c.namespace.clone(),
            k8s_container: c.k8s_container.clone(),
            pod_uid: c.pod_uid.clone(),
        }),
    }
}

/// A record in the protobuf schema.
#[must_use]
pub fn record(r: &Record) -> v1::Record {
    use v1::record::Kind;
    let kind = match r {
        Record::Flow(f) => Kind::Flow(v1::Flow {
            flow_id: f.flow_id.to_string(),
            proto: proto(f.proto),
            ip_version: u32::from(f.ip_version),
            src_ip: f.src_ip.to_string(),
            src_port: u32::from(f.src_port),
            dst_ip: f.dst_ip.to_string(),
            dst_port: u32::from(f.dst_port),
            direction: match f.direction {
                Direction::Listen => v1::Direction::Listen,
                Direction::Local => v1::Direction::Local,
                Direction::Inbound => v1::Direction::Inbound,
                Direction::Outbound => v1::Direction::Outbound,
            }
            .into(),
            state: state(f.state),
            first_seen: epoch_seconds(f.first_seen),
            last_seen: epoch_seconds(f.last_seen),
            src_bytes: f.src_bytes,
            dst_bytes: f.dst_bytes,
            src_packets: f.src_packets,
            dst_packets: f.dst_packets,
            retransmits: f.retransmits,
            src_retransmits: f.src_retransmits,
            dst_retransmits: f.dst_retransmits,
            srtt_us: f.srtt_us,
            connect_latency_us: f.connect_latency_us,
            end_reason: f
                .end_reason
                .map_or(v1::EndReason::Unspecified, |e| match e {
                    EndReason::Fin => v1::EndReason::Fin,
                    EndReason::Rst => v1::EndReason::Rst,
                    EndReason::Timeout => v1::EndReason::Timeout,
                    EndReason::Close => v1::EndReason::Close,
                    EndReason::FailedConnect => v1::EndReason::FailedConnect,
                    EndReason::Gone => v1::EndReason::Gone,
                })
                .into(),
            connect_error: f.connect_error.clone(),
            netns: f.netns,
            src_process: f.src_process.as_ref().map(process),
            dst_process: f.dst_process.as_ref().map(process),
        }),
        Record::Listen(l) => Kind::Listen(v1::Listen {
            proto: proto(l.proto),
            ip_version: u32::from(l.ip_version),
            ip: l.ip.to_string(),
            port: u32::from(l.port),
            netns: l.netns,
            state: state(l.state),
            first_seen: epoch_seconds(l.first_seen),
            last_seen: epoch_seconds(l.last_seen),
            process: l.process.as_ref().map(process),
        }),
        Record::Dependency(d) => Kind::Dependency(v1::Dependency {
            proto: proto(d.proto),
            ip: d.ip.to_string(),
            port: u32::from(d.port),
            first_seen: epoch_seconds(d.first_seen),
            last_seen: epoch_seconds(d.last_seen),
            flows: d.flows,
            last_process: d.last_process.as_ref().map(process),
        }),
        Record::LocalIp(l) => Kind::LocalIp(v1::LocalIp {
            ip: l.ip.to_string(),
            first_seen: epoch_seconds(l.first_seen),
            last_seen: epoch_seconds(l.last_seen),
        }),
    };
    v1::Record { kind: Some(kind) }
}

/// The probe's counters as a protobuf record.
#[must_use]
pub fn stats(s: &RunStats) -> v1::Record {
    v1::Record {
        kind: Some(v1::record::Kind::Stats(v1::Stats {
            kernel: s.pipeline.kernel.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            received: s.pipeline.received,
            decode_errors: s.pipeline.decode_errors,
            channel_full: s.pipeline.channel_full,
            flows_evicted: s.flows.flows_evicted,
            udp_peer_unknown: s.flows.udp_peer_unknown,
            flow_records: s.flows.flow_records,
            output_dropped: s.output_dropped,
            tcp_closes_missed: s.flows.tcp_closes_missed,
            tcp_events_after_gone: s.flows.tcp_events_after_gone,
        })),
    }
}
