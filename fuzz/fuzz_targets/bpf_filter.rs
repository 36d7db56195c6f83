//! The capture filter path on hostile input: any text as a filter
//! expression, any bytes as a classic BPF program, frames and pcap files.
//! Nothing may panic or loop; an expression that compiles must give a
//! program the kernel's checks accept, and the interpreter must agree with
//! itself whether a program was checked or not.
#![no_main]

use ipclab::packet::filter::{self, Filter, Insn};
use ipclab::packet::frame::{dump, Decoder, Style};
use ipclab::packet::pcap::PcapIn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) * 8).min(rest.len());
    let (code, frame) = rest.split_at(cut);

    // Bytes as a program: 8 bytes an instruction, as struct sock_filter.
    let prog: Vec<Insn> = code
        .chunks_exact(8)
        .map(|c| {
            Insn::new(
                u16::from_le_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    let _ = filter::validate(&prog);
    let _ = filter::run(&prog, frame, frame.len());
    let _ = filter::dump(&prog, 1);

    // Bytes as an expression.
    if let Ok(text) = std::str::from_utf8(code) {
        if let Ok(f) = Filter::new(text) {
            filter::validate(&f.program).expect("a compiled program passes the kernel's checks");
            let _ = f.accepts(frame, frame.len());
        }
    }

    // The frame decoded, in every style, with its payload lines.
    for link in [false, true] {
        let mut d = Decoder::new(Style { link, absolute: false });
        let f = d.decode(frame, frame.len());
        assert!(!f.line.is_empty());
        let _ = dump::payload_lines(dump::Payload::Hex, frame, f.net);
        let _ = dump::payload_lines(dump::Payload::Ascii, frame, f.net);
    }

    // The whole input as a pcap file, fed in chunks of `split + 1` bytes.
    let mut r = PcapIn::default();
    for chunk in data.chunks(usize::from(split) + 1) {
        r.feed(chunk);
        loop {
            match r.next_record() {
                Ok(Some(rec)) => {
                    assert!(rec.data.len() <= ipclab::packet::pcap::MAX_RECORD);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
