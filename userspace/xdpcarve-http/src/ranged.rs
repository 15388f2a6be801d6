//! HTTP 206 range responses: pieces of one object (same host, URI, ETag and total size), possibly
//! over several connections of the worker, placed at their Content-Range offsets to form one file.
//!
//! One [`FileAnalyzer`] per object. Bytes that continue the hashed prefix are hashed as they
//! arrive; a piece that starts beyond it is buffered (bounded per object by `max_range_buffer`).
//! When the buffer would overflow, the hole before the earliest buffered piece is given up as
//! missing (the hashes are then dropped, as for any file with a hole) and the sizes stay right.
//! An object whose bytes `0..total` were all accounted for is finished at once; incomplete ones
//! leave by [`RangedFiles::expire`] or [`RangedFiles::flush_all`] as partial, truncated records.

use crate::info::RANGE;
use crate::state::HttpStats;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use xdpcarve_contract::{FileSink, Timestamp};
use xdpcarve_files::{FileAnalyzer, FileEnd};

/// Identity of a ranged object. Pieces with equal keys are parts of the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RangeKey {
    pub host: String,
    pub uri: String,
    pub etag: Option<String>,
    /// Complete length from Content-Range (`bytes a-b/total`).
    pub total: u64,
}

/// Where one response's body goes: the next byte of this piece lands at `pos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePiece {
    id: u64,
    pos: u64,
    /// One past the last byte the Content-Range announced.
    end: u64,
}

impl RangePiece {
    /// Offset of the next byte of this piece in the object.
    pub fn pos(&self) -> u64 {
        self.pos
    }
    /// True once every byte the piece announced was placed.
    pub fn is_full(&self) -> bool {
        self.pos >= self.end
    }
}

/// Buffered out-of-order content, or a hole a piece reported (capture loss inside a piece).
enum Held {
    Data(Vec<u8>),
    Missing(u64),
}

impl Held {
    fn len(&self) -> u64 {
        match self {
            Held::Data(d) => d.len() as u64,
            Held::Missing(n) => *n,
        }
    }
}

struct RangedObject {
    key: RangeKey,
    file: FileAnalyzer,
    total: u64,
    /// Bytes `0..next` went into the file (hashed, or declared missing).
    next: u64,
    held: BTreeMap<u64, Held>,
    /// Data bytes in `held`.
    buffered: usize,
    /// Span of the Content-Ranges seen, for `http_range`.
    lo: u64,
    hi: u64,
    last_seen: Timestamp,
}

impl RangedObject {
    fn is_complete(&self) -> bool {
        self.next >= self.total
    }

    /// Places `data` at offset `at`; see the module docs for the policy.
    fn place(&mut self, at: u64, mut data: &[u8], max_buffer: usize, stats: &mut HttpStats) {
        let mut at = at;
        let end = at + data.len() as u64;
        if end <= self.next || data.is_empty() {
            return; // already have these bytes (a repeated range)
        }
        if at < self.next {
            data = &data[(self.next - at) as usize..];
            at = self.next;
        }
        if at == self.next {
            self.file.update(data);
            self.next += data.len() as u64;
            self.drain();
            return;
        }
        // Out of order. Make room by giving up the earliest holes, then hold the data.
        while self.buffered + data.len() > max_buffer {
            let Some((&start, _)) = self.held.first_key_value() else {
                break;
            };
            if start >= at {
                break;
            }
            self.skip_to(start, stats);
            self.drain();
            if at <= self.next {
                return self.place(at, data, max_buffer, stats);
            }
        }
        if self.buffered + data.len() > max_buffer {
            // Even alone it does not fit: give up the hole up to it and hash it in place.
            self.skip_to(at, stats);
            self.file.update(data);
            self.next += data.len() as u64;
            self.drain();
            return;
        }
        self.hold(at, data);
    }

    /// Appends to the held piece that ends exactly at `at` (a connection's next segment), so
    /// steady out-of-order streaming grows one buffer instead of allocating per packet.
    fn hold(&mut self, at: u64, data: &[u8]) {
        if let Some((&start, Held::Data(buf))) = self.held.range_mut(..at).next_back() {
            if start + buf.len() as u64 == at {
                buf.extend_from_slice(data);
                self.buffered += data.len();
                return;
            }
        }
        match self.held.get(&at) {
            Some(h) if h.len() >= data.len() as u64 => return,
            Some(Held::Data(old)) => self.buffered -= old.len(),
            _ => {}
        }
        self.buffered += data.len();
        self.held.insert(at, Held::Data(data.to_vec()));
    }

    /// Declares `next..to` missing.
    fn skip_to(&mut self, to: u64, stats: &mut HttpStats) {
        if to > self.next {
            self.file.gap(to - self.next);
            self.next = to;
            stats.range_gaps += 1;
        }
    }

    /// Feeds held pieces that the prefix now reaches.
    fn drain(&mut self) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let held = entry.remove();
            let end = start + held.len();
            if let Held::Data(d) = &held {
                self.buffered -= d.len();
            }
            if end <= self.next {
                continue;
            }
            let skip = (self.next - start) as usize;
            match held {
                Held::Data(d) => self.file.update(&d[skip..]),
                Held::Missing(n) => self.file.gap(n - skip as u64),
            }
            self.next = end;
        }
    }

    /// Turns the object into its final record: everything held is placed, every byte never seen
    /// counts as missing.
    fn close_into(mut self, files: &mut FileSink, now: Timestamp, end: FileEnd) {
        let mut ignore = HttpStats::default();
        while let Some((&start, _)) = self.held.first_key_value() {
            self.skip_to(start, &mut ignore);
            self.drain();
        }
        if let FileEnd::Truncated(_) = end {
            if self.total > self.next {
                self.file.gap(self.total - self.next);
            }
        }
        let (lo, hi, total) = (self.lo, self.hi, self.total);
        let meta = self.file.meta_mut();
        meta.partial = matches!(end, FileEnd::Truncated(_));
        meta.total_bytes = Some(total);
        meta.fields.set(RANGE, format!("{lo}-{hi}/{total}"));
        self.file.close_into(files, now, end);
    }
}

/// The 206 objects of one worker.
#[derive(Default)]
pub struct RangedFiles {
    objects: HashMap<u64, RangedObject>,
    by_key: HashMap<RangeKey, u64>,
    next_id: u64,
    /// Out-of-order bytes held over all objects; bounded by `WORKER_BUFFER_FACTOR` times the
    /// per-object bound, so many objects cannot each fill their own buffer.
    buffered: usize,
}

/// The worker-wide out-of-order buffer, in multiples of the per-object `max_range_buffer`.
pub const WORKER_BUFFER_FACTOR: usize = 4;

impl RangedFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Objects being assembled.
    pub fn len(&self) -> usize {
        self.objects.len()
    }
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn contains(&self, key: &RangeKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Starts assembling a new object into `file` (opened by the parser with the first piece's
    /// metadata). If `max_objects` are already open, the one idle longest is evicted and returned
    /// for the caller to close as truncated.
    pub fn add_object(
        &mut self,
        key: RangeKey,
        file: FileAnalyzer,
        now: Timestamp,
        max_objects: usize,
    ) -> Option<FileAnalyzer> {
        let mut evicted = None;
        if self.objects.len() >= max_objects.max(1) {
            if let Some((&id, _)) = self.objects.iter().min_by_key(|(id, o)| (o.last_seen, **id)) {
                evicted = self.remove(id).map(|o| {
                    let mut f = o.file;
                    f.meta_mut().partial = true;
                    f
                });
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let total = key.total;
        self.by_key.insert(key.clone(), id);
        self.objects.insert(
            id,
            RangedObject {
                key,
                file,
                total,
                next: 0,
                held: BTreeMap::new(),
                buffered: 0,
                lo: u64::MAX,
                hi: 0,
                last_seen: now,
            },
        );
        evicted
    }

    /// A response carrying bytes `first..=last` of the object `key` (which must have been added).
    pub fn start_piece(&mut self, key: &RangeKey, first: u64, last: u64, now: Timestamp) -> Option<RangePiece> {
        let id = *self.by_key.get(key)?;
        let o = self.objects.get_mut(&id)?;
        let last = last.min(o.total.saturating_sub(1));
        o.lo = o.lo.min(first);
        o.hi = o.hi.max(last);
        o.last_seen = now;
        Some(RangePiece {
            id,
            pos: first,
            end: last.saturating_add(1),
        })
    }

    /// The next body bytes of `piece`. Returns the object's file once every byte of it was
    /// accounted for; the caller closes it (`FileEnd::Complete`).
    pub fn write(
        &mut self,
        piece: &mut RangePiece,
        data: &[u8],
        now: Timestamp,
        max_buffer: usize,
        stats: &mut HttpStats,
    ) -> Option<FileAnalyzer> {
        let at = piece.pos;
        let room = piece.end.saturating_sub(at);
        let data = &data[..(data.len() as u64).min(room) as usize];
        piece.pos += data.len() as u64;
        let worker_room = (max_buffer.saturating_mul(WORKER_BUFFER_FACTOR)).saturating_sub(self.buffered);
        let o = self.objects.get_mut(&piece.id)?;
        o.last_seen = now;
        let before = o.buffered;
        // This object may hold what it holds already plus what the worker has left.
        let limit = max_buffer.min(before + worker_room);
        o.place(at, data, limit, stats);
        self.buffered = self.buffered - before + o.buffered;
        self.take_if_complete(piece.id, now)
    }

    /// `len` bytes of `piece` were not captured.
    pub fn gap(&mut self, piece: &mut RangePiece, len: u64, now: Timestamp) -> Option<FileAnalyzer> {
        let at = piece.pos;
        let len = len.min(piece.end.saturating_sub(at));
        piece.pos += len;
        let o = self.objects.get_mut(&piece.id)?;
        o.last_seen = now;
        if len == 0 || at + len <= o.next {
            return None;
        }
        let before = o.buffered;
        if at <= o.next {
            o.file.gap(at + len - o.next);
            o.next = at + len;
            o.drain();
        } else {
            o.held.entry(at).or_insert(Held::Missing(len));
        }
        self.buffered = self.buffered - before + o.buffered;
        self.take_if_complete(piece.id, now)
    }

    fn take_if_complete(&mut self, id: u64, now: Timestamp) -> Option<FileAnalyzer> {
        if !self.objects.get(&id)?.is_complete() {
            return None;
        }
        let o = self.remove(id)?;
        let (lo, hi, total) = (o.lo, o.hi, o.total);
        let mut file = o.file;
        let _ = now;
        let meta = file.meta_mut();
        meta.partial = false;
        meta.total_bytes = Some(total);
        meta.fields.set(RANGE, format!("{lo}-{hi}/{total}"));
        Some(file)
    }

    fn remove(&mut self, id: u64) -> Option<RangedObject> {
        let o = self.objects.remove(&id)?;
        self.by_key.remove(&o.key);
        self.buffered -= o.buffered;
        Some(o)
    }

    /// Emits every object still incomplete as a partial, truncated record (end of capture).
    pub fn flush_all(&mut self, now: Timestamp, files: &mut FileSink) {
        let mut ids: Vec<u64> = self.objects.keys().copied().collect();
        ids.sort_unstable(); // deterministic record order
        for id in ids {
            self.emit_incomplete(id, now, files);
        }
    }

    /// When the idlest object will have been idle for `idle`, if there is one.
    pub fn next_expiry(&self, idle: Duration) -> Option<Timestamp> {
        self.objects
            .values()
            .map(|o| o.last_seen)
            .min()
            .map(|t| t.saturating_add(idle))
    }

    /// Emits objects with no new piece for `idle`.
    pub fn expire(&mut self, now: Timestamp, idle: Duration, files: &mut FileSink) {
        let mut ids: Vec<u64> = self
            .objects
            .iter()
            .filter(|(_, o)| now.since(o.last_seen) >= idle)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.emit_incomplete(id, now, files);
        }
    }

    fn emit_incomplete(&mut self, id: u64, now: Timestamp, files: &mut FileSink) {
        if let Some(o) = self.remove(id) {
            o.close_into(files, now, FileEnd::Truncated("range_incomplete"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use xdpcarve_contract::{ConnMeta, Direction, FileConfig, FileMeta, FileRecord};

    fn sink() -> FileSink {
        FileSink::new(FileConfig::default())
    }

    /// Closes a finished object's file and returns its record.
    fn finish(f: FileAnalyzer, now: Timestamp) -> FileRecord {
        let mut files = sink();
        f.close_into(&mut files, now, FileEnd::Complete);
        files.records.pop().expect("one record")
    }

    fn conn() -> ConnMeta {
        ConnMeta {
            id: 1,
            files_opened: Default::default(),
            uid: "C1".into(),
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 40000,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 80,
            vlan: None,
            start: Timestamp::ZERO,
        }
    }

    fn key(total: u64) -> RangeKey {
        RangeKey {
            host: "h".into(),
            uri: "/f.bin".into(),
            etag: Some("\"e\"".into()),
            total,
        }
    }

    fn file() -> FileAnalyzer {
        let meta = FileMeta::new(crate::PROTO, Direction::Download);
        FileAnalyzer::new(
            &conn(),
            meta,
            "F1".into(),
            Timestamp::from_secs(1),
            &FileConfig::default(),
        )
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sha(d: &[u8]) -> String {
        xdpcarve_files::hex(&Sha256::digest(d))
    }

    /// Sends `pieces` (first, last) in the given order, each in `seg`-byte segments, interleaving
    /// nothing; returns the finished file if it completed.
    fn run(
        total: usize,
        pieces: &[(usize, usize)],
        seg: usize,
        max_buffer: usize,
    ) -> (RangedFiles, Option<FileRecord>) {
        let d = data(total);
        let mut r = RangedFiles::new();
        let mut stats = HttpStats::default();
        let k = key(total as u64);
        r.add_object(k.clone(), file(), Timestamp::from_secs(1), 16);
        let mut done = None;
        for &(a, b) in pieces {
            // A finished object is gone: later pieces would start a new one.
            let Some(mut p) = r.start_piece(&k, a as u64, b as u64, Timestamp::from_secs(2)) else {
                continue;
            };
            for s in d[a..=b].chunks(seg) {
                if let Some(f) = r.write(&mut p, s, Timestamp::from_secs(3), max_buffer, &mut stats) {
                    done = Some(finish(f, Timestamp::from_secs(4)));
                }
            }
        }
        (r, done)
    }

    #[test]
    fn in_order_pieces_make_one_file() {
        let (r, rec) = run(1000, &[(0, 299), (300, 999)], 64, 1 << 20);
        let rec = rec.expect("complete");
        assert!(r.is_empty());
        assert_eq!(rec.size, 1000);
        assert_eq!(rec.sha256.unwrap(), sha(&data(1000)));
        assert_eq!(rec.fields.str("http_range"), Some("0-999/1000"));
        assert!(!rec.partial && !rec.truncated);
    }

    #[test]
    fn out_of_order_pieces_are_buffered() {
        let (_, rec) = run(1000, &[(600, 999), (300, 599), (0, 299)], 50, 1 << 20);
        let rec = rec.expect("complete");
        assert_eq!((rec.size, rec.missing_bytes), (1000, 0));
        assert_eq!(rec.sha256.unwrap(), sha(&data(1000)));
    }

    #[test]
    fn overlapping_pieces_count_once() {
        let (_, rec) = run(1000, &[(0, 599), (400, 999)], 33, 1 << 20);
        let rec = rec.expect("complete");
        assert_eq!(rec.size, 1000);
        assert_eq!(rec.sha256.unwrap(), sha(&data(1000)));
    }

    #[test]
    fn buffer_bound_gives_up_the_hole() {
        // 700 out-of-order bytes but only 100 may be held: the hole 0..300 is declared missing.
        let (r, rec) = run(1000, &[(300, 999), (0, 299)], 50, 100);
        let rec = rec.expect("complete (with a hole)");
        assert!(r.is_empty());
        assert_eq!(rec.missing_bytes, 300);
        assert_eq!(rec.size, 700);
        assert!(rec.sha256.is_none());
    }

    #[test]
    fn incomplete_objects_flush_as_partial() {
        let (mut r, rec) = run(1000, &[(0, 299), (600, 699)], 50, 1 << 20);
        assert!(rec.is_none());
        let mut files = sink();
        r.flush_all(Timestamp::from_secs(9), &mut files);
        let out = &files.records;
        assert_eq!(out.len(), 1);
        let rec = &out[0];
        assert!(rec.partial && rec.truncated);
        assert_eq!(rec.truncated_reason.as_deref(), Some("range_incomplete"));
        assert_eq!((rec.size, rec.missing_bytes), (400, 600));
        assert_eq!(rec.fields.str("http_range"), Some("0-699/1000"));
        assert_eq!((files.stats.files, files.stats.files_truncated), (1, 1));
        assert!(r.is_empty());
    }

    #[test]
    fn expire_only_idle_objects() {
        let (mut r, _) = run(1000, &[(0, 10)], 50, 1 << 20);
        let mut files = sink();
        assert_eq!(r.next_expiry(Duration::from_secs(10)), Some(Timestamp::from_secs(13)));
        r.expire(Timestamp::from_secs(5), Duration::from_secs(10), &mut files);
        assert!(files.records.is_empty());
        r.expire(Timestamp::from_secs(20), Duration::from_secs(10), &mut files);
        assert_eq!(files.records.len(), 1);
        assert_eq!(r.next_expiry(Duration::from_secs(10)), None);
    }

    #[test]
    fn object_bound_evicts_the_idlest() {
        let mut r = RangedFiles::new();
        assert!(r.add_object(key(10), file(), Timestamp::from_secs(1), 1).is_none());
        let evicted = r
            .add_object(key(20), file(), Timestamp::from_secs(2), 1)
            .expect("evicted");
        assert!(evicted.meta().partial);
        assert_eq!(r.len(), 1);
        assert!(r.contains(&key(20)) && !r.contains(&key(10)));
    }

    #[test]
    fn worker_wide_buffer_bound() {
        // Four objects each hold 100 out-of-order bytes (the per-object bound); a fifth finds
        // the worker's 4x budget used up and gives up its hole at once.
        let mut r = RangedFiles::new();
        let mut s = HttpStats::default();
        for total in 1000..1005u64 {
            r.add_object(key(total), file(), Timestamp::ZERO, 16);
            let mut p = r.start_piece(&key(total), 500, 599, Timestamp::ZERO).unwrap();
            r.write(&mut p, &data(100), Timestamp::ZERO, 100, &mut s);
        }
        assert_eq!(r.buffered, 400);
        assert_eq!(s.range_gaps, 1);
        let mut files = sink();
        r.flush_all(Timestamp::ZERO, &mut files);
        assert_eq!(r.buffered, 0);
        assert!(files
            .records
            .iter()
            .all(|rec| rec.size == 100 && rec.missing_bytes == rec.total_bytes.unwrap() - 100));
    }

    #[test]
    fn gap_inside_a_piece_is_missing() {
        let d = data(100);
        let mut r = RangedFiles::new();
        let mut s = HttpStats::default();
        r.add_object(key(100), file(), Timestamp::ZERO, 4);
        let mut p = r.start_piece(&key(100), 0, 99, Timestamp::ZERO).unwrap();
        assert!(r.write(&mut p, &d[..40], Timestamp::ZERO, 1000, &mut s).is_none());
        assert!(r.gap(&mut p, 20, Timestamp::ZERO).is_none());
        let f = r
            .write(&mut p, &d[60..], Timestamp::ZERO, 1000, &mut s)
            .expect("complete");
        let rec = finish(f, Timestamp::ZERO);
        assert_eq!((rec.size, rec.missing_bytes), (80, 20));
    }
}
