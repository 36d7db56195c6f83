//! A filter expression → classic BPF over an Ethernet frame.
//!
//! Each primitive becomes the tests libpcap's code generator (gencode.c)
//! makes for it, so a frame passes here exactly when it passes tcpdump:
//! - `tcp`, `udp`, `sctp`, `icmp6`: IPv4 protocol field, or IPv6 next
//!   header — directly, or after one fragment header (next header 44);
//!   `icmp`: IPv4 only;
//! - `port N`: TCP, UDP or SCTP (any, unless one is named); over IPv4 only
//!   the first fragment (offset 0) and past the header length the IHL
//!   gives (`ldxb 4*([14]&0xf)`), over IPv6 right after the fixed header;
//! - `host A`: IPv4 source/destination, and for IPv4 addresses also ARP
//!   and RARP sender/target; IPv6 as four 32-bit words.
//!
//! Code generation passes each node the places to go when it holds and
//! when it does not, as in Appel's "Modern compiler implementation", so
//! `and`, `or` and `not` cost no instruction. Nothing is optimised: the
//! same value may be loaded twice where tcpdump's optimiser reuses it.

use std::net::IpAddr;

use super::op::*;
use super::parse::{Dir, Expr, Prim, ProtoName};
use super::{Insn, MAX_INSNS, SNAPLEN};
use crate::packet::ParseError;

const ETHERTYPE: u32 = 12;
const IP4: u32 = 14;
const IP6: u32 = 14;
const IP6_NEXT: u32 = IP6 + 6;
const IP6_PAYLOAD: u32 = IP6 + 40;

/// A load into the accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `ld/ldh/ldb [k]`
    Abs(u16, u32),
    /// `ldxb 4*([14]&0xf)` then `ld/ldh/ldb [x + k]`: past the IPv4 header.
    PastIp4(u16, u32),
}

/// A boolean combination of comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    /// Load, then jump on `op` (JEQ, JSET…) against `k`.
    Test(Load, u16, u32),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
}

fn eq(load: Load, k: u32) -> Cond {
    Cond::Test(load, JEQ, k)
}

fn ethertype(t: u32) -> Cond {
    eq(Load::Abs(H, ETHERTYPE), t)
}

fn ip4_proto(p: u32) -> Cond {
    Cond::All(vec![ethertype(0x0800), eq(Load::Abs(B, IP4 + 9), p)])
}

/// IPv6 next header `p`, directly or after a fragment header.
fn ip6_proto(p: u32) -> Cond {
    Cond::All(vec![
        ethertype(0x86dd),
        Cond::Any(vec![
            eq(Load::Abs(B, IP6_NEXT), p),
            Cond::All(vec![
                eq(Load::Abs(B, IP6_NEXT), 44),
                eq(Load::Abs(B, IP6_PAYLOAD), p),
            ]),
        ]),
    ])
}

fn proto_number(p: ProtoName) -> u32 {
    match p {
        ProtoName::Tcp => 6,
        ProtoName::Udp => 17,
        ProtoName::Sctp => 132,
        ProtoName::Icmp => 1,
        ProtoName::Icmp6 => 58,
        _ => 0,
    }
}

fn proto(p: ProtoName) -> Cond {
    match p {
        ProtoName::Ip => ethertype(0x0800),
        ProtoName::Ip6 => ethertype(0x86dd),
        ProtoName::Arp => ethertype(0x0806),
        ProtoName::Icmp => ip4_proto(1),
        ProtoName::Icmp6 => ip6_proto(58),
        p => Cond::Any(vec![ip4_proto(proto_number(p)), ip6_proto(proto_number(p))]),
    }
}

fn by_dir(dir: Dir, src: Cond, dst: Cond) -> Cond {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::Either => Cond::Any(vec![src, dst]),
        Dir::Both => Cond::All(vec![src, dst]),
    }
}

fn port(protocol: Option<ProtoName>, dir: Dir, n: u16) -> Cond {
    let protos: Vec<u32> = match protocol {
        Some(p) => vec![proto_number(p)],
        None => vec![132, 6, 17],
    };
    let n = u32::from(n);
    let v6 = Cond::All(vec![
        ethertype(0x86dd),
        Cond::Any(
            protos
                .iter()
                .map(|p| eq(Load::Abs(B, IP6_NEXT), *p))
                .collect(),
        ),
        by_dir(
            dir,
            eq(Load::Abs(H, IP6_PAYLOAD), n),
            eq(Load::Abs(H, IP6_PAYLOAD + 2), n),
        ),
    ]);
    let v4 = Cond::All(vec![
        ethertype(0x0800),
        Cond::Any(
            protos
                .iter()
                .map(|p| eq(Load::Abs(B, IP4 + 9), *p))
                .collect(),
        ),
        // Not a later fragment: those carry no port.
        Cond::Not(Box::new(Cond::Test(Load::Abs(H, IP4 + 6), JSET, 0x1fff))),
        by_dir(
            dir,
            eq(Load::PastIp4(H, IP4), n),
            eq(Load::PastIp4(H, IP4 + 2), n),
        ),
    ]);
    Cond::Any(vec![v6, v4])
}

fn host(protocol: Option<ProtoName>, dir: Dir, addr: IpAddr) -> Cond {
    match addr {
        IpAddr::V4(a) => {
            let a = u32::from(a);
            let ip = Cond::All(vec![
                ethertype(0x0800),
                by_dir(
                    dir,
                    eq(Load::Abs(W, IP4 + 12), a),
                    eq(Load::Abs(W, IP4 + 16), a),
                ),
            ]);
            if protocol == Some(ProtoName::Ip) {
                return ip;
            }
            // ARP and RARP sender and target protocol addresses.
            let arp = Cond::All(vec![
                Cond::Any(vec![ethertype(0x0806), ethertype(0x8035)]),
                by_dir(dir, eq(Load::Abs(W, 28), a), eq(Load::Abs(W, 38), a)),
            ]);
            Cond::Any(vec![ip, arp])
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            let words = |base: u32| {
                Cond::All(
                    (0..4)
                        .map(|i| {
                            let w = u32::from_be_bytes([
                                o[i * 4],
                                o[i * 4 + 1],
                                o[i * 4 + 2],
                                o[i * 4 + 3],
                            ]);
                            eq(Load::Abs(W, base + 4 * i as u32), w)
                        })
                        .collect(),
                )
            };
            Cond::All(vec![
                ethertype(0x86dd),
                by_dir(dir, words(IP6 + 8), words(IP6 + 24)),
            ])
        }
    }
}

fn lower(e: &Expr) -> Cond {
    match e {
        Expr::And(a, b) => Cond::All(vec![lower(a), lower(b)]),
        Expr::Or(a, b) => Cond::Any(vec![lower(a), lower(b)]),
        Expr::Not(a) => Cond::Not(Box::new(lower(a))),
        Expr::Prim(Prim::Proto(p)) => proto(*p),
        Expr::Prim(Prim::Port {
            proto,
            dir,
            port: n,
        }) => port(*proto, *dir, *n),
        Expr::Prim(Prim::Host { proto, dir, addr }) => host(*proto, *dir, *addr),
    }
}

type Label = usize;

/// An instruction whose jump targets are still labels.
#[derive(Debug, Clone, Copy)]
enum Op {
    Plain(Insn),
    /// A conditional jump: code, k, where to go if true, if false.
    Cond(u16, u32, Label, Label),
    Ja(Label),
    Mark(Label),
}

struct Gen {
    ops: Vec<Op>,
    labels: usize,
}

impl Gen {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    fn load(&mut self, l: Load) {
        match l {
            Load::Abs(size, k) => self
                .ops
                .push(Op::Plain(Insn::new(LD | size | ABS, 0, 0, k))),
            Load::PastIp4(size, k) => {
                self.ops
                    .push(Op::Plain(Insn::new(LDX | MSH | B, 0, 0, IP4)));
                self.ops
                    .push(Op::Plain(Insn::new(LD | size | IND, 0, 0, k)));
            }
        }
    }

    fn cond(&mut self, c: &Cond, t: Label, f: Label) {
        match c {
            Cond::Test(load, op, k) => {
                self.load(*load);
                self.ops.push(Op::Cond(JMP | op | K, *k, t, f));
            }
            Cond::All(parts) | Cond::Any(parts) => {
                let all = matches!(c, Cond::All(_));
                let Some((last, rest)) = parts.split_last() else {
                    return;
                };
                for p in rest {
                    let next = self.label();
                    if all {
                        self.cond(p, next, f);
                    } else {
                        self.cond(p, t, next);
                    }
                    self.ops.push(Op::Mark(next));
                }
                self.cond(last, t, f);
            }
            Cond::Not(inner) => self.cond(inner, f, t),
        }
    }
}

/// Where each label lands, counting instructions only.
fn layout(ops: &[Op], labels: usize) -> Vec<usize> {
    let mut at = vec![0; labels];
    let mut pc = 0;
    for op in ops {
        match op {
            Op::Mark(l) => at[*l] = pc,
            _ => pc += 1,
        }
    }
    at
}

/// Resolves labels to offsets. A conditional jump reaches at most 255
/// instructions ahead; a farther target gets a `ja` placed right after the
/// jump (a trampoline: the jump's other branch just skips it one further),
/// and the layout is redone. Every label is placed after the jumps to it.
fn assemble(mut g: Gen) -> Result<Vec<Insn>, ParseError> {
    let dist = |at: &[usize], l: Label, pc: usize| at[l].checked_sub(pc + 1);
    loop {
        let at = layout(&g.ops, g.labels);
        let mut pc = 0;
        let mut far = None;
        for (i, op) in g.ops.iter().enumerate() {
            match op {
                Op::Mark(_) => continue,
                Op::Cond(_, _, t, f) => {
                    let (dt, df) = (dist(&at, *t, pc), dist(&at, *f, pc));
                    if dt.is_none_or(|d| d > 255) {
                        far = Some((i, true));
                        break;
                    }
                    if df.is_none_or(|d| d > 255) {
                        far = Some((i, false));
                        break;
                    }
                }
                _ => {}
            }
            pc += 1;
        }
        let Some((i, is_t)) = far else {
            break;
        };
        if pc > MAX_INSNS {
            return Err(too_long(pc));
        }
        let hop = g.label();
        let Op::Cond(code, k, t, f) = g.ops[i] else {
            unreachable!("`far` holds the index of a conditional jump")
        };
        let (op, target) = if is_t {
            (Op::Cond(code, k, hop, f), t)
        } else {
            (Op::Cond(code, k, t, hop), f)
        };
        g.ops[i] = op;
        g.ops.insert(i + 1, Op::Mark(hop));
        g.ops.insert(i + 2, Op::Ja(target));
    }
    let at = layout(&g.ops, g.labels);
    let mut prog = Vec::new();
    for op in &g.ops {
        let pc = prog.len();
        let off = |l: Label| dist(&at, l, pc).ok_or_else(|| too_long(pc));
        match *op {
            Op::Mark(_) => {}
            Op::Plain(i) => prog.push(i),
            Op::Ja(l) => prog.push(Insn::new(JMP | JA, 0, 0, off(l)? as u32)),
            Op::Cond(code, k, t, f) => {
                let jt = u8::try_from(off(t)?).map_err(|_| too_long(pc))?;
                let jf = u8::try_from(off(f)?).map_err(|_| too_long(pc))?;
                prog.push(Insn::new(code, jt, jf, k));
            }
        }
    }
    if prog.len() > MAX_INSNS {
        return Err(too_long(prog.len()));
    }
    Ok(prog)
}

fn too_long(n: usize) -> ParseError {
    ParseError(format!(
        "filter too long: it compiles to more than {MAX_INSNS} instructions (about {n}), the kernel's limit"
    ))
}

/// Compiles `e` to a program that returns [`SNAPLEN`] for a frame it
/// accepts and 0 for one it drops.
///
/// # Errors
/// A program longer than the kernel takes ([`MAX_INSNS`]).
pub fn compile(e: &Expr) -> Result<Vec<Insn>, ParseError> {
    let mut g = Gen {
        ops: Vec::new(),
        labels: 0,
    };
    let (accept, reject) = (g.label(), g.label());
    g.cond(&lower(e), accept, reject);
    g.ops.push(Op::Mark(accept));
    g.ops.push(Op::Plain(Insn::new(RET | K, 0, 0, SNAPLEN)));
    g.ops.push(Op::Mark(reject));
    g.ops.push(Op::Plain(Insn::new(RET | K, 0, 0, 0)));
    assemble(g)
}

#[cfg(test)]
mod tests {
    use super::super::{dump, parse, run, validate};
    use super::*;

    fn prog(text: &str) -> Vec<Insn> {
        compile(&parse(text).expect("parses")).expect("compiles")
    }

    #[test]
    fn tcp_compiles_to_the_tests_tcpdump_makes() {
        // The tests of `tcpdump -d tcp`, with [12] and [20] loaded again
        // where tcpdump's optimiser reuses the value already in A.
        assert_eq!(
            dump(&prog("tcp"), 1),
            [
                "(000) ldh      [12]",
                "(001) jeq      #0x800           jt 2\tjf 4",
                "(002) ldb      [23]",
                "(003) jeq      #0x6             jt 12\tjf 4",
                "(004) ldh      [12]",
                "(005) jeq      #0x86dd          jt 6\tjf 13",
                "(006) ldb      [20]",
                "(007) jeq      #0x6             jt 12\tjf 8",
                "(008) ldb      [20]",
                "(009) jeq      #0x2c            jt 10\tjf 13",
                "(010) ldb      [54]",
                "(011) jeq      #0x6             jt 12\tjf 13",
                "(012) ret      #262144",
                "(013) ret      #0",
            ][..]
        );
    }

    #[test]
    fn far_jumps_get_trampolines_and_stay_valid() {
        let text = (1..=40)
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let p = prog(&text);
        assert!(p.len() > 256, "{}", p.len());
        validate(&p).expect("a valid program");
        // A UDP datagram to port 40 (the last alternative) passes; 41 does not.
        let frame = |dport: u16| {
            let mut v = Vec::new();
            etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
                .udp(5000, dport)
                .write(&mut v, b"x")
                .expect("writes");
            v
        };
        assert_eq!(run(&p, &frame(40), 43), SNAPLEN);
        assert_eq!(run(&p, &frame(1), 43), SNAPLEN);
        assert_eq!(run(&p, &frame(41), 43), 0);
    }

    #[test]
    fn too_long_is_an_error_not_a_program() {
        let text = (1..=400)
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let e = compile(&parse(&text).expect("parses")).expect_err("too long");
        assert!(e.0.contains("4096"), "{}", e.0);
    }
}
