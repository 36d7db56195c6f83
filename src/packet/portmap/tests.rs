//! The matchmaker's bodies against rpcbind's own traffic (see `captured`).

use super::captured::*;
use super::proc_name;
use super::rpcb::*;
use super::*;
use crate::packet::rpc::record::{self, RecordReader};
use crate::packet::rpc::{AcceptStat, OpaqueAuth, ReplyBody, RpcMessage};
use crate::packet::xdr::Reader;

/// The message in a captured TCP record, or a UDP datagram as it is.
fn message(wire: &str, tcp: bool) -> (RpcMessage, Vec<u8>) {
    let bytes = hex(wire);
    let data = if tcp {
        let mut records = RecordReader::new().feed(&bytes).expect("one record");
        assert_eq!(records.len(), 1);
        records.remove(0).data
    } else {
        bytes
    };
    let m = RpcMessage::decode(&data).unwrap_or_else(|e| panic!("{wire}: {e}"));
    assert_eq!(m.encode().expect("re-encodes"), data, "{wire}");
    (m, data)
}

fn results(m: &RpcMessage) -> &[u8] {
    match m.as_reply() {
        Some(ReplyBody::Accepted {
            stat: AcceptStat::Success(r),
            ..
        }) => r,
        other => panic!("not a SUCCESS reply: {other:?}"),
    }
}

fn entry(prog: u32, vers: u32, netid: &str, addr: &str, owner: &str) -> Rpcb {
    Rpcb {
        prog,
        vers,
        netid: netid.into(),
        addr: addr.into(),
        owner: owner.into(),
    }
}

/// Each captured call, the version and procedure it is, and what its
/// arguments decode to.
fn calls() -> Vec<(&'static str, bool, u32, Call)> {
    let ipclab2 = Mapping {
        prog: 0x2000_0002,
        vers: 1,
        prot: IPPROTO_TCP,
        port: 40300,
    };
    vec![
        (PMAP_SET_CALL, true, 2, Call::Pmap(PmapCall::Set(ipclab2))),
        (
            RPCB3_SET_CALL,
            true,
            3,
            Call::Rpcb(RpcbCall::Set(entry(
                0x2000_0002,
                2,
                "tcp6",
                "::1.157.108",
                "ipclab",
            ))),
        ),
        (
            RPCB4_SET_CALL,
            true,
            4,
            Call::Rpcb(RpcbCall::Set(entry(
                0x2000_0002,
                3,
                "udp",
                "127.0.0.1.157.108",
                "ipclab",
            ))),
        ),
        (
            RPCB4_GETADDR_CALL,
            true,
            4,
            Call::Rpcb(RpcbCall::GetAddr(entry(
                PMAP_PROG,
                2,
                "tcp",
                "127.0.0.1.0.111",
                "libtirpc",
            ))),
        ),
        (PMAP_DUMP_CALL, true, 2, Call::Pmap(PmapCall::Dump)),
        (RPCB3_DUMP_CALL, true, 3, Call::Rpcb(RpcbCall::Dump)),
        (
            RPCB4_GETADDR_UDP_CALL,
            false,
            4,
            Call::Rpcb(RpcbCall::GetAddr(entry(
                0x2000_0001,
                1,
                "udp",
                "127.0.0.1.0.111",
                "libtirpc",
            ))),
        ),
        (
            PMAP_GETPORT_CALL,
            true,
            2,
            Call::Pmap(PmapCall::GetPort(Mapping {
                prog: 0x2000_0001,
                vers: 1,
                prot: IPPROTO_TCP,
                port: 0,
            })),
        ),
        (
            RPCB3_GETADDR_CALL,
            true,
            3,
            Call::Rpcb(RpcbCall::GetAddr(entry(0x2000_0001, 1, "tcp", "", ""))),
        ),
        (RPCB3_GETTIME_CALL, true, 3, Call::Rpcb(RpcbCall::GetTime)),
        (
            PMAP_UNSET_CALL,
            true,
            2,
            Call::Pmap(PmapCall::Unset(Mapping {
                prot: 0,
                port: 0,
                ..ipclab2
            })),
        ),
        (
            RPCB4_UNSET_CALL,
            true,
            4,
            Call::Rpcb(RpcbCall::Unset(entry(0x2000_0002, 2, "tcp6", "", "ipclab"))),
        ),
    ]
}

#[test]
fn every_captured_call_decodes_and_encodes_back() {
    for (wire, tcp, vers, want) in calls() {
        let (m, _) = message(wire, tcp);
        let call = m.as_call().expect("a call");
        assert_eq!((call.prog, call.vers), (PMAP_PROG, vers), "{wire}");
        assert_eq!(call.cred, OpaqueAuth::None);
        let got = Call::decode(call.vers, call.proc, &call.args).expect("valid arguments");
        assert_eq!(got, want, "{wire}");
        let (proc, args) = match &got {
            Call::Pmap(c) => (c.proc(), c.encode_args()),
            Call::Rpcb(c) => (c.proc(), c.encode_args()),
        };
        assert_eq!(proc, call.proc);
        assert_eq!(args.expect("fits"), call.args, "{wire}");
    }
}

/// A reply's results, of either family.
#[derive(Debug, PartialEq)]
enum Results {
    Pmap(PmapResult),
    Rpcb(u32, RpcbResult),
}

#[test]
fn every_captured_reply_decodes_and_encodes_back() {
    let addr = |vers, a: &str| {
        (
            RPCBPROC_GETADDR,
            Results::Rpcb(vers, RpcbResult::Addr(a.into())),
        )
    };
    let cases = [
        (
            PMAP_SET_REPLY,
            true,
            (PMAPPROC_SET, Results::Pmap(PmapResult::Bool(true))),
        ),
        (
            RPCB3_SET_REPLY,
            true,
            (RPCBPROC_SET, Results::Rpcb(3, RpcbResult::Bool(true))),
        ),
        (
            RPCB4_SET_REPLY,
            true,
            (RPCBPROC_SET, Results::Rpcb(4, RpcbResult::Bool(true))),
        ),
        (RPCB4_GETADDR_REPLY, true, addr(4, "127.0.0.1.0.111")),
        (RPCB4_GETADDR_TCP_REPLY, true, addr(4, "127.0.0.1.239.127")),
        (RPCB4_GETADDR_UDP_REPLY, false, addr(4, "127.0.0.1.251.66")),
        (
            PMAP_GETPORT_REPLY,
            true,
            (PMAPPROC_GETPORT, Results::Pmap(PmapResult::Port(61311))),
        ),
        (RPCB3_GETADDR_REPLY, true, addr(3, "127.0.0.1.239.127")),
        (RPCB4_GETADDR_TCP6_REPLY, true, addr(4, "127.0.0.1.157.108")),
        (
            RPCB3_GETTIME_REPLY,
            true,
            (
                RPCBPROC_GETTIME,
                Results::Rpcb(3, RpcbResult::Time(0x6b0e_b924)),
            ),
        ),
        (
            PMAP_GETPORT_UNKNOWN_REPLY,
            true,
            (PMAPPROC_GETPORT, Results::Pmap(PmapResult::Port(0))),
        ),
    ];
    for (wire, tcp, (proc, want)) in cases {
        let (m, _) = message(wire, tcp);
        let bytes = results(&m);
        let (got, again) = match &want {
            Results::Pmap(r) => (
                PmapResult::decode(proc, bytes).map(Results::Pmap),
                r.encode(),
            ),
            Results::Rpcb(vers, r) => (
                RpcbResult::decode(*vers, proc, bytes).map(|g| Results::Rpcb(*vers, g)),
                r.encode(),
            ),
        };
        assert_eq!(got.as_ref(), Ok(&want), "{wire}");
        assert_eq!(again.expect("fits"), bytes, "{wire}");
    }
}

fn pmap_dump(wire: &str) -> Vec<Mapping> {
    let (m, _) = message(wire, true);
    match PmapResult::decode(PMAPPROC_DUMP, results(&m)) {
        Ok(PmapResult::List(maps)) => {
            let again = PmapResult::List(maps.clone()).encode().expect("fits");
            assert_eq!(again, results(&m));
            maps
        }
        other => panic!("{other:?}"),
    }
}

fn rpcb_dump() -> Vec<Rpcb> {
    let (m, _) = message(RPCB3_DUMP_REPLY, true);
    match RpcbResult::decode(3, RPCBPROC_DUMP, results(&m)) {
        Ok(RpcbResult::List(list)) => {
            let again = RpcbResult::List(list.clone()).encode().expect("fits");
            assert_eq!(again, results(&m));
            list
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_pmap_dump_rpcinfo_p_got() {
    let maps = pmap_dump(PMAP_DUMP_REPLY);
    assert_eq!(maps.len(), 10);
    let text: Vec<String> = maps
        .iter()
        .map(|m| {
            let proto = protocol_name(m.prot).unwrap_or("?");
            format!("{} {} {proto} {}", m.prog, m.vers, m.port)
        })
        .collect();
    // As `rpcinfo -p 127.0.0.1` printed them.
    assert_eq!(
        text,
        [
            "100000 4 tcp 111",
            "100000 3 tcp 111",
            "100000 2 tcp 111",
            "100000 4 udp 111",
            "100000 3 udp 111",
            "100000 2 udp 111",
            "536870913 1 udp 64322",
            "536870913 1 tcp 61311",
            "536870914 1 tcp 40300",
            "536870914 3 udp 40300",
        ]
    );
    let after = pmap_dump(PMAP_DUMP_AFTER_UNSET_REPLY);
    assert_eq!(after.len(), 9, "UNSET took prog 0x20000002 vers 1");
    assert!(!after.iter().any(|m| m.prog == 0x2000_0002 && m.vers == 1));
}

#[test]
fn the_rpcbind_dump_rpcinfo_got_and_its_universal_addresses() {
    let list = rpcb_dump();
    assert_eq!(list.len(), 17);
    assert_eq!(
        list[0],
        entry(PMAP_PROG, 4, "tcp6", "::.0.111", "superuser")
    );
    assert_eq!(list[10].netid, "local");
    assert_eq!(list[10].addr, "/run/rpcbind.sock");
    assert_eq!(
        list[16],
        entry(0x2000_0002, 3, "udp", "127.0.0.1.157.108", "superuser")
    );
    for e in &list {
        if Netid::parse(&e.netid).is_some() {
            let addr = parse_uaddr(&e.addr).expect("rpcbind's own text");
            assert_eq!(uaddr(addr), e.addr);
            assert_eq!(addr.is_ipv6(), e.netid.ends_with('6'));
        }
    }
    // The IPv4 entries are the portmapper's view of the same table.
    let v4: Vec<Mapping> = list.iter().filter_map(Rpcb::to_mapping).collect();
    assert_eq!(v4, pmap_dump(PMAP_DUMP_REPLY));
    // A v2 SET shows up in the v3 table as rpcbind writes it.
    let set = Mapping {
        prog: 0x2000_0002,
        vers: 1,
        prot: IPPROTO_TCP,
        port: 40300,
    };
    assert!(list.contains(&set.to_rpcb("superuser").expect("tcp")));
}

#[test]
fn calls_and_replies_we_build_are_the_bytes_rpcbind_exchanged() {
    let set = PmapCall::Set(Mapping {
        prog: 0x2000_0002,
        vers: 1,
        prot: IPPROTO_TCP,
        port: 40300,
    });
    let call = RpcMessage::call(
        0x2001,
        PMAP_PROG,
        2,
        set.proc(),
        OpaqueAuth::None,
        set.encode_args().expect("fits"),
    );
    let framed = |m: &RpcMessage| record::encode(&m.encode().expect("fits"), record::MAX_FRAGMENT);
    assert_eq!(framed(&call), hex(PMAP_SET_CALL));
    let rpcb = RpcbCall::Set(entry(0x2000_0002, 2, "tcp6", "::1.157.108", "ipclab"));
    let call = RpcMessage::call(
        0x2002,
        PMAP_PROG,
        3,
        rpcb.proc(),
        OpaqueAuth::None,
        rpcb.encode_args().expect("fits"),
    );
    assert_eq!(framed(&call), hex(RPCB3_SET_CALL));
    let addr = RpcbResult::Addr(uaddr("127.0.0.1:61311".parse().expect("literal")));
    let reply = RpcMessage::success(0x2011, addr.encode().expect("fits"));
    assert_eq!(framed(&reply), hex(RPCB3_GETADDR_REPLY));
    let time = RpcbResult::Time(0x6b0e_b924).encode().expect("fits");
    assert_eq!(
        framed(&RpcMessage::success(0x2013, time)),
        hex(RPCB3_GETTIME_REPLY)
    );
}

#[test]
fn a_dump_is_labelled_entry_by_entry() {
    let (m, _) = message(PMAP_DUMP_AFTER_UNSET_REPLY, true);
    let mut r = Reader::with_spans(results(&m));
    PmapResult::read(PMAPPROC_DUMP, &mut r).expect("valid");
    let spans = r.finish().expect("whole");
    let labels: Vec<_> = spans.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels[..6],
        [
            "results[0] follows",
            "results[0].prog",
            "results[0].vers",
            "results[0].prot",
            "results[0].port",
            "results[1] follows"
        ]
    );
    assert_eq!(labels.last(), Some(&"results end"));
    assert_eq!(spans[3].value, "tcp");
    assert_eq!(labels.len(), 9 * 5 + 1);
}

#[test]
fn versions_and_procedures_not_served_get_their_answers() {
    let e = Call::decode(5, 0, &[]).expect_err("version 5");
    assert_eq!(
        e.accept_stat(),
        AcceptStat::ProgMismatch { low: 2, high: 4 }
    );
    let args = RpcbCall::GetVersAddr(entry(1, 1, "tcp", "", ""))
        .encode_args()
        .expect("fits");
    assert_eq!(
        Call::decode(3, RPCBPROC_GETVERSADDR, &args),
        Err(ArgsError::NoSuchProc(9)),
        "GETVERSADDR is version 4's"
    );
    assert!(Call::decode(4, RPCBPROC_GETVERSADDR, &args).is_ok());
    for proc in [
        RPCBPROC_CALLIT,
        RPCBPROC_UADDR2TADDR,
        RPCBPROC_GETADDRLIST,
        13,
    ] {
        let e = RpcbCall::decode(4, proc, &[]).expect_err("not served");
        assert_eq!(e.accept_stat(), AcceptStat::ProcUnavail);
    }
    assert_eq!(PmapCall::decode(6, &[]), Err(ArgsError::NoSuchProc(6)));
    let short = PmapCall::decode(PMAPPROC_GETPORT, &[0; 12]).expect_err("3 words of 4");
    assert_eq!(short.accept_stat(), AcceptStat::GarbageArgs);
}

#[test]
fn callit_round_trips() {
    let call = PmapCall::CallIt(CallArgs {
        prog: 0x2000_0001,
        vers: 1,
        proc: 1,
        args: vec![0, 0, 0, 2, 0, 0, 0, 3],
    });
    let args = call.encode_args().expect("fits");
    assert_eq!(PmapCall::decode(PMAPPROC_CALLIT, &args), Ok(call));
    let res = PmapResult::CallIt(CallResult {
        port: 61311,
        res: vec![0, 0, 0, 5],
    });
    let bytes = res.encode().expect("fits");
    assert_eq!(bytes.len(), 12);
    assert_eq!(PmapResult::decode(PMAPPROC_CALLIT, &bytes), Ok(res));
}

#[test]
fn procedure_names_follow_each_version() {
    assert_eq!(proc_name(2, PMAPPROC_GETPORT), Some("PMAPPROC_GETPORT"));
    assert_eq!(proc_name(2, 6), None);
    assert_eq!(proc_name(3, 5), Some("RPCBPROC_CALLIT"));
    assert_eq!(proc_name(4, 5), Some("RPCBPROC_BCAST"));
    assert_eq!(proc_name(3, RPCBPROC_GETVERSADDR), None);
    assert_eq!(proc_name(4, RPCBPROC_GETSTAT), Some("RPCBPROC_GETSTAT"));
    assert_eq!(proc_name(1, 0), None);
    assert_eq!(protocol_name(IPPROTO_UDP), Some("udp"));
}
