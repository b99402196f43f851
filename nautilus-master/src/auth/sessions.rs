//! Live sessions (watches, followed logs, exec/attach/port-forward tunnels) and their end when
//! the credential that opened them stops being valid.
//!
//! A token is checked when a request arrives; a watch or an exec tunnel can outlive that check
//! by hours. Each long-running request therefore registers here under its stake id and owner,
//! and holds a [`Session`]: dropping it unregisters, and cancellation ends the stream. The
//! authenticator re-checks the sessions of a stake whenever the chain follower reports that the
//! stake (or its owner's grants, or a cluster-wide rule) changed, and cancels those that no
//! longer pass.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use daas_seal::Address;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Identity;

/// Which sessions a change concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Sessions opened with a token for this stake record.
    Stake(Address),
    /// Sessions of every stake this address owns.
    Owner(Address),
    /// Every session.
    All,
}

#[derive(Debug)]
struct Live {
    identity: Arc<Identity>,
    stake: Address,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    live: HashMap<u64, Live>,
    by_stake: HashMap<Address, HashSet<u64>>,
    by_owner: HashMap<Address, HashSet<u64>>,
}

/// The registry. Shared by the authenticator (which cancels) and the front doors (which open).
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
    /// Bumped by every re-check (see [`Sessions::changes`]).
    changes: std::sync::atomic::AtomicU64,
}

/// One open session. Dropping it unregisters it; [`Session::cancelled`] resolves when its
/// credential was found invalid.
#[derive(Debug)]
pub struct Session {
    id: u64,
    registry: Arc<Sessions>,
    cancel: CancellationToken,
}

impl Session {
    /// Resolves when the session must end.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

fn unlink(map: &mut HashMap<Address, HashSet<u64>>, key: Address, id: u64) {
    if let Some(ids) = map.get_mut(&key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

/// What a re-check needs about the sessions of one stake.
#[derive(Debug)]
pub(crate) struct Affected {
    /// One identity per distinct credential (stake, token epoch, role, node name).
    pub(crate) identities: Vec<Arc<Identity>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each critical section updates the maps without calling out: a poisoned registry is
        // still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session for `identity`, which must carry a stake binding (the master's own
    /// identity has none and is never registered: `None`).
    pub fn open(self: &Arc<Self>, identity: Arc<Identity>) -> Option<Session> {
        let stake = identity.stake.as_ref()?.id;
        let owner = identity.address;
        let cancel = CancellationToken::new();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.live.insert(
            id,
            Live {
                identity,
                stake,
                cancel: cancel.clone(),
            },
        );
        inner.by_stake.entry(stake).or_default().insert(id);
        inner.by_owner.entry(owner).or_default().insert(id);
        drop(inner);
        Some(Session {
            id,
            registry: self.clone(),
            cancel,
        })
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        let Some(live) = inner.live.remove(&id) else {
            return;
        };
        let inner = &mut *inner;
        unlink(&mut inner.by_stake, live.stake, id);
        unlink(&mut inner.by_owner, live.identity.address, id);
    }

    fn ids(inner: &Inner, scope: Scope) -> Vec<u64> {
        match scope {
            Scope::Stake(s) => inner
                .by_stake
                .get(&s)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            Scope::Owner(o) => inner
                .by_owner
                .get(&o)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            Scope::All => inner.live.keys().copied().collect(),
        }
    }

    /// The stakes with open sessions in `scope`, each with its distinct credentials.
    pub(crate) fn affected(&self, scope: Scope) -> HashMap<Address, Affected> {
        let inner = self.lock();
        let mut out: HashMap<Address, Affected> = HashMap::new();
        for id in Self::ids(&inner, scope) {
            let Some(live) = inner.live.get(&id) else {
                continue;
            };
            let entry = out.entry(live.stake).or_insert_with(|| Affected {
                identities: Vec::new(),
            });
            if !entry
                .identities
                .iter()
                .any(|i| i.stake == live.identity.stake && i.role == live.identity.role)
            {
                entry.identities.push(live.identity.clone());
            }
        }
        out
    }

    /// Cancels the sessions in `scope` whose identity `doomed` selects. Returns how many.
    pub(crate) fn cancel(&self, scope: Scope, doomed: impl Fn(&Identity) -> bool) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for id in Self::ids(&inner, scope) {
            if let Some(live) = inner.live.get(&id)
                && !live.cancel.is_cancelled()
                && doomed(&live.identity)
            {
                live.cancel.cancel();
                n += 1;
            }
        }
        n
    }

    /// How many re-checks have been started so far. A front door reads it before it
    /// authenticates a request and compares after it opened the request's session: if it moved,
    /// a re-check may have run in between and missed the session, which must then be checked
    /// itself.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Open sessions (for metrics).
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StakeBinding;
    use daas_seal::Role;

    fn identity(owner: u8, stake: u8, epoch: u64) -> Arc<Identity> {
        Arc::new(Identity {
            username: format!("sui:{owner}"),
            uid: format!("{stake}"),
            groups: vec![],
            extra: Default::default(),
            address: Address::new([owner; 32]),
            role: Role::User,
            stake: Some(StakeBinding {
                id: Address::new([stake; 32]),
                token_epoch: epoch,
                node_name: None,
            }),
        })
    }

    #[test]
    fn sessions_are_found_by_stake_and_owner_and_leave_on_drop() {
        let reg = Arc::new(Sessions::default());
        let a1 = reg.open(identity(1, 10, 0)).expect("a1");
        let a2 = reg.open(identity(1, 11, 0)).expect("a2");
        let b = reg.open(identity(2, 20, 0)).expect("b");
        assert_eq!(reg.len(), 3);
        let s10 = Address::new([10; 32]);
        assert_eq!(reg.affected(Scope::Stake(s10)).len(), 1);
        assert_eq!(reg.affected(Scope::Owner(Address::new([1; 32]))).len(), 2);
        assert_eq!(reg.affected(Scope::All).len(), 3);
        assert_eq!(reg.cancel(Scope::Stake(s10), |_| true), 1);
        assert!(a1.is_cancelled() && !a2.is_cancelled() && !b.is_cancelled());
        drop(a1);
        assert!(reg.affected(Scope::Stake(s10)).is_empty());
        assert_eq!(
            reg.cancel(Scope::All, |i| i.address == Address::new([2; 32])),
            1
        );
        assert!(b.is_cancelled() && !a2.is_cancelled());
        drop((a2, b));
        assert!(reg.is_empty());
        let inner = reg.lock();
        assert!(inner.by_stake.is_empty() && inner.by_owner.is_empty());
    }

    #[tokio::test]
    async fn cancellation_wakes_the_session() {
        let reg = Arc::new(Sessions::default());
        let s = reg.open(identity(1, 10, 0)).expect("session");
        let waiting = tokio::spawn(s.cancelled());
        reg.cancel(Scope::All, |_| true);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
    }

    #[test]
    fn the_masters_own_identity_is_not_a_session() {
        let reg = Arc::new(Sessions::default());
        let mut id = (*identity(1, 10, 0)).clone();
        id.stake = None;
        assert!(reg.open(Arc::new(id)).is_none());
    }
}
