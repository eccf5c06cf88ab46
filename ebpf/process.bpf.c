/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Process lifecycle counters from the scheduler's tracepoints (attached as BTF
 * tracepoints, tp_btf, which need neither tracefs nor perf events):
 *   sched:sched_process_exec: a successful execve/execveat;
 *   sched:sched_process_exit: counted only for the thread-group leader, so a
 *     process counts once, not once per thread.
 */
#include "tfo_common.h"

/* Indexes of proc_counts; plugins/ebpf/src/collect.rs uses the same numbers. */
#define PROC_EXEC 0
#define PROC_EXIT 1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} proc_counts SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tfo_proc_exec)
{
	count_event(&proc_counts, PROC_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tfo_proc_exit)
{
	/* The tracepoint runs in the exiting task. */
	__u64 id = bpf_get_current_pid_tgid();

	/* Low half: thread id; high half: process (thread-group) id. */
	if ((__u32)id != (__u32)(id >> 32))
		return 0;
	count_event(&proc_counts, PROC_EXIT);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
