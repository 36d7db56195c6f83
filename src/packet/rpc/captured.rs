//! Bytes captured from real programs on the development machine (Debian
//! 12, libtirpc 1.3.3), for the tests: each decoder must read them and
//! each encoder must give them back byte for byte. TCP captures start with
//! their record mark.
//!
//! How: `rpcgen ipclab.x` built a C client and server (`gcc … -I/usr/include/tirpc
//! -ltirpc`) in a scratch directory outside the repository, run inside
//! `unshare -n` so only a private loopback existed. The client
//! (`clnttcp_create`/`clntudp_create` with `sin_port` set, so no portmapper
//! was asked; `authunix_create("ipclab", 1000, 1000, 2, {1000, 24})` for
//! AUTH_SYS) called a Python listener on 127.0.0.1 that recorded the CALL
//! and answered it. The server (`svctcp_create`/`svcudp_create` on a fixed
//! port, `svc_register(…, 0)`) answered CALLs a Python client sent, some of
//! them malformed on purpose; the client recorded the REPLY. The words are
//! grouped by 4 bytes for reading; [`hex`] ignores the spaces.

/// The bytes of a hex literal; whitespace is ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| {
            let text = std::str::from_utf8(p).expect("ASCII hex digits");
            u8::from_str_radix(text, 16).expect("hex digits")
        })
        .collect()
}

// libtirpc 1.3.3 clients (rpcgen stubs; clnttcp_create / clntudp_create at a fixed loopback port), recorded by a Python listener.

/// TCP, ADD(2, 3), AUTH_SYS credential (stamp 0x6b0eb913, "ipclab", uid 1000, gid 1000, gids [1000, 24]).
pub const CALL_TCP_ADD_SYS: &str =
    "80000054 69a44aed 00000000 00000002 20000001 00000001 00000001 00000001 \
     00000024 6b0eb913 00000006 6970636c 61620000 000003e8 000003e8 00000002 \
     000003e8 00000018 00000000 00000000 00000002 00000003";
/// TCP, ADD(-7, 40000), AUTH_NONE.
pub const CALL_TCP_ADD_NONE: &str =
    "80000030 a206f558 00000000 00000002 20000001 00000001 00000001 00000000 \
     00000000 00000000 00000000 fffffff9 00009c40";
/// TCP, NULL procedure, AUTH_NONE.
pub const CALL_TCP_NULL_NONE: &str =
    "80000028 df1e8fa1 00000000 00000002 20000001 00000001 00000000 00000000 \
     00000000 00000000 00000000";
/// UDP (no record mark), INCR, AUTH_SYS.
pub const CALL_UDP_INCR_SYS: &str =
    "6b00ce4d 00000000 00000002 20000001 00000001 00000002 00000001 00000024 \
     6b0eb913 00000006 6970636c 61620000 000003e8 000003e8 00000002 000003e8 \
     00000018 00000000 00000000";

// the rpcgen server on libtirpc 1.3.3 (svctcp_create / svcudp_create), answering calls a Python client sent.

/// To [`CALL_TCP_ADD_SYS`]: SUCCESS, result 5.
pub const REPLY_ADD_5: &str =
    "8000001c 69a44aed 00000001 00000000 00000000 00000000 00000000 00000005";
/// NULL, xid 0x1001 (Python).
pub const CALL_NULL: &str =
    "80000028 00001001 00000000 00000002 20000001 00000001 00000000 00000000 \
     00000000 00000000 00000000";
/// To [`CALL_NULL`]: SUCCESS, no results.
pub const REPLY_NULL: &str = "80000018 00001001 00000001 00000000 00000000 00000000 00000000";
/// To INCR, xid 0x1002: SUCCESS, result 1.
pub const REPLY_INCR_1: &str =
    "8000001c 00001002 00000001 00000000 00000000 00000000 00000000 00000001";
/// Procedure 7, which the program lacks.
pub const CALL_PROC_7: &str =
    "80000028 00001003 00000000 00000002 20000001 00000001 00000007 00000000 \
     00000000 00000000 00000000";
/// To [`CALL_PROC_7`].
pub const REPLY_PROC_UNAVAIL: &str =
    "80000018 00001003 00000001 00000000 00000000 00000000 00000003";
/// To version 2, xid 0x1004: PROG_MISMATCH {low 1, high 1}.
pub const REPLY_PROG_MISMATCH: &str =
    "80000020 00001004 00000001 00000000 00000000 00000000 00000002 00000001 \
     00000001";
/// To program 0x20000002, xid 0x1005.
pub const REPLY_PROG_UNAVAIL: &str =
    "80000018 00001005 00000001 00000000 00000000 00000000 00000001";
/// ADD with one int of the two arguments.
pub const CALL_ADD_SHORT_ARGS: &str =
    "8000002c 00001006 00000000 00000002 20000001 00000001 00000001 00000000 \
     00000000 00000000 00000000 00000001";
/// To [`CALL_ADD_SHORT_ARGS`].
pub const REPLY_GARBAGE_ARGS: &str =
    "80000018 00001006 00000001 00000000 00000000 00000000 00000004";
/// rpcvers 3: libtirpc closed the connection without an answer (its xdr_callmsg refuses the message), though RFC 5531 §9 has RPC_MISMATCH for it.
pub const CALL_RPCVERS_3: &str =
    "80000028 00001007 00000000 00000003 20000001 00000001 00000001 00000000 \
     00000000 00000000 00000000";
/// A credential of unknown flavor 99, body "abcd".
pub const CALL_FLAVOR_99: &str =
    "8000002c 00001008 00000000 00000002 20000001 00000001 00000001 00000063 \
     00000004 61626364 00000000 00000000";
/// To [`CALL_FLAVOR_99`]: MSG_DENIED AUTH_ERROR AUTH_REJECTEDCRED.
pub const REPLY_AUTH_REJECTEDCRED: &str = "80000014 00001008 00000001 00000001 00000001 00000002";
/// AUTH_SYS whose 8-byte body announces a 1000-byte machine name.
pub const CALL_BAD_AUTH_SYS: &str =
    "80000038 00001009 00000000 00000002 20000001 00000001 00000001 00000001 \
     00000008 00000000 000003e8 00000000 00000000 00000001 00000002";
/// To [`CALL_BAD_AUTH_SYS`]: MSG_DENIED AUTH_ERROR AUTH_BADCRED.
pub const REPLY_AUTH_BADCRED: &str = "80000014 00001009 00000001 00000001 00000001 00000001";
/// ADD(20, 22) in three fragments of 12, 20 and 16 bytes.
pub const CALL_ADD_3_FRAGMENTS: &str =
    "0000000c 0000100a 00000000 00000002 00000014 20000001 00000001 00000001 \
     00000000 00000000 80000010 00000000 00000000 00000014 00000016";
/// To [`CALL_ADD_3_FRAGMENTS`]: libtirpc put the record together, result 42.
pub const REPLY_ADD_42: &str =
    "8000001c 0000100a 00000001 00000000 00000000 00000000 00000000 0000002a";
/// UDP datagram: ADD(100, -1), xid 0x100b.
pub const CALL_UDP_ADD: &str =
    "0000100b 00000000 00000002 20000001 00000001 00000001 00000000 00000000 \
     00000000 00000000 00000064 ffffffff";
/// To [`CALL_UDP_ADD`]: result 99.
pub const REPLY_UDP_ADD_99: &str = "0000100b 00000001 00000000 00000000 00000000 00000000 00000063";
