/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Block I/O latency: time from block:block_rq_issue (the request is handed to the
 * device driver) to block:block_rq_complete, per request, as a log2 histogram in
 * nanoseconds (what biolatency(8) reports without -Q).
 *
 * The BTF-enabled tracepoints (tp_btf) give the struct request pointer itself, the
 * only reliable key between issue and completion. block_rq_issue has taken only
 * the request since Linux 5.11; on older kernels issues never match completions
 * and the histogram stays empty rather than wrong.
 */
#include "tfo_common.h"

/* Requests in flight can be many on a busy NVMe machine; on overflow the newest
 * issues are not timed (bpf_map_update_elem fails) and the others still are. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} blk_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} blk_hist SEC(".maps");

SEC("tp_btf/block_rq_issue")
int BPF_PROG(tfo_blk_issue, struct request *rq)
{
	__u64 key = (__u64)rq;
	__u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(&blk_start, &key, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(tfo_blk_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq;
	__u64 *tsp, now;

	tsp = bpf_map_lookup_elem(&blk_start, &key);
	if (!tsp)
		return 0;
	now = bpf_ktime_get_ns();
	if (now >= *tsp)
		hist_record(&blk_hist, now - *tsp);
	bpf_map_delete_elem(&blk_start, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
