//! The files log: one JSON line per finished file (`FileRecord::to_json_line`), to a file or to
//! standard output (`-`). Rotation by size and/or age (`files.log` -> `files.log.1` -> ...), and
//! reopen on demand (SIGHUP, for logrotate's `create` mode).

use crate::config::FilesLogConfig;
use crate::EgressError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xdpcarve_contract::FileRecord;

enum Target {
    /// Standard output; `closed` once its reader went away (`| head`): that is the reader's
    /// choice, not a loss, so later records are not written there and no error is reported.
    Stdout { w: BufWriter<Stdout>, closed: bool },
    File {
        path: PathBuf,
        w: BufWriter<File>,
        bytes: u64,
        opened: Instant,
    },
}

pub struct FilesLog {
    target: Target,
    rotate_bytes: u64,
    rotate_interval: Option<Duration>,
    keep: u32,
}

/// Runs `op` on standard output unless its reader left; a broken pipe marks it left, quietly.
fn reader_may_leave<W>(closed: &mut bool, op: impl FnOnce(&mut W) -> io::Result<()>, w: &mut W) -> io::Result<()> {
    if *closed {
        return Ok(());
    }
    match op(w) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            *closed = true;
            tracing::debug!("files log: standard output's reader went away; records are no longer written there");
            Ok(())
        }
        r => r,
    }
}

fn open_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    open_writer(f)
}

fn open_writer(f: File) -> io::Result<(BufWriter<File>, u64)> {
    let len = f.metadata()?.len();
    Ok((BufWriter::with_capacity(256 << 10, f), len))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl FilesLog {
    /// Opens the log named in the config; `None` when no files log is wanted. The error names
    /// the file; the io error is its source.
    pub fn open(cfg: &FilesLogConfig) -> Result<Option<FilesLog>, EgressError> {
        let Some(path) = &cfg.path else { return Ok(None) };
        let target = if path == "-" {
            Target::Stdout {
                w: BufWriter::with_capacity(256 << 10, io::stdout()),
                closed: false,
            }
        } else {
            let path = PathBuf::from(path);
            let opened = if cfg.append {
                open_append(&path)
            } else {
                File::create(&path).and_then(open_writer)
            };
            let (w, bytes) = match opened {
                Ok(o) => o,
                Err(source) => return Err(EgressError::FilesLog { path, source }),
            };
            Target::File {
                path,
                w,
                bytes,
                opened: Instant::now(),
            }
        };
        Ok(Some(FilesLog {
            target,
            rotate_bytes: cfg.rotate_bytes,
            rotate_interval: cfg.rotate_interval,
            keep: cfg.rotate_keep,
        }))
    }

    /// Standard output's reader has gone: records are no longer written anywhere.
    pub fn reader_gone(&self) -> bool {
        matches!(self.target, Target::Stdout { closed: true, .. })
    }

    pub fn write(&mut self, rec: &FileRecord) -> io::Result<()> {
        self.write_line(&rec.to_json_line())
    }

    /// Writes a record already serialized by [`FileRecord::to_json_line`].
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout { w, closed } => {
                reader_may_leave(closed, |w: &mut BufWriter<Stdout>| w.write_all(line.as_bytes()), w)
            }
            Target::File { w, bytes, .. } => {
                w.write_all(line.as_bytes())?;
                *bytes += line.len() as u64;
                if self.rotate_bytes > 0 && *bytes >= self.rotate_bytes {
                    self.rotate()?;
                }
                Ok(())
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout { w, closed } => reader_may_leave(closed, |w: &mut BufWriter<Stdout>| w.flush(), w),
            Target::File { w, .. } => w.flush(),
        }
    }

    /// Rotates when the file has reached its age bound. Called from a timer.
    pub fn rotate_if_old(&mut self) -> io::Result<()> {
        if let (Some(max_age), Target::File { opened, bytes, .. }) = (self.rotate_interval, &self.target) {
            if opened.elapsed() >= max_age && *bytes > 0 {
                return self.rotate();
            }
        }
        Ok(())
    }

    /// Closes and reopens the file by name (after an outside tool moved it away).
    pub fn reopen(&mut self) -> io::Result<()> {
        if let Target::File { path, w, bytes, opened } = &mut self.target {
            w.flush()?;
            let (nw, len) = open_append(path)?;
            *w = nw;
            *bytes = len;
            *opened = Instant::now();
        }
        Ok(())
    }

    /// `files.log.{keep-1}` -> `.{keep}` ... `files.log` -> `files.log.1`, then a new `files.log`.
    fn rotate(&mut self) -> io::Result<()> {
        let Target::File { path, w, .. } = &mut self.target else {
            return Ok(());
        };
        w.flush()?;
        let keep = self.keep;
        if keep == 0 {
            fs::remove_file(&*path)?;
        } else {
            let _ = fs::remove_file(numbered(path, keep));
            for n in (1..keep).rev() {
                let from = numbered(path, n);
                if from.exists() {
                    fs::rename(&from, numbered(path, n + 1))?;
                }
            }
            fs::rename(&*path, numbered(path, 1))?;
        }
        self.reopen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.log");
        let line_len = record(None, 1, None).to_json_line().len() as u64;
        let cfg = FilesLogConfig {
            path: Some(path.to_string_lossy().into_owned()),
            rotate_bytes: line_len * 3,
            rotate_interval: None,
            rotate_keep: 2,
            append: false,
        };
        let mut log = FilesLog::open(&cfg).unwrap().unwrap();
        for i in 0..10 {
            log.write(&record(None, i, None)).unwrap();
        }
        log.flush().unwrap();
        let lines = |p: &Path| fs::read_to_string(p).unwrap().lines().count();
        // 10 lines, 3 per file: .2 has lines 3-5, .1 has 6-8, the current one line 9.
        assert_eq!(lines(&path), 1);
        assert_eq!(lines(&numbered(&path, 1)), 3);
        assert_eq!(lines(&numbered(&path, 2)), 3);
        assert!(!numbered(&path, 3).exists());
        let last: FileRecord = serde_json::from_str(fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(last.size, 9);
    }

    #[test]
    fn open_error_names_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/files.log");
        let cfg = FilesLogConfig {
            path: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let err = FilesLog::open(&cfg).err().expect("no such directory");
        assert_eq!(err.to_string(), format!("cannot open the files log {}", path.display()));
        let source = std::error::Error::source(&err).expect("the io error is kept");
        assert_eq!(
            source.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn reopen_after_move() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.log");
        let cfg = FilesLogConfig {
            path: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let mut log = FilesLog::open(&cfg).unwrap().unwrap();
        log.write(&record(None, 1, None)).unwrap();
        log.flush().unwrap();
        fs::rename(&path, dir.path().join("moved")).unwrap();
        log.reopen().unwrap();
        log.write(&record(None, 2, None)).unwrap();
        log.flush().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
