//! Diagrams of the labs that came after issue 13: the RPC demo (its lanes
//! and data arrows checked against its JSON, as the others' are), bench
//! (loops untraced: set-up steps only; its silenced servers are no lane;
//! its tables are no step), the net demo as root, and `sniff -d`, which
//! has nothing to draw.

use std::collections::BTreeSet;

use crate::diagram::{check_lanes_and_arrows, drawn, svg_data_arrows, svg_lanes, LIMIT};
use crate::util::{ipclab, is_root, run_cmd, skip, TempDir};

#[test]
fn rpc_demo_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    // Calls over UDP and TCP, to the matchmaker and the server, with
    // requests and replies dropped on purpose and sent again.
    check_lanes_and_arrows(&["rpc", "demo"], 100);
}

#[test]
fn bench_ipc_diagram_has_its_set_up_steps_alone() {
    // The measured loops are untraced: no data arrow, no step per message.
    check_lanes_and_arrows(
        &[
            "bench",
            "ipc",
            "--mechanisms",
            "pipe,unix,udp",
            "--round-trips",
            "50",
            "--seconds",
            "0.05",
            "--repeats",
            "1",
        ],
        0,
    );
}

/// bench echo's servers are silenced: they show nothing, so they are no
/// lane, and the fork that made each draws no arrow to nowhere. The run's
/// `table` lines, saved with it, are no step: `ipclab diagram` draws the
/// saved run as the live one.
#[test]
fn bench_echo_diagram_leaves_out_its_silenced_servers() {
    let dir = TempDir::new("diagram-bench-echo");
    let args = [
        "bench",
        "echo",
        "--models",
        "poll,fork",
        "--connections",
        "2",
        "--seconds",
        "0.1",
    ];
    let (run, svg) = drawn(&dir, &args);
    let steps = run.steps();
    let pids: BTreeSet<i64> = steps.iter().filter_map(|s| s["pid"].as_i64()).collect();
    let servers: Vec<i64> = steps
        .iter()
        .filter(|s| s["syscall"] == "clone")
        .filter_map(|s| s["ret"].as_i64())
        .collect();
    assert_eq!(servers.len(), 2, "one server per model: {steps:?}");
    for s in &servers {
        assert!(!pids.contains(s), "server {s} is silenced: {}", run.stdout);
    }
    assert_eq!(svg_lanes(&svg), pids);
    assert!(svg_data_arrows(&svg).is_empty());
    let tables = run
        .events()
        .into_iter()
        .filter(|e| e["type"] == "table")
        .count();
    assert!(tables >= 2, "the machine and echo tables: {}", run.stdout);

    let saved = dir.path().join("run.jsonl");
    std::fs::write(&saved, &run.stdout).expect("save the run");
    let again = dir.path().join("again.svg");
    let mut cmd = ipclab();
    cmd.arg("diagram").arg(&saved).arg("-o").arg(&again);
    let r = run_cmd(&mut cmd, LIMIT);
    r.assert_ok();
    let again = std::fs::read_to_string(&again).expect("again.svg");
    assert_eq!(svg_lanes(&again), pids);
}

#[test]
fn net_demo_diagram_has_the_lanes_and_data_arrows_of_its_json() {
    if !is_root() {
        skip(
            "net_demo_diagram_has_the_lanes_and_data_arrows_of_its_json",
            "needs root",
        );
        return;
    }
    // TCP and UDP repeaters across the router, between network namespaces.
    check_lanes_and_arrows(&["net", "demo"], 8);
}

#[test]
fn sniff_dump_has_nothing_to_draw() {
    let dir = TempDir::new("diagram-sniff-d");
    for flag in ["--diagram", "--html"] {
        let out = dir.path().join("x");
        let mut cmd = ipclab();
        cmd.arg(flag).arg(&out).args(["sniff", "-d", "icmp"]);
        let r = run_cmd(&mut cmd, LIMIT);
        assert_eq!(r.code(), Some(2), "{flag}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{flag}: {}", r.stderr);
        assert!(r.stderr.contains("sniff -d"), "{flag}: {}", r.stderr);
        assert!(r.stdout.is_empty() && !out.exists(), "{flag}: {r:?}");
    }
}
