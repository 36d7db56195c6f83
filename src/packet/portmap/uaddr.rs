//! Universal addresses and netids (RFC 5665 §5.2.3; RFC 1833 §2.1): how
//! rpcbind writes a transport address as text. The port travels as two
//! decimal bytes after the host: 127.0.0.1 port 61311 (0xef7f) is
//! `127.0.0.1.239.127`, `[::1]` port 40300 is `::1.157.108`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::packet::{ParseError, Proto};

/// The universal address of `addr`. An IPv6 scope id is left out: a
/// universal address has no place for one.
pub fn uaddr(addr: SocketAddr) -> String {
    let [hi, lo] = addr.port().to_be_bytes();
    format!("{}.{hi}.{lo}", addr.ip())
}

/// A decimal byte as a universal address writes it: 1 to 3 digits.
fn byte(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The socket address a universal address names: `h1.h2.h3.h4.p1.p2`
/// for IPv4, `x:x::x.p1.p2` (any RFC 4291 text form) for IPv6.
///
/// # Errors
/// Anything else, with the text quoted.
pub fn parse_uaddr(s: &str) -> Result<SocketAddr, ParseError> {
    let bad = || ParseError(format!("not a universal address: {s:?}"));
    let mut parts = s.rsplitn(3, '.');
    let (Some(lo), Some(hi), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let port = u16::from_be_bytes([byte(hi).ok_or_else(bad)?, byte(lo).ok_or_else(bad)?]);
    let ip = if host.contains(':') {
        IpAddr::V6(host.parse::<Ipv6Addr>().map_err(|_| bad())?)
    } else {
        let octets: Vec<Option<u8>> = host.split('.').map(byte).collect();
        match octets[..] {
            [Some(a), Some(b), Some(c), Some(d)] => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            _ => return Err(bad()),
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// The netids of TCP and UDP over IPv4 and IPv6 (RFC 5665 §5.1, the
/// names in /etc/netconfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netid {
    Tcp,
    Udp,
    Tcp6,
    Udp6,
}

impl Netid {
    pub fn name(self) -> &'static str {
        match self {
            Netid::Tcp => "tcp",
            Netid::Udp => "udp",
            Netid::Tcp6 => "tcp6",
            Netid::Udp6 => "udp6",
        }
    }

    /// One of the four names; `None` for others (`local`, `rdma`…).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tcp" => Netid::Tcp,
            "udp" => Netid::Udp,
            "tcp6" => Netid::Tcp6,
            "udp6" => Netid::Udp6,
            _ => return None,
        })
    }

    /// The netid of a TCP or UDP socket bound to `addr`; `None` for ICMP.
    pub fn for_addr(proto: Proto, addr: &SocketAddr) -> Option<Self> {
        Some(match (proto, addr.is_ipv6()) {
            (Proto::Tcp, false) => Netid::Tcp,
            (Proto::Udp, false) => Netid::Udp,
            (Proto::Tcp, true) => Netid::Tcp6,
            (Proto::Udp, true) => Netid::Udp6,
            (Proto::Icmp, _) => return None,
        })
    }

    pub fn proto(self) -> Proto {
        match self {
            Netid::Tcp | Netid::Tcp6 => Proto::Tcp,
            Netid::Udp | Netid::Udp6 => Proto::Udp,
        }
    }

    pub fn is_ipv6(self) -> bool {
        matches!(self, Netid::Tcp6 | Netid::Udp6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address literal")
    }

    #[test]
    fn addresses_rpcbind_wrote_parse_to_socket_addresses() {
        // From the captured rpcbind DUMP and GETADDR replies.
        for (text, addr) in [
            ("127.0.0.1.239.127", "127.0.0.1:61311"),
            ("127.0.0.1.251.66", "127.0.0.1:64322"),
            ("0.0.0.0.0.111", "0.0.0.0:111"),
            ("::.0.111", "[::]:111"),
            ("::1.157.108", "[::1]:40300"),
        ] {
            assert_eq!(parse_uaddr(text), Ok(sa(addr)), "{text}");
            assert_eq!(uaddr(sa(addr)), text);
        }
    }

    #[test]
    fn ipv6_forms_parse_and_print_canonically() {
        let a = parse_uaddr("fe80:0:0:0:0:0:0:1.0.80").expect("long form");
        assert_eq!(a, sa("[fe80::1]:80"));
        assert_eq!(uaddr(a), "fe80::1.0.80");
        let mapped = parse_uaddr("::ffff:127.0.0.1.1.0").expect("v4-mapped");
        assert_eq!(mapped, sa("[::ffff:127.0.0.1]:256"));
        assert_eq!(uaddr(mapped), "::ffff:127.0.0.1.1.0");
        assert_eq!(uaddr(sa("[::1%3]:111")), "::1.0.111", "scope left out");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1.1",
            "127.0.0.1.256.0",
            "127.0.0.1.+1.0",
            "127.0.0.1.0001.0",
            "127.0.0.1.0.-1",
            "1.2.3.0.111",
            "1.2.3.4.5.0.111",
            "::1.0",
            "::g.0.1",
            "/run/rpcbind.sock",
            "127.0.0.1..0",
        ] {
            assert!(parse_uaddr(bad).is_err(), "{bad:?}");
        }
        let e = parse_uaddr("x").expect_err("not one");
        assert_eq!(e.0, "not a universal address: \"x\"");
    }

    #[test]
    fn netids_follow_protocol_and_family() {
        let v4 = sa("127.0.0.1:1");
        let v6 = sa("[::1]:1");
        assert_eq!(Netid::for_addr(Proto::Tcp, &v4), Some(Netid::Tcp));
        assert_eq!(Netid::for_addr(Proto::Udp, &v6), Some(Netid::Udp6));
        assert_eq!(Netid::for_addr(Proto::Icmp, &v4), None);
        for n in [Netid::Tcp, Netid::Udp, Netid::Tcp6, Netid::Udp6] {
            assert_eq!(Netid::parse(n.name()), Some(n));
        }
        assert_eq!(Netid::parse("local"), None);
        assert!(Netid::Tcp6.is_ipv6() && !Netid::Udp.is_ipv6());
        assert_eq!(Netid::Udp6.proto(), Proto::Udp);
    }
}
