//! The netlink path ipclab runs on bytes the kernel sends back: the strace
//! notation of any buffer and the parse of the kernel's answers. Neither
//! may panic, and a parse never reports more messages than fit.
#![no_main]

use ipclab::packet::netlink::{notation, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = notation::messages(data);
    assert!(data.is_empty() || !text.is_empty());
    let replies = parse(data);
    assert!(replies.len() <= data.len() / 16 + 1);
});
