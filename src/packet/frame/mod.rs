//! One line per captured Ethernet frame, as `tcpdump -n` writes it:
//! `IP 127.0.0.1.41234 > 127.0.0.1.8989: Flags [S], seq 1000, win 65495,
//! length 0` — decoded with etherparse. The link layer (MAC addresses,
//! ethertype, frame length) only with `-e`, as in tcpdump; on `lo` the
//! addresses are all zero anyway.
//!
//! - [`tcp`]: flags, options and relative sequence numbers;
//! - [`icmp`]: ICMP and ICMPv6 types by name;
//! - [`dump`]: `-X` / `-A` payload lines and the time of day.

pub mod dump;
pub mod icmp;
pub mod tcp;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::Proto;

/// How frames are written: tcpdump's `-e` and `-S`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// `-e`: the Ethernet header first.
    pub link: bool,
    /// `-S`: absolute TCP sequence numbers.
    pub absolute: bool,
}

/// A frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The transport protocol, when the frame carries TCP, UDP or ICMP.
    pub proto: Option<Proto>,
    /// `IP 127.0.0.1.41234 > 127.0.0.1.8989: Flags [S], seq 1000, …`
    pub line: String,
    /// Where the network layer starts: `-X` and `-A` show the bytes from here.
    pub net: usize,
}

/// Decodes frames one after another; keeps what relative TCP sequence
/// numbers need (the first numbers seen per connection).
#[derive(Debug, Default)]
pub struct Decoder {
    style: Style,
    seqs: tcp::Seqs,
}

/// A MAC address as tcpdump writes it.
pub fn mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ethertype_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x86dd => "IPv6",
        0x0806 => "ARP",
        0x8035 => "Reverse ARP",
        0x8100 => "802.1Q",
        0x88cc => "LLDP",
        _ => "Unknown",
    }
}

/// Decodes one frame with a fresh decoder (absolute sequence numbers
/// until a connection's first ACK, no link layer).
pub fn decode(bytes: &[u8]) -> Frame {
    Decoder::default().decode(bytes, bytes.len())
}

impl Decoder {
    pub fn new(style: Style) -> Self {
        Decoder {
            style,
            seqs: tcp::Seqs::default(),
        }
    }

    /// Decodes a frame as an `AF_PACKET`/`SOCK_RAW` socket returns it (from
    /// the Ethernet header on) or a pcap file of link type Ethernet holds
    /// it; `wire_len` is its length on the wire. Never fails: what cannot
    /// be decoded is said so.
    pub fn decode(&mut self, bytes: &[u8], wire_len: usize) -> Frame {
        let mut line = String::new();
        if bytes.len() < 14 {
            return Frame {
                proto: None,
                line: format!(
                    "[|ether] {} bytes, too short for an Ethernet header",
                    bytes.len()
                ),
                net: bytes.len(),
            };
        }
        let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        if self.style.link {
            let _ = write!(
                line,
                "{} > {}, ethertype {} (0x{ethertype:04x}), length {wire_len}: ",
                mac(&bytes[6..12]),
                mac(&bytes[0..6]),
                ethertype_name(ethertype),
            );
        }
        let body = &bytes[14..];
        let p = match SlicedPacket::from_ethernet(bytes) {
            Ok(p) => p,
            Err(e) => {
                let tag = match ethertype {
                    0x0800 => "IP ",
                    0x86dd => "IP6 ",
                    _ => "",
                };
                if !self.style.link {
                    line.push_str(tag);
                }
                let _ = write!(line, "[|not decodable: {e}] {} bytes", body.len());
                return Frame {
                    proto: None,
                    line,
                    net: 14,
                };
            }
        };
        let proto = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                if !self.style.link {
                    line.push_str("IP ");
                }
                let h = ip.header();
                let src = IpAddr::V4(h.source_addr());
                let dst = IpAddr::V4(h.destination_addr());
                let plen = usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
                if h.fragments_offset().value() != 0 {
                    // A later fragment has no transport header: tcpdump
                    // names the protocol only.
                    let _ = write!(line, "{src} > {dst}: ip-proto-{}", h.protocol().0);
                    None
                } else if h.more_fragments() {
                    self.first_fragment(&mut line, ip.payload().payload, src, dst, h.protocol().0)
                } else {
                    self.transport(&mut line, &p.transport, src, dst, h.protocol().0, plen)
                }
            }
            Some(NetSlice::Ipv6(ip)) => {
                if !self.style.link {
                    line.push_str("IP6 ");
                }
                let h = ip.header();
                let src = IpAddr::V6(h.source_addr());
                let dst = IpAddr::V6(h.destination_addr());
                let payload = ip.payload();
                self.transport(
                    &mut line,
                    &p.transport,
                    src,
                    dst,
                    payload.ip_number.0,
                    payload.payload.len(),
                )
            }
            Some(NetSlice::Arp(_)) => {
                if !self.style.link {
                    line.push_str("ARP, ");
                }
                arp(&mut line, body);
                None
            }
            None => {
                if !self.style.link {
                    let _ = write!(
                        line,
                        "ethertype {} (0x{ethertype:04x}), length {wire_len}: ",
                        ethertype_name(ethertype)
                    );
                }
                let _ = write!(line, "{} bytes not decoded", body.len());
                None
            }
        };
        Frame {
            proto,
            line,
            net: 14,
        }
    }

    /// The first fragment of an IPv4 packet: etherparse leaves its
    /// transport header undecoded, tcpdump decodes it — TCP and ICMP as
    /// usual, with this fragment's length; UDP with the length its header
    /// gives, the whole datagram's.
    fn first_fragment(
        &mut self,
        line: &mut String,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        ip_proto: u8,
    ) -> Option<Proto> {
        let t = match ip_proto {
            6 => etherparse::TcpSlice::from_slice(payload)
                .ok()
                .map(TransportSlice::Tcp),
            1 => etherparse::Icmpv4Slice::from_slice(payload)
                .ok()
                .map(TransportSlice::Icmpv4),
            17 if payload.len() >= 8 => {
                let port = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
                let _ = write!(line, "{src}.{} > {dst}.{}: ", port(0), port(2));
                match usize::from(port(4)) {
                    ulen if ulen < 8 => {
                        let _ = write!(line, "UDP, bad length {ulen} < 8");
                    }
                    ulen => {
                        let _ = write!(line, "UDP, length {}", ulen - 8);
                    }
                }
                return Some(Proto::Udp);
            }
            _ => None,
        };
        self.transport(line, &t, src, dst, ip_proto, payload.len())
    }

    fn transport(
        &mut self,
        line: &mut String,
        t: &Option<TransportSlice<'_>>,
        src: IpAddr,
        dst: IpAddr,
        ip_proto: u8,
        plen: usize,
    ) -> Option<Proto> {
        match t {
            Some(TransportSlice::Tcp(t)) => {
                let _ = write!(
                    line,
                    "{src}.{} > {dst}.{}: ",
                    t.source_port(),
                    t.destination_port()
                );
                self.seqs.line(line, t, src, dst, self.style.absolute);
                Some(Proto::Tcp)
            }
            Some(TransportSlice::Udp(u)) => {
                let _ = write!(
                    line,
                    "{src}.{} > {dst}.{}: ",
                    u.source_port(),
                    u.destination_port()
                );
                let ulen = usize::from(u.length());
                if ulen < 8 {
                    let _ = write!(line, "UDP, bad length {ulen} < 8");
                } else {
                    let len = (ulen - 8).min(plen.saturating_sub(8));
                    let _ = write!(line, "UDP, length {len}");
                }
                Some(Proto::Udp)
            }
            Some(TransportSlice::Icmpv4(i)) => {
                let _ = write!(line, "{src} > {dst}: ");
                icmp::v4(line, i.slice(), plen);
                Some(Proto::Icmp)
            }
            Some(TransportSlice::Icmpv6(i)) => {
                let _ = write!(line, "{src} > {dst}: ");
                icmp::v6(line, i.slice(), plen);
                Some(Proto::Icmp)
            }
            Some(TransportSlice::Igmp(_)) => {
                let _ = write!(line, "{src} > {dst}: igmp, length {plen}");
                None
            }
            None => {
                let _ = write!(line, "{src} > {dst}:  ip-proto-{ip_proto} {plen}");
                None
            }
        }
    }
}

/// ARP over Ethernet and IPv4, as tcpdump: `Request who-has A tell B`,
/// `Reply A is-at MAC`.
fn arp(line: &mut String, a: &[u8]) {
    if a.len() < 28 || a[0..6] != [0, 1, 8, 0, 6, 4] {
        let _ = write!(line, "arp, length {}", a.len());
        return;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    let sha = &a[8..14];
    let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    match op {
        1 => {
            let _ = write!(line, "Request who-has {tpa} tell {spa}");
        }
        2 => {
            let _ = write!(line, "Reply {spa} is-at {}", mac(sha));
        }
        o => {
            let _ = write!(line, "op {o}");
        }
    }
    let _ = write!(line, ", length {}", a.len());
}

/// An IPv6 address from 16 bytes at `at`, if there are that many.
pub(crate) fn ip6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
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
    fn decodes_a_tcp_syn_as_tcpdump_n() {
        let f = decode(&syn_frame());
        assert_eq!(f.proto, Some(Proto::Tcp));
        assert_eq!(
            f.line,
            "IP 127.0.0.1.41234 > 127.0.0.1.8989: Flags [S], seq 1000, win 65495, length 0"
        );
        let mut d = Decoder::new(Style {
            link: true,
            absolute: false,
        });
        assert_eq!(
            d.decode(&syn_frame(), 54).line,
            "00:00:00:00:00:00 > 00:00:00:00:00:00, ethertype IPv4 (0x0800), length 54: \
             127.0.0.1.41234 > 127.0.0.1.8989: Flags [S], seq 1000, win 65495, length 0"
        );
    }

    #[test]
    fn decodes_udp_over_ipv6_icmp_echo_and_arp() {
        let b = etherparse::PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [0; 6])
            .ipv6([0; 16], [0; 16], 64)
            .udp(5000, 5353);
        let mut out = Vec::new();
        b.write(&mut out, b"hello").expect("writes");
        let f = decode(&out);
        assert_eq!(f.proto, Some(Proto::Udp));
        assert_eq!(f.line, "IP6 ::.5000 > ::.5353: UDP, length 5");

        let b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .icmpv4_echo_request(1234, 2);
        let mut out = Vec::new();
        b.write(&mut out, &[0; 56]).expect("writes");
        let f = decode(&out);
        assert_eq!(f.proto, Some(Proto::Icmp));
        assert_eq!(
            f.line,
            "IP 127.0.0.1 > 127.0.0.1: ICMP echo request, id 1234, seq 2, length 64"
        );

        let mut arp_frame = vec![0xffu8; 6];
        arp_frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp_frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        arp_frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        assert_eq!(
            decode(&arp_frame).line,
            "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"
        );
    }

    /// An IPv4 fragment from 192.0.2.2 to 198.51.100.2 (no checksum).
    fn fragment(proto: u8, more: bool, offset: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]);
        f.extend_from_slice(&((u16::from(more) << 13) | (offset / 8)).to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0, 192, 0, 2, 2, 198, 51, 100, 2]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn first_fragments_are_decoded_as_tcpdump_does() {
        // The lines tcpdump 4.99 -n prints for the same frames.
        let mut udp = vec![0x9c, 0x40, 0x23, 0x1d, 0x0b, 0xc0, 0, 0];
        udp.resize(1256, b'x');
        assert_eq!(
            decode(&fragment(17, true, 0, &udp)).line,
            "IP 192.0.2.2.40000 > 198.51.100.2.8989: UDP, length 3000"
        );
        assert_eq!(
            decode(&fragment(17, true, 1256, &udp)).line,
            "IP 192.0.2.2 > 198.51.100.2: ip-proto-17"
        );
        let mut echo = vec![8, 0, 0, 0, 0, 7, 0, 1];
        echo.resize(1256, b'y');
        let f = decode(&fragment(1, true, 0, &echo));
        assert_eq!(f.proto, Some(Proto::Icmp));
        assert_eq!(
            f.line,
            "IP 192.0.2.2 > 198.51.100.2: ICMP echo request, id 7, seq 1, length 1256"
        );
    }

    #[test]
    fn garbage_is_described_not_a_panic() {
        assert!(decode(&[]).line.contains("too short"));
        let mut f = syn_frame();
        f.truncate(30);
        let d = decode(&f);
        assert_eq!(d.proto, None);
        assert!(d.line.starts_with("IP [|not decodable"), "{}", d.line);
    }
}
