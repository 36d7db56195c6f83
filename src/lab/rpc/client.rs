//! `ipclab rpc call`: ask the matchmaker where the program listens
//! (PMAPPROC_GETPORT over UDP), marshal the call into XDR — the labelled
//! hex dump shows every field — send it, wait with a timeout, send the same
//! bytes again (same xid, same stamp: a retransmission, not a new call)
//! when no reply comes, and unmarshal the reply.
//!
//! The caller's identity is an AUTH_SYS credential: `machinename`
//! `ipclab-PID`, the effective uid and gid (asked with `geteuid` and
//! `getegid`; nothing vouches for them — AUTH_SYS is a claim), and `stamp`,
//! the second the call was first sent: the notes' timestamp, by which an
//! at-most-once server tells a retransmission from a new call.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::wire::{self, Inbound};
use super::{now_secs, CallConfig, Semantics};
use crate::error::{Error, Result};
use crate::lab::repeater::family;
use crate::lab::wait;
use crate::packet::portmap;
use crate::packet::portmap::ipclab::{self, IpclabCall};
use crate::packet::rpc::record::RecordReader;
use crate::packet::rpc::{AcceptStat, AuthSys, MessageBody, OpaqueAuth, ReplyBody, RpcMessage};
use crate::sys::{creds, file, signal, socket};
use crate::trace::Recorder;

/// Who the caller says it is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller's pid (as the recorder knows it).
    pub pid: i32,
    pub machinename: String,
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// `ipclab-PID`, and the effective uid and gid, asked of the kernel.
    pub fn ask(rec: &mut Recorder) -> Result<Identity> {
        let uid = creds::geteuid(rec, |u| {
            format!("uid {u} goes into the AUTH_SYS credential: a claim the server cannot check")
        })?;
        let gid = creds::getegid(rec, |g| format!("gid {g} too"))?;
        Ok(Identity {
            pid: rec.pid(),
            machinename: format!("ipclab-{}", rec.pid()),
            uid: uid.as_raw(),
            gid: gid.as_raw(),
        })
    }

    /// The credential of a call first sent at `stamp`.
    pub fn cred(&self, stamp: u32) -> OpaqueAuth {
        OpaqueAuth::Sys(AuthSys {
            stamp,
            machinename: self.machinename.clone(),
            uid: self.uid,
            gid: self.gid,
            gids: Vec::new(),
        })
    }
}

/// A first xid that differs between runs, as libtirpc's (pid ^ time).
/// The pid is the recorder's: asking the kernel would be a getpid call
/// that no step shows.
pub fn first_xid(pid: i32) -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ((pid as u32) << 16) ^ (t.as_secs() as u32) ^ t.subsec_micros()
}

/// When to give up on a call.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wait this long for a reply before sending again.
    pub timeout: Duration,
    /// Retransmissions at most; None: until the deadline (exactly-once).
    pub retries: Option<u32>,
    pub deadline: Duration,
}

impl Policy {
    pub fn for_semantics(
        s: Semantics,
        timeout: Duration,
        retries: u32,
        deadline: Duration,
    ) -> Self {
        Policy {
            timeout,
            retries: (s != Semantics::ExactlyOnce).then_some(retries),
            deadline,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct Called {
    pub xid: u32,
    pub stamp: u32,
    /// How many times it was sent (1 + retransmissions).
    pub sends: u32,
    /// The reply, if one came.
    pub reply: Option<ReplyBody>,
}

impl Called {
    /// The int a SUCCESS reply carries (ADD, INCR).
    pub fn int(&self) -> Option<i32> {
        match &self.reply {
            Some(ReplyBody::Accepted {
                stat: AcceptStat::Success(r),
                ..
            }) => ipclab::decode_int(r).ok(),
            _ => None,
        }
    }
}

enum Link {
    Udp(OwnedFd),
    Tcp {
        sock: Option<OwnedFd>,
        reader: RecordReader,
    },
}

/// A client of the ipclab program at one address.
pub struct Caller {
    link: Link,
    pub to: SocketAddr,
    identity: Identity,
    next_xid: u32,
    buf: Vec<u8>,
}

impl Caller {
    /// A UDP client: one socket, every call and retransmission from it.
    pub fn udp(rec: &mut Recorder, to: SocketAddr, identity: Identity) -> Result<Caller> {
        rec.note("the client's UDP socket: no connect(), each call goes out with sendto()");
        let sock = socket::socket(
            rec,
            family(&to),
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )?;
        Ok(Caller {
            link: Link::Udp(sock),
            to,
            next_xid: first_xid(identity.pid),
            identity,
            buf: vec![0u8; 65536],
        })
    }

    /// A TCP client; it connects when it first sends.
    pub fn tcp(to: SocketAddr, identity: Identity) -> Caller {
        Caller {
            link: Link::Tcp {
                sock: None,
                reader: RecordReader::new(),
            },
            to,
            next_xid: first_xid(identity.pid),
            identity,
            buf: vec![0u8; 65536],
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self.link, Link::Tcp { .. })
    }

    /// Closes the socket.
    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        match self.link {
            Link::Udp(s) | Link::Tcp { sock: Some(s), .. } => file::close(rec, s)?,
            Link::Tcp { sock: None, .. } => {}
        }
        Ok(())
    }

    /// Makes a call: send, wait, resend (same xid and stamp) per `policy`.
    /// With `dump` the bytes are shown as a labelled hex dump and each
    /// message as a decoded line; otherwise the caller reports. `on_timeout`
    /// runs after each wait that ends without a reply (the demo crashes its
    /// server there).
    pub fn call(
        &mut self,
        rec: &mut Recorder,
        call: &IpclabCall,
        policy: &Policy,
        dump: bool,
        on_timeout: &mut dyn FnMut(&mut Recorder) -> Result<()>,
    ) -> Result<Called> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let stamp = now_secs();
        let (args, arg_spans) = wire::ipclab_args(call);
        let msg = RpcMessage::call(
            xid,
            ipclab::IPCLAB_PROG,
            ipclab::IPCLAB_VERS,
            call.proc(),
            self.identity.cred(stamp),
            args,
        );
        let tcp = self.is_tcp();
        let (bytes, spans) = wire::encode(&msg, tcp, dump, &arg_spans)
            .map_err(|e| Error::protocol(format!("cannot encode the call: {e}")))?;
        if dump {
            rec.message(wire::describe(&msg, None));
            rec.message(format!(
                "the call serialised into {} bytes (XDR, RFC 4506{}), each field labelled:",
                bytes.len(),
                if tcp {
                    ", behind a TCP record mark"
                } else {
                    "; one UDP datagram"
                },
            ));
            // One message per line: a message never spans lines.
            for line in wire::dump_text(&bytes, &spans).lines() {
                rec.message(line);
            }
        }
        let start = Instant::now();
        let mut sends = 0u32;
        loop {
            if sends > 0 {
                rec.message(format!(
                    "no reply within {:.3} s: xid {xid:#010x} sent again — same xid, same stamp {stamp}: a retransmission, not a new call",
                    policy.timeout.as_secs_f64()
                ));
            }
            let sent = self.send(rec, &bytes, sends == 0, policy.retries.is_none())?;
            sends += 1;
            let reply = if sent {
                self.await_reply(rec, xid, policy.timeout)?
            } else {
                wait::sleep(rec, policy.timeout)?;
                None
            };
            if let Some(reply) = reply {
                if dump {
                    let results = match &reply {
                        ReplyBody::Accepted {
                            stat: AcceptStat::Success(r),
                            ..
                        } => Some(wire::results_text(
                            ipclab::IPCLAB_PROG,
                            ipclab::IPCLAB_VERS,
                            call.proc(),
                            r,
                        )),
                        _ => None,
                    };
                    rec.message(wire::reply_line(xid, &reply, results.as_deref()));
                }
                return Ok(Called {
                    xid,
                    stamp,
                    sends,
                    reply: Some(reply),
                });
            }
            let out_of_tries = policy.retries.is_some_and(|r| sends > r);
            if out_of_tries || start.elapsed() >= policy.deadline {
                return Ok(Called {
                    xid,
                    stamp,
                    sends,
                    reply: None,
                });
            }
            on_timeout(rec)?;
        }
    }

    /// Sends the call's bytes; false when they could not leave (no
    /// connection: the attempt counts, and the wait is a plain sleep). A
    /// refused connection ends the call at once unless `persist`
    /// (exactly-once, which waits for the server to come back).
    fn send(
        &mut self,
        rec: &mut Recorder,
        bytes: &[u8],
        first: bool,
        persist: bool,
    ) -> Result<bool> {
        let to = self.to;
        match &mut self.link {
            Link::Udp(sock) => {
                if first {
                    rec.note(format!("the call leaves as one datagram to {to}; nothing tells the client whether it arrives"));
                }
                wire::send_datagram(rec, sock.as_fd(), bytes, &to)
            }
            Link::Tcp { sock, reader } => {
                if sock.is_none() {
                    let s = socket::socket(
                        rec,
                        family(&to),
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        libc::IPPROTO_TCP,
                    )?;
                    rec.note(format!(
                        "connected to {to}: the notes' \"A sets up a TCP connection\""
                    ));
                    rec.waiting("waiting for the handshake");
                    match signal::interruptible(rec, |rec| socket::connect(rec, s.as_fd(), &to)) {
                        Ok(()) => {
                            *reader = RecordReader::new();
                            *sock = Some(s);
                        }
                        Err(e)
                            if matches!(
                                e.errno,
                                Errno::ECONNREFUSED
                                    | Errno::ETIMEDOUT
                                    | Errno::EHOSTUNREACH
                                    | Errno::ENETUNREACH
                            ) =>
                        {
                            file::close(rec, s)?;
                            if !persist {
                                return Err(Error::SysHint(
                                    e,
                                    format!(
                                        "nobody serves {to}: nothing was sent — start `ipclab rpc server`, or check --port"
                                    ),
                                ));
                            }
                            rec.message(format!(
                                "no connection to {to} ({:?}): the server is down; exactly-once tries again after the timeout",
                                e.errno
                            ));
                            return Ok(false);
                        }
                        Err(e) => {
                            let _ = file::close(rec, s);
                            return Err(e.into());
                        }
                    }
                }
                let Some(s) = sock else { return Ok(false) };
                if first {
                    rec.note(
                        "the call leaves as one record; TCP delivers it or breaks the connection",
                    );
                }
                if wire::send_record(rec, s.as_fd(), bytes, Duration::from_secs(2))?
                    == wire::Sent::Gone
                {
                    rec.message("the connection broke: the next attempt connects again");
                    if let Some(s) = sock.take() {
                        file::close(rec, s)?;
                    }
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// Waits up to `timeout` for the reply to `xid`; replies to other xids
    /// (late copies for earlier calls) are shown and skipped.
    fn await_reply(
        &mut self,
        rec: &mut Recorder,
        xid: u32,
        timeout: Duration,
    ) -> Result<Option<ReplyBody>> {
        let until = Instant::now() + timeout;
        let mut left = timeout;
        loop {
            let fd = match &self.link {
                Link::Udp(s) => s.as_fd(),
                Link::Tcp { sock: Some(s), .. } => s.as_fd(),
                Link::Tcp { sock: None, .. } => return Ok(None),
            };
            rec.waiting(format!(
                "waiting up to {:.3} s for the reply to xid {xid:#010x}",
                left.as_secs_f64()
            ));
            if !wait::readable(rec, fd, Some(left))? {
                return Ok(None);
            }
            let messages = self.receive(rec)?;
            for m in messages {
                match m.body {
                    MessageBody::Reply(r) if m.xid == xid => return Ok(Some(r)),
                    _ => rec.message(format!(
                        "skipped: {} — not the reply to xid {xid:#010x} (a late copy for an earlier call)",
                        wire::describe(&m, None)
                    )),
                }
            }
            // The rest of this attempt's wait, not a new full one.
            left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// What one read brought: whole messages (undecodable ones are shown and dropped).
    fn receive(&mut self, rec: &mut Recorder) -> Result<Vec<RpcMessage>> {
        let mut raw: Vec<Vec<u8>> = Vec::new();
        match &mut self.link {
            Link::Udp(s) => {
                match socket::recvfrom(rec, s.as_fd(), &mut self.buf, libc::MSG_DONTWAIT) {
                    Ok((n, _)) => raw.push(self.buf[..n].to_vec()),
                    Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ECONNREFUSED) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Link::Tcp { sock, reader } => {
                let Some(s) = sock.as_ref() else {
                    return Ok(Vec::new());
                };
                let inbound = wire::read_stream(rec, s.as_fd(), reader, &mut self.buf)?;
                let broken = match inbound {
                    Inbound::Records(r) => {
                        raw.extend(r.into_iter().map(|r| r.data));
                        None
                    }
                    Inbound::Eof { .. } => Some("the server closed the connection".to_string()),
                    Inbound::Reset => Some("the server reset the connection".to_string()),
                    Inbound::Broken(r, e) => {
                        raw.extend(r.into_iter().map(|r| r.data));
                        Some(format!("the server's stream broke: {e}"))
                    }
                };
                if let Some(why) = broken {
                    rec.message(format!("{why}: the next attempt connects again"));
                    if let Some(s) = sock.take() {
                        file::close(rec, s)?;
                    }
                }
            }
        }
        Ok(raw
            .iter()
            .filter_map(|b| match RpcMessage::decode(b) {
                Ok(m) => Some(m),
                Err(e) => {
                    rec.message(format!("not a reply: {e}"));
                    None
                }
            })
            .collect())
    }
}

/// `ipclab rpc call`.
pub fn run(rec: &mut Recorder, cfg: &CallConfig) -> Result<()> {
    run_with(rec, cfg, true).map(drop)
}

/// One call as `rpc call` makes it: GETPORT unless `cfg.port`, the call
/// (its bytes as a labelled hex dump if `dump`), the result line. Returns
/// the result of ADD and INCR (None for NULL's void).
pub fn run_with(rec: &mut Recorder, cfg: &CallConfig, dump: bool) -> Result<Option<i32>> {
    let identity = Identity::ask(rec)?;
    let prot = if cfg.tcp {
        portmap::IPPROTO_TCP
    } else {
        portmap::IPPROTO_UDP
    };
    let port = match cfg.port {
        Some(p) => p,
        None => {
            super::matchmaker::getport(rec, cfg.server, cfg.matchmaker_port, prot, cfg.timeout)?
        }
    };
    let to = SocketAddr::new(cfg.server, port);
    let mut caller = if cfg.tcp {
        Caller::tcp(to, identity)
    } else {
        Caller::udp(rec, to, identity)?
    };
    let policy = Policy::for_semantics(cfg.semantics, cfg.timeout, cfg.retries, cfg.deadline);
    let called = caller.call(rec, &cfg.call, &policy, dump, &mut |_| Ok(()));
    let closed = caller.close(rec);
    let called = called?;
    closed?;
    let name = match cfg.call {
        IpclabCall::Null => "NULL()".to_string(),
        IpclabCall::Add(a) => format!("ADD({}, {})", a.a, a.b),
        IpclabCall::Incr => "INCR()".to_string(),
    };
    let resent = called.sends - 1;
    let how = match (cfg.semantics, resent) {
        (Semantics::ExactlyOnce, _) => format!(
            "exactly-once: kept sending until a reply came ({} sends)",
            called.sends
        ),
        (_, 0) => "sent once".to_string(),
        (_, n) => format!("{n} retransmission(s)"),
    };
    match &called.reply {
        Some(ReplyBody::Accepted { stat: AcceptStat::Success(_), .. }) => {
            let value = match cfg.call {
                IpclabCall::Null => "void (the server is there)".to_string(),
                _ => called.int().map_or_else(|| "?".to_string(), |v| v.to_string()),
            };
            let alias = if matches!(cfg.call, IpclabCall::Add(_)) { " — the notes' remoteAdd" } else { "" };
            rec.message(format!("{name} = {value}{alias} ({how})"));
            Ok(called.int())
        }
        Some(other) => Err(Error::protocol(format!(
            "the server refused {name}: {}",
            wire::reply_line(called.xid, other, None)
        ))),
        None if cfg.semantics == Semantics::ExactlyOnce => Err(Error::protocol(format!(
            "exactly-once: no reply within the {} s deadline ({} sends); the call ran once or not at all — \
             the server's record will answer if it did",
            cfg.deadline.as_secs_f64(),
            called.sends
        ))),
        None => Err(Error::protocol(format!(
            "no reply to {name} after {} sends, {:.3} s apart: it may have run once, several times, or not at all",
            called.sends,
            cfg.timeout.as_secs_f64()
        ))),
    }
}
