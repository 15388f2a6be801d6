use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u64),
    End,
}

#[derive(Default)]
struct Rec {
    evs: Vec<Ev>,
    stats: TcpStats,
    /// The packet time the test sets, and the time each delivery was said to be captured at.
    now: Timestamp,
    at: Option<Timestamp>,
    delivered_at: Vec<Timestamp>,
}

impl Reassembled for Rec {
    fn packet_time(&self) -> Timestamp {
        self.now
    }
    fn captured_at(&mut self, ts: Option<Timestamp>) {
        self.at = ts;
    }
    fn data(&mut self, data: &[u8]) {
        self.delivered_at.push(self.at.unwrap_or(self.now));
        // Adjacent deliveries are merged: how bytes are split is not part of the contract.
        if let Some(Ev::Data(d)) = self.evs.last_mut() {
            d.extend_from_slice(data);
        } else {
            self.evs.push(Ev::Data(data.to_vec()));
        }
    }
    fn gap(&mut self, len: u64) {
        self.evs.push(Ev::Gap(len));
    }
    fn end(&mut self) {
        self.evs.push(Ev::End);
    }
    fn counters(&mut self) -> &mut TcpStats {
        &mut self.stats
    }
}

const LIMITS: StreamLimits = StreamLimits {
    max_buffer: 1 << 20,
    depth: 0,
    overlap: OverlapPolicy::First,
};

struct T {
    s: Stream,
    mem: MemoryBudget,
    out: Rec,
    limits: StreamLimits,
}

impl T {
    fn new(isn: u32) -> T {
        let mut s = Stream::new();
        s.syn(isn);
        T {
            s,
            mem: MemoryBudget::new(1 << 30),
            out: Rec::default(),
            limits: LIMITS,
        }
    }
    /// Data at offset `off` from isn+1.
    fn seg(&mut self, seq: u32, data: &[u8]) {
        self.s
            .segment(seq, data, 0, false, &self.limits, &mut self.mem, &mut self.out);
    }
    fn fin(&mut self, seq: u32, data: &[u8]) {
        self.s
            .segment(seq, data, 0, true, &self.limits, &mut self.mem, &mut self.out);
    }
    /// An ACK, then enough packets for its grace to run out.
    fn ack(&mut self, ack: u32) {
        self.s.acked(ack);
        for _ in 0..ACK_GRACE_PACKETS {
            self.tick();
        }
    }
    fn tick(&mut self) {
        self.s.tick(&self.limits, &mut self.mem, &mut self.out);
    }
    fn flush(&mut self, end: bool) {
        self.s.flush(end, &self.limits, &mut self.mem, &mut self.out);
    }
    fn evs(&self) -> Vec<Ev> {
        self.out.evs.clone()
    }
}

fn d(s: &[u8]) -> Ev {
    Ev::Data(s.to_vec())
}

#[test]
fn in_order_data_is_delivered_directly() {
    let mut t = T::new(100);
    t.seg(101, b"hello ");
    t.seg(107, b"world");
    t.fin(112, b"");
    assert_eq!(t.evs(), vec![d(b"hello world"), Ev::End]);
    assert_eq!(t.out.stats.out_of_order_segments, 0);
    assert_eq!(t.mem.used, 0);
}

#[test]
fn out_of_order_segments_are_reordered() {
    let mut t = T::new(0);
    t.seg(7, b"world");
    t.seg(12, b"!");
    assert_eq!(t.evs(), vec![]);
    assert!(t.mem.used > 0);
    t.seg(1, b"hello ");
    assert_eq!(t.evs(), vec![d(b"hello world!")]);
    assert_eq!(t.out.stats.out_of_order_segments, 2);
    assert_eq!(t.mem.used, 0, "buffer memory is returned");
    assert_eq!(t.s.buffered_bytes(), 0);
}

#[test]
fn retransmissions_are_dropped_and_counted() {
    let mut t = T::new(0);
    t.seg(1, b"abcdef");
    t.seg(1, b"abcdef");
    t.seg(4, b"defghi"); // 3 old bytes, 3 new
    assert_eq!(t.evs(), vec![d(b"abcdefghi")]);
    assert_eq!(t.out.stats.retransmitted_bytes, 9);
}

#[test]
fn first_copy_wins_and_conflicts_are_counted() {
    let mut t = T::new(0);
    t.seg(5, b"EFGH"); // buffered first
    t.seg(3, b"cdXYZj"); // overlaps EFGH with XYZj: E,F,G differ from X,Y,Z? (E/X F/Y G/Z H/j)
    t.seg(1, b"ab");
    assert_eq!(t.evs(), vec![d(b"abcdEFGH")]);
    assert_eq!(t.out.stats.overlaps_conflicting, 4);
    // Identical overlaps are plain retransmissions.
    let mut t = T::new(0);
    t.seg(5, b"EFGH");
    t.seg(3, b"cdEFGHij");
    t.seg(1, b"ab");
    assert_eq!(t.evs(), vec![d(b"abcdEFGHij")]);
    assert_eq!(t.out.stats.overlaps_conflicting, 0);
    assert_eq!(t.out.stats.retransmitted_bytes, 4);
}

#[test]
fn ack_beyond_a_hole_reports_a_gap() {
    let mut t = T::new(0);
    t.seg(1, b"abc");
    t.seg(8, b"hij"); // hole 4..8 (defg)
    assert_eq!(t.evs(), vec![d(b"abc")]);
    t.ack(6); // the peer got up to 'e': not yet past the hole's end
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(2)]);
    t.ack(11); // past the hole: the rest of it was lost by the capture
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(2), Ev::Gap(2), d(b"hij")]);
    assert_eq!(t.out.stats.gaps, 2);
    assert_eq!(t.out.stats.gap_bytes, 4);
    // A late copy of the lost bytes is old now.
    t.seg(4, b"defg");
    assert_eq!(t.out.stats.retransmitted_bytes, 4);
}

#[test]
fn ack_beyond_unseen_data_reports_a_gap_but_not_for_a_lost_fin() {
    let mut t = T::new(0);
    t.seg(1, b"abc");
    t.ack(5); // one past the data: the ACK of a FIN the capture missed
    assert_eq!(t.evs(), vec![d(b"abc")]);
    t.ack(10); // 6 bytes the capture never saw
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(6)]);
    t.seg(10, b"jk");
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(6), d(b"jk")]);
}

#[test]
fn ack_of_a_fin_is_not_a_gap() {
    let mut t = T::new(0);
    t.fin(1, b"abc");
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::End]);
    t.ack(5);
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::End]);
}

#[test]
fn fin_waits_for_missing_data() {
    let mut t = T::new(0);
    t.fin(4, b"def");
    assert_eq!(t.evs(), vec![]);
    t.seg(1, b"abc");
    assert_eq!(t.evs(), vec![d(b"abcdef"), Ev::End]);
}

#[test]
fn flush_reports_holes_and_ends_on_rst() {
    let mut t = T::new(0);
    t.seg(1, b"ab");
    t.seg(5, b"ef");
    t.seg(9, b"ij");
    t.flush(true);
    assert_eq!(
        t.evs(),
        vec![d(b"ab"), Ev::Gap(2), d(b"ef"), Ev::Gap(2), d(b"ij"), Ev::End]
    );
    assert_eq!(t.mem.used, 0);
    // Nothing after the end.
    t.seg(11, b"kl");
    assert_eq!(t.evs().len(), 6);
}

#[test]
fn flush_without_fin_does_not_end() {
    let mut t = T::new(0);
    t.seg(1, b"ab");
    t.flush(false);
    assert_eq!(t.evs(), vec![d(b"ab")]);
    // With a FIN whose data never came: the missing bytes are a gap, then the end.
    let mut t = T::new(0);
    t.seg(1, b"ab");
    t.fin(6, b"");
    t.flush(false);
    assert_eq!(t.evs(), vec![d(b"ab"), Ev::Gap(3), Ev::End]);
}

#[test]
fn sequence_numbers_wrap_around() {
    let isn = u32::MAX - 3;
    let mut t = T::new(isn);
    // Offsets 0..10 straddle 2^32.
    t.seg(isn.wrapping_add(1), b"abc");
    t.seg(isn.wrapping_add(7), b"ghij"); // out of order, after the wrap
    t.seg(isn.wrapping_add(4), b"def"); // crosses the wrap
    t.fin(isn.wrapping_add(11), b"");
    assert_eq!(t.evs(), vec![d(b"abcdefghij"), Ev::End]);
    assert_eq!(t.s.offset(), 10);
}

#[test]
fn midstream_pickup_starts_at_the_first_byte_seen() {
    let mut s = Stream::new();
    let mut mem = MemoryBudget::new(1 << 20);
    let mut out = Rec::default();
    s.segment(5_000_000, b"xyz", 0, false, &LIMITS, &mut mem, &mut out);
    s.segment(5_000_003, b"uvw", 0, false, &LIMITS, &mut mem, &mut out);
    assert!(s.is_started());
    assert_eq!(out.evs, vec![d(b"xyzuvw")]);
}

#[test]
fn per_stream_buffer_bound_skips_the_oldest_hole() {
    let mut t = T::new(0);
    t.limits = StreamLimits {
        max_buffer: 2 * (100 + SEGMENT_OVERHEAD),
        depth: 0,
        overlap: OverlapPolicy::First,
    };
    let block = [b'x'; 100];
    t.seg(101, &block); // hole 1..101
    t.seg(201, &block);
    assert_eq!(t.evs(), vec![]);
    t.seg(301, &block); // would exceed the bound: the hole is given up
    assert_eq!(t.evs(), vec![Ev::Gap(100), d(&[b'x'; 300])]);
    assert_eq!(t.out.stats.depth_exceeded_bytes, 100);
    assert_eq!(t.mem.used, 0);
}

#[test]
fn global_memory_bound_skips_holes() {
    let mut t = T::new(0);
    t.mem = MemoryBudget::new(150 + SEGMENT_OVERHEAD);
    t.seg(11, &[b'a'; 100]); // fits
    t.seg(121, &[b'b'; 100]); // does not: the first hole (10 bytes) is skipped
    assert_eq!(t.evs(), vec![Ev::Gap(10), d(&[b'a'; 100])]);
    assert_eq!(t.out.stats.memory_exceeded_bytes, 10);
    assert!(t.mem.used <= t.mem.max);
    t.ack(221);
    assert_eq!(
        t.evs(),
        vec![Ev::Gap(10), d(&[b'a'; 100]), Ev::Gap(10), d(&[b'b'; 100])]
    );
    assert_eq!(t.mem.used, 0);
}

#[test]
fn reassembly_depth_cuts_each_direction() {
    let mut t = T::new(0);
    t.limits = StreamLimits {
        max_buffer: 1 << 20,
        depth: 5,
        overlap: OverlapPolicy::First,
    };
    t.seg(1, b"abc");
    t.seg(4, b"defgh");
    t.seg(9, b"ijk");
    t.fin(12, b"");
    assert_eq!(t.evs(), vec![d(b"abcde"), Ev::End]);
    assert_eq!(t.out.stats.depth_exceeded_bytes, 6);
}

#[test]
fn segments_far_beyond_the_window_are_dropped() {
    let mut t = T::new(0);
    t.seg(1, b"abc");
    t.seg(1 + (1 << 31) - 10, b"junk");
    t.ack(2_000_000_000);
    t.seg(4, b"def");
    assert_eq!(t.evs(), vec![d(b"abcdef")]);
    assert_eq!(t.out.stats.out_of_window_bytes, 4);
    assert_eq!(t.mem.used, 0);
}

#[test]
fn bytes_past_the_receivers_window_are_kept_counted_and_marked() {
    let mut t = T::new(0);
    // No window seen yet: nothing to check against.
    t.seg(1, b"abc");
    assert_eq!(t.out.stats.outside_advertised_window_bytes, 0);
    // Acknowledged up to offset 3 with 4 bytes of window: the edge is offset 7.
    t.s.window(4, 4);
    // An older, smaller offer seen late does not pull it back.
    t.s.window(1, 2);
    t.seg(4, b"defg");
    assert_eq!(t.out.stats.outside_advertised_window_bytes, 0);
    // Everything acknowledged, the window closed: a zero-window probe (one byte) is let through.
    t.s.window(8, 0);
    t.seg(8, b"h");
    assert!(t.s.anomalies().is_empty());
    // Three past the edge (one already taken as the probe): kept, counted and marked.
    t.seg(8, b"hij");
    assert_eq!(t.evs(), vec![d(b"abcdefghij")]);
    assert_eq!(t.out.stats.outside_advertised_window_bytes, 2);
    assert!(t.s.anomalies().contains(Anomaly::TcpOutsideWindow));
    // Sent again once the window opened, the delivered bytes are retransmissions, not counted.
    t.s.window(11, 100);
    t.seg(8, b"hijk");
    assert_eq!(t.out.stats.outside_advertised_window_bytes, 2);

    // One byte at an edge whose window is open is no probe.
    let mut t = T::new(0);
    t.s.window(1, 2);
    t.seg(1, b"ab");
    t.seg(3, b"c");
    assert_eq!(t.out.stats.outside_advertised_window_bytes, 1);
}

#[test]
fn snaplen_cut_payload_becomes_a_gap() {
    let mut t = T::new(0);
    t.s.segment(1, b"abc", 7, false, &LIMITS, &mut t.mem, &mut t.out);
    t.seg(11, b"klm");
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(7), d(b"klm")]);
}

#[test]
fn many_tiny_out_of_order_segments_stay_bounded() {
    let mut t = T::new(0);
    t.mem = MemoryBudget::new(64 * 1024);
    // Every other byte for a long stretch: each is its own buffered segment.
    for i in 0..20_000u32 {
        t.seg(2 + 2 * i, b"x");
        assert!(t.mem.used <= t.mem.max);
    }
    t.flush(false);
    assert_eq!(t.mem.used, 0);
    let data: usize = t
        .evs()
        .iter()
        .map(|e| if let Ev::Data(d) = e { d.len() } else { 0 })
        .sum();
    assert_eq!(data, 20_000);
}

#[test]
fn data_captured_after_its_ack_is_not_a_gap() {
    // Taps reorder directions: the ACK of "def" is captured before "def" itself.
    let mut t = T::new(0);
    t.seg(1, b"abc");
    t.s.acked(7);
    t.tick();
    t.tick();
    t.seg(4, b"def");
    for _ in 0..2 * ACK_GRACE_PACKETS {
        t.tick();
    }
    assert_eq!(t.evs(), vec![d(b"abcdef")]);
    assert_eq!(t.out.stats.gaps, 0);
}

#[test]
fn acknowledged_tail_never_seen_is_missing_at_close() {
    let mut t = T::new(0);
    t.seg(1, b"abc");
    t.s.acked(11);
    t.flush(false);
    assert_eq!(t.evs(), vec![d(b"abc"), Ev::Gap(7)]);
}

#[test]
fn syn_ack_sets_the_start_of_a_stream_whose_syn_was_missed() {
    let mut s = Stream::new();
    s.expect(501);
    let mut mem = MemoryBudget::new(1 << 20);
    let mut out = Rec::default();
    // The first data segment was lost too: what follows is out of order, not a new start.
    s.segment(511, b"later", 0, false, &LIMITS, &mut mem, &mut out);
    s.flush(false, &LIMITS, &mut mem, &mut out);
    assert_eq!(out.evs, vec![Ev::Gap(10), d(b"later")]);
}

#[test]
fn buffered_bytes_are_delivered_with_the_time_they_were_captured() {
    let mut t = T::new(0);
    t.out.now = Timestamp::from_secs(1);
    t.seg(1, b"ab");
    t.out.now = Timestamp::from_secs(2);
    t.seg(5, b"ef"); // waits for the hole at offsets 2..4
    t.out.now = Timestamp::from_secs(3);
    t.seg(3, b"cd"); // fills it: "cd" now, then "ef" as captured at 2 s
    t.out.now = Timestamp::from_secs(4);
    t.seg(7, b"gh");
    assert_eq!(t.out.evs, [Ev::Data(b"abcdefgh".to_vec())]);
    let secs: Vec<u64> = t
        .out
        .delivered_at
        .iter()
        .map(|ts| ts.as_nanos() / 1_000_000_000)
        .collect();
    assert_eq!(
        secs,
        [1, 3, 2, 4],
        "buffered bytes keep their capture time; later ones the packet's"
    );
}

mod properties {
    //! For any cut of a stream into segments, any order they arrive in, with duplicates and
    //! same-data overlapping retransmissions, and any initial sequence number (wraparound in the
    //! middle included): reassembly delivers exactly the stream's bytes, once, in order, ends it,
    //! and gives back every byte of buffer memory.
    use super::*;
    use proptest::prelude::*;

    /// A stream, and the pieces it is sent as: (offset, length, with FIN).
    fn sent() -> impl Strategy<Value = (u32, Vec<u8>, Vec<(usize, usize, bool)>)> {
        let isn = prop_oneof![any::<u32>(), (0u32..4096).prop_map(|d| u32::MAX - d)];
        (isn, proptest::collection::vec(any::<u8>(), 1..3000)).prop_flat_map(|(isn, data)| {
            let len = data.len();
            let cuts = proptest::collection::vec(1..len.max(2), 0..24);
            // Extra copies: (a piece index, its start moved back by some bytes, the end moved on).
            let extra = proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..64, 0usize..64), 0..12);
            (Just(isn), Just(data), cuts, extra).prop_map(move |(isn, data, mut cuts, extra)| {
                cuts.push(0);
                cuts.push(len);
                cuts.sort_unstable();
                cuts.dedup();
                let mut pieces: Vec<(usize, usize, bool)> =
                    cuts.windows(2).map(|w| (w[0], w[1] - w[0], w[1] == len)).collect();
                let base = pieces.clone();
                for (i, back, on) in extra {
                    let (off, n, _) = base[i.index(base.len())];
                    let start = off.saturating_sub(back);
                    let end = (off + n + on).min(len);
                    pieces.push((start, end - start, end == len));
                }
                (isn, data, pieces)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn any_order_and_duplicates_deliver_the_stream_once((isn, data, pieces) in sent(), order in any::<u64>()) {
            let mut pieces = pieces;
            // A permutation from the seed (Fisher-Yates with a small xorshift).
            let mut x = order | 1;
            for i in (1..pieces.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                pieces.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut t = T::new(isn);
            for (off, n, fin) in &pieces {
                let seq = isn.wrapping_add(1).wrapping_add(*off as u32);
                let bytes = &data[*off..off + n];
                if *fin {
                    t.fin(seq, bytes);
                } else {
                    t.seg(seq, bytes);
                }
            }
            t.flush(true);
            prop_assert_eq!(t.evs(), vec![Ev::Data(data.clone()), Ev::End]);
            prop_assert_eq!(t.mem.used, 0, "buffer memory is returned");
            prop_assert_eq!(t.out.stats.gaps, 0);
            prop_assert_eq!(t.out.stats.overlaps_conflicting, 0);
        }
    }
}
