//! ipclab's filter compiler against tcpdump's: the same expressions, run
//! on the same crafted frames, must accept and reject the same ones.
//!
//! tcpdump compiles for a link type without opening an interface when it
//! is given a file: `tcpdump -ddd -r EMPTY.pcap EXPR` prints its optimised
//! program in decimal, so no privilege is needed. Both programs run in
//! ipclab's interpreter here; `sniff_r_keeps_what_tcpdump_r_keeps` (in
//! sniff.rs) runs tcpdump's own filter through libpcap on a file instead.

use std::process::Command;

use ipclab::packet::filter::{self, Filter};

use crate::util::{have_tool, skip, TempDir};

/// Expressions of every form ipclab takes.
pub const EXPRESSIONS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "ip",
    "ip6",
    "arp",
    "port 80",
    "src port 80",
    "dst port 53",
    "src or dst port 8989",
    "src and dst port 1",
    "tcp port 80",
    "udp dst port 53 or 5353",
    "tcp src port 5 or dst port 6",
    "host 127.0.0.1",
    "src host 10.0.0.1",
    "dst host 1.2.3.4",
    "ip host 1.2.3.4",
    "src and dst host 127.0.0.1",
    "host ::1",
    "ip6 src host fe80::1",
    "dst host ::1 and udp",
    "tcp and port 8989",
    "not tcp",
    "!tcp && (port 1 || port 2)",
    "port 80 and (tcp or udp)",
    "udp port 53 and not src host 10.0.0.1",
    "icmp or icmp6",
    "not (host 127.0.0.1 or host ::1)",
    "tcp or udp and port 53",
    "ip6 and tcp and dst port 443",
    "host 1.2.3.4 or 10.0.0.1",
    "port 1 or port 2 or port 5 or port 6 or port 53 or port 80 or port 443 or port 1234",
];

/// An empty pcap file of link type Ethernet, for `tcpdump -r`.
pub fn empty_pcap(dir: &TempDir) -> std::path::PathBuf {
    let p = dir.path().join("empty.pcap");
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&262_144u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&p, h).expect("write the empty pcap");
    p
}

/// tcpdump's program for `expr`, or its error text.
pub fn tcpdump_program(empty: &std::path::Path, expr: &str) -> Result<Vec<filter::Insn>, String> {
    let out = Command::new("tcpdump")
        .arg("-ddd")
        .arg("-r")
        .arg(empty)
        .arg(expr)
        .output()
        .expect("run tcpdump");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    filter::from_decimal(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| "unreadable -ddd output".to_string())
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ports(sport: u16, dport: u16, rest: usize) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.resize(4 + rest, 0x5a);
    v
}

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag: u16, opts: usize, l4: &[u8]) -> Vec<u8> {
    let ihl = 5 + opts;
    let mut h = vec![0u8; ihl * 4];
    h[0] = 0x40 | ihl as u8;
    let total = (h.len() + l4.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    for o in h.iter_mut().skip(20) {
        *o = 1; // NOP options
    }
    h.extend_from_slice(l4);
    eth(0x0800, &h)
}

fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], frag_next: Option<u8>, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    let mut body = Vec::new();
    if let Some(n) = frag_next {
        body.extend_from_slice(&[n, 0, 0, 0, 0, 0, 0, 1]);
    }
    body.extend_from_slice(l4);
    h[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    h[6] = if frag_next.is_some() { 44 } else { next };
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(&body);
    eth(0x86dd, &h)
}

fn arp(ethertype: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    eth(ethertype, &a)
}

/// A few thousand frames that the expressions above tell apart: each
/// protocol over IPv4 and IPv6, ports and addresses that match and do not,
/// IPv4 options and later fragments, an IPv6 fragment header, ARP and
/// RARP, and noise. [`truncated`] adds frames cut short.
pub fn corpus() -> Vec<Vec<u8>> {
    let v4 = [[127, 0, 0, 1], [10, 0, 0, 1], [1, 2, 3, 4]];
    let mut lo6 = [0u8; 16];
    lo6[15] = 1;
    let mut ll6 = [0u8; 16];
    ll6[0] = 0xfe;
    ll6[1] = 0x80;
    ll6[15] = 1;
    let v6 = [lo6, ll6, [0x20; 16]];
    let port_list = [1u16, 2, 5, 6, 53, 80, 443, 1234, 5353, 8989];
    let mut out = Vec::new();
    for proto in [6u8, 17, 132, 1, 58, 47] {
        for (si, s) in v4.iter().enumerate() {
            let d = v4[(si + 1) % 3];
            for &sp in &port_list {
                let dp = port_list[(sp as usize * 7) % port_list.len()];
                let l4 = ports(sp, dp, 16);
                out.push(ipv4(proto, *s, d, 0, 0, &l4));
                out.push(ipv4(proto, *s, *s, 0, 1, &l4));
                out.push(ipv4(proto, *s, d, 0x2000, 0, &l4)); // MF, offset 0
                out.push(ipv4(proto, *s, d, 0x0010, 0, &l4)); // a later fragment
                out.push(ipv4(proto, *s, d, 0, 0, &ports(sp, sp, 8)));
            }
        }
        for (si, s) in v6.iter().enumerate() {
            let d = v6[(si + 1) % 3];
            for &sp in &port_list {
                let dp = port_list[(sp as usize * 3) % port_list.len()];
                let l4 = ports(sp, dp, 16);
                out.push(ipv6(proto, *s, d, None, &l4));
                out.push(ipv6(proto, *s, *s, None, &l4));
                out.push(ipv6(proto, *s, d, Some(proto), &l4));
                out.push(ipv6(proto, *s, d, None, &ports(sp, sp, 8)));
            }
        }
    }
    for s in v4 {
        for t in v4 {
            out.push(arp(0x0806, s, t));
            out.push(arp(0x8035, s, t));
        }
    }
    let mut seed = 0x2545_f491u32;
    for n in 0..200 {
        let mut f = Vec::new();
        for _ in 0..(n % 90) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            f.push(seed as u8);
        }
        if n % 3 == 0 && f.len() > 14 {
            f[12] = 0x08;
            f[13] = 0x00;
        }
        out.push(f);
    }
    out
}

/// Copies of some frames of `corpus` cut short. A load past the end of a
/// frame ends a BPF program with "drop", whatever the rest would say, so
/// two programs that test the same fields in another order may disagree
/// on these: tcpdump's optimiser reorders, ipclab's code does not.
pub fn truncated(corpus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in corpus.iter().step_by(17) {
        for cut in [0, 5, 13, 14, 20, 23, 24, 30, 34, 38, 40, 54, 55, 56, 57] {
            out.push(f[..cut.min(f.len())].to_vec());
        }
    }
    out
}

#[test]
fn compiled_filters_accept_what_tcpdumps_accept() {
    if !have_tool("tcpdump") {
        skip(
            "compiled_filters_accept_what_tcpdumps_accept",
            "needs tcpdump (apt-get install tcpdump)",
        );
        return;
    }
    let dir = TempDir::new("bpf");
    let empty = empty_pcap(&dir);
    let frames = corpus();
    for expr in EXPRESSIONS {
        let theirs = tcpdump_program(&empty, expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let ours = Filter::new(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .program;
        filter::validate(&ours).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut accepted = 0;
        for f in &frames {
            let t = filter::run(&theirs, f, f.len());
            let o = filter::run(&ours, f, f.len());
            assert_eq!(
                t != 0,
                o != 0,
                "{expr}: tcpdump says {t}, ipclab {o} for {f:02x?}\nours:\n{}",
                filter::dump(&ours, 1).join("\n")
            );
            accepted += usize::from(o != 0);
        }
        // Every expression must tell frames apart on this corpus.
        assert!(
            accepted > 0 && accepted < frames.len(),
            "{expr}: {accepted} of {}",
            frames.len()
        );
        // Cut short, a frame is dropped where a program first loads past
        // its end: both agree unless they load in another order.
        let mut differ = 0;
        let cut = truncated(&frames);
        for f in &cut {
            let (t, o) = (
                filter::run(&theirs, f, f.len()),
                filter::run(&ours, f, f.len()),
            );
            differ += usize::from((t != 0) != (o != 0));
        }
        if differ > 0 {
            eprintln!(
                "{expr}: {differ} of {} truncated frames judged otherwise (load order)",
                cut.len()
            );
        }
    }
}

#[test]
fn filters_tcpdump_refuses_are_refused() {
    if !have_tool("tcpdump") {
        skip(
            "filters_tcpdump_refuses_are_refused",
            "needs tcpdump (apt-get install tcpdump)",
        );
        return;
    }
    let dir = TempDir::new("bpf-bad");
    let empty = empty_pcap(&dir);
    for expr in [
        "80",
        "tcp or",
        "port 99999",
        "icmp port 3",
        "ip6 host 1.2.3.4",
        "portx 3",
        "(tcp",
        "tcp )",
    ] {
        assert!(
            tcpdump_program(&empty, expr).is_err(),
            "tcpdump took {expr}"
        );
        assert!(Filter::new(expr).is_err(), "ipclab took {expr}");
    }
}
