//! Counters of one worker. Plain integers owned by the worker (no atomics on the hot path); the
//! runtime snapshots and merges them for the summary and the metrics endpoint.
//!
//! Each area has its own struct; add a counter by adding a line to its `counters!` block.

macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $field:ident ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name { $( $(#[$fm])* pub $field: u64, )* }

        impl $name {
            /// Visits every counter by name.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
                $( f(stringify!($field), self.$field); )*
            }
            pub fn merge(&mut self, other: &Self) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

counters! {
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

counters! {
    /// Flows and reassembly.
    pub struct TcpStats {
        flows_created, flows_closed, flows_timed_out,
        /// Flows evicted to respect max_flows.
        flows_evicted,
        /// Flows picked up without seeing their SYN.
        flows_midstream,
        /// Flows whose ports match no app parser (counted, not tracked).
        flows_ignored,
        /// Flows on other ports recognised as HTTP or SMTP by their first bytes.
        flows_detected,
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
        /// Payload of segments too far ahead of the stream to be real (beyond any TCP window).
        out_of_window_bytes,
        rst, fin,
    }
}

counters! {
    pub struct HttpStats {
        requests, responses, pipelined_requests,
        interim_responses,
        malformed_requests, malformed_responses,
        header_too_large,
        /// Responses with no request to pair with (picked up mid-stream).
        unmatched_responses,
        chunked_errors,
        decompress_errors,
        /// Bodies whose decoding hit the size or ratio bound.
        decompress_limited,
        multipart_uploads,
        partial_content,
        /// CONNECT or Upgrade: the rest of the connection is not HTTP.
        tunnels,
        /// Requests dropped because `max_pipelined` were already waiting for a response.
        pipeline_overflow,
        /// Times the parser skipped ahead to find the next request/response start.
        resyncs,
        /// Gaps inside a body (the file goes on, with missing bytes).
        body_gaps,
        /// Bodies with a Content-Encoding we do not decode (br, compress, ...): hashed as sent.
        unknown_encodings,
        /// 206 holes given up because the out-of-order buffer was full.
        range_gaps,
        /// 206 objects evicted to respect `max_range_objects`.
        range_evicted,
    }
}

counters! {
    pub struct SmtpStats {
        sessions, transactions, data_commands, bdat_chunks,
        rejected_transactions,
        starttls,
        auth,
        malformed_lines,
        line_too_long,
        rset,
        unknown_commands,
        /// Client lines skipped before the session could be followed (picked up mid-message).
        midstream_lines,
    }
}

counters! {
    pub struct MimeStats {
        messages, parts,
        depth_exceeded,
        header_too_large,
        parts_exceeded,
        line_too_long,
        missing_final_boundary,
        base64_invalid_chars,
        qp_invalid_sequences,
        encoded_word_errors,
        /// Gaps that hit a header block or delimiter: parsing resumed at the next delimiter.
        gap_resyncs,
    }
}

counters! {
    pub struct FileStats {
        files, http_files, smtp_files,
        bytes_hashed,
        files_truncated,
        files_with_gaps,
        overflow_bytes,
    }
}

/// All counters of one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub capture: CaptureStats,
    pub tcp: TcpStats,
    pub http: HttpStats,
    pub smtp: SmtpStats,
    pub mime: MimeStats,
    pub files: FileStats,
}

impl Stats {
    /// Visits every counter as (area, name, value).
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
        self.capture.for_each(|n, v| f("capture", n, v));
        self.tcp.for_each(|n, v| f("tcp", n, v));
        self.http.for_each(|n, v| f("http", n, v));
        self.smtp.for_each(|n, v| f("smtp", n, v));
        self.mime.for_each(|n, v| f("mime", n, v));
        self.files.for_each(|n, v| f("files", n, v));
    }

    pub fn merge(&mut self, other: &Stats) {
        self.capture.merge(&other.capture);
        self.tcp.merge(&other.tcp);
        self.http.merge(&other.http);
        self.smtp.merge(&other.smtp);
        self.mime.merge(&other.mime);
        self.files.merge(&other.files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_visit() {
        let mut a = Stats::default();
        a.tcp.gaps = 2;
        let mut b = Stats::default();
        b.tcp.gaps = 3;
        b.files.files = 1;
        a.merge(&b);
        let mut seen = Vec::new();
        a.for_each(|area, name, v| if v > 0 { seen.push((area, name, v)) });
        assert_eq!(seen, vec![("tcp", "gaps", 5), ("files", "files", 1)]);
    }
}
