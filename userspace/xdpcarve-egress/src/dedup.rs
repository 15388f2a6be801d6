//! Hashes already submitted, so each is sent once per TTL. Bounded: an LRU of fixed-size keys
//! (the least recently submitted is forgotten first). Saved to a state file on clean shutdown and
//! loaded at start, dropping entries whose TTL has passed.

use lru::LruCache;
use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xdpcarve_contract::FileRecord;

use crate::webhook::SubmissionItem;

/// 16 bytes identify a file: the md5, or when md5 is not computed, a prefix of another hash.
pub type DedupKey = [u8; 16];

const STATE_HEADER: &str = "# xdpcarve dedup state v1: <key hex> <unix seconds submitted>";

/// The key of a record: its md5 (or the first 16 bytes of sha256/sha1/blake3).
pub fn key_of(rec: &FileRecord) -> Option<DedupKey> {
    key_of_hashes([&rec.md5, &rec.sha256, &rec.sha1, &rec.blake3])
}

/// The key of a submitted item: the same hash [`key_of`] takes from its record.
pub fn key_of_item(item: &SubmissionItem) -> Option<DedupKey> {
    key_of_hashes([&item.md5, &item.sha256, &item.sha1, &item.blake3])
}

fn key_of_hashes(hashes: [&Option<String>; 4]) -> Option<DedupKey> {
    hashes.into_iter().flatten().find_map(|h| parse_key(h))
}

fn parse_key(hex: &str) -> Option<DedupKey> {
    let b = hex.as_bytes();
    if b.len() < 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, k) in key.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *k = (hi * 16 + lo) as u8;
    }
    Some(key)
}

fn key_hex(key: &DedupKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Dedup {
    cache: LruCache<DedupKey, u64>,
    capacity: usize,
    ttl_secs: u64,
    state_file: Option<PathBuf>,
    /// The state file open for appending: each delivered hash is added as it is delivered, so a
    /// crash keeps them; `save` rewrites the file compact at a clean shutdown.
    appender: Option<fs::File>,
    append_failed: bool,
}

impl Dedup {
    pub fn new(capacity: usize, ttl: Duration, state_file: Option<PathBuf>) -> Dedup {
        Dedup {
            // Grown as hashes come rather than reserved up front; `insert` keeps the bound.
            cache: LruCache::unbounded(),
            capacity: capacity.max(1),
            ttl_secs: ttl.as_secs().max(1),
            state_file,
            appender: None,
            append_failed: false,
        }
    }

    /// Appends delivered hashes to the state file (one write; the page cache keeps it through a
    /// crash of the process). Loading reads later lines over earlier ones.
    pub fn append(&mut self, keys: &[(DedupKey, u64)]) {
        let Some(path) = &self.state_file else { return };
        if keys.is_empty() || self.append_failed {
            return;
        }
        if self.appender.is_none() {
            let fresh = !path.exists();
            let opened = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| {
                    if fresh {
                        writeln!(f, "{STATE_HEADER}")?;
                    }
                    Ok(f)
                });
            match opened {
                Ok(f) => self.appender = Some(f),
                Err(e) => {
                    self.append_failed = true;
                    tracing::warn!(
                        "dedup: cannot append to {} ({e}); delivered hashes are saved at shutdown only",
                        path.display()
                    );
                    return;
                }
            }
        }
        let mut lines = String::with_capacity(keys.len() * 44);
        for (key, at) in keys {
            lines.push_str(&key_hex(key));
            lines.push(' ');
            lines.push_str(&at.to_string());
            lines.push('\n');
        }
        if let Err(e) = self.appender.as_mut().expect("appender").write_all(lines.as_bytes()) {
            self.append_failed = true;
            tracing::warn!(
                "dedup: cannot append to {} ({e}); delivered hashes are saved at shutdown only",
                path.display()
            );
        }
    }

    /// Loads the state file if there is one. A missing file is a first start; a damaged line is
    /// skipped (counted in the returned figures) rather than failing the start.
    pub fn load(&mut self, now: u64) -> io::Result<LoadReport> {
        let mut report = LoadReport::default();
        let Some(path) = &self.state_file else {
            return Ok(report);
        };
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            let line = line?;
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut it = line.split_ascii_whitespace();
            match (
                it.next().and_then(parse_key),
                it.next().and_then(|t| t.parse::<u64>().ok()),
            ) {
                (Some(key), Some(at)) if at + self.ttl_secs > now && at <= now + 60 => {
                    // The file is oldest first, so pushing in order rebuilds the recency.
                    self.insert(key, at);
                    report.loaded += 1;
                }
                (Some(_), Some(_)) => report.expired += 1,
                _ => report.damaged += 1,
            }
        }
        Ok(report)
    }

    /// Writes the state file (to a temporary name, then renamed over the old one), oldest first.
    pub fn save(&mut self, now: u64) -> io::Result<usize> {
        // The rewrite replaces the file: appends go to the new one from here on.
        self.appender = None;
        let Some(path) = &self.state_file else { return Ok(0) };
        let tmp = tmp_path(path);
        let mut n = 0;
        {
            let mut w = BufWriter::new(fs::File::create(&tmp)?);
            writeln!(w, "{STATE_HEADER}")?;
            for (key, at) in self.cache.iter().rev() {
                if at + self.ttl_secs > now {
                    writeln!(w, "{} {at}", key_hex(key))?;
                    n += 1;
                }
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        Ok(n)
    }

    /// True when `key` was submitted within the TTL (a hit: do not submit). Otherwise records it
    /// as submitted now and returns false.
    pub fn check_and_insert(&mut self, key: DedupKey, now: u64) -> bool {
        if let Some(&at) = self.cache.peek(&key) {
            if at + self.ttl_secs > now {
                return true;
            }
        }
        self.insert(key, now);
        false
    }

    /// True when `key` was delivered within the TTL.
    pub fn seen(&self, key: &DedupKey, now: u64) -> bool {
        self.cache.peek(key).is_some_and(|&at| at + self.ttl_secs > now)
    }

    fn insert(&mut self, key: DedupKey, at: u64) {
        self.cache.push(key, at);
        while self.cache.len() > self.capacity {
            self.cache.pop_lru();
        }
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: usize,
    pub expired: usize,
    pub damaged: usize,
}

/// Dedup that commits on delivery: a hash enters the dedup set when the receiver accepted it, so
/// a submission that was refused, dropped or never sent is submitted again next time it is seen.
/// Hashes queued and not yet accepted are "in flight": seen again meanwhile, they are not queued
/// twice.
pub struct Owed {
    pub dedup: Dedup,
    in_flight: HashSet<DedupKey>,
}

impl Owed {
    pub fn new(dedup: Dedup) -> Owed {
        Owed {
            dedup,
            in_flight: HashSet::new(),
        }
    }

    /// True when `key` need not be submitted (delivered within the TTL, or queued now);
    /// otherwise takes note that it is queued.
    pub fn check_and_queue(&mut self, key: DedupKey, now: u64) -> bool {
        if self.dedup.seen(&key, now) || self.in_flight.contains(&key) {
            return true;
        }
        self.in_flight.insert(key);
        false
    }

    /// The receiver accepted these items.
    pub fn delivered<'a>(&mut self, items: impl IntoIterator<Item = &'a SubmissionItem>, now: u64) {
        let mut keys = Vec::new();
        for key in items.into_iter().filter_map(key_of_item) {
            self.in_flight.remove(&key);
            self.dedup.insert(key, now);
            keys.push((key, now));
        }
        self.dedup.append(&keys);
    }

    /// These items were refused for good or lost: seen again, they are submitted again.
    pub fn released<'a>(&mut self, items: impl IntoIterator<Item = &'a SubmissionItem>) {
        for key in items.into_iter().filter_map(key_of_item) {
            self.in_flight.remove(&key);
        }
    }

    /// Items owed from an earlier run (in the spill journal): in flight until delivered.
    pub fn owed<'a>(&mut self, items: impl IntoIterator<Item = &'a SubmissionItem>) {
        self.in_flight.extend(items.into_iter().filter_map(key_of_item));
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> DedupKey {
        [n; 16]
    }

    #[test]
    fn ttl_and_capacity() {
        let mut d = Dedup::new(2, Duration::from_secs(100), None);
        assert!(!d.check_and_insert(k(1), 1000));
        assert!(d.check_and_insert(k(1), 1050));
        // Past the TTL it is submitted again.
        assert!(!d.check_and_insert(k(1), 1100));
        assert!(!d.check_and_insert(k(2), 1100));
        assert!(!d.check_and_insert(k(3), 1100));
        // Capacity 2: key 1 was least recently submitted and is forgotten.
        assert_eq!(d.len(), 2);
        assert!(!d.check_and_insert(k(1), 1101));
    }

    #[test]
    fn survives_restart_and_drops_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.state");
        let mut d = Dedup::new(10, Duration::from_secs(100), Some(path.clone()));
        d.check_and_insert(k(1), 1000);
        d.check_and_insert(k(2), 1090);
        assert_eq!(d.save(1095).unwrap(), 2);
        let mut e = Dedup::new(10, Duration::from_secs(100), Some(path.clone()));
        let report = e.load(1150).unwrap();
        assert_eq!(
            report,
            LoadReport {
                loaded: 1,
                expired: 1,
                damaged: 0
            }
        );
        assert!(e.check_and_insert(k(2), 1150));
        assert!(!e.check_and_insert(k(1), 1150));

        fs::write(&path, "zz 12\n0101010101010101010101010101010 5\n").unwrap();
        let mut f = Dedup::new(10, Duration::from_secs(100), Some(path));
        assert_eq!(f.load(10).unwrap().damaged, 2);
    }

    #[test]
    fn keys_from_hashes() {
        let mut r = crate::policy::tests::record(None, 1, Some("44d88612fea8a8f36de82e1278abb02f"));
        assert_eq!(key_of(&r).unwrap()[0], 0x44);
        r.md5 = None;
        assert_eq!(key_of(&r), None);
        r.sha256 = Some("ff".repeat(32));
        assert_eq!(key_of(&r), Some([0xff; 16]));
    }

    fn item(md5: &str) -> SubmissionItem {
        SubmissionItem {
            sensor: "s".into(),
            ts: String::new(),
            fuid: String::new(),
            uid: String::new(),
            proto: xdpcarve_contract::Proto::new("http"),
            orig_h: String::new(),
            orig_p: 0,
            resp_h: String::new(),
            resp_p: 0,
            md5: Some(md5.into()),
            sha1: None,
            sha256: None,
            blake3: None,
            size: 0,
            mime_type: None,
            declared_mime_type: None,
            filename: None,
            scan: None,
            verdict: None,
            verdicts: Vec::new(),
            sightings: None,
            dedup_scope: None,
        }
    }

    #[test]
    fn a_hash_is_remembered_only_once_delivered() {
        let (a, b) = ("0".repeat(32), "1".repeat(32));
        let (ka, kb) = (parse_key(&a).unwrap(), parse_key(&b).unwrap());
        let mut o = Owed::new(Dedup::new(10, Duration::from_secs(100), None));
        assert!(!o.check_and_queue(ka, 1000), "new: queued");
        assert!(o.check_and_queue(ka, 1001), "in flight: not queued twice");
        assert!(!o.check_and_queue(kb, 1001));
        o.released([&item(&b)]);
        assert!(!o.dedup.seen(&kb, 1002), "refused: not remembered");
        assert!(!o.check_and_queue(kb, 1002), "refused: submitted again");
        o.delivered([&item(&a)], 1003);
        assert!(o.dedup.seen(&ka, 1004));
        assert!(o.check_and_queue(ka, 1004), "delivered: deduplicated");
        assert_eq!(o.in_flight(), 1);
    }

    #[test]
    fn delivered_hashes_reach_the_state_file_as_they_are_delivered() {
        let dir = std::env::temp_dir().join(format!("xdpcarve-dedup-append-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dedup.state");
        let mut o = Owed::new(Dedup::new(10, Duration::from_secs(100), Some(path.clone())));
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        o.delivered([&item(&a)], 1000);
        o.delivered([&item(&b)], 1001);
        // No save: as after kill -9. A new process loads both.
        let mut d = Dedup::new(10, Duration::from_secs(100), Some(path.clone()));
        assert_eq!(d.load(1002).unwrap().loaded, 2);
        assert!(d.seen(&parse_key(&a).unwrap(), 1002) && d.seen(&parse_key(&b).unwrap(), 1002));
        // A clean save compacts; appends go on into the new file.
        assert_eq!(o.dedup.save(1003).unwrap(), 2);
        o.delivered([&item(&a)], 1004);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        let _ = fs::remove_dir_all(&dir);
    }
}
