//! Fixed bytes in, strace 6.1's notation out (the expected strings follow
//! what `strace -f ip …` printed on this kernel for the same messages).

use super::notation::messages;
use super::*;

fn hdr(len: u32, ty: u16, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&pid.to_ne_bytes());
    v
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn end(name: &str, last: u8, mtu: Option<u32>, pid: Option<u32>) -> VethEnd {
    VethEnd {
        name: name.into(),
        mac: [2, 0, 0xc0, 0, 2, last],
        mtu,
        netns_pid: pid,
    }
}

#[test]
fn requests_print_as_strace_prints_ips() {
    assert_eq!(
        messages(&link_up(2, "lo")),
        r#"[{nlmsg_len=40, nlmsg_type=RTM_NEWLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK, nlmsg_seq=2, nlmsg_pid=0}, {ifi_family=AF_UNSPEC, ifi_type=ARPHRD_NETROM, ifi_index=0, ifi_flags=IFF_UP, ifi_change=0x1}, [{nla_len=7, nla_type=IFLA_IFNAME}, "lo"]]"#
    );
    assert_eq!(
        messages(&new_address(3, 2, "192.0.2.2".parse().expect("ip"), 24)),
        r#"[{nlmsg_len=40, nlmsg_type=RTM_NEWADDR, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE, nlmsg_seq=3, nlmsg_pid=0}, {ifa_family=AF_INET, ifa_prefixlen=24, ifa_flags=0, ifa_scope=RT_SCOPE_UNIVERSE, ifa_index=2}, [[{nla_len=8, nla_type=IFA_LOCAL}, inet_addr("192.0.2.2")], [{nla_len=8, nla_type=IFA_ADDRESS}, inet_addr("192.0.2.2")]]]"#
    );
    assert!(
        messages(&new_address(3, 2, "2001:db8:1::2".parse().expect("ip"), 64)).contains(
            r#"{ifa_family=AF_INET6, ifa_prefixlen=64, ifa_flags=IFA_F_NODAD, ifa_scope=RT_SCOPE_UNIVERSE, ifa_index=2}, [[{nla_len=20, nla_type=IFA_LOCAL}, inet_pton(AF_INET6, "2001:db8:1::2")]"#
        )
    );
    assert_eq!(
        messages(&new_route(
            4,
            false,
            None,
            RouteKind::Via("192.0.2.1".parse().expect("ip"))
        )),
        r#"[{nlmsg_len=36, nlmsg_type=RTM_NEWROUTE, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE, nlmsg_seq=4, nlmsg_pid=0}, {rtm_family=AF_INET, rtm_dst_len=0, rtm_src_len=0, rtm_tos=0, rtm_table=RT_TABLE_MAIN, rtm_protocol=RTPROT_BOOT, rtm_scope=RT_SCOPE_UNIVERSE, rtm_type=RTN_UNICAST, rtm_flags=0}, [{nla_len=8, nla_type=RTA_GATEWAY}, inet_addr("192.0.2.1")]]"#
    );
    let dst = ("203.0.113.0".parse().expect("ip"), 26);
    for (kind, name) in [
        (RouteKind::Unreachable, "RTN_UNREACHABLE"),
        (RouteKind::Prohibit, "RTN_PROHIBIT"),
        (RouteKind::Blackhole, "RTN_BLACKHOLE"),
    ] {
        let m = messages(&new_route(5, false, Some(dst), kind));
        assert!(m.contains(&format!("rtm_type={name}")), "{m}");
        assert!(
            m.contains(r#"[{nla_len=8, nla_type=RTA_DST}, inet_addr("203.0.113.0")]"#),
            "{m}"
        );
    }
    assert_eq!(
        messages(&dump_neighbours(6)),
        r#"[{nlmsg_len=28, nlmsg_type=RTM_GETNEIGH, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP, nlmsg_seq=6, nlmsg_pid=0}, {ndm_family=AF_INET, ndm_ifindex=0, ndm_state=NUD_NONE, ndm_flags=0, ndm_type=RTN_UNSPEC}]"#
    );
}

#[test]
fn a_veth_pair_shows_its_peer_decoded() {
    let m = messages(&new_veth(
        1,
        &end("eth0", 1, None, None),
        &end("eth0", 2, Some(1280), Some(4242)),
    ));
    assert!(m.starts_with("[{nlmsg_len=136, nlmsg_type=RTM_NEWLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE, nlmsg_seq=1, nlmsg_pid=0}"), "{m}");
    assert!(
        m.contains(r#"[{nla_len=9, nla_type=IFLA_INFO_KIND}, "veth"]"#),
        "{m}"
    );
    assert!(m.contains("[{nla_len=60, nla_type=VETH_INFO_PEER}, {ifi_family=AF_UNSPEC, ifi_type=ARPHRD_NETROM, ifi_index=0, ifi_flags=0, ifi_change=0}, [["), "{m}");
    assert!(m.contains("[{nla_len=10, nla_type=IFLA_ADDRESS}, 02:00:c0:00:02:02], [{nla_len=8, nla_type=IFLA_MTU}, 1280], [{nla_len=8, nla_type=IFLA_NET_NS_PID}, 4242]"), "{m}");
}

#[test]
fn the_kernels_ack_and_refusal_read_as_strace_prints_them() {
    // An ACK, capped: only the request's header comes back.
    let mut ack = hdr(36, 2, 0x100, 1, 4242);
    ack.extend_from_slice(&0i32.to_ne_bytes());
    ack.extend(hdr(40, 16, 5, 1, 0));
    assert_eq!(
        messages(&ack),
        "[{nlmsg_len=36, nlmsg_type=NLMSG_ERROR, nlmsg_flags=NLM_F_CAPPED, nlmsg_seq=1, nlmsg_pid=4242}, {error=0, msg={nlmsg_len=40, nlmsg_type=RTM_NEWLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK, nlmsg_seq=1, nlmsg_pid=0}}]"
    );
    assert_eq!(parse(&ack), vec![Reply::Ack { seq: 1 }]);
    // A refusal with the whole request in it (not capped).
    let req = link_up(7, "lo");
    let mut nack = hdr(20 + req.len() as u32, 2, 0, 7, 4242);
    nack.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
    nack.extend_from_slice(&req);
    let m = messages(&nack);
    assert!(
        m.contains("{error=-EEXIST, msg=[{nlmsg_len=40, nlmsg_type=RTM_NEWLINK"),
        "{m}"
    );
    assert!(m.contains("ifi_flags=IFF_UP, ifi_change=0x1}"), "{m}");
    assert_eq!(
        parse(&nack),
        vec![Reply::Error {
            seq: 7,
            errno: libc::EEXIST
        }]
    );
}

#[test]
fn a_neighbour_dump_lists_each_message() {
    let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
    body.extend_from_slice(&2u32.to_ne_bytes());
    body.extend_from_slice(&2u16.to_ne_bytes()); // NUD_REACHABLE
    body.extend_from_slice(&[0, 1]); // flags, RTN_UNICAST
    body.extend(nla(1, &[192, 0, 2, 1]));
    body.extend(nla(2, &[2, 0, 0xc0, 0, 2, 1]));
    body.extend(nla(4, &1u32.to_ne_bytes()));
    let mut ci = Vec::new();
    for v in [6006u32, 6, 6, 0] {
        ci.extend_from_slice(&v.to_ne_bytes());
    }
    body.extend(nla(3, &ci));
    let mut buf = hdr(16 + body.len() as u32, 28, 2, 9, 4242);
    buf.extend(&body);
    buf.extend(hdr(20, 3, 2, 9, 4242));
    buf.extend_from_slice(&0i32.to_ne_bytes());
    assert_eq!(
        messages(&buf),
        r#"[[{nlmsg_len=76, nlmsg_type=RTM_NEWNEIGH, nlmsg_flags=NLM_F_MULTI, nlmsg_seq=9, nlmsg_pid=4242}, {ndm_family=AF_INET, ndm_ifindex=2, ndm_state=NUD_REACHABLE, ndm_flags=0, ndm_type=RTN_UNICAST}, [[{nla_len=8, nla_type=NDA_DST}, inet_addr("192.0.2.1")], [{nla_len=10, nla_type=NDA_LLADDR}, 02:00:c0:00:02:01], [{nla_len=8, nla_type=NDA_PROBES}, 1], [{nla_len=20, nla_type=NDA_CACHEINFO}, {ndm_confirmed=6006, ndm_used=6, ndm_updated=6, ndm_refcnt=0}]]], [{nlmsg_len=20, nlmsg_type=NLMSG_DONE, nlmsg_flags=NLM_F_MULTI, nlmsg_seq=9, nlmsg_pid=4242}, 0]]"#
    );
    let replies = parse(&buf);
    assert_eq!(replies.len(), 2);
    assert_eq!(
        replies[0],
        Reply::Neighbour(Neighbour {
            ifindex: 2,
            ip: Some("192.0.2.1".parse().expect("ip")),
            mac: Some(vec![2, 0, 0xc0, 0, 2, 1]),
            state: "NUD_REACHABLE".into(),
        })
    );
    assert_eq!(replies[1], Reply::Done);
}

#[test]
fn strace_habits_for_odd_attributes() {
    // A string without its NUL (as `ip` sends "veth"), an unknown type, a nested flag.
    let mut body = vec![0u8; 16];
    body.extend(nla(18 | 0x8000, &nla(1, b"veth")));
    body.extend(nla(0x43, &[0]));
    let mut m = hdr(16 + body.len() as u32, 16, 1, 1, 0);
    m.extend(body);
    let s = messages(&m);
    assert!(
        s.contains(r#"[{nla_len=12, nla_type=NLA_F_NESTED|IFLA_LINKINFO}, [{nla_len=8, nla_type=IFLA_INFO_KIND}, "veth"...]]"#),
        "{s}"
    );
    assert!(
        s.contains(r#"[{nla_len=5, nla_type=0x43 /* IFLA_??? */}, "\x00"]"#),
        "{s}"
    );
}

#[test]
fn truncated_and_garbage_bytes_never_panic() {
    let whole = new_veth(
        1,
        &end("eth0", 1, Some(1500), None),
        &end("eth0", 2, None, Some(1)),
    );
    for cut in 0..whole.len() {
        let _ = messages(&whole[..cut]);
        let _ = parse(&whole[..cut]);
    }
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let _ = messages(&bytes);
        let _ = parse(&bytes);
    }
}
