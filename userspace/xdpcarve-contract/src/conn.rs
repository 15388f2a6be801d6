//! A connection as parsers and records see it: who opened it, which side sent what, why it ended.

use std::net::IpAddr;

use crate::time::Timestamp;

/// A connection's identity as the app layer and the records see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    /// Zeek-style connection uid ("C" + base62) of [`ConnMeta::id`].
    pub uid: String,
    /// The connection's id: from the run's seed and sensor name, the flow's key and its first
    /// sequence number ([`crate::files::IdSeed`]), never from a worker or an arrival order.
    pub id: u64,
    /// Files opened on this connection so far: a file's id is its connection's and its place.
    pub files_opened: std::cell::Cell<u32>,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    /// Outer VLAN id if the packets were tagged.
    pub vlan: Option<u16>,
    pub start: Timestamp,
}

/// Which endpoint sent the bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The connection originator (client).
    Orig,
    /// The responder (server).
    Resp,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Orig => Side::Resp,
            Side::Resp => Side::Orig,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Side::Orig => 0,
            Side::Resp => 1,
        }
    }
}

/// Why a connection is being torn down.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished (FIN/FIN or RST).
    Finished,
    /// No packet for the idle timeout.
    Timeout,
    /// Evicted to respect the flow-table bound.
    Evicted,
    /// End of capture or sensor shutdown.
    Shutdown,
}

impl CloseReason {
    /// The `truncated_reason` given to files still open at close.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Finished => "conn_closed",
            CloseReason::Timeout => "timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
        }
    }
}
