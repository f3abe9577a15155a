//! The stretched passwords (`core::password`) of the running daemon, one per distinct password.
//!
//! Stretching is slow on purpose (Argon2id, 19 MiB), so it runs only where a password first appears:
//! for every password of the configuration when it is loaded (listeners, peers, discovery rules, the
//! group password), and for a new password that `addpeer` brings (on a blocking thread, see
//! `api::handlers`). Everything else looks keys up with [`PasswordKeys::get`], which takes `&self`
//! and cannot stretch: above all the inbound policy, which runs for every initiation-shaped datagram
//! from anyone, and the beacon checks.

use std::collections::HashMap;

use crate::config::Daemon;
use crate::core::password::PasswordKey;

/// A password that was never stretched. It does not happen (every password is stretched before it
/// is used); a lookup that finds none refuses rather than stretching on a hot path, or falling back
/// to no password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password not stretched")]
pub(crate) struct NotStretched;

/// Raw password -> stretched key.
#[derive(Default)]
pub(crate) struct PasswordKeys {
    keys: HashMap<Vec<u8>, PasswordKey>,
}

impl PasswordKeys {
    /// Stretches every password of `config`, each distinct one once.
    pub(crate) fn for_config(config: &Daemon) -> Self {
        let mut keys = Self::default();
        for password in passwords_of(config) {
            keys.stretch(password);
        }
        keys
    }

    /// The stretched key of `password`, stretching it now if it is new: for start-up, never for a
    /// datagram.
    pub(crate) fn stretch(&mut self, password: &[u8]) -> PasswordKey {
        if let Some(key) = self.keys.get(password) {
            return key.clone();
        }
        let key = PasswordKey::derive(password);
        self.keys.insert(password.to_vec(), key.clone());
        key
    }

    /// The stretched key of `password` (`None` for no password): a lookup, never a stretch.
    pub(crate) fn get(&self, password: Option<&[u8]>) -> Result<Option<PasswordKey>, NotStretched> {
        match password {
            None => Ok(None),
            Some(p) => self.keys.get(p).cloned().map(Some).ok_or(NotStretched),
        }
    }

    /// Returns true if `password` is absent or stretched.
    pub(crate) fn has(&self, password: Option<&[u8]>) -> bool {
        password.is_none_or(|p| self.keys.contains_key(p))
    }

    /// Keeps a key stretched elsewhere (`addpeer`'s blocking thread).
    pub(crate) fn insert(&mut self, password: Vec<u8>, key: PasswordKey) {
        self.keys.insert(password, key);
    }

    /// Forgets the keys of passwords for which `used` is false (peers removed at run time).
    pub(crate) fn retain(&mut self, used: impl Fn(&[u8]) -> bool) {
        self.keys.retain(|password, _| used(password));
    }

    /// Distinct passwords stretched.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Passwords stretched on a blocking thread for a reload: (password, its key).
pub(crate) type Stretched = Vec<(Vec<u8>, PasswordKey)>;

/// Every password the configuration holds (with repeats).
pub(crate) fn passwords_of(config: &Daemon) -> impl Iterator<Item = &[u8]> {
    let uris = config.listen.iter().chain(&config.peers);
    uris.filter_map(|u| u.password.as_deref())
        .chain(
            config
                .discovery
                .iter()
                .filter_map(|r| r.password.as_deref()),
        )
        .chain(config.group_password.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiscoveryRule, LinkUri};
    use crate::core::password::derivations_on_this_thread;

    fn config() -> Daemon {
        let uri = |text: &str| LinkUri::parse(text).unwrap();
        Daemon {
            listen: vec![uri("udp://[::]:9100?password=listen")],
            peers: vec![
                uri("udp://[2001:db8::1]:9100?password=peer"),
                uri("udp://[2001:db8::2]:9100?password=listen"),
                uri("udp://[2001:db8::3]:9100"),
            ],
            discovery: vec![DiscoveryRule {
                password: Some(b"island".to_vec()),
                ..DiscoveryRule::everywhere()
            }],
            group_password: Some(b"group".to_vec()),
            ..Daemon::default()
        }
    }

    #[test]
    fn every_distinct_password_is_stretched_once_at_load() {
        let before = derivations_on_this_thread();
        let mut keys = PasswordKeys::for_config(&config());
        assert_eq!(derivations_on_this_thread() - before, 4);
        assert_eq!(keys.len(), 4);
        for p in ["listen", "peer", "island", "group"] {
            assert!(keys.get(Some(p.as_bytes())).unwrap().is_some(), "{p}");
        }
        assert_eq!(keys.get(None).unwrap().map(|_| ()), None);
        assert_eq!(keys.get(Some(b"unknown")).map(|_| ()), Err(NotStretched));
        let _ = keys.stretch(b"group");
        assert_eq!(
            derivations_on_this_thread() - before,
            4,
            "known: no stretch"
        );
        keys.retain(|p| p != b"peer");
        assert!(keys.has(None) && keys.has(Some(b"listen")) && !keys.has(Some(b"peer")));
    }
}
