//! End-to-end test target `corpus_smtp`: being written.
