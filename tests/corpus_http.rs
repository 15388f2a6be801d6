//! End-to-end test target `corpus_http`: being written.
