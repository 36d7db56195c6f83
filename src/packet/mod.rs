//! Packets as bytes: ICMP echo built and parsed, frames decoded one line
//! each, classic BPF programs for the capture filter. Pure code on
//! etherparse and pnet_packet — no I/O, so every function here is unit-tested
//! on fixed bytes and fuzzed (`fuzz/`).

pub mod filter;
pub mod frame;
pub mod icmp;
pub mod icmp_bpf;
pub mod netlink;
pub mod pcap;
pub mod portmap;
pub mod rpc;
pub mod xdr;

/// A packet that could not be read; the lab shows it and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// The transport protocol a capture filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}
