//! SMTP's per-worker state: its limits, its counters and the MIME state of its messages.
//! [`Smtp`] is what the engine registers.

use xdpcarve_contract::{ConnMeta, CounterSet, Opener, Protocol};
use xdpcarve_mime::{MimeConfig, MimeState};

use crate::{detect, SmtpParser};

/// Limits of SMTP parsing.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Longest command or reply line kept; longer lines are skipped and counted.
    pub max_line_len: usize,
    /// Commands remembered while waiting for replies (PIPELINING).
    pub max_pipelined: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            max_line_len: 4096,
            max_pipelined: 128,
        }
    }
}

xdpcarve_contract::counters! {
    pub struct SmtpStats {
        sessions, transactions, data_commands, bdat_chunks,
        rejected_transactions,
        starttls,
        auth,
        malformed_lines,
        line_too_long,
        rset,
        unknown_commands,
        /// Client lines skipped before the session could be followed (picked up mid-message).
        midstream_lines,
        /// Holes in the client's stream after which parsing had to find its place again (the
        /// next command, the end of a message).
        gap_resyncs,
        /// Client lines skipped after a hole until one could be read as a command.
        gap_skipped_lines,
        /// Messages whose end-of-data line (or last chunk) was lost, closed on other evidence.
        gap_lost_data_ends,
    }
}

/// SMTP as the engine runs it: one per worker, seen by its parsers as `AppContext::state`.
#[derive(Clone, Debug, Default)]
pub struct Smtp {
    pub cfg: SmtpConfig,
    pub stats: SmtpStats,
    /// MIME parsing of the messages.
    pub mime: MimeState,
}

impl Smtp {
    pub fn new(cfg: SmtpConfig, mime: MimeConfig) -> Self {
        Smtp {
            cfg,
            stats: SmtpStats::default(),
            mime: MimeState::new(mime),
        }
    }
}

impl Protocol for Smtp {
    type Parser = SmtpParser;
    const NAME: &'static str = crate::NAME;

    fn new_parser(&mut self, _conn: &ConnMeta) -> SmtpParser {
        SmtpParser::new(&self.cfg)
    }

    fn detect(payload: &[u8]) -> Option<Opener> {
        detect::detect(payload)
    }

    fn counters(&self, out: &mut CounterSet) {
        self.stats.add_to(Self::NAME, out);
        self.mime.stats.add_to(xdpcarve_mime::AREA, out);
    }
}
