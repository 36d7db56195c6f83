//! The RPC lab (issue 9): the notes' remoteAdd, the matchmaker, the three
//! call semantics, and a server that survives whatever a peer sends. The
//! bytes on the wire are built here by hand (XDR is all big-endian words),
//! independently of ipclab's codec. The interoperability tests with
//! rpcinfo, rpcgen-built C programs and rpcbind are in `rpc_interop`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tcp::parse_sockaddr;
use crate::util::{ipclab, run, wait_exit};

const LIMIT: Duration = Duration::from_secs(30);
pub const PROG: u32 = 0x2000_0001;

// ------------------------------------------------------------------ bytes

pub fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// An AUTH_SYS credential: flavor, length, stamp, machinename, uid, gid, no gids.
pub fn auth_sys(stamp: u32, name: &str) -> Vec<u8> {
    let mut body = words(&[stamp, name.len() as u32]);
    body.extend_from_slice(name.as_bytes());
    body.resize(body.len().div_ceil(4) * 4, 0);
    body.extend(words(&[0, 0, 0]));
    let mut c = words(&[1, body.len() as u32]);
    c.extend(body);
    c
}

pub const AUTH_NONE: [u8; 8] = [0; 8];

/// A CALL: xid, CALL, rpcvers, prog, vers, proc, cred, AUTH_NONE verifier, args.
pub fn call(
    xid: u32,
    rpcvers: u32,
    prog: u32,
    vers: u32,
    proc: u32,
    cred: &[u8],
    args: &[u8],
) -> Vec<u8> {
    let mut m = words(&[xid, 0, rpcvers, prog, vers, proc]);
    m.extend_from_slice(cred);
    m.extend_from_slice(&AUTH_NONE);
    m.extend_from_slice(args);
    m
}

/// The message behind a last-fragment record mark.
pub fn record(m: &[u8]) -> Vec<u8> {
    let mut r = words(&[0x8000_0000 | m.len() as u32]);
    r.extend_from_slice(m);
    r
}

/// A reply, as words.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// accept_stat and what follows it.
    Accepted(u32, Vec<u32>),
    /// reject_stat and what follows it.
    Denied(u32, Vec<u32>),
}

pub fn parse_reply(b: &[u8], xid: u32) -> Reply {
    let w: Vec<u32> = b
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(w[0], xid, "reply xid");
    assert_eq!(w[1], 1, "a REPLY");
    if w[2] == 0 {
        // verifier flavor and length (0), then accept_stat.
        Reply::Accepted(w[5], w[6..].to_vec())
    } else {
        Reply::Denied(w[3], w[4..].to_vec())
    }
}

/// Sends one datagram and waits at most `wait` for one back.
pub fn udp_ask(to: SocketAddr, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.send_to(msg, to).expect("send");
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// Reads one record (single fragment) from a stream, at most 5 s.
pub fn read_record(s: &mut TcpStream) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).ok()?;
    let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// Whether the server closed the stream within 5 s (EOF or reset).
pub fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// ADD(a, b) answered with its int.
pub fn add_over_udp(to: SocketAddr, xid: u32, a: i32, b: i32) -> Option<i32> {
    let m = call(
        xid,
        2,
        PROG,
        1,
        1,
        &AUTH_NONE,
        &words(&[a as u32, b as u32]),
    );
    let r = udp_ask(to, &m, Duration::from_secs(2))?;
    match parse_reply(&r, xid) {
        Reply::Accepted(0, v) => Some(v[0] as i32),
        other => panic!("ADD: {other:?}"),
    }
}

/// The portmapper's DUMP over UDP: (prog, vers, prot, port) of each mapping.
pub fn pmap_dump(mm: SocketAddr) -> Vec<[u32; 4]> {
    let m = call(0x4242, 2, 100_000, 2, 4, &AUTH_NONE, &[]);
    let r = udp_ask(mm, &m, Duration::from_secs(2)).expect("a DUMP reply");
    let Reply::Accepted(0, w) = parse_reply(&r, 0x4242) else {
        panic!("DUMP refused")
    };
    let mut out = Vec::new();
    let mut i = 0;
    while w[i] == 1 {
        out.push([w[i + 1], w[i + 2], w[i + 3], w[i + 4]]);
        i += 5;
    }
    out
}

// ------------------------------------------------------------ background

/// A background `ipclab --format json ARGS` (a server, a matchmaker) whose
/// address is read from its first getsockname step; killed when dropped.
pub struct Bg {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Bg {
    pub fn start(args: &[&str]) -> Bg {
        Self::start_cmd(ipclab().args(["--format", "json"]).args(args))
    }

    pub fn start_cmd(cmd: &mut Command) -> Bg {
        /// Kills the child if the start fails (a panic below), so no server outlives the test.
        struct Guard(Option<Child>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(c) = &mut self.0 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        let mut guard = Guard(Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ipclab"),
        ));
        let out = guard
            .0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        // The port the kernel picked (getsockname), or the one asked for
        // (bind), or, with --quiet, the address its first message names.
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no address within 10 s: {seen:?}"));
            seen.push(line.clone());
            let v: Value = serde_json::from_str(&line).expect("JSON");
            let sa = v["args"][1].as_str().unwrap_or("");
            if v["syscall"] == "getsockname" || (v["syscall"] == "bind" && !sa.contains("htons(0)"))
            {
                break parse_sockaddr(sa);
            }
            if let Some(rest) = v["text"].as_str().and_then(|t| t.split(" on ").nth(1)) {
                if let Ok(a) = rest.split_whitespace().next().unwrap_or("").parse() {
                    break a;
                }
            }
        };
        Bg {
            child: guard.0.take().expect("still running"),
            addr,
            lines: rx,
            seen,
        }
    }

    /// Waits (at most `limit`) until a message containing `text` is printed.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        if self.seen.iter().any(|l| l.contains(text)) {
            return true;
        }
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let hit = l.contains(text);
            self.seen.push(l);
            if hit {
                return true;
            }
        }
        false
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, at most 10 s for the exit; the exit code, every event, stderr.
    pub fn stop(mut self) -> (Option<i32>, Vec<Value>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_exit(&mut self.child, Duration::from_secs(10), "after SIGTERM");
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let events = self
            .seen
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        (status.code(), events, err)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn messages(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "message")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

pub fn server(extra: &[&str]) -> Bg {
    let mut args = vec!["rpc", "server", "--listen", "127.0.0.1"];
    args.extend_from_slice(extra);
    Bg::start(&args)
}

// ------------------------------------------------------------------ tests

#[test]
fn remote_add_over_tcp_prints_30_and_every_labelled_byte() {
    let srv = server(&[]);
    let port = srv.addr.port().to_string();
    let r = run(
        &[
            "--format",
            "json",
            "rpc",
            "call",
            "remoteAdd",
            "10",
            "20",
            "--port",
            &port,
        ],
        LIMIT,
    );
    r.assert_ok();
    let msgs = r.messages();
    assert!(
        msgs.iter().any(|m| m.starts_with("ADD(10, 20) = 30")),
        "{msgs:?}"
    );
    // The dump: the heading, then one message per labelled field.
    let head = msgs
        .iter()
        .position(|m| m.contains("each field labelled"))
        .expect("the hex dump");
    let dump = msgs[head..].join("\n");
    for label in [
        "record mark = last fragment, 80 bytes",
        "xid = 0x",
        "msg_type = CALL",
        "rpcvers = 2",
        "prog = 536870913",
        "vers = 1",
        "proc = 1",
        "cred.flavor = AUTH_SYS",
        "cred.stamp = ",
        "cred.machinename = \"ipclab-",
        "cred.uid = ",
        "cred.gid = ",
        "cred.gids count = 0",
        "verf.flavor = AUTH_NONE",
        "004c  00 00 00 0a  args.a = 10",
        "args.b = 20",
    ] {
        assert!(dump.contains(label), "{label:?} missing from\n{dump}");
    }
    // The steps: connect, one send of 84 bytes, the reply read.
    let steps = r.lab_steps();
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "connect" && s["ret"] == 0));
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "sendto" && s["ret"] == 84));
    let (code, _, _) = srv.stop();
    assert_eq!(code, Some(143));
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for args in [
        &["rpc", "call", "MUL", "1", "2"][..],
        &["rpc", "call", "ADD", "1"],
        &["rpc", "call", "ADD", "1", "x"],
        &["rpc", "server", "--semantics", "exactly-once"],
        &["rpc", "server", "--tcp", "--drop-replies", "0.5"],
        &["rpc", "demo", "--loss", "2"],
        &["rpc", "matchmaker", "--listen", "nowhere"],
        &["rpc", "call", "NULL", "--timeout", "0"],
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: nothing runs: {}", r.stdout);
    }
}

#[test]
fn malformed_calls_get_the_rfc_answers_over_udp_and_the_server_keeps_serving() {
    let srv = server(&["--semantics", "at-most-once"]);
    let to = srv.addr;
    let wait = Duration::from_secs(2);
    // Garbage: no xid to answer to.
    assert_eq!(
        udp_ask(to, b"hello, server", Duration::from_millis(300)),
        None
    );
    assert_eq!(udp_ask(to, &[0, 0], Duration::from_millis(300)), None);
    let cases: Vec<(Vec<u8>, u32, Reply)> = vec![
        // RPC version 3: RPC_MISMATCH, versions 2 to 2.
        (
            call(11, 3, PROG, 1, 1, &AUTH_NONE, &[]),
            11,
            Reply::Denied(0, vec![2, 2]),
        ),
        // Another program: PROG_UNAVAIL.
        (
            call(12, 2, 0x2000_0099, 1, 0, &AUTH_NONE, &[]),
            12,
            Reply::Accepted(1, vec![]),
        ),
        // Version 2 of ours: PROG_MISMATCH 1..1.
        (
            call(13, 2, PROG, 2, 0, &AUTH_NONE, &[]),
            13,
            Reply::Accepted(2, vec![1, 1]),
        ),
        // Procedure 9: PROC_UNAVAIL.
        (
            call(14, 2, PROG, 1, 9, &AUTH_NONE, &[]),
            14,
            Reply::Accepted(3, vec![]),
        ),
        // ADD with one int of two: GARBAGE_ARGS.
        (
            call(15, 2, PROG, 1, 1, &AUTH_NONE, &words(&[7])),
            15,
            Reply::Accepted(4, vec![]),
        ),
        // Flavor 99: AUTH_ERROR AUTH_REJECTEDCRED (libtirpc's answer).
        (
            call(16, 2, PROG, 1, 0, &words(&[99, 4, 0x61626364]), &[]),
            16,
            Reply::Denied(1, vec![2]),
        ),
        // RPCSEC_GSS: the same.
        (
            call(17, 2, PROG, 1, 0, &words(&[6, 0]), &[]),
            17,
            Reply::Denied(1, vec![2]),
        ),
        // An AUTH_SYS body cut short: AUTH_BADCRED.
        (
            call(18, 2, PROG, 1, 0, &words(&[1, 4, 5]), &[]),
            18,
            Reply::Denied(1, vec![1]),
        ),
    ];
    for (msg, xid, want) in cases {
        let r = udp_ask(to, &msg, wait).unwrap_or_else(|| panic!("no answer to xid {xid}"));
        assert_eq!(parse_reply(&r, xid), want, "xid {xid}");
    }
    // A REPLY sent to the server is ignored.
    assert_eq!(
        udp_ask(to, &words(&[5, 1, 0, 0, 0, 0]), Duration::from_millis(300)),
        None
    );
    assert_eq!(add_over_udp(to, 20, 10, 20), Some(30));
    let (code, events, err) = srv.stop();
    assert_eq!(code, Some(143), "{err}");
    let msgs = messages(&events);
    for text in [
        "not an RPC message",
        "RPC version 3, not 2",
        "is not served here (only 536870913",
        "no such version (versions 1 to 1): answered PROG_MISMATCH",
        "no procedure 9: answered PROC_UNAVAIL",
        "answered GARBAGE_ARGS",
        "credential flavor 99 is not accepted",
        "bad credential",
        "a REPLY where a CALL was expected",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(text)),
            "{text:?} not in {msgs:#?}"
        );
    }
}

#[test]
fn broken_streams_close_their_connection_only() {
    let srv = server(&[]);
    let to = srv.addr;
    let connect = || TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
    // A 2 GiB record mark: refused from its 4 bytes, the connection closed.
    let mut s = connect();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).expect("write");
    assert!(closed(&mut s), "a 2 GiB mark must close the connection");
    // Text where a record mark belongs: "hell" announces 1.7 GB.
    let mut s = connect();
    s.write_all(b"hello, server\n").expect("write");
    assert!(closed(&mut s), "garbage must close the connection");
    // A record cut short: 100 bytes announced, 10 sent, then EOF.
    let mut s = connect();
    s.write_all(&words(&[0x8000_0064])).expect("write");
    s.write_all(&[0; 10]).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(closed(&mut s));
    // A well-framed record that is not a message: skipped, the stream goes on.
    let mut s = connect();
    s.write_all(&record(&[1, 2, 3])).expect("write");
    let add = call(31, 2, PROG, 1, 1, &AUTH_NONE, &words(&[10, 20]));
    s.write_all(&record(&add)).expect("write");
    let r = read_record(&mut s).expect("the ADD's reply");
    assert_eq!(parse_reply(&r, 31), Reply::Accepted(0, vec![30]));
    // The ADD in three fragments, as libtirpc may send it.
    let mut frags = words(&[12]);
    frags.extend_from_slice(&add[..12]);
    frags.extend(words(&[20]));
    frags.extend_from_slice(&add[12..32]);
    frags.extend(words(&[0x8000_0000 | (add.len() - 32) as u32]));
    frags.extend_from_slice(&add[32..]);
    s.write_all(&frags).expect("write");
    let r = read_record(&mut s).expect("the fragmented ADD's reply");
    assert_eq!(parse_reply(&r, 31), Reply::Accepted(0, vec![30]));
    // Wrong RPC version over TCP: answered, connection kept.
    s.write_all(&record(&call(32, 1, PROG, 1, 0, &AUTH_NONE, &[])))
        .expect("write");
    let r = read_record(&mut s).expect("RPC_MISMATCH");
    assert_eq!(parse_reply(&r, 32), Reply::Denied(0, vec![2, 2]));
    drop(s);
    assert_eq!(add_over_udp(to, 33, 1, 2), Some(3), "UDP still served");
    let (code, events, _) = srv.stop();
    assert_eq!(code, Some(143));
    let msgs = messages(&events);
    for text in [
        "record mark announces 2147483647 bytes, over the maximum 1048576",
        "closed the connection inside a record (10 bytes of it held)",
        "(3 bytes): no xid to answer to",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(text)),
            "{text:?} not in {msgs:#?}"
        );
    }
}

/// The server's resident memory, in KiB (VmHWM: the peak so far).
fn peak_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

#[test]
fn memory_stays_bounded_under_a_flood() {
    let mut srv = Bg::start_cmd(ipclab().args([
        "--format",
        "json",
        "--quiet",
        "rpc",
        "server",
        "--listen",
        "127.0.0.1",
    ]));
    let to = srv.addr;
    let before = peak_kib(srv.child.id());
    // 40 connections at once (the server holds 16), each announcing a
    // record of 1 MiB and sending most of it, some finishing it.
    let mut conns = Vec::new();
    let chunk = vec![0u8; 64 * 1024];
    for i in 0..40 {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
            continue;
        };
        s.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let _ = s.write_all(&words(&[0x8000_0000 | (1 << 20)]));
        for _ in 0..if i % 2 == 0 { 16 } else { 15 } {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        conns.push(s);
    }
    // UDP: a thousand large datagrams.
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let big = vec![0u8; 60_000];
    for _ in 0..1000 {
        let _ = u.send_to(&big, to);
    }
    // A call still gets through.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        answered = add_over_udp(to, 77, 2, 3) == Some(5);
    }
    assert!(answered, "the server no longer answers");
    let peak = peak_kib(srv.child.id());
    drop(conns);
    assert!(srv.running());
    let (code, _, _) = srv.stop();
    assert_eq!(code, Some(143));
    eprintln!("rpc server VmHWM: {before} KiB at start, {peak} KiB after the flood");
    // 16 connections at most, each holding at most one 1 MiB record (a
    // Vec that grows by doubling: up to 2 MiB), plus the 64 KiB buffer.
    assert!(
        peak < before + 40 * 1024,
        "the flood grew the server from {before} KiB to {peak} KiB"
    );
}

#[test]
fn the_matchmaker_on_port_111_without_privileges_names_the_way_out() {
    let Some(r) = crate::util::run_as_nobody(
        "the_matchmaker_on_port_111_without_privileges_names_the_way_out",
        &["rpc", "matchmaker"],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stdout.contains("EACCES"), "{}", r.stdout);
    assert!(
        r.stderr.contains("--port") && r.stderr.contains("CAP_NET_BIND_SERVICE"),
        "{}",
        r.stderr
    );
}
