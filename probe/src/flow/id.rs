//! Stable flow ids: the same in every record of one flow, unique across sockets,
//! network namespaces and reboots, and computable by anyone holding the same facts.
//!
//! id = FNV-1a 64 over (boot id, netns inode, socket cookie[, UDP peer]), as 16 hex
//! digits. The cookie is the kernel's unique socket id for this boot; for a flow with
//! both ends on this host, the client's socket names it.

use std::fmt;
use std::net::SocketAddr;

use serde::{Serialize, Serializer};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// A flow id: shown and serialized as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for FlowId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The hash of a boot id: where the ids of all flows of that boot start from.
#[derive(Clone, Copy, Debug)]
pub struct IdSeed(u64);

impl IdSeed {
    /// The seed of `boot_id`.
    #[must_use]
    pub fn new(boot_id: &str) -> Self {
        Self(fnv1a(FNV_OFFSET, boot_id.as_bytes()))
    }
}

/// The id of the flow of socket `cookie` in namespace `netns` (and UDP `peer`).
#[must_use]
pub fn flow_id(boot_id: &str, netns: u32, cookie: u64, peer: Option<SocketAddr>) -> FlowId {
    seeded_flow_id(IdSeed::new(boot_id), netns, cookie, peer)
}

/// [`flow_id`] from the boot id's seed, hashed once.
#[must_use]
pub fn seeded_flow_id(seed: IdSeed, netns: u32, cookie: u64, peer: Option<SocketAddr>) -> FlowId {
    let mut h = fnv1a(seed.0, &netns.to_le_bytes());
    h = fnv1a(h, &cookie.to_le_bytes());
    if let Some(peer) = peer {
        h = fnv1a(h, peer.to_string().as_bytes());
    }
    FlowId(h)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or an empty string when the
/// kernel does not provide it (ids are then unique per boot only by cookie).
#[must_use]
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_tell_flows_apart() {
        let a = flow_id("b1", 1, 42, None);
        assert_eq!(a, flow_id("b1", 1, 42, None));
        assert_eq!(a.to_string().len(), 16);
        assert_eq!(FlowId(0xab).to_string(), "00000000000000ab");
        assert_eq!(serde_json::to_string(&FlowId(0xab)).unwrap(), "\"00000000000000ab\"");
        assert_ne!(a, flow_id("b2", 1, 42, None), "another boot");
        assert_ne!(a, flow_id("b1", 2, 42, None), "another namespace");
        assert_ne!(a, flow_id("b1", 1, 43, None), "another socket");
        let p1 = flow_id("b1", 1, 42, Some("198.51.100.1:53".parse().unwrap()));
        let p2 = flow_id("b1", 1, 42, Some("198.51.100.2:53".parse().unwrap()));
        assert_ne!(p1, p2, "another UDP peer");
    }

    #[test]
    fn fnv1a_matches_the_reference_vector() {
        // FNV-1a 64 of "a" from the reference implementation.
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
