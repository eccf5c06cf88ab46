/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * System calls counted by number, on every CPU, from the raw_syscalls:sys_enter
 * tracepoint (one hit per syscall entry of any task), attached in its BTF-enabled
 * raw form (tp_btf/sys_enter: no tracefs or perf event needed, arguments read
 * directly).
 *
 * Key: the syscall number as the tracepoint reports it (the number of the task's
 * own ABI). A 32-bit (ia32) task on an x86_64 kernel has different numbers, so its
 * calls are keyed with SYSCALL_COMPAT_FLAG set and userspace labels them apart
 * instead of giving them the name of an unrelated 64-bit call.
 */
#include "tfo_common.h"

#define SYSCALL_COMPAT_FLAG 0x80000000u
/* x86's TS_COMPAT bit of thread_info.status: the task is in an ia32 syscall. */
#define X86_TS_COMPAT 0x0002

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} syscall_counts SEC(".maps");

/* Local "flavors": matched by CO-RE against the kernel's types, ignoring ___x86. */
struct thread_info___x86 {
	__u32 status;
} __attribute__((preserve_access_index));

struct task_struct___x86 {
	struct thread_info___x86 thread_info;
} __attribute__((preserve_access_index));

static __always_inline int is_compat_task(void)
{
#if defined(__TARGET_ARCH_x86)
	struct task_struct___x86 *t = (void *)bpf_get_current_task();

	if (!bpf_core_field_exists(t->thread_info.status))
		return 0;
	return (BPF_CORE_READ(t, thread_info.status) & X86_TS_COMPAT) != 0;
#else
	return 0;
#endif
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tfo_sys_enter, struct pt_regs *regs, long id)
{
	__u32 key;
	__u64 one = 1, *v;

	if (id < 0)
		return 0;
	key = (__u32)id;
	if (is_compat_task())
		key |= SYSCALL_COMPAT_FLAG;

	v = bpf_map_lookup_elem(&syscall_counts, &key);
	if (v) {
		(*v)++;
		return 0;
	}
	/* First call of this number: insert. Another CPU may win the race, then
	 * count on the entry it created. */
	if (bpf_map_update_elem(&syscall_counts, &key, &one, BPF_NOEXIST) != 0) {
		v = bpf_map_lookup_elem(&syscall_counts, &key);
		if (v)
			(*v)++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
