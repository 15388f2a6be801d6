//! HTTP/1.x parser: being written. The entry type and its contract are fixed here.

use xdpcarve_files::{AppConfig, AppContext, CloseReason, Side, StreamParser};

/// One HTTP connection: requests from `Side::Orig`, responses from `Side::Resp`.
pub struct HttpParser {}

impl HttpParser {
    pub fn new(_cfg: &AppConfig) -> Self {
        HttpParser {}
    }
}

impl StreamParser for HttpParser {
    fn on_data(&mut self, _from: Side, _data: &[u8], _cx: &mut AppContext<'_>) {}
    fn on_gap(&mut self, _from: Side, _len: u64, _cx: &mut AppContext<'_>) {}
    fn on_end(&mut self, _from: Side, _cx: &mut AppContext<'_>) {}
    fn on_close(&mut self, _reason: CloseReason, _cx: &mut AppContext<'_>) {}
}
