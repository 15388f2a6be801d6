//! Traffic generators and benchmarks for xdpcarve: synthetic captures with a manifest of the files
//! they carry ([`gen`]), a pcap reader/writer ([`pcap`]), and the carving benchmark ([`bench`]).

#![forbid(unsafe_code)]

pub mod bench;
pub mod gen;
pub mod pcap;
