/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * TCP connection counters (IPv4 and IPv6), all from tracepoints, attached in
 * their BTF-enabled form (tp_btf: no tracefs, perf events, kprobes or BPF
 * trampolines needed, so they work on kernels built without CONFIG_KPROBES and
 * where fentry/fexit are not allowed):
 *   connects: sock:inet_sock_set_state from TCP_CLOSE to TCP_SYN_SENT, the
 *     transition tcp_v4_connect()/tcp_v6_connect() make right before sending the
 *     SYN: one per active open attempt;
 *   accepts: sock:inet_sock_set_state from TCP_SYN_RECV to TCP_ESTABLISHED, a
 *     connection completing its handshake on a listening socket and entering the
 *     accept queue (a passive open, what the kernel's TcpPassiveOpens counts):
 *     one per connection accept(2) can return;
 *   retransmits: tcp:tcp_retransmit_skb: one per retransmitted segment, SYNs
 *     included.
 */
#include "tfo_common.h"

/* Indexes of tcp_counts; plugins/ebpf/src/collect.rs uses the same numbers. */
#define TCP_CONNECT 0
#define TCP_ACCEPT 1
#define TCP_RETRANSMIT 2

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} tcp_counts SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tfo_tcp_state, const struct sock *sk, int oldstate, int newstate)
{
	__u32 idx;
	__u64 protocol = 0;

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT)
		idx = TCP_CONNECT;
	else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED)
		idx = TCP_ACCEPT;
	else
		return 0;
	/* The tracepoint also serves SCTP and MPTCP sockets. sk_protocol was a
	 * bitfield before Linux 5.6: read it the relocatable way. */
	protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (protocol == IPPROTO_TCP)
		count_event(&tcp_counts, idx);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tfo_tcp_retransmit)
{
	count_event(&tcp_counts, TCP_RETRANSMIT);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
