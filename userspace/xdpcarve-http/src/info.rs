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

/// A request's fields (an [`HttpInfo`] without status and range, which only a response sets) in
/// one allocation: what a request waiting for its response holds. Seven `Option<String>` and their
/// allocations would cost a half-open request (a flood of unanswered GETs) several hundred bytes.
#[derive(Debug, Default)]
pub(crate) struct PackedInfo {
    /// Method, URI, Host, User-Agent and Referer, one after the other.
    text: Box<str>,
    /// Where each field but the last ends in `text` (the last ends at its end).
    ends: [u32; PACKED - 1],
    /// Bit i: field i is present (an empty value is not an absent one).
    present: u8,
}

/// Fields of a [`PackedInfo`].
const PACKED: usize = 5;

impl PackedInfo {
    /// Packs a request's method, URI, Host, User-Agent and Referer, in that order (borrowed from
    /// its parsed head: one allocation, no string of its own first).
    pub(crate) fn pack(fields: [Option<&str>; PACKED]) -> Self {
        let mut text = String::with_capacity(fields.iter().flatten().map(|s| s.len()).sum());
        let mut ends = [0u32; PACKED - 1];
        let mut present = 0u8;
        for (i, field) in fields.into_iter().enumerate() {
            // Offsets are u32: a field that would end past 4 GiB is left out (no header block
            // comes near that: they are bounded by `max_header_bytes`).
            if let Some(s) = field.filter(|s| u32::try_from(text.len() + s.len()).is_ok()) {
                text.push_str(s);
                present |= 1 << i;
            }
            if let Some(end) = ends.get_mut(i) {
                *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
            }
        }
        PackedInfo {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    /// The request's fields, as a record takes them.
    pub(crate) fn unpack(&self) -> HttpInfo {
        let [method, uri, host, user_agent, referrer] = std::array::from_fn(|i| self.field(i).map(str::to_owned));
        HttpInfo {
            method,
            uri,
            status: None,
            host,
            user_agent,
            referrer,
            range: None,
        }
    }

    fn field(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end)
    }

    /// No field is kept (a request past `max_pipelined` that gave them up).
    pub(crate) fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Bytes of heap it holds.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_every_shape() {
        let s = |v: &str| Some(v.to_owned());
        let infos = [
            HttpInfo::default(),
            HttpInfo {
                method: s("GET"),
                uri: s("/x"),
                host: s("example.com"),
                ..Default::default()
            },
            HttpInfo {
                method: s("POST"),
                uri: s(""),
                host: s(""),
                user_agent: s("curl/8 \u{fffd}"),
                referrer: s("http://a/"),
                ..Default::default()
            },
            HttpInfo {
                method: s("GET"),
                uri: s("/only-referrer"),
                referrer: s("r"),
                ..Default::default()
            },
        ];
        for info in infos {
            let fields = [&info.method, &info.uri, &info.host, &info.user_agent, &info.referrer].map(Option::as_deref);
            let packed = PackedInfo::pack(fields);
            let len = fields.iter().flatten().map(|s| s.len()).sum::<usize>();
            assert_eq!(packed.heap_bytes(), len);
            assert_eq!(packed.unpack(), info);
        }
    }
}
