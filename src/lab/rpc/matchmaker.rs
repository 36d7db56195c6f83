//! `ipclab rpc matchmaker`: the notes' matchmaker (交会服务程序) as a real
//! portmapper — program 100000, version 2 (RFC 1833 §3: `(prog, vers,
//! protocol) → port`) and rpcbind versions 3 and 4 (RFC 1833 §2: netids and
//! universal addresses), so `rpcinfo` and libtirpc's `clnt_create` work
//! against it. One process answers a UDP socket and a TCP listener on the
//! same port (111 by default) through the loop in `service`.
//!
//! Policy, as rpcbind's: only callers on loopback may SET or UNSET (the
//! refusal is a FALSE answer, printed with why); a SET of a `(prog, vers,
//! transport)` already registered is FALSE (servers UNSET first, as
//! rpcgen's `main` does); GETADDR of a wildcard address answers with the
//! address the caller reached; v4 GETADDR falls back to another version
//! of the program (so the client learns the versions from PROG_MISMATCH),
//! GETVERSADDR does not. CALLIT (forwarding a call) is not served:
//! PROC_UNAVAIL. At most [`MAX_ENTRIES`] registrations are kept.
//!
//! The callers' side is here too: [`pmap_call`] (a portmapper v2 call over
//! UDP, as libtirpc's `pmap_set`/`pmap_getport` make it), which servers
//! use to SET and UNSET, and [`getport`], which clients use to find a port.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::service::{self, Answer, Endpoints, Limits, Program, Request};
use super::{now_secs, MatchmakerConfig};
use crate::error::{Error, Result};
use crate::lab::repeater::family;
use crate::packet::portmap::{self, ipclab};
use crate::packet::portmap::{
    parse_uaddr, rpcb, uaddr, Call, Mapping, Netid, PmapCall, PmapResult, Rpcb, RpcbCall,
    RpcbResult, IPPROTO_TCP, IPPROTO_UDP, PMAP_PROG, PMAP_VERS, RPCBVERS_3, RPCBVERS_4,
};
use crate::packet::rpc::{AcceptStat, OpaqueAuth, ReplyBody, RpcMessage};
use crate::packet::xdr::XdrError;
use crate::sys::poll::Lets;
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// Registrations kept at most; a SET beyond is FALSE.
pub const MAX_ENTRIES: usize = 256;

/// How many connections the matchmaker holds at once, and for how long a silent one.
const LIMITS: Limits = Limits {
    conns: 32,
    idle: std::time::Duration::from_secs(30),
};

/// `ipclab rpc matchmaker`.
pub fn run(rec: &mut Recorder, cfg: &MatchmakerConfig) -> Result<()> {
    let ends = bind(rec, cfg.listen, cfg.port)?;
    let hint = if ends.addr.port() == crate::packet::portmap::PMAP_PORT {
        "; try `rpcinfo -p 127.0.0.1` (rpcinfo asks port 111 only)".to_string()
    } else {
        format!(
            "; servers register with `ipclab rpc server --register --matchmaker-port {}`",
            ends.addr.port()
        )
    };
    rec.message(format!(
        "matchmaker (portmapper v2, rpcbind v3 and v4) on {} over UDP and TCP{hint}",
        ends.addr
    ));
    serve(rec, ends)
}

/// Serves bound endpoints as the matchmaker until a stop signal.
pub fn serve(rec: &mut Recorder, ends: Endpoints) -> Result<()> {
    let mut mm = Matchmaker::new(ends.addr);
    service::serve(rec, ends, &mut mm, LIMITS)
}

fn port_hint(e: Error, port: u16) -> Error {
    match e {
        Error::SysHint(se, _) if se.errno == Errno::EACCES => Error::SysHint(
            se,
            format!(
                "port {port} is below 1024: binding it needs root or CAP_NET_BIND_SERVICE \
                 (sudo, or `sudo setcap cap_net_bind_service+ep ipclab`); or pick another with --port, \
                 e.g. --port 1111 (rpcinfo only asks port 111, ipclab rpc call takes --matchmaker-port)"
            ),
        ),
        other => other,
    }
}

/// The matchmaker's TCP listener and UDP socket on the same port of `ip`.
pub fn bind(rec: &mut Recorder, ip: IpAddr, port: u16) -> Result<Endpoints> {
    service::bind(rec, SocketAddr::new(ip, port), true, true).map_err(|e| port_hint(e, port))
}

/// The registrations, in rpcbind's form (netid, universal address, owner).
pub struct Matchmaker {
    entries: Vec<Rpcb>,
}

fn netid_of(req: &Request<'_>) -> &'static str {
    match (req.tcp, req.peer.is_ipv6()) {
        (true, false) => "tcp",
        (false, false) => "udp",
        (true, true) => "tcp6",
        (false, true) => "udp6",
    }
}

fn encoded(xid: u32, r: std::result::Result<Vec<u8>, XdrError>, text: String) -> Option<Answer> {
    match r {
        Ok(bytes) => Some(Answer::new(RpcMessage::success(xid, bytes), text)),
        Err(_) => Some(Answer::new(
            RpcMessage::accepted(xid, AcceptStat::SystemErr),
            None,
        )),
    }
}

impl Matchmaker {
    /// A matchmaker on `addr` that lists itself, as rpcbind does: program
    /// 100000 versions 4, 3 and 2 over TCP and UDP.
    pub fn new(addr: SocketAddr) -> Self {
        let mut entries = Vec::new();
        let (tcp, udp) = if addr.is_ipv6() {
            (Netid::Tcp6, Netid::Udp6)
        } else {
            (Netid::Tcp, Netid::Udp)
        };
        for netid in [tcp, udp] {
            for vers in [RPCBVERS_4, RPCBVERS_3, PMAP_VERS] {
                entries.push(Rpcb {
                    prog: PMAP_PROG,
                    vers,
                    netid: netid.name().to_string(),
                    addr: uaddr(addr),
                    owner: "superuser".to_string(),
                });
            }
        }
        Matchmaker { entries }
    }

    /// Whether the caller may change the table: only from loopback.
    fn may_change(&self, rec: &mut Recorder, req: &Request<'_>, what: &str) -> bool {
        if req.peer.ip().is_loopback() {
            return true;
        }
        rec.message(format!(
            "{what} refused: {} is not on loopback, and only local servers may register or unregister \
             (as rpcbind: anyone could otherwise redirect clients); the answer is FALSE",
            req.peer.ip()
        ));
        false
    }

    fn set(&mut self, rec: &mut Recorder, e: Rpcb) -> bool {
        if let Some(old) = self
            .entries
            .iter()
            .find(|o| o.prog == e.prog && o.vers == e.vers && o.netid == e.netid)
        {
            rec.message(format!(
                "SET refused: prog {} vers {} over {} is registered already at {} — the server must UNSET first \
                 (rpcgen's main does); the answer is FALSE",
                e.prog, e.vers, e.netid, old.addr
            ));
            return false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            rec.message(format!(
                "SET refused: the table is full ({MAX_ENTRIES} entries)"
            ));
            return false;
        }
        rec.message(format!(
            "registered: prog {} vers {} over {} at {} (owner {:?})",
            e.prog, e.vers, e.netid, e.addr, e.owner
        ));
        self.entries.push(e);
        true
    }

    fn unset(&mut self, rec: &mut Recorder, prog: u32, vers: u32, netid: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|o| {
            !(o.prog == prog && o.vers == vers && (netid.is_empty() || o.netid == netid))
        });
        let gone = before - self.entries.len();
        let over = if netid.is_empty() {
            "every transport".to_string()
        } else {
            netid.to_string()
        };
        rec.message(if gone > 0 {
            format!("unregistered: prog {prog} vers {vers} over {over} ({gone} entries)")
        } else {
            format!("UNSET of prog {prog} vers {vers} over {over}: nothing was registered (FALSE)")
        });
        gone > 0
    }

    /// GETADDR (`any_version`) or GETVERSADDR: the universal address of
    /// `want`, with a wildcard host replaced by the address the caller reached.
    fn lookup(&self, req: &Request<'_>, want: &Rpcb, any_version: bool) -> Option<(String, u32)> {
        let netid = if want.netid.is_empty() {
            netid_of(req)
        } else {
            want.netid.as_str()
        };
        let exact = self
            .entries
            .iter()
            .find(|e| e.prog == want.prog && e.vers == want.vers && e.netid == netid);
        let found = exact.or_else(|| {
            any_version
                .then(|| {
                    self.entries
                        .iter()
                        .find(|e| e.prog == want.prog && e.netid == netid)
                })
                .flatten()
        })?;
        let addr = match (parse_uaddr(&found.addr), req.local) {
            (Ok(a), Some(local)) if a.ip().is_unspecified() && a.is_ipv6() == local.is_ipv6() => {
                uaddr(SocketAddr::new(local.ip(), a.port()))
            }
            _ => found.addr.clone(),
        };
        Some((addr, found.vers))
    }

    fn pmap(&mut self, rec: &mut Recorder, req: &Request<'_>, c: PmapCall) -> Option<Answer> {
        let x = req.xid;
        let proc = c.proc();
        let r = match c {
            PmapCall::Null => PmapResult::Void,
            PmapCall::Set(m) => {
                let ok = self.may_change(rec, req, "SET")
                    && match m.to_rpcb("unknown") {
                        Some(e) => self.set(rec, e),
                        None => {
                            rec.message("SET refused: protocol is neither TCP (6) nor UDP (17), or the port is over 65535");
                            false
                        }
                    };
                PmapResult::Bool(ok)
            }
            PmapCall::Unset(m) => PmapResult::Bool(
                self.may_change(rec, req, "UNSET") && self.unset(rec, m.prog, m.vers, ""),
            ),
            PmapCall::GetPort(m) => {
                let port = self
                    .entries
                    .iter()
                    .filter_map(Rpcb::to_mapping)
                    .find(|e| e.prog == m.prog && e.vers == m.vers && e.prot == m.prot)
                    .map_or(0, |e| e.port);
                let proto = if m.prot == IPPROTO_TCP {
                    "tcp"
                } else if m.prot == IPPROTO_UDP {
                    "udp"
                } else {
                    "?"
                };
                rec.message(if port == 0 {
                    format!(
                        "lookup: prog {} vers {} over {proto} is not registered: port 0",
                        m.prog, m.vers
                    )
                } else {
                    format!(
                        "lookup: prog {} vers {} over {proto} listens on port {port}",
                        m.prog, m.vers
                    )
                });
                PmapResult::Port(port)
            }
            PmapCall::Dump => {
                let list: Vec<Mapping> = self.entries.iter().filter_map(Rpcb::to_mapping).collect();
                rec.message(format!(
                    "DUMP: {} mappings, as rpcinfo -p lists them:",
                    list.len()
                ));
                rec.message("   program vers proto   port");
                for m in &list {
                    let proto = crate::packet::portmap::protocol_name(m.prot).unwrap_or("?");
                    rec.message(format!(
                        "{:>10} {:>4} {:>5} {:>6}",
                        m.prog, m.vers, proto, m.port
                    ));
                }
                PmapResult::List(list)
            }
            PmapCall::CallIt(_) => {
                rec.message(
                    "CALLIT (forwarding a call to another program) is not served: PROC_UNAVAIL",
                );
                return Some(Answer::new(
                    RpcMessage::accepted(x, AcceptStat::ProcUnavail),
                    None,
                ));
            }
        };
        let bytes = r.encode();
        let text = super::wire::results_text(
            PMAP_PROG,
            PMAP_VERS,
            proc,
            bytes.as_deref().unwrap_or_default(),
        );
        encoded(x, bytes, text)
    }

    fn rpcb(
        &mut self,
        rec: &mut Recorder,
        req: &Request<'_>,
        vers: u32,
        c: RpcbCall,
    ) -> Option<Answer> {
        let proc = c.proc();
        let r = match c {
            RpcbCall::Null => RpcbResult::Void,
            RpcbCall::Set(e) => {
                RpcbResult::Bool(self.may_change(rec, req, "SET") && self.set(rec, e))
            }
            RpcbCall::Unset(e) => RpcbResult::Bool(
                self.may_change(rec, req, "UNSET") && self.unset(rec, e.prog, e.vers, &e.netid),
            ),
            RpcbCall::GetAddr(e) | RpcbCall::GetVersAddr(e) => {
                let any = proc == rpcb::RPCBPROC_GETADDR;
                let found = self.lookup(req, &e, any);
                rec.message(match &found {
                    None => format!(
                        "lookup: prog {} vers {} is not registered: \"\"",
                        e.prog, e.vers
                    ),
                    Some((a, v)) if *v == e.vers => {
                        format!("lookup: prog {} vers {} is at {a}", e.prog, e.vers)
                    }
                    Some((a, v)) => format!(
                        "lookup: prog {} vers {} is not registered, vers {v} is at {a} — GETADDR answers with \
                         another version, and the server's PROG_MISMATCH then tells the client which it has",
                        e.prog, e.vers
                    ),
                });
                RpcbResult::Addr(found.map(|(a, _)| a).unwrap_or_default())
            }
            RpcbCall::Dump => {
                rec.message(format!(
                    "DUMP: {} entries, as rpcinfo lists them:",
                    self.entries.len()
                ));
                rec.message("   program version netid     address                owner");
                // One message per entry: the renderer escapes a newline a
                // remote SET may have put in a netid, address or owner.
                for e in &self.entries {
                    rec.message(format!(
                        "{:>10} {:>5}    {:<9} {:<22} {}",
                        e.prog, e.vers, e.netid, e.addr, e.owner
                    ));
                }
                RpcbResult::List(self.entries.clone())
            }
            RpcbCall::GetTime => RpcbResult::Time(now_secs()),
        };
        let bytes = r.encode();
        let text =
            super::wire::results_text(PMAP_PROG, vers, proc, bytes.as_deref().unwrap_or_default());
        encoded(req.xid, bytes, text)
    }
}

impl Program for Matchmaker {
    fn call(&mut self, rec: &mut Recorder, req: &Request<'_>) -> Result<Option<Answer>> {
        let c = req.call;
        if c.prog != PMAP_PROG {
            rec.message(format!(
                "program {} is not served here (only 100000): PROG_UNAVAIL",
                c.prog
            ));
            return Ok(Some(Answer::new(
                RpcMessage::accepted(req.xid, AcceptStat::ProgUnavail),
                None,
            )));
        }
        match Call::decode(c.vers, c.proc, &c.args) {
            Ok(Call::Pmap(p)) => Ok(self.pmap(rec, req, p)),
            Ok(Call::Rpcb(r)) => Ok(self.rpcb(rec, req, c.vers, r)),
            Err(e) => {
                rec.message(format!(
                    "{e}: answered {}",
                    crate::packet::rpc::accept_stat_name(e.accept_stat().code()).unwrap_or("?")
                ));
                Ok(Some(Answer::new(
                    RpcMessage::accepted(req.xid, e.accept_stat()),
                    None,
                )))
            }
        }
    }
}

// ------------------------------------------------ the callers' side

/// One portmapper (version 2) call over a UDP socket `sock` to `to`,
/// sent up to `tries` times with `timeout` each; each wait lets in what
/// `lets` says. None when no reply came.
pub fn pmap_call(
    rec: &mut Recorder,
    sock: std::os::fd::BorrowedFd<'_>,
    to: SocketAddr,
    call: &PmapCall,
    timeout: Duration,
    tries: u32,
    lets: Lets,
) -> Result<Option<PmapResult>> {
    let xid = super::client::first_xid(rec.pid());
    let args = call
        .encode_args()
        .map_err(|e| Error::protocol(format!("cannot encode the call: {e}")))?;
    let msg = RpcMessage::call(
        xid,
        portmap::PMAP_PROG,
        portmap::PMAP_VERS,
        call.proc(),
        OpaqueAuth::None,
        args,
    );
    let bytes = msg
        .encode()
        .map_err(|e| Error::protocol(format!("cannot encode the call: {e}")))?;
    rec.message(format!(
        "to the matchmaker at {to}: {}",
        super::wire::describe(&msg, None)
    ));
    let mut buf = vec![0u8; 65536];
    for _ in 0..tries.max(1) {
        super::wire::send_datagram(rec, sock, &bytes, &to)?;
        let until = Instant::now() + timeout;
        let mut left = timeout;
        loop {
            if left.is_zero() {
                break;
            }
            rec.waiting(format!(
                "waiting up to {:.3} s for the matchmaker",
                left.as_secs_f64()
            ));
            if !super::wire::wait_readable(rec, sock, left, lets)? {
                break;
            }
            left = until.saturating_duration_since(Instant::now());
            let n = match socket::recvfrom(rec, sock, &mut buf, libc::MSG_DONTWAIT) {
                Ok((n, _)) => n,
                Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ECONNREFUSED) => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(reply) = RpcMessage::decode(&buf[..n]) else {
                continue;
            };
            if reply.xid != xid {
                continue;
            }
            let Some(body) = reply.as_reply() else {
                continue;
            };
            let result = match body {
                ReplyBody::Accepted {
                    stat: AcceptStat::Success(r),
                    ..
                } => PmapResult::decode(call.proc(), r).ok(),
                _ => None,
            };
            let text = match body {
                ReplyBody::Accepted {
                    stat: AcceptStat::Success(r),
                    ..
                } => Some(super::wire::results_text(
                    portmap::PMAP_PROG,
                    portmap::PMAP_VERS,
                    call.proc(),
                    r,
                )),
                _ => None,
            };
            rec.message(format!(
                "the matchmaker answers: {}",
                super::wire::reply_line(xid, body, text.as_deref())
            ));
            return Ok(result);
        }
    }
    Ok(None)
}

/// Asks the matchmaker on `server`:`mm_port` where version 1 of the
/// ipclab program listens over `prot` (GETPORT over UDP).
pub fn getport(
    rec: &mut Recorder,
    server: IpAddr,
    mm_port: u16,
    prot: u32,
    timeout: Duration,
) -> Result<u16> {
    let mm = SocketAddr::new(server, mm_port);
    let name = if prot == portmap::IPPROTO_TCP {
        "tcp"
    } else {
        "udp"
    };
    rec.note("a socket to ask the matchmaker with (UDP, as libtirpc's pmap_getport does)");
    let sock = socket::socket(
        rec,
        family(&mm),
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_UDP,
    )?;
    let m = Mapping {
        prog: ipclab::IPCLAB_PROG,
        vers: ipclab::IPCLAB_VERS,
        prot,
        port: 0,
    };
    let r = pmap_call(
        rec,
        sock.as_fd(),
        mm,
        &PmapCall::GetPort(m),
        timeout,
        3,
        Lets::Stops,
    );
    file::close(rec, sock)?;
    match r? {
        Some(PmapResult::Port(p)) if p > 0 && p <= 65535 => {
            rec.message(format!("the matchmaker says: program {} version 1 listens on port {p} ({name})", ipclab::IPCLAB_PROG));
            Ok(p as u16)
        }
        Some(_) => Err(Error::protocol(format!(
            "program {:#x} version 1 over {name} is not registered at the matchmaker on {mm}: start \
             `ipclab rpc server --register`, or give the server's --port",
            ipclab::IPCLAB_PROG
        ))),
        None => Err(Error::protocol(format!(
            "no matchmaker answered on {mm} (UDP): start `ipclab rpc matchmaker` (or rpcbind), give \
             --matchmaker-port, or give the server's --port"
        ))),
    }
}
