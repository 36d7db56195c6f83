//! Issue 11: `ipclab bench`. The plumbing only — tables in the JSON, tiny
//! counts finishing quickly, children and servers reaped, temp paths gone,
//! the SVG accepted by a renderer, bad input refused. No speed is asserted:
//! speed is for `ipclab bench` and scripts/compare-peers.sh to report.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use crate::signals::{stops_cleanly, Load};
use crate::util::{
    have_tool, ipclab, privileged_required, run, run_cmd, skip, strace_crosscheck,
    unreaped_children, TempDir,
};

const LIMIT: Duration = Duration::from_secs(90);

/// The run's `table` event called `name`.
fn table(events: &[Value], name: &str) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "table" && e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} table in {events:?}"))
        .clone()
}

fn rows(t: &Value) -> Vec<Value> {
    t["rows"].as_array().expect("rows").clone()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Every mechanism, tiny: the two tables have the right rows and sane
/// figures, every child is reaped, the FIFOs' directory is gone.
#[test]
fn bench_ipc_measures_every_mechanism_and_cleans_up() {
    let tmp = TempDir::new("bench-ipc");
    let mut cmd = ipclab();
    cmd.env("TMPDIR", tmp.path()).args([
        "--format",
        "json",
        "bench",
        "ipc",
        "--round-trips",
        "200",
        "--seconds",
        "0.05",
        "--repeats",
        "2",
        "--chunk",
        "16384",
    ]);
    let r = run_cmd(&mut cmd, LIMIT);
    r.assert_ok();
    let ev = r.events();
    let lat = rows(&table(&ev, "ipc-latency"));
    let names: Vec<&str> = lat.iter().filter_map(|r| r["mechanism"].as_str()).collect();
    assert_eq!(
        names,
        [
            "pipe",
            "fifo",
            "unix",
            "unix-dgram",
            "shm",
            "tcp",
            "udp",
            "rpc-udp",
            "rpc-tcp"
        ]
    );
    for row in &lat {
        let (med, p99, mean) = (
            num(row, "median_us"),
            num(row, "p99_us"),
            num(row, "mean_us"),
        );
        assert!(med > 0.0 && p99 >= med && mean > 0.0, "{row}");
        assert!(num(row, "stddev_us") >= 0.0, "{row}");
        let trips = row["round_trips"].as_u64().expect("trips");
        assert!((1..=200).contains(&trips), "{row}");
    }
    let bw = rows(&table(&ev, "ipc-bandwidth"));
    let streams: Vec<&str> = bw.iter().filter_map(|r| r["mechanism"].as_str()).collect();
    assert_eq!(
        streams,
        ["pipe", "fifo", "unix", "unix-dgram", "shm", "tcp"]
    );
    for row in &bw {
        assert!(num(row, "mb_s") > 0.0, "{row}");
        assert_eq!(row["chunk"], 16384, "{row}");
    }
    let machine = rows(&table(&ev, "machine"));
    assert!(machine[0]["cpus"].as_u64() >= Some(1), "{machine:?}");
    assert!(
        machine[0]["placement"]
            .as_str()
            .is_some_and(|p| p.contains("pinned to CPU")),
        "{machine:?}"
    );
    let steps = r.steps();
    assert!(unreaped_children(&steps).is_empty(), "zombies");
    // One child per mechanism, and the pinning before them.
    assert_eq!(steps.iter().filter(|s| s["syscall"] == "clone").count(), 9);
    assert!(steps.iter().any(|s| s["syscall"] == "sched_setaffinity"));
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// `--svg` writes a chart an SVG renderer accepts; the text run shows the
/// tables with bars; `--no-pin` says where the ends ran.
#[test]
fn bench_ipc_draws_an_svg_and_text_bars() {
    let dir = TempDir::new("bench-svg");
    let svg = dir.path().join("ipc.svg");
    let r = run(
        &[
            "-q",
            "bench",
            "ipc",
            "--mechanisms",
            "pipe,shm",
            "--round-trips",
            "100",
            "--seconds",
            "0.05",
            "--repeats",
            "1",
            "--no-pin",
            "--svg",
            svg.to_str().expect("utf-8"),
        ],
        LIMIT,
    );
    r.assert_ok();
    assert!(r.stdout.contains("round trips of 32 bytes"), "{}", r.stdout);
    assert!(
        r.stdout.contains('█') || r.stdout.contains('▏'),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("not pinned"), "{}", r.stdout);
    assert!(r.stdout.contains("chart written to"), "{}", r.stdout);
    let doc = std::fs::read_to_string(&svg).expect("the chart");
    assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
    if !have_tool("rsvg-convert") {
        if privileged_required() {
            panic!("CI needs rsvg-convert (librsvg2-bin) to check the chart");
        }
        skip(
            "bench_ipc_draws_an_svg_and_text_bars",
            "rsvg-convert missing (apt-get install librsvg2-bin): the chart is not rendered",
        );
        return;
    }
    let png = dir.path().join("ipc.png");
    let out = std::process::Command::new("rsvg-convert")
        .arg(&svg)
        .arg("-o")
        .arg(&png)
        .output()
        .expect("rsvg-convert");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&png).expect("png").len() > 1000);
}

/// ipclab's own servers in each model, stopped and reaped after; every
/// connection of the fork and poll models served.
#[test]
fn bench_echo_drives_each_model_of_our_server() {
    let r = run(
        &[
            "--format",
            "json",
            "bench",
            "echo",
            "--connections",
            "3",
            "--requests",
            "300",
            "--seconds",
            "0.3",
        ],
        LIMIT,
    );
    r.assert_ok();
    let ev = r.events();
    let t = rows(&table(&ev, "echo"));
    let servers: Vec<&str> = t.iter().filter_map(|r| r["server"].as_str()).collect();
    assert_eq!(servers, ["ipclab iterative", "ipclab fork", "ipclab poll"]);
    for row in &t {
        let trips = row["trips"].as_u64().expect("trips");
        assert!(trips > 0 && trips <= 300, "{row}");
        assert!(num(row, "per_second") > 0.0 && num(row, "p99_us") >= num(row, "median_us"));
    }
    // The iterative server serves one client at a time: only the first.
    assert_eq!(t[0]["served"], "1/3");
    assert_eq!(t[1]["served"], "3/3");
    assert_eq!(t[2]["served"], "3/3");
    let steps = r.steps();
    assert!(unreaped_children(&steps).is_empty(), "servers not reaped");
    // Each server was stopped by SIGTERM from the bench.
    let kills = steps.iter().filter(|s| s["syscall"] == "kill").count();
    assert_eq!(kills, 3, "{steps:?}");
}

/// One connection from `lst`, or None after `limit` (a bench that failed
/// before connecting must not leave the test's server thread waiting).
fn accept_within(lst: &TcpListener, limit: Duration) -> Option<std::net::TcpStream> {
    lst.set_nonblocking(true).ok()?;
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok((c, _)) = lst.accept() {
            c.set_nonblocking(false).ok()?;
            return Some(c);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// `--target`: any echo server — here one in this test, on a thread.
#[test]
fn bench_echo_drives_any_echo_server_and_checks_every_byte() {
    let lst = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = lst.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let mut handles = Vec::new();
        for _ in 0..2 {
            let Some(mut c) = accept_within(&lst, Duration::from_secs(30)) else {
                break;
            };
            handles.push(std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(20)));
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.join();
        }
    });
    let target = addr.to_string();
    let r = run(
        &[
            "--format",
            "json",
            "bench",
            "echo",
            "--target",
            &target,
            "--connections",
            "2",
            "--requests",
            "200",
            "--size",
            "100",
        ],
        LIMIT,
    );
    r.assert_ok();
    let t = rows(&table(&r.events(), "echo"));
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["server"], target.as_str());
    assert_eq!(t[0]["trips"], 200);
    assert_eq!(t[0]["unanswered"], 0);
    let _ = server.join();
}

/// A server that answers with other bytes is caught.
#[test]
fn bench_echo_refuses_a_server_that_changes_the_bytes() {
    let lst = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = lst.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        if let Some(mut c) = accept_within(&lst, Duration::from_secs(30)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(20)));
            let mut buf = [0u8; 64];
            if let Ok(n) = c.read(&mut buf) {
                buf[..n].make_ascii_uppercase();
                let _ = c.write_all(&buf[..n]);
            }
            let _ = c.read(&mut buf);
        }
    });
    let target = addr.to_string();
    let r = run(
        &["bench", "echo", "--target", &target, "--connections", "1"],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("a reply was not what was sent"),
        "{}",
        r.stderr
    );
    let _ = server.join();
}

#[test]
fn bench_echo_over_udp_uses_our_udp_server() {
    let r = run(
        &[
            "--format",
            "json",
            "bench",
            "echo",
            "--udp",
            "--connections",
            "2",
            "--requests",
            "200",
            "--seconds",
            "0.3",
        ],
        LIMIT,
    );
    r.assert_ok();
    let t = rows(&table(&r.events(), "echo"));
    assert_eq!(t[0]["server"], "ipclab udp");
    assert!(t[0]["trips"].as_u64() > Some(0));
    assert!(unreaped_children(&r.steps()).is_empty());
}

/// The three ways, each a fresh ipclab started with execve.
#[test]
fn bench_trace_compares_untraced_ipclab_and_strace() {
    let r = run(
        &[
            "--format",
            "json",
            "bench",
            "trace",
            "--iterations",
            "500",
            "--seconds",
            "2",
        ],
        LIMIT,
    );
    r.assert_ok();
    let t = rows(&table(&r.events(), "trace-cost"));
    let ways: Vec<&str> = t.iter().filter_map(|r| r["way"].as_str()).collect();
    if have_tool("strace") {
        assert_eq!(ways, ["untraced", "ipclab", "strace"]);
    } else {
        assert_eq!(ways, ["untraced", "ipclab"]);
    }
    for row in &t {
        assert_eq!(row["calls"], 1000, "{row}");
        assert!(num(row, "ns_per_call") > 0.0, "{row}");
    }
    let steps = r.steps();
    assert!(steps.iter().any(|s| s["syscall"] == "execve"));
    assert!(unreaped_children(&steps).is_empty());
}

#[test]
fn bench_refuses_bad_input_in_one_line() {
    for (args, needle) in [
        (
            &["bench", "ipc", "--mechanisms", "pipe,carrier-pigeon"][..],
            "no mechanism",
        ),
        (&["bench", "ipc", "--mechanisms", ","], "is empty"),
        (
            &["bench", "ipc", "--seconds", "0"],
            "--seconds 0 is out of range",
        ),
        (&["bench", "ipc", "--seconds", "nan"], "out of range"),
        (&["bench", "ipc", "--pin", "100000"], "--pin 100000"),
        (
            &["bench", "ipc", "--size", "70000", "--mechanisms", "udp"],
            "65507",
        ),
        (
            &["bench", "ipc", "--svg", "/nonexistent/dir/x.svg"],
            "does not exist",
        ),
        (
            &["bench", "ipc", "--pin", "0", "--no-pin"],
            "cannot be used with",
        ),
        (&["bench", "echo", "--target", "nowhere"], "--target"),
        (&["bench", "echo", "--models", "threads"], "no model"),
        (&["bench", "echo", "--connections", "0"], "0"),
        (&["bench", "trace", "--iterations", "0"], "0"),
        (&["bench", "trace", "--ways", "dtrace"], "no way"),
        (
            &[
                "bench",
                "loop",
                "--iterations",
                "1",
                "--seconds",
                "1",
                "--result-fd",
                "1",
            ],
            "not an open pipe",
        ),
    ] {
        let r = run(args, Duration::from_secs(10));
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: a step before the refusal");
    }
}

/// Ctrl-C (and TERM, HUP) in the middle of the loops: exit 128+N, every
/// child gone, the FIFOs' directory removed.
#[test]
fn bench_stops_cleanly_at_any_moment() {
    let ipc = [
        "bench",
        "ipc",
        "--mechanisms",
        "fifo,shm,tcp",
        "--seconds",
        "0.5",
    ];
    for (i, ms) in [1u64, 30, 200, 700, 1300].into_iter().enumerate() {
        let sig = crate::signals::SIGNALS[i % 3];
        stops_cleanly(&ipc, sig, Duration::from_millis(ms), Load::None, false);
    }
    let echo = ["bench", "echo", "--connections", "4", "--seconds", "1"];
    for (i, ms) in [5u64, 400, 1500].into_iter().enumerate() {
        let sig = crate::signals::SIGNALS[i % 3];
        stops_cleanly(&echo, sig, Duration::from_millis(ms), Load::None, false);
    }
}

#[test]
fn strace_agrees_with_bench_setup() {
    for args in [
        &[
            "bench",
            "ipc",
            "--round-trips",
            "50",
            "--seconds",
            "0.05",
            "--repeats",
            "1",
        ][..],
        &[
            "bench",
            "echo",
            "--connections",
            "2",
            "--requests",
            "50",
            "--seconds",
            "0.2",
            "--models",
            "fork,poll",
        ],
        // Not strace's way: strace cannot trace a process strace traces.
        &[
            "bench",
            "trace",
            "--iterations",
            "100",
            "--ways",
            "untraced,ipclab",
        ],
    ] {
        if let Some(r) = strace_crosscheck("strace_agrees_with_bench_setup", args, LIMIT) {
            r.assert_ok();
        }
    }
}
