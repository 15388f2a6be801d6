//! The contract between the flow engine and application-layer protocols.
//!
//! The engine reassembles each TCP direction and hands the connection's [`StreamParser`]
//! in-order bytes, gaps and ends. A parser must consume every byte it is given: it keeps
//! whatever incomplete line or header it needs in its own bounded buffer (Suricata's
//! "incomplete" handling, done inside the parser so the engine never holds stream data for it).
//! Parsers find files, drive `xdpcarve_files::FileAnalyzer`s, and leave finished records in the
//! worker's [`FileSink`].
//!
//! A [`Protocol`] is what a protocol crate registers: one value per worker holding the
//! protocol's configuration, counters and any state its connections share (HTTP assembles 206
//! ranges across connections). Its parsers see it as [`AppContext::state`].

use crate::conn::{CloseReason, ConnMeta, Side};
use crate::counters::CounterSet;
use crate::files::{FileConfig, FileSink};
use crate::time::Timestamp;

/// What a parser may touch while handling one event of one connection.
pub struct AppContext<'a, S> {
    pub conn: &'a ConnMeta,
    /// Timestamp of the packet being processed.
    pub now: Timestamp,
    /// Where files are opened and their records go.
    pub files: &'a mut FileSink,
    /// The protocol's per-worker state: configuration, counters, cross-connection state.
    pub state: &'a mut S,
}

impl<S> AppContext<'_, S> {
    /// The same event for a component with state of its own inside the protocol's (MIME inside
    /// HTTP or SMTP).
    pub fn with_state<'b, T>(&'b mut self, part: impl FnOnce(&'b mut S) -> &'b mut T) -> AppContext<'b, T> {
        AppContext {
            conn: self.conn,
            now: self.now,
            files: &mut *self.files,
            state: part(&mut *self.state),
        }
    }
}

/// An application-layer parser for one TCP connection (both directions).
pub trait StreamParser {
    /// The per-worker state its events see (its [`Protocol`] value, or a component's part of it).
    type State;
    /// In-order bytes sent by `from`. Every byte must be consumed.
    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut AppContext<'_, Self::State>);
    /// `len` bytes sent by `from` are missing (capture loss, or reassembly gave up on a hole).
    fn on_gap(&mut self, from: Side, len: u64, cx: &mut AppContext<'_, Self::State>);
    /// `from` will send nothing more (FIN, or RST).
    fn on_end(&mut self, from: Side, cx: &mut AppContext<'_, Self::State>);
    /// The connection is torn down: close every open file (as truncated if incomplete).
    fn on_close(&mut self, reason: CloseReason, cx: &mut AppContext<'_, Self::State>);
    /// True once the rest of the connection is opaque to this parser (STARTTLS, CONNECT, Upgrade,
    /// unrecoverable garbage): the engine then stops reassembling and only counts bytes.
    fn is_done(&self) -> bool {
        false
    }
}

/// Who speaks first in a session that a protocol recognises by its content.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Opener {
    /// The sender of the first payload is the client (an HTTP request, an SMTP EHLO).
    Client,
    /// The sender is the server (an SMTP greeting).
    Server,
}

/// A protocol the engine can run. One value lives in each worker's engine; the engine creates
/// a [`Protocol::Parser`] per connection on the protocol's ports (or detected by content) and
/// routes the connection's events to it with this value as [`AppContext::state`].
pub trait Protocol: Send + 'static {
    /// The per-connection parser.
    type Parser: StreamParser<State = Self> + Send + 'static;
    /// The name in records (`proto`), counters (`<name>.files`) and the summary.
    const NAME: &'static str;

    /// A parser for a new connection.
    fn new_parser(&mut self, conn: &ConnMeta) -> Self::Parser;

    /// Recognises the first payload of a session on a port no protocol is configured for.
    /// Accept only unambiguous openings, so other traffic is never mistaken for this protocol.
    fn detect(payload: &[u8]) -> Option<Opener> {
        let _ = payload;
        None
    }

    /// The earliest packet time at which [`Protocol::handle_timeout`] has work, if any.
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }

    /// Expires worker-wide state due by `now` (connections expire on their own).
    fn handle_timeout(&mut self, now: Timestamp, files: &mut FileSink) {
        let _ = (now, files);
    }

    /// End of input or shutdown, after every connection closed: flush worker-wide state.
    fn finish(&mut self, now: Timestamp, files: &mut FileSink) {
        let _ = (now, files);
    }

    /// Adds this protocol's counters to `out` (under [`Protocol::NAME`], and under the area of
    /// any component it runs, such as `mime`).
    fn counters(&self, out: &mut CounterSet);
}

/// Owns everything an [`AppContext`] borrows, for driving one parser on its own: unit tests,
/// fuzzing and benchmarks of a parser without the flow engine.
pub struct StandaloneApp<S> {
    pub conn: ConnMeta,
    pub now: Timestamp,
    pub files: FileSink,
    pub state: S,
}

impl<S> StandaloneApp<S> {
    pub fn new(state: S, files: FileConfig, conn: ConnMeta) -> Self {
        StandaloneApp {
            now: conn.start,
            conn,
            files: FileSink::new(files),
            state,
        }
    }

    pub fn cx(&mut self) -> AppContext<'_, S> {
        AppContext {
            conn: &self.conn,
            now: self.now,
            files: &mut self.files,
            state: &mut self.state,
        }
    }
}
