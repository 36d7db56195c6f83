//! `ipclab tcp server` against hostile clients (a 1 MiB burst, a reset, a
//! client gone mid-message, an idle one), and its descriptors after 1000
//! connections.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tcp::{assert_clean, client_ok, python, server_args, Server, LIMIT, MODELS};
use crate::util::{have_tool, skip, wait_until};

/// Hostile clients; each case is run against a server, then a normal client
/// must still be served. Every socket operation has a timeout.
const HOSTILE: &str = r#"
import socket, struct, sys, threading, time
host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(10)
c.connect((host, port))
if case == "burst":
    data = b"x" * (1 << 20)
    t = threading.Thread(target=c.sendall, args=(data,))
    t.start()
    got = 0
    deadline = time.time() + 20
    while got < len(data) and time.time() < deadline:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk.count(b"x")
    t.join(10)
    if got != len(data):
        sys.exit("echoed %d of %d bytes" % (got, len(data)))
elif case == "reset":
    c.sendall(b"hello, then RST")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
elif case == "midway":
    c.sendall(b"half a mess")
elif case == "idle":
    time.sleep(float(sys.argv[4]))
c.close()
print("ok")
"#;

fn hostile(test: &str, addr: &SocketAddr, case: &str, extra: &[&str]) -> bool {
    let mut args = vec![
        addr.ip().to_string(),
        addr.port().to_string(),
        case.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let Some(r) = python(test, HOSTILE, &args) else {
        return false;
    };
    assert_eq!(
        r.code(),
        Some(0),
        "hostile {case}: {}\n{}",
        r.stdout,
        r.stderr
    );
    true
}

fn survives(case: &str, models: &[&str]) {
    let test = format!("tcp_server_survives_{case}");
    for model in models {
        let srv = Server::start(&server_args(model, "127.0.0.1:0"));
        if !hostile(&test, &srv.addr, case, &[]) {
            return;
        }
        assert!(
            client_ok(&test, &srv.addr),
            "{model}: not served after {case}"
        );
        let r = if *model == "iterative" {
            srv.finish(LIMIT)
        } else {
            srv.stop(LIMIT)
        };
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert_clean(&r);
    }
}

#[test]
fn tcp_server_survives_a_1_mib_burst() {
    survives("burst", &MODELS);
}

#[test]
fn tcp_server_survives_a_reset() {
    survives("reset", &MODELS);
}

#[test]
fn tcp_server_survives_a_client_closing_mid_message() {
    survives("midway", &MODELS);
}

#[test]
fn tcp_idle_client_does_not_block_others_in_fork_and_poll_models() {
    let test = "tcp_idle_client_does_not_block_others_in_fork_and_poll_models";
    for model in ["fork", "poll"] {
        let srv = Server::start(&server_args(model, "127.0.0.1:0"));
        if !have_tool("python3") {
            skip(test, "needs python3");
            return;
        }
        let addr = srv.addr;
        let idle = std::thread::spawn(move || hostile(test, &addr, "idle", &["8"]));
        // Give the idle client time to connect, then a normal one must be served.
        std::thread::sleep(Duration::from_millis(300));
        let start = std::time::Instant::now();
        assert!(client_ok(test, &srv.addr));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{model}: the idle client held others up"
        );
        idle.join().expect("the idle client's own checks");
        let r = srv.stop(LIMIT);
        assert_clean(&r);
    }
}

/// N sequential connections, each one request and reply, then close.
const MANY: &str = r#"
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect((host, port))
    c.sendall(b"x")
    if not c.recv(4096):
        sys.exit("no reply on connection %d" % i)
    c.close()
print("ok")
"#;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn children_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
}

#[test]
fn tcp_server_descriptors_return_to_baseline_after_1000_connections() {
    let test = "tcp_server_descriptors_return_to_baseline_after_1000_connections";
    for model in MODELS {
        let srv = Server::start(&server_args(model, "127.0.0.1:0"));
        let pid = srv.pid();
        // Baseline in the steady state: after one whole connection (the
        // server has set up its epoll set, signal handlers…), and a pause.
        let one = vec![
            srv.addr.ip().to_string(),
            srv.addr.port().to_string(),
            "1".into(),
        ];
        let Some(r) = python(test, MANY, &one) else {
            return;
        };
        assert_eq!(r.code(), Some(0), "{model}: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(500));
        let baseline = fd_count(pid);
        let args = vec![
            srv.addr.ip().to_string(),
            srv.addr.port().to_string(),
            "1000".into(),
        ];
        let Some(r) = python(test, MANY, &args) else {
            return;
        };
        assert_eq!(r.code(), Some(0), "{model}: {}", r.stderr);
        assert!(
            wait_until(Duration::from_secs(10), || fd_count(pid) == baseline),
            "{model}: {} descriptors open, baseline {baseline}",
            fd_count(pid)
        );
        assert!(
            wait_until(Duration::from_secs(10), || children_of(pid)
                .trim()
                .is_empty()),
            "{model}: children left: {}",
            children_of(pid)
        );
        srv.stop(LIMIT);
    }
}
