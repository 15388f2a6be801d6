//! The contract every part of xdpcarve is written against: a connection and its sides
//! ([`conn`]), packet time ([`time`]), link types ([`link`]), the file record and the records that
//! complete it later ([`record`], [`note`]), the ways a sender bent a protocol to carry a file
//! ([`anomaly`]), the store and scan verdicts ([`scan`]), counters ([`counters`]), where files go ([`files`]), how much file work an overloaded
//! worker sheds ([`load`]), and what a protocol
//! implements to be run by the engine ([`parser`]). No I/O, no parsing.

#![forbid(unsafe_code)]

pub mod anomaly;
pub mod conn;
pub mod counters;
pub mod files;
pub mod link;
pub mod load;
pub mod note;
pub mod parser;
pub mod record;
pub mod scan;
pub mod time;

pub use anomaly::{Anomalies, Anomaly};
pub use conn::{CloseReason, ConnMeta, Side};
pub use counters::CounterSet;
pub use files::{
    FileConfig, FileSink, FileStats, HashOffload, HashSet, IdSeed, PendingHashes, PendingRecord, UnknownHash,
};
pub use link::LinkType;
pub use load::{FileInterest, LoadSignal, ShedLevel, WantedFiles};
pub use note::FileNote;
pub use parser::{AppContext, Opener, Protocol, StandaloneApp, StreamParser};
pub use record::{zeek_id, AppFields, Direction, FileMeta, FileRecord, Proto};
pub use scan::{
    FileStoreSink, ScanFields, ScanStatus, StoreChunk, StoreEnd, StoreHandle, StoreTicket, ToolVerdict, Verdict,
};
pub use time::Timestamp;
