//! `ipclab rpc server`: program 0x20000001 of `ipclab.x` — NULL, ADD (the
//! notes' remoteAdd: the server runs its local add) and INCR (adds one to
//! a counter and returns it: not idempotent, so running a retransmitted
//! copy counts twice) — over UDP and TCP on one port.
//!
//! Start: load the state file (`--state`), bind, and with `--register`
//! tell the matchmaker on 127.0.0.1: UNSET first (what a crashed earlier
//! run left would make SET fail, which is why rpcgen's `main` calls
//! `pmap_unset`), then SET per transport. Exit, Ctrl-C included: UNSET,
//! with a bounded wait that the stop signal cannot cut short.
//!
//! INCR under the chosen semantics (see `semantics`): each decision is
//! printed — executed, answered from the cache, replayed from a completion
//! record, refused, a record discarded — and with a state file the counter
//! (and for exactly-once the records) are durable before the reply leaves.
//! `--drop-requests` / `--drop-replies` drop that share of UDP datagrams on
//! purpose, from a seeded generator, each drop printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::matchmaker::pmap_call;
use super::semantics::{Caller, Decision, Drc, Records};
use super::service::{self, Answer, Endpoints, Limits, Program, Request};
use super::state::{State, StateFile};
use super::{now_secs, utc, Rng, Semantics, ServerConfig};
use crate::error::{Error, Result};
use crate::packet::portmap::ipclab::{self, IpclabCall};
use crate::packet::portmap::{self, Mapping, PmapCall, PmapResult};
use crate::packet::rpc::auth::AUTH_REJECTEDCRED;
use crate::packet::rpc::{AcceptStat, OpaqueAuth, RejectedReply, RpcMessage};
use crate::sys::poll::Lets;
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// Connections at once, and how long a silent one is kept.
const LIMITS: Limits = Limits {
    conns: 16,
    idle: Duration::from_secs(60),
};
/// The duplicate-request cache: entries, and seconds each is kept.
pub const CACHE_ENTRIES: usize = 128;
pub const CACHE_AGE: u32 = 60;
/// Exactly-once keeps the records of this many clients at most.
pub const MAX_CLIENTS: usize = 1024;

/// `ipclab rpc server`.
pub fn run(rec: &mut Recorder, cfg: &ServerConfig) -> Result<()> {
    run_with(rec, cfg, None)
}

/// What the server remembers of INCR calls.
enum Memory {
    Nothing,
    Cache(Drc),
    Records(Records),
}

struct Server {
    semantics: Semantics,
    memory: Memory,
    counter: i32,
    store: Option<StateFile>,
    rng: Rng,
    drop_requests: f64,
    drop_replies: f64,
    names: (String, String),
    executed: u64,
}

/// The server, with `notify` (the parent's pipe: `rpc demo`'s, `net
/// rpc`'s) told `ready PORT` once it serves, and its counter when it stops.
pub fn run_with(rec: &mut Recorder, cfg: &ServerConfig, notify: Option<OwnedFd>) -> Result<()> {
    let result = start_and_serve(rec, cfg, notify.as_ref());
    if let Some(n) = notify {
        let _ = file::close(rec, n);
    }
    result
}

fn start_and_serve(rec: &mut Recorder, cfg: &ServerConfig, notify: Option<&OwnedFd>) -> Result<()> {
    let (store, loaded) = match &cfg.state {
        Some(p) => {
            let (f, s) = StateFile::open(rec, p)?;
            (Some(f), s)
        }
        None => (None, None),
    };
    let start = now_secs();
    let had_state = loaded.is_some();
    let State { counter, records } = loaded.unwrap_or_default();
    if had_state {
        rec.message(format!(
            "loaded from the state file: counter {counter}, {} completion record(s)",
            records.len()
        ));
    }
    let memory = match cfg.semantics {
        Semantics::AtLeastOnce => Memory::Nothing,
        Semantics::AtMostOnce => {
            // A first start (an empty --state) has no past to forget;
            // otherwise whatever ran before this start is unknown.
            let (floor, why) = if cfg.state.is_some() && !had_state {
                (0, "nothing, a first start".to_string())
            } else {
                (
                    start,
                    format!(
                        "the server's start, {}: what ran before it is lost",
                        utc(start)
                    ),
                )
            };
            if floor > 0 {
                rec.message(format!(
                    "at-most-once: the cache starts empty, so calls stamped at or before {start} ({}) are refused — \
                     whether they ran before the restart cannot be known",
                    utc(start)
                ));
            }
            Memory::Cache(Drc::new(CACHE_ENTRIES, CACHE_AGE, floor, why))
        }
        Semantics::ExactlyOnce => Memory::Records(Records::new(records, MAX_CLIENTS)),
    };
    let mut server = Server {
        semantics: cfg.semantics,
        memory,
        counter,
        store,
        rng: Rng::new(cfg.seed),
        drop_requests: cfg.drop_requests,
        drop_replies: cfg.drop_replies,
        names: (
            format!("--drop-requests {}", cfg.drop_requests),
            format!("--drop-replies {}", cfg.drop_replies),
        ),
        executed: 0,
    };
    let result = bind_register_serve(rec, cfg, &mut server, notify);
    if let Some(n) = notify {
        let report = format!("counter {} executed {}\n", server.counter, server.executed);
        rec.note("the demo learns the final counter through its pipe");
        let _ = file::write(rec, n.as_fd(), report.as_bytes());
    }
    if let Some(s) = server.store.take() {
        let _ = s.close(rec);
    }
    result
}

fn bind_register_serve(
    rec: &mut Recorder,
    cfg: &ServerConfig,
    server: &mut Server,
    notify: Option<&OwnedFd>,
) -> Result<()> {
    let ends = service::bind(rec, SocketAddr::new(cfg.listen, cfg.port), cfg.udp, cfg.tcp)?;
    let reg = match cfg.register {
        Some(mm) => match register(rec, mm, &ends) {
            Ok(r) => Some(r),
            Err(e) => {
                service::close(rec, ends);
                return Err(e);
            }
        },
        None => None,
    };
    let transports = match (cfg.udp, cfg.tcp) {
        (true, true) => "UDP and TCP",
        (true, false) => "UDP",
        _ => "TCP",
    };
    let flag = if cfg.tcp { "--tcp" } else { "--udp" };
    let mut port_hint = if reg.is_some() {
        String::new()
    } else {
        format!(" --port {}", ends.addr.port())
    };
    let ip = ends.addr.ip();
    if !ip.is_unspecified() && ip != std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) {
        port_hint.push_str(&format!(" --server {ip}"));
    }
    if let Some(mm) = cfg
        .register
        .filter(|&p| p != crate::packet::portmap::PMAP_PORT)
    {
        port_hint.push_str(&format!(" --matchmaker-port {mm}"));
    }
    rec.message(format!(
        "ipclab program {:#x} version 1 (NULL, ADD, INCR) on {} over {transports}, {}; try: ipclab rpc call remoteAdd 10 20 {flag}{port_hint}",
        ipclab::IPCLAB_PROG,
        ends.addr,
        cfg.semantics.name()
    ));
    if let Some(n) = notify {
        rec.note(
            "the parent is told the server is ready (registered and listening), and on which port",
        );
        let ready = format!("ready {}\n", ends.addr.port());
        file::write(rec, n.as_fd(), ready.as_bytes())?;
    }
    let served = service::serve(rec, ends, server, LIMITS);
    if let Some(r) = reg {
        r.unregister(rec);
    }
    served
}

/// A registration at the matchmaker, undone on every exit.
struct Registration {
    sock: OwnedFd,
    mm: SocketAddr,
}

fn register(rec: &mut Recorder, mm_port: u16, ends: &Endpoints) -> Result<Registration> {
    let mm = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), mm_port);
    rec.note("a socket to talk to the matchmaker (portmapper v2 over UDP, which ipclab's matchmaker and rpcbind both take)");
    let sock = socket::socket(
        rec,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_UDP,
    )?;
    let reg = Registration { sock, mm };
    match reg.set(rec, ends) {
        Ok(()) => Ok(reg),
        Err(e) => {
            // A SET may have gone through before the failure (or the stop
            // signal): undo it, as on any other exit.
            reg.unregister(rec);
            Err(e)
        }
    }
}

impl Registration {
    /// One call; at start 2 tries of 1 s, at exit 1 try of 0.5 s (the
    /// whole exit must fit in the 2 s a stopping parent grants).
    fn ask(&self, rec: &mut Recorder, call: PmapCall, lets: Lets) -> Result<Option<bool>> {
        let (wait, tries) = if lets == Lets::Nothing {
            (Duration::from_millis(500), 1)
        } else {
            (Duration::from_secs(1), 2)
        };
        Ok(
            match pmap_call(rec, self.sock.as_fd(), self.mm, &call, wait, tries, lets)? {
                Some(PmapResult::Bool(b)) => Some(b),
                _ => None,
            },
        )
    }

    fn set(&self, rec: &mut Recorder, ends: &Endpoints) -> Result<()> {
        let mapping = |prot: u32| Mapping {
            prog: ipclab::IPCLAB_PROG,
            vers: ipclab::IPCLAB_VERS,
            prot,
            port: u32::from(ends.addr.port()),
        };
        rec.message("UNSET first: a registration left by a crashed earlier run would make SET fail (rpcgen's main calls pmap_unset too)");
        if self
            .ask(rec, PmapCall::Unset(mapping(0)), Lets::Stops)?
            .is_none()
        {
            return Err(Error::protocol(format!(
                "no matchmaker answers on {} (UDP): start `ipclab rpc matchmaker --port {}` (or rpcbind), or drop --register",
                self.mm,
                self.mm.port()
            )));
        }
        let mut prots = Vec::new();
        if ends.udp.is_some() {
            prots.push(portmap::IPPROTO_UDP);
        }
        if ends.tcp.is_some() {
            prots.push(portmap::IPPROTO_TCP);
        }
        for prot in prots {
            if self.ask(rec, PmapCall::Set(mapping(prot)), Lets::Stops)? != Some(true) {
                let _ = self.ask(rec, PmapCall::Unset(mapping(0)), Lets::Stops);
                return Err(Error::protocol(format!(
                    "the matchmaker on {} did not accept SET (see its answer above)",
                    self.mm
                )));
            }
        }
        rec.message(format!(
            "registered at the matchmaker on {}: clients can now find port {}",
            self.mm,
            ends.addr.port()
        ));
        Ok(())
    }

    /// UNSET, waiting at most 1 s with the stop signals held: this runs
    /// after Ctrl-C too, and a second one must not cut it short.
    fn unregister(self, rec: &mut Recorder) {
        let all = Mapping {
            prog: ipclab::IPCLAB_PROG,
            vers: ipclab::IPCLAB_VERS,
            prot: 0,
            port: 0,
        };
        rec.message("unregistering: clients must not be sent to a port nobody serves");
        match self.ask(rec, PmapCall::Unset(all), Lets::Nothing) {
            Ok(Some(_)) => {}
            _ => rec.message(format!(
                "the matchmaker on {} did not answer the UNSET: the registration may be left there",
                self.mm
            )),
        }
        let _ = file::close(rec, self.sock);
    }
}

/// Who called: `machinename/uid N` and its stamp for AUTH_SYS, else the address.
fn caller_of(req: &Request<'_>) -> Caller {
    match &req.call.cred {
        OpaqueAuth::Sys(s) => Caller {
            client: format!("{}/uid {}", s.machinename, s.uid),
            stamp: Some(s.stamp),
        },
        _ => Caller {
            client: req.peer.to_string(),
            stamp: None,
        },
    }
}

impl Server {
    fn success(&self, xid: u32, v: i32) -> Option<Answer> {
        Some(Answer::new(
            RpcMessage::success(xid, ipclab::encode_int(v)),
            v.to_string(),
        ))
    }

    fn incr(&mut self, rec: &mut Recorder, req: &Request<'_>) -> Result<Option<Answer>> {
        let caller = caller_of(req);
        let now = now_secs();
        let who = format!("{} xid {:#010x}", caller.client, req.xid);
        let decision = match &mut self.memory {
            Memory::Nothing => Decision::Execute,
            Memory::Cache(drc) => {
                for gone in drc.expire(now) {
                    rec.message(gone);
                }
                drc.check(now, &caller, req.xid)
            }
            Memory::Records(r) => r.check(&caller, req.xid),
        };
        match decision {
            Decision::Replay(v) => {
                let from = match self.memory {
                    Memory::Records(_) => "replayed from the completion record",
                    _ => "a duplicate: answered from the duplicate-request cache",
                };
                rec.message(format!(
                    "INCR {who}: {from} — result {v}, INCR does not run again"
                ));
                return Ok(self.success(req.xid, v));
            }
            Decision::Refuse(why) => {
                rec.message(format!(
                    "INCR {who}: refused, {why}; answer AUTH_ERROR AUTH_REJECTEDCRED"
                ));
                return Ok(Some(Answer::new(
                    RpcMessage::denied(req.xid, RejectedReply::AuthError(AUTH_REJECTEDCRED)),
                    None,
                )));
            }
            Decision::Execute => {}
        }
        let before = self.counter;
        self.counter = self.counter.wrapping_add(1);
        self.executed += 1;
        let memo = match self.semantics {
            Semantics::AtLeastOnce => {
                "at-least-once keeps no memory: a retransmitted copy would run again"
            }
            Semantics::AtMostOnce => "its reply is kept in the duplicate-request cache",
            Semantics::ExactlyOnce => {
                "its completion record is made durable before the reply leaves"
            }
        };
        rec.message(format!(
            "INCR {who}: executed, counter {before} → {} ({memo})",
            self.counter
        ));
        let mut state = State {
            counter: self.counter,
            records: Vec::new(),
        };
        match &mut self.memory {
            Memory::Nothing => {}
            Memory::Cache(drc) => {
                for gone in drc.insert(now, caller, req.xid, self.counter) {
                    rec.message(gone);
                }
            }
            Memory::Records(r) => {
                for note in r.complete(&caller, req.xid, self.counter) {
                    rec.message(note);
                }
                state.records = r.to_vec();
            }
        }
        if let Some(store) = &mut self.store {
            store.save(rec, &state)?;
        }
        Ok(self.success(req.xid, self.counter))
    }
}

impl Program for Server {
    fn call(&mut self, rec: &mut Recorder, req: &Request<'_>) -> Result<Option<Answer>> {
        let c = req.call;
        if c.prog != ipclab::IPCLAB_PROG {
            rec.message(format!(
                "program {} is not served here (only {} = {:#x}): PROG_UNAVAIL",
                c.prog,
                ipclab::IPCLAB_PROG,
                ipclab::IPCLAB_PROG
            ));
            return Ok(Some(Answer::new(
                RpcMessage::accepted(req.xid, AcceptStat::ProgUnavail),
                None,
            )));
        }
        match IpclabCall::decode(c.vers, c.proc, &c.args) {
            Ok(IpclabCall::Null) => {
                rec.message("NULL: nothing to run; the empty reply says the server is there");
                Ok(Some(Answer::new(
                    RpcMessage::success(req.xid, Vec::new()),
                    "void".to_string(),
                )))
            }
            Ok(IpclabCall::Add(a)) => {
                let sum = a.sum();
                rec.message(format!(
                    "ADD({}, {}): the server runs its local add (the notes' localAdd) = {sum}; idempotent, so no memory is needed",
                    a.a, a.b
                ));
                Ok(self.success(req.xid, sum))
            }
            Ok(IpclabCall::Incr) => self.incr(rec, req),
            Err(e) => {
                let stat = e.accept_stat();
                rec.message(format!(
                    "{e}: answered {}",
                    crate::packet::rpc::accept_stat_name(stat.code()).unwrap_or("?")
                ));
                Ok(Some(Answer::new(RpcMessage::accepted(req.xid, stat), None)))
            }
        }
    }

    fn drop_request(&mut self) -> bool {
        self.rng.chance(self.drop_requests)
    }

    fn drop_reply(&mut self) -> bool {
        self.rng.chance(self.drop_replies)
    }

    fn drop_names(&self) -> (String, String) {
        self.names.clone()
    }
}
