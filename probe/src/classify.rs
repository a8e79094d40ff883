//! classify: the direction of a flow — LISTEN, LOCAL, INBOUND or OUTBOUND — from what
//! this host knows about itself: its own addresses and the ports it listens on, per
//! network namespace and protocol.
//!
//! The rules (Netdata's network viewer, restated in docs/DESIGN):
//! 1. LISTEN: listening TCP sockets and bound UDP sockets (listen records, not flows).
//! 2. LOCAL: the local or remote address is loopback (IPv4-mapped included), or the
//!    remote address is one of this host's own (interfaces, and local addresses of
//!    traced sockets), or both ends of the connection are traced here.
//! 3. INBOUND: the traced end accepted the connection, or (when that is not known)
//!    its local port is one some socket of its namespace listens on.
//! 4. OUTBOUND: everything else.
//!
//! The flow table feeds [`HostAddrs`] as events arrive and asks [`classify`] once per
//! flow, when its first record is emitted.

use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;

use crate::source::Proto;

/// Direction of a flow, or LISTEN for listening sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A listening socket.
    Listen,
    /// Both ends on this host.
    Local,
    /// A remote client connected to a local server.
    Inbound,
    /// A local client connected to a remote server.
    Outbound,
}

impl Direction {
    /// Lowercase name, as in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Local => "local",
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries;
/// any other address unchanged. Used wherever addresses are compared.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Loopback, including `::ffff:127.0.0.0/104`.
#[must_use]
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical_ip(ip).is_loopback()
}

/// What this host knows about its own addresses and listening ports.
#[derive(Debug, Default)]
pub struct HostAddrs {
    /// Own addresses (canonical form) -> number of sources that vouch for them.
    own: HashMap<IpAddr, u32>,
    /// (netns, protocol, port) -> number of sockets listening there.
    listening: HashMap<(u32, Proto, u16), u32>,
}

impl HostAddrs {
    /// Records an address of this host (interface or local end of a traced socket).
    /// Unspecified addresses (wildcard binds) say nothing and are ignored.
    pub fn add_own(&mut self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        if ip.is_unspecified() {
            return false;
        }
        let count = self.own.entry(ip).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Whether `ip` is one of this host's addresses.
    #[must_use]
    pub fn is_own(&self, ip: IpAddr) -> bool {
        self.own.contains_key(&canonical_ip(ip))
    }

    /// A socket started listening on `port`.
    pub fn listen(&mut self, netns: u32, proto: Proto, port: u16) {
        *self.listening.entry((netns, proto, port)).or_insert(0) += 1;
    }

    /// A listening socket on `port` went away.
    pub fn unlisten(&mut self, netns: u32, proto: Proto, port: u16) {
        if let Some(count) = self.listening.get_mut(&(netns, proto, port)) {
            *count -= 1;
            if *count == 0 {
                self.listening.remove(&(netns, proto, port));
            }
        }
    }

    /// Whether some socket of `netns` listens on `port` for `proto`.
    #[must_use]
    pub fn is_listening(&self, netns: u32, proto: Proto, port: u16) -> bool {
        self.listening.contains_key(&(netns, proto, port))
    }
}

/// What is known about one traced end of a flow.
#[derive(Clone, Copy, Debug)]
pub struct End {
    /// Network namespace of the socket.
    pub netns: u32,
    /// Its local address.
    pub local: std::net::SocketAddr,
    /// Its peer.
    pub remote: std::net::SocketAddr,
    /// Whether it is the server's end (accepted, or bound/listening), when known.
    pub server: Option<bool>,
}

/// The direction of a flow given its traced ends (one, or both when merged).
#[must_use]
pub fn classify(host: &HostAddrs, proto: Proto, ends: &[End]) -> Direction {
    if ends.len() > 1 {
        return Direction::Local;
    }
    let Some(end) = ends.first() else {
        return Direction::Outbound;
    };
    if is_loopback(end.local.ip()) || is_loopback(end.remote.ip()) || host.is_own(end.remote.ip()) {
        return Direction::Local;
    }
    let server = end.server.unwrap_or_else(|| host.is_listening(end.netns, proto, end.local.port()));
    if server {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// The host's interface addresses in the probe's own network namespace.
#[must_use]
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; we only read it.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return out;
    }
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: cursor points into the list getifaddrs returned and has not been freed.
        let ifa = unsafe { &*cursor };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: the family says this is a sockaddr_in; read_unaligned because a
                // sockaddr is only 2-aligned.
                let sin = unsafe { ifa.ifa_addr.cast::<libc::sockaddr_in>().read_unaligned() };
                out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { ifa.ifa_addr.cast::<libc::sockaddr_in6>().read_unaligned() };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cursor = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(local: &str, remote: &str, server: Option<bool>) -> End {
        End { netns: 1, local: local.parse().unwrap(), remote: remote.parse().unwrap(), server }
    }

    #[test]
    fn loopback_and_mapped_loopback_are_local() {
        let host = HostAddrs::default();
        assert_eq!(
            classify(&host, Proto::Tcp, &[end("127.0.0.1:5000", "127.0.0.1:80", Some(false))]),
            Direction::Local
        );
        assert_eq!(
            classify(&host, Proto::Tcp, &[end("[::ffff:127.0.0.1]:5000", "[::ffff:127.0.0.1]:80", Some(false))]),
            Direction::Local
        );
        assert_eq!(classify(&host, Proto::Tcp, &[end("[::1]:5000", "[::1]:80", None)]), Direction::Local);
    }

    #[test]
    fn own_remote_address_is_local_and_both_ends_traced_is_local() {
        let mut host = HostAddrs::default();
        host.add_own("198.51.100.1".parse().unwrap());
        assert_eq!(
            classify(&host, Proto::Tcp, &[end("198.51.100.1:5000", "198.51.100.1:80", Some(false))]),
            Direction::Local
        );
        let a = end("198.51.100.1:5000", "203.0.113.9:80", Some(false));
        let b = end("203.0.113.9:80", "198.51.100.1:5000", Some(true));
        assert_eq!(classify(&host, Proto::Tcp, &[a, b]), Direction::Local);
    }

    #[test]
    fn known_roles_give_inbound_and_outbound() {
        let host = HostAddrs::default();
        assert_eq!(
            classify(&host, Proto::Tcp, &[end("198.51.100.1:80", "203.0.113.9:5000", Some(true))]),
            Direction::Inbound
        );
        assert_eq!(
            classify(&host, Proto::Tcp, &[end("198.51.100.1:5000", "203.0.113.9:80", Some(false))]),
            Direction::Outbound
        );
    }

    #[test]
    fn unknown_role_uses_the_listen_table_of_the_same_namespace_and_protocol() {
        let mut host = HostAddrs::default();
        host.listen(1, Proto::Tcp, 80);
        let e = end("198.51.100.1:80", "203.0.113.9:5000", None);
        assert_eq!(classify(&host, Proto::Tcp, &[e]), Direction::Inbound);
        assert_eq!(classify(&host, Proto::Udp, &[e]), Direction::Outbound, "another protocol");
        let other_ns = End { netns: 2, ..e };
        assert_eq!(classify(&host, Proto::Tcp, &[other_ns]), Direction::Outbound, "another namespace");
        host.unlisten(1, Proto::Tcp, 80);
        assert_eq!(classify(&host, Proto::Tcp, &[e]), Direction::Outbound);
    }

    #[test]
    fn wildcard_addresses_are_never_own() {
        let mut host = HostAddrs::default();
        assert!(!host.add_own("0.0.0.0".parse().unwrap()));
        assert!(!host.is_own("0.0.0.0".parse().unwrap()));
        assert!(host.add_own("::ffff:198.51.100.3".parse().unwrap()));
        assert!(host.is_own("198.51.100.3".parse().unwrap()), "mapped and plain forms are one address");
    }

    #[test]
    fn interface_addresses_include_loopback() {
        assert!(interface_addrs().iter().any(IpAddr::is_loopback));
    }
}
