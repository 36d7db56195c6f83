//! A classic BPF interpreter: what the kernel does with a program attached
//! by `SO_ATTACH_FILTER`, and what libpcap's `bpf_filter()` does with
//! frames read from a file. `ipclab sniff -r` runs the filter here, so a
//! file and a live capture keep the same frames.
//!
//! It never panics and always ends, whatever the program: jumps only go
//! forward, a load past the frame's end drops the frame (returns 0), as
//! does division by zero, an unknown opcode, or running off the end.
//! [`validate`] is the kernel's check (`bpf_check_classic`) for programs
//! before they are attached.

use super::op::*;
use super::{Insn, MAX_INSNS};
use crate::packet::ParseError;

/// Scratch memory words (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;

fn load(frame: &[u8], at: u32, size: u16) -> Option<u32> {
    let at = at as usize;
    let b = match size {
        W => frame.get(at..at.checked_add(4)?)?,
        H => frame.get(at..at.checked_add(2)?)?,
        B => frame.get(at..at.checked_add(1)?)?,
        _ => return None,
    };
    Some(b.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)))
}

/// Runs `prog` on `frame` (the captured bytes; `wire_len` is the length
/// on the wire, what `ld #pktlen` loads). Returns how many bytes to keep:
/// 0 drops the frame.
pub fn run(prog: &[Insn], frame: &[u8], wire_len: usize) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    let len = u32::try_from(wire_len).unwrap_or(u32::MAX);
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        let k = ins.k;
        let c = ins.code;
        match class(c) {
            LD => {
                a = match c & 0xe0 {
                    ABS => match load(frame, k, c & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match x.checked_add(k).and_then(|at| load(frame, at, c & 0x18)) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IMM if c == LD | IMM => k,
                    LEN if c == LD | W | LEN => len,
                    MEM if c == LD | MEM => match mem.get(k as usize) {
                        Some(v) => *v,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            LDX => {
                x = match c {
                    _ if c == LDX | IMM => k,
                    _ if c == LDX | W | LEN => len,
                    _ if c == LDX | MEM => match mem.get(k as usize) {
                        Some(v) => *v,
                        None => return 0,
                    },
                    _ if c == LDX | MSH | B => match load(frame, k, B) {
                        Some(v) => 4 * (v & 0xf),
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            ST | STX if c == ST || c == STX => match mem.get_mut(k as usize) {
                Some(m) => *m = if c == ST { a } else { x },
                None => return 0,
            },
            ALU => {
                let v = if c & X != 0 { x } else { k };
                a = match c & 0xf0 {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    MUL => a.wrapping_mul(v),
                    DIV => match a.checked_div(v) {
                        Some(r) => r,
                        None => return 0,
                    },
                    MOD => match a.checked_rem(v) {
                        Some(r) => r,
                        None => return 0,
                    },
                    AND => a & v,
                    OR => a | v,
                    XOR => a ^ v,
                    LSH => a.checked_shl(v).unwrap_or(0),
                    RSH => a.checked_shr(v).unwrap_or(0),
                    NEG if c == ALU | NEG => a.wrapping_neg(),
                    _ => return 0,
                }
            }
            JMP => {
                let v = if c & X != 0 { x } else { k };
                let taken = match c & 0xf0 {
                    JA if c == JMP | JA => {
                        match pc.checked_add(k as usize) {
                            Some(p) => pc = p,
                            None => return 0,
                        }
                        continue;
                    }
                    JEQ => a == v,
                    JGT => a > v,
                    JGE => a >= v,
                    JSET => a & v != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            RET => {
                return match c {
                    _ if c == RET | K => k,
                    _ if c == RET | A => a,
                    _ => 0,
                }
            }
            MISC => match c {
                _ if c == MISC | TAX => x = a,
                _ if c == MISC | TXA => a = x,
                _ => return 0,
            },
            _ => return 0,
        }
    }
    0
}

/// Whether `code` is an instruction the kernel's classic BPF takes.
fn known(code: u16) -> bool {
    let ld_sizes = [W, H, B];
    match class(code) {
        LD => {
            ld_sizes
                .iter()
                .any(|s| code == LD | s | ABS || code == LD | s | IND)
                || [LD | IMM, LD | W | LEN, LD | MEM].contains(&code)
        }
        LDX => [LDX | IMM, LDX | W | LEN, LDX | MEM, LDX | MSH | B].contains(&code),
        ST | STX => code == ST || code == STX,
        ALU => {
            code == ALU | NEG
                || (code & !(0xf0 | X) == ALU
                    && [ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH].contains(&(code & 0xf0)))
        }
        JMP => {
            code == JMP | JA
                || (code & !(0xf0 | X) == JMP && [JEQ, JGT, JGE, JSET].contains(&(code & 0xf0)))
        }
        RET => code == RET | K || code == RET | A,
        _ => code == MISC | TAX || code == MISC | TXA,
    }
}

/// The checks the kernel makes before attaching a classic program
/// (`bpf_check_classic` in net/core/filter.c): 1 to 4096 instructions,
/// known opcodes, scratch memory within its 16 words, no division by a
/// constant 0, every jump inside the program, and a `ret` at the end.
///
/// # Errors
/// The first instruction at fault.
pub fn validate(prog: &[Insn]) -> Result<(), ParseError> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(ParseError(format!(
            "a program has 1 to {MAX_INSNS} instructions, not {}",
            prog.len()
        )));
    }
    for (n, ins) in prog.iter().enumerate() {
        let bad = |why: &str| Err(ParseError(format!("instruction {n}: {why}")));
        let c = ins.code;
        if !known(c) {
            return bad(&format!("unknown opcode {c:#x}"));
        }
        let mem = c == LD | MEM || c == LDX | MEM || c == ST || c == STX;
        if mem && ins.k as usize >= MEMWORDS {
            return bad("scratch memory has 16 words");
        }
        if (c == ALU | DIV | K || c == ALU | MOD | K) && ins.k == 0 {
            return bad("division by zero");
        }
        if class(c) == JMP {
            let rest = prog.len() - n - 1;
            let reach = if c == JMP | JA {
                ins.k as usize
            } else {
                usize::from(ins.jt.max(ins.jf))
            };
            if reach >= rest {
                return bad("jumps past the end");
            }
        }
    }
    match prog.last() {
        Some(i) if class(i.code) == RET => Ok(()),
        _ => Err(ParseError("the last instruction must be a ret".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn::new(code, jt, jf, k)
    }

    #[test]
    fn loads_compare_and_return() {
        let frame = [0u8, 1, 2, 3, 4, 5, 0x45, 0, 0];
        // ldxb 4*([6]&0xf) = 20; ld #pktlen; ret a
        let p = [
            i(LDX | MSH | B, 0, 0, 6),
            i(LD | W | LEN, 0, 0, 0),
            i(RET | A, 0, 0, 0),
        ];
        assert_eq!(run(&p, &frame, 60), 60);
        // ld [2] is 0x02030405; jgt #0x02030404 → ret #1
        let p = [
            i(LD | W | ABS, 0, 0, 2),
            i(JMP | JGT | K, 0, 1, 0x0203_0404),
            i(RET | K, 0, 0, 1),
            i(RET | K, 0, 0, 0),
        ];
        assert_eq!(run(&p, &frame, 9), 1);
        validate(&p).expect("valid");
        // Past the end: dropped.
        let p = [i(LD | H | ABS, 0, 0, 8), i(RET | K, 0, 0, 1)];
        assert_eq!(run(&p, &frame, 9), 0);
        // x + k wrapping past u32: dropped, not a panic.
        let p = [
            i(LDX | IMM, 0, 0, u32::MAX),
            i(LD | B | IND, 0, 0, 2),
            i(RET | K, 0, 0, 1),
        ];
        assert_eq!(run(&p, &frame, 9), 0);
    }

    #[test]
    fn alu_scratch_and_division_by_zero() {
        let p = [
            i(LD | IMM, 0, 0, 7),
            i(ST, 0, 0, 3),
            i(LDX | MEM, 0, 0, 3),
            i(ALU | MUL | X, 0, 0, 0),  // 49
            i(ALU | SUB | K, 0, 0, 9),  // 40
            i(ALU | LSH | K, 0, 0, 40), // shifts of 32 or more give 0
            i(MISC | TAX, 0, 0, 0),
            i(LD | IMM, 0, 0, 5),
            i(ALU | DIV | X, 0, 0, 0), // x = 0: dropped
            i(RET | K, 0, 0, 1),
        ];
        assert_eq!(run(&p, &[], 0), 0);
        assert!(validate(&p).is_ok());
        let p = [i(ALU | DIV | K, 0, 0, 0), i(RET | A, 0, 0, 0)];
        assert!(validate(&p).is_err());
    }

    #[test]
    fn validate_refuses_what_the_kernel_refuses() {
        assert!(validate(&[]).is_err());
        assert!(validate(&[i(LD | IMM, 0, 0, 1)]).is_err()); // no ret
        assert!(validate(&[i(JMP | JEQ | K, 1, 0, 1), i(RET | K, 0, 0, 0)]).is_err());
        assert!(validate(&[i(JMP | JA, 0, 0, 1), i(RET | K, 0, 0, 0)]).is_err());
        assert!(validate(&[i(ST, 0, 0, 16), i(RET | K, 0, 0, 0)]).is_err());
        assert!(validate(&[i(0xff, 0, 0, 0), i(RET | K, 0, 0, 0)]).is_err());
        assert!(validate(&[i(RET | K, 0, 0, 0)]).is_ok());
    }
}
