//! SMTP session parser: follows the client's commands and the server's replies, and streams each
//! message (DATA, dot-unstuffed; or BDAT chunks, concatenated) into a [`MimeParser`].
//!
//! Choices where the RFCs leave the observer room:
//! - Replies are matched to commands in order through a bounded queue (PIPELINING). A reply with
//!   no command waiting (the banner, or after a capture gap) is ignored.
//! - After `DATA`, client bytes are held (bounded) until the server answers: 354 makes them the
//!   message, 4xx/5xx makes them commands again (the client did not wait, or we misread). If the
//!   server side was never seen (one-way capture), or the reply was lost (gap, or the held bytes
//!   already hold the end-of-data line or fill the bound), the bytes are taken as the message,
//!   unless their first line is plainly a command (MAIL FROM:, RSET, QUIT, ...): then the
//!   refusal was lost and they are commands.
//! - A message is finished at its end-of-data line (or last BDAT chunk) without waiting for the
//!   server's verdict: its files crossed the wire even if the server then rejects the message
//!   with a 5xx (counted in `rejected_transactions`).
//! - Capture loss (`on_gap`; rules at `client_gap`): a hole costs only the bytes it took. A reply
//!   seen while a DATA message is open says the server took it as ended: the end-of-data line is
//!   in a hole (reported late: a hole is reported once acknowledged a few packets ago) or was
//!   captured late, so the message stays open until the next client event tells: a hole ends it
//!   there if the server also accepted a next DATA (an unexplained 354), a "." line ends it, a
//!   command within `WATCH_LINES` lines after a hole ends it. In the command phase (or after a
//!   message ended in a hole) client lines are skipped to the next command (`Resync`); lines
//!   that are no command after one are the message of a DATA the hole took, when a 354 says so
//!   or (where BDAT is not in use) a transaction is open or they read as header fields. BDAT
//!   keeps byte counts through holes inside a chunk; past its end the next BDAT line is found
//!   by resyncing. Resyncing never happens without a hole.
//! - AUTH exchanges (334 continuations) are skipped; STARTTLS answered with 220 makes the rest
//!   of the connection opaque (`is_done`). Over-long lines are skipped to their end and counted.
//! - A connection picked up without its banner may have been joined inside a message: client
//!   lines are skipped (`midstream_lines`) until one that can only be a command (EHLO, MAIL
//!   FROM:, RCPT TO:, RSET, ...) or the end-of-data line, so no file is made from a message tail.

#![forbid(unsafe_code)]

mod detect;
pub mod info;
mod state;

pub use info::SmtpInfo;
pub use state::{Smtp, SmtpConfig, SmtpStats};

use std::collections::VecDeque;

use xdpcarve_contract::{Anomaly, AppContext, CloseReason, Direction, FileMeta, Proto, Side, StreamParser};
use xdpcarve_files::FileEnd;
use xdpcarve_mime::{MimeContext, MimeParser, MimeStart};

/// The name SMTP registers: `proto` of its records, area of its counters.
pub const NAME: &str = "smtp";
pub const PROTO: Proto = Proto::new(NAME);

/// The context of SMTP events.
pub type SmtpContext<'a> = AppContext<'a, Smtp>;

/// The event as the MIME parser of the message sees it.
fn mime_cx<'b>(cx: &'b mut SmtpContext<'_>) -> MimeContext<'b> {
    cx.with_state(|smtp| &mut smtp.mime)
}

/// Client bytes held after DATA while its reply is awaited.
const MAX_HELD_DATA: usize = 64 << 10;
/// Recipients remembered per transaction (metadata only; the message is carved regardless).
const MAX_RCPTS: usize = 1024;
/// Longest HELO / address kept.
const MAX_ARG: usize = 512;
/// Lines of an open message, after a hole, at whose start a command means its end was lost.
const WATCH_LINES: u8 = 8;
/// Bytes of a line start enough to tell a command (`MAIL FROM:`, `STARTTLS\r\n`).
const WATCH_PREFIX: usize = 12;

/// A command waiting for its reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Cmd {
    Helo,
    Mail,
    Rcpt,
    Data,
    /// The end-of-data line of a DATA message.
    DataEnd,
    Bdat,
    Auth,
    StartTls,
    Other,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ClientMode {
    Command,
    /// DATA sent, its reply not seen yet: client bytes are held in `held_data`.
    DataPending,
    /// Inside a DATA message.
    Data,
    /// Inside a BDAT chunk.
    Bdat {
        remaining: u64,
        last: bool,
    },
    /// After a hole that left the client's framing unknown: lines are skipped until one is a
    /// command (or the end of the message they were the tail of), or until they can only be
    /// the message of a DATA the server accepted in the hole.
    Resync,
}

/// Where the DATA dot-unstuffer is within a line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Unstuff {
    /// At the start of a line.
    LineStart,
    MidLine,
    /// A line started with '.'.
    Dot,
    /// A line started with ".\r".
    DotCr,
}

/// A bounded line assembler.
#[derive(Default)]
struct LineBuf {
    buf: Vec<u8>,
    /// The line passed the bound: skipping to its end.
    overlong: bool,
}

enum LineEvent {
    Line,
    TooLong,
}

impl LineBuf {
    /// Takes bytes up to and including the next '\n'. Returns the bytes consumed and what
    /// happened: a line is complete in `buf`, or the line just passed the bound (reported once,
    /// when it happens, so a line that never ends is counted too; the rest of it is skipped).
    fn push(&mut self, data: &[u8], max: usize) -> (usize, Option<LineEvent>) {
        let (piece, complete) = match memchr::memchr(b'\n', data) {
            Some(i) => (&data[..=i], true),
            None => (data, false),
        };
        if self.overlong {
            self.overlong = !complete;
            return (piece.len(), None);
        }
        if self.buf.len() + piece.len() > max + 2 {
            self.buf.clear();
            self.overlong = !complete;
            return (piece.len(), Some(LineEvent::TooLong));
        }
        self.buf.extend_from_slice(piece);
        (piece.len(), complete.then_some(LineEvent::Line))
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.overlong = false;
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Text of a command argument, bounded.
fn arg_text(b: &[u8]) -> String {
    let b = b.trim_ascii();
    String::from_utf8_lossy(&b[..b.len().min(MAX_ARG)]).into_owned()
}

/// The address of `FROM:<a@b> SIZE=1` / `TO: <a@b>`: brackets stripped, parameters dropped.
fn path_arg(b: &[u8]) -> String {
    let b = b.trim_ascii();
    let addr = if let Some(rest) = b.strip_prefix(b"<") {
        match memchr::memchr(b'>', rest) {
            Some(end) => &rest[..end],
            None => rest,
        }
    } else {
        b.split(|&c| c == b' ').next().unwrap_or(b)
    };
    arg_text(addr)
}

/// One SMTP connection: commands and message data from `Side::Orig`, replies from `Side::Resp`.
pub struct SmtpParser {
    max_line: usize,
    max_pipelined: usize,
    client: ClientMode,
    client_line: LineBuf,
    server_line: LineBuf,
    pending: VecDeque<Cmd>,
    held_data: Vec<u8>,
    /// The first line of `held_data` was looked at (a command there means DATA was refused).
    held_first_line_seen: bool,
    dot: Unstuff,
    /// Boxed: a session between messages holds no MIME state.
    message: Option<Box<MimeParser>>,

    helo: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// A transaction (MAIL .. end of data) is open.
    in_transaction: bool,
    /// The open transaction was already counted as rejected.
    rejected_counted: bool,

    started: bool,
    server_seen: bool,
    greeted: bool,
    /// The client's lines can be read as commands (false when joined mid-message).
    synced: bool,
    auth_active: bool,
    starttls_sent: bool,
    done: bool,

    // ---- after holes ----
    /// BDAT may be in use: the server offered CHUNKING, or the client sent BDAT.
    chunking: bool,
    /// The open DATA message lost bytes in a hole.
    msg_gap: bool,
    /// The server replied while the DATA message was open: it took the message as ended.
    eod_replied: bool,
    /// A 354 came with no DATA waiting for it (the DATA is in a hole, or behind one). Cleared by
    /// the next command.
    unexplained_354: bool,
    /// Lines still to check for a command at their start (see `WATCH_LINES`).
    watch: u8,
    /// The start of a line being checked, waiting for the bytes that tell.
    watch_buf: Vec<u8>,
    /// The line at the start of the next message bytes was already checked.
    line_checked: bool,
    /// Raw bytes of the lines read in `Resync` (at most the last two), kept in case they are a
    /// message's.
    resync_buf: Vec<u8>,
    /// Where the line being read starts in `resync_buf`.
    resync_line_start: usize,
    resync_lines: u32,
    /// Bytes lost or skipped since the hole, for a message found in `Resync`.
    resync_lost: u64,
}

impl SmtpParser {
    pub fn new(cfg: &SmtpConfig) -> Self {
        SmtpParser {
            max_line: cfg.max_line_len.max(64),
            max_pipelined: cfg.max_pipelined.max(1),
            client: ClientMode::Command,
            client_line: LineBuf::default(),
            server_line: LineBuf::default(),
            pending: VecDeque::new(),
            held_data: Vec::new(),
            held_first_line_seen: false,
            dot: Unstuff::LineStart,
            message: None,
            helo: None,
            mail_from: None,
            rcpt_to: Vec::new(),
            in_transaction: false,
            rejected_counted: false,
            started: false,
            server_seen: false,
            greeted: false,
            synced: false,
            auth_active: false,
            starttls_sent: false,
            done: false,
            chunking: false,
            msg_gap: false,
            eod_replied: false,
            unexplained_354: false,
            watch: 0,
            watch_buf: Vec::new(),
            line_checked: false,
            resync_buf: Vec::new(),
            resync_line_start: 0,
            resync_lines: 0,
            resync_lost: 0,
        }
    }

    fn start(&mut self, cx: &mut SmtpContext<'_>) {
        if !self.started {
            self.started = true;
            cx.state.stats.sessions += 1;
        }
    }

    fn expect_reply(&mut self, cmd: Cmd) {
        if self.pending.len() >= self.max_pipelined {
            // Replies are far behind (or lost): forget the oldest rather than grow.
            self.pending.pop_front();
        }
        self.pending.push_back(cmd);
    }

    // ---- client side ----

    fn client_data(&mut self, mut data: &[u8], cx: &mut SmtpContext<'_>) {
        while !data.is_empty() && !self.done {
            match self.client {
                ClientMode::Command => {
                    if self.starttls_sent && self.client_line.buf.is_empty() && data[0] == 0x16 {
                        // A TLS handshake after STARTTLS whose 220 we did not see.
                        self.go_opaque(cx);
                        return;
                    }
                    let (n, ev) = self.client_line.push(data, self.max_line);
                    data = &data[n..];
                    match ev {
                        None => {}
                        Some(LineEvent::TooLong) => cx.state.stats.line_too_long += 1,
                        Some(LineEvent::Line) => {
                            let line = std::mem::take(&mut self.client_line.buf);
                            self.command(trim_eol(&line), cx);
                            self.client_line.buf = line;
                            self.client_line.buf.clear();
                        }
                    }
                }
                ClientMode::DataPending => {
                    if !self.server_seen {
                        // One-way capture (or the server never spoke): there is no reply to wait for.
                        self.accept_data(cx);
                        continue;
                    }
                    let take = data.len().min(MAX_HELD_DATA - self.held_data.len());
                    // Only the new bytes (and the 3 before them) can complete an end-of-data line.
                    let search_from = self.held_data.len().saturating_sub(3);
                    self.held_data.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if !self.held_first_line_seen {
                        if let Some(nl) = memchr::memchr(b'\n', &self.held_data) {
                            self.held_first_line_seen = true;
                            if is_sync_command(trim_eol(&self.held_data[..=nl])) {
                                // The client went on with commands: DATA was refused and we
                                // did not see the refusal.
                                self.reject_data(cx);
                                continue;
                            }
                        }
                    }
                    if self.held_data.len() >= MAX_HELD_DATA
                        || self.held_data.starts_with(b".\r\n")
                        || memchr::memmem::find(&self.held_data[search_from..], b"\n.\r\n").is_some()
                    {
                        // The whole message (or more than a client would send unprompted)
                        // came without the reply: the 354 was lost.
                        self.accept_data(cx);
                    }
                }
                ClientMode::Data if !self.watch_buf.is_empty() => {
                    // A line start held to tell whether it is a command: complete it.
                    let room = WATCH_PREFIX.saturating_sub(self.watch_buf.len()).max(1);
                    let upto = data.len().min(room);
                    let take = memchr::memchr(b'\n', &data[..upto]).map_or(upto, |k| k + 1);
                    let mut buf = std::mem::take(&mut self.watch_buf);
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    match command_prefix(&buf) {
                        None => self.watch_buf = buf,
                        Some(true) => {
                            self.lost_data_end(cx);
                            self.client_data(&buf, cx);
                        }
                        Some(false) => {
                            self.watch = self.watch.saturating_sub(1);
                            self.line_checked = true;
                            let n = self.message_bytes(&buf, cx);
                            if n < buf.len() {
                                self.client_data(&buf[n..], cx);
                            }
                        }
                    }
                }
                ClientMode::Data => {
                    let n = self.message_bytes(data, cx);
                    data = &data[n..];
                }
                ClientMode::Resync => {
                    let (n, ev) = self.client_line.push(data, self.max_line);
                    if self.resync_buf.len() + n > 2 * (self.max_line + 2) {
                        // Too long to be the start of a message worth keeping: counted lost.
                        self.resync_lost += self.resync_buf.len() as u64;
                        self.resync_buf.clear();
                        self.resync_line_start = 0;
                    }
                    self.resync_buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    match ev {
                        None => {}
                        Some(LineEvent::TooLong) => {
                            cx.state.stats.line_too_long += 1;
                            self.resync_line(b"\x00", cx);
                        }
                        Some(LineEvent::Line) => {
                            let line = std::mem::take(&mut self.client_line.buf);
                            self.resync_line(trim_eol(&line), cx);
                            self.client_line.buf = line;
                            self.client_line.buf.clear();
                        }
                    }
                }
                ClientMode::Bdat { remaining, last } => {
                    let take = (data.len() as u64).min(remaining) as usize;
                    if let Some(m) = &mut self.message {
                        m.feed(&data[..take], &mut mime_cx(cx));
                    }
                    data = &data[take..];
                    self.client = ClientMode::Bdat {
                        remaining: remaining - take as u64,
                        last,
                    };
                    self.bdat_progress(cx);
                }
            }
        }
    }

    /// Ends a BDAT chunk whose bytes have all arrived.
    fn bdat_progress(&mut self, cx: &mut SmtpContext<'_>) {
        if let ClientMode::Bdat { remaining: 0, last } = self.client {
            self.client = ClientMode::Command;
            if last {
                self.finish_message(FileEnd::Complete, cx);
            }
        }
    }

    /// A hole left the client's framing unknown; `lost` of its bytes may be a message's.
    fn enter_resync(&mut self, lost: u64, cx: &mut SmtpContext<'_>) {
        cx.state.stats.gap_resyncs += 1;
        self.client = ClientMode::Resync;
        self.client_line.clear();
        self.resync_buf.clear();
        self.resync_line_start = 0;
        self.resync_lines = 0;
        self.resync_lost = lost;
    }

    /// A line read in `Resync` (`\0` for one too long to be a command).
    fn resync_line(&mut self, line: &[u8], cx: &mut SmtpContext<'_>) {
        self.resync_lines += 1;
        let data = line.eq_ignore_ascii_case(b"DATA");
        let bdat = is_bdat_command(line);
        if is_sync_command(line) || data || bdat {
            self.client = ClientMode::Command;
            self.resync_buf.clear();
            let data_accepted = std::mem::take(&mut self.unexplained_354);
            if self.message.is_some() {
                if bdat {
                    // The chunk before this one lost its bytes (or its BDAT line).
                    let lost = self.resync_lost;
                    if let Some(m) = &mut self.message {
                        m.gap(lost, &mut mime_cx(cx));
                    }
                } else {
                    // A BDAT message whose last chunk was lost.
                    cx.state.stats.gap_lost_data_ends += 1;
                    self.finish_message(FileEnd::Truncated("gap"), cx);
                }
            }
            self.command(line, cx);
            if data && data_accepted {
                // Its 354 came while the client's stream waited behind the hole.
                self.accept_data(cx);
            }
            return;
        }
        if line == b"." {
            // The end of a message whose tail was being skipped.
            self.client = ClientMode::Command;
            self.resync_buf.clear();
            return;
        }
        // Besides commands a client sends only message text (and SASL or TLS data, excluded):
        // after the line the hole cut, lines that are no command are a message whose DATA (and
        // maybe its 354) the hole took, if the server accepted a DATA we did not see, a
        // transaction is open, or they read as a message's header fields.
        // Where BDAT may be in use the lines may be a chunk's (not dot-stuffed, not ended by a
        // "." line): only the server's 354 tells then.
        let message_likely = self.unexplained_354
            || (!self.chunking && (self.in_transaction || xdpcarve_mime::header::is_field_line(line)));
        if message_likely
            && self.message.is_none()
            && self.resync_lines >= 2
            && !self.auth_active
            && !self.starttls_sent
        {
            // These lines (the first of them cut by the hole) are the message.
            self.unexplained_354 = false;
            self.client = ClientMode::DataPending;
            self.accept_data(cx);
            let lost = self.resync_lost.max(1);
            if let Some(m) = &mut self.message {
                m.gap(lost, &mut mime_cx(cx));
            }
            self.msg_gap = true;
            self.dot = Unstuff::MidLine;
            let buf = std::mem::take(&mut self.resync_buf);
            self.client_data(&buf, cx);
            return;
        }
        if self.message.is_some() {
            // Inside a BDAT message whose chunk header the hole took: lines that are no
            // command are its chunk bytes (its MIME parser resyncs on the next boundary).
            let lost = std::mem::take(&mut self.resync_lost);
            let buf = std::mem::take(&mut self.resync_buf);
            self.resync_line_start = 0;
            if let Some(m) = &mut self.message {
                m.gap(lost, &mut mime_cx(cx));
                m.feed(&buf, &mut mime_cx(cx));
            }
            self.resync_buf = buf;
            self.resync_buf.clear();
            return;
        }
        cx.state.stats.gap_skipped_lines += 1;
        // Keep this line only (the one before is the most a message found later needs).
        let drop = self.resync_line_start;
        self.resync_lost += drop as u64;
        self.resync_buf.drain(..drop);
        self.resync_line_start = self.resync_buf.len();
    }

    /// The open DATA message went on past its end: its end-of-data line was in a hole.
    fn lost_data_end(&mut self, cx: &mut SmtpContext<'_>) {
        cx.state.stats.gap_lost_data_ends += 1;
        self.finish_message(FileEnd::Truncated("gap"), cx);
    }

    fn command(&mut self, line: &[u8], cx: &mut SmtpContext<'_>) {
        // A command parsed: the client's stream is not stuck behind a hole.
        self.unexplained_354 = false;
        if self.auth_active {
            let is_auth_data = line == b"*" || line.iter().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b));
            if is_auth_data {
                return;
            }
            // Not a SASL response: the exchange ended without us seeing its reply.
            self.auth_active = false;
        }
        if !self.synced {
            // Joined mid-session: until a line that can only be a command (or the end of the
            // message we joined inside), lines are message text, not commands.
            if line == b"." || !is_sync_command(line) {
                cx.state.stats.midstream_lines += 1;
                self.synced = line == b".";
                return;
            }
            self.synced = true;
        }
        if line.is_empty() {
            // Servers answer an empty line with 500; keep replies aligned.
            self.expect_reply(Cmd::Other);
            return;
        }
        let (verb, arg) = match memchr::memchr(b' ', line) {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[..0]),
        };
        if verb.is_empty() || verb.len() > 16 || !verb.iter().all(|b| b.is_ascii_alphabetic()) {
            cx.state.stats.malformed_lines += 1;
            self.expect_reply(Cmd::Other);
            return;
        }
        let verb = verb.to_ascii_uppercase();
        match verb.as_slice() {
            b"EHLO" | b"HELO" | b"LHLO" => {
                self.helo = Some(arg_text(arg));
                self.reset_transaction(cx);
                self.expect_reply(Cmd::Helo);
            }
            b"MAIL" => {
                let Some(path) = strip_prefix_ci(arg.trim_ascii_start(), b"FROM:") else {
                    cx.state.stats.malformed_lines += 1;
                    self.expect_reply(Cmd::Other);
                    return;
                };
                self.reset_transaction(cx);
                self.mail_from = Some(path_arg(path));
                self.open_transaction(cx);
                self.expect_reply(Cmd::Mail);
            }
            b"RCPT" => {
                let Some(path) = strip_prefix_ci(arg.trim_ascii_start(), b"TO:") else {
                    cx.state.stats.malformed_lines += 1;
                    self.expect_reply(Cmd::Other);
                    return;
                };
                if self.rcpt_to.len() < MAX_RCPTS {
                    self.rcpt_to.push(path_arg(path));
                }
                self.expect_reply(Cmd::Rcpt);
            }
            b"DATA" if !arg.trim_ascii().is_empty() => {
                // DATA takes no argument: this is text, not the command.
                cx.state.stats.malformed_lines += 1;
                self.expect_reply(Cmd::Other);
            }
            b"DATA" => {
                cx.state.stats.data_commands += 1;
                self.expect_reply(Cmd::Data);
                self.client = ClientMode::DataPending;
                self.held_data.clear();
                self.held_first_line_seen = false;
            }
            b"BDAT" => {
                let mut words = arg.split(|&b| b == b' ').filter(|w| !w.is_empty());
                let size = words
                    .next()
                    .and_then(|w| std::str::from_utf8(w).ok())
                    .and_then(|w| w.parse::<u64>().ok());
                let last = match words.next() {
                    None => Some(false),
                    Some(w) if w.eq_ignore_ascii_case(b"LAST") && words.next().is_none() => Some(true),
                    Some(_) => None,
                };
                let (Some(size), Some(last)) = (size, last) else {
                    // Without a size the chunk cannot be delimited: its bytes will read as
                    // (unknown) commands.
                    cx.state.stats.malformed_lines += 1;
                    self.expect_reply(Cmd::Other);
                    return;
                };
                cx.state.stats.bdat_chunks += 1;
                self.chunking = true;
                self.expect_reply(Cmd::Bdat);
                if self.message.is_none() {
                    self.open_message(cx);
                }
                self.client = ClientMode::Bdat { remaining: size, last };
                self.bdat_progress(cx);
            }
            b"RSET" => {
                cx.state.stats.rset += 1;
                if self.message.is_some() {
                    // A BDAT message abandoned before its last chunk.
                    self.finish_message(FileEnd::Truncated("rset"), cx);
                }
                self.reset_transaction(cx);
                self.expect_reply(Cmd::Other);
            }
            b"AUTH" => {
                cx.state.stats.auth += 1;
                self.auth_active = true;
                self.expect_reply(Cmd::Auth);
            }
            b"STARTTLS" => {
                self.starttls_sent = true;
                self.expect_reply(Cmd::StartTls);
            }
            b"QUIT" | b"NOOP" | b"VRFY" | b"EXPN" | b"HELP" | b"TURN" | b"ETRN" | b"ATRN" | b"XCLIENT"
            | b"XFORWARD" | b"SEND" | b"SOML" | b"SAML" | b"VERB" | b"ONEX" | b"XEXCH" => {
                self.expect_reply(Cmd::Other);
            }
            _ => {
                cx.state.stats.unknown_commands += 1;
                self.expect_reply(Cmd::Other);
            }
        }
    }

    fn open_transaction(&mut self, cx: &mut SmtpContext<'_>) {
        if !self.in_transaction {
            self.in_transaction = true;
            self.rejected_counted = false;
            cx.state.stats.transactions += 1;
        }
    }

    fn reset_transaction(&mut self, _cx: &mut SmtpContext<'_>) {
        self.mail_from = None;
        self.rcpt_to.clear();
        self.in_transaction = false;
    }

    fn count_rejected(&mut self, cx: &mut SmtpContext<'_>) {
        if !self.rejected_counted {
            self.rejected_counted = true;
            cx.state.stats.rejected_transactions += 1;
        }
    }

    fn open_message(&mut self, cx: &mut SmtpContext<'_>) {
        self.open_transaction(cx);
        let mut template = FileMeta::new(PROTO, Direction::Upload);
        SmtpInfo {
            helo: self.helo.clone(),
            mail_from: self.mail_from.clone(),
            rcpt_to: self.rcpt_to.clone(),
        }
        .write_fields(&mut template.fields);
        self.message = Some(Box::new(
            MimeParser::new(MimeStart::Message, template).with_message_fields(info::message_fields),
        ));
        self.reset_gap_state();
    }

    fn reset_gap_state(&mut self) {
        self.msg_gap = false;
        self.eod_replied = false;
        self.watch = 0;
        self.watch_buf.clear();
        self.line_checked = false;
    }

    /// The DATA reply was 354 (or is taken to be): held bytes and what follows are the message.
    fn accept_data(&mut self, cx: &mut SmtpContext<'_>) {
        if self.client != ClientMode::DataPending {
            return;
        }
        if self.message.is_none() {
            self.open_message(cx);
        }
        self.client = ClientMode::Data;
        self.dot = Unstuff::LineStart;
        let held = std::mem::take(&mut self.held_data);
        self.client_data(&held, cx);
    }

    /// DATA was refused: no message follows; held bytes are commands.
    fn reject_data(&mut self, cx: &mut SmtpContext<'_>) {
        self.count_rejected(cx);
        if self.client == ClientMode::DataPending {
            self.client = ClientMode::Command;
            let held = std::mem::take(&mut self.held_data);
            self.client_data(&held, cx);
        }
    }

    /// DATA message bytes: dot-unstuffs into the message until the end-of-data line. Returns
    /// the bytes consumed (the rest, after the end-of-data line, is commands).
    fn message_bytes(&mut self, data: &[u8], cx: &mut SmtpContext<'_>) -> usize {
        let mut i = 0;
        let mut run = 0; // start of bytes not yet fed
        let mut end = false;
        while i < data.len() {
            match self.dot {
                Unstuff::LineStart if self.watch > 0 && !std::mem::take(&mut self.line_checked) => {
                    // After a hole: a command here means the end-of-data line was lost.
                    match command_prefix(&data[i..]) {
                        None => {
                            self.feed_message(&data[run..i], cx);
                            self.watch_buf.extend_from_slice(&data[i..]);
                            return data.len();
                        }
                        Some(true) => {
                            self.feed_message(&data[run..i], cx);
                            self.lost_data_end(cx);
                            return i;
                        }
                        Some(false) => {
                            self.watch -= 1;
                            self.line_checked = true;
                        }
                    }
                }
                Unstuff::LineStart => {
                    self.line_checked = false;
                    if data[i] == b'.' {
                        self.feed_message(&data[run..i], cx);
                        i += 1;
                        run = i;
                        self.dot = Unstuff::Dot;
                    } else {
                        self.dot = Unstuff::MidLine;
                    }
                }
                Unstuff::MidLine => match memchr::memchr(b'\n', &data[i..]) {
                    Some(k) => {
                        i += k + 1;
                        self.dot = Unstuff::LineStart;
                    }
                    None => i = data.len(),
                },
                Unstuff::Dot => match data[i] {
                    b'\r' => {
                        i += 1;
                        run = i;
                        self.dot = Unstuff::DotCr;
                    }
                    b'\n' => {
                        // ".\n": an end-of-data line without its CR, as many servers accept it.
                        if let Some(m) = &mut self.message {
                            m.flag_message(Anomaly::BareLf);
                        }
                        i += 1;
                        run = i;
                        end = true;
                        break;
                    }
                    // A stuffed dot: dropped, the line continues.
                    _ => self.dot = Unstuff::MidLine,
                },
                Unstuff::DotCr => {
                    if data[i] == b'\n' {
                        i += 1;
                        run = i;
                        end = true;
                        break;
                    }
                    // ".\r" then more: the dot was stuffing, the CR is content.
                    self.feed_message(b"\r", cx);
                    self.dot = Unstuff::MidLine;
                }
            }
        }
        self.feed_message(&data[run..i], cx);
        if end {
            if !self.eod_replied {
                self.expect_reply(Cmd::DataEnd);
            }
            self.finish_message(FileEnd::Complete, cx);
        }
        i
    }

    fn feed_message(&mut self, data: &[u8], cx: &mut SmtpContext<'_>) {
        if let (Some(m), false) = (&mut self.message, data.is_empty()) {
            m.feed(data, &mut mime_cx(cx));
        }
    }

    fn finish_message(&mut self, end: FileEnd, cx: &mut SmtpContext<'_>) {
        if let Some(mut m) = self.message.take() {
            if !self.watch_buf.is_empty() {
                // A held line start that turned out to be the message's last bytes.
                let held = std::mem::take(&mut self.watch_buf);
                m.feed(&held, &mut mime_cx(cx));
            }
            m.finish(end, &mut mime_cx(cx));
        }
        self.reset_gap_state();
        self.client = ClientMode::Command;
        self.dot = Unstuff::LineStart;
        self.reset_transaction(cx);
    }

    fn go_opaque(&mut self, cx: &mut SmtpContext<'_>) {
        cx.state.stats.starttls += 1;
        self.done = true;
        self.finish_message(FileEnd::Truncated("starttls"), cx);
    }

    // ---- server side ----

    fn server_data(&mut self, mut data: &[u8], cx: &mut SmtpContext<'_>) {
        self.server_seen = true;
        while !data.is_empty() && !self.done {
            let (n, ev) = self.server_line.push(data, self.max_line);
            data = &data[n..];
            match ev {
                None => {}
                Some(LineEvent::TooLong) => cx.state.stats.line_too_long += 1,
                Some(LineEvent::Line) => {
                    let line = std::mem::take(&mut self.server_line.buf);
                    self.reply_line(trim_eol(&line), cx);
                    self.server_line.buf = line;
                    self.server_line.buf.clear();
                }
            }
        }
    }

    fn reply_line(&mut self, line: &[u8], cx: &mut SmtpContext<'_>) {
        if line.len() >= 12 && line[..3] == *b"250" && line[4..].eq_ignore_ascii_case(b"CHUNKING") {
            self.chunking = true;
        }
        let code = match line {
            [a, b, c, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                match rest.first() {
                    Some(b'-') => return, // more lines of the same reply follow
                    None | Some(b' ') => (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16,
                    Some(_) => {
                        cx.state.stats.malformed_lines += 1;
                        return;
                    }
                }
            }
            _ => {
                cx.state.stats.malformed_lines += 1;
                return;
            }
        };
        if !self.greeted {
            self.greeted = true;
            if code == 220 || code == 554 || code == 421 {
                // The banner: the session is seen from its start.
                self.synced = true;
                return;
            }
        }
        if self.client == ClientMode::DataPending && (300..400).contains(&code) && code != 334 {
            // Only DATA is answered with 354: accept even if the queue is out of step (a
            // server that ignored an empty line, say).
            while let Some(cmd) = self.pending.pop_front() {
                if cmd == Cmd::Data {
                    break;
                }
            }
            self.accept_data(cx);
            return;
        }
        if (300..400).contains(&code) && code != 334 {
            // A 354 with no DATA waiting: the DATA is in a hole (or behind one, not delivered).
            self.unexplained_354 = true;
        }
        let cmd = self.pending.pop_front();
        if self.client == ClientMode::Data && cmd != Some(Cmd::Data) {
            // The server answers only after the end-of-data line, which we have not seen: it is
            // in a hole, or in bytes behind a hole not reported yet (holes are reported a few
            // packets late), or captured late. The message stays open: the next client event
            // tells (see `on_gap`); after a hole already in it, a command line ends it too.
            self.eod_replied = true;
            if self.msg_gap {
                self.watch = WATCH_LINES;
            }
        }
        let Some(cmd) = cmd else { return };
        let failed = code >= 400;
        match cmd {
            Cmd::Data => match code {
                300..=399 => self.accept_data(cx),
                400..=599 => self.reject_data(cx),
                // Not an answer to DATA: replies and commands are out of step; keep waiting.
                _ => self.pending.push_front(Cmd::Data),
            },
            Cmd::DataEnd | Cmd::Bdat | Cmd::Mail if failed => self.count_rejected(cx),
            Cmd::Auth => {
                if code == 334 {
                    self.pending.push_front(Cmd::Auth);
                    self.auth_active = true;
                } else {
                    self.auth_active = false;
                }
            }
            Cmd::StartTls => {
                if code == 220 {
                    self.go_opaque(cx);
                } else {
                    self.starttls_sent = false;
                }
            }
            _ => {}
        }
    }

    /// `len` bytes of the client's stream are lost. What the server said meanwhile is the
    /// evidence of what they held (replies come before the client's hole is reported, since a
    /// hole is reported only once the peer acknowledged past it a few packets ago):
    /// - in the command phase: the client resyncs on the next command line; if a 354 came that
    ///   no DATA explains, lines that are not commands are that DATA's message;
    /// - in a DATA message the server has not answered yet: the message lost bytes and goes on
    ///   (its MIME parser resyncs on the next boundary);
    /// - in a DATA message the server already answered (`eod_replied`): if it also accepted a
    ///   next DATA, the message ended in the hole (and what follows is commands or the next
    ///   message); otherwise the message goes on, and its end is a "." line at the hole's end
    ///   (the hole is taken to end at a line start) or, within `WATCH_LINES` lines, a command;
    /// - in a BDAT chunk: the chunk's byte count is kept; a hole past its end lost the next BDAT
    ///   line, found by resyncing (the chunk bytes skipped meanwhile are the message's loss).
    fn client_gap(&mut self, len: u64, cx: &mut SmtpContext<'_>) {
        if self.client == ClientMode::DataPending {
            self.accept_data(cx);
        }
        match self.client {
            ClientMode::Command => self.enter_resync(len, cx),
            ClientMode::Resync => {
                // Another hole while resyncing: the lines held so far are cut.
                self.resync_lost += len + self.resync_buf.len() as u64;
                self.resync_buf.clear();
                self.resync_line_start = 0;
                self.resync_lines = 0;
                self.client_line.clear();
            }
            ClientMode::DataPending | ClientMode::Data => {
                if !self.watch_buf.is_empty() {
                    // A held line start, cut by the hole: content.
                    let held = std::mem::take(&mut self.watch_buf);
                    self.line_checked = true;
                    self.message_bytes(&held, cx);
                }
                if let Some(m) = &mut self.message {
                    m.gap(len, &mut mime_cx(cx));
                }
                self.msg_gap = true;
                if self.eod_replied && self.unexplained_354 {
                    self.lost_data_end(cx);
                    self.enter_resync(len, cx);
                    return;
                }
                // Where the hole ended within a line is unknown; the next line break resyncs,
                // unless the server said the end was near.
                self.dot = if self.eod_replied {
                    Unstuff::LineStart
                } else {
                    Unstuff::MidLine
                };
                self.line_checked = false;
                if self.eod_replied || !self.server_seen {
                    self.watch = WATCH_LINES;
                }
            }
            ClientMode::Bdat { remaining, last } => {
                let in_chunk = len.min(remaining);
                // Past the chunk's end the hole also took the next BDAT line and maybe bytes of
                // the next chunk: the message lost them all (an upper bound).
                let lost = if last { in_chunk } else { len };
                if let Some(m) = &mut self.message {
                    m.gap(lost, &mut mime_cx(cx));
                }
                self.client = ClientMode::Bdat {
                    remaining: remaining - in_chunk,
                    last,
                };
                self.bdat_progress(cx);
                if len > in_chunk {
                    self.enter_resync(0, cx);
                }
            }
        }
    }

    /// Closes an open message at the end of the client's stream or of the connection.
    fn end_client(&mut self, why: &'static str, cx: &mut SmtpContext<'_>) {
        if self.client == ClientMode::Resync {
            // Bytes skipped since a hole inside an open (BDAT) message are its loss.
            let lost = self.resync_lost + self.resync_buf.len() as u64;
            self.resync_lost = 0;
            self.resync_buf.clear();
            if let Some(m) = &mut self.message {
                m.gap(lost, &mut mime_cx(cx));
            }
        }
        if self.client == ClientMode::DataPending && !self.held_data.is_empty() {
            self.accept_data(cx);
        }
        if self.message.is_some() {
            self.finish_message(FileEnd::Truncated(why), cx);
        }
        self.client = ClientMode::Command;
    }
}

/// A line that starts a session or a transaction and cannot be message text by accident.
fn is_sync_command(line: &[u8]) -> bool {
    let up = |n: usize| line[..n.min(line.len())].to_ascii_uppercase();
    let exact = |w: &[u8]| line.eq_ignore_ascii_case(w);
    matches!(up(5).as_slice(), b"EHLO " | b"HELO " | b"LHLO " | b"AUTH ")
        || up(10) == b"MAIL FROM:"
        || up(8) == b"RCPT TO:"
        || exact(b"RSET")
        || exact(b"QUIT")
        || exact(b"NOOP")
        || exact(b"STARTTLS")
}

/// `BDAT <size>` or `BDAT <size> LAST`.
fn is_bdat_command(line: &[u8]) -> bool {
    let Some(rest) = strip_prefix_ci(line, b"BDAT ") else {
        return false;
    };
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let size_ok = words
        .next()
        .is_some_and(|w| !w.is_empty() && w.len() <= 20 && w.iter().all(u8::is_ascii_digit));
    let last_ok = match words.next() {
        None => true,
        Some(w) => w.eq_ignore_ascii_case(b"LAST") && words.next().is_none(),
    };
    size_ok && last_ok
}

/// Whether the line starting with `buf` is a command [`is_sync_command`] recognises: None while
/// `buf` is too short to tell.
fn command_prefix(buf: &[u8]) -> Option<bool> {
    const PREFIXES: [&[u8]; 6] = [b"EHLO ", b"HELO ", b"LHLO ", b"AUTH ", b"MAIL FROM:", b"RCPT TO:"];
    const WORDS: [&[u8]; 4] = [b"RSET", b"QUIT", b"NOOP", b"STARTTLS"];
    if let Some(nl) = memchr::memchr(b'\n', buf) {
        return Some(is_sync_command(trim_eol(&buf[..=nl])));
    }
    if PREFIXES.iter().any(|p| strip_prefix_ci(buf, p).is_some()) {
        return Some(true);
    }
    if buf.len() >= WATCH_PREFIX {
        return Some(false);
    }
    let may_become = |w: &[u8]| {
        let n = buf.len().min(w.len());
        buf[..n].eq_ignore_ascii_case(&w[..n]) && (buf.len() <= w.len() || &buf[w.len()..] == b"\r")
    };
    let could = PREFIXES.iter().any(|p| may_become(p)) || WORDS.iter().any(|w| may_become(w));
    if could {
        None
    } else {
        Some(false)
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

impl StreamParser for SmtpParser {
    type State = Smtp;

    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut SmtpContext<'_>) {
        if self.done {
            return;
        }
        self.start(cx);
        match from {
            Side::Orig => self.client_data(data, cx),
            Side::Resp => self.server_data(data, cx),
        }
    }

    fn on_gap(&mut self, from: Side, len: u64, cx: &mut SmtpContext<'_>) {
        if self.done || len == 0 {
            return;
        }
        self.start(cx);
        match from {
            Side::Orig => self.client_gap(len, cx),
            Side::Resp => {
                // Replies were lost: which command the next one answers is unknown.
                self.server_line.clear();
                self.pending.clear();
                if self.client == ClientMode::Data {
                    // The server says nothing during a message but its end's reply.
                    self.eod_replied = true;
                }
                self.accept_data(cx);
            }
        }
    }

    fn on_end(&mut self, from: Side, cx: &mut SmtpContext<'_>) {
        if from == Side::Orig && !self.done {
            self.end_client(CloseReason::Finished.as_str(), cx);
        }
    }

    fn on_close(&mut self, reason: CloseReason, cx: &mut SmtpContext<'_>) {
        self.end_client(reason.as_str(), cx);
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests;
