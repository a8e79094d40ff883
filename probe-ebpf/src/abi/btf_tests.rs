//! The mirrors in `abi.rs` against the BTF clang wrote into the built object.
//!
//! A small reader of the BTF type section is enough: struct members (name, bit
//! offset, size of the member type) and enumerators (name, value).

use std::collections::HashMap;

use object::{Object, ObjectSection};

use super::{flags, EventKind, RawEvent, Stat};
use core::mem::offset_of;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;

struct BtfType {
    name: String,
    kind: u32,
    size_or_type: u32,
    /// Struct members: (name, type id, bit offset). Enumerators: (name, value, 0).
    members: Vec<(String, u32, u32)>,
    /// Array: (element type, element count).
    array: Option<(u32, u32)>,
}

struct Btf {
    types: Vec<BtfType>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

impl Btf {
    fn parse(section: &[u8]) -> Self {
        assert_eq!(u16::from_le_bytes([section[0], section[1]]), 0xeb9f, "BTF magic (little-endian object)");
        let hdr_len = u32_at(section, 4) as usize;
        let type_off = u32_at(section, 8) as usize;
        let type_len = u32_at(section, 12) as usize;
        let str_off = u32_at(section, 16) as usize;
        let strings = &section[hdr_len + str_off..];
        let name = |off: u32| -> String {
            let s = &strings[off as usize..];
            String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]).into_owned()
        };
        let data = &section[hdr_len + type_off..hdr_len + type_off + type_len];
        // Type id 0 is "void".
        let mut types = vec![BtfType { name: String::new(), kind: 0, size_or_type: 0, members: vec![], array: None }];
        let mut off = 0;
        while off < data.len() {
            let info = u32_at(data, off + 4);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let mut t = BtfType {
                name: name(u32_at(data, off)),
                kind,
                size_or_type: u32_at(data, off + 8),
                members: vec![],
                array: None,
            };
            off += 12;
            match kind {
                KIND_INT | 14 | 17 => off += 4,
                KIND_ARRAY => {
                    t.array = Some((u32_at(data, off), u32_at(data, off + 8)));
                    off += 12;
                }
                KIND_STRUCT | 5 => {
                    for i in 0..vlen {
                        let m = off + i * 12;
                        t.members.push((name(u32_at(data, m)), u32_at(data, m + 4), u32_at(data, m + 8) & 0x00ff_ffff));
                    }
                    off += vlen * 12;
                }
                KIND_ENUM | 13 => {
                    if kind == KIND_ENUM {
                        for i in 0..vlen {
                            let m = off + i * 8;
                            t.members.push((name(u32_at(data, m)), u32_at(data, m + 4), 0));
                        }
                    }
                    off += vlen * 8;
                }
                15 | 19 => off += vlen * 12,
                _ => {}
            }
            types.push(t);
        }
        Self { types }
    }

    fn find(&self, kind: u32, name: &str) -> &BtfType {
        self.types
            .iter()
            .find(|t| t.kind == kind && t.name == name)
            .unwrap_or_else(|| panic!("type {name} (kind {kind}) is not in the object's BTF"))
    }

    /// Size in bytes of a type id, following typedefs and qualifiers.
    fn size_of(&self, id: u32) -> usize {
        let t = &self.types[id as usize];
        match t.kind {
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST => self.size_of(t.size_or_type),
            KIND_ARRAY => {
                let (elem, n) = t.array.expect("array info");
                self.size_of(elem) * n as usize
            }
            _ => t.size_or_type as usize,
        }
    }
}

fn object_btf() -> Btf {
    let file = object::File::parse(crate::OBJECT).expect("the embedded object is ELF");
    let section = file.section_by_name(".BTF").expect("the object has a .BTF section (built with -g)");
    Btf::parse(section.data().expect("readable .BTF"))
}

#[test]
fn event_struct_matches_the_c_layout_field_by_field() {
    let btf = object_btf();
    let ev = btf.find(KIND_STRUCT, "pl_event");
    assert_eq!(ev.size_or_type as usize, RawEvent::SIZE, "sizeof(struct pl_event)");
    let rust: HashMap<&str, (usize, usize)> = [
        ("ts_ns", offset_of!(RawEvent, ts_ns), 8),
        ("cookie", offset_of!(RawEvent, cookie), 8),
        ("cgroup_id", offset_of!(RawEvent, cgroup_id), 8),
        ("bytes_acked", offset_of!(RawEvent, bytes_acked), 8),
        ("bytes_received", offset_of!(RawEvent, bytes_received), 8),
        ("latency_ns", offset_of!(RawEvent, latency_ns), 8),
        ("bytes", offset_of!(RawEvent, bytes), 8),
        ("netns", offset_of!(RawEvent, netns), 4),
        ("pid", offset_of!(RawEvent, pid), 4),
        ("tid", offset_of!(RawEvent, tid), 4),
        ("uid", offset_of!(RawEvent, uid), 4),
        ("gid", offset_of!(RawEvent, gid), 4),
        ("segs_in", offset_of!(RawEvent, segs_in), 4),
        ("segs_out", offset_of!(RawEvent, segs_out), 4),
        ("total_retrans", offset_of!(RawEvent, total_retrans), 4),
        ("srtt_us", offset_of!(RawEvent, srtt_us), 4),
        ("error", offset_of!(RawEvent, error), 4),
        ("states_seen", offset_of!(RawEvent, states_seen), 4),
        ("kind", offset_of!(RawEvent, kind), 2),
        ("family", offset_of!(RawEvent, family), 2),
        ("lport", offset_of!(RawEvent, lport), 2),
        ("rport", offset_of!(RawEvent, rport), 2),
        ("proto", offset_of!(RawEvent, proto), 1),
        ("state", offset_of!(RawEvent, state), 1),
        ("oldstate", offset_of!(RawEvent, oldstate), 1),
        ("flags", offset_of!(RawEvent, flags), 1),
        ("laddr", offset_of!(RawEvent, laddr), 16),
        ("raddr", offset_of!(RawEvent, raddr), 16),
        ("comm", offset_of!(RawEvent, comm), 16),
        ("parent_comm", offset_of!(RawEvent, parent_comm), 16),
        ("exe", offset_of!(RawEvent, exe), 32),
        ("start_ns", offset_of!(RawEvent, start_ns), 8),
        ("ppid", offset_of!(RawEvent, ppid), 4),
        ("exec_id", offset_of!(RawEvent, exec_id), 4),
        ("open_ns", offset_of!(RawEvent, open_ns), 8),
    ]
    .into_iter()
    .map(|(n, o, s)| (n, (o, s)))
    .collect();
    assert_eq!(ev.members.len(), rust.len(), "number of fields in struct pl_event");
    for (name, type_id, bit_offset) in &ev.members {
        let (offset, size) =
            rust.get(name.as_str()).unwrap_or_else(|| panic!("C field pl_event.{name} has no Rust mirror"));
        assert_eq!(*bit_offset as usize, offset * 8, "offset of pl_event.{name}");
        assert_eq!(btf.size_of(*type_id), *size, "size of pl_event.{name}");
    }
}

fn enumerators(btf: &Btf, name: &str) -> HashMap<String, u32> {
    btf.find(KIND_ENUM, name).members.iter().map(|(n, v, _)| (n.clone(), *v)).collect()
}

#[test]
fn event_kinds_match_the_c_enum() {
    let c = enumerators(&object_btf(), "pl_event_kind");
    assert_eq!(c.len(), EventKind::ALL.len(), "number of event kinds");
    for kind in EventKind::ALL {
        assert_eq!(c.get(kind.c_name()).copied(), Some(u32::from(kind as u16)), "{}", kind.c_name());
    }
}

#[test]
fn stat_indexes_match_the_c_enum() {
    let c = enumerators(&object_btf(), "pl_stat");
    for stat in Stat::ALL {
        assert_eq!(c.get(stat.c_name()).copied(), Some(stat as u32), "{}", stat.c_name());
    }
    assert_eq!(c.get("PL_STAT__COUNT").copied(), Some(Stat::COUNT));
}

#[test]
fn event_flags_match_the_c_enum() {
    let c = enumerators(&object_btf(), "pl_event_flags");
    for (name, value) in flags::C_NAMES {
        assert_eq!(c.get(name).copied(), Some(u32::from(value)), "{name}");
    }
}

#[test]
fn short_records_are_refused_not_misread() {
    assert!(RawEvent::from_bytes(&[0u8; RawEvent::SIZE - 1]).is_none());
    let ev = RawEvent { cookie: 7, kind: 4, ..RawEvent::default() };
    assert_eq!(RawEvent::from_bytes(ev.as_bytes()), Some(ev));
}
