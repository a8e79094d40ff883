/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Load-time knobs. Each is a `const volatile` global that user space sets with
 * EbpfLoader::override_global before the object is loaded, so the verifier
 * sees a constant and prunes the branches that are switched off.
 */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include "vmlinux.h"

/* 1: trace only sockets whose network namespace inode is a key of pl_netns. */
const volatile __u32 pl_netns_filter = 0;

/* Skip the UDP send/recv hooks' work entirely when UDP is not wanted. */
const volatile __u32 pl_trace_udp = 1;

/* 1 when TCP is traced by the classic tracepoint rung: owners must then also be
 * kept in pl_owners_by_cookie. */
const volatile __u32 pl_classic_tcp = 0;

/* Wake the reader only once this many bytes wait in the ring buffer; the reader
 * also drains on a short timer, so nothing waits longer than that. Batching
 * wakeups is what keeps the probe cheap at high event rates. 0 wakes every time. */
const volatile __u32 pl_wakeup_bytes = 0;

#endif /* PL_CONFIG_H */
