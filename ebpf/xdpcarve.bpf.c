// SPDX-License-Identifier: MIT OR GPL-2.0
//
// xdpcarve's XDP steering program.
//
// Parses Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4 (with options) or IPv6 (walking
// the extension headers it knows), one remote-mirror tunnel (GRE, ERSPAN I-III, VXLAN), and TCP. A TCP segment whose source or destination port is in
// `ports` is redirected to the AF_XDP socket bound to the queue it arrived on (`xsks`, indexed by
// rx queue). Everything else is passed to the kernel untouched. IP fragments are passed and counted:
// only the first one carries the ports, and the sensor does not reassemble IP.
//
// Self-contained on purpose: no system headers, so the compiled object depends only on the
// compiler (clang-14) and ebpf/build.sh reproduces ebpf/xdpcarve.bpf.o byte for byte.
//
// Counters (per-CPU array `counters`, indexes mirrored in userspace/xdpcarve-xdp/src/program.rs):
// every packet ends in exactly one of REDIRECTED or PASSED; the others break PASSED down.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

// UAPI values (linux/bpf.h, linux/if_ether.h, linux/in.h, linux/ipv6.h).
enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_XSKMAP 17

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static __u64 (*bpf_xdp_get_buff_len)(struct xdp_md *ctx) = (void *)188;

#define bswap16(x) ((__u16)__builtin_bswap16(x))
// Network-order constants, compared against raw header fields (BPF target is little endian).
#define ETH_P_IP_BE bswap16(0x0800)
#define ETH_P_IPV6_BE bswap16(0x86DD)
#define ETH_P_8021Q_BE bswap16(0x8100)
#define ETH_P_8021AD_BE bswap16(0x88A8)
#define IP_MF_OFFSET_BE bswap16(0x3FFF)
#define VXLAN_PORT_BE bswap16(4789)
#define GRE_TEB 0x6558
#define GRE_ERSPAN_II 0x88BE
#define GRE_ERSPAN_III 0x22EB

#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_GRE 47
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_DSTOPTS 60
#define IPPROTO_MH 135

struct ethhdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__be16 h_proto;
} __attribute__((packed));

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct iphdr {
	__u8 ihl_version; // ihl in the low nibble (little-endian bitfield order)
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct grehdr {
	__be16 flags; // C, K, S flags and version
	__be16 proto;
};

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__u16 check;
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u16 flags;
	__be16 window;
	__u16 check;
	__be16 urg_ptr;
};

// Counter indexes. Keep in sync with `Counter` in userspace/xdpcarve-xdp/src/program.rs.
enum counter {
	C_REDIRECTED = 0,     // handed to the AF_XDP socket of the packet's queue
	C_REDIRECTED_BYTES,   // their bytes
	C_PASSED,             // returned XDP_PASS (everything not redirected)
	C_PARSE_FAILED,       // headers cut short or invalid (subset of PASSED)
	C_REDIRECT_FAILED,    // port matched but no socket bound to this queue (subset of PASSED)
	C_IP_FRAGMENTS,       // IPv4/IPv6 fragments (subset of PASSED)
	C_TUNNELED,           // opened a GRE/ERSPAN/VXLAN tunnel (redirected or passed)
	C_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Key: TCP port in host order. Value: unused (1). Filled by userspace before attaching.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += n; // per-CPU slot: no atomics needed
}

static __always_inline int pass(__u32 reason)
{
	if (reason != C_PASSED)
		count(reason, 1);
	count(C_PASSED, 1);
	return XDP_PASS;
}

// Advances *cursor over an IPv6 extension header; returns the next header, or -1 if truncated.
static __always_inline int skip_ipv6_ext(void **cursor, void *data_end, __u8 nexthdr)
{
	struct ipv6_opt_hdr *opt = *cursor;
	if ((void *)(opt + 1) > data_end)
		return -1;
	// AH counts its length in 4-byte units minus 2; the others in 8-byte units minus 1.
	__u32 len = nexthdr == IPPROTO_AH ? ((__u32)opt->hdrlen + 2) * 4 : ((__u32)opt->hdrlen + 1) * 8;
	*cursor = (void *)opt + len;
	return opt->nexthdr;
}

static __always_inline int is_ipv6_ext(__u8 h)
{
	return h == IPPROTO_HOPOPTS || h == IPPROTO_ROUTING || h == IPPROTO_DSTOPTS || h == IPPROTO_AH ||
	       h == IPPROTO_MH;
}

// Outcomes of the header walk that end in XDP_PASS (negative, so they never collide with an IP
// protocol number).
#define WALK_PASS (-1)
#define WALK_PARSE_FAILED (-2)
#define WALK_FRAGMENT (-3)

// From an Ethernet header at *cursor through up to two VLAN tags (802.1ad outer + 802.1Q inner,
// or a single 802.1Q) to the ethertype of the network layer. 0 when truncated.
static __always_inline __be16 walk_ethernet(void **cursor, void *data_end)
{
	struct ethhdr *eth = *cursor;
	if ((void *)(eth + 1) > data_end)
		return 0;
	*cursor = eth + 1;
	__be16 ethertype = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (ethertype != ETH_P_8021Q_BE && ethertype != ETH_P_8021AD_BE)
			break;
		struct vlan_hdr *vlan = *cursor;
		if ((void *)(vlan + 1) > data_end)
			return 0;
		ethertype = vlan->encapsulated_proto;
		*cursor = vlan + 1;
	}
	return ethertype;
}

// From the IPv4/IPv6 header at *cursor to the transport header: returns the transport protocol
// with *cursor on its header, or a WALK_* outcome.
static __always_inline int walk_ip(void **cursor, void *data_end, __be16 ethertype)
{
	if (ethertype == ETH_P_IP_BE) {
		struct iphdr *ip = *cursor;
		if ((void *)(ip + 1) > data_end)
			return WALK_PARSE_FAILED;
		__u32 ihl = (ip->ihl_version & 0x0F) * 4;
		if ((ip->ihl_version >> 4) != 4 || ihl < sizeof(*ip))
			return WALK_PARSE_FAILED;
		if (ip->frag_off & IP_MF_OFFSET_BE)
			return WALK_FRAGMENT;
		*cursor = (void *)ip + ihl;
		return ip->protocol;
	}
	if (ethertype == ETH_P_IPV6_BE) {
		struct ipv6hdr *ip6 = *cursor;
		if ((void *)(ip6 + 1) > data_end)
			return WALK_PARSE_FAILED;
		__u8 proto = ip6->nexthdr;
		*cursor = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 6; i++) {
			if (proto == IPPROTO_FRAGMENT)
				return WALK_FRAGMENT;
			if (!is_ipv6_ext(proto))
				break;
			int next = skip_ipv6_ext(cursor, data_end, proto);
			if (next < 0)
				return WALK_PARSE_FAILED;
			proto = next;
		}
		return proto;
	}
	if (ethertype == 0)
		return WALK_PARSE_FAILED;
	return WALK_PASS;
}

// Headers are parsed within the first MAX_HEADER_OFFSET bytes of the packet (a tunnel's inner
// TCP header included); offsets are masked to it so the verifier can bound packet pointers.
#define MAX_HEADER_OFFSET 1023

// What follows an opened tunnel header.
#define INNER_ETHERNET 1
#define INNER_IP 2

// The header walk is split into global (non-static) functions. The verifier checks each global
// function once, on its own, instead of once per path through its callers: load time stays
// linear in the number of header kinds (all inline, it took seconds). Each takes the packet
// offset to start from and returns a packed result, or a negative WALK_* outcome.

// Ethernet and VLAN tags at `off`: returns (ethertype << 16) | offset of the network header.
__attribute__((noinline)) long xdpcarve_walk_eth(struct xdp_md *ctx, __u32 off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (off > MAX_HEADER_OFFSET)
		return WALK_PARSE_FAILED;
	void *cursor = data + off;
	__be16 ethertype = walk_ethernet(&cursor, data_end);
	if (ethertype == 0)
		return WALK_PARSE_FAILED;
	return ((long)ethertype << 16) | (long)(cursor - data);
}

// The IPv4/IPv6 header at `off` (ethertype in network order): returns (protocol << 16) |
// offset of the transport header.
__attribute__((noinline)) long xdpcarve_walk_ip(struct xdp_md *ctx, __u32 off, __u32 ethertype)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (off > MAX_HEADER_OFFSET)
		return WALK_PARSE_FAILED;
	void *cursor = data + off;
	int proto = walk_ip(&cursor, data_end, (__be16)ethertype);
	if (proto < 0)
		return proto;
	return ((long)proto << 16) | (long)(cursor - data);
}

// Opens one tunnel a remote mirror uses, its header at `off`: GRE with IP, transparent Ethernet
// bridging or ERSPAN I/II/III inside, or VXLAN (UDP 4789). Returns (INNER_ETHERNET << 32) |
// offset of the inner Ethernet header, or (INNER_IP << 32) | (ethertype << 16) | offset of the
// inner IP header; WALK_PASS when the packet is no such tunnel.
__attribute__((noinline)) long xdpcarve_open_tunnel(struct xdp_md *ctx, __u32 off, __u32 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (off > MAX_HEADER_OFFSET)
		return WALK_PARSE_FAILED;
	void *cursor = data + off;
	if (proto == IPPROTO_GRE) {
		struct grehdr *gre = cursor;
		if ((void *)(gre + 1) > data_end)
			return WALK_PARSE_FAILED;
		__u16 flags = bswap16(gre->flags);
		if (flags & 0x0007) // version 1: PPTP, not mirrored traffic
			return WALK_PASS;
		__u32 inner = off + 4 + 4 * (!!(flags & 0x8000) + !!(flags & 0x2000) + !!(flags & 0x1000));
		__u16 gre_proto = bswap16(gre->proto);
		if (gre_proto == 0x0800 || gre_proto == 0x86DD)
			return ((long)INNER_IP << 32) | ((long)bswap16(gre_proto) << 16) | inner;
		if (gre_proto == GRE_ERSPAN_II && (flags & 0x1000)) {
			inner += 8; // type II header; type I has no sequence number and no header
		} else if (gre_proto == GRE_ERSPAN_III) {
			if (inner > MAX_HEADER_OFFSET)
				return WALK_PARSE_FAILED;
			__u8 *hdr = data + inner;
			if ((void *)(hdr + 12) > data_end)
				return WALK_PARSE_FAILED;
			inner += (hdr[11] & 0x01) ? 20 : 12; // O flag: platform subheader
		} else if (gre_proto != GRE_TEB && gre_proto != GRE_ERSPAN_II) {
			return WALK_PASS;
		}
		return ((long)INNER_ETHERNET << 32) | inner;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *udp = cursor;
		if ((void *)(udp + 1) > data_end)
			return WALK_PARSE_FAILED;
		if (udp->dest != VXLAN_PORT_BE && udp->source != VXLAN_PORT_BE)
			return WALK_PASS;
		__u8 *vxlan = (void *)(udp + 1);
		if ((void *)(vxlan + 8) > data_end)
			return WALK_PARSE_FAILED;
		if (!(vxlan[0] & 0x08))
			return WALK_PASS;
		return ((long)INNER_ETHERNET << 32) | (off + 16);
	}
	return WALK_PASS;
}

// The steering decision; `frags` says whether the packet may span several buffers (then only
// the first is in data..data_end, which always holds the headers we parse).
static __always_inline int steer(struct xdp_md *ctx, int frags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	long walk = xdpcarve_walk_eth(ctx, 0);
	if (walk >= 0)
		walk = xdpcarve_walk_ip(ctx, walk & 0xFFFF, (walk >> 16) & 0xFFFF);
	if (walk >= 0 && ((walk >> 16) == IPPROTO_GRE || (walk >> 16) == IPPROTO_UDP)) {
		long inner = xdpcarve_open_tunnel(ctx, walk & 0xFFFF, walk >> 16);
		if (inner != WALK_PASS) {
			count(C_TUNNELED, 1);
			if (inner >= 0 && (inner >> 32) == INNER_ETHERNET)
				inner = xdpcarve_walk_eth(ctx, inner & 0xFFFF);
			if (inner >= 0)
				inner = xdpcarve_walk_ip(ctx, inner & 0xFFFF, (inner >> 16) & 0xFFFF);
			walk = inner;
		}
	}
	if (walk == WALK_PARSE_FAILED)
		return pass(C_PARSE_FAILED);
	if (walk == WALK_FRAGMENT)
		return pass(C_IP_FRAGMENTS);
	if (walk < 0 || (walk >> 16) != IPPROTO_TCP)
		return pass(C_PASSED);
	__u32 off = walk & 0xFFFF;
	if (off > MAX_HEADER_OFFSET)
		return pass(C_PARSE_FAILED);
	void *cursor = data + (off & MAX_HEADER_OFFSET);
	struct tcphdr *tcp = cursor;
	if ((void *)(tcp + 1) > data_end)
		return pass(C_PARSE_FAILED);

	__u16 sport = bswap16(tcp->source);
	__u16 dport = bswap16(tcp->dest);
	if (!bpf_map_lookup_elem(&ports, &sport) && !bpf_map_lookup_elem(&ports, &dport))
		return pass(C_PASSED);

	// The low bits of flags are the action when the slot holds no socket.
	long action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (action != XDP_REDIRECT)
		return pass(C_REDIRECT_FAILED);
	count(C_REDIRECTED, 1);
	count(C_REDIRECTED_BYTES, frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(data_end - data));
	return XDP_REDIRECT;
}

// Multi-buffer aware (kernel 5.18+): lets the interface run an MTU above one page (jumbo frames,
// veth with GRO-sized segments) and the AF_XDP socket receive such packets in several frames.
SEC("xdp.frags")
int xdpcarve(struct xdp_md *ctx)
{
	return steer(ctx, 1);
}

// The same program for kernels without multi-buffer XDP (5.9 - 5.17); packets larger than a
// UMEM frame are then dropped by the kernel and counted in the socket's rx_dropped.
SEC("xdp")
int xdpcarve_linear(struct xdp_md *ctx)
{
	return steer(ctx, 0);
}

char _license[] SEC("license") = "Dual MIT/GPL";
