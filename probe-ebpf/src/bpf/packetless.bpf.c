/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The packetless object: one translation unit that pulls in every concern,
 * so that all programs share one set of maps without a BPF linker step.
 * Which programs are loaded and attached is decided in user space
 * (probe/src/loader.rs) after probing the running kernel.
 */
#include "owner.bpf.c"
#include "tcp_life.bpf.c"
#include "udp.bpf.c"
#include "iter.bpf.c"
#include "cgroup.bpf.c"

/*
 * Anchors: read-only globals whose only purpose is to put the ABI types into
 * the object's BTF, where the layout test in abi.rs compares them with the
 * Rust mirrors. They live in .rodata next to the knobs; no program reads them.
 */
const volatile struct pl_event *pl_anchor_event = 0;
const volatile enum pl_event_kind pl_anchor_kind = 0;
const volatile enum pl_stat pl_anchor_stat = 0;
const volatile enum pl_event_flags pl_anchor_flags = 0;

/* The tracepoint helpers and socket storage require a GPL-compatible licence. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
