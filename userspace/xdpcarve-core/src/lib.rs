//! The sans-IO packet pipeline of xdpcarve, in the order a packet travels:
//! [`wire`] (link → IP → TCP views), [`flow`] (connection table), [`reassembly`] (per-direction
//! TCP streams), [`app`] (dispatch to the HTTP/SMTP parsers), tied together by [`Engine`].
//! Packets in, file records out; the caller owns all I/O and the clock (packet timestamps).

pub mod app;
pub mod detect;
pub mod engine;
pub mod flow;
pub mod reassembly;
pub mod wire;

pub use engine::{Engine, EngineConfig};
pub use wire::LinkType;
