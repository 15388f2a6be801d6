//! Classic pcap (libpcap 2.4, microsecond timestamps), Ethernet link type: a writer for the
//! generator and a zero-copy reader for the benchmark, which replays a capture held in memory.

use std::io::{self, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const SNAPLEN: u32 = 262_144;

/// Writes a classic pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_USEC.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, packets: 0 })
    }

    /// Appends one frame stamped `ts_nanos` after the epoch.
    pub fn write_frame(&mut self, ts_nanos: u64, frame: &[u8]) -> io::Result<()> {
        let secs = (ts_nanos / 1_000_000_000) as u32;
        let usecs = ((ts_nanos % 1_000_000_000) / 1000) as u32;
        let len = frame.len() as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&usecs.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        Ok(())
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One frame of an in-memory capture.
#[derive(Copy, Clone, Debug)]
pub struct Frame<'a> {
    pub ts_nanos: u64,
    pub data: &'a [u8],
}

/// Splits an in-memory classic pcap (either byte order, micro- or nanosecond stamps) into frames.
/// Returns the link type and the frames, or a message saying what is wrong with the file.
pub fn parse(buf: &[u8]) -> Result<(u32, Vec<Frame<'_>>), String> {
    if buf.len() < 24 {
        return Err(format!("{} bytes is too short for a pcap header", buf.len()));
    }
    let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => {
            return Err(format!(
                "not a classic pcap file (magic {magic:#010x}); pcapng is not supported here"
            ))
        }
    };
    let u32_at = |b: &[u8], at: usize| {
        let v: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    let linktype = u32_at(buf, 20) & 0x0fff_ffff;
    let mut frames = Vec::new();
    let mut at = 24;
    while at < buf.len() {
        if buf.len() - at < 16 {
            return Err(format!("truncated record header at offset {at}"));
        }
        let secs = u32_at(buf, at) as u64;
        let frac = u32_at(buf, at + 4) as u64;
        let incl = u32_at(buf, at + 8) as usize;
        at += 16;
        if buf.len() - at < incl {
            return Err(format!("truncated record at offset {at}: {incl} bytes announced"));
        }
        let ts_nanos = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        frames.push(Frame {
            ts_nanos,
            data: &buf[at..at + incl],
        });
        at += incl;
    }
    Ok((linktype, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_frames() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_500_000_000_123_456_000, b"abc").unwrap();
        w.write_frame(1_500_000_001_000_001_000, b"").unwrap();
        let buf = w.into_inner();
        let (lt, frames) = parse(&buf).unwrap();
        assert_eq!(lt, LINKTYPE_ETHERNET);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].data, b"abc");
        assert_eq!(frames[0].ts_nanos, 1_500_000_000_123_456_000);
        assert_eq!(frames[1].data, b"");
    }

    #[test]
    fn rejects_truncated_records() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(0, b"abcdef").unwrap();
        let buf = w.into_inner();
        assert!(parse(&buf[..buf.len() - 1]).unwrap_err().contains("truncated"));
        assert!(parse(b"garbage garbage garbage garbage").unwrap_err().contains("magic"));
    }
}
