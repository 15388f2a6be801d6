//! Capture files as packet sources: classic pcap (microsecond and nanosecond, either byte order)
//! and pcapng (per-interface link types and timestamp resolutions).
//!
//! Records are parsed in place from one reusable read buffer (no copy, no allocation per packet).
//! Lengths are checked before anything is buffered, so a hostile length field costs an error
//! message, not memory. A record cut short at the end of the file (a capture that was still
//! being written, or copied partially) ends the read with a warning; everything before it is kept.
//!
//! A pcapng interface of an unsupported link type does not stop the read: its packets are skipped
//! and counted per interface ([`CaptureFile::skipped_interfaces`]). Only a capture with nothing
//! readable (a classic pcap of such a type, a pcapng with packets of such interfaces only) is an
//! error.
//!
//! A gzip or zstd compressed capture (`.pcap.gz`, `.pcapng.zst`, ...) is read as it is, told by
//! its magic bytes, not its name; decompression streams into the same read buffer.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::{PcapNgParser, RawBlock};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use xdpcarve_contract::LinkType;
use xdpcarve_contract::Timestamp;

/// Largest record (pcap) or block (pcapng) accepted. The largest real snap length is 262144;
/// pcapng blocks also carry name tables and comments, hence the headroom.
pub const MAX_RECORD_LEN: usize = 16 << 20;
const READ_CHUNK: usize = 1 << 20;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is empty: not a capture file", path.display())]
    Empty { path: PathBuf },
    #[error("{} is not a pcap or pcapng file (magic 0x{magic:08x})", path.display())]
    NotCapture { path: PathBuf, magic: u32 },
    #[error("{} ends inside its file header ({len} bytes): not a complete capture file", path.display())]
    HeaderTruncated { path: PathBuf, len: u64 },
    #[error("{}: link type {name} ({linktype}) is not supported; supported link types: {supported}", path.display())]
    UnsupportedLink {
        path: PathBuf,
        linktype: u32,
        name: String,
        supported: String,
    },
    #[error("{} is corrupt at byte {offset} (after {packets} packets): {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        packets: u64,
        reason: String,
    },
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Debug)]
pub struct Packet<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length of the frame on the wire (larger than `data` when the snap length cut it).
    pub orig_len: u32,
}

/// The container format of a capture file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// How the capture file is compressed, told by its first bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

    fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&Self::GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(&Self::ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

/// Counts the bytes read from the file itself, under a decompressor (for progress).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decompressor run on a thread of its own (`xdpcarve-unzip`), a few chunks ahead of the
/// reader: inflating gzip costs about as much as carving, and a read on several cores must not
/// wait for it. What it decoded before an error arrives first, then the error.
struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

/// Bytes per chunk handed over, and chunks in flight (4 MiB ahead at most).
const AHEAD_CHUNK: usize = 1 << 20;
const AHEAD_CHUNKS: usize = 4;

impl ReadAhead {
    fn spawn(mut inner: Box<dyn Read + Send>) -> io::Result<ReadAhead> {
        let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD_CHUNKS);
        std::thread::Builder::new()
            .name("xdpcarve-unzip".into())
            .spawn(move || loop {
                let mut chunk = vec![0u8; AHEAD_CHUNK];
                let mut have = 0;
                let mut failed = None;
                while have < chunk.len() {
                    match inner.read(&mut chunk[have..]) {
                        Ok(0) => break,
                        Ok(n) => have += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                chunk.truncate(have);
                let end = have < AHEAD_CHUNK;
                // A reader that went away (the read stopped) ends the thread.
                if have > 0 && tx.send(Ok(chunk)).is_err() {
                    return;
                }
                if let Some(e) = failed {
                    let _ = tx.send(Err(e));
                    return;
                }
                if end {
                    return;
                }
            })?;
        Ok(ReadAhead {
            chunks: rx,
            current: Vec::new(),
            at: 0,
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.at = 0;
                }
                // The decoder is done: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Reads the first bytes of `file` (a pipe cannot seek back), tells the compression from them, and
/// returns a reader of the decompressed stream with those bytes put back in front.
fn open_stream(mut file: File, path: &Path) -> io::Result<(Box<dyn Read + Send>, Compression, Arc<AtomicU64>)> {
    let mut prefix = [0u8; 4];
    let mut have = 0;
    while have < prefix.len() {
        match file.read(&mut prefix[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let count = Arc::new(AtomicU64::new(0));
    let compression = Compression::detect(&prefix[..have]);
    let raw = io::Cursor::new(prefix[..have].to_vec()).chain(file);
    let stream: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(
            1 << 16,
            CountingReader {
                inner: raw,
                count: count.clone(),
            },
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(CountingReader {
                inner: raw,
                count: count.clone(),
            })
            .map_err(|e| io::Error::new(e.kind(), format!("{}: zstd: {e}", path.display())))?,
        ),
    };
    let stream: Box<dyn Read + Send> = match compression {
        Compression::None => stream,
        _ => Box::new(ReadAhead::spawn(stream)?),
    };
    Ok((stream, compression, count))
}

/// A pcapng interface whose link type is not supported: its packets are skipped and counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedInterface {
    /// The section (0 for the first section header block of the file).
    pub section: u32,
    /// The interface id within its section (what packet blocks refer to).
    pub interface: u32,
    pub linktype: u32,
    /// pcap-file's name of the link type ("IEEE802_15_4", "Unknown(300)").
    pub name: String,
    /// Packets skipped so far.
    pub packets: u64,
}

impl fmt::Display for SkippedInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported link type {} ({}) on interface {}",
            self.name, self.linktype, self.interface
        )?;
        if self.section > 0 {
            write!(f, " of section {}", self.section + 1)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Interface {
    /// None: an unsupported link type (packets of this interface are skipped).
    link: Option<LinkType>,
    /// Index in `CaptureFile::skipped` once a packet of this (unsupported) interface was seen.
    skipped: Option<usize>,
    linktype: u32,
    /// if_tsresol: the unit of EPB timestamps.
    resol: u8,
    /// if_tsoffset: seconds added to every timestamp.
    offset_secs: u64,
}

enum Reader {
    Pcap {
        header: PcapHeader,
        link: LinkType,
        max_len: usize,
    },
    PcapNg {
        parser: PcapNgParser,
        interfaces: Vec<Interface>,
    },
}

/// A pcap or pcapng file opened for reading.
pub struct CaptureFile {
    path: PathBuf,
    /// The file, or the decompressor reading it.
    source: Box<dyn Read + Send>,
    compression: Compression,
    /// Bytes of a compressed file read so far (its decompressor reads ahead of `offset`).
    compressed_read: Arc<AtomicU64>,
    file_len: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    reader: Reader,
    packets: u64,
    truncated: Option<String>,
    skipped_unsupported: u64,
    /// Unsupported pcapng interfaces, in the order their first packet was seen.
    skipped: Vec<SkippedInterface>,
    /// pcapng section number (section header blocks seen, minus one).
    section: u32,
    last_ts: Timestamp,
}

impl CaptureFile {
    /// Opens `path` and reads its file header (pcap) or first section header (pcapng).
    pub fn open(path: impl AsRef<Path>) -> Result<CaptureFile, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| CaptureError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory")));
        }
        let (source, compression, compressed_read) = open_stream(file, &path).map_err(io_err)?;
        let mut cap = CaptureFile {
            path,
            source,
            compression,
            compressed_read,
            file_len: meta.len(),
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            reader: Reader::Pcap {
                header: PcapHeader::default(),
                link: LinkType::Ethernet,
                max_len: 0,
            },
            packets: 0,
            truncated: None,
            skipped_unsupported: 0,
            skipped: Vec::new(),
            section: 0,
            last_ts: Timestamp::ZERO,
        };
        cap.fill(24)?;
        let avail = cap.end - cap.start;
        if avail == 0 {
            return Err(CaptureError::Empty { path: cap.path });
        }
        if avail < 4 {
            return Err(CaptureError::HeaderTruncated {
                path: cap.path,
                len: avail as u64,
            });
        }
        let magic = u32::from_be_bytes(cap.buf[0..4].try_into().expect("4 bytes"));
        match magic {
            0xA1B2_C3D4 | 0xA1B2_3C4D | 0xD4C3_B2A1 | 0x4D3C_B2A1 => cap.open_pcap()?,
            PCAPNG_SHB => cap.open_pcapng()?,
            _ => return Err(CaptureError::NotCapture { path: cap.path, magic }),
        }
        Ok(cap)
    }

    fn open_pcap(&mut self) -> Result<(), CaptureError> {
        let avail = &self.buf[self.start..self.end];
        let (rest, header) = match PcapHeader::from_slice(avail) {
            Ok(x) => x,
            Err(PcapError::IncompleteBuffer) => {
                return Err(CaptureError::HeaderTruncated {
                    path: self.path.clone(),
                    len: avail.len() as u64,
                })
            }
            Err(e) => return Err(self.corrupt(e.to_string())),
        };
        let consumed = avail.len() - rest.len();
        let linktype = u32::from(header.datalink);
        let link = self.link_type(linktype)?;
        // A record is never longer than the snap length, but some writers put 0 or nonsense there.
        let max_len = (header.snaplen as usize).clamp(262_144, MAX_RECORD_LEN);
        self.consume(consumed);
        self.reader = Reader::Pcap { header, link, max_len };
        Ok(())
    }

    fn open_pcapng(&mut self) -> Result<(), CaptureError> {
        let len = self
            .peek_block_len(None)?
            .ok_or_else(|| CaptureError::HeaderTruncated {
                path: self.path.clone(),
                len: (self.end - self.start) as u64,
            })?;
        if !self.fill(len)? {
            return Err(CaptureError::HeaderTruncated {
                path: self.path.clone(),
                len: (self.end - self.start) as u64,
            });
        }
        let parsed = PcapNgParser::new(&self.buf[self.start..self.start + len]);
        let parser = match parsed {
            Ok((_, p)) => p,
            Err(e) => return Err(self.corrupt(format!("bad section header: {e}"))),
        };
        self.consume(len);
        self.reader = Reader::PcapNg {
            parser,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn format(&self) -> Format {
        match self.reader {
            Reader::Pcap { .. } => Format::Pcap,
            Reader::PcapNg { .. } => Format::PcapNg,
        }
    }
    pub fn compression(&self) -> Compression {
        self.compression
    }
    /// "pcap", "pcapng", "pcap, gzip", ...: for messages.
    pub fn describe(&self) -> String {
        match self.compression.name() {
            Some(c) => format!("{}, {c}", self.format().name()),
            None => self.format().name().to_string(),
        }
    }
    /// Size of the file when opened (compressed, for a compressed capture).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// Bytes of the file consumed so far (for progress; of the compressed file when it is one).
    pub fn bytes_read(&self) -> u64 {
        match self.compression {
            Compression::None => self.offset,
            _ => self.compressed_read.load(Ordering::Relaxed),
        }
    }
    pub fn packets_read(&self) -> u64 {
        self.packets
    }
    /// Set when the file ended inside a record: what was cut, for a warning.
    pub fn truncated(&self) -> Option<&str> {
        self.truncated.as_deref()
    }
    /// Packets skipped because their pcapng interface has an unsupported link type.
    pub fn skipped_unsupported(&self) -> u64 {
        self.skipped_unsupported
    }
    /// The unsupported pcapng interfaces that had packets, with their counts, in the order they
    /// were first seen: an entry appears with the first packet skipped (warn about entries past
    /// the ones already warned about, after any [`CaptureFile::next_packet`]).
    pub fn skipped_interfaces(&self) -> &[SkippedInterface] {
        &self.skipped
    }

    /// The next packet; `Ok(None)` at the end of the file (check [`CaptureFile::truncated`]).
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match self.reader {
            Reader::Pcap { .. } => self.next_pcap(),
            Reader::PcapNg { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let Reader::Pcap { header, link, max_len } = self.reader else {
            unreachable!("pcap reader")
        };
        if !self.fill(16)? {
            return self.end_of_file("a record header");
        }
        let rec: [u8; 16] = self.buf[self.start..self.start + 16].try_into().expect("16 bytes");
        let field = |i: usize| {
            let b: [u8; 4] = rec[i..i + 4].try_into().expect("4 bytes");
            match header.endianness {
                Endianness::Big => u32::from_be_bytes(b),
                Endianness::Little => u32::from_le_bytes(b),
            }
        };
        let incl_len = field(8) as usize;
        if incl_len > max_len {
            return Err(self.corrupt(format!(
                "record length {incl_len} exceeds the snap length {} (limit {max_len})",
                header.snaplen
            )));
        }
        if !self.fill(16 + incl_len)? {
            return self.end_of_file("a record");
        }
        let (ts_sec, ts_frac, orig_len) = (field(0), field(4), field(12));
        let frac = match header.ts_resolution {
            TsResolution::MicroSecond => (ts_frac as u64).saturating_mul(1000),
            TsResolution::NanoSecond => ts_frac as u64,
        };
        let ts = Timestamp((ts_sec as u64).saturating_mul(1_000_000_000).saturating_add(frac));
        let data_start = self.start + 16;
        self.consume(16 + incl_len);
        self.packets += 1;
        self.last_ts = ts;
        Ok(Some(Packet {
            ts,
            link,
            data: &self.buf[data_start..data_start + incl_len],
            orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            let Some(len) = self.peek_block_len_current()? else {
                return self.end_of_pcapng("a block header");
            };
            if !self.fill(len)? {
                return self.end_of_pcapng("a block");
            }
            let Reader::PcapNg { parser, interfaces } = &mut self.reader else {
                unreachable!("pcapng reader")
            };
            let block = &self.buf[self.start..self.start + len];
            let raw: RawBlock<'_> = match parser.next_raw_block(block) {
                Ok((_, raw)) => raw,
                Err(e) => {
                    let reason = format!("bad block: {e}");
                    return Err(self.corrupt(reason));
                }
            };
            let big = parser.section().endianness == Endianness::Big;
            let u32_at = |b: &[u8], i: usize| -> Option<u32> {
                let x: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
                Some(if big {
                    u32::from_be_bytes(x)
                } else {
                    u32::from_le_bytes(x)
                })
            };
            let body = &raw.body[..];
            let body_start = self.start + 8;
            // (interface, timestamp ticks or None, captured length, original length, data offset in body)
            let packet = match raw.type_ {
                PCAPNG_SHB => {
                    interfaces.clear();
                    self.section = self.section.saturating_add(1);
                    None
                }
                PCAPNG_IDB => {
                    let idb = parser.interfaces().last().expect("parser recorded the interface");
                    let linktype = u32::from(idb.linktype);
                    let mut resol = 6;
                    let mut offset_secs = 0;
                    for opt in &idb.options {
                        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption as O;
                        match opt {
                            O::IfTsResol(r) => resol = *r,
                            O::IfTsOffset(o) => offset_secs = *o,
                            _ => {}
                        }
                    }
                    interfaces.push(Interface {
                        link: LinkType::from_linktype(linktype),
                        skipped: None,
                        linktype,
                        resol,
                        offset_secs,
                    });
                    None
                }
                PCAPNG_EPB | PCAPNG_PB => {
                    // EPB: interface id (4); PB (obsolete): interface id (2), drops (2). Then
                    // timestamp high, low, captured length, original length.
                    let (iface, hi, lo, cap_len, orig_len) = match (
                        u32_at(body, 0),
                        u32_at(body, 4),
                        u32_at(body, 8),
                        u32_at(body, 12),
                        u32_at(body, 16),
                    ) {
                        (Some(i), Some(h), Some(l), Some(c), Some(o)) => (i, h, l, c, o),
                        _ => return Err(self.corrupt("packet block shorter than its fixed fields".into())),
                    };
                    let iface = if raw.type_ == PCAPNG_PB {
                        if big {
                            iface >> 16
                        } else {
                            iface & 0xffff
                        }
                    } else {
                        iface
                    };
                    Some((iface, Some(((hi as u64) << 32) | lo as u64), cap_len, orig_len, 20usize))
                }
                PCAPNG_SPB => {
                    let Some(orig_len) = u32_at(body, 0) else {
                        return Err(self.corrupt("simple packet block shorter than its fixed fields".into()));
                    };
                    // The captured length is what the block holds, capped by the original length.
                    let cap_len = (body.len() as u32 - 4).min(orig_len);
                    Some((0, None, cap_len, orig_len, 4usize))
                }
                _ => None,
            };
            let Some((iface_id, ticks, cap_len, orig_len, data_off)) = packet else {
                self.consume(len);
                continue;
            };
            if data_off + cap_len as usize > body.len() {
                let reason = format!(
                    "packet block claims {cap_len} captured bytes but holds {}",
                    body.len() - data_off
                );
                return Err(self.corrupt(reason));
            }
            let Some(iface) = interfaces.get_mut(iface_id as usize) else {
                return Err(self.corrupt(format!("packet of interface {iface_id}, which was never described")));
            };
            let Some(link) = iface.link else {
                // Skipped, and the read goes on: other interfaces (or sections) may be readable.
                let slot = *iface.skipped.get_or_insert(self.skipped.len());
                if slot == self.skipped.len() {
                    self.skipped.push(SkippedInterface {
                        section: self.section,
                        interface: iface_id,
                        linktype: iface.linktype,
                        name: link_name(iface.linktype),
                        packets: 0,
                    });
                }
                self.skipped[slot].packets += 1;
                self.skipped_unsupported += 1;
                self.consume(len);
                continue;
            };
            let ts = match ticks {
                Some(t) => ticks_to_timestamp(t, iface.resol, iface.offset_secs),
                None => self.last_ts,
            };
            let data_start = body_start + data_off;
            self.consume(len);
            self.packets += 1;
            self.last_ts = ts;
            return Ok(Some(Packet {
                ts,
                link,
                data: &self.buf[data_start..data_start + cap_len as usize],
                orig_len,
            }));
        }
    }

    /// The length of the pcapng block at the read position, validated; `None` at a clean end.
    fn peek_block_len_current(&mut self) -> Result<Option<usize>, CaptureError> {
        let big = match &self.reader {
            Reader::PcapNg { parser, .. } => parser.section().endianness == Endianness::Big,
            Reader::Pcap { .. } => unreachable!("pcapng reader"),
        };
        self.peek_block_len(Some(big))
    }

    /// Reads a block's type and total length; a section header carries its own byte order.
    fn peek_block_len(&mut self, big: Option<bool>) -> Result<Option<usize>, CaptureError> {
        if !self.fill(12)? {
            return Ok(None);
        }
        let b = &self.buf[self.start..self.start + 12];
        let btype = u32::from_be_bytes(b[0..4].try_into().expect("4 bytes"));
        let big = if btype == PCAPNG_SHB {
            match u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")) {
                0x1A2B_3C4D => true,
                0x4D3C_2B1A => false,
                other => return Err(self.corrupt(format!("section header with bad byte-order magic 0x{other:08x}"))),
            }
        } else {
            big.unwrap_or(true)
        };
        let raw: [u8; 4] = b[4..8].try_into().expect("4 bytes");
        let len = if big {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        } as usize;
        if len < 12 || len % 4 != 0 {
            return Err(self.corrupt(format!("block length {len} is not a multiple of 4 of at least 12")));
        }
        if len > MAX_RECORD_LEN {
            return Err(self.corrupt(format!(
                "block length {len} exceeds the limit of {MAX_RECORD_LEN} bytes"
            )));
        }
        Ok(Some(len))
    }

    fn link_type(&self, linktype: u32) -> Result<LinkType, CaptureError> {
        LinkType::from_linktype(linktype).ok_or_else(|| self.unsupported(linktype))
    }

    fn unsupported(&self, linktype: u32) -> CaptureError {
        CaptureError::UnsupportedLink {
            path: self.path.clone(),
            linktype,
            name: link_name(linktype),
            supported: LinkType::supported_list(),
        }
    }

    /// The end of a pcapng file. If every packet was of unsupported interfaces, nothing of the
    /// capture could be used: that is the unsupported-link error, naming the first such type.
    fn end_of_pcapng(&mut self, what: &str) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.packets == 0 {
            if let Some(first) = self.skipped.first() {
                return Err(self.unsupported(first.linktype));
            }
        }
        self.end_of_file(what)
    }

    fn corrupt(&self, reason: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            packets: self.packets,
            reason,
        }
    }

    /// End of input: clean if nothing is left, otherwise a record was cut short.
    fn end_of_file(&mut self, what: &str) -> Result<Option<Packet<'_>>, CaptureError> {
        let left = self.end - self.start;
        if left > 0 && self.truncated.is_none() {
            self.truncated = Some(format!(
                "capture truncated after {} packets: the file ends inside {what} ({left} bytes at offset {} ignored)",
                self.packets, self.offset
            ));
            self.offset += left as u64;
            self.start = self.end;
        }
        Ok(None)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Makes at least `need` bytes available at `start` (need ≤ MAX_RECORD_LEN + 16). False if the
    /// file ends first.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            if self.start + need > self.buf.len() {
                // Move the unread tail to the front; grow only for records larger than the buffer.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if need > self.buf.len() {
                    self.buf.resize(need.next_power_of_two().max(READ_CHUNK), 0);
                }
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A broken compressed stream is a corrupt capture: the read stops there, with
                // everything before it kept, as for a corrupt record.
                Err(e) if self.compression != Compression::None && e.kind() != io::ErrorKind::PermissionDenied => {
                    let name = self.compression.name().unwrap_or_default();
                    return Err(self.corrupt(format!("{name} stream: {e}")));
                }
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(true)
    }
}

/// pcap-file's name of a link type number (the LINKTYPE_ name without its prefix).
fn link_name(linktype: u32) -> String {
    format!("{:?}", DataLink::from(linktype))
}

/// Converts pcapng timestamp ticks to nanoseconds: `resol` is if_tsresol (high bit clear:
/// 10^-n seconds, set: 2^-n seconds).
fn ticks_to_timestamp(ticks: u64, resol: u8, offset_secs: u64) -> Timestamp {
    let exp = (resol & 0x7f) as u32;
    let nanos: u128 = if resol & 0x80 == 0 {
        if exp <= 9 {
            ticks as u128 * 10u128.pow(9 - exp)
        } else if exp <= 38 {
            ticks as u128 / 10u128.pow(exp - 9)
        } else {
            0
        }
    } else if exp < 64 {
        ((ticks as u128) * 1_000_000_000) >> exp
    } else {
        0
    };
    let nanos = nanos.min(u64::MAX as u128) as u64;
    Timestamp(nanos.saturating_add(offset_secs.saturating_mul(1_000_000_000)))
}

#[cfg(test)]
mod tests;
