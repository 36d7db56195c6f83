//! Issue 7: hostile clients do not stop a server, privileges are verified
//! after the drop, cleanup removes only what ipclab made, stdout write
//! errors and user-supplied control characters are handled. Each test is a
//! reproduction from the issue, with bounded waits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tcp::{parse_sockaddr, PREFIX};
use crate::util::{have_tool, ipclab, is_root, run, run_cmd, skip, wait_exit, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

/// A background `ipclab --format json …` started by `cmd` (which may wrap
/// it in setpriv or prlimit), with its address read from getsockname.
struct Bg {
    child: std::process::Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Bg {
    fn start(cmd: &mut Command) -> Bg {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("a getsockname step within 10 s");
            let v: Value = serde_json::from_str(&line).expect("JSON");
            if v["syscall"] == "getsockname" {
                break parse_sockaddr(v["args"][1].as_str().expect("sockaddr"));
            }
        };
        Bg {
            child,
            addr,
            lines: rx,
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then at most 10 s for the exit; returns (code, stdout lines, stderr).
    fn stop(mut self) -> (Option<i32>, Vec<String>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_exit(&mut self.child, Duration::from_secs(10), "after SIGTERM");
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            lines.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code(), lines, err)
    }
}

/// Sends `msg` and waits at most `limit` for the repeater's reply.
fn echo(s: &mut TcpStream, msg: &str, limit: Duration) -> Option<String> {
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(msg.as_bytes()).ok()?;
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The reply to a message sent earlier, waited for at most 5 s.
fn late_reply(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 256];
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = s.read(&mut buf).expect("a reply within 5 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect")
}

fn needs_root_and(test: &str, tools: &[&str]) -> bool {
    if !is_root() {
        skip(test, "needs root to lower limits and switch users");
        return false;
    }
    for t in tools {
        if !have_tool(t) {
            skip(test, &format!("needs `{t}`"));
            return false;
        }
    }
    true
}

/// Issue 7 §3: fork fails with EAGAIN at RLIMIT_NPROC; that one client is
/// turned away, the server lives on and serves the next one.
#[test]
fn fork_server_survives_eagain_from_fork_under_rlimit_nproc() {
    let test = "fork_server_survives_eagain_from_fork_under_rlimit_nproc";
    if !needs_root_and(test, &["prlimit", "setpriv"]) {
        return;
    }
    let mut cmd = Command::new("prlimit");
    cmd.args([
        "--nproc=6",
        "--",
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
    ])
    .args(["--clear-groups", "--inh-caps=-all"])
    .arg(env!("CARGO_BIN_EXE_ipclab"))
    .args(["--format", "json", "tcp", "server", "--model", "fork"])
    .args(["--listen", "127.0.0.1:0"]);
    let mut srv = Bg::start(&mut cmd);
    // Hold more connections open than the limit allows children.
    let mut held: Vec<TcpStream> = (0..12).map(|_| connect(srv.addr)).collect();
    let mut served = 0;
    for s in held.iter_mut() {
        if echo(s, "x", Duration::from_secs(2)).is_some() {
            served += 1;
        }
    }
    assert!(
        (1..12).contains(&served),
        "some served, some turned away: {served}"
    );
    assert!(srv.running(), "the server must live on after EAGAIN");
    drop(held);
    // The children end with their clients; a new client is served again.
    let ok = crate::util::wait_until(Duration::from_secs(10), || {
        let mut s = connect(srv.addr);
        echo(&mut s, "again", Duration::from_secs(1)).is_some_and(|r| r.contains("again"))
    });
    assert!(ok, "served again once children ended");
    let (code, lines, _) = srv.stop();
    assert_eq!(code, Some(143));
    let text = lines.join("\n");
    assert!(text.contains("\"errno\":\"EAGAIN\""), "fork's EAGAIN shown");
    assert!(
        text.contains("turned away"),
        "the turned-away client is explained"
    );
}

/// Issue 7 §3: `--max-children` caps the live children; the next client
/// waits in the backlog until one ends.
#[test]
fn fork_server_caps_its_children() {
    let mut srv = Bg::start(ipclab().args([
        "--format",
        "json",
        "tcp",
        "server",
        "--model",
        "fork",
        "--max-children",
        "2",
        "--listen",
        "127.0.0.1:0",
    ]));
    let mut a = connect(srv.addr);
    let mut b = connect(srv.addr);
    assert!(echo(&mut a, "a", Duration::from_secs(5)).is_some());
    assert!(echo(&mut b, "b", Duration::from_secs(5)).is_some());
    let mut c = connect(srv.addr);
    assert!(
        echo(&mut c, "c", Duration::from_millis(500)).is_none(),
        "a third client waits while two children serve"
    );
    drop(a);
    assert!(
        late_reply(&mut c).contains('c'),
        "c served once a child ended"
    );
    assert!(srv.running());
    let (code, lines, _) = srv.stop();
    assert_eq!(code, Some(143));
    assert!(lines.join("\n").contains("--max-children"));
}

/// Issue 7 §3: out of descriptors with no client connected, the poll model
/// used to leave the listener out of its set for good. Now it retries.
#[test]
fn poll_server_retries_after_emfile_and_serves_once_a_descriptor_frees() {
    let test = "poll_server_retries_after_emfile_and_serves_once_a_descriptor_frees";
    if !have_tool("prlimit") {
        skip(test, "needs prlimit (util-linux)");
        return;
    }
    // 0, 1, 2, the listener, the epoll fd, and one for a connection.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=6", "--"])
        .arg(env!("CARGO_BIN_EXE_ipclab"))
        .args(["--format", "json", "tcp", "server", "--model", "poll"])
        .args(["--listen", "127.0.0.1:0"]);
    let mut srv = Bg::start(&mut cmd);
    let mut a = connect(srv.addr);
    assert!(echo(&mut a, "a", Duration::from_secs(5)).is_some());
    let mut b = connect(srv.addr);
    assert!(
        echo(&mut b, "b", Duration::from_millis(700)).is_none(),
        "no descriptor for B while A is open"
    );
    drop(a);
    assert!(late_reply(&mut b).contains('b'), "B served once A closed");
    drop(b);
    // Now with no client at all, at the limit: a client that cannot be
    // accepted (no descriptor) must not make the server deaf or hang it.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=5", "--"])
        .arg(env!("CARGO_BIN_EXE_ipclab"))
        .args(["--format", "json", "tcp", "server", "--model", "poll"])
        .args(["--listen", "127.0.0.1:0"]);
    let srv2 = Bg::start(&mut cmd);
    let _c = connect(srv2.addr);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, lines, _) = srv2.stop();
    assert_eq!(code, Some(143));
    let readds = lines
        .iter()
        .filter(|l| l.contains("\"epoll_ctl\"") && l.contains("EPOLL_CTL_ADD"))
        .count();
    assert!(
        readds >= 3,
        "the listener rejoined the set after each back-off: {readds}"
    );
    assert!(srv.running());
    let (code, _, _) = srv.stop();
    assert_eq!(code, Some(143));
}

/// Issue 7 §3: `tcp demo --model poll` and the quiet tour used to hang at
/// `ulimit -n 5`; now they end (failing, with the errno) within bounds.
#[test]
fn demo_and_tour_end_under_ulimit_n_5() {
    let test = "demo_and_tour_end_under_ulimit_n_5";
    if !have_tool("prlimit") {
        skip(test, "needs prlimit (util-linux)");
        return;
    }
    for args in [&["tcp", "demo", "--model", "poll"][..], &["-q", "tour"]] {
        let mut cmd = Command::new("prlimit");
        cmd.args(["--nofile=5", "--"])
            .arg(env!("CARGO_BIN_EXE_ipclab"))
            .args(args);
        let r = run_cmd(&mut cmd, Duration::from_secs(90));
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(r.code().is_some(), "{args:?} exited by itself");
    }
}

/// Issue 7 §3: an idle client holds the iterative server only for
/// `--idle-timeout`, not for ever.
#[test]
fn iterative_server_drops_an_idle_client() {
    let srv = Bg::start(ipclab().args([
        "--format",
        "json",
        "tcp",
        "server",
        "--idle-timeout",
        "0.5",
        "--listen",
        "127.0.0.1:0",
    ]));
    let _idle = connect(srv.addr);
    let mut b = connect(srv.addr);
    let t0 = Instant::now();
    let reply = echo(&mut b, "b", Duration::from_secs(5)).expect("B served after A's idle timeout");
    assert!(reply.starts_with(PREFIX));
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let (code, lines, _) = srv.stop();
    assert_eq!(code, Some(143));
    assert!(lines.join("\n").contains("--idle-timeout"));
}

/// Issue 7 §3: the client gives up after `--timeout` on a server that
/// accepts but never replies, and notices a server that closes while it
/// waits for input.
#[test]
fn tcp_client_times_out_and_notices_a_closed_server() {
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = mute.local_addr().expect("addr").to_string();
    let keep = std::thread::spawn(move || {
        let c = mute.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    let t0 = Instant::now();
    let r = run(
        &[
            "tcp",
            "client",
            "--connect",
            &addr,
            "--send",
            "hi",
            "--timeout",
            "0.5",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no reply within 0.5 s"), "{}", r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(3));
    let _ = keep.join();

    let closer = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closer.local_addr().expect("addr").to_string();
    let t = std::thread::spawn(move || {
        if let Ok((s, _)) = closer.accept() {
            std::thread::sleep(Duration::from_millis(200));
            drop(s);
        }
    });
    let mut child = ipclab()
        .args(["tcp", "client", "--connect", &addr])
        .stdin(Stdio::piped()) // kept open, never written: the user is idle
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_exit(
        &mut child,
        Duration::from_secs(10),
        "a client that should notice the closed connection",
    );
    let _ = t.join();
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("closed the connection while we waited for input"),
        "{err}"
    );
}

/// Issue 7 §4: a SUDO environment that names nobody is refused before any step.
#[test]
fn sudo_values_that_name_nobody_are_refused() {
    for env in [
        &[("SUDO_UID", "4294967295"), ("SUDO_GID", "4294967295")][..],
        &[("SUDO_UID", "1000")],
        &[("SUDO_GID", "1000")],
        &[("SUDO_UID", "root"), ("SUDO_GID", "0")],
    ] {
        let mut cmd = ipclab();
        cmd.env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .args(["ping", "-c", "1", "127.0.0.1"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let r = run_cmd(&mut cmd, LIMIT);
        assert_eq!(r.code(), Some(2), "{env:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{env:?}: nothing may run");
    }
}

/// Issue 7 §4: the drop is checked with getresuid, getresgid and capget;
/// if capabilities survive it (SECBIT_NO_SETUID_FIXUP keeps them), ipclab
/// refuses to send anything.
#[test]
fn privilege_drop_is_verified_and_refused_when_capabilities_remain() {
    let test = "privilege_drop_is_verified_and_refused_when_capabilities_remain";
    if !needs_root_and(test, &["setpriv"]) {
        return;
    }
    let mut ok = ipclab();
    ok.env("SUDO_UID", "65534").env("SUDO_GID", "65534").args([
        "--format",
        "json",
        "ping",
        "-c",
        "1",
        "127.0.0.1",
    ]);
    let r = run_cmd(&mut ok, LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    let cap = steps
        .iter()
        .find(|s| s["syscall"] == "capget")
        .expect("a capget step");
    assert_eq!(cap["args"][1], "{effective=0, permitted=0, inheritable=0}");
    let uid = steps
        .iter()
        .find(|s| s["syscall"] == "getresuid")
        .expect("getresuid");
    assert_eq!(uid["args"][0], "[65534]");

    let mut kept = Command::new("setpriv");
    kept.args(["--securebits", "+no_setuid_fixup"])
        .arg(env!("CARGO_BIN_EXE_ipclab"))
        .args(["--format", "json", "ping", "-c", "1", "127.0.0.1"])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534");
    let r = run_cmd(&mut kept, LIMIT);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("refusing to go on"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    let steps = r.lab_steps();
    assert!(steps.iter().any(|s| s["syscall"] == "capget"));
    assert!(
        !steps.iter().any(|s| s["syscall"] == "sendto"),
        "nothing sent with privileges left"
    );
}

/// Issue 7 §5: while `fifo read|write` waits in open(), its FIFO is renamed
/// away and something else put at the path; the cleanup leaves both alone.
#[test]
fn fifo_cleanup_removes_only_the_fifo_ipclab_made() {
    for end in ["read", "write"] {
        for replacement in ["file", "symlink", "fifo", "nothing"] {
            let dir = TempDir::new("fifo-swap");
            let path = dir.path().join("f");
            let moved = dir.path().join("moved");
            let p = path.to_str().expect("utf-8");
            let mut args = vec!["--format", "json", "fifo", end, p];
            if end == "write" {
                args.push("hi");
            }
            let mut child = ipclab()
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let made = crate::util::wait_until(Duration::from_secs(5), || {
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_fifo())
            });
            assert!(made, "ipclab made its FIFO");
            std::thread::sleep(Duration::from_millis(100));
            std::fs::rename(&path, &moved).expect("rename the FIFO away");
            match replacement {
                "file" => std::fs::write(&path, b"not ipclab's").expect("file"),
                "symlink" => std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink"),
                "fifo" => {
                    let st = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
                    assert!(st.success());
                }
                _ => {}
            }
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t0 = Instant::now();
            let status = loop {
                if let Ok(Some(st)) = child.try_wait() {
                    break st;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "stuck after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            let ctx = format!("{end} with a {replacement} put in place");
            assert_eq!(status.code(), Some(143), "{ctx}");
            let mut out = String::new();
            let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
            let present = std::fs::symlink_metadata(&path);
            match replacement {
                "nothing" => assert!(present.is_err(), "{ctx}"),
                "file" => assert_eq!(
                    std::fs::read(&path).ok().as_deref(),
                    Some(&b"not ipclab's"[..]),
                    "{ctx}"
                ),
                "symlink" => assert!(present.expect("kept").file_type().is_symlink(), "{ctx}"),
                _ => assert!(present.expect("kept").file_type().is_fifo(), "{ctx}"),
            }
            assert!(
                moved.exists(),
                "{ctx}: ipclab's own FIFO, moved away, is not chased"
            );
            assert!(
                !out.contains("\"syscall\":\"unlink\""),
                "{ctx}: no unlink at all"
            );
            assert!(
                out.contains("did not make") || out.contains("gone already"),
                "{ctx}: said so"
            );
        }
    }
}

/// Issue 7 §6: a full disk on stdout is an error (exit 1, one line), a
/// closed pipe is not.
#[test]
fn stdout_write_errors_fail_but_a_closed_pipe_does_not() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        skip(
            "stdout_write_errors_fail_but_a_closed_pipe_does_not",
            "no /dev/full",
        );
        return;
    };
    let out = ipclab()
        .arg("pipe")
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let mut child = ipclab()
        .arg("tour")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // `| head` closed early
    let status = wait_exit(
        &mut child,
        Duration::from_secs(60),
        "tour with a closed stdout",
    );
    assert_eq!(status.code(), Some(0));
}

/// Issue 7 §6: control characters from the user's input are escaped in the
/// one-line error, never sent raw to the terminal.
#[test]
fn error_lines_escape_what_the_user_typed() {
    for args in [
        &["fifo", "write", "/tmp/no\ndir/x\x1b[31m", "x"][..],
        &["ping", "-c", "1", "bad\nhost"],
        &["tcp", "client", "--connect", "a\x1bb:1"],
    ] {
        let r = run(args, LIMIT);
        assert_ne!(r.code(), Some(0));
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
        assert!(
            !r.stderr.contains('\x1b'),
            "{args:?}: raw escape: {:?}",
            r.stderr
        );
    }
}
