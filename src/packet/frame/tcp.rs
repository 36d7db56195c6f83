//! A TCP segment as tcpdump writes it (print-tcp.c): `Flags [S.], seq 0,
//! ack 1, win 65483, options [mss 65495,sackOK,TS val 1 ecr 2,nop,wscale
//! 7], length 0`.
//!
//! Relative sequence numbers, tcpdump's way: a connection is keyed by its
//! two addresses and ports in one order for both directions; the first
//! segment with ACK set (or any SYN) records both directions' numbers and
//! is shown as is; later ones show their distance from those. `-S` turns
//! this off.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use etherparse::TcpSlice;

/// Connections remembered at most; past that the table starts afresh
/// (tcpdump's grows without bound).
const MAX_CONNECTIONS: usize = 4096;

type Key = (IpAddr, IpAddr, u16, u16);

/// The first sequence and acknowledgement numbers of each connection.
#[derive(Debug, Default)]
pub struct Seqs {
    table: HashMap<Key, (u32, u32)>,
}

/// tcpdump's flag letters, in its order: FIN SYN RST PSH ACK URG ECE CWR.
fn flags(t: &TcpSlice<'_>) -> String {
    let s: String = [
        (t.fin(), 'F'),
        (t.syn(), 'S'),
        (t.rst(), 'R'),
        (t.psh(), 'P'),
        (t.ack(), '.'),
        (t.urg(), 'U'),
        (t.ece(), 'E'),
        (t.cwr(), 'W'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

impl Seqs {
    /// Writes the segment after `SRC.PORT > DST.PORT: `.
    pub fn line(
        &mut self,
        line: &mut String,
        t: &TcpSlice<'_>,
        src: IpAddr,
        dst: IpAddr,
        absolute: bool,
    ) {
        let (sport, dport) = (t.source_port(), t.destination_port());
        let mut seq = t.sequence_number();
        let mut ack = t.acknowledgment_number();
        let (mut thseq, mut thack, mut rev) = (0u32, 0u32, false);
        if !absolute && t.ack() {
            rev = sport > dport || (sport == dport && src > dst);
            let key = if rev {
                (dst, src, dport, sport)
            } else {
                (src, dst, sport, dport)
            };
            let entry = match self.table.get(&key) {
                Some(e) if !t.syn() => {
                    let (s0, a0) = *e;
                    if rev {
                        seq = seq.wrapping_sub(a0);
                        ack = ack.wrapping_sub(s0);
                    } else {
                        seq = seq.wrapping_sub(s0);
                        ack = ack.wrapping_sub(a0);
                    }
                    *e
                }
                _ => {
                    if self.table.len() >= MAX_CONNECTIONS && !self.table.contains_key(&key) {
                        self.table.clear();
                    }
                    let e = if rev {
                        (ack.wrapping_sub(1), seq)
                    } else {
                        (seq, ack.wrapping_sub(1))
                    };
                    self.table.insert(key, e);
                    e
                }
            };
            (thseq, thack) = entry;
        }
        let _ = write!(line, "Flags [{}]", flags(t));
        let len = t.payload().len() as u32;
        if len > 0 || t.syn() || t.fin() || t.rst() {
            let _ = write!(line, ", seq {seq}");
            if len > 0 {
                let _ = write!(line, ":{}", seq.wrapping_add(len));
            }
        }
        if t.ack() {
            let _ = write!(line, ", ack {ack}");
        }
        let _ = write!(line, ", win {}", t.window_size());
        if t.urg() {
            let _ = write!(line, ", urg {}", t.urgent_pointer());
        }
        let opts = t.options();
        if !opts.is_empty() {
            line.push_str(", options [");
            options(line, opts, if rev { thseq } else { thack });
            line.push(']');
        }
        let _ = write!(line, ", length {len}");
    }
}

fn option_name(kind: u8) -> String {
    match kind {
        0 => "eol".into(),
        1 => "nop".into(),
        2 => "mss".into(),
        3 => "wscale".into(),
        4 => "sackOK".into(),
        5 => "sack".into(),
        8 => "TS".into(),
        19 => "md5".into(),
        28 => "uto".into(),
        29 => "tcp-ao".into(),
        30 => "mptcp".into(),
        34 => "tfo".into(),
        253 | 254 => "exp".into(),
        k => format!("unknown-{k}"),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The options, as print-tcp.c lists them; `base` is what SACK edges are
/// made relative to.
fn options(line: &mut String, mut b: &[u8], base: u32) {
    let mut first = true;
    while let Some(&kind) = b.first() {
        if !first {
            line.push(',');
        }
        first = false;
        line.push_str(&option_name(kind));
        if kind <= 1 {
            b = &b[1..];
            if kind == 0 {
                break;
            }
            continue;
        }
        let Some(&len) = b.get(1) else {
            line.push_str("[|tcp]");
            return;
        };
        let len = usize::from(len);
        if len < 2 || len > b.len() {
            let _ = write!(line, "[bad opt]");
            return;
        }
        let data = &b[2..len];
        match (kind, data.len()) {
            (2, 2) => {
                let _ = write!(line, " {}", u16::from_be_bytes([data[0], data[1]]));
            }
            (3, 1) => {
                let _ = write!(line, " {}", data[0]);
            }
            (4, 0) => {}
            (5, n) if n % 8 == 0 => {
                let _ = write!(line, " {} ", n / 8);
                for e in data.chunks_exact(8) {
                    let _ = write!(
                        line,
                        "{{{}:{}}}",
                        be32(&e[..4]).wrapping_sub(base),
                        be32(&e[4..]).wrapping_sub(base)
                    );
                }
            }
            (5, _) => line.push_str(" invalid sack"),
            (8, 8) => {
                let _ = write!(line, " val {} ecr {}", be32(&data[..4]), be32(&data[4..]));
            }
            // tcpdump writes other options' bytes in hex right after the
            // name (and decodes a few more: md5, uto, mptcp, tfo).
            _ => {
                for x in data {
                    let _ = write!(line, "{x:02x}");
                }
            }
        }
        b = &b[len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(
        sport: u16,
        dport: u16,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(sport, dport, seq, 512);
        if syn {
            b = b.syn();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("writes");
        v[20..].to_vec()
    }

    fn show(s: &mut Seqs, seg: &[u8], absolute: bool) -> String {
        let t = TcpSlice::from_slice(seg).expect("a TCP segment");
        let lo = IpAddr::from([127, 0, 0, 1]);
        let mut line = String::new();
        s.line(&mut line, &t, lo, lo, absolute);
        line
    }

    #[test]
    fn sequence_numbers_are_relative_after_the_first_ack() {
        // Client 41234 → server 8989, a handshake and 5 bytes.
        let mut s = Seqs::default();
        let syn = segment(41234, 8989, 1000, None, true, b"");
        let synack = segment(8989, 41234, 5000, Some(1001), true, b"");
        let ack = segment(41234, 8989, 1001, Some(5001), false, b"");
        let data = segment(41234, 8989, 1001, Some(5001), false, b"hello");
        let reply = segment(8989, 41234, 5001, Some(1006), false, b"ok");
        assert_eq!(
            show(&mut s, &syn, false),
            "Flags [S], seq 1000, win 512, length 0"
        );
        assert_eq!(
            show(&mut s, &synack, false),
            "Flags [S.], seq 5000, ack 1001, win 512, length 0"
        );
        assert_eq!(
            show(&mut s, &ack, false),
            "Flags [.], ack 1, win 512, length 0"
        );
        assert_eq!(
            show(&mut s, &data, false),
            "Flags [P.], seq 1:6, ack 1, win 512, length 5"
        );
        assert_eq!(
            show(&mut s, &reply, false),
            "Flags [P.], seq 1:3, ack 6, win 512, length 2"
        );
        assert_eq!(
            show(&mut Seqs::default(), &data, true),
            "Flags [P.], seq 1001:1006, ack 5001, win 512, length 5"
        );
    }

    #[test]
    fn options_read_as_tcpdump_prints_them() {
        let mut line = String::new();
        let opts = [
            2, 4, 0xff, 0xd7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        options(&mut line, &opts, 0);
        assert_eq!(line, "mss 65495,sackOK,TS val 1 ecr 0,nop,wscale 7");
        let mut line = String::new();
        options(&mut line, &[5, 10, 0, 0, 0, 11, 0, 0, 0, 21, 99, 3, 1], 10);
        assert_eq!(line, "sack 1 {1:11},unknown-9901");
        let mut line = String::new();
        options(&mut line, &[2, 9, 1], 0);
        assert_eq!(line, "mss[bad opt]");
    }
}
