//! Every packet-parsing path ipclab runs on bytes from the network: ICMP
//! replies with and without an IPv4 header (v4 and v6), captured frames,
//! and the BPF program against the same bytes. None may panic.
#![no_main]

use ipclab::packet::icmp::{self, Family};
use ipclab::packet::{filter, frame, Proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (family, with_ip) in [
        (Family::V4, true),
        (Family::V4, false),
        (Family::V6, false),
    ] {
        if let Ok(r) = icmp::parse(family, with_ip, data) {
            let _ = icmp::error_text(family, &r.kind);
            assert!(r.message.len() >= icmp::HEADER_LEN);
        }
    }
    let f = frame::decode(data);
    assert!(!f.line.is_empty());
    for p in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        let _ = filter::run(&filter::Filter::new(filter::proto_expr(p)).expect("compiles").program, data, data.len());
    }
    let _ = icmp::checksum(data);
});
