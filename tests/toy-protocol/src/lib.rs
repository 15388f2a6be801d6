//! TOY, a protocol that exists only to test the protocol contract. A client sends
//! `TOY <name> <length>\n` followed by `length` bytes, as many times as it likes; each body is a
//! file named `<name>`. Everything a real protocol crate owns is here, in miniature: the parser,
//! its per-worker state and config, its counters, its record fields and its detection.

#![forbid(unsafe_code)]

use xdpcarve_contract::{
    AppContext, CloseReason, ConnMeta, CounterSet, Direction, FileMeta, Opener, Proto, Protocol, Side, StreamParser,
};
use xdpcarve_files::{FileAnalyzer, FileEnd};

pub const NAME: &str = "toy";
/// The record field TOY adds.
pub const FIELD_NAME: &str = "toy_name";

/// Longest header line kept.
const MAX_LINE: usize = 256;

/// TOY's per-worker state.
#[derive(Clone, Debug, Default)]
pub struct Toy {
    /// Largest body accepted; a longer one is skipped and counted.
    pub max_body: u64,
    pub stats: ToyStats,
}

impl Toy {
    pub fn new(max_body: u64) -> Self {
        Toy {
            max_body,
            stats: ToyStats::default(),
        }
    }
}

xdpcarve_contract::counters! {
    pub struct ToyStats {
        messages,
        bad_headers,
        too_large,
    }
}

impl Protocol for Toy {
    type Parser = ToyParser;
    const NAME: &'static str = NAME;

    fn new_parser(&mut self, _conn: &ConnMeta) -> ToyParser {
        ToyParser::default()
    }

    fn detect(payload: &[u8]) -> Option<Opener> {
        payload.starts_with(b"TOY ").then_some(Opener::Client)
    }

    fn counters(&self, out: &mut CounterSet) {
        self.stats.add_to(NAME, out);
    }
}

/// One TOY connection.
#[derive(Default)]
pub struct ToyParser {
    line: Vec<u8>,
    /// The body being read and the bytes it still needs.
    body: Option<(FileAnalyzer, u64)>,
    /// Bytes of a refused body still to skip.
    skip: u64,
}

impl ToyParser {
    fn header(&mut self, cx: &mut AppContext<'_, Toy>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let mut words = line.split_ascii_whitespace();
        let parsed = match (words.next(), words.next(), words.next().map(str::parse::<u64>)) {
            (Some("TOY"), Some(name), Some(Ok(len))) => Some((name.to_owned(), len)),
            _ => None,
        };
        let Some((name, len)) = parsed else {
            cx.state.stats.bad_headers += 1;
            return;
        };
        cx.state.stats.messages += 1;
        if len > cx.state.max_body {
            cx.state.stats.too_large += 1;
            self.skip = len;
            return;
        }
        let mut meta = FileMeta::new(Proto::new(NAME), Direction::Upload);
        meta.filename = Some(name.clone());
        meta.total_bytes = Some(len);
        meta.fields.set(FIELD_NAME, name);
        let file = FileAnalyzer::open(cx, meta);
        if len == 0 {
            file.close(cx, FileEnd::Complete);
        } else {
            self.body = Some((file, len));
        }
    }
}

impl StreamParser for ToyParser {
    type State = Toy;

    fn on_data(&mut self, from: Side, mut data: &[u8], cx: &mut AppContext<'_, Toy>) {
        if from == Side::Resp {
            return; // the server's answers carry no files
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64);
                self.skip -= n;
                data = &data[n as usize..];
            } else if let Some((file, left)) = &mut self.body {
                let n = (*left).min(data.len() as u64);
                file.update(&data[..n as usize]);
                *left -= n;
                data = &data[n as usize..];
                if *left == 0 {
                    let (file, _) = self.body.take().expect("body is open");
                    file.close(cx, FileEnd::Complete);
                }
            } else {
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        if self.line.len() + i <= MAX_LINE {
                            self.line.extend_from_slice(&data[..i]);
                        }
                        data = &data[i + 1..];
                        self.header(cx);
                    }
                    None => {
                        let room = MAX_LINE.saturating_sub(self.line.len());
                        self.line.extend_from_slice(&data[..data.len().min(room)]);
                        data = &[];
                    }
                }
            }
        }
    }

    fn on_gap(&mut self, from: Side, len: u64, _cx: &mut AppContext<'_, Toy>) {
        if from == Side::Orig {
            if let Some((file, left)) = &mut self.body {
                let n = (*left).min(len);
                file.gap(n);
                *left -= n;
            }
        }
    }

    fn on_end(&mut self, from: Side, cx: &mut AppContext<'_, Toy>) {
        if from == Side::Orig {
            if let Some((file, _)) = self.body.take() {
                file.close(cx, FileEnd::Truncated("conn_closed"));
            }
        }
    }

    fn on_close(&mut self, reason: CloseReason, cx: &mut AppContext<'_, Toy>) {
        if let Some((file, _)) = self.body.take() {
            file.close(cx, FileEnd::Truncated(reason.as_str()));
        }
    }
}
