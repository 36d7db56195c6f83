//! ICMP and ICMPv6 echo: build a request, parse what a ping socket returns.
//!
//! What arrives depends on the socket (see `lab::ping`):
//! - `SOCK_RAW` + `IPPROTO_ICMP`: the IPv4 header, then the ICMP message;
//! - `SOCK_RAW` + `IPPROTO_ICMPV6` and both `SOCK_DGRAM` ping sockets: the
//!   ICMP message alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type};

use super::ParseError;

/// IP version of a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The ICMP header's length: type, code, checksum, id, sequence.
pub const HEADER_LEN: usize = 8;
/// Bytes of payload that carry the send time, as iputils ping does (a `struct timeval`).
pub const TIMEVAL_LEN: usize = 16;

/// The payload iputils ping sends: byte `i` is `i`, and when there is room the
/// first 16 bytes hold the send time as a native-endian `struct timeval`.
pub fn payload(size: usize, sent: Option<(i64, i64)>) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| i as u8).collect();
    if let Some((sec, usec)) = sent {
        if size >= TIMEVAL_LEN {
            p[..8].copy_from_slice(&sec.to_ne_bytes());
            p[8..16].copy_from_slice(&usec.to_ne_bytes());
        }
    }
    p
}

/// The Internet checksum (RFC 1071) of an ICMP message, skipping its
/// checksum field (bytes 2–3). pnet_packet computes it.
pub fn checksum(message: &[u8]) -> u16 {
    pnet_packet::util::checksum(message, 1)
}

/// An echo request: 8 header bytes, then `payload`.
///
/// For IPv4 the checksum is computed here. For ICMPv6 it stays 0: it covers
/// a pseudo-header with the source address, which the kernel picks, so the
/// kernel fills it in on a raw ICMPv6 socket (RFC 3542 §3.1).
pub fn echo_request(family: Family, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let echo = IcmpEchoHeader { id, seq };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    match family {
        Family::V4 => {
            let h = Icmpv4Header::with_checksum(Icmpv4Type::EchoRequest(echo), payload);
            out.extend_from_slice(&h.to_bytes());
        }
        Family::V6 => {
            let h = etherparse::Icmpv6Header::new(Icmpv6Type::EchoRequest(echo));
            out.extend_from_slice(&h.to_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Writes the send time into a built echo request (the first 16 data
/// bytes, as [`payload`] lays them out) and, for IPv4, updates the
/// checksum. ping builds the packet first and stamps it last, just before
/// sendto, as iputils does, so that building it is not part of the RTT.
/// For the same reason the checksum is not recomputed over the whole
/// message: the 16 bytes written are folded into the one `echo_request`
/// computed (RFC 1624, eqn. 3), as iputils folds in its timeval — a few
/// additions, where a full pass (cold code after ping's sleep) cost about
/// 0.5 µs of every RTT.
pub fn stamp(family: Family, message: &mut [u8], sec: i64, usec: i64) {
    if message.len() < HEADER_LEN + TIMEVAL_LEN {
        return;
    }
    let mut new = [0u8; TIMEVAL_LEN];
    new[..8].copy_from_slice(&sec.to_ne_bytes());
    new[8..].copy_from_slice(&usec.to_ne_bytes());
    let at = HEADER_LEN..HEADER_LEN + TIMEVAL_LEN;
    if family == Family::V4 {
        // HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
        let word = |b: &[u8]| u32::from(u16::from_be_bytes([b[0], b[1]]));
        let mut sum = u32::from(!checksum_field(message));
        for (old, new) in message[at.clone()].chunks_exact(2).zip(new.chunks_exact(2)) {
            sum += (!word(old) & 0xffff) + word(new);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        message[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    message[at].copy_from_slice(&new);
}

/// The checksum field of a built or received message.
pub fn checksum_field(message: &[u8]) -> u16 {
    match message {
        [_, _, a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// What an ICMP message is, as far as ping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    EchoReply {
        id: u16,
        seq: u16,
    },
    /// A request: on loopback, a raw socket sees our own.
    EchoRequest {
        id: u16,
        seq: u16,
    },
    /// Destination unreachable, with the id and seq of the echo request it
    /// quotes when it quotes one.
    Unreachable {
        code: u8,
        quoted: Option<(u16, u16)>,
    },
    /// Time (TTL / hop limit) exceeded on the way.
    TimeExceeded {
        code: u8,
        quoted: Option<(u16, u16)>,
    },
    Other {
        ty: u8,
        code: u8,
    },
}

/// One received ICMP message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// TTL and source from the IPv4 header, when the socket delivers it.
    pub ip: Option<IpInfo>,
    /// Length of the IPv4 header in front of the ICMP message (0 without one).
    pub ip_header_len: usize,
    /// The ICMP message: header and data.
    pub message: &'a [u8],
    pub kind: Kind,
    /// Whether the checksum is right; `None` where it cannot be checked here
    /// (ICMPv6: its pseudo-header is not delivered, and the kernel has
    /// already dropped any message whose checksum was wrong).
    pub checksum_ok: Option<bool>,
    /// The echo data after the 8-byte header.
    pub data: &'a [u8],
}

/// The fields of an IPv4 header that ping prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub ttl: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// Parses what a ping socket returned. `with_ip_header`: the buffer starts
/// with an IPv4 header (raw IPv4 sockets only).
///
/// # Errors
/// A buffer too short for the headers it claims, or not IPv4/ICMP.
pub fn parse(family: Family, with_ip_header: bool, buf: &[u8]) -> Result<Reply<'_>, ParseError> {
    let (ip, ip_header_len) = if with_ip_header {
        let h = etherparse::Ipv4HeaderSlice::from_slice(buf)
            .map_err(|e| ParseError(format!("not an IPv4 header: {e}")))?;
        if h.protocol() != etherparse::IpNumber::ICMP {
            return Err(ParseError(format!(
                "IPv4 carries protocol {}, not ICMP",
                h.protocol().0
            )));
        }
        let info = IpInfo {
            ttl: h.ttl(),
            src: IpAddr::V4(h.source_addr()),
            dst: IpAddr::V4(h.destination_addr()),
        };
        (Some(info), h.slice().len())
    } else {
        (None, 0)
    };
    let message = &buf[ip_header_len..];
    if message.len() < HEADER_LEN {
        return Err(ParseError(format!(
            "{} bytes after the IP header: shorter than an 8-byte ICMP header",
            message.len()
        )));
    }
    let data = &message[HEADER_LEN..];
    let (kind, checksum_ok) = match family {
        Family::V4 => {
            let s = Icmpv4Slice::from_slice(message)
                .map_err(|e| ParseError(format!("bad ICMP message: {e}")))?;
            let ok = checksum(message) == s.checksum();
            (kind_v4(&s, data), Some(ok))
        }
        Family::V6 => {
            let s = Icmpv6Slice::from_slice(message)
                .map_err(|e| ParseError(format!("bad ICMPv6 message: {e}")))?;
            (kind_v6(&s, data), None)
        }
    };
    Ok(Reply {
        ip,
        ip_header_len,
        message,
        kind,
        checksum_ok,
        data,
    })
}

fn kind_v4(s: &Icmpv4Slice<'_>, data: &[u8]) -> Kind {
    match s.icmp_type() {
        Icmpv4Type::EchoReply(e) => Kind::EchoReply {
            id: e.id,
            seq: e.seq,
        },
        Icmpv4Type::EchoRequest(e) => Kind::EchoRequest {
            id: e.id,
            seq: e.seq,
        },
        Icmpv4Type::DestinationUnreachable(_) => Kind::Unreachable {
            code: s.code_u8(),
            quoted: quoted_v4(data),
        },
        Icmpv4Type::TimeExceeded(_) => Kind::TimeExceeded {
            code: s.code_u8(),
            quoted: quoted_v4(data),
        },
        _ => Kind::Other {
            ty: s.type_u8(),
            code: s.code_u8(),
        },
    }
}

fn kind_v6(s: &Icmpv6Slice<'_>, data: &[u8]) -> Kind {
    match s.icmp_type() {
        Icmpv6Type::EchoReply(e) => Kind::EchoReply {
            id: e.id,
            seq: e.seq,
        },
        Icmpv6Type::EchoRequest(e) => Kind::EchoRequest {
            id: e.id,
            seq: e.seq,
        },
        Icmpv6Type::DestinationUnreachable(_) => Kind::Unreachable {
            code: s.code_u8(),
            quoted: quoted_v6(data),
        },
        Icmpv6Type::TimeExceeded(_) => Kind::TimeExceeded {
            code: s.code_u8(),
            quoted: quoted_v6(data),
        },
        _ => Kind::Other {
            ty: s.type_u8(),
            code: s.code_u8(),
        },
    }
}

/// An ICMP error quotes the start of the packet that caused it: its IPv4
/// header and 8 bytes more — for an echo request, its type, id and seq.
fn quoted_v4(data: &[u8]) -> Option<(u16, u16)> {
    let h = etherparse::Ipv4HeaderSlice::from_slice(data).ok()?;
    if h.protocol() != etherparse::IpNumber::ICMP {
        return None;
    }
    quoted_echo(data.get(h.slice().len()..)?, 8)
}

/// ICMPv6 errors quote the 40-byte IPv6 header and as much more as fits.
fn quoted_v6(data: &[u8]) -> Option<(u16, u16)> {
    let h = etherparse::Ipv6HeaderSlice::from_slice(data).ok()?;
    if h.next_header() != etherparse::IpNumber::IPV6_ICMP {
        return None;
    }
    quoted_echo(data.get(h.slice().len()..)?, 128)
}

fn quoted_echo(icmp: &[u8], request_type: u8) -> Option<(u16, u16)> {
    match icmp {
        [ty, _, _, _, i0, i1, s0, s1, ..] if *ty == request_type => Some((
            u16::from_be_bytes([*i0, *i1]),
            u16::from_be_bytes([*s0, *s1]),
        )),
        _ => None,
    }
}

/// Where the request an ICMP error quotes was going: the destination of
/// the IPv4 or IPv6 header at the start of the error's data.
pub fn quoted_destination(family: Family, data: &[u8]) -> Option<IpAddr> {
    match family {
        Family::V4 => etherparse::Ipv4HeaderSlice::from_slice(data)
            .ok()
            .map(|h| IpAddr::V4(h.destination_addr())),
        Family::V6 => etherparse::Ipv6HeaderSlice::from_slice(data)
            .ok()
            .map(|h| IpAddr::V6(h.destination_addr())),
    }
}

/// What iputils ping prints for an ICMP error's type and code.
pub fn error_text(family: Family, kind: &Kind) -> String {
    match (family, kind) {
        (Family::V4, Kind::Unreachable { code, .. }) => match code {
            0 => "Destination Net Unreachable".into(),
            1 => "Destination Host Unreachable".into(),
            2 => "Destination Protocol Unreachable".into(),
            3 => "Destination Port Unreachable".into(),
            4 => "Frag needed and DF set".into(),
            5 => "Source Route Failed".into(),
            9 | 10 | 13 => "Packet filtered".into(),
            c => format!("Dest Unreachable, Bad Code: {c}"),
        },
        (Family::V6, Kind::Unreachable { code, .. }) => match code {
            0 => "Destination unreachable: No route".into(),
            1 => "Destination unreachable: Administratively prohibited".into(),
            3 => "Destination unreachable: Address unreachable".into(),
            4 => "Destination unreachable: Port unreachable".into(),
            c => format!("Destination unreachable: Unknown code {c}"),
        },
        (Family::V4, Kind::TimeExceeded { code: 0, .. }) => "Time to live exceeded".into(),
        (Family::V4, Kind::TimeExceeded { .. }) => "Frag reassembly time exceeded".into(),
        (Family::V6, Kind::TimeExceeded { code: 0, .. }) => "Time exceeded: Hop limit".into(),
        (Family::V6, Kind::TimeExceeded { .. }) => "Time exceeded: Defrag".into(),
        (_, Kind::Other { ty, code }) => format!("ICMP type {ty} code {code}"),
        (_, Kind::EchoReply { .. }) => "Echo Reply".into(),
        (_, Kind::EchoRequest { .. }) => "Echo Request".into(),
    }
}

/// The ICMP types ping lets through the kernel filter: echo replies and the
/// two errors it reports (destination unreachable, time exceeded).
pub fn passed_types(family: Family) -> &'static [u8] {
    match family {
        Family::V4 => &[0, 3, 11],
        Family::V6 => &[129, 1, 3],
    }
}

/// The value of `ICMP_FILTER` (raw(7), `struct icmp_filter`): bit `t` set
/// means type `t` is dropped before it reaches the socket. Only types below
/// 32 can be filtered; the kernel passes the rest.
pub fn icmp_filter(pass: &[u8]) -> u32 {
    !pass
        .iter()
        .filter(|t| **t < 32)
        .fold(0u32, |m, t| m | (1 << t))
}

/// The value of `ICMP6_FILTER` (RFC 3542 §3.2, `struct icmp6_filter`): 256
/// bits in eight 32-bit words, word `t >> 5`, bit `t & 31`; a set bit blocks
/// type `t`. Everything is blocked except `pass`.
pub fn icmp6_filter(pass: &[u8]) -> [u32; 8] {
    let mut words = [u32::MAX; 8];
    for t in pass {
        words[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    words
}

/// The loopback address of a family, for defaults and tests.
pub fn loopback(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_a_built_request_equals_building_it_stamped() {
        for fam in [Family::V4, Family::V6] {
            let want = echo_request(fam, 0x1234, 7, &payload(56, Some((1_700_000_000, 123_456))));
            let mut got = echo_request(fam, 0x1234, 7, &payload(56, None));
            stamp(fam, &mut got, 1_700_000_000, 123_456);
            assert_eq!(got, want, "{fam:?}");
        }
        let mut short = echo_request(Family::V4, 1, 1, &payload(8, None));
        let before = short.clone();
        stamp(Family::V4, &mut short, 1, 2);
        assert_eq!(short, before, "no room for a timeval: left as is");
    }

    #[test]
    fn kernel_filters_pass_only_replies_and_reported_errors() {
        // iputils passes 0 3 4 5 11 12; ping here reports 0, 3 and 11.
        assert_eq!(icmp_filter(passed_types(Family::V4)), !0x0809);
        let f = icmp6_filter(passed_types(Family::V6));
        assert_eq!(f[0], !0b1010, "types 1 and 3 pass");
        assert_eq!(f[4], !0b10, "type 129 (echo reply) passes");
        assert!(f
            .iter()
            .enumerate()
            .all(|(i, w)| i == 0 || i == 4 || *w == u32::MAX));
    }

    /// An echo reply from 127.0.0.1 as a raw IPv4 socket returns it
    /// (captured on this machine, id 0x1234, seq 1, 8 data bytes).
    fn reply_v4() -> Vec<u8> {
        let icmp = {
            let mut m = vec![0, 0, 0, 0, 0x12, 0x34, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7];
            let c = checksum(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            m
        };
        let mut ip = vec![
            0x45, 0, 0, 36, 0xab, 0xcd, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        let c = checksum_ip(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    fn checksum_ip(h: &[u8]) -> u16 {
        pnet_packet::util::checksum(h, 5)
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2, complement 220d.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        // Our checksum skips word 1 (the ICMP checksum field), so put the
        // example after a zeroed header word pair.
        let mut m = vec![0, 0, 0xff, 0xff];
        m.extend_from_slice(&bytes);
        assert_eq!(checksum(&m), 0x220d);
    }

    #[test]
    fn echo_request_v4_has_a_valid_checksum() {
        let p = payload(56, Some((1, 2)));
        let m = echo_request(Family::V4, 0x1234, 7, &p);
        assert_eq!(m.len(), 64);
        assert_eq!(&m[..2], &[8, 0]);
        assert_eq!(&m[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(checksum_field(&m), checksum(&m));
        // Summing the whole message, checksum included, gives 0xffff → complement 0.
        assert_eq!(pnet_packet::util::checksum(&m, usize::MAX), 0);
        assert_eq!(&m[8..16], &1i64.to_ne_bytes());
        assert_eq!(m[8 + 20], 20);
    }

    #[test]
    fn stamp_updates_the_checksum_as_a_full_pass_would() {
        for (sec, usec) in [
            (0, 0),
            (1_795_579_147, 149_534),
            (-1, 999_999),
            (i64::MAX, 1),
        ] {
            let mut m = echo_request(Family::V4, 0xbeef, 42, &payload(56, None));
            stamp(Family::V4, &mut m, sec, usec);
            assert_eq!(&m[8..16], &sec.to_ne_bytes());
            assert_eq!(&m[16..24], &usec.to_ne_bytes());
            assert_eq!(checksum_field(&m), checksum(&m), "stamp {sec}.{usec}");
            // Stamping again (the old bytes are a stamp now) still agrees.
            stamp(Family::V4, &mut m, sec ^ 0x5a5a, usec + 1);
            assert_eq!(checksum_field(&m), checksum(&m));
        }
    }

    #[test]
    fn echo_request_v6_leaves_the_checksum_to_the_kernel() {
        let m = echo_request(Family::V6, 1, 2, &payload(8, None));
        assert_eq!(&m[..8], &[128, 0, 0, 0, 0, 1, 0, 2]);
        assert_eq!(&m[8..], &[0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn parses_a_v4_reply_with_its_ip_header() {
        let b = reply_v4();
        let r = parse(Family::V4, true, &b).expect("valid reply");
        assert_eq!(r.kind, Kind::EchoReply { id: 0x1234, seq: 1 });
        assert_eq!(r.ip_header_len, 20);
        assert_eq!(r.checksum_ok, Some(true));
        let ip = r.ip.expect("has IP header");
        assert_eq!(ip.ttl, 64);
        assert_eq!(ip.src, loopback(Family::V4));
        assert_eq!(r.data, &[0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn detects_a_bad_checksum() {
        let mut b = reply_v4();
        b[30] ^= 0xff; // a data byte
        let r = parse(Family::V4, true, &b).expect("still parses");
        assert_eq!(r.checksum_ok, Some(false));
    }

    #[test]
    fn own_request_is_told_apart() {
        let m = echo_request(Family::V4, 9, 3, &[]);
        let r = parse(Family::V4, false, &m).expect("valid");
        assert_eq!(r.kind, Kind::EchoRequest { id: 9, seq: 3 });
        assert_eq!(r.ip, None);
    }

    #[test]
    fn unreachable_quotes_the_request() {
        // Type 3 code 1, then the quoted IPv4 header and the request's 8 bytes.
        let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        m.extend_from_slice(&echo_request(Family::V4, 0xbeef, 5, &[])[..8]);
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let r = parse(Family::V4, false, &m).expect("valid");
        assert_eq!(
            r.kind,
            Kind::Unreachable {
                code: 1,
                quoted: Some((0xbeef, 5))
            }
        );
        assert_eq!(
            error_text(Family::V4, &r.kind),
            "Destination Host Unreachable"
        );
        // The quoted request was going to 10.0.0.2.
        assert_eq!(
            quoted_destination(Family::V4, r.data),
            Some("10.0.0.2".parse().expect("valid"))
        );
    }

    #[test]
    fn time_exceeded_v6_quotes_the_request() {
        let mut m = vec![3, 0, 0, 0, 0, 0, 0, 0];
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, 58, 1];
        ip6.extend_from_slice(&[0; 32]);
        m.extend_from_slice(&ip6);
        m.extend_from_slice(&echo_request(Family::V6, 0x0102, 9, &[0; 8]));
        let r = parse(Family::V6, false, &m).expect("valid");
        assert_eq!(
            r.kind,
            Kind::TimeExceeded {
                code: 0,
                quoted: Some((0x0102, 9))
            }
        );
        assert_eq!(r.checksum_ok, None);
    }

    #[test]
    fn short_and_foreign_buffers_are_errors_not_panics() {
        assert!(parse(Family::V4, true, &[]).is_err());
        assert!(parse(Family::V4, true, &[0x45, 0, 0, 20]).is_err());
        assert!(parse(Family::V6, false, &[129, 0, 0]).is_err());
        let mut udp = reply_v4();
        udp[9] = 17;
        assert!(parse(Family::V4, true, &udp).is_err());
    }
}
