//! The per-worker loop body shared by every packet source (capture file, AF_XDP queue):
//! packet → engine → finished records → sink. Records are forwarded as soon as they exist, so
//! the engine never holds more than one packet's worth.

use anyhow::Result;
use xdpcarve_core::{Engine, LinkType};
use xdpcarve_files::Timestamp;

use crate::sink::RecordSink;

/// Feeds one frame to the engine and hands any finished records to the sink.
#[inline]
pub fn process_packet(
    engine: &mut Engine,
    ts: Timestamp,
    link: LinkType,
    frame: &[u8],
    sink: &mut impl RecordSink,
) -> Result<()> {
    engine.handle_packet(ts, link, frame);
    forward_records(engine, sink)
}

/// Moves packet time forward without a packet (idle queues), expiring idle connections.
#[allow(dead_code)] // used by the live runtime
pub fn advance_time(engine: &mut Engine, ts: Timestamp, sink: &mut impl RecordSink) -> Result<()> {
    engine.advance_time(ts);
    forward_records(engine, sink)
}

/// Closes every connection (end of input or shutdown) and forwards the last records.
pub fn finish(engine: &mut Engine, ts: Timestamp, sink: &mut impl RecordSink) -> Result<()> {
    engine.finish(ts);
    forward_records(engine, sink)?;
    sink.flush()
}

#[inline]
fn forward_records(engine: &mut Engine, sink: &mut impl RecordSink) -> Result<()> {
    if engine.has_records() {
        for rec in engine.drain_records() {
            sink.record(rec)?;
        }
    }
    Ok(())
}
