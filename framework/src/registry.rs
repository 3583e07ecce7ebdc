//! The components of this process, by the server they link to and their
//! JID: a server may hand a link stanzas for any host its listener binds
//! to that connection (an ejabberd `ejabberd_service` listener with
//! several `hosts` binds them all to every connection), so a stanza for
//! another component of this process is passed to it, whichever link it
//! came in on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use crate::dispatch::Dispatcher;

type Key = (String, String);

#[derive(Default)]
struct Registry {
    components: HashMap<Key, Weak<Dispatcher>>,
    /// Hosts already warned about, per server.
    warned: HashSet<Key>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn key(server: &str, host: &str) -> Key {
    (server.to_owned(), host.to_ascii_lowercase())
}

/// A component's entry; removed when dropped.
pub(crate) struct Registration {
    key: Key,
    dispatcher: Weak<Dispatcher>,
}

/// Registers a component's dispatcher for stanzas to `host` arriving on
/// any link to `server`. The first component registered for a host keeps
/// it.
pub(crate) fn register(server: &str, host: &str, dispatcher: &Arc<Dispatcher>) -> Registration {
    let key = key(server, host);
    let weak = Arc::downgrade(dispatcher);
    let mut registry = registry();
    let live = registry
        .components
        .get(&key)
        .is_some_and(|d| d.strong_count() > 0);
    if !live {
        registry.components.insert(key.clone(), weak.clone());
    }
    Registration {
        key,
        dispatcher: weak,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = registry();
        if registry
            .components
            .get(&self.key)
            .is_some_and(|d| d.ptr_eq(&self.dispatcher))
        {
            registry.components.remove(&self.key);
        }
    }
}

/// The dispatcher of this process's component for `host` on `server`.
pub(crate) fn lookup(server: &str, host: &str) -> Option<Arc<Dispatcher>> {
    registry().components.get(&key(server, host))?.upgrade()
}

/// Whether to warn about `host` on `server` (true the first time only).
pub(crate) fn first_warning(server: &str, host: &str) -> bool {
    registry().warned.insert(key(server, host))
}

/// The domain part of a JID as written (`room@host/res` → `host`).
pub(crate) fn domain_of(jid: &str) -> &str {
    let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
    bare.rsplit_once('@').map_or(bare, |(_, domain)| domain)
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn domains() {
        assert_eq!(domain_of("room@muc.example/nick@home"), "muc.example");
        assert_eq!(domain_of("muc.example"), "muc.example");
        assert_eq!(domain_of("muc.example/x"), "muc.example");
        assert_eq!(domain_of("a@b"), "b");
    }
}
