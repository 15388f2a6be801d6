//! The SMTP cases of the oracle corpus (`../shared/corpus`, see its README): each case's trace
//! is carved with `xdpcarve --read` and every expected MIME leaf must come out with identical
//! hashes and size, no missing bytes, and the expected name, type, endpoints and direction.

mod support;

use support::carve::check_case;

#[test]
fn sv_smtp_attachment_md5() {
    check_case("smtp", "sv-smtp-attachment-md5");
}

#[test]
fn sv_smtp_bug_5981() {
    check_case("smtp", "sv-smtp-bug-5981");
}

#[test]
fn sv_smtp_bug_5989() {
    check_case("smtp", "sv-smtp-bug-5989");
}

#[test]
fn sv_smtp_file_data_01() {
    check_case("smtp", "sv-smtp-file-data-01");
}

#[test]
fn sv_smtp_multi_mail_two_rcpt() {
    check_case("smtp", "sv-smtp-multi-mail-two-rcpt");
}

#[test]
fn sv_smtp_bdat_multichunk_next_mail() {
    check_case("smtp", "sv-smtp-bdat-multichunk-next-mail");
}

#[test]
fn sv_mime_quoted_printable() {
    check_case("smtp", "sv-mime-quoted-printable");
}

#[test]
fn zeek_smtp_bdat_pipeline_8bitmime() {
    check_case("smtp", "zeek-smtp-bdat-pipeline-8bitmime");
}

/// Every SMTP case of the corpus has a test above (a new case must get one).
#[test]
fn every_smtp_case_has_a_test() {
    let listed = [
        "sv-smtp-attachment-md5",
        "sv-smtp-bug-5981",
        "sv-smtp-bug-5989",
        "sv-smtp-file-data-01",
        "sv-smtp-multi-mail-two-rcpt",
        "sv-smtp-bdat-multichunk-next-mail",
        "sv-mime-quoted-printable",
        "zeek-smtp-bdat-pipeline-8bitmime",
    ];
    for case in support::carve::corpus_cases("smtp") {
        assert!(
            listed.contains(&case.as_str()),
            "corpus case {case} has no test in corpus_smtp.rs"
        );
    }
}
