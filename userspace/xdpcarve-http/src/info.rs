//! HTTP's part of a file record: the transaction's `http_*` fields, as Zeek's http.log names them.

use xdpcarve_contract::AppFields;

pub const METHOD: &str = "http_method";
pub const URI: &str = "http_uri";
pub const STATUS: &str = "http_status";
pub const HOST: &str = "http_host";
pub const USER_AGENT: &str = "http_user_agent";
pub const REFERRER: &str = "http_referrer";
/// Content-Range of a 206 response (or the span assembled), as "first-last/total".
pub const RANGE: &str = "http_range";

/// HTTP transaction context of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpInfo {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub status: Option<u16>,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub range: Option<String>,
}

impl HttpInfo {
    /// Writes the fields that are set, in the order of the record's columns.
    pub fn write_fields(self, out: &mut AppFields) {
        out.set_opt(METHOD, self.method);
        out.set_opt(URI, self.uri);
        out.set_opt(STATUS, self.status);
        out.set_opt(HOST, self.host);
        out.set_opt(USER_AGENT, self.user_agent);
        out.set_opt(REFERRER, self.referrer);
        out.set_opt(RANGE, self.range);
    }
}
