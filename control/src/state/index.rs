//! Where the machine keeps its endpoints, and what it keeps beside the state so that a
//! question about one endpoint, one network or one namespace — and a program of one host —
//! costs what that network holds rather than what the whole cluster holds (README, "Scale").
//!
//! Rules:
//! - [`Endpoints`] holds each endpoint once, behind an `Arc` shared by its three orders: by id
//!   (the canonical order of the state), by network (then id), and by the namespace it joins
//!   (host id and target path). Every change goes through [`Endpoints::insert`],
//!   [`Endpoints::remove`] and [`Endpoints::replace`], which keep the three in step; nothing
//!   else touches them. Inserting or removing is O(log n): a cluster of 100 000 endpoints
//!   applies a connect as fast as one of 100.
//! - The namespace order is keyed by a hash of (host id, target): a collision only makes a
//!   lookup filter a few more endpoints, never answer a wrong one.
//! - Versions say what changed, for builders of host programs (`crate::program`): every
//!   network has a version, replaced whenever the network or one of its endpoints changes, and
//!   the host list has one, replaced whenever a host comes, goes or changes. Versions come
//!   from one counter for the whole process, so two machines (a clone, a machine rebuilt from
//!   a snapshot) never give one version to two different contents: an equal version means the
//!   same content. None of this is replicated: it all follows from the state.

use std::borrow::Borrow;
use std::cmp::Ordering as CmpOrdering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vxnet_proto::Endpoint;

/// An endpoint ordered (and found) by its id.
#[derive(Debug, Clone)]
struct ById(Arc<Endpoint>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.id.cmp(&other.0.id)
    }
}

/// Lookups by `&str` agree with the order above, as `Borrow` requires: both are the id's.
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub(super) struct Endpoints {
    by_id: BTreeSet<ById>,
    /// Network id → its endpoints.
    by_network: BTreeMap<String, BTreeSet<ById>>,
    /// Hash of (host id, target) → the endpoints joining that namespace.
    by_target: BTreeMap<u64, Vec<Arc<Endpoint>>>,
}

fn target_key(host_id: &str, target: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (host_id, target).hash(&mut h);
    h.finish()
}

impl Endpoints {
    /// Adds `ep`, whose id must not be in use (the caller checked).
    pub(super) fn insert(&mut self, ep: Endpoint) {
        let ep = Arc::new(ep);
        self.by_network
            .entry(ep.network_id.clone())
            .or_default()
            .insert(ById(Arc::clone(&ep)));
        self.by_target
            .entry(target_key(&ep.host_id, &ep.target))
            .or_default()
            .push(Arc::clone(&ep));
        self.by_id.insert(ById(ep));
    }

    /// Takes the endpoint with this id out of every order.
    pub(super) fn remove(&mut self, id: &str) -> Option<Endpoint> {
        let ById(ep) = self.by_id.take(id)?;
        if let Some(set) = self.by_network.get_mut(&ep.network_id) {
            set.remove(id);
            if set.is_empty() {
                self.by_network.remove(&ep.network_id);
            }
        }
        let key = target_key(&ep.host_id, &ep.target);
        if let Some(list) = self.by_target.get_mut(&key) {
            list.retain(|e| e.id != ep.id);
            if list.is_empty() {
                self.by_target.remove(&key);
            }
        }
        Some(Arc::unwrap_or_clone(ep))
    }

    /// Puts `ep` in place of the endpoint with the same id.
    pub(super) fn replace(&mut self, ep: Endpoint) {
        self.remove(&ep.id);
        self.insert(ep);
    }

    pub(super) fn get(&self, id: &str) -> Option<&Endpoint> {
        self.by_id.get(id).map(|e| &*e.0)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every endpoint, sorted by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.by_id.iter().map(|e| &*e.0)
    }

    /// The endpoints of network `network_id`, sorted by id.
    pub(super) fn of_network(&self, network_id: &str) -> impl Iterator<Item = &Endpoint> + '_ {
        self.by_network
            .get(network_id)
            .into_iter()
            .flatten()
            .map(|e| &*e.0)
    }

    /// The endpoints joining namespace `target` of host `host_id`.
    pub(super) fn of_target<'s: 'q, 'q>(
        &'s self,
        host_id: &'q str,
        target: &'q str,
    ) -> impl Iterator<Item = &'s Endpoint> + 'q {
        self.by_target
            .get(&target_key(host_id, target))
            .into_iter()
            .flatten()
            .filter(move |e| e.host_id == host_id && e.target == target)
            .map(|e| &**e)
    }
}

/// The versions of the networks and of the host list (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct Versions {
    networks: BTreeMap<String, u64>,
    hosts: u64,
}

/// A version no machine of this process has given before.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Versions {
    /// Fresh versions for every network in `network_ids` and for the host list.
    pub(super) fn fresh<'a>(network_ids: impl Iterator<Item = &'a str>) -> Versions {
        let mut v = Versions {
            hosts: next_version(),
            ..Versions::default()
        };
        for id in network_ids {
            v.touch_network(id);
        }
        v
    }

    /// Records that network `network_id` (or an endpoint of it) changed.
    pub(super) fn touch_network(&mut self, network_id: &str) {
        let version = next_version();
        match self.networks.get_mut(network_id) {
            Some(v) => *v = version,
            None => {
                self.networks.insert(network_id.to_owned(), version);
            }
        }
    }

    /// Forgets a removed network.
    pub(super) fn forget_network(&mut self, network_id: &str) {
        self.networks.remove(network_id);
    }

    /// Records that a host came, went or changed.
    pub(super) fn touch_hosts(&mut self) {
        self.hosts = next_version();
    }

    pub(super) fn network(&self, network_id: &str) -> Option<u64> {
        self.networks.get(network_id).copied()
    }

    pub(super) fn hosts(&self) -> u64 {
        self.hosts
    }
}
