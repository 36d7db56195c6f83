//! `ipclab tcp`: the three server models against independent Python clients,
//! the client against a Python server, hostile clients, descriptor counts,
//! IPv6, errors, and the strace cross-check of every demo.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    have_tool, ipclab, leaked_fds, run, run_cmd, skip, spawn, strace_crosscheck, unreaped_children,
    Run, Spawned,
};

pub(crate) const LIMIT: Duration = Duration::from_secs(30);
pub const PREFIX: &str = "我是复读机,哈哈，你刚才发送了：";
pub(crate) const MODELS: [&str; 3] = ["iterative", "fork", "poll"];

/// A background `ipclab --format json …` server whose real address was read
/// from its `getsockname` step.
pub struct Server {
    spawned: Spawned,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Starts `ipclab --format json ARGS` (which must bind port 0) and waits
    /// at most 10 s for its getsockname step.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let mut spawned = spawn(&all);
        let out = spawned
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no getsockname step from {args:?}; got {seen:?}"));
            seen.push(line.clone());
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            if v["syscall"] == "getsockname" {
                break parse_sockaddr(v["args"][1].as_str().expect("sockaddr arg"));
            }
        };
        Server {
            spawned,
            addr,
            lines: rx,
            seen,
        }
    }

    pub fn pid(&self) -> u32 {
        self.spawned.pid()
    }

    /// Waits at most `limit` for the server to exit; its whole stdout.
    pub fn finish(mut self, limit: Duration) -> Run {
        let mut run = self.spawned.wait_timeout(limit);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        self.seen.push(String::new());
        run.stdout = self.seen.join("\n");
        run
    }

    /// Sends SIGTERM (the server cleans up and exits), then finishes.
    pub fn stop(self, limit: Duration) -> Run {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.finish(limit)
    }
}

/// `{sa_family=AF_INET, sin_port=htons(N), sin_addr=inet_addr("A")}` → A:N.
pub fn parse_sockaddr(s: &str) -> SocketAddr {
    let port: u16 = s
        .split("htons(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {s}"));
    let ip = s
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {s}"));
    SocketAddr::new(ip.parse().expect("ip"), port)
}

/// Whether this machine has IPv6 loopback (containers may lack it).
pub fn have_ipv6() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

/// Runs an independent Python program (the test's own, not the seed's).
pub fn python(test: &str, script: &str, args: &[String]) -> Option<Run> {
    if !have_tool("python3") {
        skip(test, "needs python3 for an independent peer");
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    Some(run_cmd(&mut cmd, LIMIT))
}

/// A client that talks the seed's protocol and checks every reply; then "q".
/// Exits 0 when all went as expected. Each operation has a 5 s timeout.
const CLIENT: &str = r#"
import socket, sys
host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
c = socket.socket(fam, socket.SOCK_STREAM)
c.settimeout(5)
c.connect((host, port))
for msg in [b"hello", "你好".encode(), b"\xff\xfe\x00 not utf-8"]:
    c.sendall(msg)
    want = prefix + msg
    got = b""
    while len(got) < len(want):
        chunk = c.recv(4096)
        if not chunk:
            sys.exit("EOF before the reply")
        got += chunk
    if got != want:
        sys.exit("bad reply %r for %r" % (got, msg))
c.sendall(b"q")
if c.recv(1024) != b"":
    sys.exit("no EOF after q")
c.close()
print("ok")
"#;

pub(crate) fn client_ok(test: &str, addr: &SocketAddr) -> bool {
    let args = vec![
        addr.ip().to_string(),
        addr.port().to_string(),
        PREFIX.into(),
    ];
    let Some(r) = python(test, CLIENT, &args) else {
        return false;
    };
    assert_eq!(
        r.code(),
        Some(0),
        "python client failed: {}\n{}",
        r.stdout,
        r.stderr
    );
    true
}

pub(crate) fn server_args<'a>(model: &'a str, listen: &'a str) -> Vec<&'a str> {
    vec!["tcp", "server", "--listen", listen, "--model", model]
}

pub(crate) fn assert_clean(run: &Run) {
    let steps = run.lab_steps();
    assert!(
        unreaped_children(&steps).is_empty(),
        "zombies: {:?}",
        unreaped_children(&steps)
    );
    assert!(
        leaked_fds(&steps).is_empty(),
        "leaked: {:?}",
        leaked_fds(&steps)
    );
}

#[test]
fn tcp_demo_every_model_round_trips_and_cleans_up() {
    for model in MODELS {
        let r = run(
            &["--format", "json", "tcp", "demo", "--model", model],
            LIMIT,
        );
        r.assert_ok();
        assert_clean(&r);
        let msgs = r.messages().join("\n");
        assert!(
            msgs.contains(&format!("reply: \"{PREFIX}hello\"")),
            "{msgs}"
        );
        assert!(msgs.contains("recv() = 0 is EOF"), "{msgs}");
        if model == "iterative" {
            assert!(msgs.contains("B waits in the backlog"), "{msgs}");
        } else {
            assert!(msgs.contains("serves clients concurrently"), "{msgs}");
        }
        let steps = r.lab_steps();
        let has = |n: &str| steps.iter().any(|s| s["syscall"] == n);
        for n in [
            "socket",
            "setsockopt",
            "bind",
            "listen",
            "getsockname",
            "accept4",
            "connect",
            "sendto",
            "recvfrom",
        ] {
            assert!(has(n), "{model}: no {n} step");
        }
        if model == "poll" {
            assert!(has("epoll_create1") && has("epoll_ctl") && has("epoll_pwait"));
        }
        let setsockopt = steps
            .iter()
            .find(|s| s["syscall"] == "setsockopt")
            .expect("setsockopt");
        assert_eq!(setsockopt["args"][2], "SO_REUSEADDR");
        let send = steps
            .iter()
            .find(|s| s["syscall"] == "sendto")
            .expect("sendto");
        assert_eq!(send["libc"], "send");
    }
}

#[test]
fn strace_agrees_with_tcp_demo_every_model() {
    for model in MODELS {
        let Some(r) = strace_crosscheck(
            "strace_agrees_with_tcp_demo_every_model",
            &["tcp", "demo", "--model", model],
            LIMIT,
        ) else {
            return;
        };
        r.assert_ok();
    }
}

#[test]
fn tcp_server_every_model_serves_an_independent_python_client() {
    for model in MODELS {
        let srv = Server::start(&server_args(model, "127.0.0.1:0"));
        if !client_ok(
            "tcp_server_every_model_serves_an_independent_python_client",
            &srv.addr,
        ) {
            return;
        }
        let r = if model == "iterative" {
            // "q" stops the iterative server, as in the seed.
            srv.finish(LIMIT)
        } else {
            assert!(
                client_ok("second client", &srv.addr),
                "{model}: second client"
            );
            srv.stop(LIMIT)
        };
        if model == "iterative" {
            r.assert_ok();
        } else {
            assert_eq!(r.code(), Some(128 + 15), "{model}: {}", r.stderr);
        }
        assert_clean(&r);
        let msgs = r.messages().join("\n");
        assert!(
            msgs.contains(r"\377\376\0 not utf-8"),
            "non-UTF-8 escaped: {msgs}"
        );
    }
}

#[test]
fn tcp_server_once_serves_one_connection_and_exits() {
    let srv = Server::start(&[
        "tcp",
        "server",
        "--listen",
        "127.0.0.1:0",
        "--model",
        "fork",
        "--once",
    ]);
    if !client_ok("tcp_server_once_serves_one_connection_and_exits", &srv.addr) {
        return;
    }
    let r = srv.finish(LIMIT);
    r.assert_ok();
    assert_clean(&r);
}

#[test]
fn tcp_server_and_client_on_ipv6_loopback() {
    if !have_ipv6() {
        skip(
            "tcp_server_and_client_on_ipv6_loopback",
            "no IPv6 loopback (::1) here",
        );
        return;
    }
    let srv = Server::start(&server_args("poll", "[::1]:0"));
    assert!(srv.addr.is_ipv6());
    let target = srv.addr.to_string();
    let c = run(
        &[
            "--format",
            "json",
            "tcp",
            "client",
            "--connect",
            &target,
            "--send",
            "hello v6",
            "--send",
            "q",
        ],
        LIMIT,
    );
    c.assert_ok();
    assert!(c.messages().iter().any(|m| m.contains("hello v6")));
    let sock = &c.lab_steps()[0];
    assert_eq!(sock["args"][0], "AF_INET6");
    client_ok("tcp_server_and_client_on_ipv6_loopback", &srv.addr);
    let r = srv.stop(LIMIT);
    assert_clean(&r);
}

/// An independent server: replies "echo:" + data, closes on "q"; prints its port.
const PY_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(10)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(10)
while True:
    d = c.recv(1024)
    if not d or d == b"q":
        break
    c.sendall(b"echo:" + d)
c.close(); s.close()
"#;

/// Starts PY_SERVER and returns it with its port.
fn python_server(test: &str) -> Option<(Spawned, u16)> {
    crate::util::python_peer(test, PY_SERVER, LIMIT)
}

#[test]
fn tcp_client_talks_to_an_independent_python_server() {
    let Some((py, port)) = python_server("tcp_client_talks_to_an_independent_python_server") else {
        return;
    };
    let target = format!("127.0.0.1:{port}");
    let c = run(
        &[
            "--format",
            "json",
            "tcp",
            "client",
            "--connect",
            &target,
            "--send",
            "hi",
            "--send",
            "q",
        ],
        LIMIT,
    );
    let _ = py.wait_timeout(LIMIT); // bounded, even if the peer hangs
    c.assert_ok();
    let msgs = c.messages().join("\n");
    assert!(msgs.contains("reply: \"echo:hi\""), "{msgs}");
    assert!(msgs.contains("recv() = 0 is EOF"), "{msgs}");
    assert_clean(&c);
}

#[test]
fn tcp_client_reads_lines_from_stdin() {
    let Some((py, port)) = python_server("tcp_client_reads_lines_from_stdin") else {
        return;
    };
    let target = format!("127.0.0.1:{port}");
    let mut child = ipclab()
        .args(["--format", "json", "tcp", "client", "--connect", &target])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"first line\n\nsecond\r\nq\n")
            .expect("write stdin");
    }
    let c = Spawned { child: Some(child) }.wait_timeout(LIMIT);
    let _ = py.wait_timeout(LIMIT); // bounded, even if the peer hangs
    c.assert_ok();
    let msgs = c.messages().join("\n");
    assert!(msgs.contains("reply: \"echo:first line\""), "{msgs}");
    assert!(
        msgs.contains("reply: \"echo:second\""),
        "the \\r\\n is not sent: {msgs}"
    );
    assert!(msgs.contains("empty line: nothing sent"), "{msgs}");
    let reads = c
        .lab_steps()
        .iter()
        .filter(|s| s["syscall"] == "read" && s["args"][0] == "0")
        .count();
    assert!(reads >= 1, "stdin reads are traced");
}

#[test]
fn tcp_client_explains_connection_refused() {
    // A port that was free a moment ago: nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let target = format!("127.0.0.1:{port}");
    let c = run(
        &[
            "--format",
            "json",
            "tcp",
            "client",
            "--connect",
            &target,
            "--send",
            "x",
        ],
        LIMIT,
    );
    assert_eq!(c.code(), Some(1), "{}", c.stderr);
    let connect = c
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "connect")
        .expect("connect step");
    assert_eq!(connect["errno"], "ECONNREFUSED");
    assert!(c.stderr.contains("nobody is listening"), "{}", c.stderr);
    assert!(leaked_fds(&c.lab_steps()).is_empty());
}

#[test]
fn tcp_server_explains_address_in_use() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = holder.local_addr().expect("addr").to_string();
    let r = run(
        &["--format", "json", "tcp", "server", "--listen", &target],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let bind = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "bind")
        .expect("bind step");
    assert_eq!(bind["errno"], "EADDRINUSE");
    assert!(r.stderr.contains("already listens"), "{}", r.stderr);
}

#[test]
fn tcp_bad_addresses_are_usage_errors() {
    for args in [
        &["tcp", "server", "--listen", "nonsense"][..],
        &["tcp", "client", "--connect", "1.2.3.4:99999"],
        &["tcp", "client", "--send", ""],
        &["udp", "client", "--connect", "example.org:1"],
        &["udp", "client", "--timeout", "0"],
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}
