//! `ipclab net`: each experiment as root and as an unprivileged user (who
//! gets a user namespace), checked through its JSON and its real effects;
//! nothing left behind after a normal end, an error and Ctrl-C; bad input.
//! Traffic stays inside the namespaces the runs make (documentation ranges).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    self, is_root, leaked_fds, run, run_cmd, run_unprivileged, skip, spawn, unreaped_children, Run,
};

pub(crate) const LIMIT: Duration = Duration::from_secs(90);

/// The run as this user and, when root, as nobody too (setpriv).
pub(crate) fn runs(test: &str, args: &[&str]) -> Vec<(&'static str, Run)> {
    let mut full = vec!["--format", "json", "net"];
    full.extend_from_slice(args);
    let mut out = vec![(if is_root() { "root" } else { "user" }, run(&full, LIMIT))];
    if is_root() {
        // An unprivileged uid of its own (not nobody, whose process count
        // another test limits with RLIMIT_NPROC).
        if let Some(r) = run_unprivileged(test, "65531", "65531", &full, LIMIT) {
            out.push(("nobody", r));
        }
    }
    out
}

/// The host's network interfaces, as the kernel lists them.
pub(crate) fn host_links() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every process the run forked is gone (reaped, not just exited).
pub(crate) fn all_gone(r: &Run) -> bool {
    let pids: Vec<i64> = r
        .steps()
        .iter()
        .filter(|s| s["syscall"] == "clone")
        .filter_map(|s| s["ret"].as_i64())
        .collect();
    util::wait_until(Duration::from_secs(5), || {
        pids.iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
    })
}

/// Checks what every run shares: exit 0, three hosts each in a new
/// network namespace, reaped, no descriptor left open, a user namespace
/// exactly when unprivileged.
pub(crate) fn common(label: &str, r: &Run) {
    r.assert_ok();
    let steps = r.steps();
    let unshares: Vec<&Value> = steps.iter().filter(|s| s["syscall"] == "unshare").collect();
    let netns = unshares
        .iter()
        .filter(|s| s["args"][0] == "CLONE_NEWNET")
        .count();
    assert_eq!(netns, 3, "{label}: three hosts, three network namespaces");
    let userns = unshares.iter().any(|s| s["args"][0] == "CLONE_NEWUSER");
    assert_eq!(
        userns,
        label != "root",
        "{label}: a user namespace iff unprivileged"
    );
    if userns {
        assert!(
            steps.iter().any(|s| s["syscall"] == "write"
                && s["args"][1].as_str().unwrap_or("").starts_with("\"0 ")),
            "{label}: uid_map written"
        );
    }
    assert!(
        steps.iter().any(|s| s["syscall"] == "setns"),
        "{label}: setns"
    );
    assert!(unreaped_children(&steps).is_empty(), "{label}: zombies");
    assert!(
        leaked_fds(&steps).is_empty(),
        "{label}: leaked {:?}",
        leaked_fds(&steps)
    );
    assert!(all_gone(r), "{label}: a process outlived the run");
    // Every rtnetlink request was answered with an ACK.
    let acks = steps
        .iter()
        .filter(|s| {
            s["syscall"] == "recvmsg" && s["args"][1].as_str().unwrap_or("").contains("NLMSG_ERROR")
        })
        .collect::<Vec<_>>();
    assert!(acks.len() >= 20, "{label}: {} netlink answers", acks.len());
    for a in acks {
        assert!(
            a["args"][1].as_str().unwrap_or("").contains("{error=0,"),
            "{label}: refused: {a}"
        );
    }
}

pub(crate) fn text(r: &Run) -> String {
    r.messages().join("\n")
}

/// The captured frames' lines (`sniff -e` style: time, direction, MACs).
pub(crate) fn frame_lines(t: &str) -> Vec<&str> {
    t.lines().filter(|l| l.contains(", ethertype ")).collect()
}

fn connect_errno(r: &Run, ip: &str) -> Option<String> {
    r.steps()
        .into_iter()
        .find(|s| s["syscall"] == "connect" && s["args"][1].as_str().unwrap_or("").contains(ip))
        .and_then(|s| s["errno"].as_str().map(str::to_string))
}

#[test]
fn net_arp_shows_who_has_and_is_at_with_the_veths_macs() {
    let before = host_links();
    for (label, r) in runs("net_arp", &["arp"]) {
        common(label, &r);
        // The MACs ipclab gave the veths, in the RTM_NEWLINK it sent...
        let newlink = r
            .steps()
            .into_iter()
            .find(|s| {
                s["syscall"] == "sendmsg"
                    && s["args"][1]
                        .as_str()
                        .unwrap_or("")
                        .contains("nla_type=VETH_INFO_PEER")
            })
            .expect("veth creation");
        let req = newlink["args"][1].as_str().unwrap_or("");
        assert!(
            req.contains("IFLA_ADDRESS}, 02:00:c0:00:02:01")
                && req.contains("IFLA_ADDRESS}, 02:00:c0:00:02:02"),
            "{req}"
        );
        assert!(req.contains("nla_type=IFLA_NET_NS_PID}"), "{req}");
        // ...in the ARP frames on the wire (tcpdump -e lines: the capture
        // keeps ARP only): who-has from the client's, is-at from the router's...
        let t = text(&r);
        let frames = frame_lines(&t);
        assert_eq!(frames.len(), 2, "{label}: the `arp` filter: {frames:?}");
        assert!(
            frames[0].contains(
                "Out 02:00:c0:00:02:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: \
                 Request who-has 192.0.2.1 tell 192.0.2.2, length 28"
            ),
            "{label}: who-has: {frames:?}"
        );
        assert!(
            frames[1].contains(
                "In  02:00:c0:00:02:01 > 02:00:c0:00:02:02, ethertype ARP (0x0806), length 42: \
                 Reply 192.0.2.1 is-at 02:00:c0:00:02:01, length 28"
            ),
            "{label}: is-at: {frames:?}"
        );
        // ...and in the kernel's neighbour table (RTM_GETNEIGH).
        let neigh = r
            .steps()
            .into_iter()
            .find(|s| {
                s["syscall"] == "recvmsg"
                    && s["args"][1].as_str().unwrap_or("").contains("RTM_NEWNEIGH")
            })
            .expect("neighbour dump");
        let dump = neigh["args"][1].as_str().unwrap_or("");
        assert!(
            dump.contains("NDA_LLADDR}, 02:00:c0:00:02:01")
                && dump.contains("inet_addr(\"192.0.2.1\")"),
            "{dump}"
        );
        assert!(t.contains("192.0.2.1 lladdr 02:00:c0:00:02:01"), "{t}");
    }
    assert_eq!(host_links(), before, "the host's interfaces changed");
}

#[test]
fn net_tcp_and_udp_cross_the_router_which_rewrites_the_macs() {
    // On the server's eth0, the client's packets come from the router's
    // MAC (02:00:c6:33:64:01) with the client's own IP address.
    for (exp, first) in [("tcp", "Flags [S], seq"), ("udp", "UDP, length 14")] {
        for (label, r) in runs("net_tcp_udp", &[exp]) {
            common(label, &r);
            let t = text(&r);
            assert!(t.contains("reply"), "{label} {exp}: {t}");
            let frames = frame_lines(&t);
            assert_eq!(frames.len(), 3, "{label} {exp}: {frames:?}");
            assert!(
                frames.iter().all(|l| l.contains("ethertype IPv4 (0x0800)")
                    && (l.contains(": 192.0.2.2.") || l.contains(" > 192.0.2.2."))
                    && l.contains("198.51.100.2.8989")),
                "{label} {exp}: only the experiment's traffic: {frames:?}"
            );
            assert!(
                frames[0].contains("In  02:00:c6:33:64:01 > 02:00:c6:33:64:02, ethertype IPv4")
                    && frames[0].contains(": 192.0.2.2.")
                    && frames[0].contains(&format!("> 198.51.100.2.8989: {first}")),
                "{label} {exp}: {frames:?}"
            );
            assert!(
                frames[1].contains("Out 02:00:c6:33:64:02 > 02:00:c6:33:64:01"),
                "{label} {exp}: the answer goes back to the router: {frames:?}"
            );
            if exp == "tcp" {
                let accept = r
                    .steps()
                    .into_iter()
                    .find(|s| s["syscall"] == "accept4")
                    .expect("accept4");
                assert!(
                    accept["args"][1]
                        .as_str()
                        .unwrap_or("")
                        .contains("192.0.2.2"),
                    "no NAT: the server sees the client's own address"
                );
            }
        }
    }
}

#[test]
fn net_ttl_gets_time_exceeded_from_the_router() {
    for (label, r) in runs("net_ttl", &["ttl"]) {
        common(label, &r);
        let t = text(&r);
        assert!(
            t.contains("bytes from 198.51.100.2: icmp_seq=1 ttl=63"),
            "{label}: {t}"
        );
        assert!(
            t.contains("From 192.0.2.1 icmp_seq=1 Time to live exceeded"),
            "{label}: {t}"
        );
        assert!(r.steps().iter().any(|s| s["syscall"] == "setsockopt"
            && s["args"][2] == "IP_TTL"
            && s["args"][3] == "[1]"));
    }
}

#[test]
fn net_unreachable_gives_ehostunreach_three_ways() {
    for (label, r) in runs("net_unreachable", &["unreachable"]) {
        common(label, &r);
        for ip in ["203.0.113.1", "203.0.113.65", "192.0.2.99"] {
            assert_eq!(
                connect_errno(&r, ip).as_deref(),
                Some("EHOSTUNREACH"),
                "{label}: {ip}"
            );
        }
        let t = text(&r);
        assert!(
            t.contains("From 192.0.2.1 icmp_seq=1 Destination Host Unreachable"),
            "{label}: {t}"
        );
        assert!(
            t.contains("From 192.0.2.1 icmp_seq=1 Packet filtered"),
            "{label}: {t}"
        );
        // ARP gives up after about 3 s; the router's ICMP comes at once.
        let slow = r
            .steps()
            .into_iter()
            .find(|s| {
                s["syscall"] == "connect"
                    && s["args"][1].as_str().unwrap_or("").contains("192.0.2.99")
            })
            .expect("connect");
        assert!(
            slow["elapsed_us"].as_u64().unwrap_or(0) > 2_000_000,
            "{slow}"
        );
        assert!(r
            .steps()
            .iter()
            .filter(|s| s["syscall"] == "connect")
            .all(|s| s["provoked"] == true));
    }
}

#[test]
fn net_timeout_is_etimedout_in_seconds() {
    for (label, r) in runs("net_timeout", &["timeout"]) {
        common(label, &r);
        assert_eq!(
            connect_errno(&r, "203.0.113.129").as_deref(),
            Some("ETIMEDOUT"),
            "{label}"
        );
        let c = r
            .steps()
            .into_iter()
            .find(|s| s["syscall"] == "connect")
            .expect("connect");
        let us = c["elapsed_us"].as_u64().unwrap_or(0);
        assert!(
            (2_000_000..10_000_000).contains(&us),
            "{label}: TCP_SYNCNT bounds it: {us} µs"
        );
        assert!(r.steps().iter().any(|s| s["args"][2] == "TCP_SYNCNT"));
    }
}

#[test]
fn net_mtu_fragments_and_fragmentation_needed() {
    for (label, r) in runs("net_mtu", &["mtu"]) {
        common(label, &r);
        let t = text(&r);
        // Later fragments: frames from the client with no UDP header
        // (tcpdump's `ip-proto-17`), kept by the filter `udp`; those that
        // fill the 1280-byte link are 1276-byte packets, 1290-byte frames.
        let frames = frame_lines(&t);
        let frags: Vec<&&str> = frames
            .iter()
            .filter(|l| l.contains(": 192.0.2.2 > 198.51.100.2: ip-proto-17"))
            .collect();
        assert!(frags.len() >= 2, "{label}: fragments seen: {frames:?}");
        // The first fragment carries the UDP header, and with it the
        // datagram's whole length (as tcpdump shows it).
        assert!(
            frames.iter().any(|l| l.contains("length 1290: 192.0.2.2.")
                && l.contains("> 198.51.100.2.8989: UDP, length 3000")),
            "{label}: the first fragment: {frames:?}"
        );
        assert!(
            frames
                .iter()
                .any(|l| l.contains("In  02:00:c6:33:64:01 > 02:00:c6:33:64:02, ethertype IPv4 (0x0800), length 1290: 192.0.2.2 > 198.51.100.2:")),
            "{label}: 1280-byte link: {frames:?}"
        );
        // The server still reads the whole datagram, reassembled.
        assert!(
            r.steps()
                .iter()
                .any(|s| s["syscall"] == "recvfrom" && s["ret"] == 3000),
            "{label}"
        );
        assert!(
            t.contains("From 192.0.2.1 icmp_seq=1 Frag needed and DF set"),
            "{label}: {t}"
        );
        assert!(
            t.contains("icmp_seq=2 ttl=63"),
            "{label}: the second request is fragmented and answered: {t}"
        );
        let mtu = r
            .steps()
            .into_iter()
            .find(|s| {
                s["syscall"] == "sendmsg"
                    && s["args"][1]
                        .as_str()
                        .unwrap_or("")
                        .contains("IFLA_MTU}, 1280")
            })
            .is_some();
        assert!(mtu, "{label}: the link's MTU was set with IFLA_MTU");
    }
}

#[test]
fn net_demo_runs_every_experiment_on_one_topology() {
    let before = host_links();
    for (label, r) in runs("net_demo", &["demo"]) {
        common(label, &r);
        let rows = r.summary();
        for lab in [
            "net topology",
            "net arp",
            "net tcp",
            "net udp",
            "net ttl",
            "net unreachable",
            "net timeout",
            "net mtu",
            "net rpc",
        ] {
            assert!(
                rows.iter()
                    .any(|row| row["lab"] == lab && row["result"] == "ok"),
                "{label}: {lab}: {rows:?}"
            );
        }
    }
    assert_eq!(host_links(), before);
}

#[test]
fn net_bad_input_is_refused_before_any_step() {
    for (args, needle) in [
        (&["net", "bogus"][..], "possible values"),
        (&["net"][..], "net"),
        (&["net", "arp", "--keep"][..], "--keep"),
        (&["net", "rpc", "--keep"][..], "--keep"),
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: nothing runs");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn net_says_which_setting_refuses_user_namespaces() {
    if !is_root() || !util::have_tool("unshare") || !util::have_tool("setpriv") {
        skip("net_says_which_setting_refuses_user_namespaces", "needs root, unshare and setpriv to make a user namespace whose max_user_namespaces is 0");
        return;
    }
    // In a user namespace of the test's own, user.max_user_namespaces = 0
    // (that namespace's limit only); ipclab runs there without capabilities.
    let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --inh-caps=-all --bounding-set=-all \"$0\" \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-U",
        "-r",
        "sh",
        "-c",
        script,
        env!("CARGO_BIN_EXE_ipclab"),
        "--format",
        "json",
        "net",
        "arp",
    ]);
    let r = run_cmd(&mut cmd, LIMIT);
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let unshare = r
        .steps()
        .into_iter()
        .find(|s| s["syscall"] == "unshare")
        .expect("unshare step");
    assert_eq!(unshare["errno"], "ENOSPC");
    assert!(
        r.stderr.contains("user.max_user_namespaces = 0"),
        "{}",
        r.stderr
    );
    assert!(
        !r.steps().iter().any(|s| s["syscall"] == "clone"),
        "no host was started"
    );
}

#[test]
fn net_leaves_nothing_after_an_error() {
    if !util::have_tool("prlimit") {
        skip("net_leaves_nothing_after_an_error", "needs prlimit");
        return;
    }
    let before = host_links();
    // Seven descriptors (0 to 6): the hosts start, then the first
    // rtnetlink socket (fd 7) fails with EMFILE — an error mid-run.
    let mut cmd = Command::new("prlimit");
    cmd.args([
        "--nofile=7:7",
        env!("CARGO_BIN_EXE_ipclab"),
        "--format",
        "json",
        "net",
        "arp",
    ]);
    let r = run_cmd(&mut cmd, LIMIT);
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let steps = r.steps();
    assert!(steps.iter().any(|s| s["errno"] == "EMFILE"), "{}", r.stdout);
    assert_eq!(
        steps
            .iter()
            .filter(|s| s["syscall"] == "unshare" && s["args"][0] == "CLONE_NEWNET")
            .count(),
        3
    );
    assert!(unreaped_children(&steps).is_empty());
    assert!(all_gone(&r));
    assert_eq!(host_links(), before);
}

#[test]
fn net_ctrl_c_tears_everything_down() {
    let before = host_links();
    let mut p = spawn(&["--format", "json", "net", "timeout"]);
    // The timeout experiment sits about 3 s in connect(): SIGINT lands there
    // or in the set-up before it.
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    let _ = Command::new("kill")
        .args(["-INT", &p.pid().to_string()])
        .status();
    let r = std::mem::replace(&mut p, util::Spawned { child: None });
    drop(p);
    let r = r.wait_timeout(Duration::from_secs(20));
    assert_eq!(r.code(), Some(130), "{}\n{}", r.stdout, r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let steps = r.steps();
    assert!(unreaped_children(&steps).is_empty(), "{}", r.stdout);
    assert!(all_gone(&r));
    assert_eq!(host_links(), before);
}

#[test]
fn net_keep_holds_the_hosts_until_enter() {
    if !util::have_tool("script")
        || !util::have_tool("nsenter")
        || !util::have_tool("ip")
        || !is_root()
    {
        skip(
            "net_keep_holds_the_hosts_until_enter",
            "needs root, script, nsenter and ip",
        );
        return;
    }
    use std::io::{BufRead, Write};
    let cmd = format!(
        "{} -q --no-color net arp --keep",
        env!("CARGO_BIN_EXE_ipclab")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let mut enter = None;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("client  nsenter") => {
                enter = line.split("client  ").nth(1).map(|s| s.trim().to_string());
            }
            Ok(line) if line.contains("press Enter") => break,
            _ => {}
        }
    }
    let enter = enter.expect("an nsenter line for the client");
    let mut words: Vec<String> = enter.split_whitespace().map(str::to_string).collect();
    words.extend(["ip", "-br", "addr"].map(String::from));
    let r = run_cmd(
        Command::new(&words[0]).args(&words[1..]),
        Duration::from_secs(10),
    );
    assert!(
        r.stdout.contains("192.0.2.2/24"),
        "inside the client: {}",
        r.stdout
    );
    let _ = child.stdin.as_mut().expect("stdin").write_all(b"\n");
    let st = util::wait_exit(
        &mut child,
        Duration::from_secs(20),
        "net --keep after Enter",
    );
    assert!(st.success());
}
