//! ntopng's flow field ids (docs/ntopng-zmq.md §3.3, §3.4).
//!
//! PEN-0 (IANA) ids as they are; ntop's PEN 35632 fields as
//! 57472 + n, the form nProbe sends and the only one ntopng reads unambiguously.

/// ntop's fields start here (`NTOP_BASE_ID`).
pub const NTOP_BASE: u32 = 57472;

macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident = $id:expr;)*) => {
        $($(#[$doc])* pub const $name: u32 = $id;)*
        /// Every field this crate names, with its ntopng name.
        pub const ALL: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
    };
}

fields! {
    /// Bytes client -> server (delta per message).
    IN_BYTES = 1;
    /// Packets client -> server (delta per message).
    IN_PKTS = 2;
    /// IP protocol number.
    PROTOCOL = 4;
    /// Union of TCP flags.
    TCP_FLAGS = 6;
    /// Client port (a number).
    L4_SRC_PORT = 7;
    /// Client IPv4 address (dotted string).
    IPV4_SRC_ADDR = 8;
    /// Server port (a number).
    L4_DST_PORT = 11;
    /// Server IPv4 address (dotted string).
    IPV4_DST_ADDR = 12;
    /// Last packet, epoch seconds.
    LAST_SWITCHED = 21;
    /// First packet, epoch seconds.
    FIRST_SWITCHED = 22;
    /// Bytes server -> client (delta per message).
    OUT_BYTES = 23;
    /// Packets server -> client (delta per message).
    OUT_PKTS = 24;
    /// Client IPv6 address (string).
    IPV6_SRC_ADDR = 27;
    /// Server IPv6 address (string).
    IPV6_DST_ADDR = 28;
    /// 4 or 6.
    IP_PROTOCOL_VERSION = 60;
    /// 0 = ingress (RX), 1 = egress (TX).
    DIRECTION = 61;
    /// Exporter address (string); sets the flow's device in ntopng.
    EXPORTER_IPV4_ADDRESS = 130;
    /// Why the flow ended (string).
    FLOW_END_REASON = 136;
    /// Bytes client -> server, cumulative.
    INITIATOR_OCTETS = 231;
    /// Bytes server -> client, cumulative.
    RESPONDER_OCTETS = 232;
    /// Packets client -> server, cumulative.
    INITIATOR_PKTS = 298;
    /// Packets server -> client, cumulative.
    RESPONDER_PKTS = 299;
    /// TCP flags sent by the client.
    CLIENT_TCP_FLAGS = NTOP_BASE + 78;
    /// TCP flags sent by the server.
    SERVER_TCP_FLAGS = NTOP_BASE + 79;
    /// Retransmitted packets client -> server.
    RETRANSMITTED_IN_PKTS = NTOP_BASE + 109;
    /// Retransmitted packets server -> client.
    RETRANSMITTED_OUT_PKTS = NTOP_BASE + 110;
    /// Probe instance name.
    NPROBE_INSTANCE_NAME = NTOP_BASE + 122;
    /// Client-side network latency, ms (float).
    CLIENT_NW_LATENCY_MS = NTOP_BASE + 123;
    /// Server-side network latency, ms (float).
    SERVER_NW_LATENCY_MS = NTOP_BASE + 124;
    /// Client process id.
    SRC_PROC_PID = NTOP_BASE + 168;
    /// Client process name (marks the flow as eBPF in ntopng).
    SRC_PROC_NAME = NTOP_BASE + 169;
    /// Client process user name.
    SRC_PROC_USER_NAME = NTOP_BASE + 372;
    /// Client's parent process id.
    SRC_FATHER_PROC_PID = NTOP_BASE + 373;
    /// Client's parent process name.
    SRC_FATHER_PROC_NAME = NTOP_BASE + 374;
    /// Server process id.
    DST_PROC_PID = NTOP_BASE + 375;
    /// Server process name.
    DST_PROC_NAME = NTOP_BASE + 376;
    /// Server process user name.
    DST_PROC_USER_NAME = NTOP_BASE + 377;
    /// Server's parent process id.
    DST_FATHER_PROC_PID = NTOP_BASE + 378;
    /// Server's parent process name.
    DST_FATHER_PROC_NAME = NTOP_BASE + 379;
    /// Client process uid.
    SRC_PROC_UID = NTOP_BASE + 425;
    /// Server process uid.
    DST_PROC_UID = NTOP_BASE + 426;
    /// Probe address (string).
    NPROBE_IPV4_ADDRESS = NTOP_BASE + 471;
    /// Client process command line.
    SRC_PROC_CMDLINE = NTOP_BASE + 556;
    /// Server process command line.
    DST_PROC_CMDLINE = NTOP_BASE + 557;
    /// Client container id.
    SRC_PROC_CONTAINER_ID = NTOP_BASE + 558;
    /// Server container id.
    DST_PROC_CONTAINER_ID = NTOP_BASE + 559;
}

/// The ntopng name of a field id, if this crate knows it.
#[must_use]
pub fn name(id: u32) -> Option<&'static str> {
    ALL.iter().find(|(_, i)| *i == id).map(|(n, _)| *n)
}

/// The id of an ntopng field name, if this crate knows it.
#[must_use]
pub fn id(name: &str) -> Option<u32> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_contract() {
        assert_eq!(SRC_PROC_PID, 57640);
        assert_eq!(SRC_PROC_NAME, 57641);
        assert_eq!(DST_PROC_PID, 57847);
        assert_eq!(DST_PROC_NAME, 57848);
        assert_eq!(SRC_PROC_UID, 57897);
        assert_eq!(SRC_PROC_CONTAINER_ID, 58030);
        assert_eq!(DST_PROC_CMDLINE, 58029);
        assert_eq!(CLIENT_TCP_FLAGS, 57550);
        assert_eq!(CLIENT_NW_LATENCY_MS, 57595);
        assert_eq!(RETRANSMITTED_IN_PKTS, 57581);
        assert_eq!(name(57640), Some("SRC_PROC_PID"));
        assert_eq!(id("L4_DST_PORT"), Some(11));
        assert_eq!(name(999_999), None);
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<u32> = ALL.iter().map(|(_, i)| *i).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
    }
}
