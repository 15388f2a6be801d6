//! SIGINT and SIGTERM: a run stops at the next packet, finishes (open files are logged as
//! truncated), drains egress and journals what it could not deliver, as at the end of the input.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Which signal asked the run to stop, once one did.
#[derive(Clone)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// Handlers for SIGINT and SIGTERM. With `second_exits`, a second signal ends the process at
    /// once with 128 + its number (a read has nothing that a quick exit leaves behind: the journal
    /// is already on disk); live capture always shuts down in order, detaching its XDP program.
    pub fn install(second_exits: bool) -> Result<Stop> {
        let stop = Stop {
            requested: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            let cannot = || "cannot install the SIGINT/SIGTERM handlers";
            if second_exits {
                // Runs before the flag below is set: it sees the flag of an earlier signal.
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, stop.requested.clone())
                    .with_context(cannot)?;
            }
            signal_hook::flag::register_usize(sig, stop.signal.clone(), sig as usize).with_context(cannot)?;
            signal_hook::flag::register(sig, stop.requested.clone()).with_context(cannot)?;
        }
        Ok(stop)
    }

    #[inline]
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// The signal that asked to stop (SIGINT or SIGTERM), if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// The flag alone, for loops that only poll it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.requested.clone()
    }
}

/// "SIGINT" or "SIGTERM".
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
