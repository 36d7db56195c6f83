//! Messages against bytes libtirpc sent and answered (see `captured`).

use super::auth::{AUTH_BADCRED, AUTH_REJECTEDCRED};
use super::captured::*;
use super::record::{self, RecordReader};
use super::*;
use crate::packet::xdr::{dump, XdrErrorKind};

/// The message inside a captured TCP record.
fn unframe(wire: &str) -> Vec<u8> {
    let mut records = RecordReader::new()
        .feed(&hex(wire))
        .expect("a valid record");
    assert_eq!(records.len(), 1);
    records.remove(0).data
}

fn framed(m: &RpcMessage) -> Vec<u8> {
    record::encode(&m.encode().expect("within limits"), record::MAX_FRAGMENT)
}

fn add_args(a: i32, b: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32("args.a", a);
    w.i32("args.b", b);
    w.into_bytes()
}

fn sys() -> OpaqueAuth {
    OpaqueAuth::Sys(AuthSys {
        stamp: 0x6b0e_b913,
        machinename: "ipclab".into(),
        uid: 1000,
        gid: 1000,
        gids: vec![1000, 24],
    })
}

#[test]
fn every_captured_message_decodes_and_encodes_back_to_the_same_bytes() {
    let tcp = [
        CALL_TCP_ADD_SYS,
        CALL_TCP_ADD_NONE,
        CALL_TCP_NULL_NONE,
        REPLY_ADD_5,
        CALL_NULL,
        REPLY_NULL,
        REPLY_INCR_1,
        CALL_PROC_7,
        REPLY_PROC_UNAVAIL,
        REPLY_PROG_MISMATCH,
        REPLY_PROG_UNAVAIL,
        CALL_ADD_SHORT_ARGS,
        REPLY_GARBAGE_ARGS,
        CALL_FLAVOR_99,
        REPLY_AUTH_REJECTEDCRED,
        REPLY_AUTH_BADCRED,
        CALL_ADD_3_FRAGMENTS,
        REPLY_ADD_42,
    ];
    for wire in tcp {
        let data = unframe(wire);
        let m = RpcMessage::decode(&data).unwrap_or_else(|e| panic!("{wire}: {e}"));
        assert_eq!(m.encode().expect("re-encodes"), data, "{wire}");
    }
    for datagram in [CALL_UDP_INCR_SYS, CALL_UDP_ADD, REPLY_UDP_ADD_99] {
        let data = hex(datagram);
        let m = RpcMessage::decode(&data).expect("valid");
        assert_eq!(m.encode().expect("re-encodes"), data);
    }
}

#[test]
fn the_libtirpc_call_is_what_we_build() {
    let m = RpcMessage::decode(&unframe(CALL_TCP_ADD_SYS)).expect("valid");
    let built = RpcMessage::call(0x69a4_4aed, 0x2000_0001, 1, 1, sys(), add_args(2, 3));
    assert_eq!(m, built);
    assert_eq!(framed(&built), hex(CALL_TCP_ADD_SYS));
    let none = RpcMessage::call(
        0xa206_f558,
        0x2000_0001,
        1,
        1,
        OpaqueAuth::None,
        add_args(-7, 40000),
    );
    assert_eq!(framed(&none), hex(CALL_TCP_ADD_NONE));
}

#[test]
fn the_libtirpc_replies_are_what_we_build() {
    let five = 5i32.to_be_bytes().to_vec();
    let cases = [
        (REPLY_ADD_5, RpcMessage::success(0x69a4_4aed, five)),
        (REPLY_NULL, RpcMessage::success(0x1001, vec![])),
        (
            REPLY_PROC_UNAVAIL,
            RpcMessage::accepted(0x1003, AcceptStat::ProcUnavail),
        ),
        (
            REPLY_PROG_MISMATCH,
            RpcMessage::accepted(0x1004, AcceptStat::ProgMismatch { low: 1, high: 1 }),
        ),
        (
            REPLY_PROG_UNAVAIL,
            RpcMessage::accepted(0x1005, AcceptStat::ProgUnavail),
        ),
        (
            REPLY_GARBAGE_ARGS,
            RpcMessage::accepted(0x1006, AcceptStat::GarbageArgs),
        ),
        (
            REPLY_AUTH_REJECTEDCRED,
            RpcMessage::denied(0x1008, RejectedReply::AuthError(AUTH_REJECTEDCRED)),
        ),
        (
            REPLY_AUTH_BADCRED,
            RpcMessage::denied(0x1009, RejectedReply::AuthError(AUTH_BADCRED)),
        ),
    ];
    for (wire, built) in cases {
        assert_eq!(framed(&built), hex(wire), "{built:?}");
        assert_eq!(RpcMessage::decode(&unframe(wire)), Ok(built));
    }
}

#[test]
fn a_malformed_auth_sys_credential_gets_the_answer_libtirpc_gives() {
    let e = RpcMessage::decode(&unframe(CALL_BAD_AUTH_SYS)).expect_err("bad cred");
    let DecodeError::BadCred { xid, err } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*xid, 0x1009);
    assert_eq!(err.field, "cred.machinename length");
    let reply = e.reply().expect("AUTH_ERROR");
    assert_eq!(framed(&reply), hex(REPLY_AUTH_BADCRED));
}

#[test]
fn an_unknown_flavor_is_kept_for_the_server_to_refuse() {
    let m = RpcMessage::decode(&unframe(CALL_FLAVOR_99)).expect("decodes");
    let call = m.as_call().expect("a call");
    assert_eq!(
        call.cred,
        OpaqueAuth::Other {
            flavor: 99,
            body: b"abcd".to_vec()
        }
    );
}

#[test]
fn rpc_version_3_gets_rpc_mismatch() {
    // libtirpc closes the connection here; RFC 5531 §9 has an answer.
    let e = RpcMessage::decode(&unframe(CALL_RPCVERS_3)).expect_err("version 3");
    assert_eq!(
        e,
        DecodeError::RpcVersion {
            xid: 0x1007,
            rpcvers: 3
        }
    );
    let reply = e.reply().expect("an answer").encode().expect("encodes");
    assert_eq!(
        reply,
        hex("00001007 00000001 00000001 00000000 00000002 00000002")
    );
}

#[test]
fn results_and_arguments_stay_raw() {
    let m = RpcMessage::decode(&hex(REPLY_UDP_ADD_99)).expect("valid");
    let Some(ReplyBody::Accepted {
        stat: AcceptStat::Success(results),
        ..
    }) = m.as_reply()
    else {
        panic!("{m:?}");
    };
    assert_eq!(results, &99i32.to_be_bytes());
    let m = RpcMessage::decode(&unframe(CALL_ADD_SHORT_ARGS)).expect("the header is fine");
    assert_eq!(m.as_call().expect("call").args, [0, 0, 0, 1]);
}

#[test]
fn the_labelled_dump_of_the_libtirpc_call() {
    let m = RpcMessage::decode(&unframe(CALL_TCP_ADD_SYS)).expect("valid");
    let (bytes, mut spans) = m.encode_spanned().expect("fits");
    let mut args = Reader::with_spans(&m.as_call().expect("call").args);
    args.i32("args.a").expect("a");
    args.i32("args.b").expect("b");
    assert!(crate::packet::xdr::splice(&mut spans, "args", args.spans()));
    let (wire, wire_spans) = record::frame(&bytes, &spans, record::MAX_FRAGMENT);
    assert_eq!(wire, hex(CALL_TCP_ADD_SYS));
    let lines = dump(&wire, &wire_spans);
    let text: Vec<String> = lines
        .iter()
        .map(|l| format!("{:02} {} {} {}", l.offset, l.hex, l.label, l.value))
        .collect();
    assert_eq!(
        text,
        [
            "00 80 00 00 54 record mark last fragment, 84 bytes",
            "04 69 a4 4a ed xid 1772374765",
            "08 00 00 00 00 msg_type CALL",
            "12 00 00 00 02 rpcvers 2",
            "16 20 00 00 01 prog 536870913",
            "20 00 00 00 01 vers 1",
            "24 00 00 00 01 proc 1",
            "28 00 00 00 01 cred.flavor AUTH_SYS",
            "32 00 00 00 24 cred.body length 36",
            "36 6b 0e b9 13 cred.stamp 1796126995",
            "40 00 00 00 06 cred.machinename length 6",
            "44 69 70 63 6c 61 62 cred.machinename \"ipclab\"",
            "50 00 00 cred.machinename padding ",
            "52 00 00 03 e8 cred.uid 1000",
            "56 00 00 03 e8 cred.gid 1000",
            "60 00 00 00 02 cred.gids count 2",
            "64 00 00 03 e8 cred.gids[0] 1000",
            "68 00 00 00 18 cred.gids[1] 24",
            "72 00 00 00 00 verf.flavor AUTH_NONE",
            "76 00 00 00 00 verf.body length 0",
            "80 00 00 00 02 args.a 2",
            "84 00 00 00 03 args.b 3",
        ]
    );
    // The receiving side labels the same bytes the same way.
    let (_, read) = RpcMessage::decode_spanned(&bytes).expect("valid");
    let (_, written) = m.encode_spanned().expect("fits");
    assert_eq!(read, written);
}

#[test]
fn a_message_cut_anywhere_is_an_error_not_a_panic() {
    for wire in [CALL_TCP_ADD_SYS, REPLY_PROG_MISMATCH, REPLY_AUTH_BADCRED] {
        let data = unframe(wire);
        for cut in 0..data.len() {
            let r = RpcMessage::decode(&data[..cut]);
            // A call cut inside its arguments is still a call.
            if cut < data.len() - 8 || wire != CALL_TCP_ADD_SYS {
                assert!(r.is_err(), "{wire} cut at {cut}");
            }
        }
    }
    assert!(matches!(
        RpcMessage::decode(&[]),
        Err(DecodeError::Header(XdrError {
            kind: XdrErrorKind::Truncated { .. },
            ..
        }))
    ));
    let e = RpcMessage::decode(&[0, 0, 0, 1, 0, 0, 0, 2]).expect_err("msg_type 2");
    assert!(matches!(&e, DecodeError::Header(x) if x.kind == XdrErrorKind::BadEnum(2)));
    assert_eq!(e.reply(), None);
    let e = RpcMessage::decode(&unframe(CALL_NULL)[..24]).expect_err("no cred");
    assert!(matches!(e, DecodeError::BadCred { xid: 0x1001, .. }));
}

#[test]
fn a_reply_with_bytes_after_its_fields_is_refused() {
    let mut data = unframe(REPLY_PROG_UNAVAIL);
    data.extend([0, 0, 0, 0]);
    let e = RpcMessage::decode(&data).expect_err("trailing");
    assert!(
        matches!(e, DecodeError::Body { xid: 0x1005, err } if err.kind == XdrErrorKind::Trailing(4))
    );
}

#[test]
fn every_reply_kind_round_trips() {
    for stat in [
        AcceptStat::Success(vec![1, 2, 3, 4]),
        AcceptStat::ProgUnavail,
        AcceptStat::ProgMismatch { low: 2, high: 4 },
        AcceptStat::ProcUnavail,
        AcceptStat::GarbageArgs,
        AcceptStat::SystemErr,
    ] {
        let m = RpcMessage::accepted(7, stat);
        assert_eq!(RpcMessage::decode(&m.encode().expect("ok")), Ok(m));
    }
    for why in [
        RejectedReply::RpcMismatch { low: 2, high: 2 },
        RejectedReply::AuthError(auth::AUTH_TOOWEAK),
    ] {
        let m = RpcMessage::denied(8, why);
        assert_eq!(RpcMessage::decode(&m.encode().expect("ok")), Ok(m));
    }
}

#[test]
fn constants_have_their_c_names() {
    assert_eq!(msg_type_name(REPLY), Some("REPLY"));
    assert_eq!(reply_stat_name(MSG_DENIED), Some("MSG_DENIED"));
    assert_eq!(accept_stat_name(SYSTEM_ERR), Some("SYSTEM_ERR"));
    assert_eq!(accept_stat_name(6), None);
    assert_eq!(reject_stat_name(AUTH_ERROR), Some("AUTH_ERROR"));
    assert_eq!(msg_type_name(u32::MAX), None);
}
