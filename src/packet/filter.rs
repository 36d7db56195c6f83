//! Classic BPF programs for `SO_ATTACH_FILTER`: the kernel runs them on
//! every frame and queues only those they accept, as tcpdump's filters do.
//! See <https://www.kernel.org/doc/html/latest/networking/filter.html>.

use super::Proto;

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Accepts Ethernet frames carrying `proto` over IPv4 or IPv6 (without
/// IPv6 extension headers), whole; drops everything else.
///
/// ```text
/// 0: ldh [12]                 ethertype
/// 1: jeq #0x0800   jt 2 jf 4
/// 2: ldb [23]                 IPv4 protocol
/// 3: jeq #v4proto  jt 7 jf 8
/// 4: jeq #0x86dd   jt 5 jf 8
/// 5: ldb [20]                 IPv6 next header
/// 6: jeq #v6proto  jt 7 jf 8
/// 7: ret #262144              accept (up to 256 KiB)
/// 8: ret #0                   drop
/// ```
pub fn program(proto: Proto) -> Vec<Insn> {
    let (v4, v6) = match proto {
        Proto::Tcp => (6, 6),
        Proto::Udp => (17, 17),
        Proto::Icmp => (1, 58),
    };
    let i = |code, jt, jf, k| Insn { code, jt, jf, k };
    vec![
        i(LDH_ABS, 0, 0, 12),    // 0
        i(JEQ_K, 0, 2, 0x0800),  // 1: IPv4? → 2, else → 4
        i(LDB_ABS, 0, 0, 23),    // 2
        i(JEQ_K, 3, 4, v4),      // 3: → 7 accept, else → 8 drop
        i(JEQ_K, 0, 3, 0x86dd),  // 4: IPv6? → 5, else → 8
        i(LDB_ABS, 0, 0, 20),    // 5
        i(JEQ_K, 0, 1, v6),      // 6: → 7, else → 8
        i(RET_K, 0, 0, 0x40000), // 7: accept, up to 256 KiB
        i(RET_K, 0, 0, 0),       // 8: drop
    ]
}

/// Runs a program on a frame the way the kernel does, for the tests: the
/// number of bytes to keep (0 = drop).
pub fn run(prog: &[Insn], frame: &[u8]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(ins) = prog.get(pc) {
        match ins.code {
            LDH_ABS => match frame.get(ins.k as usize..ins.k as usize + 2) {
                Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                None => return 0,
            },
            LDB_ABS => match frame.get(ins.k as usize) {
                Some(b) => a = u32::from(*b),
                None => return 0,
            },
            JEQ_K => {
                pc += usize::from(if a == ins.k { ins.jt } else { ins.jf });
            }
            RET_K => return ins.k,
            _ => return 0,
        }
        pc += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(
        v6: bool,
        build: impl FnOnce(etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Vec<u8>,
    ) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6]);
        let ip = if v6 {
            eth.ipv6([0; 16], [0; 16], 64)
        } else {
            eth.ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        };
        build(ip)
    }

    fn write(b: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        b(&mut v);
        v
    }

    #[test]
    fn filters_by_protocol_on_both_ip_versions() {
        for v6 in [false, true] {
            let tcp = frame(v6, |ip| {
                write(|v| ip.tcp(1, 2, 3, 4).write(v, &[]).expect("writes"))
            });
            let udp = frame(v6, |ip| {
                write(|v| ip.udp(1, 2).write(v, b"x").expect("writes"))
            });
            let icmp = frame(v6, |ip| {
                if v6 {
                    write(|v| ip.icmpv6_echo_request(1, 1).write(v, &[]).expect("writes"))
                } else {
                    write(|v| ip.icmpv4_echo_request(1, 1).write(v, &[]).expect("writes"))
                }
            });
            let tcp_p = program(Proto::Tcp);
            let udp_p = program(Proto::Udp);
            let icmp_p = program(Proto::Icmp);
            assert_eq!(run(&tcp_p, &tcp), 0x40000, "v6={v6}");
            assert_eq!(run(&tcp_p, &udp), 0, "v6={v6}");
            assert_eq!(run(&udp_p, &udp), 0x40000, "v6={v6}");
            assert_eq!(run(&udp_p, &icmp), 0, "v6={v6}");
            assert_eq!(run(&icmp_p, &icmp), 0x40000, "v6={v6}");
            assert_eq!(run(&icmp_p, &tcp), 0, "v6={v6}");
        }
        // An ARP frame and a runt are dropped.
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(run(&program(Proto::Tcp), &arp), 0);
        assert_eq!(run(&program(Proto::Tcp), &[0; 5]), 0);
    }
}
