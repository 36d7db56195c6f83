//! iputils ping's socket filter: classic BPF that drops other pings'
//! echo replies in the kernel (pure: the program only; `sys::raw`
//! attaches it).

use super::icmp::Family;

/// iputils ping's socket filter, as a classic BPF program: an echo reply
/// with another id (another ping's) is dropped in the kernel; everything
/// else the ICMP filter let through is kept. On a raw IPv4 socket the
/// packet starts with the IP header, whose length the first instruction
/// reads (`ldxb 4*([0]&0xf)`); an ICMPv6 raw socket gets the ICMPv6 header
/// first.
pub fn id_filter(family: Family, id: u16) -> Vec<crate::packet::filter::Insn> {
    use crate::packet::filter::Insn;
    const LDXB_MSH: u16 = 0xb1; // ldxb 4*([k]&0xf)
    const LDH_IND: u16 = 0x48; // ldh [x + k]
    const LDB_IND: u16 = 0x50; // ldb [x + k]
    const LDH_ABS: u16 = 0x28; // ldh [k]
    const LDB_ABS: u16 = 0x30; // ldb [k]
    const JEQ_K: u16 = 0x15; // jeq #k
    const RET_K: u16 = 0x06; // ret #k
    let (ldh, ldb, reply) = match family {
        Family::V4 => (LDH_IND, LDB_IND, 0),
        Family::V6 => (LDH_ABS, LDB_ABS, 129),
    };
    let mut prog = Vec::with_capacity(8);
    if family == Family::V4 {
        prog.push(Insn::new(LDXB_MSH, 0, 0, 0));
    }
    prog.extend([
        Insn::new(ldh, 0, 0, 4),               // the echo id
        Insn::new(JEQ_K, 0, 1, u32::from(id)), // ours?
        Insn::new(RET_K, 0, 0, u32::MAX),      // yes: keep it
        Insn::new(ldb, 0, 0, 0),               // the ICMP type
        Insn::new(JEQ_K, 1, 0, reply),         // an echo reply?
        Insn::new(RET_K, 0, 0, u32::MAX),      // no (an error): keep it
        Insn::new(RET_K, 0, 0, 0),             // another ping's reply: drop
    ]);
    prog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::filter::Insn;

    /// Runs a program the way the kernel would, for these few opcodes.
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = prog[pc];
            let at = |off: usize, n: usize| pkt.get(off..off + n);
            match i.code {
                0xb1 => x = u32::from(pkt[i.k as usize] & 0xf) * 4,
                0x48 => {
                    a = at(x as usize + i.k as usize, 2)
                        .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])))
                }
                0x50 => a = u32::from(pkt[x as usize + i.k as usize]),
                0x28 => {
                    a = at(i.k as usize, 2)
                        .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])))
                }
                0x30 => a = u32::from(pkt[i.k as usize]),
                0x15 => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                0x06 => return i.k,
                c => panic!("opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_filter_keeps_our_replies_and_errors_and_drops_other_pings() {
        let ip = |icmp: &[u8]| {
            let mut p = vec![0x45u8; 1];
            p.extend([0u8; 19]);
            p.extend_from_slice(icmp);
            p
        };
        let v4 = id_filter(Family::V4, 0x1234);
        assert_eq!(run(&v4, &ip(&[0, 0, 0, 0, 0x12, 0x34, 0, 1])), u32::MAX);
        assert_eq!(run(&v4, &ip(&[0, 0, 0, 0, 0x43, 0x21, 0, 1])), 0);
        assert_eq!(run(&v4, &ip(&[3, 3, 0, 0, 0, 0, 0, 0])), u32::MAX);
        let v6 = id_filter(Family::V6, 7);
        assert_eq!(run(&v6, &[129, 0, 0, 0, 0, 7, 0, 1]), u32::MAX);
        assert_eq!(run(&v6, &[129, 0, 0, 0, 0, 8, 0, 1]), 0);
        assert_eq!(run(&v6, &[1, 4, 0, 0, 0, 0, 0, 0]), u32::MAX);
    }
}
