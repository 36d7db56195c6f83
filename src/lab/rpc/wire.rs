//! RPC messages on the wire: how one is shown (a decoded line, or the
//! labelled hex dump of its bytes), and how it is sent and received — a
//! UDP datagram is one message; on TCP each message is a record behind a
//! 4-byte record mark (RFC 5531 §11), put back together by a
//! [`RecordReader`] that refuses a mark over 1 MiB from its 4 bytes.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::errno::Errno;

use super::utc;
use crate::error::Result;
use crate::packet::portmap::ipclab::{self, IpclabCall};
use crate::packet::portmap::{
    self, Call as PortmapCall, PmapCall, PmapResult, RpcbCall, RpcbResult,
};
use crate::packet::rpc::record::{self, Record, RecordError, RecordReader, MAX_FRAGMENT};
use crate::packet::rpc::{
    accept_stat_name, auth_flavor_name, auth_stat_name, AcceptStat, CallBody, MessageBody,
    OpaqueAuth, RejectedReply, ReplyBody, RpcMessage,
};
use crate::packet::xdr::{self, Span, Writer, XdrError};
use crate::sys::poll::{self, Lets};
use crate::sys::socket;
use crate::trace::Recorder;

/// The name of a program this lab knows.
pub fn prog_name(prog: u32) -> Option<&'static str> {
    match prog {
        portmap::PMAP_PROG => Some("portmapper"),
        ipclab::IPCLAB_PROG => Some("ipclab"),
        _ => None,
    }
}

/// A credential or verifier for a person.
pub fn auth_text(auth: &OpaqueAuth) -> String {
    match auth {
        OpaqueAuth::None => "AUTH_NONE".to_string(),
        OpaqueAuth::Sys(s) => {
            let gids = if s.gids.is_empty() {
                String::new()
            } else {
                format!(" gids {:?}", s.gids)
            };
            format!(
                "AUTH_SYS stamp {} ({}) machinename {:?} uid {} gid {}{gids}",
                s.stamp,
                utc(s.stamp),
                s.machinename,
                s.uid,
                s.gid
            )
        }
        OpaqueAuth::Other { flavor, body } => format!(
            "{} with {} bytes",
            auth_flavor_name(*flavor).map_or_else(|| format!("flavor {flavor}"), str::to_string),
            body.len()
        ),
    }
}

fn proc_text(prog: u32, vers: u32, proc: u32) -> String {
    let name = match prog {
        portmap::PMAP_PROG => portmap::proc_name(vers, proc),
        ipclab::IPCLAB_PROG if vers == ipclab::IPCLAB_VERS => ipclab::proc_name(proc),
        _ => None,
    };
    name.map_or_else(|| format!("proc {proc}"), str::to_string)
}

fn entry_text(e: &portmap::Rpcb) -> String {
    format!(
        "prog {} vers {} netid {:?} addr {:?} owner {:?}",
        e.prog, e.vers, e.netid, e.addr, e.owner
    )
}

/// A call's procedure and arguments, decoded when the program is known:
/// `ADD(10, 20)`, `PMAPPROC_GETPORT(prog 536870913 vers 1 udp)`.
pub fn args_text(call: &CallBody) -> String {
    let name = proc_text(call.prog, call.vers, call.proc);
    let args = match call.prog {
        ipclab::IPCLAB_PROG => match IpclabCall::decode(call.vers, call.proc, &call.args) {
            Ok(IpclabCall::Add(a)) => format!("{}, {}", a.a, a.b),
            Ok(_) => String::new(),
            Err(e) => format!("undecodable: {e}"),
        },
        portmap::PMAP_PROG => match PortmapCall::decode(call.vers, call.proc, &call.args) {
            Ok(PortmapCall::Pmap(PmapCall::Set(m) | PmapCall::Unset(m) | PmapCall::GetPort(m))) => {
                format!(
                    "prog {} vers {} {} port {}",
                    m.prog,
                    m.vers,
                    portmap::protocol_name(m.prot)
                        .map_or_else(|| format!("prot {}", m.prot), str::to_string),
                    m.port
                )
            }
            Ok(PortmapCall::Pmap(PmapCall::CallIt(c))) => {
                format!("prog {} vers {} proc {}", c.prog, c.vers, c.proc)
            }
            Ok(PortmapCall::Rpcb(
                RpcbCall::Set(e)
                | RpcbCall::Unset(e)
                | RpcbCall::GetAddr(e)
                | RpcbCall::GetVersAddr(e),
            )) => entry_text(&e),
            Ok(_) => String::new(),
            Err(e) => format!("undecodable: {e}"),
        },
        _ => format!("{} bytes", call.args.len()),
    };
    format!("{name}({args})")
}

/// What a SUCCESS reply's results say, given the call they answer.
pub fn results_text(prog: u32, vers: u32, proc: u32, results: &[u8]) -> String {
    match prog {
        ipclab::IPCLAB_PROG if proc == ipclab::NULLPROC => "void".to_string(),
        ipclab::IPCLAB_PROG => match ipclab::decode_int(results) {
            Ok(v) => v.to_string(),
            Err(e) => format!("undecodable: {e}"),
        },
        portmap::PMAP_PROG if vers == portmap::PMAP_VERS => {
            match PmapResult::decode(proc, results) {
                Ok(PmapResult::Void) => "void".to_string(),
                Ok(PmapResult::Bool(b)) => bool_text(b).to_string(),
                Ok(PmapResult::Port(p)) => format!("port {p}"),
                Ok(PmapResult::List(l)) => format!("{} mappings", l.len()),
                Ok(PmapResult::CallIt(c)) => format!("port {}, {} bytes", c.port, c.res.len()),
                Err(e) => format!("undecodable: {e}"),
            }
        }
        portmap::PMAP_PROG => match RpcbResult::decode(vers, proc, results) {
            Ok(RpcbResult::Void) => "void".to_string(),
            Ok(RpcbResult::Bool(b)) => bool_text(b).to_string(),
            Ok(RpcbResult::Addr(a)) if a.is_empty() => "\"\" (not registered)".to_string(),
            Ok(RpcbResult::Addr(a)) => format!("{a:?}"),
            Ok(RpcbResult::List(l)) => format!("{} entries", l.len()),
            Ok(RpcbResult::Time(t)) => format!("{t} ({})", utc(t)),
            Err(e) => format!("undecodable: {e}"),
        },
        _ => format!("{} bytes", results.len()),
    }
}

pub fn bool_text(b: bool) -> &'static str {
    if b {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// One line for a call: `CALL xid 0x…: prog 536870913 (ipclab) vers 1
/// proc 1 ADD(10, 20); cred AUTH_SYS stamp …`.
pub fn call_line(xid: u32, call: &CallBody) -> String {
    let prog = prog_name(call.prog).map_or_else(String::new, |n| format!(" ({n})"));
    let verf = match call.verf {
        OpaqueAuth::None => String::new(),
        ref v => format!("; verf {}", auth_text(v)),
    };
    format!(
        "CALL xid {xid:#010x}: prog {}{prog} vers {} proc {} {}; cred {}{verf}",
        call.prog,
        call.vers,
        call.proc,
        args_text(call),
        auth_text(&call.cred)
    )
}

/// One line for a reply; `results` describes a SUCCESS reply's results.
pub fn reply_line(xid: u32, reply: &ReplyBody, results: Option<&str>) -> String {
    let body = match reply {
        ReplyBody::Accepted { stat, .. } => {
            let name = accept_stat_name(stat.code()).unwrap_or("?");
            match stat {
                AcceptStat::Success(r) => format!(
                    "MSG_ACCEPTED SUCCESS: {}",
                    results.map_or_else(|| format!("{} bytes", r.len()), str::to_string)
                ),
                AcceptStat::ProgMismatch { low, high } => {
                    format!("MSG_ACCEPTED {name} (versions {low} to {high})")
                }
                _ => format!("MSG_ACCEPTED {name}"),
            }
        }
        ReplyBody::Denied(RejectedReply::RpcMismatch { low, high }) => {
            format!("MSG_DENIED RPC_MISMATCH (RPC versions {low} to {high})")
        }
        ReplyBody::Denied(RejectedReply::AuthError(s)) => format!(
            "MSG_DENIED AUTH_ERROR {}",
            auth_stat_name(*s).map_or_else(|| s.to_string(), str::to_string)
        ),
    };
    format!("REPLY xid {xid:#010x}: {body}")
}

/// One line for any message.
pub fn describe(msg: &RpcMessage, results: Option<&str>) -> String {
    match &msg.body {
        MessageBody::Call(c) => call_line(msg.xid, c),
        MessageBody::Reply(r) => reply_line(msg.xid, r, results),
    }
}

/// A labelled hex dump as text, one line per XDR item:
/// `0004  5f 3a 00 01  xid = 0x5f3a0001`.
pub fn dump_text(bytes: &[u8], spans: &[Span]) -> String {
    let mut out = Vec::new();
    for l in xdr::dump(bytes, spans) {
        let value = match l.label.as_str() {
            _ if l.value.is_empty() => String::new(),
            "xid" => l
                .value
                .parse::<u32>()
                .map_or_else(|_| format!(" = {}", l.value), |v| format!(" = {v:#010x}")),
            label if label.ends_with(".stamp") => {
                let secs = l.value.parse::<u32>().unwrap_or(0);
                format!(" = {} ({}: the notes' timestamp)", l.value, utc(secs))
            }
            _ => format!(" = {}", l.value),
        };
        out.push(
            format!("{:04x}  {:<11}  {}{value}", l.offset, l.hex, l.label)
                .trim_end()
                .to_string(),
        );
    }
    out.join("\n")
}

/// The bytes of `msg` as sent (behind a record mark on TCP) and, when
/// `spans` is set, a span per field. `args` are the spans of the call's
/// arguments encoded on their own, put in place of the one `args` span.
///
/// # Errors
/// A credential over its limits.
pub fn encode(
    msg: &RpcMessage,
    tcp: bool,
    spans: bool,
    args: &[Span],
) -> std::result::Result<(Vec<u8>, Vec<Span>), XdrError> {
    let (body, mut sp) = if spans {
        msg.encode_spanned()?
    } else {
        (msg.encode()?, Vec::new())
    };
    if spans && !args.is_empty() {
        xdr::splice(&mut sp, "args", args);
    }
    if !tcp {
        return Ok((body, sp));
    }
    Ok(record::frame(&body, &sp, MAX_FRAGMENT))
}

/// The arguments of an ipclab call, encoded with their spans.
pub fn ipclab_args(call: &IpclabCall) -> (Vec<u8>, Vec<Span>) {
    let mut w = Writer::with_spans();
    call.write_args(&mut w);
    w.into_parts()
}

/// Waits until `fd` is readable or `timeout` passes, letting in what
/// `lets` says (a cleanup waits with [`Lets::Nothing`], so that the stop
/// signal that ended the run cannot cut it short). False on timeout.
pub fn wait_readable(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    timeout: Duration,
    lets: Lets,
) -> Result<bool> {
    let mut set = [poll::pollfd(fd, libc::POLLIN)];
    Ok(poll::ppoll(rec, &mut set, Some(timeout), lets)? > 0)
}

/// How sending a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Done,
    /// The peer is gone (EPIPE, ECONNRESET) or does not read its replies.
    Gone,
}

/// Sends a whole record on a connected stream socket, without SIGPIPE
/// (MSG_NOSIGNAL) and without blocking (MSG_DONTWAIT): a peer that stops
/// reading gets `stall` to make room, then is given up.
pub fn send_record(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    wire: &[u8],
    stall: Duration,
) -> Result<Sent> {
    let mut off = 0;
    while off < wire.len() {
        match socket::send(
            rec,
            fd,
            &wire[off..],
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        ) {
            Ok(n) => off += n,
            Err(e) if e.errno == Errno::EPIPE || e.errno == Errno::ECONNRESET => {
                return Ok(Sent::Gone)
            }
            Err(e) if e.errno == Errno::EAGAIN => {
                rec.waiting("the peer is not reading: waiting for room in the socket");
                if !crate::lab::wait::writable(rec, fd, Some(stall))? {
                    rec.message(format!(
                        "the peer has not read for {} s: giving up on this connection",
                        stall.as_secs_f64()
                    ));
                    return Ok(Sent::Gone);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Sent::Done)
}

/// What one read from a stream gave.
#[derive(Debug)]
pub enum Inbound {
    /// Zero or more complete records (the rest waits in the reader).
    Records(Vec<Record>),
    /// The peer closed; `mid_record` if it stopped inside a record.
    Eof { mid_record: bool },
    /// ECONNRESET.
    Reset,
    /// A record mark over the limits (after the records before it).
    Broken(Vec<Record>, RecordError),
}

/// One `recv` on a stream socket the caller knows is readable, fed to
/// `reader`. The buffer is fixed; the reader keeps at most one record.
pub fn read_stream(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    reader: &mut RecordReader,
    buf: &mut [u8],
) -> Result<Inbound> {
    let n = match socket::recv(rec, fd, buf, libc::MSG_DONTWAIT) {
        Ok(n) => n,
        Err(e) if e.errno == Errno::ECONNRESET => return Ok(Inbound::Reset),
        Err(e) if e.errno == Errno::EAGAIN => return Ok(Inbound::Records(Vec::new())),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Ok(Inbound::Eof {
            mid_record: reader.is_mid_record(),
        });
    }
    let mut input = &buf[..n];
    let mut records = Vec::new();
    while !input.is_empty() {
        match reader.push(input) {
            Ok((used, r)) => {
                input = &input[used..];
                records.extend(r);
            }
            Err(e) => return Ok(Inbound::Broken(records, e)),
        }
    }
    Ok(Inbound::Records(records))
}

/// Sends one datagram to `to`; a datagram the kernel refuses (no route,
/// full buffer, ICMP error pending) is reported, not fatal.
pub fn send_datagram(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    wire: &[u8],
    to: &SocketAddr,
) -> Result<bool> {
    match socket::sendto(rec, fd, wire, 0, Some(to)) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.errno,
                Errno::ECONNREFUSED
                    | Errno::EAGAIN
                    | Errno::ENOBUFS
                    | Errno::EHOSTUNREACH
                    | Errno::ENETUNREACH
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::portmap::ipclab::AddArgs;
    use crate::packet::rpc::AuthSys;

    fn add_call() -> RpcMessage {
        let call = IpclabCall::Add(AddArgs { a: 10, b: 20 });
        RpcMessage::call(
            0x5f3a_0001,
            ipclab::IPCLAB_PROG,
            1,
            ipclab::ADD,
            OpaqueAuth::Sys(AuthSys {
                stamp: 1_798_720_335,
                machinename: "ipclab-42".into(),
                uid: 0,
                gid: 0,
                gids: vec![],
            }),
            call.encode_args(),
        )
    }

    #[test]
    fn a_call_reads_as_one_line() {
        let line = describe(&add_call(), None);
        assert_eq!(
            line,
            "CALL xid 0x5f3a0001: prog 536870913 (ipclab) vers 1 proc 1 ADD(10, 20); cred AUTH_SYS \
             stamp 1798720335 (2026-12-31 12:32:15 UTC) machinename \"ipclab-42\" uid 0 gid 0"
        );
        let reply = RpcMessage::success(7, ipclab::encode_int(30));
        assert_eq!(
            describe(&reply, Some("30")),
            "REPLY xid 0x00000007: MSG_ACCEPTED SUCCESS: 30"
        );
        let denied = RpcMessage::denied(7, RejectedReply::AuthError(2));
        assert_eq!(
            describe(&denied, None),
            "REPLY xid 0x00000007: MSG_DENIED AUTH_ERROR AUTH_REJECTEDCRED"
        );
    }

    #[test]
    fn the_dump_labels_every_field_behind_the_record_mark() {
        let (args, arg_spans) = ipclab_args(&IpclabCall::Add(AddArgs { a: 10, b: 20 }));
        let mut msg = add_call();
        if let MessageBody::Call(c) = &mut msg.body {
            c.args = args;
        }
        let (wire, spans) = encode(&msg, true, true, &arg_spans).expect("fits");
        assert_eq!(wire.len(), 4 + 80);
        let text = dump_text(&wire, &spans);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "0000  80 00 00 50  record mark = last fragment, 80 bytes"
        );
        assert_eq!(lines[1], "0004  5f 3a 00 01  xid = 0x5f3a0001");
        assert_eq!(lines[2], "0008  00 00 00 00  msg_type = CALL");
        assert!(
            text.contains("cred.stamp = 1798720335 (2026-12-31 12:32:15 UTC"),
            "{text}"
        );
        assert!(text.contains("cred.machinename = \"ipclab-42\""), "{text}");
        assert!(text.ends_with("0050  00 00 00 14  args.b = 20"), "{text}");
        // UDP: the same message, no mark.
        let (dgram, _) = encode(&msg, false, false, &[]).expect("fits");
        assert_eq!(dgram, wire[4..]);
    }

    #[test]
    fn portmapper_arguments_and_results_are_decoded() {
        let m = portmap::Mapping {
            prog: ipclab::IPCLAB_PROG,
            vers: 1,
            prot: portmap::IPPROTO_UDP,
            port: 0,
        };
        let call = RpcMessage::call(
            1,
            portmap::PMAP_PROG,
            2,
            portmap::PMAPPROC_GETPORT,
            OpaqueAuth::None,
            PmapCall::GetPort(m).encode_args().expect("fits"),
        );
        assert!(describe(&call, None)
            .ends_with("PMAPPROC_GETPORT(prog 536870913 vers 1 udp port 0); cred AUTH_NONE"));
        let port = PmapResult::Port(40000).encode().expect("fits");
        assert_eq!(results_text(portmap::PMAP_PROG, 2, 3, &port), "port 40000");
        let addr = RpcbResult::Addr(String::new()).encode().expect("fits");
        assert_eq!(
            results_text(portmap::PMAP_PROG, 4, 3, &addr),
            "\"\" (not registered)"
        );
    }
}
