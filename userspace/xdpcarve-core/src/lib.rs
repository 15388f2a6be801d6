//! The sans-IO packet pipeline of xdpcarve, in the order a packet travels:
//! [`wire`] (link → IP → TCP views), [`flow`] (connection table), [`reassembly`] (per-direction
//! TCP streams), [`registry`] (the protocols a connection is handed to), tied together by
//! [`Engine`] and driven by [`Worker`]. Packets in, file records out; the caller owns all I/O and
//! the clock (packet timestamps). A worker that falls behind sheds file work ([`overload`]).

#![forbid(unsafe_code)]

pub mod engine;
pub mod flow;
pub mod overload;
pub mod reassembly;
pub mod registry;
pub mod stats;
pub mod wire;
pub mod worker;

pub use engine::{Engine, EngineConfig, FlowMemory, DEFAULT_MEMORY};
pub use overload::{LoadMonitor, OverloadConfig, OverloadStats};
pub use registry::ProtocolRegistry;
pub use stats::{CaptureStats, TcpStats};
pub use worker::{RecordSink, Worker, WorkerReport};
pub use xdpcarve_contract::LinkType;
