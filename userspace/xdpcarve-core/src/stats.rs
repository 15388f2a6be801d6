//! The engine's own counters: link/network layer and TCP. Protocols count in their own crates;
//! [`crate::Engine::counters`] gathers everything into one `CounterSet`.

xdpcarve_contract::counters! {
    /// Link and network layer.
    pub struct CaptureStats {
        packets, bytes, ipv4, ipv6, vlan_tagged,
        /// Frames that are not IP (ARP, LLDP, ...): skipped.
        non_ip,
        /// IP packets that are not TCP: skipped.
        non_tcp,
        /// IP fragments: not reassembled, skipped.
        ip_fragments,
        /// Headers that do not parse (bad lengths, bad versions): skipped.
        malformed,
        /// Frames cut short by the capture's snap length (payload beyond it is a gap).
        snaplen_truncated,
        /// Packets whose timestamp went backwards.
        time_went_backwards,
    }
}

xdpcarve_contract::counters! {
    /// Flows and reassembly.
    pub struct TcpStats {
        flows_created, flows_closed, flows_timed_out,
        /// Connections evicted to respect max_flows or the memory budget, and of them those only
        /// one side had spoken on (evicted first) and established ones (evicted last).
        flows_evicted, flows_evicted_one_sided, flows_evicted_established,
        /// Connections only one side had spoken on, closed after their shorter idle timeout.
        flows_timed_out_one_sided,
        /// Evictions (attempts or connections) by reason: the table at --max-flows, or the flow
        /// state at --memory.
        evictions_table_full, evictions_memory,
        /// Attempts not tracked because the memory budget was full of connections (their first
        /// byte still makes a connection, picked up mid-stream).
        embryos_refused,
        /// Flows picked up without seeing their SYN.
        flows_midstream,
        /// Flows whose ports match no app parser (counted, not tracked).
        flows_ignored,
        /// Flows on other ports recognised by a protocol's detection from their first bytes.
        flows_detected,
        /// Handshakes whose SYN and SYN-ACK both reached this worker.
        handshakes,
        /// SYN-ACKs whose SYN this worker never saw. Live, with both directions on one queue,
        /// this means the NIC's RSS hash is not symmetric (the SYN went to another queue).
        synack_without_syn,
        /// Connections closed after a SYN whose SYN-ACK this worker never saw: unanswered, or
        /// answered on another queue.
        syn_without_synack,
        /// Flows that carried no byte yet (handshakes, SYNs alone), kept in their own pool:
        /// created, made connections by their first byte, ended by FIN/RST, timed out, and
        /// evicted when the pool was full (a flood).
        embryos_created, embryos_promoted, embryos_closed, embryos_timed_out, embryos_evicted,
        segments, payload_bytes,
        retransmitted_bytes,
        /// Overlapping bytes whose content differed from what was already delivered.
        overlaps_conflicting,
        out_of_order_segments,
        /// Holes skipped over, and the bytes they held.
        gaps, gap_bytes,
        /// Bytes dropped because the per-stream or global reassembly bound was hit.
        depth_exceeded_bytes, memory_exceeded_bytes,
        /// Bytes after an app parser declared the stream opaque (STARTTLS, CONNECT, upgrades).
        opaque_bytes,
        /// Payload of segments too far ahead of the stream to be real (beyond any TCP window):
        /// dropped.
        out_of_window_bytes,
        /// Payload bytes past the window the receiver advertised (the handshake's window scale
        /// known): a receiver drops them, xdpcarve takes them and marks the direction.
        outside_advertised_window_bytes,
        /// Segments with a bad TCP or IPv4 header checksum: dropped (as the host drops them), or
        /// taken as offload (`--checksums auto`). Once `checksum_offload_assumed` is set, auto no
        /// longer computes checksums: both count only segments from before it was set (taken:
        /// the segment that set it, at most).
        bad_checksum_dropped, bad_checksum_taken,
        /// 1 once `--checksums auto` took bad checksums for offload (more than one segment in ten);
        /// from then on segments are taken unchecked.
        checksum_offload_assumed,
        /// Segments taken without their checksum computed: every one under `--checksums ignore`,
        /// those after `checksum_offload_assumed` was set under auto.
        checksum_skipped_segments,
        /// Data segments whose TTL or hop limit differed from their direction's first packet.
        ttl_changed_segments,
        /// Data on SYNs (TCP Fast Open), and segments with urgent data (kept inline).
        syn_data_segments, urgent_segments,
        /// RSTs a host would ignore (sequence number outside the window, or a TTL not the
        /// sender's): the connection went on.
        rst_ignored,
        rst, fin,
    }
}
