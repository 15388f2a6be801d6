//! The files log: one JSON object per line (Zeek's files.log fields), buffered.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xdpcarve_files::FileRecord;

use crate::sink::RecordSink;

pub struct FilesLog {
    out: BufWriter<Box<dyn Write + Send>>,
    /// For error messages ("-" for stdout).
    name: PathBuf,
}

impl FilesLog {
    /// Creates (truncates) `path`; "-" is standard output.
    pub fn create(path: &Path) -> Result<FilesLog> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else {
            let f = File::create(path).with_context(|| format!("cannot create the files log {}", path.display()))?;
            Box::new(f)
        };
        Ok(FilesLog {
            out: BufWriter::with_capacity(256 << 10, out),
            name: path.to_path_buf(),
        })
    }
}

impl RecordSink for FilesLog {
    fn record(&mut self, rec: FileRecord) -> Result<()> {
        self.out
            .write_all(rec.to_json_line().as_bytes())
            .with_context(|| format!("cannot write the files log {}", self.name.display()))
    }
    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write the files log {}", self.name.display()))
    }
}
