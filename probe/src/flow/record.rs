//! The records the flow stage emits: flows, listening sockets, and the two lists of
//! the dependency map (outbound destinations, local addresses). Field names are the
//! public JSON contract (README, "Records of packetless run").

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::classify::Direction;
use crate::sink::timefmt::epoch_seconds;
use crate::source::{Comm, ExeName, Owner, Proto};
use packetless_enrich::Shared;

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(epoch_seconds(*t))
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's serialize_with passes a reference")]
fn ser_proto<S: Serializer>(p: &Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// A process at one end of a flow or behind a listening socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread that created, connected or accepted the socket.
    pub tid: u32,
    /// Command name.
    pub comm: Comm,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Network namespace inode of its socket.
    pub netns: u32,
    /// Executable: its path from procfs, else the basename the kernel recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Shared>,
    /// Command line (arguments joined by spaces, at most 4096 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<Shared>,
    /// User name, from the process's own `/etc/passwd` (the container's, in one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Shared>,
    /// Group name, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Shared>,
    /// Parent process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// Parent's command name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_comm: Option<Comm>,
    /// Parent's executable path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_exe: Option<Shared>,
    /// The container the process runs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<std::sync::Arc<packetless_enrich::Container>>,
    /// Start time (`CLOCK_BOOTTIME` ns): with the pid, the key of enrichment caches.
    #[serde(skip)]
    pub start_ns: u64,
    /// Exec counter of the process (see [`Owner::exec_id`]): part of that key.
    #[serde(skip)]
    pub exec_id: u32,
    /// The executable's basename as the kernel recorded it: `exe` when enrichment
    /// finds no path.
    #[serde(skip)]
    pub kernel_exe: ExeName,
}

impl Process {
    /// The process of a socket owner, with what the kernel recorded; its `exe` is
    /// set by [`Process::enrich`].
    #[must_use]
    pub fn from_owner(owner: &Owner, netns: u32) -> Self {
        Self {
            pid: owner.pid,
            tid: owner.tid,
            comm: owner.comm,
            uid: owner.uid,
            gid: owner.gid,
            cgroup_id: owner.cgroup_id,
            netns,
            exe: None,
            cmdline: None,
            user: None,
            group: None,
            ppid: (owner.ppid != 0).then_some(owner.ppid),
            parent_comm: (!owner.parent_comm.is_empty()).then_some(owner.parent_comm),
            parent_exe: None,
            container: None,
            start_ns: owner.start_ns,
            exec_id: owner.exec_id,
            kernel_exe: owner.exe,
        }
    }

    /// The kernel facts enrichment keys on.
    #[must_use]
    pub fn facts(&self) -> packetless_enrich::KernelFacts {
        packetless_enrich::KernelFacts {
            pid: self.pid,
            start_ns: self.start_ns,
            exec_id: self.exec_id,
            uid: self.uid,
            gid: self.gid,
            cgroup_id: self.cgroup_id,
            ppid: self.ppid.unwrap_or(0),
        }
    }

    /// Takes what enrichment found; kernel-recorded values stay where it found nothing.
    pub fn enrich(&mut self, details: packetless_enrich::Details) {
        if details.exe.is_some() {
            self.exe = details.exe;
        } else if self.exe.is_none() && !self.kernel_exe.is_empty() {
            self.exe = Some(Shared::from(self.kernel_exe.as_str()));
        }
        self.cmdline = details.cmdline.or(self.cmdline.take());
        self.user = details.user.or(self.user.take());
        self.group = details.group.or(self.group.take());
        self.parent_exe = details.parent_exe.or(self.parent_exe.take());
        self.container = details.container.or(self.container.take());
    }
}

/// Where a flow stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowState {
    /// First record of a flow that is still open.
    Open,
    /// Periodic (or final, at shutdown) record of a flow still open; counters cumulative.
    Update,
    /// Last record: the flow ended.
    Closed,
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Orderly close (FIN).
    Fin,
    /// Aborted (RST, or closed with unread data).
    Rst,
    /// No traffic for the idle timeout (UDP).
    Timeout,
    /// The socket was closed (UDP).
    Close,
    /// The connection attempt failed.
    FailedConnect,
    /// The socket is gone and no close was seen (a close event the kernel skipped or
    /// lost): closed by the live-socket check, with the counters last read.
    Gone,
}

/// One flow record: src is always the initiator (client), dst the server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowRecord {
    /// Stable id: the same in every record of one flow, unique per boot.
    pub flow_id: super::id::FlowId,
    /// Transport.
    #[serde(serialize_with = "ser_proto")]
    pub proto: Proto,
    /// 4 or 6.
    pub ip_version: u8,
    /// Client address.
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dst_ip: IpAddr,
    /// Server port.
    pub dst_port: u16,
    /// LOCAL, INBOUND or OUTBOUND.
    pub direction: Direction,
    /// open, update or closed.
    pub state: FlowState,
    /// First event of the flow.
    #[serde(serialize_with = "ser_time")]
    pub first_seen: SystemTime,
    /// Latest event of the flow.
    #[serde(serialize_with = "ser_time")]
    pub last_seen: SystemTime,
    /// Payload bytes sent by the source (client).
    pub src_bytes: u64,
    /// Payload bytes sent by the destination (server).
    pub dst_bytes: u64,
    /// Segments (TCP) or datagrams (UDP) sent by the source.
    pub src_packets: u64,
    /// Segments (TCP) or datagrams (UDP) sent by the destination.
    pub dst_packets: u64,
    /// Retransmitted segments, both directions.
    pub retransmits: u64,
    /// Retransmissions by the source (when its end is traced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_retransmits: Option<u64>,
    /// Retransmissions by the destination (when its end is traced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_retransmits: Option<u64>,
    /// Smoothed RTT, microseconds (TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srtt_us: Option<u32>,
    /// SYN to ESTABLISHED, microseconds (TCP, client traced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_latency_us: Option<f64>,
    /// Why the flow ended (closed records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// For failed connects: refused, timeout, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_error: Option<String>,
    /// Network namespace inode of the first traced end (the client's when both are).
    pub netns: u32,
    /// The client process, when traced on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_process: Option<Process>,
    /// The server process, when traced on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_process: Option<Process>,
}

/// A listening TCP socket or bound UDP socket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListenRecord {
    /// Transport.
    #[serde(serialize_with = "ser_proto")]
    pub proto: Proto,
    /// 4 or 6.
    pub ip_version: u8,
    /// Bound address (`0.0.0.0` / `::` for all).
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Network namespace inode.
    pub netns: u32,
    /// open (listening) or closed.
    pub state: FlowState,
    /// When it was first seen listening.
    #[serde(serialize_with = "ser_time")]
    pub first_seen: SystemTime,
    /// When this record was made.
    #[serde(serialize_with = "ser_time")]
    pub last_seen: SystemTime,
    /// Its process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
}

/// A destination this host depends on (from its OUTBOUND flows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DependencyRecord {
    /// Transport.
    #[serde(serialize_with = "ser_proto")]
    pub proto: Proto,
    /// Destination address.
    pub ip: IpAddr,
    /// Destination port.
    pub port: u16,
    /// First flow to it.
    #[serde(serialize_with = "ser_time")]
    pub first_seen: SystemTime,
    /// Latest flow to it.
    #[serde(serialize_with = "ser_time")]
    pub last_seen: SystemTime,
    /// Flows to it since the probe started.
    pub flows: u64,
    /// Process of the latest flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_process: Option<Process>,
}

/// An address of this host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalIpRecord {
    /// The address.
    pub ip: IpAddr,
    /// First seen (on an interface or a socket).
    #[serde(serialize_with = "ser_time")]
    pub first_seen: SystemTime,
    /// Latest seen.
    #[serde(serialize_with = "ser_time")]
    pub last_seen: SystemTime,
}

/// Anything the flow stage emits.
// Flows are by far the most frequent record: boxing them would cost an allocation
// each to save space on the rare small variants.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A flow.
    Flow(FlowRecord),
    /// A listening socket.
    Listen(ListenRecord),
    /// An outbound dependency.
    Dependency(DependencyRecord),
    /// A local address.
    LocalIp(LocalIpRecord),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            pid: 7,
            tid: 7,
            uid: 0,
            gid: 0,
            comm: "curl".into(),
            cgroup_id: 1,
            from_current: false,
            ppid: 1,
            parent_comm: "bash".into(),
            exe: "curl".into(),
            start_ns: 42,
            exec_id: 1,
        }
    }

    #[test]
    fn exe_is_the_path_enrichment_found_else_the_kernels_basename() {
        let mut found = Process::from_owner(&owner(), 1);
        found.enrich(packetless_enrich::Details { exe: Some("/usr/bin/curl".into()), ..Default::default() });
        assert_eq!(found.exe.as_deref(), Some("/usr/bin/curl"));

        let mut gone = Process::from_owner(&owner(), 1);
        gone.enrich(packetless_enrich::Details::default());
        assert_eq!(gone.exe.as_deref(), Some("curl"));

        let mut unknown = Process::from_owner(&Owner { exe: "".into(), ..owner() }, 1);
        unknown.enrich(packetless_enrich::Details::default());
        assert_eq!(unknown.exe, None);
    }
}
