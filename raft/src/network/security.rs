//! The cluster bus's security: the cluster secret every bus connection proves knowing
//! (HMAC-SHA256 over both sides' nonces, version 3 of the bus) and the mutual TLS the bus
//! runs inside when certificates are given (see `tls`).
//!
//! Owns the secret, the proofs and the TLS setup; it must not read or write frames (the
//! server and the client do, in the order `frame` documents) and it never logs the secret.
//!
//! # Proofs
//!
//! After the preambles the server sends a fresh 32-byte nonce; the client answers with its
//! own nonce and `HMAC-SHA256(secret, "shardai-bus client proof\n" ‖ version u32 LE ‖
//! server nonce ‖ client nonce)`; only if that holds does the server answer with the same
//! MAC under the label `"shardai-bus server proof\n"`, and only then does the client send
//! its Hello. So neither side sends the secret, a recorded handshake is worthless (the
//! other side's nonce is new every time), one side's proof cannot be sent back as the
//! other's (the labels differ), and a peer that does not know the secret learns nothing
//! about the cluster (not its id, not a node id, not a group), nor a MAC of the server's
//! to guess the secret from offline: the client proves first.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::tls::{BusTls, TlsFiles};

/// Bytes of a handshake nonce.
pub(crate) const NONCE: usize = 32;
/// Bytes of a proof (an HMAC-SHA256).
pub(crate) const MAC: usize = 32;

/// Which side of a connection a proof is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The connecting node.
    Client,
    /// The node whose bus port was connected to.
    Server,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Client => b"shardai-bus client proof\n",
            Side::Server => b"shardai-bus server proof\n",
        }
    }
}

/// How this node's cluster bus authenticates its peers: the cluster secret, mutual TLS, or
/// both. Cheap to clone.
#[derive(Clone)]
pub struct BusSecurity {
    /// The secret's bytes (empty with none: only TLS then authenticates).
    secret: Arc<[u8]>,
    /// Whether a secret or TLS was given: then peers of bus versions before 3, which
    /// cannot prove anything, are refused.
    secured: bool,
    tls: Option<Arc<BusTls>>,
}

impl std::fmt::Debug for BusSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.debug_struct("BusSecurity")
            .field("secret", &!self.secret.is_empty())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl BusSecurity {
    /// No secret and no TLS: every peer that can reach the port is served, including
    /// peers of bus versions 1 and 2 (which prove nothing). For tests and in-process use;
    /// the `shardai` binary refuses to run a cluster node this way.
    pub fn open() -> BusSecurity {
        BusSecurity {
            secret: Arc::from(&[][..]),
            secured: false,
            tls: None,
        }
    }

    /// Peers must prove knowing `secret` (when given) and, with `tls`, present a certificate
    /// chaining to its CA (both directions). At least one of the two is needed.
    pub fn new(secret: Option<&[u8]>, tls: Option<&TlsFiles>) -> Result<BusSecurity, String> {
        if secret.is_some_and(<[u8]>::is_empty) {
            return Err("the cluster secret is empty".into());
        }
        if secret.is_none() && tls.is_none() {
            return Err("a secured cluster bus needs a secret or TLS certificates".into());
        }
        Ok(BusSecurity {
            secret: Arc::from(secret.unwrap_or_default()),
            secured: true,
            tls: tls.map(BusTls::load).transpose()?.map(Arc::new),
        })
    }

    /// Whether peers must authenticate (a secret or TLS was given).
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    /// Whether bus connections are mutual TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The lowest bus protocol version served or spoken: 3 (the first with proofs) when
    /// secured, else 1.
    pub(crate) fn lowest_version(&self) -> u32 {
        if self.secured { 3 } else { 1 }
    }

    /// The TLS setup, if certificates were given.
    pub(crate) fn tls(&self) -> Option<&BusTls> {
        self.tls.as_deref()
    }

    fn mac(
        &self,
        side: Side,
        version: u32,
        server: &[u8; NONCE],
        client: &[u8; NONCE],
    ) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        m.update(side.label());
        m.update(&version.to_le_bytes());
        m.update(server);
        m.update(client);
        m
    }

    /// `side`'s proof of knowing the secret on a connection of `version` whose nonces are
    /// `server` and `client`.
    pub(crate) fn prove(
        &self,
        side: Side,
        version: u32,
        server: &[u8; NONCE],
        client: &[u8; NONCE],
    ) -> [u8; MAC] {
        let mut out = [0u8; MAC];
        out.copy_from_slice(
            &self
                .mac(side, version, server, client)
                .finalize()
                .into_bytes(),
        );
        out
    }

    /// Whether `proof` is `side`'s proof for these nonces (compared in constant time).
    pub(crate) fn holds(
        &self,
        side: Side,
        version: u32,
        server: &[u8; NONCE],
        client: &[u8; NONCE],
        proof: &[u8; MAC],
    ) -> bool {
        self.mac(side, version, server, client)
            .verify_slice(proof)
            .is_ok()
    }
}

/// A fresh random nonce from the operating system.
pub(crate) fn nonce() -> std::io::Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    getrandom::getrandom(&mut n).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(secret: &[u8]) -> BusSecurity {
        BusSecurity::new(Some(secret), None).unwrap()
    }

    #[test]
    fn a_proof_holds_only_for_its_secret_side_version_and_nonces() {
        let (s, c) = ([1u8; NONCE], [2u8; NONCE]);
        let sec = with(b"sesame");
        let p = sec.prove(Side::Client, 3, &s, &c);
        assert!(sec.holds(Side::Client, 3, &s, &c, &p));
        assert!(!with(b"sesamf").holds(Side::Client, 3, &s, &c, &p));
        assert!(!BusSecurity::open().holds(Side::Client, 3, &s, &c, &p));
        // Not the other side's, not another version's, not for other nonces.
        assert!(!sec.holds(Side::Server, 3, &s, &c, &p));
        assert!(!sec.holds(Side::Client, 4, &s, &c, &p));
        assert!(!sec.holds(Side::Client, 3, &c, &s, &p));
        assert!(!sec.holds(Side::Client, 3, &s, &[3u8; NONCE], &p));
    }

    #[test]
    fn the_proof_is_hmac_sha256_of_the_documented_message() {
        // Computed apart from `prove`, from the message as the module documents it.
        let (s, c) = ([0xaau8; NONCE], [0x55u8; NONCE]);
        let mut msg = b"shardai-bus server proof\n".to_vec();
        msg.extend_from_slice(&3u32.to_le_bytes());
        msg.extend_from_slice(&s);
        msg.extend_from_slice(&c);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
        m.update(&msg);
        let want = m.finalize().into_bytes();
        assert_eq!(with(b"k").prove(Side::Server, 3, &s, &c)[..], want[..]);
    }

    #[test]
    fn nonces_differ_and_the_secret_is_not_shown() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
        let shown = format!("{:?}", with(b"hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(BusSecurity::new(Some(b""), None).is_err());
        assert!(BusSecurity::new(None, None).is_err());
        assert_eq!(BusSecurity::open().lowest_version(), 1);
        assert_eq!(with(b"x").lowest_version(), 3);
    }
}
