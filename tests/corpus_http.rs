//! The HTTP cases of the oracle corpus (`../shared/corpus`, see its README): each case's trace
//! is carved with `xdpcarve --read` and every expected file must come out with identical hashes
//! and size, no missing bytes, and the expected name, type, endpoints and direction.

mod support;

use support::carve::check_case;

#[test]
fn zeek_http_get() {
    check_case("http", "zeek-http-get");
}

#[test]
fn zeek_http_post() {
    check_case("http", "zeek-http-post");
}

#[test]
fn zeek_http_206_two_conns() {
    check_case("http", "zeek-http-206-two-conns");
}

#[test]
fn zeek_http_x_gzip() {
    check_case("http", "zeek-http-x-gzip");
}

#[test]
fn sv_http_not09_file() {
    check_case("http", "sv-http-not09-file");
}

#[test]
fn sv_bug_130() {
    check_case("http", "sv-bug-130");
}

#[test]
fn sv_bug_2576_01() {
    // HTTP inside GRE (transparent Ethernet bridging).
    check_case("http", "sv-bug-2576-01");
}

#[test]
fn sv_issue_3703() {
    check_case("http", "sv-issue-3703");
}

#[test]
fn sv_filestore_dont() {
    check_case("http", "sv-filestore-dont");
}

#[test]
fn sv_tcp_rst_unacked_11() {
    check_case("http", "sv-tcp-rst-unacked-11");
}

#[test]
fn sv_http_post_file() {
    // HTTP on port 8065 over IPv6 loopback, picked up mid-stream: found by protocol detection.
    check_case("http", "sv-http-post-file");
}

#[test]
fn sv_http_multiple100() {
    // HTTP on port 1551: found by protocol detection.
    check_case("http", "sv-http-multiple100");
}

/// Every HTTP case of the corpus has a test above (a new case must get one).
#[test]
fn every_http_case_has_a_test() {
    let listed = [
        "zeek-http-get",
        "zeek-http-post",
        "zeek-http-206-two-conns",
        "zeek-http-x-gzip",
        "sv-http-not09-file",
        "sv-bug-130",
        "sv-bug-2576-01",
        "sv-issue-3703",
        "sv-filestore-dont",
        "sv-tcp-rst-unacked-11",
        "sv-http-post-file",
        "sv-http-multiple100",
    ];
    for case in support::carve::corpus_cases("http") {
        assert!(
            listed.contains(&case.as_str()),
            "corpus case {case} has no test in corpus_http.rs"
        );
    }
}
