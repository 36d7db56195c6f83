//! Every RPC decoding path ipclab runs on bytes from the network: whole
//! messages, the matchmaker's and the ipclab program's argument and result
//! bodies, universal addresses, and the record reader fed in chunks of
//! pseudo-random sizes. None may panic, whatever decodes must encode back
//! to the same bytes (and spans), and the record reader must stay within
//! its limits and give back exactly the records it was sent.
#![no_main]

use ipclab::packet::portmap::ipclab::IpclabCall;
use ipclab::packet::portmap::{parse_uaddr, uaddr, Call, PmapResult, RpcbResult};
use ipclab::packet::rpc::record::{Record, RecordReader};
use ipclab::packet::rpc::RpcMessage;
use ipclab::packet::xdr;
use libfuzzer_sys::fuzz_target;

const MAX_RECORD: usize = 256;
const MAX_FRAGMENTS: usize = 16;

fn messages(data: &[u8]) {
    match RpcMessage::decode_spanned(data) {
        Ok((m, read)) => {
            let (bytes, written) = m.encode_spanned().expect("a decoded message encodes");
            assert_eq!(bytes, data);
            assert_eq!(read, written);
            assert!(!xdr::dump(data, &read).is_empty() || data.is_empty());
        }
        Err(e) => {
            let _ = e.to_string();
            if let Some(reply) = e.reply() {
                reply.encode().expect("a prescribed reply encodes");
            }
        }
    }
}

/// The first byte picks the version (high nibble) and procedure (low).
fn bodies(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let (vers, proc) = (u32::from(sel >> 4) % 6, u32::from(sel & 0x0f));
    match Call::decode(vers, proc, body) {
        Ok(Call::Pmap(c)) => assert_eq!(c.encode_args().expect("encodes"), body),
        Ok(Call::Rpcb(c)) => assert_eq!(c.encode_args().expect("encodes"), body),
        Err(e) => {
            let _ = (e.to_string(), e.accept_stat());
        }
    }
    if let Ok(r) = PmapResult::decode(proc, body) {
        assert_eq!(r.encode().expect("encodes"), body);
    }
    if let Ok(r) = RpcbResult::decode(vers, proc, body) {
        assert_eq!(r.encode().expect("encodes"), body);
    }
    if let Ok(c) = IpclabCall::decode(vers, proc, body) {
        assert_eq!(c.encode_args(), body);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(addr) = parse_uaddr(text) {
            assert_eq!(parse_uaddr(&uaddr(addr)), Ok(addr));
        }
    }
}

/// Feeds `data` in chunks whose sizes come from a xorshift seeded by it.
fn records(data: &[u8]) {
    let mut seed = data
        .iter()
        .fold(0x9e37_79b9_u32, |h, &b| h.rotate_left(5) ^ u32::from(b))
        | 1;
    let mut reader = RecordReader::with_limits(MAX_RECORD, MAX_FRAGMENTS);
    let mut got: Vec<Record> = Vec::new();
    let (mut at, mut complete) = (0, 0);
    'chunks: while at < data.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let end = (at + 1 + (seed % 64) as usize).min(data.len());
        let mut input = &data[at..end];
        while !input.is_empty() {
            match reader.push(input) {
                Ok((used, record)) => {
                    assert!(used <= input.len());
                    at += used;
                    input = &input[used..];
                    if let Some(r) = record {
                        assert!(r.data.len() <= MAX_RECORD);
                        assert!(r.fragments.len() <= MAX_FRAGMENTS);
                        got.push(r);
                        complete = at;
                    } else {
                        assert!(input.is_empty(), "push stops early only at a record's end");
                    }
                    assert!(reader.buffered() <= MAX_RECORD + 4);
                }
                Err(_) => break 'chunks,
            }
        }
    }
    let wire: Vec<u8> = got.iter().flat_map(Record::wire).collect();
    assert_eq!(wire, data[..complete]);
    // One chunk gives the same records, up to the same error.
    let mut whole = RecordReader::with_limits(MAX_RECORD, MAX_FRAGMENTS);
    if let Ok(all) = whole.feed(data) {
        assert_eq!(all, got);
    }
}

fuzz_target!(|data: &[u8]| {
    messages(data);
    bodies(data);
    records(data);
});
