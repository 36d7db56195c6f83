//! The lab's own RPC program, as `ipclab.x` at the repository's top
//! declares it for rpcgen: program 0x20000001 (the range RFC 5531 §8.3
//! leaves to users), version 1, `int ADD(add_args)` and `int INCR(void)`.
//! Procedure 0 answers nothing, as every program's NULL does (§12.1).

use crate::packet::rpc::ArgsError;
use crate::packet::xdr::{decode_with, Reader, Writer, XdrError};

pub const IPCLAB_PROG: u32 = 0x2000_0001;
pub const IPCLAB_VERS: u32 = 1;

pub const NULLPROC: u32 = 0;
pub const ADD: u32 = 1;
pub const INCR: u32 = 2;

/// The name of a procedure as `ipclab.x` gives it.
pub fn proc_name(proc: u32) -> Option<&'static str> {
    match proc {
        NULLPROC => Some("NULL"),
        ADD => Some("ADD"),
        INCR => Some("INCR"),
        _ => None,
    }
}

/// `struct add_args { int a; int b; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddArgs {
    pub a: i32,
    pub b: i32,
}

impl AddArgs {
    /// Writes `a` and `b`, labelled `args.a` and `args.b`.
    pub fn write(&self, w: &mut Writer) {
        w.i32("args.a", self.a);
        w.i32("args.b", self.b);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(AddArgs {
            a: r.i32("args.a")?,
            b: r.i32("args.b")?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    /// # Errors
    /// Fewer or more than 8 bytes.
    pub fn decode(args: &[u8]) -> Result<Self, XdrError> {
        Ok(decode_with(args, false, Self::read)?.0)
    }

    /// What ADD answers. The C server computes `a + b` in `int`, where an
    /// overflow is undefined; here it wraps, as the x86 `add` does.
    pub fn sum(&self) -> i32 {
        self.a.wrapping_add(self.b)
    }
}

/// A call to the ipclab program, its arguments decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpclabCall {
    Null,
    Add(AddArgs),
    Incr,
}

impl IpclabCall {
    pub fn proc(&self) -> u32 {
        match self {
            IpclabCall::Null => NULLPROC,
            IpclabCall::Add(_) => ADD,
            IpclabCall::Incr => INCR,
        }
    }

    /// Writes the arguments (only ADD has any).
    pub fn write_args(&self, w: &mut Writer) {
        if let IpclabCall::Add(a) = self {
            a.write(w);
        }
    }

    pub fn encode_args(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write_args(&mut w);
        w.into_bytes()
    }

    /// Reads the arguments of procedure `proc` of version `vers`.
    ///
    /// # Errors
    /// `NoSuchVersion { 1, 1 }`, `NoSuchProc`, or `Garbage` for bad
    /// arguments.
    pub fn read(vers: u32, proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        if vers != IPCLAB_VERS {
            return Err(ArgsError::NoSuchVersion {
                low: IPCLAB_VERS,
                high: IPCLAB_VERS,
            });
        }
        Ok(match proc {
            NULLPROC => IpclabCall::Null,
            ADD => IpclabCall::Add(AddArgs::read(r)?),
            INCR => IpclabCall::Incr,
            _ => return Err(ArgsError::NoSuchProc(proc)),
        })
    }

    /// # Errors
    /// See [`IpclabCall::read`]; bytes left over are garbage.
    pub fn decode(vers: u32, proc: u32, args: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(args, false, |r| Self::read(vers, proc, r))?.0)
    }
}

/// The `int` ADD and INCR answer, labelled `results`.
pub fn encode_int(v: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32("results", v);
    w.into_bytes()
}

/// Reads the `int` of an ADD or INCR reply.
///
/// # Errors
/// Fewer or more than 4 bytes.
pub fn decode_int(results: &[u8]) -> Result<i32, XdrError> {
    Ok(decode_with(results, false, |r| r.i32("results"))?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::rpc::captured::{hex, CALL_TCP_ADD_NONE, REPLY_ADD_5, REPLY_UDP_ADD_99};
    use crate::packet::rpc::{AcceptStat, ReplyBody, RpcMessage};
    use crate::packet::xdr::XdrErrorKind;

    fn message(wire: &[u8]) -> RpcMessage {
        RpcMessage::decode(wire).expect("a captured message")
    }

    #[test]
    fn the_arguments_the_c_client_sent_round_trip() {
        let m = message(&hex(CALL_TCP_ADD_NONE)[4..]);
        let call = m.as_call().expect("a call");
        assert_eq!(
            (call.prog, call.vers, call.proc),
            (IPCLAB_PROG, IPCLAB_VERS, ADD)
        );
        let decoded = IpclabCall::decode(call.vers, call.proc, &call.args).expect("valid");
        let add = AddArgs { a: -7, b: 40000 };
        assert_eq!(decoded, IpclabCall::Add(add));
        assert_eq!(decoded.encode_args(), call.args);
        assert_eq!(AddArgs::decode(&call.args), Ok(add));
        assert_eq!(add.sum(), 39993);
    }

    #[test]
    fn the_results_the_c_server_sent_round_trip() {
        for (wire, want) in [
            (&hex(REPLY_ADD_5)[4..], 5),
            (&hex(REPLY_UDP_ADD_99)[..], 99),
        ] {
            let m = message(wire);
            let Some(ReplyBody::Accepted {
                stat: AcceptStat::Success(results),
                ..
            }) = m.as_reply()
            else {
                panic!("{m:?}");
            };
            assert_eq!(decode_int(results), Ok(want));
            assert_eq!(&encode_int(want), results);
        }
    }

    #[test]
    fn wrong_version_procedure_or_arguments_map_to_their_answers() {
        let e = IpclabCall::decode(2, ADD, &[]).expect_err("version 2");
        assert_eq!(
            e.accept_stat(),
            AcceptStat::ProgMismatch { low: 1, high: 1 }
        );
        let e = IpclabCall::decode(1, 7, &[]).expect_err("procedure 7");
        assert_eq!(e.accept_stat(), AcceptStat::ProcUnavail);
        // What the captured GARBAGE_ARGS call sent: one int of two.
        let e = IpclabCall::decode(1, ADD, &[0, 0, 0, 1]).expect_err("short");
        assert_eq!(e.accept_stat(), AcceptStat::GarbageArgs);
        let e = IpclabCall::decode(1, INCR, &[0, 0, 0, 1]).expect_err("INCR takes void");
        assert!(matches!(e, ArgsError::Garbage(x) if x.kind == XdrErrorKind::Trailing(4)));
        assert_eq!(IpclabCall::decode(1, NULLPROC, &[]), Ok(IpclabCall::Null));
    }

    #[test]
    fn add_wraps_like_the_machine() {
        assert_eq!(AddArgs { a: i32::MAX, b: 1 }.sum(), i32::MIN);
    }

    #[test]
    fn procedures_have_the_names_in_ipclab_x() {
        let names: Vec<_> = (0..4).map(proc_name).collect();
        assert_eq!(names, [Some("NULL"), Some("ADD"), Some("INCR"), None]);
        let source = include_str!("../../../ipclab.x");
        assert!(source.contains("int ADD(add_args) = 1;"));
        assert!(source.contains("int INCR(void) = 2;"));
        assert!(source.contains(&format!("= {IPCLAB_PROG:#x};")));
    }
}
