//! rpcbind, versions 3 and 4 of program 100000 (RFC 1833 §2): entries
//! name a transport by netid and an address by its universal address,
//! and carry the owner that registered them (rpcbind lets only the owner,
//! or root, unset them).
//!
//! Served here: NULL, SET, UNSET, GETADDR, DUMP, GETTIME and v4's
//! GETVERSADDR. The other procedures are named (for printing) and decoded
//! as [`ArgsError::NoSuchProc`], so a server answers PROC_UNAVAIL.

use crate::packet::rpc::ArgsError;
use crate::packet::xdr::{decode_with, encode_with, Reader, Writer, XdrError};

use super::{parse_uaddr, read_list, write_list, Mapping, Netid, IPPROTO_TCP, IPPROTO_UDP};

pub const RPCBPROC_NULL: u32 = 0;
pub const RPCBPROC_SET: u32 = 1;
pub const RPCBPROC_UNSET: u32 = 2;
pub const RPCBPROC_GETADDR: u32 = 3;
pub const RPCBPROC_DUMP: u32 = 4;
/// Version 3's name; version 4 calls procedure 5 `RPCBPROC_BCAST`.
pub const RPCBPROC_CALLIT: u32 = 5;
pub const RPCBPROC_GETTIME: u32 = 6;
pub const RPCBPROC_UADDR2TADDR: u32 = 7;
pub const RPCBPROC_TADDR2UADDR: u32 = 8;
pub const RPCBPROC_GETVERSADDR: u32 = 9;
pub const RPCBPROC_INDIRECT: u32 = 10;
pub const RPCBPROC_GETADDRLIST: u32 = 11;
pub const RPCBPROC_GETSTAT: u32 = 12;

/// Longest netid, universal address or owner taken. RFC 1833 sets no
/// bound; these strings are a few dozen bytes, and the bound keeps one
/// entry's memory small.
pub const MAX_RPCB_STRING: usize = 1024;

/// The C name of procedure `proc` of rpcbind version `vers` (3 or 4).
pub fn proc_name(vers: u32, proc: u32) -> Option<&'static str> {
    const V4: [&str; 13] = [
        "RPCBPROC_NULL",
        "RPCBPROC_SET",
        "RPCBPROC_UNSET",
        "RPCBPROC_GETADDR",
        "RPCBPROC_DUMP",
        "RPCBPROC_BCAST",
        "RPCBPROC_GETTIME",
        "RPCBPROC_UADDR2TADDR",
        "RPCBPROC_TADDR2UADDR",
        "RPCBPROC_GETVERSADDR",
        "RPCBPROC_INDIRECT",
        "RPCBPROC_GETADDRLIST",
        "RPCBPROC_GETSTAT",
    ];
    match (vers, proc) {
        (3, RPCBPROC_CALLIT) => Some("RPCBPROC_CALLIT"),
        (3, p) if p <= RPCBPROC_TADDR2UADDR => V4.get(p as usize).copied(),
        (4, p) => V4.get(usize::try_from(p).ok()?).copied(),
        _ => None,
    }
}

/// Whether procedure `proc` of version `vers` is one served here.
fn served(vers: u32, proc: u32) -> Result<(), ArgsError> {
    if vers != super::RPCBVERS_3 && vers != super::RPCBVERS_4 {
        return Err(ArgsError::NoSuchVersion {
            low: super::PMAP_VERS,
            high: super::RPCBVERS_4,
        });
    }
    match proc {
        RPCBPROC_NULL..=RPCBPROC_DUMP | RPCBPROC_GETTIME => Ok(()),
        RPCBPROC_GETVERSADDR if vers == super::RPCBVERS_4 => Ok(()),
        _ => Err(ArgsError::NoSuchProc(proc)),
    }
}

/// `struct rpcb`: version `vers` of `prog` is at `addr` over `netid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpcb {
    pub prog: u32,
    pub vers: u32,
    /// `tcp`, `udp6`, `local`…; empty in a GETADDR for "the one I call over".
    pub netid: String,
    /// A universal address ([`super::uaddr()`]); empty in GETADDR and UNSET.
    pub addr: String,
    /// Who registered it: rpcbind writes `superuser` or the uid.
    pub owner: String,
}

impl Rpcb {
    /// Writes the entry, labelled `{label}.prog`, `{label}.netid`…
    ///
    /// # Errors
    /// A string over [`MAX_RPCB_STRING`].
    pub fn write(&self, w: &mut Writer, label: &str) -> Result<(), XdrError> {
        w.u32(&format!("{label}.prog"), self.prog);
        w.u32(&format!("{label}.vers"), self.vers);
        w.string(&format!("{label}.netid"), &self.netid, MAX_RPCB_STRING)?;
        w.string(&format!("{label}.addr"), &self.addr, MAX_RPCB_STRING)?;
        w.string(&format!("{label}.owner"), &self.owner, MAX_RPCB_STRING)
    }

    pub fn read(r: &mut Reader<'_>, label: &str) -> Result<Self, XdrError> {
        Ok(Rpcb {
            prog: r.u32(&format!("{label}.prog"))?,
            vers: r.u32(&format!("{label}.vers"))?,
            netid: r
                .string(&format!("{label}.netid"), MAX_RPCB_STRING)?
                .to_owned(),
            addr: r
                .string(&format!("{label}.addr"), MAX_RPCB_STRING)?
                .to_owned(),
            owner: r
                .string(&format!("{label}.owner"), MAX_RPCB_STRING)?
                .to_owned(),
        })
    }

    /// The portmapper mapping a v2 client sees for this entry: only IPv4
    /// `tcp` and `udp` entries with a parseable address have one.
    pub fn to_mapping(&self) -> Option<Mapping> {
        let prot = match Netid::parse(&self.netid)? {
            Netid::Tcp => IPPROTO_TCP,
            Netid::Udp => IPPROTO_UDP,
            Netid::Tcp6 | Netid::Udp6 => return None,
        };
        let addr = parse_uaddr(&self.addr).ok()?;
        Some(Mapping {
            prog: self.prog,
            vers: self.vers,
            prot,
            port: addr.port().into(),
        })
    }
}

/// An rpcbind (version 3 or 4) call's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcbCall {
    Null,
    Set(Rpcb),
    Unset(Rpcb),
    GetAddr(Rpcb),
    Dump,
    GetTime,
    /// Version 4: like GETADDR, but only for exactly that version.
    GetVersAddr(Rpcb),
}

impl RpcbCall {
    pub fn proc(&self) -> u32 {
        match self {
            RpcbCall::Null => RPCBPROC_NULL,
            RpcbCall::Set(_) => RPCBPROC_SET,
            RpcbCall::Unset(_) => RPCBPROC_UNSET,
            RpcbCall::GetAddr(_) => RPCBPROC_GETADDR,
            RpcbCall::Dump => RPCBPROC_DUMP,
            RpcbCall::GetTime => RPCBPROC_GETTIME,
            RpcbCall::GetVersAddr(_) => RPCBPROC_GETVERSADDR,
        }
    }

    /// Writes the arguments, labelled `args.prog`…
    ///
    /// # Errors
    /// A string over [`MAX_RPCB_STRING`].
    pub fn write_args(&self, w: &mut Writer) -> Result<(), XdrError> {
        match self {
            RpcbCall::Null | RpcbCall::Dump | RpcbCall::GetTime => Ok(()),
            RpcbCall::Set(e)
            | RpcbCall::Unset(e)
            | RpcbCall::GetAddr(e)
            | RpcbCall::GetVersAddr(e) => e.write(w, "args"),
        }
    }

    /// # Errors
    /// See [`RpcbCall::write_args`].
    pub fn encode_args(&self) -> Result<Vec<u8>, XdrError> {
        Ok(encode_with(false, |w| self.write_args(w))?.0)
    }

    /// Reads the arguments of procedure `proc` of version `vers`.
    ///
    /// # Errors
    /// `NoSuchVersion` unless `vers` is 3 or 4, `NoSuchProc` for a
    /// procedure not served here, `Garbage` for bad arguments.
    pub fn read(vers: u32, proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        served(vers, proc)?;
        let entry = |r: &mut Reader<'_>| Rpcb::read(r, "args");
        Ok(match proc {
            RPCBPROC_NULL => RpcbCall::Null,
            RPCBPROC_SET => RpcbCall::Set(entry(r)?),
            RPCBPROC_UNSET => RpcbCall::Unset(entry(r)?),
            RPCBPROC_GETADDR => RpcbCall::GetAddr(entry(r)?),
            RPCBPROC_DUMP => RpcbCall::Dump,
            RPCBPROC_GETTIME => RpcbCall::GetTime,
            RPCBPROC_GETVERSADDR => RpcbCall::GetVersAddr(entry(r)?),
            _ => return Err(ArgsError::NoSuchProc(proc)),
        })
    }

    /// # Errors
    /// See [`RpcbCall::read`]; bytes left over are garbage.
    pub fn decode(vers: u32, proc: u32, args: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(args, false, |r| Self::read(vers, proc, r))?.0)
    }
}

/// An rpcbind (version 3 or 4) reply's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcbResult {
    /// NULL's.
    Void,
    /// SET's and UNSET's: whether it was done.
    Bool(bool),
    /// GETADDR's and GETVERSADDR's universal address, empty when none.
    Addr(String),
    /// DUMP's `rpcblist`.
    List(Vec<Rpcb>),
    /// GETTIME's seconds since 1970.
    Time(u32),
}

impl RpcbResult {
    /// Writes the results, labelled `results`, `results[0].netid`…
    ///
    /// # Errors
    /// A string over [`MAX_RPCB_STRING`].
    pub fn write(&self, w: &mut Writer) -> Result<(), XdrError> {
        match self {
            RpcbResult::Void => Ok(()),
            RpcbResult::Bool(b) => {
                w.bool("results", *b);
                Ok(())
            }
            RpcbResult::Addr(a) => w.string("results.addr", a, MAX_RPCB_STRING),
            RpcbResult::List(l) => write_list(w, "results", l, |w, label, e| e.write(w, label)),
            RpcbResult::Time(t) => {
                w.u32("results.time", *t);
                Ok(())
            }
        }
    }

    /// # Errors
    /// See [`RpcbResult::write`].
    pub fn encode(&self) -> Result<Vec<u8>, XdrError> {
        Ok(encode_with(false, |w| self.write(w))?.0)
    }

    /// Reads the results of procedure `proc` of version `vers`.
    ///
    /// # Errors
    /// As [`RpcbCall::read`].
    pub fn read(vers: u32, proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        served(vers, proc)?;
        Ok(match proc {
            RPCBPROC_NULL => RpcbResult::Void,
            RPCBPROC_SET | RPCBPROC_UNSET => RpcbResult::Bool(r.bool("results")?),
            RPCBPROC_GETADDR | RPCBPROC_GETVERSADDR => {
                RpcbResult::Addr(r.string("results.addr", MAX_RPCB_STRING)?.to_owned())
            }
            RPCBPROC_DUMP => RpcbResult::List(read_list(r, "results", |r, l| Rpcb::read(r, l))?),
            RPCBPROC_GETTIME => RpcbResult::Time(r.u32("results.time")?),
            _ => return Err(ArgsError::NoSuchProc(proc)),
        })
    }

    /// # Errors
    /// See [`RpcbResult::read`]; bytes left over are garbage.
    pub fn decode(vers: u32, proc: u32, results: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(results, false, |r| Self::read(vers, proc, r))?.0)
    }
}
