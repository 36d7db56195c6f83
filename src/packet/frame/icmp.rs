//! ICMP and ICMPv6 messages by name, as tcpdump writes them without `-v`
//! (print-icmp.c, print-icmp6.c): `ICMP echo request, id 1234, seq 1,
//! length 64`, `ICMP 127.0.0.1 udp port 9 unreachable, length 36`,
//! `ICMP6, echo reply, id 7, seq 2, length 64`. `length` is the ICMP
//! message's length.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::ip6_at;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(s))
}

/// What a destination-unreachable message says, from the IPv4 header it
/// quotes (at byte 8).
fn unreachable(m: &[u8], code: u8) -> Option<String> {
    let dst = ip4_at(m, 8 + 16)?;
    let proto = *m.get(8 + 9)?;
    Some(match code {
        0 => format!("net {dst} unreachable"),
        1 => format!("host {dst} unreachable"),
        2 => format!("{dst} protocol {proto} unreachable"),
        3 => {
            let ihl = usize::from(m.get(8)? & 0x0f) * 4;
            let dport = be16(m, 8 + ihl + 2)?;
            match proto {
                6 => format!("{dst} tcp port {dport} unreachable"),
                17 => format!("{dst} udp port {dport} unreachable"),
                p => format!("{dst} protocol {p} port {dport} unreachable"),
            }
        }
        4 => match be16(m, 6)? {
            0 => format!("{dst} unreachable - need to frag"),
            mtu => format!("{dst} unreachable - need to frag (mtu {mtu})"),
        },
        5 => format!("{dst} unreachable - source route failed"),
        6 => format!("net {dst} unreachable - unknown"),
        7 => format!("host {dst} unreachable - unknown"),
        8 => format!("src host {dst} isolated"),
        9 => format!("net {dst} unreachable - admin prohibited"),
        10 => format!("host {dst} unreachable - admin prohibited"),
        11 => format!("net {dst} unreachable - tos prohibited"),
        12 => format!("host {dst} unreachable - tos prohibited"),
        13 => format!("host {dst} unreachable - admin prohibited filter"),
        14 => format!("host {dst} unreachable - host precedence violation"),
        15 => format!("host {dst} unreachable - precedence cutoff"),
        c => format!("#{c} {dst} unreachable"),
    })
}

/// An ICMP message `m` (header on) that came in `plen` bytes of IPv4 payload.
pub fn v4(line: &mut String, m: &[u8], plen: usize) {
    let (Some(&ty), Some(&code)) = (m.first(), m.get(1)) else {
        line.push_str("[|icmp]");
        return;
    };
    let text = match ty {
        0 | 8 => match (be16(m, 4), be16(m, 6)) {
            (Some(id), Some(seq)) => format!(
                "echo {}, id {id}, seq {seq}",
                if ty == 8 { "request" } else { "reply" }
            ),
            _ => return line.push_str("[|icmp]"),
        },
        3 => match unreachable(m, code) {
            Some(t) => t,
            None => return line.push_str("[|icmp]"),
        },
        5 => match (ip4_at(m, 8 + 16), ip4_at(m, 4)) {
            (Some(dst), Some(gw)) => match code {
                0 => format!("redirect {dst} to net {gw}"),
                1 => format!("redirect {dst} to host {gw}"),
                2 => format!("redirect-tos {dst} to net {gw}"),
                3 => format!("redirect-tos {dst} to host {gw}"),
                c => format!("redirect-#{c} {dst} to {gw}"),
            },
            _ => return line.push_str("[|icmp]"),
        },
        11 => match code {
            0 => "time exceeded in-transit".into(),
            1 => "ip reassembly time exceeded".into(),
            c => format!("time exceeded-#{c}"),
        },
        12 => match code {
            0 => format!(
                "parameter problem - octet {}",
                m.get(4).copied().unwrap_or(0)
            ),
            c => format!("parameter problem - code {c}"),
        },
        4 => "source quench".into(),
        9 => "router advertisement".into(),
        10 => "router solicitation".into(),
        13 => "time stamp request".into(),
        14 => "time stamp reply".into(),
        15 => "information request".into(),
        16 => "information reply".into(),
        17 => "address mask request".into(),
        18 => "address mask reply".into(),
        t => format!("type-#{t}"),
    };
    let _ = write!(line, "ICMP {text}, length {plen}");
}

fn v6_name(ty: u8) -> String {
    match ty {
        1 => "destination unreachable".into(),
        2 => "packet too big".into(),
        3 => "time exceeded in-transit".into(),
        4 => "parameter problem".into(),
        128 => "echo request".into(),
        129 => "echo reply".into(),
        130 => "multicast listener query".into(),
        131 => "multicast listener report".into(),
        132 => "multicast listener done".into(),
        133 => "router solicitation".into(),
        134 => "router advertisement".into(),
        135 => "neighbor solicitation".into(),
        136 => "neighbor advertisement".into(),
        137 => "redirect".into(),
        143 => "multicast listener report v2".into(),
        t => format!("unknown icmp6 type ({t})"),
    }
}

/// An ICMPv6 message `m` that came in `plen` bytes of IPv6 payload.
pub fn v6(line: &mut String, m: &[u8], plen: usize) {
    let (Some(&ty), Some(&code)) = (m.first(), m.get(1)) else {
        line.push_str("[|icmp6]");
        return;
    };
    let _ = write!(line, "ICMP6, {}", v6_name(ty));
    match ty {
        128 | 129 => {
            if let (Some(id), Some(seq)) = (be16(m, 4), be16(m, 6)) {
                let _ = write!(line, ", id {id}, seq {seq}");
            }
        }
        135 => {
            if let Some(t) = ip6_at(m, 8) {
                let _ = write!(line, ", who has {t}");
            }
        }
        136 => {
            if let Some(t) = ip6_at(m, 8) {
                let _ = write!(line, ", tgt is {t}");
            }
        }
        2 => {
            if let (Some(hi), Some(lo)) = (be16(m, 4), be16(m, 6)) {
                let _ = write!(line, ", mtu {}", (u32::from(hi) << 16) | u32::from(lo));
            }
        }
        1 => {
            let name = match code {
                0 => "unreachable route".to_string(),
                1 => "unreachable prohibited".into(),
                2 => "beyond scope".into(),
                3 => "unreachable address".into(),
                4 => "unreachable port".into(),
                c => format!("unknown unreach code ({c})"),
            };
            let _ = write!(line, ", {name}");
            // The quoted IPv6 header starts at byte 8; its destination at 8 + 24.
            if let Some(dst) = ip6_at(m, 8 + 24) {
                match (code, m.get(8 + 6), be16(m, 8 + 40 + 2)) {
                    (4, Some(6), Some(p)) => {
                        let _ = write!(line, ", {dst} tcp port {p}");
                    }
                    (4, Some(17), Some(p)) => {
                        let _ = write!(line, ", {dst} udp port {p}");
                    }
                    (0 | 1 | 3, _, _) => {
                        let _ = write!(line, " {dst}");
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    let _ = write!(line, ", length {plen}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_echo_and_port_unreachable() {
        let mut l = String::new();
        v4(&mut l, &[8, 0, 0, 0, 0x04, 0xd2, 0, 1], 64);
        assert_eq!(l, "ICMP echo request, id 1234, seq 1, length 64");
        // Port unreachable quoting a UDP datagram to 127.0.0.1:9.
        let mut m = vec![
            3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0,
        ];
        m.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40, 0, 9]);
        let mut l = String::new();
        v4(&mut l, &m, 36);
        assert_eq!(l, "ICMP 127.0.0.1 udp port 9 unreachable, length 36");
        let mut l = String::new();
        v4(&mut l, &[11, 0, 0, 0], 36);
        assert_eq!(l, "ICMP time exceeded in-transit, length 36");
        let mut l = String::new();
        v4(&mut l, &[8], 1);
        assert_eq!(l, "[|icmp]");
    }

    #[test]
    fn names_icmp6_echo_and_neighbour_discovery() {
        let mut l = String::new();
        v6(&mut l, &[129, 0, 0, 0, 0, 7, 0, 2], 64);
        assert_eq!(l, "ICMP6, echo reply, id 7, seq 2, length 64");
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut l = String::new();
        v6(&mut l, &ns, 32);
        assert_eq!(
            l,
            "ICMP6, neighbor solicitation, who has fe80::1, length 32"
        );
    }
}
