/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Run-queue (scheduler) latency: time a task spends runnable, waiting for a CPU,
 * from being woken (sched_wakeup, sched_wakeup_new) or preempted while still
 * runnable (sched_switch with prev in TASK_RUNNING) until it is switched in
 * (sched_switch's next), as a log2 histogram in nanoseconds (what runqlat(8)
 * reports). The idle tasks (pid 0) are ignored.
 */
#include "tfo_common.h"

#define TASK_RUNNING 0

/* Runnable tasks waiting for a CPU, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} rq_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} rq_hist SEC(".maps");

/* task_struct.state was renamed __state in Linux 5.14; this flavor matches the old
 * name so one object runs on both (the dead branch is removed by the verifier). */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void enqueued(__u32 pid)
{
	__u64 ts;

	if (!pid)
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&rq_start, &pid, &ts, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(tfo_rq_wakeup, struct task_struct *p)
{
	enqueued(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tfo_rq_wakeup_new, struct task_struct *p)
{
	enqueued(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tfo_rq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid;
	__u64 *tsp, now;

	/* Preempted while runnable: it waits in the run queue from now on. */
	if (task_state(prev) == TASK_RUNNING)
		enqueued(BPF_CORE_READ(prev, pid));

	pid = BPF_CORE_READ(next, pid);
	if (!pid)
		return 0;
	tsp = bpf_map_lookup_elem(&rq_start, &pid);
	if (!tsp)
		return 0;
	now = bpf_ktime_get_ns();
	if (now >= *tsp)
		hist_record(&rq_hist, now - *tsp);
	bpf_map_delete_elem(&rq_start, &pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
