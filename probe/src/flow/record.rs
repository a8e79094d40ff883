//! The records the flow stage emits: flows, listening sockets, and the two lists of
//! the dependency map (outbound destinations, local addresses). Field names are the
//! public JSON contract (README, "Records of packetless run").

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::classify::Direction;
use crate::sink::timefmt::epoch_seconds;
use crate::source::{Comm, ExeName, Owner, Proto};
use std::sync::Arc;

use packetless_enrich::{Container, Details};

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(epoch_seconds(*t))
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's serialize_with passes a reference")]
fn ser_proto<S: Serializer>(p: &Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// A process at one end of a flow or behind a listening socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Parent process id.
    pub ppid: Option<u32>,
    /// Parent's command name.
    pub parent_comm: Option<Comm>,
    /// What enrichment found (executable path, command line, user and group names,
    /// parent's executable, container): one answer shared by every record of the
    /// process, so that a record holds one reference instead of six. Read it
    /// through the accessors.
    pub details: Option<Arc<Details>>,
    /// Start time (`CLOCK_BOOTTIME` ns): with the pid, the key of enrichment caches.
    pub start_ns: u64,
    /// Exec counter of the process (see [`Owner::exec_id`]): part of that key.
    pub exec_id: u32,
    /// The executable's basename as the kernel recorded it: `exe` when enrichment
    /// finds no path.
    pub kernel_exe: ExeName,
}

/// The JSON contract's shape: enrichment's fields in line, absent when unknown.
impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        fn optional<S: SerializeStruct, T: Serialize + ?Sized>(
            st: &mut S,
            name: &'static str,
            value: Option<&T>,
        ) -> Result<(), S::Error> {
            match value {
                Some(v) => st.serialize_field(name, v),
                None => st.skip_field(name),
            }
        }
        let mut st = s.serialize_struct("Process", 15)?;
        st.serialize_field("pid", &self.pid)?;
        st.serialize_field("tid", &self.tid)?;
        st.serialize_field("comm", &self.comm)?;
        st.serialize_field("uid", &self.uid)?;
        st.serialize_field("gid", &self.gid)?;
        st.serialize_field("cgroup_id", &self.cgroup_id)?;
        st.serialize_field("netns", &self.netns)?;
        optional(&mut st, "exe", self.exe())?;
        optional(&mut st, "cmdline", self.cmdline())?;
        optional(&mut st, "user", self.user())?;
        optional(&mut st, "group", self.group())?;
        optional(&mut st, "ppid", self.ppid.as_ref())?;
        optional(&mut st, "parent_comm", self.parent_comm.as_ref())?;
        optional(&mut st, "parent_exe", self.parent_exe())?;
        optional(&mut st, "container", self.container())?;
        st.end()
    }
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
            ppid: (owner.ppid != 0).then_some(owner.ppid),
            parent_comm: (!owner.parent_comm.is_empty()).then_some(owner.parent_comm),
            details: None,
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

    /// Takes what enrichment found.
    pub fn enrich(&mut self, details: Arc<Details>) {
        self.details = Some(details);
    }

    /// The executable: its path as enrichment found it, else (once enriched) the
    /// basename the kernel recorded.
    #[must_use]
    pub fn exe(&self) -> Option<&str> {
        let details = self.details.as_deref()?;
        details.exe.as_deref().or_else(|| (!self.kernel_exe.is_empty()).then(|| self.kernel_exe.as_str()))
    }

    /// The command line (arguments joined by spaces, at most 4096 bytes).
    #[must_use]
    pub fn cmdline(&self) -> Option<&str> {
        self.details.as_deref()?.cmdline.as_deref()
    }

    /// The user name, from the process's own `/etc/passwd` (the container's, in one).
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.details.as_deref()?.user.as_deref()
    }

    /// The group name, likewise.
    #[must_use]
    pub fn group(&self) -> Option<&str> {
        self.details.as_deref()?.group.as_deref()
    }

    /// The parent's executable path.
    #[must_use]
    pub fn parent_exe(&self) -> Option<&str> {
        self.details.as_deref()?.parent_exe.as_deref()
    }

    /// The container the process runs in.
    #[must_use]
    pub fn container(&self) -> Option<&Arc<Container>> {
        self.details.as_deref()?.container.as_ref()
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
    fn a_process_serializes_enrichment_in_line_and_leaves_out_what_is_unknown() {
        let mut p = Process::from_owner(&owner(), 9);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"pid":7,"tid":7,"comm":"curl","uid":0,"gid":0,"cgroup_id":1,"netns":9,"ppid":1,"parent_comm":"bash"}"#
        );
        p.enrich(Arc::new(Details {
            exe: Some("/usr/bin/curl".into()),
            cmdline: Some("curl -s x".into()),
            user: Some("root".into()),
            group: Some("root".into()),
            parent_exe: Some("/bin/bash".into()),
            container: None,
        }));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            concat!(
                r#"{"pid":7,"tid":7,"comm":"curl","uid":0,"gid":0,"cgroup_id":1,"netns":9,"exe":"/usr/bin/curl","#,
                r#""cmdline":"curl -s x","user":"root","group":"root","ppid":1,"parent_comm":"bash","#,
                r#""parent_exe":"/bin/bash"}"#
            )
        );
    }

    #[test]
    fn exe_is_the_path_enrichment_found_else_the_kernels_basename() {
        let mut found = Process::from_owner(&owner(), 1);
        found.enrich(Arc::new(Details { exe: Some("/usr/bin/curl".into()), ..Default::default() }));
        assert_eq!(found.exe(), Some("/usr/bin/curl"));

        let mut gone = Process::from_owner(&owner(), 1);
        gone.enrich(Arc::default());
        assert_eq!(gone.exe(), Some("curl"));

        let mut unknown = Process::from_owner(&Owner { exe: "".into(), ..owner() }, 1);
        unknown.enrich(Arc::default());
        assert_eq!(unknown.exe(), None);
    }
}
