//! TCP stream reassembly, one [`Stream`] per direction.
//!
//! Sequence numbers are mapped to 64-bit stream offsets relative to the next byte expected
//! (serial-number arithmetic, RFC 1982), so wraparound near 2^32 needs no special case.
//!
//! - In-order segments with nothing buffered go straight from the packet to the parser (no copy).
//! - Out-of-order segments are copied into a map keyed by offset and kept non-overlapping.
//! - Overlaps among buffered bytes: the first copy wins ([`OverlapPolicy::First`], BSD's and
//!   Windows' choice, Zeek's) or the last ([`OverlapPolicy::Last`], Solaris and HP-UX, Suricata's
//!   `last`). Bytes of a later copy that differ are counted in `overlaps_conflicting` and mark the
//!   direction with `tcp_overlap_conflict`, since they may be an evasion attempt.
//! - Bytes already delivered are retransmissions: dropped and counted. Every stack keeps a byte it
//!   has taken in order, so there is nothing to choose; delivered bytes are not kept, so such a
//!   retransmission is not compared (a copy that never reached the host is a TTL trick, marked
//!   by the engine).
//! - Holes never stall a stream. A hole is skipped (reported to the parser as a gap) when the
//!   peer acknowledged beyond it a few packets ago (the capture lost it), when the stream's or the engine's buffer
//!   bound is hit, or when the connection closes.

use crate::stats::TcpStats;
use std::collections::BTreeMap;
use xdpcarve_contract::{Anomalies, Anomaly, Timestamp};

/// Which copy of a byte sent twice with different content is kept, when both copies arrive
/// before the byte is delivered (Suricata's `stream.reassembly` policies, reduced to the two
/// outcomes: Linux keeps the first copy in most overlap shapes).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OverlapPolicy {
    /// The copy seen first (BSD, Windows, Linux, Zeek).
    #[default]
    First,
    /// The copy seen last (Solaris, HP-UX).
    Last,
}

/// Largest distance ahead of the next expected byte a segment may start (TCP's largest window,
/// 2^30 with window scaling). Anything further is garbage or another incarnation of the flow.
pub const MAX_WINDOW: u64 = 1 << 30;
/// Packets of a connection an acknowledged hole may wait for its data (reordering between the
/// two directions of a capture) before it is reported as a gap.
pub const ACK_GRACE_PACKETS: u32 = 16;
/// Bookkeeping charged per buffered segment on top of its bytes (map node, allocation header),
/// so a flood of tiny segments hits the memory bound too.
pub const SEGMENT_OVERHEAD: usize = 64;

/// Where reassembled bytes go: the app parser in the engine, a recorder in tests.
pub trait Reassembled {
    /// In-order bytes.
    fn data(&mut self, data: &[u8]);
    /// `len` bytes that will never arrive.
    fn gap(&mut self, len: u64);
    /// The direction is finished (FIN or RST, after everything before it).
    fn end(&mut self);
    fn counters(&mut self) -> &mut TcpStats;
    /// The stream was bent (overlaps with different bytes): the files it carries get `a`.
    fn anomaly(&mut self, a: Anomaly) {
        let _ = a;
    }
    /// Time of the packet being processed (kept with bytes that have to wait in the buffer).
    fn packet_time(&self) -> Timestamp {
        Timestamp::ZERO
    }
    /// The bytes delivered next were captured at this time (`Some`: buffered bytes, delivered
    /// later than they arrived), or at the current packet's (`None`). Parsers that pair messages
    /// by time (HTTP after a hole) need when bytes were sent, not when a hole let them through.
    fn captured_at(&mut self, ts: Option<Timestamp>) {
        let _ = ts;
    }
}

/// Out-of-order bytes waiting for a hole before them, and when they were captured.
#[derive(Debug)]
struct Buffered {
    data: Vec<u8>,
    ts: Timestamp,
}

/// Bounds of one stream.
#[derive(Copy, Clone, Debug)]
pub struct StreamLimits {
    /// Out-of-order bytes one direction may buffer.
    pub max_buffer: usize,
    /// Bytes of each direction delivered at most (0 = unlimited).
    pub depth: u64,
    /// Which copy of an overlap with different bytes wins.
    pub overlap: OverlapPolicy,
}

/// The engine's flow memory budget as reassembly sees it: out-of-order bytes may use what the
/// rest of the flow state (`reserved`, kept current by the engine) leaves of `max`.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    /// Out-of-order bytes buffered, with their bookkeeping.
    pub used: usize,
    /// Most of `used` at once.
    pub peak: usize,
    /// The rest of the flow state: tables and parsers.
    pub reserved: usize,
    pub max: usize,
}

impl MemoryBudget {
    pub fn new(max: usize) -> Self {
        MemoryBudget {
            used: 0,
            peak: 0,
            reserved: 0,
            max,
        }
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Stream {
    started: bool,
    /// Sequence number of the byte at `next_off`.
    next_seq: u32,
    /// Offset of the next byte to deliver: every byte before it was delivered or reported as a gap.
    next_off: u64,
    /// Out-of-order data by offset; all keys > `next_off`, entries never overlap.
    ooo: BTreeMap<u64, Buffered>,
    /// Bytes charged to the memory budget for `ooo`.
    charged: usize,
    /// Offset of the FIN (one past the last data byte), once seen.
    fin_off: Option<u64>,
    /// Highest offset the peer acknowledged beyond `next_off` (0: none pending).
    acked_off: u64,
    /// Packets of the connection left before an acknowledged hole is given up (0: none).
    ack_grace: u32,
    ended: bool,
    /// How this direction was bent so far (the files it carries are marked with them).
    anomalies: Anomalies,
    /// Offset one past the last byte the receiver allowed (its highest ACK plus scaled window
    /// seen); `None` until one was seen, or when the scale is unknown (the SYNs were missed).
    window_edge: Option<i64>,
    /// The receiver's latest offer at that edge was a zero window.
    window_closed: bool,
}

impl Stream {
    pub fn new() -> Self {
        Stream::default()
    }

    pub fn is_started(&self) -> bool {
        self.started
    }
    pub fn is_ended(&self) -> bool {
        self.ended
    }
    /// Bytes delivered or skipped so far.
    pub fn offset(&self) -> u64 {
        self.next_off
    }
    /// Out-of-order bytes held (without overhead).
    pub fn buffered_bytes(&self) -> usize {
        self.ooo.values().map(|b| b.data.len()).sum()
    }
    pub fn has_fin(&self) -> bool {
        self.fin_off.is_some()
    }
    /// How this direction was bent so far.
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }
    /// Marks the direction (the engine's checks: checksums, TTLs, SYN data, urgent data).
    pub fn flag(&mut self, a: Anomaly) {
        self.anomalies.insert(a);
    }

    /// Whether a RST with sequence number `seq` from this side is one a host takes (RFC 5961
    /// narrows it to the next expected byte; from a passive view, anything from the next byte
    /// not yet delivered to a window ahead, since the sensor may have missed the last segments).
    pub fn rst_acceptable(&self, seq: u32) -> bool {
        if !self.started {
            return true;
        }
        let ahead = self.offset_of(seq) - self.next_off as i64;
        (0..=MAX_WINDOW as i64).contains(&ahead)
    }

    /// The receiver acknowledged up to `ack` and allowed `window` bytes (scaled) after it: the
    /// window's right edge moves there if that is further (a receiver may not shrink it, RFC
    /// 9293 3.8.6, so an older, smaller offer seen late changes nothing).
    pub fn window(&mut self, ack: u32, window: u32) {
        if !self.started {
            return;
        }
        let edge = self.offset_of(ack) + i64::from(window);
        if self.window_edge.is_none_or(|e| edge > e) {
            self.window_edge = Some(edge);
        }
        if self.window_edge == Some(edge) {
            self.window_closed = window == 0;
        }
    }

    /// A SYN from this side: data starts at `isn + 1`. A repeated SYN changes nothing.
    pub fn syn(&mut self, isn: u32) {
        if !self.started {
            self.start(isn.wrapping_add(1));
        }
    }

    /// The peer's SYN-ACK acknowledged `next_seq`: data starts there (a no-op once started).
    pub fn expect(&mut self, next_seq: u32) {
        if !self.started {
            self.start(next_seq);
        }
    }

    fn start(&mut self, seq: u32) {
        self.started = true;
        self.next_seq = seq;
        self.next_off = 0;
    }

    /// Stream offset of a sequence number (may be negative: before the next expected byte).
    fn offset_of(&self, seq: u32) -> i64 {
        self.next_off as i64 + seq.wrapping_sub(self.next_seq) as i32 as i64
    }

    fn advance(&mut self, n: u64) {
        self.next_off += n;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
    }

    /// A segment of this direction. `missing_tail` payload bytes were cut by the snap length.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing_tail: u32,
        fin: bool,
        limits: &StreamLimits,
        mem: &mut MemoryBudget,
        out: &mut impl Reassembled,
    ) {
        if self.ended {
            if !payload.is_empty() {
                out.counters().retransmitted_bytes += payload.len() as u64;
            }
            return;
        }
        if !self.started {
            if payload.is_empty() && missing_tail == 0 && !fin {
                return;
            }
            // Picked up mid-stream: the first byte seen is offset 0.
            self.start(seq);
        }
        let off = self.offset_of(seq);
        let seg_len = payload.len() as u64 + missing_tail as u64;
        if off > self.next_off as i64 && (off as u64 - self.next_off) > MAX_WINDOW {
            out.counters().out_of_window_bytes += seg_len;
            return;
        }
        if let Some(edge) = self.window_edge {
            // Bytes past the edge are dropped by the receiver (a BSD one trims a segment that
            // straddles it; every stack drops one that starts past it); delivered bytes sent
            // again are retransmissions, not counted twice. The one exception is Suricata's: a
            // zero-window probe (one byte at a closed window, RFC 9293 3.8.6.1). No slack for a
            // window update the tap missed: the edge is the highest ever offered, so one lost
            // update matters only when nothing after it came through before the data, and any
            // slack would be room for an insertion the mark never shows (on the corpus the
            // closest a segment came to its edge is 5.5 kB, bench/ROBUSTNESS.md).
            let end = off + seg_len as i64;
            let from = edge.max(off).max(self.next_off as i64);
            let probe = self.window_closed && off == edge && seg_len == 1;
            if end > from && !probe {
                out.counters().outside_advertised_window_bytes += (end - from) as u64;
                self.anomalies.insert(Anomaly::TcpOutsideWindow);
                out.anomaly(Anomaly::TcpOutsideWindow);
            }
        }
        if fin && self.fin_off.is_none() && off >= 0 {
            self.fin_off = Some(off as u64 + seg_len);
            out.counters().fin += 1;
        }
        self.data(off, payload, missing_tail, limits, mem, out);
        self.check_end(limits, out);
    }

    fn data(
        &mut self,
        off: i64,
        mut payload: &[u8],
        missing_tail: u32,
        limits: &StreamLimits,
        mem: &mut MemoryBudget,
        out: &mut impl Reassembled,
    ) {
        if payload.is_empty() && missing_tail == 0 {
            return;
        }
        let end = off + payload.len() as i64;
        let next = self.next_off as i64;
        if end <= next && (missing_tail == 0 || end + (missing_tail as i64) <= next) {
            out.counters().retransmitted_bytes += payload.len() as u64;
            return;
        }
        let mut off = off;
        if off < next {
            let dup = ((next - off) as usize).min(payload.len());
            out.counters().retransmitted_bytes += dup as u64;
            payload = &payload[dup..];
            off += dup as i64;
        }
        let off = off as u64;
        // Reassembly depth: bytes past it are not delivered.
        if limits.depth > 0 {
            if off >= limits.depth {
                out.counters().depth_exceeded_bytes += payload.len() as u64;
                return;
            }
            let room = (limits.depth - off) as usize;
            if payload.len() > room {
                out.counters().depth_exceeded_bytes += (payload.len() - room) as u64;
                payload = &payload[..room];
            }
        }
        if off == self.next_off && self.ooo.is_empty() {
            // Fast path: straight from the packet.
            if !payload.is_empty() {
                out.data(payload);
                self.advance(payload.len() as u64);
            }
            if missing_tail > 0 && off + payload.len() as u64 == self.next_off {
                let missing = self.clip_to_depth(missing_tail as u64, limits);
                if missing > 0 {
                    self.skip(missing, out);
                }
            }
            return;
        }
        // Slow path: merge into the out-of-order map (first copy wins), then deliver what became
        // contiguous. Pieces that do not fit the bounds force the oldest hole to be skipped.
        let mut pos = 0usize;
        while pos < payload.len() {
            let piece_off = off + pos as u64;
            if piece_off < self.next_off {
                // A hole skip below moved past part of this segment.
                let dup = ((self.next_off - piece_off) as usize).min(payload.len() - pos);
                out.counters().retransmitted_bytes += dup as u64;
                pos += dup;
                continue;
            }
            // The first buffered entry that ends after piece_off.
            let covering = self
                .ooo
                .range(..=piece_off)
                .next_back()
                .filter(|(k, v)| **k + v.data.len() as u64 > piece_off)
                .map(|(k, v)| (*k, v.data.len()));
            if let Some((k, len)) = covering {
                // Already buffered: compare and keep the first copy.
                let start = (piece_off - k) as usize;
                let n = (len - start).min(payload.len() - pos);
                let new = &payload[pos..pos + n];
                let old = &mut self.ooo.get_mut(&k).expect("covering entry").data[start..start + n];
                let differing = old.iter().zip(new).filter(|(a, b)| a != b).count() as u64;
                if differing > 0 {
                    if limits.overlap == OverlapPolicy::Last {
                        old.copy_from_slice(new);
                    }
                    self.anomalies.insert(Anomaly::TcpOverlapConflict);
                    out.anomaly(Anomaly::TcpOverlapConflict);
                }
                let c = out.counters();
                c.overlaps_conflicting += differing;
                c.retransmitted_bytes += n as u64 - differing;
                pos += n;
                continue;
            }
            // Not buffered: up to the next buffered entry.
            let next_key = self.ooo.range(piece_off..).next().map(|(k, _)| *k);
            let n = match next_key {
                Some(k) => ((k - piece_off) as usize).min(payload.len() - pos),
                None => payload.len() - pos,
            };
            if piece_off == self.next_off {
                // Became in order after a skip: deliver without buffering.
                out.data(&payload[pos..pos + n]);
                self.advance(n as u64);
                pos += n;
                self.drain(mem, out);
                continue;
            }
            let cost = n + SEGMENT_OVERHEAD;
            let stream_bound = self.charged + cost > limits.max_buffer;
            if stream_bound || mem.used + mem.reserved + cost > mem.max {
                // Over a bound: give up on the oldest hole rather than stall or drop new data.
                let hole_end = self.ooo.keys().next().copied().unwrap_or(piece_off).min(piece_off);
                let hole = hole_end - self.next_off;
                {
                    let c = out.counters();
                    if stream_bound {
                        c.depth_exceeded_bytes += hole;
                    } else {
                        c.memory_exceeded_bytes += hole;
                    }
                }
                self.skip(hole, out);
                self.drain(mem, out);
                continue;
            }
            if pos == 0 {
                out.counters().out_of_order_segments += 1;
            }
            let ts = out.packet_time();
            self.ooo.insert(
                piece_off,
                Buffered {
                    data: payload[pos..pos + n].to_vec(),
                    ts,
                },
            );
            self.charged += cost;
            mem.used += cost;
            mem.peak = mem.peak.max(mem.used);
            pos += n;
        }
        self.drain(mem, out);
    }

    fn clip_to_depth(&self, len: u64, limits: &StreamLimits) -> u64 {
        if limits.depth == 0 {
            len
        } else {
            len.min(limits.depth.saturating_sub(self.next_off))
        }
    }

    /// Reports `len` bytes at the current offset as missing and moves past them.
    fn skip(&mut self, len: u64, out: &mut impl Reassembled) {
        if len == 0 {
            return;
        }
        let c = out.counters();
        c.gaps += 1;
        c.gap_bytes += len;
        out.gap(len);
        self.advance(len);
    }

    /// Delivers buffered data that is now contiguous.
    fn drain(&mut self, mem: &mut MemoryBudget, out: &mut impl Reassembled) {
        let mut delivered = false;
        while let Some(entry) = self.ooo.first_entry() {
            let k = *entry.key();
            if k > self.next_off {
                break;
            }
            let Buffered { data, ts } = entry.remove();
            let cost = data.len() + SEGMENT_OVERHEAD;
            self.charged = self.charged.saturating_sub(cost);
            mem.used = mem.used.saturating_sub(cost);
            let skip = ((self.next_off - k) as usize).min(data.len());
            if skip < data.len() {
                out.captured_at(Some(ts));
                delivered = true;
                out.data(&data[skip..]);
                self.advance((data.len() - skip) as u64);
            }
        }
        if delivered {
            out.captured_at(None);
        }
    }

    fn check_end(&mut self, limits: &StreamLimits, out: &mut impl Reassembled) {
        if self.ended {
            return;
        }
        if let Some(fin) = self.fin_off {
            let depth_reached = limits.depth > 0 && self.next_off >= limits.depth;
            if self.next_off >= fin || depth_reached {
                self.ended = true;
                out.end();
            }
        }
    }

    /// The peer acknowledged up to `ack`. Bytes below it that were never seen were lost by the
    /// capture (the receiver had them). They are reported as a gap once the connection has
    /// carried [`ACK_GRACE_PACKETS`] more packets without them showing up: taps and SPAN ports
    /// reorder the two directions slightly, so an ACK may be captured before the data it
    /// acknowledges. An ACK one past the data is the ACK of a FIN the capture missed, not a lost byte.
    pub fn acked(&mut self, ack: u32) {
        if !self.started || self.ended {
            return;
        }
        let ack_off = self.offset_of(ack);
        if ack_off <= self.next_off as i64 {
            return;
        }
        let mut ack_off = ack_off as u64;
        if ack_off - self.next_off > MAX_WINDOW {
            return;
        }
        match self.fin_off {
            Some(fin) => ack_off = ack_off.min(fin),
            None if self.ooo.is_empty() && ack_off == self.next_off + 1 => return,
            None => {}
        }
        if ack_off > self.acked_off {
            self.acked_off = ack_off;
            if self.ack_grace == 0 {
                self.ack_grace = ACK_GRACE_PACKETS;
            }
        }
    }

    /// One more packet of the connection went by: when an acknowledged hole outlived its grace,
    /// skip it.
    #[inline]
    pub fn tick(&mut self, limits: &StreamLimits, mem: &mut MemoryBudget, out: &mut impl Reassembled) {
        if self.ack_grace == 0 {
            return;
        }
        if self.ended || self.acked_off <= self.next_off {
            // The data came after all.
            self.ack_grace = 0;
            return;
        }
        self.ack_grace -= 1;
        if self.ack_grace == 0 {
            self.skip_acked(limits, mem, out);
        }
    }

    /// Reports the acknowledged-but-unseen bytes as gaps and delivers what follows them.
    fn skip_acked(&mut self, limits: &StreamLimits, mem: &mut MemoryBudget, out: &mut impl Reassembled) {
        let ack_off = self.acked_off;
        while self.next_off < ack_off {
            let hole_end = self.ooo.keys().next().map_or(ack_off, |k| (*k).min(ack_off));
            let len = self.clip_to_depth(hole_end.saturating_sub(self.next_off), limits);
            if len == 0 {
                break;
            }
            self.skip(len, out);
            self.drain(mem, out);
        }
        self.check_end(limits, out);
    }

    /// The connection is going away (close, RST, timeout, eviction, shutdown): deliver what is
    /// buffered, reporting holes as gaps. With `end`, the direction also ends (FIN seen or RST).
    pub fn flush(&mut self, end: bool, limits: &StreamLimits, mem: &mut MemoryBudget, out: &mut impl Reassembled) {
        if self.ended {
            return;
        }
        while let Some(k) = self.ooo.keys().next().copied() {
            let len = self.clip_to_depth(k - self.next_off, limits);
            if len == 0 {
                // Past the depth: release the rest without delivering.
                self.release(mem);
                break;
            }
            self.skip(len, out);
            self.drain(mem, out);
        }
        // Bytes the peer acknowledged (or that precede the FIN) were sent: report them missing.
        let sent_up_to = self.fin_off.unwrap_or(0).max(self.acked_off);
        if sent_up_to > self.next_off {
            let len = self.clip_to_depth(sent_up_to - self.next_off, limits);
            self.skip(len, out);
        }
        self.ack_grace = 0;
        if end || self.fin_off.is_some() {
            self.ended = true;
            out.end();
        }
    }

    /// Drops all buffered data (the parser no longer wants this stream).
    pub fn release(&mut self, mem: &mut MemoryBudget) {
        mem.used = mem.used.saturating_sub(self.charged);
        self.charged = 0;
        self.ooo.clear();
    }
}

#[cfg(test)]
mod tests;
