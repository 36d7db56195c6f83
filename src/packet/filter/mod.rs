//! Capture filters as tcpdump writes them (`tcp and port 8989`), compiled
//! to classic BPF for `SO_ATTACH_FILTER`: the kernel runs the program on
//! every frame and queues only those it accepts. The same program runs in
//! user space ([`interp`]) on frames read back from a pcap file, so a file
//! and a live capture keep the same frames.
//!
//! - [`parse`]: the expression → a tree of primitives (pcap-filter(7)'s
//!   grammar, the subset listed in [`parse::VALID`]);
//! - [`compile`]: the tree → instructions, with the same tests tcpdump's
//!   code generator makes (its optimiser is not reproduced: programs are
//!   longer than `tcpdump -d` shows, and accept the same frames);
//! - [`interp`]: a classic BPF interpreter with the kernel's checks.
//!
//! See <https://www.kernel.org/doc/html/latest/networking/filter.html>
//! and pcap-filter(7).

pub mod compile;
pub mod interp;
pub mod parse;

use std::fmt::Write as _;

pub use compile::compile;
pub use interp::{run, validate};
pub use parse::{parse, Expr};

use super::Proto;

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Insn { code, jt, jf, k }
    }
}

/// The opcode parts of `<linux/bpf_common.h>` and `<linux/filter.h>`.
pub mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;

    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;

    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    /// `BPF_RET | BPF_A`: return the accumulator.
    pub const A: u16 = 0x10;

    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;

    /// The instruction class of a code.
    pub const fn class(code: u16) -> u16 {
        code & 0x07
    }
}

/// What an accepting program returns: keep up to 256 KiB of the frame,
/// tcpdump's default snapshot length.
pub const SNAPLEN: u32 = 262_144;

/// The kernel's limit on a classic program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// The expression `--proto` stands for: tcpdump's `icmp` is IPv4 only, so
/// `--proto icmp` keeps ICMPv6 too, as it always did.
pub fn proto_expr(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp or icmp6",
    }
}

/// A filter ready to attach: what the user wrote and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub text: String,
    pub program: Vec<Insn>,
}

impl Filter {
    /// Parses and compiles `text`; the error names the token at fault and
    /// what would be valid there.
    pub fn new(text: &str) -> Result<Filter, super::ParseError> {
        let expr = parse(text)?;
        let program = compile(&expr)?;
        Ok(Filter {
            text: text.to_string(),
            program,
        })
    }

    /// Whether the program accepts `frame` (`wire_len` bytes long on the wire).
    pub fn accepts(&self, frame: &[u8], wire_len: usize) -> bool {
        run(&self.program, frame, wire_len) != 0
    }
}

/// One instruction as `tcpdump -d` prints it (libpcap's `bpf_image`):
/// `(001) jeq      #0x800           jt 2` and a tab before `jf 4`.
pub fn image(ins: &Insn, n: usize) -> String {
    use op::*;
    let k = ins.k;
    let (name, operand): (&str, String) = match ins.code {
        c if c == RET | K => ("ret", format!("#{}", k as i32)),
        c if c == RET | A => ("ret", String::new()),
        c if c == LD | W | ABS => ("ld", format!("[{}]", k as i32)),
        c if c == LD | H | ABS => ("ldh", format!("[{}]", k as i32)),
        c if c == LD | B | ABS => ("ldb", format!("[{}]", k as i32)),
        c if c == LD | W | LEN => ("ld", "#pktlen".into()),
        c if c == LD | W | IND => ("ld", format!("[x + {}]", k as i32)),
        c if c == LD | H | IND => ("ldh", format!("[x + {}]", k as i32)),
        c if c == LD | B | IND => ("ldb", format!("[x + {}]", k as i32)),
        c if c == LD | IMM => ("ld", format!("#0x{k:x}")),
        c if c == LDX | IMM => ("ldx", format!("#0x{k:x}")),
        c if c == LDX | W | LEN => ("ldx", "#pktlen".into()),
        c if c == LDX | MSH | B => ("ldxb", format!("4*([{}]&0xf)", k as i32)),
        c if c == LD | MEM => ("ld", format!("M[{}]", k as i32)),
        c if c == LDX | MEM => ("ldx", format!("M[{}]", k as i32)),
        c if c == ST => ("st", format!("M[{}]", k as i32)),
        c if c == STX => ("stx", format!("M[{}]", k as i32)),
        c if c == JMP | JA => ("ja", (n as u64 + 1 + u64::from(k)).to_string()),
        c if c == JMP | JGT | K => ("jgt", format!("#0x{k:x}")),
        c if c == JMP | JGE | K => ("jge", format!("#0x{k:x}")),
        c if c == JMP | JEQ | K => ("jeq", format!("#0x{k:x}")),
        c if c == JMP | JSET | K => ("jset", format!("#0x{k:x}")),
        c if c == JMP | JGT | X => ("jgt", "x".into()),
        c if c == JMP | JGE | X => ("jge", "x".into()),
        c if c == JMP | JEQ | X => ("jeq", "x".into()),
        c if c == JMP | JSET | X => ("jset", "x".into()),
        c if op::class(c) == ALU && c != ALU | NEG => {
            let name = match c & 0xf0 {
                ADD => "add",
                SUB => "sub",
                MUL => "mul",
                DIV => "div",
                MOD => "mod",
                AND => "and",
                OR => "or",
                XOR => "xor",
                LSH => "lsh",
                RSH => "rsh",
                _ => return format!("({n:03}) {:<8} 0x{:x}", "unimp", ins.code),
            };
            let operand = if c & X != 0 {
                "x".to_string()
            } else if matches!(c & 0xf0, AND | OR | XOR) {
                format!("#0x{k:x}")
            } else {
                format!("#{}", k as i32)
            };
            (name, operand)
        }
        c if c == ALU | NEG => ("neg", String::new()),
        c if c == MISC | TAX => ("tax", String::new()),
        c if c == MISC | TXA => ("txa", String::new()),
        c => ("unimp", format!("0x{c:x}")),
    };
    if op::class(ins.code) == JMP && ins.code & 0xf0 != JA {
        format!(
            "({n:03}) {name:<8} {operand:<16} jt {}\tjf {}",
            n + 1 + usize::from(ins.jt),
            n + 1 + usize::from(ins.jf)
        )
    } else {
        format!("({n:03}) {name:<8} {operand}")
    }
}

/// The program as `tcpdump -d` (level 1), `-dd` (2: a C array) or `-ddd`
/// (3: decimal, count first) prints it, one line per entry.
pub fn dump(prog: &[Insn], level: u8) -> Vec<String> {
    match level {
        0 | 1 => prog.iter().enumerate().map(|(n, i)| image(i, n)).collect(),
        2 => prog
            .iter()
            .map(|i| format!("{{ 0x{:x}, {}, {}, 0x{:08x} }},", i.code, i.jt, i.jf, i.k))
            .collect(),
        _ => std::iter::once(prog.len().to_string())
            .chain(
                prog.iter()
                    .map(|i| format!("{} {} {} {}", i.code, i.jt, i.jf, i.k)),
            )
            .collect(),
    }
}

/// Reads the output of `tcpdump -ddd` back into instructions (for tests
/// that compare programs with tcpdump's).
pub fn from_decimal(text: &str) -> Option<Vec<Insn>> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let n: usize = lines.next()?.parse().ok()?;
    let mut prog = Vec::with_capacity(n.min(MAX_INSNS));
    for l in lines {
        let f: Vec<u32> = l
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [code, jt, jf, k] = f[..] else {
            return None;
        };
        prog.push(Insn::new(
            u16::try_from(code).ok()?,
            u8::try_from(jt).ok()?,
            u8::try_from(jf).ok()?,
            k,
        ));
    }
    (prog.len() == n).then_some(prog)
}

/// One line that sums a program up, for the note under `SO_ATTACH_FILTER`.
pub fn describe(f: &Filter) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "a {}-instruction classic BPF program for `{}`: the kernel now queues only the frames it accepts (see them with `ipclab sniff -d {}`)",
        f.program.len(),
        f.text,
        f.text
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_read_as_tcpdump_prints_them() {
        // Lines of `tcpdump -d port 80` (tcpdump 4.99.3, libpcap 1.10.3).
        assert_eq!(image(&Insn::new(0x28, 0, 0, 12), 0), "(000) ldh      [12]");
        assert_eq!(
            image(&Insn::new(0x15, 0, 8, 0x86dd), 1),
            "(001) jeq      #0x86dd          jt 2\tjf 10"
        );
        assert_eq!(
            image(&Insn::new(0x45, 7, 0, 0x1fff), 16),
            "(016) jset     #0x1fff          jt 24\tjf 17"
        );
        assert_eq!(
            image(&Insn::new(0xb1, 0, 0, 14), 17),
            "(017) ldxb     4*([14]&0xf)"
        );
        assert_eq!(
            image(&Insn::new(0x48, 0, 0, 14), 18),
            "(018) ldh      [x + 14]"
        );
        assert_eq!(
            image(&Insn::new(0x06, 0, 0, SNAPLEN), 22),
            "(022) ret      #262144"
        );
        assert_eq!(image(&Insn::new(0x20, 0, 0, 26), 2), "(002) ld       [26]");
        assert_eq!(
            image(&Insn::new(0x54, 0, 0, 0xffffff00), 3),
            "(003) and      #0xffffff00"
        );
    }

    #[test]
    fn dumps_at_every_level_and_reads_decimal_back() {
        let prog = vec![Insn::new(0x28, 0, 0, 12), Insn::new(0x06, 0, 0, 0)];
        assert_eq!(
            dump(&prog, 2),
            ["{ 0x28, 0, 0, 0x0000000c },", "{ 0x6, 0, 0, 0x00000000 },"]
        );
        let dec = dump(&prog, 3).join("\n");
        assert_eq!(dec, "2\n40 0 0 12\n6 0 0 0");
        assert_eq!(from_decimal(&dec), Some(prog));
        assert_eq!(from_decimal("2\n40 0 0 12"), None);
    }

    #[test]
    fn proto_shorthands_compile() {
        for p in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            let f = Filter::new(proto_expr(p)).expect("compiles");
            assert!(validate(&f.program).is_ok());
        }
    }
}
