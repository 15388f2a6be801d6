//! SMTP's part of a file record: the transaction's `smtp_*` fields, as Zeek's smtp.log names
//! them.

use xdpcarve_contract::AppFields;
use xdpcarve_mime::header::EntityHeaders;

pub const HELO: &str = "smtp_helo";
pub const MAIL_FROM: &str = "smtp_mail_from";
pub const RCPT_TO: &str = "smtp_rcpt_to";
pub const SUBJECT: &str = "smtp_subject";
pub const MESSAGE_ID: &str = "smtp_message_id";

/// The envelope of the transaction a message belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpInfo {
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
}

impl SmtpInfo {
    /// Writes the fields that are set, in the order of the record's columns.
    pub fn write_fields(self, out: &mut AppFields) {
        out.set_opt(HELO, self.helo);
        out.set_opt(MAIL_FROM, self.mail_from);
        if !self.rcpt_to.is_empty() {
            out.set(RCPT_TO, self.rcpt_to);
        }
    }
}

/// Subject and Message-ID of the message, from its top-level headers.
pub fn message_fields(out: &mut AppFields, h: &EntityHeaders) {
    out.set_opt(SUBJECT, h.subject.clone());
    out.set_opt(MESSAGE_ID, h.message_id.clone());
}
