//! HTTP 206 range responses: pieces of one object (same host, URI and total size), possibly over
//! several connections of the worker, placed at their Content-Range offsets to form one file.

use crate::record::FileRecord;
use crate::time::Timestamp;
use std::time::Duration;

#[derive(Default)]
pub struct RangedFiles {}

impl RangedFiles {
    pub fn new() -> Self {
        Self::default()
    }
    /// Emits every object still incomplete as a partial, truncated record (end of capture).
    pub fn flush_all(&mut self, _now: Timestamp, _out: &mut Vec<FileRecord>) {}
    /// Emits objects with no new piece for `idle`.
    pub fn expire(&mut self, _now: Timestamp, _idle: Duration, _out: &mut Vec<FileRecord>) {}
}
