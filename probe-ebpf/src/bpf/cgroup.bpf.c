/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Cgroup names, for containers that live shorter than it takes user space to
 * look their cgroup up.
 *  - tp_btf/cgroup_mkdir: a cgroup of the unified (v2) hierarchy was made; its
 *    id and path go into pl_cgroup_paths. Hierarchies of cgroup v1 (hybrid
 *    hosts) are skipped: events carry v2 ids only.
 */
#include "common.h"

/* The unified hierarchy is the first one registered: hierarchy id 0. */
#define PL_DFL_HIERARCHY 0

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(tp_btf__cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct pl_cgroup_path value;
	__u64 id;

	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != PL_DFL_HIERARCHY)
		return 0;
	id = BPF_CORE_READ(cgrp, kn, id);
	if (bpf_probe_read_kernel_str(value.path, sizeof(value.path), path) < 0)
		return 0;
	bpf_map_update_elem(&pl_cgroup_paths, &id, &value, BPF_ANY);
	return 0;
}
