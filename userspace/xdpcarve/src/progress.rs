//! The progress line of a long read: on a terminal only, redrawn in place every 2 s, with bytes,
//! packets, files, the read rate and, when the file's size is known, the share done and an ETA.

use std::io::Write;
use std::time::{Duration, Instant};

/// How often the line is redrawn.
pub const EVERY: Duration = Duration::from_secs(2);

/// What the line shows at one moment.
pub struct Snapshot {
    pub bytes_read: u64,
    /// 0 when unknown (a pipe).
    pub file_len: u64,
    pub packets: u64,
    pub flows: usize,
    pub files: u64,
}

/// One progress line for a read that started at `started`.
pub fn line(s: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = s.bytes_read as f64 / secs;
    let mut out = format!(
        "{} read, {} packets, {} flows, {} files, {}/s",
        crate::summary::human_bytes(s.bytes_read),
        s.packets,
        s.flows,
        s.files,
        crate::summary::human_bytes(rate as u64)
    );
    if s.file_len > 0 {
        let done = s.bytes_read.min(s.file_len);
        let pct = done as f64 * 100.0 / s.file_len as f64;
        out = format!("{pct:.0}% of {}: {out}", crate::summary::human_bytes(s.file_len));
        if rate > 0.0 {
            let left = (s.file_len - done) as f64 / rate;
            out.push_str(&format!(", ETA {}", clock(Duration::from_secs_f64(left))));
        }
    }
    out
}

/// 75 s as "1:15", 3700 s as "1:01:40".
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Draws the line on stderr (a terminal), in place.
pub struct Progress {
    started: Instant,
    next: Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(started: Instant) -> Progress {
        Progress {
            started,
            next: started + EVERY,
            drawn: false,
        }
    }

    /// Whether the line is due.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    pub fn draw(&mut self, s: &Snapshot) {
        self.next = Instant::now() + EVERY;
        self.drawn = true;
        // \r and "erase to the end of the line": the next line overwrites this one.
        let _ = write!(
            std::io::stderr(),
            "\rxdpcarve: {}\x1b[K",
            line(s, self.started.elapsed())
        );
    }

    /// Clears the line before the summary (or anything else) is printed.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.drawn) {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_share_rate_and_eta_when_the_size_is_known() {
        let s = Snapshot {
            bytes_read: 250 << 20,
            file_len: 1000 << 20,
            packets: 180_000,
            flows: 12,
            files: 40,
        };
        let l = line(&s, Duration::from_secs(10));
        assert!(l.starts_with("25% of "), "{l}");
        assert!(
            l.contains("180000 packets") && l.contains("40 files") && l.contains("/s"),
            "{l}"
        );
        assert!(l.ends_with("ETA 0:30"), "{l}");
        let pipe = line(&Snapshot { file_len: 0, ..s }, Duration::from_secs(10));
        assert!(!pipe.contains("ETA") && !pipe.contains('%'), "{pipe}");
        assert_eq!(clock(Duration::from_secs(3700)), "1:01:40");
    }
}
