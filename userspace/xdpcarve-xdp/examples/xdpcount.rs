//! Counts steered frames per queue without any engine: a check of the steering path alone.
//! `xdpcount IFACE SECONDS [auto|native|generic] [PORTS]` (run as root, inside the namespace).
//! Stops after SECONDS, or earlier on SIGINT/SIGTERM.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use xdpcarve_xdp::{FrameHandler, LiveCapture, LiveConfig};

static STOP: AtomicBool = AtomicBool::new(false);

/// Async-signal-safe: one atomic store, nothing else.
extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Count;

impl FrameHandler for Count {
    fn frame(&mut self, _ts: u64, _frame: &[u8]) {}
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    fn handle_timeout(&mut self, _now: u64) {}
    fn finish(&mut self, _now: u64) {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: xdpcount IFACE SECONDS [auto|native|generic] [PORT,PORT...]");
        std::process::exit(2);
    }
    let mut config = LiveConfig::new(&args[1]);
    if let Some(mode) = args.get(3) {
        config.mode = mode.parse().unwrap_or_else(|e| panic!("{e}"));
    }
    if let Some(ports) = args.get(4) {
        config.ports = ports.split(',').map(|p| p.parse().expect("port")).collect();
    }
    let capture = LiveCapture::start(&config, |_| Count).unwrap_or_else(|e| {
        eprintln!("xdpcount: {e}");
        std::process::exit(1)
    });
    eprintln!("xdpcount: {}", capture.info().describe());
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `handler` is an `extern "C" fn(c_int)` that lives for the whole program and
        // only does an atomic store, which is async-signal-safe.
        unsafe { libc::signal(signal, handler) };
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args[2].parse().expect("seconds"));
    while Instant::now() < deadline && !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = capture.stop(Duration::from_secs(1)).expect("stop");
    println!("xdp {:?}", summary.xdp);
    for q in &summary.queues {
        println!(
            "queue {} rx_packets {} kernel_drops {}",
            q.queue,
            q.rx_packets,
            q.kernel_drops()
        );
    }
}
