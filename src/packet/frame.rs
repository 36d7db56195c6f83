//! One line per captured Ethernet frame: link, network and transport layer,
//! decoded with etherparse. On `lo` the Ethernet addresses are all zero.

use std::fmt::Write as _;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::Proto;

/// A frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The transport protocol, when the frame carries TCP, UDP or ICMP.
    pub proto: Option<Proto>,
    /// `ETH … > … IPv4 127.0.0.1 > 127.0.0.1 ttl 64 TCP 41234 > 8989 [SYN] …`
    pub line: String,
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes a frame as an `AF_PACKET`/`SOCK_RAW` socket returns it: from
/// the Ethernet header on. Never fails: what cannot be decoded is said so.
pub fn decode(bytes: &[u8]) -> Frame {
    let mut line = String::new();
    let p = match SlicedPacket::from_ethernet(bytes) {
        Ok(p) => p,
        Err(e) => {
            return Frame {
                proto: None,
                line: format!("{} bytes, not decodable: {e}", bytes.len()),
            }
        }
    };
    if let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link {
        let _ = write!(
            line,
            "ETH {} > {} ",
            mac(eth.source()),
            mac(eth.destination())
        );
    }
    match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let _ = write!(
                line,
                "IPv4 {} > {} ttl {} len {}",
                h.source_addr(),
                h.destination_addr(),
                h.ttl(),
                h.total_len()
            );
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let _ = write!(
                line,
                "IPv6 {} > {} hlim {} plen {}",
                h.source_addr(),
                h.destination_addr(),
                h.hop_limit(),
                h.payload_length()
            );
        }
        Some(NetSlice::Arp(_)) => line.push_str("ARP"),
        None => {
            let ty = p
                .link
                .as_ref()
                .and_then(|l| l.to_header())
                .and_then(|h| h.ethernet2())
                .map(|e| e.ether_type.0);
            match ty {
                Some(t) => {
                    let _ = write!(line, "ethertype {t:#06x}, {} bytes", bytes.len());
                }
                None => {
                    let _ = write!(line, "{} bytes", bytes.len());
                }
            }
        }
    }
    let proto = match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let mut flags = Vec::new();
            for (on, name) in [
                (t.syn(), "SYN"),
                (t.fin(), "FIN"),
                (t.rst(), "RST"),
                (t.psh(), "PSH"),
                (t.ack(), "ACK"),
                (t.urg(), "URG"),
            ] {
                if on {
                    flags.push(name);
                }
            }
            let _ = write!(
                line,
                " TCP {} > {} [{}] seq={} ack={} win={} len={}",
                t.source_port(),
                t.destination_port(),
                flags.join(", "),
                t.sequence_number(),
                t.acknowledgment_number(),
                t.window_size(),
                t.payload().len()
            );
            Some(Proto::Tcp)
        }
        Some(TransportSlice::Udp(u)) => {
            let _ = write!(
                line,
                " UDP {} > {} len={}",
                u.source_port(),
                u.destination_port(),
                u.length()
            );
            Some(Proto::Udp)
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let _ = write!(line, " ICMP type={} code={}", i.type_u8(), i.code_u8());
            echo_fields(&mut line, i.type_u8() == 0 || i.type_u8() == 8, i.slice());
            Some(Proto::Icmp)
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let _ = write!(line, " ICMPv6 type={} code={}", i.type_u8(), i.code_u8());
            echo_fields(&mut line, matches!(i.type_u8(), 128 | 129), i.slice());
            Some(Proto::Icmp)
        }
        Some(TransportSlice::Igmp(_)) => {
            line.push_str(" IGMP");
            None
        }
        None => None,
    };
    Frame { proto, line }
}

fn echo_fields(line: &mut String, is_echo: bool, icmp: &[u8]) {
    if let (true, [_, _, _, _, i0, i1, s0, s1, ..]) = (is_echo, icmp) {
        let _ = write!(
            line,
            " id={} seq={}",
            u16::from_be_bytes([*i0, *i1]),
            u16::from_be_bytes([*s0, *s1])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 127.0.0.1:41234 to 127.0.0.1:8989 as captured on `lo`.
    fn syn_frame() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(41234, 8989, 1000, 65495)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[]).expect("writes to a Vec");
        out
    }

    #[test]
    fn decodes_a_tcp_syn() {
        let f = decode(&syn_frame());
        assert_eq!(f.proto, Some(Proto::Tcp));
        assert_eq!(
            f.line,
            "ETH 00:00:00:00:00:00 > 00:00:00:00:00:00 IPv4 127.0.0.1 > 127.0.0.1 ttl 64 len 40 \
             TCP 41234 > 8989 [SYN] seq=1000 ack=0 win=65495 len=0"
        );
    }

    #[test]
    fn decodes_udp_over_ipv6_and_icmp_echo() {
        let b = etherparse::PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [0; 6])
            .ipv6([0; 16], [0; 16], 64)
            .udp(5000, 53);
        let mut out = Vec::new();
        b.write(&mut out, b"hello").expect("writes");
        let f = decode(&out);
        assert_eq!(f.proto, Some(Proto::Udp));
        assert!(f
            .line
            .contains("IPv6 :: > :: hlim 64 plen 13 UDP 5000 > 53 len=13"));
        assert!(f.line.starts_with("ETH 01:02:03:04:05:06 > "));

        let b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .icmpv4_echo_request(7, 2);
        let mut out = Vec::new();
        b.write(&mut out, &[0; 8]).expect("writes");
        let f = decode(&out);
        assert_eq!(f.proto, Some(Proto::Icmp));
        assert!(
            f.line.ends_with("ICMP type=8 code=0 id=7 seq=2"),
            "{}",
            f.line
        );
    }

    #[test]
    fn garbage_is_described_not_a_panic() {
        assert!(decode(&[]).line.contains("not decodable"));
        let mut f = syn_frame();
        f.truncate(30);
        let d = decode(&f);
        assert_eq!(d.proto, None);
    }
}
