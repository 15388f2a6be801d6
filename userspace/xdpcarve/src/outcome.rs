//! How a run ends. One code path decides the exit status of a read and of a live capture, from
//! what the workers and egress report: 0 when every record was delivered to the files log, 1 when
//! anything was lost or a read stopped early (2 is clap's, for command-line mistakes). Each reason
//! is printed as an error line; the last line says what failed.

use std::process::ExitCode;

use xdpcarve_egress::EgressSummary;

use crate::summary::Source;

/// Everything that makes the run a failure, as lines for a person, in the order found.
pub fn failures(source: &Source<'_>, egress: &EgressSummary) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in source.workers().iter().enumerate() {
        if let Some(e) = &w.sink_error {
            out.push(format!("worker {i} stopped: {e}"));
        }
    }
    match source {
        Source::Read(r) => {
            if let Some(e) = &r.stopped {
                out.push(format!(
                    "{e}; the packets before it were processed and their files logged"
                ));
            }
        }
        Source::Live(l) => {
            for i in &l.lost_workers {
                out.push(format!(
                    "worker {i} ended without a report (its thread panicked): its files are lost"
                ));
            }
        }
    }
    if egress.files_log_errors > 0 {
        out.push(format!(
            "the files log could not be written ({} failed writes; disk full?); see the errors above",
            egress.files_log_errors
        ));
    }
    if egress.lost_disk_full > 0 {
        out.push(format!(
            "{} submissions owed to the API were lost because the spill journal's disk was full \
             (free space there; the journal resumes by itself)",
            egress.lost_disk_full
        ));
    }
    if egress.dropped > egress.lost_disk_full {
        out.push(format!(
            "{} submissions owed to the API were lost (spill journal full or failing, or no spill.dir); \
             see the errors above",
            egress.dropped - egress.lost_disk_full
        ));
    }
    if let Some(fl) = egress.fleet.as_ref().filter(|f| f.stream_lost > 0) {
        out.push(format!(
            "{} records never reached the Redis stream (fleet.memory_records or the spill journal \
             was full, or Redis was down at shutdown without spill.dir); see xdpcarve_fleet_stream_lost_total",
            fl.stream_lost
        ));
    }
    if egress.failed > 0 {
        let kept = match &egress.dead_letter {
            Some(p) => format!("kept in {}", p.display()),
            None => "lost: no spill.dir for a dead-letter file".to_string(),
        };
        out.push(format!(
            "the receiver refused {} submissions for good (4xx); {kept}",
            egress.failed
        ));
    }
    out
}

/// Exit status of a run that lost nothing but whose receiver refused the token: what is owed
/// waits in the journal for a fixed token, and a cron job must notice.
pub const EXIT_UNAUTHORIZED: u8 = 3;

/// The receiver refused the token at the end of a run that lost nothing: the line to print.
pub fn unauthorized(egress: &EgressSummary) -> Option<String> {
    egress.unauthorized.then(|| {
        format!(
            "the receiver refused the webhook token (401/403): {} submissions wait in the spill journal; \
             fix webhook.token_file (or XDPCARVE_WEBHOOK_TOKEN) and run again to deliver them",
            egress.journal_pending
        )
    })
}

/// Prints every failure and returns the exit status. A read that a signal stopped, and that lost
/// nothing, ends with 128 + the signal's number (the shell's convention for a job a signal ended),
/// so that a script sees the file was not read to its end.
pub fn exit_status(source: &Source<'_>, egress: &EgressSummary) -> ExitCode {
    let failures = failures(source, egress);
    for f in &failures {
        eprintln!("xdpcarve: error: {f}");
    }
    if !failures.is_empty() {
        return ExitCode::from(1);
    }
    if let Some(line) = unauthorized(egress) {
        eprintln!("xdpcarve: error: {line}");
        return ExitCode::from(EXIT_UNAUTHORIZED);
    }
    match interruption(source) {
        Some((line, code)) => {
            eprintln!("xdpcarve: {line}");
            ExitCode::from(code)
        }
        None => ExitCode::SUCCESS,
    }
}

/// A read stopped by a signal: what to tell the person, and the exit status.
pub fn interruption(source: &Source<'_>) -> Option<(String, u8)> {
    let Source::Read(r) = source else {
        return None;
    };
    let i = r.interrupted?;
    let share = match r.file_len {
        0 => String::new(),
        len => format!(" ({:.0} % of the file)", i.bytes_read as f64 * 100.0 / len as f64),
    };
    Some((
        format!(
            "stopped by {} after {} packets{share}: their files are logged (open ones as truncated) \
             and egress was drained as at the end of the file (see its line above)",
            crate::signals::name(i.signal),
            i.packets
        ),
        (128 + i.signal).clamp(0, 255) as u8,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use xdpcarve_capture::Format;
    use xdpcarve_core::WorkerReport;
    use xdpcarve_xdp::LiveSummary;

    use super::*;
    use crate::live::LiveReport;
    use crate::offline::ReadReport;

    fn read() -> ReadReport {
        ReadReport {
            file: "t.pcap".into(),
            format: Format::Pcap,
            compression: xdpcarve_capture::Compression::None,
            inputs: 1,
            file_len: 0,
            elapsed: Duration::ZERO,
            truncated: None,
            skipped_unsupported: 0,
            stopped: None,
            interrupted: None,
            simulated: None,
            workers: vec![WorkerReport::default()],
        }
    }

    fn live() -> LiveReport {
        LiveReport {
            description: "veth0".into(),
            elapsed: Duration::ZERO,
            summary: LiveSummary::default(),
            workers: vec![WorkerReport::default(), WorkerReport::default()],
            lost_workers: Vec::new(),
        }
    }

    #[test]
    fn a_files_log_that_cannot_be_written_fails_both_modes_alike() {
        let egress = EgressSummary {
            files_log_errors: 3,
            ..Default::default()
        };
        let (r, l) = (read(), live());
        let offline = failures(&Source::Read(&r), &egress);
        let online = failures(&Source::Live(&l), &egress);
        assert_eq!(offline, online);
        assert_eq!(offline.len(), 1);
        assert!(
            offline[0].contains("files log could not be written (3 failed writes"),
            "{offline:?}"
        );
        assert!(failures(&Source::Read(&r), &EgressSummary::default()).is_empty());
        assert!(failures(&Source::Live(&l), &EgressSummary::default()).is_empty());
    }

    #[test]
    fn sink_failures_and_lost_workers_fail_the_run() {
        let mut l = live();
        l.workers[1].sink_error = Some("the egress thread stopped".into());
        l.lost_workers.push(2);
        let f = failures(&Source::Live(&l), &EgressSummary::default());
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].starts_with("worker 1 stopped: the egress thread stopped"));
        assert!(f[1].contains("worker 2 ended without a report"));
    }

    #[test]
    fn a_signal_is_not_a_loss_but_says_the_file_was_not_read_to_its_end() {
        let mut r = read();
        r.file_len = 1000;
        r.interrupted = Some(crate::offline::Interrupted {
            signal: signal_hook::consts::SIGTERM,
            packets: 42,
            bytes_read: 250,
        });
        let source = Source::Read(&r);
        assert!(failures(&source, &EgressSummary::default()).is_empty());
        let (line, code) = interruption(&source).expect("an interruption");
        assert_eq!(code, 143);
        assert!(
            line.starts_with("stopped by SIGTERM after 42 packets (25 % of the file)"),
            "{line}"
        );
        assert!(interruption(&Source::Read(&read())).is_none());
    }

    #[test]
    fn owed_submissions_lost_or_refused_fail_the_run_and_a_bad_token_has_its_own_status() {
        let r = read();
        let source = Source::Read(&r);
        let dropped = EgressSummary {
            dropped: 4,
            ..Default::default()
        };
        assert!(failures(&source, &dropped)[0].starts_with("4 submissions owed to the API were lost"));
        let refused = EgressSummary {
            failed: 2,
            dead_letter: Some("/s/dead-letter.jsonl".into()),
            ..Default::default()
        };
        assert!(failures(&source, &refused)[0]
            .contains("refused 2 submissions for good (4xx); kept in /s/dead-letter.jsonl"));
        let token = EgressSummary {
            unauthorized: true,
            journal_pending: 7,
            ..Default::default()
        };
        assert!(failures(&source, &token).is_empty(), "nothing lost");
        assert!(unauthorized(&token)
            .unwrap()
            .contains("7 submissions wait in the spill journal"));
        assert!(unauthorized(&EgressSummary::default()).is_none());
    }

    #[test]
    fn stream_records_lost_fail_the_run_but_records_kept_for_later_do_not() {
        let r = read();
        let source = Source::Read(&r);
        let fleet = |lost, pending| EgressSummary {
            fleet: Some(xdpcarve_egress::fleet::FleetSummary {
                stream_lost: lost,
                stream_pending: pending,
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = failures(&source, &fleet(5, 0));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("5 records never reached the Redis stream"), "{f:?}");
        assert!(
            failures(&source, &fleet(0, 9)).is_empty(),
            "kept in the journal, not lost"
        );
    }
}
