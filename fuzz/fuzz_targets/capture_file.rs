//! Any bytes as a capture file (pcap, pcapng, or garbage): `CaptureFile` returns packets or a
//! clear error, never panics, and stops.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpcarve_capture::CaptureFile;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("xdpcarve-fuzz-capture.{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(mut cap) = CaptureFile::open(&path) {
        let mut n = 0usize;
        while let Ok(Some(pkt)) = cap.next_packet() {
            n += pkt.data.len();
            assert!(n <= data.len() * 2 + 65_536, "more packet bytes than the file holds");
        }
    }
});
