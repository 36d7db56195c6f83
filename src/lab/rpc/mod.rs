//! The notes' remote procedure call (§3.6.2) on the real protocol: ONC RPC
//! version 2 (RFC 5531) over UDP and TCP, with a portmapper / rpcbind
//! (RFC 1833) as the notes' matchmaker (交会服务程序).
//!
//! - `rpc matchmaker`: program 100000 on port 111 (portmapper v2, rpcbind v3
//!   and v4): servers register `(program, version, transport) → port`,
//!   clients ask. `rpcinfo` and libtirpc's `clnt_create` work against it.
//! - `rpc server`: program 0x20000001 of `ipclab.x` (NULL, ADD, INCR), with
//!   a choice of call semantics for the non-idempotent INCR: at-least-once
//!   (no memory), at-most-once (a duplicate-request cache keyed by client,
//!   xid and the client's timestamp, as the notes describe) or exactly-once
//!   (at-most-once whose completion records are made durable before the
//!   reply leaves: write, fsync, rename — RIFL's idea).
//! - `rpc call`: asks the matchmaker for the port, marshals the call (the
//!   labelled hex dump is the notes' "serialise into a byte stream" made
//!   visible), sends it, retransmits on timeout with the same xid.
//! - `rpc demo`: all of it in one command, with injected loss and a crash.
//!
//! Every socket and file call goes through `sys`, every wait is a ppoll or
//! epoll_pwait that lets the stop signals in (see `sys::signal`).

pub mod client;
pub mod demo;
pub mod matchmaker;
pub mod semantics;
pub mod server;
pub(crate) mod service;
pub mod state;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::packet::portmap::ipclab::{AddArgs, IpclabCall};

/// How a server treats a call it may already have run (INCR; NULL and ADD
/// are idempotent and simply run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// No memory: a retransmission runs the procedure again.
    AtLeastOnce,
    /// A duplicate-request cache; calls from before the server's window are refused.
    AtMostOnce,
    /// At-most-once whose completion records survive a crash.
    ExactlyOnce,
}

impl Semantics {
    pub fn name(self) -> &'static str {
        match self {
            Semantics::AtLeastOnce => "at-least-once",
            Semantics::AtMostOnce => "at-most-once",
            Semantics::ExactlyOnce => "exactly-once",
        }
    }

    pub const ALL: [Semantics; 3] = [
        Semantics::AtLeastOnce,
        Semantics::AtMostOnce,
        Semantics::ExactlyOnce,
    ];
}

/// A validated `rpc matchmaker`.
#[derive(Debug, Clone)]
pub struct MatchmakerConfig {
    pub listen: IpAddr,
    pub port: u16,
}

/// A validated `rpc server`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: IpAddr,
    pub port: u16,
    pub udp: bool,
    pub tcp: bool,
    /// Register at the matchmaker on 127.0.0.1 at this port.
    pub register: Option<u16>,
    pub semantics: Semantics,
    pub state: Option<PathBuf>,
    pub drop_requests: f64,
    pub drop_replies: f64,
    pub seed: u64,
}

/// A validated `rpc call`.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub call: IpclabCall,
    pub server: IpAddr,
    /// None: ask the matchmaker.
    pub port: Option<u16>,
    pub tcp: bool,
    /// How long to wait for a reply before sending again.
    pub timeout: Duration,
    pub retries: u32,
    pub semantics: Semantics,
    pub matchmaker_port: u16,
    /// exactly-once: keep resending until this much time has passed.
    pub deadline: Duration,
}

/// A validated `rpc demo`.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    pub loss: f64,
    pub seed: u64,
    pub calls: u32,
}

/// The seeded random numbers behind injected loss: splitmix64 (Steele,
/// Lea and Flood, "Fast splittable pseudorandom number generators", 2014),
/// enough for a lesson and the same sequence for the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 never draws, so a run without loss
    /// uses no numbers).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a fraction in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }
}

/// Seconds since 1970 (UTC), the notes' timestamp. Read from the vDSO's
/// clock: no syscall, so no step.
pub fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// A timestamp as a date: `2026-12-01 12:32:15 UTC`.
pub fn utc(secs: u32) -> String {
    let days = i64::from(secs / 86_400);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Checks a probability given as `option` (`--loss`, `--drop-replies`).
pub fn check_probability(p: f64, option: &str) -> Result<f64> {
    if !(0.0..=0.9).contains(&p) {
        return Err(Error::usage(format!(
            "{option} {p} is out of range: give a probability between 0 and 0.9 (0.3 drops about 3 in 10)"
        )));
    }
    Ok(p)
}

/// Parses an IP address (or `localhost`) given as `option`.
pub fn parse_host(value: &str, option: &str) -> Result<IpAddr> {
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    value.parse().map_err(|_| {
        Error::usage(format!(
            "{option} {value:?} is not an IP address; use e.g. 127.0.0.1, 0.0.0.0, ::1 or localhost"
        ))
    })
}

/// Parses `PROC [ARGS…]` of `rpc call`: NULL, ADD A B (alias remoteAdd,
/// the notes' name), INCR, any case.
pub fn parse_proc(name: &str, args: &[String]) -> Result<IpclabCall> {
    let want = |n: usize, usage: &str| -> Result<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{name} takes {n} argument(s), got {}: {usage}",
                args.len()
            )))
        }
    };
    let int = |s: &str| -> Result<i32> {
        s.parse().map_err(|_| {
            Error::usage(format!(
                "{s:?} is not an int; ADD takes two integers from -2147483648 to 2147483647"
            ))
        })
    };
    match name.to_ascii_lowercase().as_str() {
        "null" => {
            want(0, "`ipclab rpc call NULL`")?;
            Ok(IpclabCall::Null)
        }
        "add" | "remoteadd" => {
            want(2, "`ipclab rpc call ADD 10 20`")?;
            Ok(IpclabCall::Add(AddArgs {
                a: int(&args[0])?,
                b: int(&args[1])?,
            }))
        }
        "incr" => {
            want(0, "`ipclab rpc call INCR`")?;
            Ok(IpclabCall::Incr)
        }
        _ => Err(Error::usage(format!(
            "unknown procedure {name:?}: use NULL, ADD A B (or remoteAdd A B) or INCR, as ipclab.x declares them"
        ))),
    }
}

/// Checks a number of seconds given as `option`.
pub fn check_secs(secs: f64, option: &str, min: f64, max: f64) -> Result<Duration> {
    if !(min..=max).contains(&secs) {
        return Err(Error::usage(format!(
            "{option} {secs} is out of range: give seconds between {min} and {max}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The address on this machine a client uses to reach a socket bound to `addr`.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_repeatable_and_roughly_fair() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        // The reference value of splitmix64 seeded with 0.
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut r = Rng::new(1);
        let hits = (0..10_000).filter(|_| r.chance(0.3)).count();
        assert!((2700..3300).contains(&hits), "{hits}");
        assert!(!Rng::new(1).chance(0.0));
    }

    #[test]
    fn timestamps_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_720_335), "2026-12-31 12:32:15 UTC");
    }

    #[test]
    fn procedures_parse_in_any_case_with_their_arguments() {
        let two = ["10".to_string(), "20".to_string()];
        assert_eq!(
            parse_proc("remoteAdd", &two).expect("alias"),
            IpclabCall::Add(AddArgs { a: 10, b: 20 })
        );
        assert_eq!(parse_proc("incr", &[]).expect("incr"), IpclabCall::Incr);
        assert_eq!(parse_proc("Null", &[]).expect("null"), IpclabCall::Null);
        assert!(parse_proc("ADD", &two[..1]).is_err());
        assert!(parse_proc("ADD", &["1".into(), "x".into()]).is_err());
        assert!(parse_proc("MUL", &[]).is_err());
        assert_eq!(parse_proc("nope", &[]).expect_err("unknown").exit_code(), 2);
    }
}
