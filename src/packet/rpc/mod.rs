//! ONC RPC version 2 messages (RFC 5531 §9): a CALL names a program, a
//! version and a procedure and carries a credential, a verifier and the
//! arguments; a REPLY is accepted (with an `accept_stat`) or denied (with
//! a `reject_stat`). [`record`] frames messages on a byte stream (§11).
//!
//! Hand-written on our XDR module rather than a crate: `onc-rpc` (0.3)
//! reads single-fragment messages only and has no streaming reader;
//! `xdr-codec` (0.4.4, edition 2015 on error-chain 0.10) marks records only
//! as blocking `io` filters with no size limit; `serde-xdr` and `xdr` know
//! no RPC. None labels fields for the lab's hex dump, and the part of RFC
//! 5531 the lab needs is a few hundred lines, tested against libtirpc.

pub mod auth;
#[cfg(test)]
pub(crate) mod captured;
pub mod record;

use std::fmt;

use crate::packet::xdr::{Reader, Span, Writer, XdrError};

pub use auth::{auth_flavor_name, auth_stat_name, AuthSys, OpaqueAuth};

/// The only `rpcvers` there is.
pub const RPC_VERSION: u32 = 2;

pub const CALL: u32 = 0;
pub const REPLY: u32 = 1;

pub const MSG_ACCEPTED: u32 = 0;
pub const MSG_DENIED: u32 = 1;

pub const SUCCESS: u32 = 0;
pub const PROG_UNAVAIL: u32 = 1;
pub const PROG_MISMATCH: u32 = 2;
pub const PROC_UNAVAIL: u32 = 3;
pub const GARBAGE_ARGS: u32 = 4;
pub const SYSTEM_ERR: u32 = 5;

pub const RPC_MISMATCH: u32 = 0;
pub const AUTH_ERROR: u32 = 1;

fn name_of(names: &'static [&'static str], v: u32) -> Option<&'static str> {
    names.get(usize::try_from(v).ok()?).copied()
}

/// The C name of a `msg_type`.
pub fn msg_type_name(v: u32) -> Option<&'static str> {
    name_of(&["CALL", "REPLY"], v)
}

/// The C name of a `reply_stat`.
pub fn reply_stat_name(v: u32) -> Option<&'static str> {
    name_of(&["MSG_ACCEPTED", "MSG_DENIED"], v)
}

/// The C name of an `accept_stat`.
pub fn accept_stat_name(v: u32) -> Option<&'static str> {
    name_of(
        &[
            "SUCCESS",
            "PROG_UNAVAIL",
            "PROG_MISMATCH",
            "PROC_UNAVAIL",
            "GARBAGE_ARGS",
            "SYSTEM_ERR",
        ],
        v,
    )
}

/// The C name of a `reject_stat`.
pub fn reject_stat_name(v: u32) -> Option<&'static str> {
    name_of(&["RPC_MISMATCH", "AUTH_ERROR"], v)
}

/// One RPC message: a transaction id and a call or a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMessage {
    pub xid: u32,
    pub body: MessageBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    Call(CallBody),
    Reply(ReplyBody),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBody {
    /// Always [`RPC_VERSION`] once decoded: other values are a [`DecodeError`].
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    pub cred: OpaqueAuth,
    pub verf: OpaqueAuth,
    /// The procedure's arguments, still XDR: only the program knows them.
    pub args: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Accepted { verf: OpaqueAuth, stat: AcceptStat },
    Denied(RejectedReply),
}

/// How an accepted call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptStat {
    /// The procedure ran; its results, still XDR.
    Success(Vec<u8>),
    ProgUnavail,
    /// The versions of the program this server has.
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

impl AcceptStat {
    pub fn code(&self) -> u32 {
        match self {
            AcceptStat::Success(_) => SUCCESS,
            AcceptStat::ProgUnavail => PROG_UNAVAIL,
            AcceptStat::ProgMismatch { .. } => PROG_MISMATCH,
            AcceptStat::ProcUnavail => PROC_UNAVAIL,
            AcceptStat::GarbageArgs => GARBAGE_ARGS,
            AcceptStat::SystemErr => SYSTEM_ERR,
        }
    }
}

/// Why a call was refused before the program saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectedReply {
    /// The RPC versions this server speaks (2 and 2).
    RpcMismatch { low: u32, high: u32 },
    /// An `auth_stat` such as [`auth::AUTH_BADCRED`].
    AuthError(u32),
}

impl RejectedReply {
    pub fn code(&self) -> u32 {
        match self {
            RejectedReply::RpcMismatch { .. } => RPC_MISMATCH,
            RejectedReply::AuthError(_) => AUTH_ERROR,
        }
    }
}

impl RpcMessage {
    /// A call with an AUTH_NONE verifier, as every client sends.
    pub fn call(
        xid: u32,
        prog: u32,
        vers: u32,
        proc: u32,
        cred: OpaqueAuth,
        args: Vec<u8>,
    ) -> Self {
        RpcMessage {
            xid,
            body: MessageBody::Call(CallBody {
                rpcvers: RPC_VERSION,
                prog,
                vers,
                proc,
                cred,
                verf: OpaqueAuth::None,
                args,
            }),
        }
    }

    /// An accepted reply with an AUTH_NONE verifier.
    pub fn accepted(xid: u32, stat: AcceptStat) -> Self {
        RpcMessage {
            xid,
            body: MessageBody::Reply(ReplyBody::Accepted {
                verf: OpaqueAuth::None,
                stat,
            }),
        }
    }

    /// A SUCCESS reply carrying `results`.
    pub fn success(xid: u32, results: Vec<u8>) -> Self {
        Self::accepted(xid, AcceptStat::Success(results))
    }

    pub fn denied(xid: u32, why: RejectedReply) -> Self {
        RpcMessage {
            xid,
            body: MessageBody::Reply(ReplyBody::Denied(why)),
        }
    }

    pub fn as_call(&self) -> Option<&CallBody> {
        match &self.body {
            MessageBody::Call(c) => Some(c),
            MessageBody::Reply(_) => None,
        }
    }

    pub fn as_reply(&self) -> Option<&ReplyBody> {
        match &self.body {
            MessageBody::Reply(r) => Some(r),
            MessageBody::Call(_) => None,
        }
    }

    /// Writes the message, labelling each field (`xid`, `msg_type`,
    /// `cred.uid`, `args`…) when `w` records spans.
    ///
    /// # Errors
    /// A credential or verifier over its limits.
    pub fn write(&self, w: &mut Writer) -> Result<(), XdrError> {
        w.u32("xid", self.xid);
        match &self.body {
            MessageBody::Call(c) => {
                w.u32_named("msg_type", CALL, msg_type_name);
                w.u32("rpcvers", c.rpcvers);
                w.u32("prog", c.prog);
                w.u32("vers", c.vers);
                w.u32("proc", c.proc);
                c.cred.write(w, "cred")?;
                c.verf.write(w, "verf")?;
                w.raw("args", &c.args);
            }
            MessageBody::Reply(r) => {
                w.u32_named("msg_type", REPLY, msg_type_name);
                match r {
                    ReplyBody::Accepted { verf, stat } => {
                        w.u32_named("reply_stat", MSG_ACCEPTED, reply_stat_name);
                        verf.write(w, "verf")?;
                        w.u32_named("accept_stat", stat.code(), accept_stat_name);
                        match stat {
                            AcceptStat::Success(results) => w.raw("results", results),
                            AcceptStat::ProgMismatch { low, high } => {
                                w.u32("mismatch.low", *low);
                                w.u32("mismatch.high", *high);
                            }
                            _ => {}
                        }
                    }
                    ReplyBody::Denied(why) => {
                        w.u32_named("reply_stat", MSG_DENIED, reply_stat_name);
                        w.u32_named("reject_stat", why.code(), reject_stat_name);
                        match why {
                            RejectedReply::RpcMismatch { low, high } => {
                                w.u32("mismatch.low", *low);
                                w.u32("mismatch.high", *high);
                            }
                            RejectedReply::AuthError(stat) => {
                                w.u32_named("auth_stat", *stat, auth_stat_name);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The message's bytes (without a record mark).
    ///
    /// # Errors
    /// See [`RpcMessage::write`].
    pub fn encode(&self) -> Result<Vec<u8>, XdrError> {
        let mut w = Writer::new();
        self.write(&mut w)?;
        Ok(w.into_bytes())
    }

    /// The message's bytes and a span per field.
    ///
    /// # Errors
    /// See [`RpcMessage::write`].
    pub fn encode_spanned(&self) -> Result<(Vec<u8>, Vec<Span>), XdrError> {
        let mut w = Writer::with_spans();
        self.write(&mut w)?;
        Ok(w.into_parts())
    }

    /// Reads a whole message: a call's arguments and a SUCCESS reply's
    /// results are what is left; any other reply must end where its
    /// fields do.
    ///
    /// # Errors
    /// A [`DecodeError`] that says how far the message could be read,
    /// and so what a server may answer.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let xid = r.u32("xid").map_err(DecodeError::Header)?;
        let msg_type = r
            .enumeration("msg_type", msg_type_name)
            .map_err(DecodeError::Header)?;
        let body = |err| DecodeError::Body { xid, err };
        if msg_type == CALL {
            let rpcvers = r.u32("rpcvers").map_err(body)?;
            if rpcvers != RPC_VERSION {
                return Err(DecodeError::RpcVersion { xid, rpcvers });
            }
            let prog = r.u32("prog").map_err(body)?;
            let vers = r.u32("vers").map_err(body)?;
            let proc = r.u32("proc").map_err(body)?;
            let cred =
                OpaqueAuth::read(r, "cred").map_err(|err| DecodeError::BadCred { xid, err })?;
            let verf =
                OpaqueAuth::read(r, "verf").map_err(|err| DecodeError::BadVerf { xid, err })?;
            let args = r.rest("args").to_vec();
            return Ok(RpcMessage {
                xid,
                body: MessageBody::Call(CallBody {
                    rpcvers,
                    prog,
                    vers,
                    proc,
                    cred,
                    verf,
                    args,
                }),
            });
        }
        let reply = Self::read_reply(r).map_err(body)?;
        if !matches!(
            reply,
            ReplyBody::Accepted {
                stat: AcceptStat::Success(_),
                ..
            }
        ) {
            r.check_end().map_err(body)?;
        }
        Ok(RpcMessage {
            xid,
            body: MessageBody::Reply(reply),
        })
    }

    fn read_reply(r: &mut Reader<'_>) -> Result<ReplyBody, XdrError> {
        let mismatch = |r: &mut Reader<'_>| -> Result<(u32, u32), XdrError> {
            Ok((r.u32("mismatch.low")?, r.u32("mismatch.high")?))
        };
        if r.enumeration("reply_stat", reply_stat_name)? == MSG_ACCEPTED {
            let verf = OpaqueAuth::read(r, "verf")?;
            let stat = match r.enumeration("accept_stat", accept_stat_name)? {
                SUCCESS => AcceptStat::Success(r.rest("results").to_vec()),
                PROG_UNAVAIL => AcceptStat::ProgUnavail,
                PROG_MISMATCH => {
                    let (low, high) = mismatch(r)?;
                    AcceptStat::ProgMismatch { low, high }
                }
                PROC_UNAVAIL => AcceptStat::ProcUnavail,
                GARBAGE_ARGS => AcceptStat::GarbageArgs,
                _ => AcceptStat::SystemErr,
            };
            return Ok(ReplyBody::Accepted { verf, stat });
        }
        Ok(ReplyBody::Denied(
            if r.enumeration("reject_stat", reject_stat_name)? == RPC_MISMATCH {
                let (low, high) = mismatch(r)?;
                RejectedReply::RpcMismatch { low, high }
            } else {
                RejectedReply::AuthError(r.enumeration("auth_stat", auth_stat_name)?)
            },
        ))
    }

    /// Decodes a whole message (a reassembled record, a UDP datagram).
    ///
    /// # Errors
    /// See [`RpcMessage::read`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::read(&mut Reader::new(bytes))
    }

    /// Decodes a whole message and returns a span per field.
    ///
    /// # Errors
    /// See [`RpcMessage::read`].
    pub fn decode_spanned(bytes: &[u8]) -> Result<(Self, Vec<Span>), DecodeError> {
        let mut r = Reader::with_spans(bytes);
        let m = Self::read(&mut r)?;
        Ok((m, r.into_spans()))
    }
}

/// A message that could not be read, and how far it got: enough for a
/// server to pick its answer (RFC 5531 §9) or to drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// No xid or message type: nothing to answer; on TCP, close.
    Header(XdrError),
    /// A call for another RPC version: answer RPC_MISMATCH {2, 2}.
    RpcVersion { xid: u32, rpcvers: u32 },
    /// A call whose credential is malformed: answer AUTH_ERROR AUTH_BADCRED.
    BadCred { xid: u32, err: XdrError },
    /// A call whose verifier is malformed: answer AUTH_ERROR AUTH_BADVERF.
    BadVerf { xid: u32, err: XdrError },
    /// A call cut short before its credential, or a malformed reply:
    /// nothing sensible to answer.
    Body { xid: u32, err: XdrError },
}

impl DecodeError {
    pub fn xid(&self) -> Option<u32> {
        match self {
            DecodeError::Header(_) => None,
            DecodeError::RpcVersion { xid, .. }
            | DecodeError::BadCred { xid, .. }
            | DecodeError::BadVerf { xid, .. }
            | DecodeError::Body { xid, .. } => Some(*xid),
        }
    }

    /// The reply RFC 5531 prescribes for this error, if any.
    pub fn reply(&self) -> Option<RpcMessage> {
        let why = match self {
            DecodeError::RpcVersion { .. } => RejectedReply::RpcMismatch {
                low: RPC_VERSION,
                high: RPC_VERSION,
            },
            DecodeError::BadCred { .. } => RejectedReply::AuthError(auth::AUTH_BADCRED),
            DecodeError::BadVerf { .. } => RejectedReply::AuthError(auth::AUTH_BADVERF),
            DecodeError::Header(_) | DecodeError::Body { .. } => return None,
        };
        Some(RpcMessage::denied(self.xid()?, why))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Header(e) => write!(f, "not an RPC message: {e}"),
            DecodeError::RpcVersion { xid, rpcvers } => {
                write!(f, "xid {xid:#x}: RPC version {rpcvers}, not 2")
            }
            DecodeError::BadCred { xid, err } => write!(f, "xid {xid:#x}: bad credential: {err}"),
            DecodeError::BadVerf { xid, err } => write!(f, "xid {xid:#x}: bad verifier: {err}"),
            DecodeError::Body { xid, err } => write!(f, "xid {xid:#x}: {err}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a server cannot run a call it decoded: a program's argument
/// decoders (`portmap`, `ipclab`) return it, and it maps to the
/// `accept_stat` of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// The program has not this version; it has `low` to `high`.
    NoSuchVersion { low: u32, high: u32 },
    /// The version has no such procedure (or this lab does not serve it).
    NoSuchProc(u32),
    /// The arguments do not decode.
    Garbage(XdrError),
}

impl ArgsError {
    /// The answer: PROG_MISMATCH, PROC_UNAVAIL or GARBAGE_ARGS.
    pub fn accept_stat(&self) -> AcceptStat {
        match self {
            ArgsError::NoSuchVersion { low, high } => AcceptStat::ProgMismatch {
                low: *low,
                high: *high,
            },
            ArgsError::NoSuchProc(_) => AcceptStat::ProcUnavail,
            ArgsError::Garbage(_) => AcceptStat::GarbageArgs,
        }
    }
}

impl From<XdrError> for ArgsError {
    fn from(e: XdrError) -> Self {
        ArgsError::Garbage(e)
    }
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::NoSuchVersion { low, high } => {
                write!(f, "no such version (versions {low} to {high})")
            }
            ArgsError::NoSuchProc(p) => write!(f, "no procedure {p}"),
            ArgsError::Garbage(e) => write!(f, "bad arguments: {e}"),
        }
    }
}

impl std::error::Error for ArgsError {}

#[cfg(test)]
mod tests;
