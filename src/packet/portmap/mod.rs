//! The matchmaker: program 100000 on port 111, where RPC servers register
//! and clients ask where a program listens. Version 2 is the portmapper
//! (RFC 1833 §3): `(prog, vers, protocol) → port`. Versions 3 and 4 are
//! rpcbind (RFC 1833 §2, in [`rpcb`]): `(prog, vers, netid) → universal
//! address` ([`uaddr`](mod@uaddr)), with an owner. One rpcbind serves all three.
//!
//! Also the lab's own program, [`ipclab`], as `ipclab.x` declares it.
//! Lists (a DUMP's answer) are XDR optional-data chains (RFC 4506 §4.19):
//! TRUE and an entry, TRUE and an entry… FALSE.

pub mod ipclab;
pub mod rpcb;
pub mod uaddr;

#[cfg(test)]
mod captured;

use crate::packet::rpc::ArgsError;
use crate::packet::xdr::{decode_with, encode_with, Reader, Writer, XdrError};

pub use rpcb::{Rpcb, RpcbCall, RpcbResult};
pub use uaddr::{parse_uaddr, uaddr, Netid};

pub const PMAP_PROG: u32 = 100_000;
pub const PMAP_PORT: u16 = 111;
pub const PMAP_VERS: u32 = 2;
pub const RPCBVERS_3: u32 = 3;
pub const RPCBVERS_4: u32 = 4;

/// `mapping.prot` values: IP protocol numbers.
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

pub const PMAPPROC_NULL: u32 = 0;
pub const PMAPPROC_SET: u32 = 1;
pub const PMAPPROC_UNSET: u32 = 2;
pub const PMAPPROC_GETPORT: u32 = 3;
pub const PMAPPROC_DUMP: u32 = 4;
pub const PMAPPROC_CALLIT: u32 = 5;

/// Most bytes of arguments or results `CALLIT` forwards.
pub const MAX_CALLIT_BYTES: usize = crate::packet::rpc::record::DEFAULT_MAX_RECORD;

/// The C name of a procedure of the matchmaker's version `vers`.
pub fn proc_name(vers: u32, proc: u32) -> Option<&'static str> {
    const PMAP: [&str; 6] = [
        "PMAPPROC_NULL",
        "PMAPPROC_SET",
        "PMAPPROC_UNSET",
        "PMAPPROC_GETPORT",
        "PMAPPROC_DUMP",
        "PMAPPROC_CALLIT",
    ];
    let i = usize::try_from(proc).ok()?;
    match vers {
        PMAP_VERS => PMAP.get(i).copied(),
        RPCBVERS_3 | RPCBVERS_4 => rpcb::proc_name(vers, proc),
        _ => None,
    }
}

/// `tcp` or `udp` for a mapping's protocol.
pub fn protocol_name(prot: u32) -> Option<&'static str> {
    match prot {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        _ => None,
    }
}

/// `struct mapping`: where version `vers` of `prog` listens over `prot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub prot: u32,
    /// A u32 on the wire, though ports fit in 16 bits.
    pub port: u32,
}

impl Mapping {
    /// Writes the four words, labelled `{label}.prog`…
    pub fn write(&self, w: &mut Writer, label: &str) {
        w.u32(&format!("{label}.prog"), self.prog);
        w.u32(&format!("{label}.vers"), self.vers);
        w.u32_named(&format!("{label}.prot"), self.prot, protocol_name);
        w.u32(&format!("{label}.port"), self.port);
    }

    pub fn read(r: &mut Reader<'_>, label: &str) -> Result<Self, XdrError> {
        Ok(Mapping {
            prog: r.u32(&format!("{label}.prog"))?,
            vers: r.u32(&format!("{label}.vers"))?,
            prot: r.u32_named(&format!("{label}.prot"), protocol_name)?,
            port: r.u32(&format!("{label}.port"))?,
        })
    }

    /// The rpcbind entry rpcbind itself makes of a v2 SET: netid `tcp` or
    /// `udp`, address 0.0.0.0 and the port. `None` for other protocols
    /// or a port over 65535.
    pub fn to_rpcb(&self, owner: &str) -> Option<Rpcb> {
        let netid = match self.prot {
            IPPROTO_TCP => Netid::Tcp,
            IPPROTO_UDP => Netid::Udp,
            _ => return None,
        };
        let port = u16::try_from(self.port).ok()?;
        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        Some(Rpcb {
            prog: self.prog,
            vers: self.vers,
            netid: netid.name().to_owned(),
            addr: uaddr(addr),
            owner: owner.to_owned(),
        })
    }
}

/// Writes an optional-data list: `{label}[i] follows` (TRUE) before each
/// item, `{label} end` (FALSE) after the last.
pub(crate) fn write_list<T>(
    w: &mut Writer,
    label: &str,
    items: &[T],
    mut each: impl FnMut(&mut Writer, &str, &T) -> Result<(), XdrError>,
) -> Result<(), XdrError> {
    for (i, item) in items.iter().enumerate() {
        let item_label = format!("{label}[{i}]");
        w.bool(&format!("{item_label} follows"), true);
        each(w, &item_label, item)?;
    }
    w.bool(&format!("{label} end"), false);
    Ok(())
}

/// Reads what [`write_list`] writes. Each item takes input bytes before
/// it is stored, so the list can only be as long as what was sent.
pub(crate) fn read_list<'a, T>(
    r: &mut Reader<'a>,
    label: &str,
    mut each: impl FnMut(&mut Reader<'a>, &str) -> Result<T, XdrError>,
) -> Result<Vec<T>, XdrError> {
    let mut items = Vec::new();
    loop {
        let item_label = format!("{label}[{}]", items.len());
        if !r.bool(&format!("{item_label} follows"))? {
            // The FALSE just read was the end; relabel it as such.
            r.relabel_last(&format!("{label} end"));
            return Ok(items);
        }
        items.push(each(r, &item_label)?);
    }
}

/// `call_args` of PMAPPROC_CALLIT: run `proc` of `prog` `vers` with `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallArgs {
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    pub args: Vec<u8>,
}

/// `call_result` of PMAPPROC_CALLIT: the port that served it, its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub port: u32,
    pub res: Vec<u8>,
}

/// A portmapper (version 2) call's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmapCall {
    Null,
    Set(Mapping),
    /// Only `prog` and `vers` count: every protocol is unset.
    Unset(Mapping),
    /// `port` is ignored.
    GetPort(Mapping),
    Dump,
    CallIt(CallArgs),
}

impl PmapCall {
    pub fn proc(&self) -> u32 {
        match self {
            PmapCall::Null => PMAPPROC_NULL,
            PmapCall::Set(_) => PMAPPROC_SET,
            PmapCall::Unset(_) => PMAPPROC_UNSET,
            PmapCall::GetPort(_) => PMAPPROC_GETPORT,
            PmapCall::Dump => PMAPPROC_DUMP,
            PmapCall::CallIt(_) => PMAPPROC_CALLIT,
        }
    }

    /// Writes the arguments, labelled `args.prog`…
    ///
    /// # Errors
    /// CALLIT arguments over [`MAX_CALLIT_BYTES`].
    pub fn write_args(&self, w: &mut Writer) -> Result<(), XdrError> {
        match self {
            PmapCall::Null | PmapCall::Dump => {}
            PmapCall::Set(m) | PmapCall::Unset(m) | PmapCall::GetPort(m) => m.write(w, "args"),
            PmapCall::CallIt(c) => {
                w.u32("args.prog", c.prog);
                w.u32("args.vers", c.vers);
                w.u32("args.proc", c.proc);
                w.opaque("args.args", &c.args, MAX_CALLIT_BYTES)?;
            }
        }
        Ok(())
    }

    /// # Errors
    /// See [`PmapCall::write_args`].
    pub fn encode_args(&self) -> Result<Vec<u8>, XdrError> {
        Ok(encode_with(false, |w| self.write_args(w))?.0)
    }

    /// Reads the arguments of procedure `proc`.
    ///
    /// # Errors
    /// `NoSuchProc` for a procedure over 5, `Garbage` for bad arguments.
    pub fn read(proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        Ok(match proc {
            PMAPPROC_NULL => PmapCall::Null,
            PMAPPROC_SET => PmapCall::Set(Mapping::read(r, "args")?),
            PMAPPROC_UNSET => PmapCall::Unset(Mapping::read(r, "args")?),
            PMAPPROC_GETPORT => PmapCall::GetPort(Mapping::read(r, "args")?),
            PMAPPROC_DUMP => PmapCall::Dump,
            PMAPPROC_CALLIT => PmapCall::CallIt(CallArgs {
                prog: r.u32("args.prog")?,
                vers: r.u32("args.vers")?,
                proc: r.u32("args.proc")?,
                args: r.opaque("args.args", MAX_CALLIT_BYTES)?.to_vec(),
            }),
            _ => return Err(ArgsError::NoSuchProc(proc)),
        })
    }

    /// Decodes a call's whole argument bytes; bytes left over are garbage.
    ///
    /// # Errors
    /// See [`PmapCall::read`].
    pub fn decode(proc: u32, args: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(args, false, |r| Self::read(proc, r))?.0)
    }
}

/// A portmapper (version 2) reply's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmapResult {
    /// NULL's.
    Void,
    /// SET's and UNSET's: whether it was done.
    Bool(bool),
    /// GETPORT's: 0 when not registered.
    Port(u32),
    /// DUMP's `pmaplist`.
    List(Vec<Mapping>),
    CallIt(CallResult),
}

impl PmapResult {
    /// Writes the results, labelled `results`, `results[0].prog`…
    ///
    /// # Errors
    /// CALLIT results over [`MAX_CALLIT_BYTES`].
    pub fn write(&self, w: &mut Writer) -> Result<(), XdrError> {
        match self {
            PmapResult::Void => Ok(()),
            PmapResult::Bool(b) => {
                w.bool("results", *b);
                Ok(())
            }
            PmapResult::Port(p) => {
                w.u32("results.port", *p);
                Ok(())
            }
            PmapResult::List(maps) => write_list(w, "results", maps, |w, l, m| {
                m.write(w, l);
                Ok(())
            }),
            PmapResult::CallIt(c) => {
                w.u32("results.port", c.port);
                w.opaque("results.res", &c.res, MAX_CALLIT_BYTES)
            }
        }
    }

    /// # Errors
    /// See [`PmapResult::write`].
    pub fn encode(&self) -> Result<Vec<u8>, XdrError> {
        Ok(encode_with(false, |w| self.write(w))?.0)
    }

    /// Reads the results of procedure `proc`.
    ///
    /// # Errors
    /// `NoSuchProc` for a procedure over 5, `Garbage` for bad results.
    pub fn read(proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        Ok(match proc {
            PMAPPROC_NULL => PmapResult::Void,
            PMAPPROC_SET | PMAPPROC_UNSET => PmapResult::Bool(r.bool("results")?),
            PMAPPROC_GETPORT => PmapResult::Port(r.u32("results.port")?),
            PMAPPROC_DUMP => PmapResult::List(read_list(r, "results", |r, l| Mapping::read(r, l))?),
            PMAPPROC_CALLIT => PmapResult::CallIt(CallResult {
                port: r.u32("results.port")?,
                res: r.opaque("results.res", MAX_CALLIT_BYTES)?.to_vec(),
            }),
            _ => return Err(ArgsError::NoSuchProc(proc)),
        })
    }

    /// # Errors
    /// See [`PmapResult::read`]; bytes left over are garbage.
    pub fn decode(proc: u32, results: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(results, false, |r| Self::read(proc, r))?.0)
    }
}

/// A matchmaker call of any version, for a server that answers all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Pmap(PmapCall),
    Rpcb(RpcbCall),
}

impl Call {
    /// Reads the arguments of `proc` of version `vers`.
    ///
    /// # Errors
    /// `NoSuchVersion { low: 2, high: 4 }` for other versions, otherwise
    /// as [`PmapCall::read`] and [`RpcbCall::read`].
    pub fn read(vers: u32, proc: u32, r: &mut Reader<'_>) -> Result<Self, ArgsError> {
        match vers {
            PMAP_VERS => Ok(Call::Pmap(PmapCall::read(proc, r)?)),
            RPCBVERS_3 | RPCBVERS_4 => Ok(Call::Rpcb(RpcbCall::read(vers, proc, r)?)),
            _ => Err(ArgsError::NoSuchVersion {
                low: PMAP_VERS,
                high: RPCBVERS_4,
            }),
        }
    }

    /// # Errors
    /// See [`Call::read`]; bytes left over are garbage.
    pub fn decode(vers: u32, proc: u32, args: &[u8]) -> Result<Self, ArgsError> {
        Ok(decode_with(args, false, |r| Self::read(vers, proc, r))?.0)
    }
}

#[cfg(test)]
mod tests;
