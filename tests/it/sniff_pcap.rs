//! `ipclab sniff` and pcap files: `-w` written and read back by tcpdump
//! and by `-r`, TCP shown as tcpdump shows it, filters applied to a file as
//! tcpdump applies them, `-w` never through a symlink or into a FIFO, a
//! file owned by the user under sudo, damaged files, strace's view.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::sniff::{frames, is_frame, names, sniff_r, tcpdump_r, udp_sender, LIMIT};
use crate::sniff_filter::{corpus, EXPRESSIONS};
use crate::util::{
    have_tool, ipclab, run, run_as_nobody, run_cmd, skip, strace_crosscheck, TempDir,
};

#[test]
fn sniff_writes_a_pcap_that_tcpdump_and_sniff_r_read_back() {
    require_root!("sniff_writes_a_pcap_that_tcpdump_and_sniff_r_read_back");
    if !have_tool("tcpdump") {
        skip(
            "sniff_writes_a_pcap_that_tcpdump_and_sniff_r_read_back",
            "needs tcpdump (apt-get install tcpdump)",
        );
        return;
    }
    let dir = TempDir::new("sniff-w");
    let file = dir.path().join("udp.pcap");
    let f = file.to_str().expect("utf-8 path");
    let mut cmd = ipclab();
    cmd.env("TZ", "UTC").args([
        "--format", "json", "sniff", "-c", "4", "-W", "10", "-w", f, "udp", "port", "39395",
    ]);
    let child = crate::util::spawn_cmd(&mut cmd);
    thread::sleep(Duration::from_millis(300));
    let (stop, h) = udp_sender(39395);
    let r = child.wait_timeout(LIMIT);
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    r.assert_ok();
    let steps = r.lab_steps();
    let open = steps
        .iter()
        .find(|s| s["syscall"] == "openat")
        .expect("an openat");
    assert_eq!(
        open["args"][2],
        "O_WRONLY|O_CREAT|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC"
    );
    assert_eq!(open["args"][3], "0600");
    let fd = open["ret"].to_string();
    let writes = steps
        .iter()
        .filter(|s| s["syscall"] == "write" && s["args"][0] == fd.as_str())
        .count();
    assert_eq!(writes, 5, "a header and one record per frame");
    let live = frames(&r);
    assert_eq!(live.len(), 4);
    // tcpdump reads the same frames, with the kernel's stamps to the µs.
    let theirs = tcpdump_r(&file, &[]);
    let back = frames(&sniff_r(&file, &[]));
    assert_eq!(theirs, back);
    let strip_dir = |l: &String| format!("{}{}", &l[..16], &l[20..]);
    assert_eq!(live.iter().map(strip_dir).collect::<Vec<_>>(), back);
    // -r needs no privilege.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    if let Some(r) = run_as_nobody(
        "sniff_writes_a_pcap_that_tcpdump_and_sniff_r_read_back",
        &["--format", "json", "sniff", "-r", f],
        LIMIT,
    ) {
        r.assert_ok();
        assert_eq!(frames(&r).len(), 4);
    }
}

/// A TCP connection on lo: handshake, 5 bytes each way, close.
fn tcp_talk(port_tx: std::sync::mpsc::Sender<u16>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    port_tx.send(port).expect("send the port");
    thread::sleep(Duration::from_millis(400));
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut s, _) = l.accept().expect("accept");
    c.write_all(b"hello").expect("write");
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).expect("read");
    s.write_all(b"HELLO").expect("write");
    c.read_exact(&mut buf).expect("read");
    drop(c);
    thread::sleep(Duration::from_millis(50));
    drop(s);
}

#[test]
fn sniff_shows_tcp_as_tcpdump_does_relative_and_absolute() {
    require_root!("sniff_shows_tcp_as_tcpdump_does_relative_and_absolute");
    if !have_tool("tcpdump") {
        skip(
            "sniff_shows_tcp_as_tcpdump_does_relative_and_absolute",
            "needs tcpdump (apt-get install tcpdump)",
        );
        return;
    }
    let dir = TempDir::new("sniff-tcp");
    let file = dir.path().join("tcp.pcap");
    let f = file.to_str().expect("utf-8 path").to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let talk = thread::spawn(move || tcp_talk(tx));
    let port = rx.recv_timeout(LIMIT).expect("a port").to_string();
    let mut cmd = ipclab();
    cmd.env("TZ", "UTC").args([
        "--format", "json", "sniff", "-c", "20", "-W", "5", "-w", &f, "tcp", "port", &port,
    ]);
    let r = crate::util::spawn_cmd(&mut cmd).wait_timeout(LIMIT);
    talk.join().expect("the TCP talk");
    r.assert_ok();
    let live = frames(&r);
    assert!(live.len() >= 16, "{live:?}");
    assert!(live[0].contains("Flags [S], seq "), "{live:?}");
    assert!(
        live.iter()
            .any(|l| l.contains("Flags [P.], seq 1:6, ack 1, ")),
        "{live:?}"
    );
    for flags in [&[][..], &["-S"], &["-e"]] {
        let theirs = tcpdump_r(&file, flags);
        let ours = frames(&sniff_r(&file, flags));
        assert_eq!(theirs, ours, "with {flags:?}");
    }
    // -X and -A: tcpdump's lines, under each frame. (When a frame ends in
    // a newline, tcpdump -A shows an empty line; ipclab's trace has none.)
    for flag in ["-X", "-A"] {
        let theirs: Vec<String> = tcpdump_r(&file, &[flag])
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
        let mut cmd = ipclab();
        cmd.env("TZ", "UTC")
            .args(["--no-color", "sniff", flag, "-r", &f]);
        let out = run_cmd(&mut cmd, LIMIT);
        let ours: Vec<String> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once("] >> ").map(|(_, m)| m.to_string()))
            .filter(|m| !m.contains("packets read from"))
            .collect();
        assert_eq!(theirs, ours, "with {flag}");
    }
}

#[test]
fn sniff_r_keeps_what_tcpdump_r_keeps() {
    if !have_tool("tcpdump") {
        skip(
            "sniff_r_keeps_what_tcpdump_r_keeps",
            "needs tcpdump (apt-get install tcpdump)",
        );
        return;
    }
    // The crafted frames, one a second from the epoch: the time of day
    // (TZ=UTC) names each frame in both outputs.
    let dir = TempDir::new("sniff-r");
    let file = dir.path().join("corpus.pcap");
    let (mut out, mut bytes) = ipclab::packet::pcap::PcapOut::new().expect("header");
    let frames_in = corpus();
    for (i, f) in frames_in.iter().enumerate() {
        let rec = out
            .record(Duration::from_secs(i as u64 + 1), f, f.len())
            .expect("a record");
        bytes.extend(rec);
    }
    std::fs::write(&file, bytes).expect("write the corpus");
    let times =
        |lines: Vec<String>| -> Vec<String> { lines.iter().map(|l| l[..15].to_string()).collect() };
    for expr in EXPRESSIONS {
        let words: Vec<&str> = expr.split(' ').collect();
        // tcpdump dumps the bytes of what it cannot decode: frame lines only.
        let theirs = times(
            tcpdump_r(&file, &words)
                .into_iter()
                .filter(|l| is_frame(l))
                .collect(),
        );
        let r = sniff_r(&file, &words);
        r.assert_ok();
        let ours = times(frames(&r));
        assert_eq!(theirs, ours, "{expr}");
        assert!(!ours.is_empty() && ours.len() < frames_in.len(), "{expr}");
    }
}

#[test]
fn sniff_w_never_follows_a_symlink_nor_writes_a_fifo() {
    require_root!("sniff_w_never_follows_a_symlink_nor_writes_a_fifo");
    let dir = TempDir::new("sniff-w-safe");
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep me").expect("write");
    let link = dir.path().join("link.pcap");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let r = run(
        &[
            "--format",
            "json",
            "sniff",
            "-c",
            "1",
            "-W",
            "1",
            "-w",
            link.to_str().expect("utf-8"),
            "udp",
            "port",
            "9",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let open = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "openat")
        .expect("openat");
    assert_eq!(open["errno"], "ELOOP");
    assert_eq!(std::fs::read(&target).expect("read"), b"keep me");
    // A FIFO with a reader: opened (O_NONBLOCK), seen not to be a regular file, closed.
    let fifo = dir.path().join("fifo.pcap");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = {
        let fifo = fifo.clone();
        thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags_nonblock()
                .open(&fifo)
                .expect("open the FIFO");
            thread::sleep(Duration::from_millis(1500));
            let mut v = Vec::new();
            let _ = f.read_to_end(&mut v);
            v
        })
    };
    thread::sleep(Duration::from_millis(100));
    let r = run(
        &[
            "--format",
            "json",
            "sniff",
            "-c",
            "1",
            "-W",
            "1",
            "-w",
            fifo.to_str().expect("utf-8"),
            "udp",
            "port",
            "9",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    let written = reader.join().expect("reader");
    assert!(written.is_empty(), "nothing goes into a FIFO");
    // An existing regular file is replaced, as tcpdump -w replaces it.
    let old = dir.path().join("old.pcap");
    std::fs::write(&old, vec![b'x'; 1000]).expect("write");
    let r = run(
        &[
            "--format",
            "json",
            "sniff",
            "-c",
            "1",
            "-W",
            "0.5",
            "-w",
            old.to_str().expect("utf-8"),
            "udp",
            "port",
            "9",
        ],
        LIMIT,
    );
    r.assert_ok();
    assert!(names(&r.lab_steps()).contains(&"ftruncate".to_string()));
    assert_eq!(std::fs::metadata(&old).expect("stat").len(), 24);
}

/// `OpenOptions` with O_NONBLOCK, so opening a FIFO's read end never waits.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

#[test]
fn sniff_r_reports_damaged_files() {
    let dir = TempDir::new("sniff-r-bad");
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, b"this is no capture file at all").expect("write");
    let r = run(&["sniff", "-r", bad.to_str().expect("utf-8")], LIMIT);
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("not a pcap file"), "{}", r.stderr);
    let (mut out, mut bytes) = ipclab::packet::pcap::PcapOut::new().expect("header");
    bytes.extend(
        out.record(Duration::from_secs(1), &[0; 60], 60)
            .expect("a record"),
    );
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&bad, bytes).expect("write");
    let r = run(&["sniff", "-r", bad.to_str().expect("utf-8")], LIMIT);
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("cut short"), "{}", r.stderr);
    let r = run(&["sniff", "-r", "/nonexistent/x.pcap"], LIMIT);
    assert_eq!(r.code(), Some(1));
}

#[test]
fn strace_agrees_with_sniff_w_and_r() {
    require_root!("strace_agrees_with_sniff_w_and_r");
    let dir = TempDir::new("sniff-strace");
    let file = dir.path().join("s.pcap");
    let f = file.to_str().expect("utf-8").to_string();
    std::fs::write(&file, b"old contents").expect("write");
    let (stop, h) = udp_sender(39396);
    let r = strace_crosscheck(
        "strace_agrees_with_sniff_w_and_r",
        &[
            "sniff", "-c", "2", "-W", "10", "-w", &f, "-X", "udp", "port", "39396",
        ],
        LIMIT,
    );
    stop.store(true, Ordering::SeqCst);
    let _ = h.join();
    let Some(r) = r else {
        return;
    };
    r.assert_ok();
    let r = strace_crosscheck(
        "strace_agrees_with_sniff_w_and_r",
        &["sniff", "-r", &f, "-A", "udp"],
        LIMIT,
    )
    .expect("strace is there");
    r.assert_ok();
    assert_eq!(frames(&r).len(), 2);
}

#[test]
fn sniff_under_sudo_writes_the_file_as_the_user() {
    require_root!("sniff_under_sudo_writes_the_file_as_the_user");
    let dir = TempDir::new("sniff-sudo");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let file = dir.path().join("user.pcap");
    let mut cmd = ipclab();
    cmd.env("SUDO_UID", "65534").env("SUDO_GID", "65534").args([
        "--format",
        "json",
        "sniff",
        "-c",
        "1",
        "-W",
        "0.5",
        "-w",
        file.to_str().expect("utf-8"),
        "udp",
        "port",
        "9",
    ]);
    let r = run_cmd(&mut cmd, LIMIT);
    r.assert_ok();
    let steps = names(&r.lab_steps());
    let bind = steps.iter().position(|s| s == "bind").expect("bind");
    let drop = steps
        .iter()
        .position(|s| s == "setresuid")
        .expect("setresuid");
    let open = steps.iter().position(|s| s == "openat").expect("openat");
    assert!(bind < drop && drop < open, "{steps:?}");
    let meta = std::fs::metadata(&file).expect("the file");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o600);
}
