//! One rtnetlink socket of one host: each request is a `sendmsg` and the
//! kernel's answer a `recvmsg` (an NLMSG_ERROR whose error 0 is the ACK),
//! as `ip` makes them. The socket belongs to the network namespace the
//! process was in when it made it.

use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Error, Result};
use crate::packet::netlink::{self as nl, Reply};
use crate::sys::{file, netlink, raw};
use crate::trace::Recorder;

/// Big enough for any answer here: an ACK is 36 bytes, a neighbour entry
/// under 100.
const BUF: usize = 32 * 1024;

/// An open rtnetlink socket and its next sequence number.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    host: String,
}

/// What the kernel's answer says, for the recvmsg step's note.
fn explain(bytes: &[u8]) -> String {
    let replies = nl::parse(bytes);
    let mut parts = Vec::new();
    for r in &replies {
        parts.push(match r {
            Reply::Ack { seq } => {
                format!("NLMSG_ERROR with error=0 is the kernel's ACK: request {seq} is done")
            }
            Reply::Error { seq, errno } => format!(
                "the kernel refused request {seq}: {}",
                crate::render::errno::errno_text(nix::errno::Errno::from_raw(*errno))
            ),
            Reply::Done => "NLMSG_DONE: the end of the dump".into(),
            Reply::Neighbour(n) => format!(
                "{} is at {} ({})",
                n.ip.map_or("?".into(), |i| i.to_string()),
                n.mac.as_ref().map_or("no address".into(), |m| m
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")),
                n.state
            ),
            Reply::Other(t) => t.clone(),
        });
    }
    parts.join("; ")
}

impl Rtnl {
    /// `socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE)`.
    pub fn open(rec: &mut Recorder, host: &str) -> Result<Rtnl> {
        let fd = netlink::socket(rec, |fd| {
            format!("fd {fd}: an rtnetlink socket, the kernel's interface for interfaces, addresses, routes and neighbours (what `ip` uses) — of {host}'s network namespace, where this process is now")
        })?;
        Ok(Rtnl {
            fd,
            seq: 0,
            host: host.to_string(),
        })
    }

    /// Sends the request `build(seq)` makes and reads the kernel's ACK;
    /// a refusal is an error naming `what`.
    pub fn request(
        &mut self,
        rec: &mut Recorder,
        build: impl FnOnce(u32) -> Vec<u8>,
        what: &str,
    ) -> Result<()> {
        self.seq += 1;
        let seq = self.seq;
        let msg = build(seq);
        netlink::sendmsg(rec, self.fd.as_fd(), &msg, || what.to_string())?;
        let mut buf = vec![0u8; BUF];
        let n = netlink::recvmsg(rec, self.fd.as_fd(), &mut buf, explain)?;
        match nl::parse(&buf[..n]).first() {
            Some(Reply::Ack { .. }) => Ok(()),
            Some(Reply::Error { errno, .. }) => Err(Error::protocol(format!(
                "{}: the kernel refused {}: {:?} ({})",
                self.host,
                what.split(':').next().unwrap_or(what),
                nix::errno::Errno::from_raw(*errno),
                crate::render::errno::errno_text(nix::errno::Errno::from_raw(*errno))
            ))),
            _ => Err(Error::protocol(format!(
                "{}: no ACK from the kernel for request {seq}",
                self.host
            ))),
        }
    }

    /// RTM_GETNEIGH dump: every IPv4 neighbour entry, read until NLMSG_DONE.
    pub fn neighbours(&mut self, rec: &mut Recorder, what: &str) -> Result<Vec<nl::Neighbour>> {
        self.seq += 1;
        let msg = nl::dump_neighbours(self.seq);
        netlink::sendmsg(rec, self.fd.as_fd(), &msg, || what.to_string())?;
        let mut buf = vec![0u8; BUF];
        let mut found = Vec::new();
        // A dump comes in parts; bounded, as a dump of a fresh namespace is small.
        for _ in 0..16 {
            let n = netlink::recvmsg(rec, self.fd.as_fd(), &mut buf, explain)?;
            let mut done = n == 0;
            for r in nl::parse(&buf[..n]) {
                match r {
                    Reply::Neighbour(e) => found.push(e),
                    Reply::Done => done = true,
                    Reply::Error { errno, .. } => {
                        return Err(Error::protocol(format!(
                            "{}: the neighbour dump failed: {:?}",
                            self.host,
                            nix::errno::Errno::from_raw(errno)
                        )))
                    }
                    _ => {}
                }
            }
            if done {
                return Ok(found);
            }
        }
        Err(Error::protocol(format!(
            "{}: the neighbour dump did not end",
            self.host
        )))
    }

    /// The index of interface `name` in this socket's namespace
    /// (`ioctl(SIOCGIFINDEX)`, which any socket answers for its namespace).
    pub fn ifindex(&self, rec: &mut Recorder, name: &str) -> Result<u32> {
        let i = raw::ioctl_siocgifindex(rec, self.fd.as_fd(), name)?;
        Ok(i as u32)
    }

    /// Waits (up to 3 s, looking every 50 ms) until interface `name` is
    /// IFF_RUNNING: the kernel turns a carrier change into a working link
    /// a moment later (its linkwatch work, delayed up to a second), and a
    /// packet sent before that is dropped.
    pub fn await_running(&self, rec: &mut Recorder, name: &str) -> Result<()> {
        const RUNNING: u32 = 0x40;
        let host = self.host.clone();
        for _ in 0..60 {
            let flags = netlink::ioctl_siocgifflags(rec, self.fd.as_fd(), name, |f| {
                if f & RUNNING != 0 {
                    format!("{name} is IFF_RUNNING in {host}: its carrier is up and its send queue active; packets leave from now on")
                } else {
                    format!("{name} is up but not yet IFF_RUNNING: the kernel has not yet activated it (packets sent now would be dropped)")
                }
            })?;
            if flags & RUNNING != 0 {
                return Ok(());
            }
            crate::lab::wait::sleep(rec, std::time::Duration::from_millis(50))?;
        }
        Err(Error::protocol(format!(
            "{}: {name} did not become IFF_RUNNING within 3 s",
            self.host
        )))
    }

    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        rec.note("the rtnetlink socket is closed; what it configured stays, with the namespace");
        file::close(rec, self.fd)?;
        Ok(())
    }
}
