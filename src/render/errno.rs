//! An errno as strace shows it: the C name and the C library's message,
//! `EAGAIN (Resource temporarily unavailable)`.

use nix::errno::Errno;

/// The C name of an errno, as strace prints it (`EAGAIN`, never `EWOULDBLOCK`).
pub fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

/// The message strace prints in parentheses: glibc's `strerror` text
/// ("Resource temporarily unavailable"), which is not always the kernel
/// header's comment that nix's `desc()` returns ("Try again").
pub fn errno_text(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e as i32).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_texts_are_strace_s() {
        assert_eq!(errno_name(Errno::EAGAIN), "EAGAIN");
        assert_eq!(
            errno_text(Errno::EAGAIN),
            "Resource temporarily unavailable"
        );
        assert_eq!(errno_text(Errno::EPIPE), "Broken pipe");
        assert_eq!(errno_text(Errno::EINTR), "Interrupted system call");
    }
}
