//! The spill journal: an append-only, bounded, on-disk FIFO of batches, for when the receiver is
//! down or slow. Batches are replayed in the order they were appended, also after a restart.
//!
//! Layout of the directory:
//! - `<id>.journal` segments (id zero-padded so names sort), each a run of entries
//!   `magic u32 | payload length u32 | items u32 | crc32(payload) u32 | payload` (little-endian);
//! - `cursor`: `<segment id> <byte offset>` of the next entry to deliver, updated after each
//!   delivered batch (written to a temporary file and renamed over).
//!
//! Fsync policy ([`FsyncPolicy`]): with `group` (the default), appended batches are fdatasync'ed
//! together — whenever the egress thread runs out of work and at least every 50 ms while it is
//! busy — so a machine crash loses at most the last 50 ms of appended batches, and disk latency
//! is paid once per group rather than once per batch. With `never` the kernel decides when.
//! The cursor is rewritten (atomically, by rename) after each delivered batch but not fsynced:
//! after a machine crash, batches delivered just before it may be sent again (at-least-once).
//! A torn or damaged entry found at start (crash mid-append) ends its segment: the segment is cut
//! there and the loss is reported.

use crate::config::FsyncPolicy;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x3142_4358; // "XCB1"
const HEADER: u64 = 16;
const CURSOR_FILE: &str = "cursor";

#[derive(Debug)]
pub enum AppendError {
    /// The journal is at its size bound.
    Full,
    /// Writing failed (disk full, I/O error); nothing was appended.
    Io(io::Error),
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    len: u64,
}

pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    segments: VecDeque<Segment>,
    /// Append handle on the last segment.
    writer: Option<File>,
    /// Read handle on the cursor's segment.
    reader: Option<(u64, File)>,
    cursor_seg: u64,
    cursor_off: u64,
    next_id: u64,
    pending_batches: u64,
    pending_items: u64,
    /// Length of the entry last returned by `peek`, consumed by `commit`.
    peeked_len: Option<u64>,
    /// Appended since the last fdatasync.
    unsynced: bool,
}

/// What was found when opening a journal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    pub batches: u64,
    pub items: u64,
    /// Bytes cut off damaged or torn segment tails.
    pub damaged_bytes: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.journal"))
}

impl Journal {
    pub fn open(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> io::Result<(Journal, OpenReport)> {
        fs::create_dir_all(dir)?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".journal").and_then(|s| s.parse::<u64>().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let (mut cursor_seg, mut cursor_off) = read_cursor(dir)?.unwrap_or((ids.first().copied().unwrap_or(0), 0));
        // Segments before the cursor were fully delivered (a crash hit before they were removed).
        for &id in ids.iter().filter(|&&id| id < cursor_seg) {
            let _ = fs::remove_file(seg_path(dir, id));
        }
        ids.retain(|&id| id >= cursor_seg);
        if ids.first() != Some(&cursor_seg) {
            cursor_seg = ids.first().copied().unwrap_or(cursor_seg);
            cursor_off = 0;
        }
        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        for &id in &ids {
            let start = if id == cursor_seg { cursor_off } else { 0 };
            let (len, batches, items, damaged) = scan_segment(&seg_path(dir, id), start)?;
            report.batches += batches;
            report.items += items;
            report.damaged_bytes += damaged;
            segments.push_back(Segment { id, len });
        }
        if let Some(first) = segments.front() {
            if cursor_off > first.len {
                cursor_off = first.len;
            }
        }
        let next_id = segments.back().map(|s| s.id + 1).unwrap_or(cursor_seg);
        let segment_bytes = (max_bytes / 16).clamp(64 << 10, 64 << 20);
        let mut j = Journal {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            fsync,
            segments,
            writer: None,
            reader: None,
            cursor_seg,
            cursor_off,
            next_id,
            pending_batches: report.batches,
            pending_items: report.items,
            peeked_len: None,
            unsynced: false,
        };
        if j.pending_batches == 0 {
            match j.reset() {
                // A full disk at start: the journal works again as soon as there is space.
                Err(e) if is_disk_full(&e) => {
                    tracing::warn!("spill journal {}: the disk is full ({e}); submissions past memory are lost until there is space", dir.display());
                }
                r => r?,
            }
        }
        Ok((j, report))
    }

    pub fn is_empty(&self) -> bool {
        self.pending_batches == 0
    }

    pub fn pending_batches(&self) -> u64 {
        self.pending_batches
    }

    pub fn pending_items(&self) -> u64 {
        self.pending_items
    }

    /// Bytes the journal holds on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    pub fn append(&mut self, payload: &[u8], items: u32) -> Result<(), AppendError> {
        let entry_len = HEADER + payload.len() as u64;
        if self.disk_bytes() + entry_len > self.max_bytes {
            return Err(AppendError::Full);
        }
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => s.len > 0 && s.len + entry_len > self.segment_bytes,
        };
        if need_new || self.writer.is_none() {
            if need_new {
                let id = self.next_id;
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(seg_path(&self.dir, id))
                    .map_err(AppendError::Io)?;
                // The previous segment's tail is synced before its handle goes.
                self.sync().map_err(AppendError::Io)?;
                if self.fsync == FsyncPolicy::Group {
                    // The new name must survive too.
                    let _ = File::open(&self.dir).and_then(|d| d.sync_all());
                }
                self.next_id += 1;
                self.segments.push_back(Segment { id, len: 0 });
                self.writer = Some(f);
            } else {
                let id = self.segments.back().expect("segment").id;
                let f = OpenOptions::new()
                    .append(true)
                    .open(seg_path(&self.dir, id))
                    .map_err(AppendError::Io)?;
                self.writer = Some(f);
            }
        }
        let mut buf = Vec::with_capacity(entry_len as usize);
        buf.extend_from_slice(&MAGIC.to_le_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&items.to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        let seg = self.segments.back_mut().expect("segment");
        let w = self.writer.as_mut().expect("writer");
        let res = w.write_all(&buf);
        if let Err(e) = res {
            // Leave no torn entry behind: cut back to where this append started.
            let _ = w.set_len(seg.len);
            self.writer = None;
            return Err(AppendError::Io(e));
        }
        seg.len += entry_len;
        self.unsynced = true;
        self.pending_batches += 1;
        self.pending_items += items as u64;
        Ok(())
    }

    /// Appended but not yet synced batches exist.
    pub fn needs_sync(&self) -> bool {
        self.unsynced
    }

    /// fdatasync of what was appended since the last call (group commit; a no-op with `never`).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            if let (FsyncPolicy::Group, Some(w)) = (self.fsync, &self.writer) {
                w.sync_data()?;
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// Calls `f` with every undelivered batch's payload, oldest first (read once at start, so
    /// dedup knows what is already owed). Stops at the first unreadable entry.
    pub fn for_each_pending(&self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        for seg in &self.segments {
            let start = if seg.id == self.cursor_seg { self.cursor_off } else { 0 };
            let mut r = io::BufReader::new(File::open(seg_path(&self.dir, seg.id))?);
            r.seek(SeekFrom::Start(start))?;
            let mut off = start;
            let mut payload = Vec::new();
            while off + HEADER <= seg.len {
                let mut head = [0u8; HEADER as usize];
                r.read_exact(&mut head)?;
                let (magic, len, _, crc) = parse_header(&head);
                payload.resize(len as usize, 0);
                r.read_exact(&mut payload)?;
                if magic != MAGIC || crc32fast::hash(&payload) != crc {
                    return Ok(());
                }
                f(&payload);
                off += HEADER + len as u64;
            }
        }
        Ok(())
    }

    /// The oldest undelivered batch (payload and item count), read from disk.
    pub fn peek(&mut self) -> io::Result<Option<(Bytes, u32)>> {
        if self.pending_batches == 0 {
            return Ok(None);
        }
        // Step over finished segments.
        while let Some(first) = self.segments.front().copied() {
            if first.id == self.cursor_seg && self.cursor_off < first.len {
                break;
            }
            if first.id == self.cursor_seg && self.segments.len() > 1 {
                self.drop_front_segment()?;
            } else if first.id != self.cursor_seg {
                self.cursor_seg = first.id;
                self.cursor_off = 0;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "journal: pending batches but no data",
                ));
            }
        }
        let id = self.cursor_seg;
        if self.reader.as_ref().map(|r| r.0) != Some(id) {
            self.reader = Some((id, File::open(seg_path(&self.dir, id))?));
        }
        let f = &mut self.reader.as_mut().expect("reader").1;
        f.seek(SeekFrom::Start(self.cursor_off))?;
        let mut head = [0u8; HEADER as usize];
        f.read_exact(&mut head)?;
        let (magic, len, items, crc) = parse_header(&head);
        if magic != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "journal: bad entry magic"));
        }
        let mut payload = vec![0u8; len as usize];
        f.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "journal: entry checksum mismatch",
            ));
        }
        self.peeked_len = Some(HEADER + len as u64);
        Ok(Some((Bytes::from(payload), items)))
    }

    /// Marks the batch last returned by `peek` delivered.
    pub fn commit(&mut self, items: u32) -> io::Result<()> {
        if self.peeked_len.is_none() {
            // The batch was moved here from memory while it was being delivered.
            self.peek()?;
        }
        let Some(len) = self.peeked_len.take() else {
            return Err(io::Error::other("journal: commit with nothing pending"));
        };
        self.cursor_off += len;
        self.pending_batches -= 1;
        self.pending_items = self.pending_items.saturating_sub(items as u64);
        if self.pending_batches == 0 {
            return self.reset();
        }
        if let Some(first) = self.segments.front().copied() {
            if self.cursor_off >= first.len && self.segments.len() > 1 {
                self.drop_front_segment()?;
            }
        }
        self.write_cursor()
    }

    /// Skips the oldest batch without delivering it (it cannot be read back).
    pub fn skip_damaged(&mut self) -> io::Result<()> {
        // Without a trustworthy length the rest of the segment is unreadable: drop it.
        if self.segments.len() > 1 {
            self.drop_front_segment()?;
        } else {
            self.pending_batches = 0;
            self.pending_items = 0;
            return self.reset();
        }
        // Recount what is left, since the dropped part's count is unknown.
        let (mut b, mut i) = (0, 0);
        for s in &self.segments {
            let (_, sb, si, _) = scan_segment(&seg_path(&self.dir, s.id), 0)?;
            b += sb;
            i += si;
        }
        self.pending_batches = b;
        self.pending_items = i;
        self.write_cursor()
    }

    fn drop_front_segment(&mut self) -> io::Result<()> {
        let first = self.segments.pop_front().expect("segment");
        if self.reader.as_ref().map(|r| r.0) == Some(first.id) {
            self.reader = None;
        }
        fs::remove_file(seg_path(&self.dir, first.id))?;
        let next = self.segments.front().map(|s| s.id).unwrap_or(self.next_id);
        self.cursor_seg = next;
        self.cursor_off = 0;
        self.write_cursor()
    }

    /// Everything delivered: remove all segments so the disk space comes back.
    fn reset(&mut self) -> io::Result<()> {
        self.writer = None;
        self.unsynced = false;
        self.reader = None;
        self.peeked_len = None;
        for s in self.segments.drain(..) {
            let _ = fs::remove_file(seg_path(&self.dir, s.id));
        }
        self.cursor_seg = self.next_id;
        self.cursor_off = 0;
        self.write_cursor()
    }

    fn write_cursor(&self) -> io::Result<()> {
        let path = self.dir.join(CURSOR_FILE);
        let tmp = self.dir.join("cursor.tmp");
        let written = File::create(&tmp)
            .and_then(|mut f| writeln!(f, "{} {}", self.cursor_seg, self.cursor_off))
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            // A full disk: leave no half-written cursor.tmp behind.
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// ENOSPC or EDQUOT: the disk (or the quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
}

fn parse_header(h: &[u8; HEADER as usize]) -> (u32, u32, u32, u32) {
    let w = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    (w(0), w(4), w(8), w(12))
}

fn read_cursor(dir: &Path) -> io::Result<Option<(u64, u64)>> {
    match fs::read_to_string(dir.join(CURSOR_FILE)) {
        Ok(s) => {
            let mut it = s.split_ascii_whitespace().map(|t| t.parse::<u64>());
            match (it.next(), it.next()) {
                (Some(Ok(seg)), Some(Ok(off))) => Ok(Some((seg, off))),
                _ => Ok(None),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Validates a segment's entries from `start`; cuts off a damaged tail. Returns
/// (length after the cut, batches, items, bytes cut).
fn scan_segment(path: &Path, start: u64) -> io::Result<(u64, u64, u64, u64)> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let file_len = f.metadata()?.len();
    let mut off = start.min(file_len);
    f.seek(SeekFrom::Start(off))?;
    let mut reader = io::BufReader::new(&mut f);
    let (mut batches, mut items) = (0u64, 0u64);
    let mut payload = Vec::new();
    loop {
        if off == file_len {
            break;
        }
        let mut head = [0u8; HEADER as usize];
        if reader.read_exact(&mut head).is_err() {
            break;
        }
        let (magic, len, n, crc) = parse_header(&head);
        if magic != MAGIC || off + HEADER + len as u64 > file_len {
            break;
        }
        payload.resize(len as usize, 0);
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        off += HEADER + len as u64;
        batches += 1;
        items += n as u64;
    }
    drop(reader);
    let damaged = file_len - off;
    if damaged > 0 {
        f.set_len(off)?;
    }
    Ok((off, batches, items, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(j: &mut Journal) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((p, n)) = j.peek().unwrap() {
            j.commit(n).unwrap();
            out.push(p.to_vec());
        }
        out
    }

    #[test]
    fn fifo_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB segments (the minimum): 1000-byte batches roll over many segments.
        let (mut j, r) = Journal::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!(r, OpenReport::default());
        let batch = |i: u32| vec![(i % 251) as u8; 1000 + i as usize];
        for i in 0..300 {
            j.append(&batch(i), i).unwrap();
        }
        assert_eq!(j.pending_batches(), 300);
        // Deliver 120, then "restart".
        for i in 0..120 {
            let (p, n) = j.peek().unwrap().unwrap();
            assert_eq!(n, i);
            assert_eq!(p.to_vec(), batch(i));
            j.commit(n).unwrap();
        }
        drop(j);
        let (mut j, r) = Journal::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!(r.batches, 180);
        assert_eq!(r.items, (120..300).map(|i| i as u64).sum::<u64>());
        j.append(&batch(300), 300).unwrap();
        let rest = drain(&mut j);
        assert_eq!(rest.len(), 181);
        assert_eq!(rest[0], batch(120));
        assert_eq!(rest[180], batch(300));
        assert!(j.is_empty());
        // Everything delivered: no segment files remain.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".journal"))
            .collect();
        assert!(left.is_empty());
        drop(j);
        let (j, r) = Journal::open(dir.path(), 1 << 20, FsyncPolicy::Group).unwrap();
        assert_eq!(r.batches, 0);
        assert!(j.is_empty());
    }

    #[test]
    fn bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 64 << 10, FsyncPolicy::Never).unwrap();
        let mut n = 0;
        loop {
            match j.append(&[7u8; 1000], 1) {
                Ok(()) => n += 1,
                Err(AppendError::Full) => break,
                Err(AppendError::Io(e)) => panic!("{e}"),
            }
        }
        assert_eq!(n, (64 << 10) / 1016);
        assert!(j.disk_bytes() <= 64 << 10);
        // Space comes back a segment at a time, once a segment has been delivered whole.
        let (_, c) = j.peek().unwrap().unwrap();
        j.commit(c).unwrap();
        assert!(matches!(j.append(&[7u8; 1000], 1), Err(AppendError::Full)));
        while let Some((_, c)) = j.peek().unwrap() {
            j.commit(c).unwrap();
        }
        assert_eq!(j.disk_bytes(), 0);
        j.append(&[7u8; 1000], 1).unwrap();
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        j.append(b"first", 1).unwrap();
        j.append(b"second", 2).unwrap();
        drop(j);
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "journal"))
            .unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // A crash mid-append of the second entry.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut j, r) = Journal::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!((r.batches, r.items, r.damaged_bytes), (1, 1, 16 + 3));
        assert_eq!(drain(&mut j), vec![b"first".to_vec()]);
    }
}
