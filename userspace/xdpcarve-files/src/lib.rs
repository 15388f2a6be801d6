//! File analysis layer of xdpcarve.
//!
//! Everything between "an application parser found a file" and "a finished file record":
//! streaming hashes ([`analyzer`]), content sniffing ([`sniff`]), transfer decoders ([`decode`]),
//! the record that leaves the sensor ([`record`]), and the contract every application-layer
//! parser implements ([`app`]). Nothing here does I/O; bytes in, records out.

pub mod analyzer;
pub mod app;
pub mod config;
pub mod decode;
pub mod ranged;
pub mod record;
pub mod sniff;
pub mod stats;
pub mod time;

pub use analyzer::{FileAnalyzer, FileEnd};
pub use app::{AppContext, CloseReason, FuidGen, Side, StandaloneApp, StreamParser};
pub use config::{AppConfig, FileConfig, HashSet};
pub use ranged::RangedFiles;
pub use record::{ConnMeta, Direction, FileMeta, FileRecord, HttpInfo, Proto, SmtpInfo};
pub use stats::Stats;
pub use time::Timestamp;
