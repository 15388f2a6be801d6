//! The protocols xdpcarve runs, with their settings. Adding a protocol is its own crate plus one
//! `register` line in [`registry`] (and its settings in [`ProtocolsConfig`], if it has any).

#![forbid(unsafe_code)]

use xdpcarve_core::ProtocolRegistry;
use xdpcarve_http::{Http, HttpConfig};
use xdpcarve_mime::MimeConfig;
use xdpcarve_smtp::{Smtp, SmtpConfig};

pub use xdpcarve_http as http;
pub use xdpcarve_mime as mime;
pub use xdpcarve_smtp as smtp;

/// Every protocol's ports and limits.
#[derive(Clone, Debug)]
pub struct ProtocolsConfig {
    /// Responder ports whose connections get the HTTP parser.
    pub http_ports: Vec<u16>,
    pub http: HttpConfig,
    /// Responder ports whose connections get the SMTP parser.
    pub smtp_ports: Vec<u16>,
    pub smtp: SmtpConfig,
    /// MIME limits, for SMTP messages and HTTP form uploads alike.
    pub mime: MimeConfig,
}

impl Default for ProtocolsConfig {
    fn default() -> Self {
        ProtocolsConfig {
            http_ports: vec![80, 8080],
            http: HttpConfig::default(),
            smtp_ports: vec![25, 587],
            smtp: SmtpConfig::default(),
            mime: MimeConfig::default(),
        }
    }
}

/// The registry of every protocol xdpcarve runs. A port listed for two protocols goes to the
/// first one here (HTTP).
pub fn registry(cfg: &ProtocolsConfig) -> ProtocolRegistry {
    let (http, smtp, mime) = (cfg.http.clone(), cfg.smtp.clone(), cfg.mime);
    ProtocolRegistry::new()
        .register(&cfg.http_ports, move || Http::new(http.clone(), mime))
        .register(&cfg.smtp_ports, move || Smtp::new(smtp.clone(), mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_is_registered_on_its_ports() {
        let r = registry(&ProtocolsConfig::default());
        assert_eq!(r.names().collect::<Vec<_>>(), ["http", "smtp"]);
        assert_eq!(r.ports(), [25, 80, 587, 8080]);
    }
}
