//! Dispatch to the application parsers (enum dispatch: no vtable, inlinable).

use xdpcarve_files::{AppConfig, AppContext, CloseReason, Side, StreamParser};
use xdpcarve_http::HttpParser;
use xdpcarve_smtp::SmtpParser;

/// Which parser a port selects.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppKind {
    Http,
    Smtp,
}

/// Boxed: parsers are kilobytes, and the flow table should only pay for the ones that exist.
pub enum AppParser {
    Http(Box<HttpParser>),
    Smtp(Box<SmtpParser>),
}

impl AppParser {
    pub fn new(kind: AppKind, cfg: &AppConfig) -> Self {
        match kind {
            AppKind::Http => AppParser::Http(Box::new(HttpParser::new(cfg))),
            AppKind::Smtp => AppParser::Smtp(Box::new(SmtpParser::new(cfg))),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AppParser::Http($p) => $e,
            AppParser::Smtp($p) => $e,
        }
    };
}

impl StreamParser for AppParser {
    #[inline]
    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut AppContext<'_>) {
        dispatch!(self, p => p.on_data(from, data, cx))
    }
    fn on_gap(&mut self, from: Side, len: u64, cx: &mut AppContext<'_>) {
        dispatch!(self, p => p.on_gap(from, len, cx))
    }
    fn on_end(&mut self, from: Side, cx: &mut AppContext<'_>) {
        dispatch!(self, p => p.on_end(from, cx))
    }
    fn on_close(&mut self, reason: CloseReason, cx: &mut AppContext<'_>) {
        dispatch!(self, p => p.on_close(reason, cx))
    }
    #[inline]
    fn is_done(&self) -> bool {
        dispatch!(self, p => p.is_done())
    }
}

/// Port → parser lookup: one byte per port, so the check per packet is a single load.
pub struct PortMap {
    map: Box<[u8; 65536]>,
}

impl PortMap {
    pub fn new(http: &[u16], smtp: &[u16]) -> Self {
        let mut map: Box<[u8; 65536]> = vec![0u8; 65536].into_boxed_slice().try_into().expect("65536 entries");
        for &p in smtp {
            map[p as usize] = 2;
        }
        // A port listed for both goes to HTTP (listed first in the help).
        for &p in http {
            map[p as usize] = 1;
        }
        PortMap { map }
    }

    #[inline]
    pub fn get(&self, port: u16) -> Option<AppKind> {
        match self.map[port as usize] {
            1 => Some(AppKind::Http),
            2 => Some(AppKind::Smtp),
            _ => None,
        }
    }
}
