//! The handshake side of a link: answering initiations, completing our own, and cookies under load.

use super::cipher::Cipher;
use super::handshake::{self, Ephemeral};
use super::keys::KeySet;
use super::{
    COOKIE_LIFETIME, FIRST_RETRY, INIT_MIN_INTERVAL, Link, LinkDrop, MAX_RETRY, Outstanding,
    REKEY_AFTER, REKEY_JITTER, RESPONDER_REKEY_AFTER,
};
use crate::core::identity::NodeKey;
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::core::wire::datagram::{HandshakeInit, HandshakeResponse};

impl Link {
    pub(super) fn handle_init(
        &mut self,
        now: Instant,
        init: HandshakeInit,
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Result<(), LinkDrop> {
        handshake::check_init_mac(&init, &self.psk)?;
        if let Some((ephemeral, response)) = &self.cached_response
            && *ephemeral == init.ephemeral
        {
            // A retransmitted initiation: answer identically, at no cost.
            let response = response.clone();
            self.queue(response);
            return Ok(());
        }
        if self
            .last_init_verified
            .is_some_and(|t| now.saturating_since(t) < INIT_MIN_INTERVAL)
        {
            return Err(LinkDrop::RateLimited);
        }
        // The node's gate has bounded how many signatures all links verify; a forged initiation
        // must not also hold back the real peer's next one here, so only a verified one is stamped.
        handshake::check_init_signature(&init, &self.psk)?;
        self.last_init_verified = Some(now);
        if !self.key_allowed(&init.static_key, node) {
            return Err(LinkDrop::KeyNotAllowed);
        }
        if self
            .last_init
            .is_some_and(|(peer, t)| peer == init.static_key && init.timestamp <= t)
        {
            return Err(LinkDrop::ReplayedInit);
        }
        self.last_init = Some((init.static_key, init.timestamp));
        let ephemeral = Ephemeral::from_random(rng.bytes32());
        let index = rng.u32();
        let cipher = Cipher::choose(init.ciphers, Cipher::offer(self.params.aes_gcm))
            .ok_or(handshake::HandshakeError::NoCommonCipher)?;
        let response = handshake::make_response(node, &ephemeral, index, &init, cipher, &self.psk);
        let keys = handshake::derive_keys(&ephemeral, &init, &response, &self.psk, false)?;
        let rekey_at = now + RESPONDER_REKEY_AFTER - rng.jitter(REKEY_JITTER);
        self.pending = Some(KeySet::new(
            &keys,
            cipher,
            index,
            init.sender_index,
            now,
            rekey_at,
            false,
        ));
        // Always with `pending`: the two are confirmed together (and equal `peer` if it is known).
        self.pending_peer = Some(init.static_key);
        let encoded = response.encode();
        self.cached_response = Some((init.ephemeral, encoded.clone()));
        self.queue(encoded);
        Ok(())
    }
    /// The responder is under load: key `mac2` with its cookie and initiate again at once.
    pub(super) fn handle_cookie(
        &mut self,
        now: Instant,
        receiver_index: u32,
        cookie: [u8; 16],
    ) -> Result<(), LinkDrop> {
        let outstanding = self.outstanding.as_mut().ok_or(LinkDrop::UnknownIndex)?;
        if outstanding.init.sender_index != receiver_index
            || self.cookie.is_some_and(|(c, _)| c == cookie)
        {
            return Err(LinkDrop::UnknownIndex);
        }
        handshake::set_mac2(&mut outstanding.init, &cookie);
        let init = outstanding.init.encode();
        self.cookie = Some((cookie, now));
        self.queue(init);
        Ok(())
    }
    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        response: HandshakeResponse,
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Result<(), LinkDrop> {
        let outstanding = self.outstanding.as_ref().ok_or(LinkDrop::UnknownIndex)?;
        if response.receiver_index != outstanding.init.sender_index {
            return Err(LinkDrop::UnknownIndex);
        }
        let cipher = handshake::check_response(&response, &outstanding.init, &self.psk)?;
        if !self.key_allowed(&response.static_key, node) {
            return Err(LinkDrop::KeyNotAllowed);
        }
        let keys = handshake::derive_keys(
            &outstanding.ephemeral,
            &outstanding.init,
            &response,
            &self.psk,
            true,
        )?;
        let rekey_at = now + REKEY_AFTER - rng.jitter(REKEY_JITTER);
        let keyset = KeySet::new(
            &keys,
            cipher,
            outstanding.init.sender_index,
            response.sender_index,
            now,
            rekey_at,
            true,
        );
        self.outstanding = None;
        self.next_attempt = None;
        self.retry_interval = FIRST_RETRY;
        self.peer = Some(response.static_key);
        self.install(now, keyset);
        // Key confirmation: the responder promotes its keys on our first frame.
        self.send_keepalive_now(now);
        Ok(())
    }
    pub(super) fn start_handshake(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) {
        let ephemeral = Ephemeral::from_random(rng.bytes32());
        let timestamp = self.clock_base.saturating_add(now.as_micros());
        let offer = Cipher::offer(self.params.aes_gcm);
        let mut init =
            handshake::make_init(node, &ephemeral, rng.u32(), timestamp, offer, &self.psk);
        if let Some((cookie, _)) = self
            .cookie
            .filter(|(_, at)| now.saturating_since(*at) < COOKIE_LIFETIME)
        {
            handshake::set_mac2(&mut init, &cookie);
        }
        self.queue(init.encode());
        self.outstanding = Some(Outstanding { init, ephemeral });
        let jitter = rng.jitter(self.retry_interval / 4);
        self.next_attempt = Some(now + self.retry_interval + jitter);
        if !self.up {
            self.retry_interval = (self.retry_interval * 2).min(MAX_RETRY);
        }
    }
}
