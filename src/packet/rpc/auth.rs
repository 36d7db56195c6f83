//! Credentials and verifiers: `opaque_auth` (RFC 5531 §8.2), its flavors,
//! AUTH_SYS's `authsys_parms` (§A.1, known before as AUTH_UNIX) and the
//! `auth_stat` a server answers a refused credential with (§9).
//!
//! AUTH_NONE and AUTH_SYS are read into fields; any other flavor (AUTH_DH,
//! RPCSEC_GSS…) is kept as its raw body, so it can be shown and sent back
//! unchanged.

use crate::packet::xdr::{Reader, Writer, XdrError};

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;
pub const AUTH_SHORT: u32 = 2;
pub const AUTH_DH: u32 = 3;
pub const AUTH_KERB: u32 = 4;
pub const AUTH_RSA: u32 = 5;
pub const RPCSEC_GSS: u32 = 6;
/// RFC 9289 (RPC-with-TLS).
pub const AUTH_TLS: u32 = 7;

/// The body of any credential or verifier is at most this long (§8.2).
pub const MAX_AUTH_BYTES: usize = 400;
/// `string machinename<255>` (§A.1).
pub const MAX_MACHINE_NAME: usize = 255;
/// `unsigned int gids<16>` (§A.1).
pub const MAX_GIDS: usize = 16;

/// The C name of an `auth_flavor` (RFC 5531 §8.2 and the IANA registry).
pub fn auth_flavor_name(flavor: u32) -> Option<&'static str> {
    Some(match flavor {
        AUTH_NONE => "AUTH_NONE",
        AUTH_SYS => "AUTH_SYS",
        AUTH_SHORT => "AUTH_SHORT",
        AUTH_DH => "AUTH_DH",
        AUTH_KERB => "AUTH_KERB",
        AUTH_RSA => "AUTH_RSA",
        RPCSEC_GSS => "RPCSEC_GSS",
        AUTH_TLS => "AUTH_TLS",
        _ => return None,
    })
}

pub const AUTH_OK: u32 = 0;
pub const AUTH_BADCRED: u32 = 1;
pub const AUTH_REJECTEDCRED: u32 = 2;
pub const AUTH_BADVERF: u32 = 3;
pub const AUTH_REJECTEDVERF: u32 = 4;
pub const AUTH_TOOWEAK: u32 = 5;

/// The C name of an `auth_stat` (RFC 5531 §9).
pub fn auth_stat_name(stat: u32) -> Option<&'static str> {
    const NAMES: [&str; 15] = [
        "AUTH_OK",
        "AUTH_BADCRED",
        "AUTH_REJECTEDCRED",
        "AUTH_BADVERF",
        "AUTH_REJECTEDVERF",
        "AUTH_TOOWEAK",
        "AUTH_INVALIDRESP",
        "AUTH_FAILED",
        "AUTH_KERB_GENERIC",
        "AUTH_TIMEEXPIRE",
        "AUTH_TKT_FILE",
        "AUTH_DECODE",
        "AUTH_NET_ADDR",
        "RPCSEC_GSS_CREDPROBLEM",
        "RPCSEC_GSS_CTXPROBLEM",
    ];
    NAMES.get(usize::try_from(stat).ok()?).copied()
}

/// `authsys_parms`: who the caller says it is. Nothing vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    /// An arbitrary id the caller picks; libtirpc puts the time of day in
    /// seconds there, hence the notes call it the timestamp.
    pub stamp: u32,
    pub machinename: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, at most [`MAX_GIDS`].
    pub gids: Vec<u32>,
}

impl AuthSys {
    /// Writes the fields, labelled `{prefix}.stamp`, `{prefix}.uid`…
    ///
    /// # Errors
    /// A machine name over 255 bytes, more than 16 gids.
    pub fn write(&self, w: &mut Writer, prefix: &str) -> Result<(), XdrError> {
        w.u32(&format!("{prefix}.stamp"), self.stamp);
        w.string(
            &format!("{prefix}.machinename"),
            &self.machinename,
            MAX_MACHINE_NAME,
        )?;
        w.u32(&format!("{prefix}.uid"), self.uid);
        w.u32(&format!("{prefix}.gid"), self.gid);
        w.array(
            &format!("{prefix}.gids"),
            &self.gids,
            MAX_GIDS,
            |w, l, g| {
                w.u32(l, *g);
                Ok(())
            },
        )
    }

    /// Reads the fields [`AuthSys::write`] writes.
    ///
    /// # Errors
    /// What the reader refuses: too short, a name over 255 bytes or not
    /// UTF-8, more than 16 gids.
    pub fn read(r: &mut Reader<'_>, prefix: &str) -> Result<Self, XdrError> {
        Ok(AuthSys {
            stamp: r.u32(&format!("{prefix}.stamp"))?,
            machinename: r
                .string(&format!("{prefix}.machinename"), MAX_MACHINE_NAME)?
                .to_owned(),
            uid: r.u32(&format!("{prefix}.uid"))?,
            gid: r.u32(&format!("{prefix}.gid"))?,
            gids: r.array(&format!("{prefix}.gids"), MAX_GIDS, 4, |r, l| r.u32(l))?,
        })
    }
}

/// `opaque_auth`: a flavor and at most 400 bytes of body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpaqueAuth {
    /// AUTH_NONE with an empty body, what almost everyone sends.
    None,
    Sys(AuthSys),
    /// Any other flavor, or AUTH_NONE with a body (§10.1 leaves it
    /// undefined): kept as sent.
    Other {
        flavor: u32,
        body: Vec<u8>,
    },
}

impl OpaqueAuth {
    pub fn flavor(&self) -> u32 {
        match self {
            OpaqueAuth::None => AUTH_NONE,
            OpaqueAuth::Sys(_) => AUTH_SYS,
            OpaqueAuth::Other { flavor, .. } => *flavor,
        }
    }

    /// Writes the flavor, the body's length and the body, labelled
    /// `{prefix}.flavor`, `{prefix}.body length`, then the AUTH_SYS
    /// fields or `{prefix}.body`. `prefix` is `cred` or `verf`.
    ///
    /// # Errors
    /// A body over 400 bytes; an AUTH_SYS credential over its limits.
    pub fn write(&self, w: &mut Writer, prefix: &str) -> Result<(), XdrError> {
        w.u32_named(&format!("{prefix}.flavor"), self.flavor(), auth_flavor_name);
        let body_label = format!("{prefix}.body");
        match self {
            OpaqueAuth::None => w.length(&body_label, 0, MAX_AUTH_BYTES),
            OpaqueAuth::Sys(sys) => {
                // The length comes first, so the body is built aside.
                let mut body = if w.records_spans() {
                    Writer::with_spans()
                } else {
                    Writer::new()
                };
                sys.write(&mut body, prefix)?;
                w.length(&body_label, body.len(), MAX_AUTH_BYTES)?;
                w.append(body);
                Ok(())
            }
            OpaqueAuth::Other { body, .. } => w.opaque(&body_label, body, MAX_AUTH_BYTES),
        }
    }

    /// Reads what [`OpaqueAuth::write`] writes. An AUTH_SYS body must hold
    /// exactly the `authsys_parms`, nothing more.
    ///
    /// # Errors
    /// A short buffer, a body over 400 bytes, an AUTH_SYS body that does
    /// not parse or has bytes left over.
    pub fn read(r: &mut Reader<'_>, prefix: &str) -> Result<Self, XdrError> {
        let flavor = r.u32_named(&format!("{prefix}.flavor"), auth_flavor_name)?;
        let body_label = format!("{prefix}.body");
        let len = r.length(&body_label, MAX_AUTH_BYTES)?;
        Ok(match flavor {
            AUTH_NONE if len == 0 => OpaqueAuth::None,
            AUTH_SYS => {
                let mut body = r.nested(&body_label, len)?;
                let sys = AuthSys::read(&mut body, prefix)?;
                r.join(body)?;
                OpaqueAuth::Sys(sys)
            }
            _ => OpaqueAuth::Other {
                flavor,
                body: r.opaque_fixed(&body_label, len)?.to_vec(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::rpc::captured::{hex, CALL_TCP_ADD_SYS};
    use crate::packet::xdr::XdrErrorKind;

    fn sys() -> AuthSys {
        AuthSys {
            stamp: 0x6b0e_b913,
            machinename: "ipclab".into(),
            uid: 1000,
            gid: 1000,
            gids: vec![1000, 24],
        }
    }

    /// The credential inside [`CALL_TCP_ADD_SYS`]: after the record mark
    /// and six words of header.
    fn captured_cred() -> Vec<u8> {
        hex(CALL_TCP_ADD_SYS)[28..28 + 8 + 36].to_vec()
    }

    #[test]
    fn reads_the_credential_libtirpc_sent() {
        let b = captured_cred();
        let mut r = Reader::new(&b);
        assert_eq!(OpaqueAuth::read(&mut r, "cred"), Ok(OpaqueAuth::Sys(sys())));
        r.finish().expect("all of it");
    }

    #[test]
    fn writes_the_credential_libtirpc_sent() {
        let mut w = Writer::with_spans();
        OpaqueAuth::Sys(sys()).write(&mut w, "cred").expect("fits");
        assert_eq!(w.bytes(), captured_cred());
        let labels: Vec<_> = w.spans().iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "cred.flavor",
                "cred.body length",
                "cred.stamp",
                "cred.machinename length",
                "cred.machinename",
                "cred.machinename padding",
                "cred.uid",
                "cred.gid",
                "cred.gids count",
                "cred.gids[0]",
                "cred.gids[1]",
            ]
        );
        assert_eq!(w.spans()[0].value, "AUTH_SYS");
        let mut r = Reader::with_spans(w.bytes());
        OpaqueAuth::read(&mut r, "cred").expect("valid");
        assert_eq!(r.spans(), w.spans());
    }

    #[test]
    fn auth_sys_limits_hold_both_ways() {
        let mut long = sys();
        long.machinename = "m".repeat(256);
        assert!(OpaqueAuth::Sys(long)
            .write(&mut Writer::new(), "cred")
            .is_err());
        let mut many = sys();
        many.gids = vec![0; 17];
        assert!(OpaqueAuth::Sys(many)
            .write(&mut Writer::new(), "cred")
            .is_err());
        // 17 gids announced on the wire.
        let mut b = captured_cred();
        b[8 + 24 + 3] = 17;
        let e = OpaqueAuth::read(&mut Reader::new(&b), "cred").expect_err("17 > 16");
        assert_eq!(e.kind, XdrErrorKind::TooLong { len: 17, max: 16 });
    }

    #[test]
    fn an_auth_sys_body_with_bytes_left_over_is_refused() {
        let mut b = captured_cred();
        b[7] += 4;
        b.extend_from_slice(&[0; 4]);
        let e = OpaqueAuth::read(&mut Reader::new(&b), "cred").expect_err("4 extra");
        assert_eq!(e.kind, XdrErrorKind::Trailing(4));
        assert_eq!(e.field, "cred.body");
    }

    #[test]
    fn a_body_over_400_bytes_is_refused_from_its_length() {
        let b = [0, 0, 0, 6, 0, 0, 1, 0x91];
        let e = OpaqueAuth::read(&mut Reader::new(&b), "verf").expect_err("401");
        assert_eq!(e.kind, XdrErrorKind::TooLong { len: 401, max: 400 });
        let big = OpaqueAuth::Other {
            flavor: RPCSEC_GSS,
            body: vec![0; 401],
        };
        assert!(big.write(&mut Writer::new(), "verf").is_err());
    }

    #[test]
    fn other_flavors_and_auth_none_with_a_body_round_trip_raw() {
        for auth in [
            OpaqueAuth::None,
            OpaqueAuth::Other {
                flavor: 99,
                body: b"abcd".to_vec(),
            },
            OpaqueAuth::Other {
                flavor: AUTH_NONE,
                body: vec![1, 2, 3],
            },
        ] {
            let mut w = Writer::new();
            auth.write(&mut w, "cred").expect("fits");
            let mut r = Reader::new(w.bytes());
            assert_eq!(OpaqueAuth::read(&mut r, "cred").as_ref(), Ok(&auth));
            r.finish().expect("all read");
        }
    }

    #[test]
    fn names_follow_the_rfc() {
        assert_eq!(auth_flavor_name(1), Some("AUTH_SYS"));
        assert_eq!(auth_flavor_name(6), Some("RPCSEC_GSS"));
        assert_eq!(auth_flavor_name(99), None);
        assert_eq!(auth_stat_name(AUTH_REJECTEDCRED), Some("AUTH_REJECTEDCRED"));
        assert_eq!(auth_stat_name(14), Some("RPCSEC_GSS_CTXPROBLEM"));
        assert_eq!(auth_stat_name(15), None);
    }
}
