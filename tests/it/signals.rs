//! Issue 7: a stop signal (SIGINT, SIGTERM, SIGHUP) at any moment ends every
//! command cleanly: exit 128+N (or 0 if it had already finished), the
//! summary printed, every child it forked gone, nothing left in its TMPDIR.
//! Each case runs several times with the signal at a different moment, from
//! the first milliseconds on; servers are kept busy by a client meanwhile.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tcp::parse_sockaddr;
use crate::util::{ipclab, TempDir};

pub(crate) const SIGNALS: [(&str, i32); 3] = [("INT", 2), ("TERM", 15), ("HUP", 1)];

/// A small deterministic spread of delays: the first milliseconds, and later.
pub(crate) fn delay(i: usize) -> Duration {
    const MS: [u64; 8] = [0, 2, 7, 25, 60, 120, 250, 400];
    Duration::from_millis(MS[i % MS.len()])
}

fn alive_ipclab(pid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // A zombie still has /proc/PID; its state is Z after the command name.
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    String::from_utf8_lossy(&cmd).contains("ipclab") || state.starts_with('Z')
}

/// Extra load while a server runs.
#[derive(Clone, Copy)]
pub(crate) enum Load {
    None,
    Tcp,
    Udp,
}

fn load(kind: Load, addr: SocketAddr, stop: Arc<AtomicBool>) {
    let until = Instant::now() + Duration::from_secs(5);
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        match kind {
            Load::Tcp => {
                if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    let _ = s.write_all(b"hi");
                }
            }
            Load::Udp => {
                if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
                    let _ = s.send_to(b"hi", addr);
                }
            }
            Load::None => return,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `ipclab --format json ARGS`, signals it after `wait`, and checks the
/// clean end. With `port`, waits first for the getsockname step and loads
/// the server; with `stall`, stops reading its stdout for a moment around
/// the signal, so the process may be blocked writing its trace. Returns the
/// pid it ran as, for checks of what else it might have left (/dev/shm).
pub(crate) fn stops_cleanly(
    args: &[&str],
    sig: (&str, i32),
    wait: Duration,
    kind: Load,
    stall: bool,
) -> u32 {
    stops_cleanly_after(args, sig, None, wait, kind, stall)
}

/// As [`stops_cleanly`], with `wait` counted from the first output line
/// that contains `marker`, when one is given: a stage of a run that is
/// over in milliseconds, whatever the machine's load.
pub(crate) fn stops_cleanly_after(
    args: &[&str],
    sig: (&str, i32),
    marker: Option<&str>,
    wait: Duration,
    kind: Load,
    stall: bool,
) -> u32 {
    let tmp = TempDir::new("signals");
    let mut child = ipclab()
        .args(["--format", "json"])
        .args(args)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ipclab");
    let pid = child.id();
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut gated = false;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let addr_line = line.contains("\"getsockname\"");
            if tx.send(line).is_err() {
                break;
            }
            if stall && addr_line && !gated {
                gated = true;
                // Stop reading until the test says so (bounded).
                let _ = gate_rx.recv_timeout(Duration::from_secs(5));
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loader = None;
    if !matches!(kind, Load::None) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{args:?}: no getsockname step: {lines:?}"));
            lines.push(line.clone());
            let v: Value = serde_json::from_str(&line).expect("JSON");
            if v["syscall"] == "getsockname" {
                break parse_sockaddr(v["args"][1].as_str().expect("sockaddr"));
            }
        };
        let s = stop.clone();
        loader = Some(std::thread::spawn(move || load(kind, addr, s)));
    }
    if let Some(m) = marker {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{args:?}: no line with {m:?}: {lines:?}"));
            lines.push(line.clone());
            if line.contains(m) {
                break;
            }
        }
    }
    std::thread::sleep(wait);
    let killed = Command::new("kill")
        .arg(format!("-{}", sig.0))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    let _ = gate_tx.send(());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running 10 s after SIG{}", sig.0);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    stop.store(true, Ordering::SeqCst);
    if let Some(l) = loader {
        let _ = l.join();
    }
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let code = status.code();
    let ctx = format!("{args:?} SIG{} after {wait:?}", sig.0);
    assert!(
        killed.success() || code == Some(0),
        "{ctx}: kill failed though the process still ran"
    );
    // Before its first step (the signals held) the default action ends the
    // process: clean too, since it has made nothing yet.
    let early =
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(sig.1) && lines.is_empty();
    assert!(
        code == Some(128 + sig.1) || code == Some(0) || early,
        "{ctx}: exit {status:?}, want {} (or 0 if it had finished)\nstderr: {err}\nstdout tail: {:?}",
        128 + sig.1,
        lines.iter().rev().take(8).collect::<Vec<_>>()
    );
    assert!(!err.contains("panicked"), "{ctx}: {err}");
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{ctx}: not JSON ({e}): {l}")))
        .collect();
    if code != Some(0) && !early {
        assert!(
            events.iter().any(|e| e["type"] == "summary"),
            "{ctx}: no summary"
        );
        assert!(err.contains("interrupted by SIG"), "{ctx}: {err}");
    }
    // Every child it forked is gone (not running, not a zombie).
    let forked: Vec<i64> = events
        .iter()
        .filter(|e| e["syscall"] == "clone")
        .filter_map(|e| e["ret"].as_i64())
        .filter(|&p| p > 0)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    for p in forked {
        while alive_ipclab(p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive_ipclab(p), "{ctx}: child {p} survived");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{ctx}: left behind in TMPDIR: {left:?}");
    pid
}

/// Signals `runs` runs of ARGS at different moments; returns their pids.
pub(crate) fn each_moment(args: &[&str], kind: Load, runs: usize) -> Vec<u32> {
    (0..runs)
        .map(|i| {
            let sig = SIGNALS[i % SIGNALS.len()];
            stops_cleanly(args, sig, delay(i * 3 + 1), kind, false)
        })
        .collect()
}

#[test]
fn every_tcp_server_model_stops_cleanly_under_load() {
    for model in ["iterative", "fork", "poll"] {
        each_moment(
            &["tcp", "server", "--model", model, "--listen", "127.0.0.1:0"],
            Load::Tcp,
            6,
        );
    }
}

/// The reproduction: the server blocked writing its trace to a
/// stdout nobody reads when the signal comes.
#[test]
fn a_server_blocked_on_its_stdout_still_stops_on_sigterm() {
    for model in ["iterative", "fork", "poll"] {
        stops_cleanly(
            &["tcp", "server", "--model", model, "--listen", "127.0.0.1:0"],
            ("TERM", 15),
            Duration::from_millis(800),
            Load::Tcp,
            true,
        );
    }
    stops_cleanly(
        &["udp", "server", "--listen", "127.0.0.1:0"],
        ("TERM", 15),
        Duration::from_millis(800),
        Load::Udp,
        true,
    );
}

#[test]
fn the_udp_server_stops_cleanly_under_load() {
    each_moment(&["udp", "server", "--listen", "127.0.0.1:0"], Load::Udp, 6);
}

#[test]
fn every_demo_stops_cleanly_and_leaves_no_child() {
    for args in [
        &["tcp", "demo", "--model", "iterative"][..],
        &["tcp", "demo", "--model", "fork"],
        &["tcp", "demo", "--model", "poll"],
        &["udp", "demo"],
        &["fifo"],
        &["pipe", "--fill"],
        &["pipe", "--forget-close"],
    ] {
        each_moment(args, Load::None, 6);
    }
}

#[test]
fn the_tour_stops_cleanly_at_any_section() {
    for (i, ms) in [3u64, 700, 1500, 2600].into_iter().enumerate() {
        stops_cleanly(
            &["tour"],
            SIGNALS[i % 3],
            Duration::from_millis(ms),
            Load::None,
            false,
        );
    }
}

#[test]
fn fifo_ends_waiting_in_open_on_any_stop_signal_and_removes_its_fifo() {
    for (i, sig) in SIGNALS.iter().enumerate() {
        let dir = TempDir::new("fifo-sig");
        let path = dir.path().join("f");
        let p = path.to_str().expect("utf-8 path");
        let args: Vec<&str> = if i % 2 == 0 {
            vec!["fifo", "read", p]
        } else {
            vec!["fifo", "write", p, "hi"]
        };
        stops_cleanly(&args, *sig, delay(i * 2 + 3), Load::None, false);
        assert!(!path.exists(), "the FIFO ipclab made was removed");
    }
}

/// The clients, waiting for a reply that does not come (a listener that
/// never answers, a UDP port nobody reads), end on any stop signal.
#[test]
fn clients_waiting_for_a_reply_stop_cleanly() {
    let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taddr = mute.local_addr().expect("addr").to_string();
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let uaddr = sink.local_addr().expect("addr").to_string();
    for (i, sig) in SIGNALS.iter().enumerate() {
        for (proto, addr) in [("tcp", &taddr), ("udp", &uaddr)] {
            let args = [
                proto,
                "client",
                "--connect",
                addr,
                "--send",
                "hi",
                "--timeout",
                "30",
            ];
            stops_cleanly(&args, *sig, delay(i * 2 + 4), Load::None, false);
        }
    }
    drop(mute);
}

/// sniff, like tcpdump, says what it captured when Ctrl-C stops it.
#[test]
fn sniff_stops_on_sigint_and_says_what_it_captured() {
    if !crate::util::is_root() {
        crate::util::skip(
            "sniff_stops_on_sigint_and_says_what_it_captured",
            "needs root for an AF_PACKET socket",
        );
        return;
    }
    let mut child = ipclab()
        // Other programs talk on lo: a port nobody uses keeps the output
        // (read only at the end) from filling the pipe.
        .args([
            "--format", "json", "sniff", "-c", "1000", "-W", "60", "udp", "port", "9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read what it prints as it prints it: with other tests busy on lo, a
    // thousand frames are more than a pipe holds, and a sniffer blocked
    // writing its output would never reach the wait SIGINT ends.
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut stdout = stdout;
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    std::thread::sleep(Duration::from_millis(400));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = crate::util::wait_exit(&mut child, Duration::from_secs(10), "sniff after SIGINT");
    let out = reader.join().unwrap_or_default();
    assert_eq!(status.code(), Some(130));
    assert!(out.contains("captured before SIGINT"), "{out}");
    assert!(out.contains("stopped by SIGINT"), "{out}");
}

#[test]
fn the_rpc_demo_stops_cleanly_at_any_moment() {
    for (i, ms) in [0u64, 5, 40, 150, 400, 900, 1500, 2200]
        .into_iter()
        .enumerate()
    {
        stops_cleanly(
            &["rpc", "demo", "--calls", "4"],
            SIGNALS[i % SIGNALS.len()],
            Duration::from_millis(ms),
            Load::None,
            false,
        );
    }
}

/// Stopped at any moment — registering, serving, saving — the server
/// leaves nothing registered and no temp file next to its state file.
#[test]
fn a_registered_rpc_server_stops_cleanly_and_leaves_nothing_registered() {
    let mm = crate::rpc::Bg::start(&["rpc", "matchmaker", "--listen", "127.0.0.1", "--port", "0"]);
    let port = mm.addr.port().to_string();
    let dir = TempDir::new("rpc-signals");
    let state = dir.path().join("s.state");
    for i in 0..6 {
        let args = [
            "rpc",
            "server",
            "--listen",
            "127.0.0.1",
            "--register",
            "--matchmaker-port",
            &port,
            "--semantics",
            "exactly-once",
            "--state",
            state.to_str().expect("utf-8"),
        ];
        stops_cleanly(
            &args,
            SIGNALS[i % SIGNALS.len()],
            delay(i * 3 + 1),
            Load::Udp,
            false,
        );
        let ours: Vec<_> = crate::rpc::pmap_dump(mm.addr)
            .into_iter()
            .filter(|m| m[0] == crate::rpc::PROG)
            .collect();
        assert!(ours.is_empty(), "run {i}: still registered: {ours:?}");
        let temps: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .map(|e| e.file_name())
            .collect();
        assert!(temps.is_empty(), "run {i}: {temps:?}");
    }
}
