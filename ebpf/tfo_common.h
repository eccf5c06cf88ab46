/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Shared by the tfo-agent eBPF programs: includes, the per-CPU counter helper and
 * the log2 latency histogram that the `ebpf` plugin turns into OpenTelemetry
 * explicit-bucket histograms (plugins/ebpf/src/metrics.rs mirrors hist_slot()).
 *
 * vmlinux.h is generated at build time from the build machine's kernel BTF
 * (bpftool btf dump file /sys/kernel/btf/vmlinux format c); every struct in it
 * carries preserve_access_index, so field accesses are CO-RE relocations that the
 * loader (aya) rewrites against the running kernel's BTF.
 */
#ifndef TFO_COMMON_H
#define TFO_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

/*
 * Number of log2 slots of a latency histogram. Slot i counts values v (in
 * nanoseconds) with 2^(i-1) < v <= 2^i; slot 0 counts 0 and 1; the last slot also
 * takes everything larger. Upper bounds are inclusive, as OpenTelemetry's
 * explicit-bucket histogram boundaries are.
 */
#define HIST_SLOTS 64

/* One latency histogram: slot counts plus the sum of the values (ns). */
struct hist {
	__u64 slots[HIST_SLOTS];
	__u64 sum_ns;
};

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

/* floor(log2(v)) for v > 0. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	if (hi)
		return log2_u32(hi) + 32;
	return log2_u32((__u32)v);
}

/* The slot of a value: ceil(log2(ns)), 0 for 0 and 1, capped at the last slot. */
static __always_inline __u32 hist_slot(__u64 ns)
{
	__u32 slot;

	if (ns <= 1)
		return 0;
	slot = log2_u64(ns - 1) + 1;
	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	return slot;
}

/*
 * Adds one observation to a per-CPU histogram (a BPF_MAP_TYPE_PERCPU_ARRAY with one
 * entry). Plain increments are safe: the entry belongs to this CPU and a tracing
 * program does not nest on one CPU.
 */
static __always_inline void hist_record(void *map, __u64 ns)
{
	__u32 zero = 0;
	struct hist *h = bpf_map_lookup_elem(map, &zero);
	__u32 slot;

	if (!h)
		return;
	slot = hist_slot(ns);
	/* Redundant for the verifier's sake: proves the index is in bounds. */
	if (slot >= HIST_SLOTS)
		return;
	h->slots[slot]++;
	h->sum_ns += ns;
}

/* Adds one to entry `idx` of a per-CPU array of counters. */
static __always_inline void count_event(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		(*v)++;
}

#endif /* TFO_COMMON_H */
