//! The chaos suite: `create`, `connect`, `disconnect` and `rm` from several threads against
//! random hosts of a 3- or 5-host cluster while daemons are killed -9 and restarted, paused
//! with SIGSTOP past the election timeout, and cut off the underlay one way or both ways; then,
//! after healing, a check of what every host shows against the recorded history.
//!
//! Rules a run relies on:
//! - Everything random comes from one seed ([`Rng`], splitmix64): workers and fault slots each
//!   get their own generator derived from it, so the seed printed at the start of a run names
//!   the run (thread timing still varies, so a replay is the same mix, not the same
//!   interleaving).
//! - The CLI contract decides what a result means ([`classify`]): exit 0 is acknowledged
//!   (committed); exit 2, a refusal by the state ("already in use", "not found", ...) or a
//!   daemon that cannot be reached at all changed nothing; anything else (a timeout, "no
//!   leader", a daemon that died mid-request, an error of this host's dataplane) is
//!   indeterminate: it may have committed, now or later.
//! - Ops on one object are never concurrent: a network is held exclusively by its `create` and
//!   `rm` and shared by `connect`/`disconnect`, a container by one op at a time. So the ops of
//!   one object form a sequence, and the checker ([`check_history`]) explains each object's
//!   final state by that sequence, where an indeterminate op may take effect at any point
//!   after it started, or never. A connect that timed out may also be undone later by its
//!   daemon (it disconnects endpoints whose connect timed out, and endpoints whose veth is
//!   gone).
//! - Network names are unique per run (`n<k>`); a second `create` of a name that certainly
//!   exists is issued on purpose and must be refused; such a network is never removed after.
//! - Containers stay alive for the whole run (an endpoint whose namespace is gone is removed
//!   by the daemon, which would look like a lost write); `connect` and `disconnect` run on the
//!   container's own host.
//! - Faults never take a majority: at most one host of 3, two of 5, is faulted at once. A cut
//!   is an nftables table of our own ([`CHAOS_TABLE`]) in the host's namespace, deleted at
//!   heal (this kernel has no `sch_netem`).
//! - After healing, every daemon must run, the hosts must agree, and the state must hold still
//!   for a few seconds (the daemons' cleanup loops tick every second) before it is checked;
//!   every wait is bounded, nothing asserts on speed.
//! - A run writes its history, faults and findings to `$TMPDIR/vxnet-chaos-s<SEED>-h<N>.txt`
//!   (with the daemon logs when something was found).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lab::cluster::CLUSTER_TIMEOUT;
use crate::lab::iproute::{parse_ipv4_addrs, parse_link_names};
use crate::lab::topology::{in_subnet, HOST_UPLINK};
use crate::netns;
use crate::vxnet_json::{parse_inspect, NetworkInfo};
use crate::wait::wait_for;
use crate::{ping, Container, Lab};

/// Environment variable with the first seed (decimal or 0x-hex).
pub const SEED_ENV: &str = "VXNET_CHAOS_SEED";
/// Environment variable with the number of runs per test (consecutive seeds).
pub const RUNS_ENV: &str = "VXNET_CHAOS_RUNS";
/// Environment variable that limits a test run to one lab size (3 or 5).
pub const HOSTS_ENV: &str = "VXNET_CHAOS_HOSTS";
/// Environment variable with the length of the op phase in seconds.
pub const SECS_ENV: &str = "VXNET_CHAOS_SECS";
/// Environment variable that, set to 1, makes a run break two rules behind the daemons' back
/// after healing (a network no op made, an interface no endpoint owns): the run must then
/// report both, which shows the checks can fail on a live lab.
pub const SABOTAGE_ENV: &str = "VXNET_CHAOS_SABOTAGE";
/// The seed when [`SEED_ENV`] is not set.
pub const DEFAULT_SEED: u64 = 0x5eed_0007;
/// Name of the nftables table (family `inet`) a cut lives in.
pub const CHAOS_TABLE: &str = "vxchaos";

/// `--timeout` of every op: above an election (1–2 s), so a write during one can still land.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Networks that may exist at once (not certainly removed): each one with endpoints is a
/// sandbox, a TAP and forwarding threads on every host that has them.
const MAX_LIVE_NETWORKS: usize = 6;
/// How long the healed cluster gets to agree and hold still.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the state must stay the same on every host before it is checked: a few ticks of
/// the daemons' cleanup loops (one per second).
const STABLE_FOR: Duration = Duration::from_secs(3);
/// How long one pair of containers gets to answer pings after healing.
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// The most configurations the checker explores for one object before it gives up on it.
const MAX_CONFIGS: usize = 200_000;

// ------------------------------------------------------------------------------- randomness

/// splitmix64: small, seedable, good enough to pick ops and hosts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent generator for `stream` (a worker, a fault slot) of `seed`.
    pub fn derive(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }

    /// One of `items`, `None` if empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

/// The first seed: [`SEED_ENV`] (decimal or 0x-hex) or [`DEFAULT_SEED`].
pub fn seed_from_env() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// A positive number from environment variable `name`, else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={s:?} is not a number"))
        })
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------- history

/// What an op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// `network create NAME` of a fresh name.
    Create,
    /// `network create NAME` of a name that certainly exists: must be refused.
    DupCreate,
    /// `network rm NAME`.
    Remove,
    /// `network connect NAME CONTAINER` on the container's host.
    Connect,
    /// `network disconnect NAME CONTAINER` on the container's host.
    Disconnect,
}

/// How an op ended, by the CLI contract (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Exit 0: committed.
    Ok,
    /// A definite refusal: nothing changed.
    Refused,
    /// It may have committed, now or later.
    Indeterminate,
}

/// One op as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Order of issue, for messages.
    pub id: usize,
    /// The worker thread that ran it.
    pub worker: usize,
    /// What it did.
    pub kind: OpKind,
    /// The lab host whose CLI it ran on.
    pub host: usize,
    /// The network name.
    pub network: String,
    /// The container's namespace (connect, disconnect).
    pub container: Option<String>,
    /// Since the start of the run.
    pub start: Duration,
    /// Since the start of the run.
    pub end: Duration,
    /// See [`classify`].
    pub outcome: Outcome,
    /// The CLI's exit code (`None`: killed at its deadline, or signalled).
    pub exit: Option<i32>,
    /// stdout, trimmed (a create's network ID).
    pub stdout: String,
    /// stderr, trimmed.
    pub stderr: String,
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} w{} h{} {:?} {}{} [{:.3}s..{:.3}s] {:?} exit={:?}",
            self.id,
            self.worker,
            self.host,
            self.kind,
            self.network,
            self.container
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            self.start.as_secs_f64(),
            self.end.as_secs_f64(),
            self.outcome,
            self.exit
        )?;
        if !self.stdout.is_empty() {
            write!(f, " out={:?}", self.stdout)?;
        }
        if !self.stderr.is_empty() {
            write!(f, " err={:?}", self.stderr)?;
        }
        Ok(())
    }
}

/// What an exit code and stderr mean (see the module docs). A refusal is recognised by the
/// state machine's own sentences and the client's "cannot connect" (nothing was sent);
/// anything not recognised is indeterminate, which the checker accepts either way.
pub fn classify(exit: Option<i32>, stderr: &str) -> Outcome {
    match exit {
        Some(0) => return Outcome::Ok,
        Some(2) => return Outcome::Refused,
        _ => {}
    }
    let e = stderr.to_ascii_lowercase();
    let refused = [
        "already in use",
        "not found",
        "is not connected to network",
        "has active endpoints",
        "is already connected to network",
        "overlaps subnet",
        "no free",
        "is not a member of the cluster",
    ];
    if exit.is_some() && refused.iter().any(|r| e.contains(r)) {
        return Outcome::Refused;
    }
    // The daemon was never reached: the socket is there with nobody listening, or not there.
    if exit.is_some()
        && e.contains("cannot reach the vxnet daemon")
        && (e.contains("connection refused") || e.contains("no such file"))
    {
        return Outcome::Refused;
    }
    Outcome::Indeterminate
}

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// kill -9, then a restart on the same data dir.
    Kill,
    /// SIGSTOP past the election timeout, then SIGCONT.
    Pause,
    /// The host hears nothing from the underlay (it can still send).
    CutIn,
    /// Nothing the host sends reaches the underlay (it still hears).
    CutOut,
    /// Both.
    CutBoth,
}

impl FaultKind {
    const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::CutIn,
        FaultKind::CutOut,
        FaultKind::CutBoth,
    ];
}

/// One fault as it was injected.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// What.
    pub kind: FaultKind,
    /// Where.
    pub host: usize,
    /// Since the start of the run.
    pub start: Duration,
    /// When it was healed.
    pub end: Duration,
    /// Anything that went wrong injecting or healing it.
    pub note: String,
}

// ---------------------------------------------------------------------------------- checker

/// A container as the checker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Namespace name: the endpoint name `inspect` shows.
    pub ns: String,
    /// The name of its host (`h0`): the `Host` of its endpoints.
    pub host_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Absent → present (create, connect).
    Make,
    /// Present → absent (rm, disconnect).
    Unmake,
    /// Needs present, changes nothing (a connect acknowledged on the network).
    RequirePresent,
    /// Needs absent, changes nothing (an rm acknowledged, for the network's endpoints).
    RequireAbsent,
}

/// What a refusal claims about the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Present,
    Absent,
}

struct ObjOp<'a> {
    rec: &'a OpRecord,
    step: Step,
    /// An indeterminate make its daemon may undo later (a connect that timed out).
    undoable: bool,
    claim: Option<Claim>,
}

/// One explanation of an object's history so far: who made it present (an index into its op
/// list), which indeterminate ops have taken effect, which of those were undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Config {
    owner: Option<usize>,
    applied: u64,
    undone: u64,
}

/// Every configuration reachable from `configs` by letting pending indeterminate ops take
/// effect (or be undone), in any order; `None` if there are too many to explore.
fn closure(
    configs: &BTreeSet<Config>,
    ops: &[ObjOp],
    pending: &[usize],
) -> Option<BTreeSet<Config>> {
    let mut seen = configs.clone();
    let mut todo: Vec<Config> = seen.iter().copied().collect();
    while let Some(c) = todo.pop() {
        for &k in pending {
            let bit = 1u64 << k;
            let next = if c.applied & bit == 0 {
                match (ops[k].step, c.owner) {
                    (Step::Make, None) => Some(Config {
                        owner: Some(k),
                        applied: c.applied | bit,
                        ..c
                    }),
                    (Step::Unmake, Some(_)) => Some(Config {
                        owner: None,
                        applied: c.applied | bit,
                        ..c
                    }),
                    _ => None,
                }
            } else if ops[k].undoable && c.undone & bit == 0 && c.owner == Some(k) {
                Some(Config {
                    owner: None,
                    undone: c.undone | bit,
                    ..c
                })
            } else {
                None
            };
            if let Some(n) = next {
                if seen.insert(n) {
                    if seen.len() > MAX_CONFIGS {
                        return None;
                    }
                    todo.push(n);
                }
            }
        }
    }
    Some(seen)
}

/// Explains one object's op sequence (sorted by start); returns the possible final presences
/// (present, absent), or `None` when it had too many indeterminate ops to explore. Findings
/// for acknowledged ops no explanation allows, and for refusals that contradict every
/// explanation, go to `findings`.
fn explain(what: &str, ops: &[ObjOp], findings: &mut Vec<String>) -> Option<(bool, bool)> {
    if ops.len() > 64 {
        return None;
    }
    let history = || -> String {
        ops.iter()
            .map(|o| format!("\n    {}", o.rec))
            .collect::<String>()
    };
    let mut configs = BTreeSet::from([Config {
        owner: None,
        applied: 0,
        undone: 0,
    }]);
    let mut pending = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        match op.rec.outcome {
            Outcome::Indeterminate => {
                if matches!(op.step, Step::Make | Step::Unmake) {
                    pending.push(k);
                }
            }
            Outcome::Refused => {
                let Some(claim) = op.claim else { continue };
                let all = closure(&configs, ops, &pending)?;
                let contradicted = match claim {
                    Claim::Present => all.iter().all(|c| c.owner.is_none()),
                    Claim::Absent => all.iter().all(|c| c.owner.is_some()),
                };
                if contradicted {
                    findings.push(format!(
                        "{what}: op #{} was refused as if {what} were {}, but every \
                         explanation of the history has it {}: {:?}; history:{}",
                        op.rec.id,
                        if claim == Claim::Present {
                            "present"
                        } else {
                            "absent"
                        },
                        if claim == Claim::Present {
                            "absent"
                        } else {
                            "present"
                        },
                        op.rec.stderr,
                        history()
                    ));
                }
            }
            Outcome::Ok => {
                let all = closure(&configs, ops, &pending)?;
                let next: BTreeSet<Config> = all
                    .iter()
                    .filter_map(|c| match (op.step, c.owner) {
                        (Step::Make, None) => Some(Config {
                            owner: Some(k),
                            ..*c
                        }),
                        (Step::Unmake, Some(_)) => Some(Config { owner: None, ..*c }),
                        (Step::RequirePresent, Some(_)) | (Step::RequireAbsent, None) => Some(*c),
                        _ => None,
                    })
                    .collect();
                if next.is_empty() {
                    findings.push(format!(
                        "{what}: op #{} was acknowledged, but no explanation of the history \
                         allows it ({:?} needs {what} {}); history:{}",
                        op.rec.id,
                        op.rec.kind,
                        match op.step {
                            Step::Make | Step::RequireAbsent => "absent",
                            Step::Unmake | Step::RequirePresent => "present",
                        },
                        history()
                    ));
                    // Carry on as if it had happened, to check the rest.
                    configs = all
                        .iter()
                        .map(|c| Config {
                            owner: match op.step {
                                Step::Make => Some(k),
                                Step::Unmake | Step::RequireAbsent => None,
                                Step::RequirePresent => c.owner.or(Some(k)),
                            },
                            ..*c
                        })
                        .collect();
                } else {
                    configs = next;
                }
            }
        }
    }
    let all = closure(&configs, ops, &pending)?;
    Some((
        all.iter().any(|c| c.owner.is_some()),
        all.iter().any(|c| c.owner.is_none()),
    ))
}

fn network_claim(rec: &OpRecord) -> Option<Claim> {
    let e = rec.stderr.to_ascii_lowercase();
    if rec.outcome != Outcome::Refused {
        return None;
    }
    if e.contains(&format!(
        "network {} not found",
        rec.network.to_ascii_lowercase()
    )) {
        return Some(Claim::Absent);
    }
    match rec.kind {
        OpKind::Create | OpKind::DupCreate
            if e.contains("network name") && e.contains("already in use") =>
        {
            Some(Claim::Present)
        }
        OpKind::Remove if e.contains("has active endpoints") => Some(Claim::Present),
        _ => None,
    }
}

fn endpoint_claim(rec: &OpRecord) -> Option<Claim> {
    let e = rec.stderr.to_ascii_lowercase();
    if rec.outcome != Outcome::Refused {
        return None;
    }
    match rec.kind {
        OpKind::Connect
            if e.contains("is already connected to network")
                || (e.contains("endpoint name") && e.contains("already in use")) =>
        {
            Some(Claim::Present)
        }
        OpKind::Disconnect
            if e.contains("is not connected to network")
                || (e.contains("endpoint id") && e.contains("not found")) =>
        {
            Some(Claim::Absent)
        }
        _ => None,
    }
}

/// A comparable form of one host's view: networks by name, each with its ID, VNI, subnet and
/// endpoints (ID, name, MAC, address, host).
fn normalized(view: &[NetworkInfo]) -> Vec<String> {
    let mut v: Vec<String> = view
        .iter()
        .map(|n| {
            let eps: Vec<String> = n
                .endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}:{}:{}",
                        e.endpoint_id, e.name, e.mac, e.ipv4, e.host
                    )
                })
                .collect();
            format!(
                "{} {} vni={} {} [{}]",
                n.name,
                n.id,
                n.vni,
                n.subnet,
                eps.join(" ")
            )
        })
        .collect();
    v.sort();
    v
}

/// The MAC an endpoint with address `ip` gets: `02:42:` and the four bytes of the address.
fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Checks the control-plane side of a run: `views` is what each host (by name) lists after
/// healing, `history` every op, `containers` every container of the run. Returns the
/// findings, each with its evidence.
///
/// - every host lists the same networks and endpoints;
/// - no two networks share a name, ID or VNI; within a network no two endpoints share an
///   address, a MAC or a name; addresses lie in the subnet, MACs follow the address;
/// - each network and each (container, network) endpoint is present or absent as some
///   explanation of its ops allows: acknowledged writes are there unless undone by a later op,
///   refused ones left nothing, indeterminate ones are there or not; an acknowledged create's
///   ID is the network's; an endpoint is on its container's host;
/// - nothing is listed that no op made (ghost networks and endpoints).
pub fn check_history(
    history: &[OpRecord],
    containers: &[ContainerInfo],
    views: &[(String, Vec<NetworkInfo>)],
) -> Vec<String> {
    let mut findings = Vec::new();
    let Some((first_host, state)) = views.first() else {
        findings.push("no host could be asked for its state".to_string());
        return findings;
    };
    let reference = normalized(state);
    for (host, view) in &views[1..] {
        let other = normalized(view);
        if other != reference {
            findings.push(format!(
                "hosts disagree after healing: {first_host} lists {reference:#?}, {host} lists \
                 {other:#?}"
            ));
        }
    }

    // Duplicates.
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_vni: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for n in state {
        *by_name.entry(&n.name).or_default() += 1;
        *by_id.entry(&n.id).or_default() += 1;
        by_vni.entry(n.vni).or_default().push(&n.name);
        let mut ips: BTreeMap<Ipv4Addr, Vec<&str>> = BTreeMap::new();
        let mut macs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &n.endpoints {
            ips.entry(e.ipv4).or_default().push(&e.name);
            macs.entry(&e.mac).or_default().push(&e.name);
            *names.entry(&e.name).or_default() += 1;
            if !in_subnet(e.ipv4, &n.subnet).unwrap_or(false) {
                findings.push(format!(
                    "endpoint {} of {} has {} outside the subnet {}",
                    e.name, n.name, e.ipv4, n.subnet
                ));
            }
            if n.gateway == Some(e.ipv4) {
                findings.push(format!(
                    "endpoint {} of {} has the gateway's address {}",
                    e.name, n.name, e.ipv4
                ));
            }
            if e.mac != mac_of(e.ipv4) {
                findings.push(format!(
                    "endpoint {} of {} has MAC {} for address {} (expected {})",
                    e.name,
                    n.name,
                    e.mac,
                    e.ipv4,
                    mac_of(e.ipv4)
                ));
            }
        }
        for (ip, who) in ips.iter().filter(|(_, w)| w.len() > 1) {
            findings.push(format!("duplicate address {ip} in {}: {who:?}", n.name));
        }
        for (mac, who) in macs.iter().filter(|(_, w)| w.len() > 1) {
            findings.push(format!("duplicate MAC {mac} in {}: {who:?}", n.name));
        }
        for (name, _) in names.iter().filter(|(_, c)| **c > 1) {
            findings.push(format!("duplicate endpoint name {name} in {}", n.name));
        }
    }
    for (name, _) in by_name.iter().filter(|(_, c)| **c > 1) {
        findings.push(format!("duplicate network name {name}"));
    }
    for (id, _) in by_id.iter().filter(|(_, c)| **c > 1) {
        findings.push(format!("duplicate network ID {id}"));
    }
    for (vni, who) in by_vni.iter().filter(|(_, w)| w.len() > 1) {
        findings.push(format!("duplicate VNI {vni}: {who:?}"));
    }

    // Networks.
    let mut ops_by_net: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    for r in history {
        ops_by_net.entry(&r.network).or_default().push(r);
    }
    let present: BTreeMap<&str, &NetworkInfo> =
        state.iter().map(|n| (n.name.as_str(), n)).collect();
    for name in present.keys() {
        if !ops_by_net.contains_key(name) {
            findings.push(format!("ghost network {name}: no op of the run created it"));
        }
    }
    for (name, recs) in &ops_by_net {
        let mut recs = recs.clone();
        recs.sort_by_key(|r| (r.start, r.id));
        let ops: Vec<ObjOp> = recs
            .iter()
            .map(|r| ObjOp {
                rec: r,
                step: match r.kind {
                    OpKind::Create | OpKind::DupCreate => Step::Make,
                    OpKind::Remove => Step::Unmake,
                    OpKind::Connect | OpKind::Disconnect => Step::RequirePresent,
                },
                undoable: false,
                claim: network_claim(r),
            })
            .collect();
        let what = format!("network {name}");
        let net = present.get(name).copied();
        match explain(&what, &ops, &mut findings) {
            None => {}
            Some((can_be_present, can_be_absent)) => {
                let hist = || {
                    ops.iter()
                        .map(|o| format!("\n    {}", o.rec))
                        .collect::<String>()
                };
                if net.is_some() && !can_be_present {
                    findings.push(format!(
                        "{what} is listed, but every explanation of its history has it \
                         removed or never created; history:{}",
                        hist()
                    ));
                }
                if net.is_none() && !can_be_absent {
                    findings.push(format!(
                        "{what} is missing (an acknowledged write lost); history:{}",
                        hist()
                    ));
                }
            }
        }
        if let Some(net) = net {
            // The ID an acknowledged create printed is the network's: a listed network with
            // another ID was created by something else.
            for r in recs
                .iter()
                .filter(|r| r.kind == OpKind::Create && r.outcome == Outcome::Ok)
            {
                if r.stdout.trim() != net.id {
                    findings.push(format!(
                        "{what} has ID {}, but its acknowledged create printed {:?}: {r}",
                        net.id, r.stdout
                    ));
                }
            }
        }
    }

    // Endpoints of the networks that are listed.
    let by_ns: BTreeMap<&str, &ContainerInfo> =
        containers.iter().map(|c| (c.ns.as_str(), c)).collect();
    for net in state {
        let recs = ops_by_net
            .get(net.name.as_str())
            .cloned()
            .unwrap_or_default();
        for e in &net.endpoints {
            match by_ns.get(e.name.as_str()) {
                None => findings.push(format!(
                    "ghost endpoint {} ({}) in {}: no container of the run has that name",
                    e.name, e.endpoint_id, net.name
                )),
                Some(c) if c.host_name != e.host => findings.push(format!(
                    "endpoint {} in {} is on host {}, but its container's connects ran on {}",
                    e.name, net.name, e.host, c.host_name
                )),
                Some(_) => {}
            }
        }
        for c in containers {
            let mut mine: Vec<&OpRecord> = recs
                .iter()
                .copied()
                .filter(|r| {
                    r.container.as_deref() == Some(c.ns.as_str())
                        || (r.kind == OpKind::Remove && r.outcome == Outcome::Ok)
                })
                .collect();
            mine.sort_by_key(|r| (r.start, r.id));
            let listed = net.endpoint(&c.ns).is_some();
            if mine.iter().all(|r| r.kind == OpKind::Remove) {
                if listed {
                    findings.push(format!(
                        "ghost endpoint {} in {}: it was never connected there",
                        c.ns, net.name
                    ));
                }
                continue;
            }
            let ops: Vec<ObjOp> = mine
                .iter()
                .map(|r| ObjOp {
                    rec: r,
                    step: match r.kind {
                        OpKind::Connect => Step::Make,
                        OpKind::Disconnect => Step::Unmake,
                        _ => Step::RequireAbsent,
                    },
                    undoable: r.kind == OpKind::Connect && r.outcome == Outcome::Indeterminate,
                    claim: endpoint_claim(r),
                })
                .collect();
            let what = format!("endpoint {} in {}", c.ns, net.name);
            if let Some((can_be_present, can_be_absent)) = explain(&what, &ops, &mut findings) {
                let hist = || {
                    ops.iter()
                        .map(|o| format!("\n    {}", o.rec))
                        .collect::<String>()
                };
                if listed && !can_be_present {
                    findings.push(format!(
                        "{what} is listed, but every explanation of its history has it \
                         disconnected or never connected; history:{}",
                        hist()
                    ));
                }
                if !listed && !can_be_absent {
                    findings.push(format!(
                        "{what} is missing (an acknowledged connect lost); history:{}",
                        hist()
                    ));
                }
            }
        }
    }
    findings
}

/// One interface of a container: name, MAC, IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `eth0`.
    pub name: String,
    /// Lower case, `None` without one.
    pub mac: Option<String>,
    /// Every IPv4 address on it.
    pub ipv4: Vec<Ipv4Addr>,
}

/// What the dataplane of a run looks like after healing.
#[derive(Debug, Clone, Default)]
pub struct DataplaneView {
    /// Per container namespace: its interfaces other than `lo`.
    pub containers: BTreeMap<String, Vec<Interface>>,
    /// Per host name: per sandbox (named by the first 12 digits of its network's ID), the
    /// veths in it (`vx` and 12 hex digits of an endpoint ID).
    pub sandboxes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Per host name: the host ends of transit links in its namespace (`vxg` and the 12 digits
    /// of a network ID; README, "Reaching out and in").
    pub transits: BTreeMap<String, Vec<String>>,
}

/// Whether `name` is an endpoint veth's sandbox side: `vx` and 12 hex digits.
fn is_endpoint_veth(name: &str) -> bool {
    name.len() == 14 && name.starts_with("vx") && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks the dataplane against the agreed state: every listed endpoint has its interface
/// (address and MAC) in its container and its veth in its host's sandbox; every container
/// interface and sandbox veth belongs to a listed endpoint (no leaked veth); every sandbox
/// belongs to a network with endpoints on that host (no leaked sandbox); every sandbox has
/// its transit link to the host and every transit link its sandbox.
pub fn check_dataplane(state: &[NetworkInfo], view: &DataplaneView) -> Vec<String> {
    let mut findings = Vec::new();
    for n in state {
        for e in &n.endpoints {
            let ifaces = view
                .containers
                .get(&e.name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let found = ifaces
                .iter()
                .any(|i| i.ipv4.contains(&e.ipv4) && i.mac.as_deref() == Some(e.mac.as_str()));
            if !found {
                findings.push(format!(
                    "half an endpoint: {} in {} is listed with {} {}, but its container has \
                     no such interface: {ifaces:?}",
                    e.name, n.name, e.ipv4, e.mac
                ));
            }
            let sandbox = &n.id[..12.min(n.id.len())];
            let veth = format!("vx{}", &e.endpoint_id[..12.min(e.endpoint_id.len())]);
            let has_veth = view
                .sandboxes
                .get(&e.host)
                .and_then(|s| s.get(sandbox))
                .is_some_and(|v| v.contains(&veth));
            if !has_veth {
                findings.push(format!(
                    "half an endpoint: {} in {} has no veth {veth} in sandbox {sandbox} on {}: {:?}",
                    e.name,
                    n.name,
                    e.host,
                    view.sandboxes.get(&e.host)
                ));
            }
        }
    }
    for (ns, ifaces) in &view.containers {
        for i in ifaces {
            let owned = state.iter().any(|n| {
                n.endpoints
                    .iter()
                    .any(|e| &e.name == ns && i.ipv4.contains(&e.ipv4))
            });
            if !owned {
                findings.push(format!(
                    "leaked veth: container {ns} has {} {:?} {:?}, which no listed endpoint owns",
                    i.name, i.mac, i.ipv4
                ));
            }
        }
    }
    for (host, sandboxes) in &view.sandboxes {
        for (sandbox, veths) in sandboxes {
            let net = state.iter().find(|n| n.id.starts_with(sandbox.as_str()));
            let local: Vec<String> = net
                .map(|n| {
                    n.endpoints
                        .iter()
                        .filter(|e| &e.host == host)
                        .map(|e| format!("vx{}", &e.endpoint_id[..12.min(e.endpoint_id.len())]))
                        .collect()
                })
                .unwrap_or_default();
            if local.is_empty() {
                findings.push(format!(
                    "leaked sandbox {sandbox} on {host}: {} (veths {veths:?})",
                    match net {
                        Some(n) => format!("network {} has no endpoint there", n.name),
                        None => "no listed network has that ID".to_string(),
                    }
                ));
            }
            for v in veths.iter().filter(|v| !local.contains(v)) {
                findings.push(format!(
                    "leaked veth {v} in sandbox {sandbox} on {host}: no listed endpoint owns it"
                ));
            }
        }
    }
    for (host, transits) in &view.transits {
        let sandboxes = view.sandboxes.get(host);
        for t in transits {
            let sandbox = t.trim_start_matches("vxg");
            if !sandboxes.is_some_and(|s| s.contains_key(sandbox)) {
                findings.push(format!(
                    "leaked transit link {t} on {host}: no sandbox {sandbox} there"
                ));
            }
        }
        for sandbox in sandboxes.into_iter().flat_map(|s| s.keys()) {
            if !transits.contains(&format!("vxg{sandbox}")) {
                findings.push(format!(
                    "sandbox {sandbox} on {host} has no transit link: no way out"
                ));
            }
        }
    }
    findings
}

/// Interfaces of `ip -o link show` and `ip -o -4 addr show` output, without `lo`.
pub fn parse_interfaces(links: &str, addrs: &str) -> Result<Vec<Interface>> {
    let addrs = parse_ipv4_addrs(addrs)?;
    let mut out = Vec::new();
    for line in links.lines() {
        let Some(name) = parse_link_names(line).into_iter().next() else {
            continue;
        };
        if name == "lo" {
            continue;
        }
        let mac = line
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_ascii_lowercase);
        let ipv4 = addrs
            .iter()
            .filter(|(i, _, _)| *i == name)
            .map(|(_, a, _)| *a)
            .collect();
        out.push(Interface { name, mac, ipv4 });
    }
    Ok(out)
}

// -------------------------------------------------------------------------------------- run

/// How one run goes.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// 3 or 5.
    pub hosts: usize,
    /// The run's seed.
    pub seed: u64,
    /// Op threads.
    pub workers: usize,
    /// Containers per host.
    pub containers_per_host: usize,
    /// How long ops are issued.
    pub op_phase: Duration,
    /// At most this many ops.
    pub max_ops: usize,
}

impl ChaosConfig {
    /// The CI size for `hosts` and `seed`; [`SECS_ENV`] overrides the op phase.
    pub fn ci(hosts: usize, seed: u64) -> ChaosConfig {
        let secs = env_number(SECS_ENV, if hosts >= 5 { 30 } else { 35 });
        ChaosConfig {
            hosts,
            seed,
            workers: 3,
            containers_per_host: 2,
            op_phase: Duration::from_secs(secs),
            max_ops: usize::try_from(secs * 12).unwrap_or(usize::MAX),
        }
    }
}

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's seed.
    pub seed: u64,
    /// Hosts in the lab.
    pub hosts: usize,
    /// Ops by outcome.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Faults by kind.
    pub faults: BTreeMap<FaultKind, usize>,
    /// Pairs of containers pinged.
    pub pings: usize,
    /// Everything that broke a rule, with its evidence.
    pub findings: Vec<String>,
    /// Wall time of the run.
    pub duration: Duration,
    /// Where the run's history, faults and findings were written.
    pub report: std::path::PathBuf,
}

impl RunSummary {
    /// Ops issued.
    pub fn ops(&self) -> usize {
        self.outcomes.values().sum()
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |o| self.outcomes.get(&o).copied().unwrap_or(0);
        let k = |o| self.faults.get(&o).copied().unwrap_or(0);
        write!(
            f,
            "CHAOS-SUMMARY seed={} hosts={} ops={} ok={} refused={} indeterminate={} \
             kill={} pause={} cut_in={} cut_out={} cut_both={} pings={} findings={} secs={:.0} report={}",
            self.seed,
            self.hosts,
            self.ops(),
            n(Outcome::Ok),
            n(Outcome::Refused),
            n(Outcome::Indeterminate),
            k(FaultKind::Kill),
            k(FaultKind::Pause),
            k(FaultKind::CutIn),
            k(FaultKind::CutOut),
            k(FaultKind::CutBoth),
            self.pings,
            self.findings.len(),
            self.duration.as_secs_f64(),
            self.report.display()
        )
    }
}

/// A network as the workers know it.
#[derive(Debug)]
struct NetSlot {
    name: String,
    /// Held by a create or rm.
    exclusive: bool,
    /// Connects and disconnects running on it.
    shared: usize,
    /// Its create was acknowledged.
    created: bool,
    /// Its create may have committed (acknowledged or indeterminate).
    maybe: bool,
    /// An rm was acknowledged.
    removed: bool,
    /// An rm was tried (any outcome).
    rm_tried: bool,
    /// A duplicate create was tried: never removed after that.
    pinned: bool,
}

#[derive(Debug, Default)]
struct Model {
    nets: Vec<NetSlot>,
    /// Per container: busy.
    busy: Vec<bool>,
    /// (container, network) pairs that may be connected (a connect that did not fail).
    maybe_connected: BTreeSet<(usize, usize)>,
    history: Vec<OpRecord>,
    issued: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An op picked and its objects held.
struct Plan {
    kind: OpKind,
    host: usize,
    net: usize,
    container: Option<usize>,
}

fn plan(model: &mut Model, rng: &mut Rng, containers: &[Container], hosts: usize) -> Option<Plan> {
    let live: Vec<usize> = (0..model.nets.len())
        .filter(|&i| model.nets[i].maybe && !model.nets[i].removed)
        .collect();
    let free_containers: Vec<usize> = (0..containers.len()).filter(|&c| !model.busy[c]).collect();
    let roll = rng.below(100);
    let want = match roll {
        0..=19 => OpKind::Create,
        20..=23 => OpKind::DupCreate,
        24..=37 => OpKind::Remove,
        38..=79 => OpKind::Connect,
        _ => OpKind::Disconnect,
    };
    let want = if want == OpKind::Create && live.len() >= MAX_LIVE_NETWORKS {
        if rng.below(2) == 0 {
            OpKind::Remove
        } else {
            OpKind::Disconnect
        }
    } else {
        want
    };
    match want {
        OpKind::Create => {
            let name = format!("n{}", model.nets.len());
            model.nets.push(NetSlot {
                name,
                exclusive: true,
                shared: 0,
                created: false,
                maybe: false,
                removed: false,
                rm_tried: false,
                pinned: false,
            });
            Some(Plan {
                kind: OpKind::Create,
                host: rng.below(hosts),
                net: model.nets.len() - 1,
                container: None,
            })
        }
        OpKind::DupCreate => {
            let cands: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| {
                    let n = &model.nets[i];
                    n.created && !n.rm_tried && !n.exclusive && n.shared == 0
                })
                .collect();
            let net = rng.pick(&cands)?;
            model.nets[net].exclusive = true;
            model.nets[net].pinned = true;
            Some(Plan {
                kind: OpKind::DupCreate,
                host: rng.below(hosts),
                net,
                container: None,
            })
        }
        OpKind::Remove => {
            let cands: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| {
                    let n = &model.nets[i];
                    !n.pinned && !n.exclusive && n.shared == 0
                })
                .collect();
            let net = rng.pick(&cands)?;
            model.nets[net].exclusive = true;
            model.nets[net].rm_tried = true;
            Some(Plan {
                kind: OpKind::Remove,
                host: rng.below(hosts),
                net,
                container: None,
            })
        }
        OpKind::Connect => {
            let nets: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| !model.nets[i].exclusive)
                .collect();
            // Mostly networks known to exist; sometimes one whose create is in doubt.
            let sure: Vec<usize> = nets
                .iter()
                .copied()
                .filter(|&i| model.nets[i].created)
                .collect();
            let net = match rng.below(5) {
                0 => rng.pick(&nets),
                _ => rng.pick(&sure).or_else(|| rng.pick(&nets)),
            }?;
            let container = rng.pick(&free_containers)?;
            model.nets[net].shared += 1;
            model.busy[container] = true;
            Some(Plan {
                kind: OpKind::Connect,
                host: containers[container].host,
                net,
                container: Some(container),
            })
        }
        OpKind::Disconnect => {
            let pairs: Vec<(usize, usize)> = model
                .maybe_connected
                .iter()
                .copied()
                .filter(|&(c, n)| {
                    !model.busy[c] && !model.nets[n].exclusive && !model.nets[n].removed
                })
                .collect();
            let (container, net) = rng.pick(&pairs)?;
            model.nets[net].shared += 1;
            model.busy[container] = true;
            Some(Plan {
                kind: OpKind::Disconnect,
                host: containers[container].host,
                net,
                container: Some(container),
            })
        }
    }
}

/// Records `rec` and lets go of the plan's objects.
fn finish(model: &mut Model, plan: &Plan, rec: OpRecord) {
    let ok = rec.outcome == Outcome::Ok;
    let maybe = rec.outcome != Outcome::Refused;
    let net = &mut model.nets[plan.net];
    match plan.kind {
        OpKind::Create => {
            net.exclusive = false;
            net.created = ok;
            net.maybe = maybe;
        }
        OpKind::DupCreate => net.exclusive = false,
        OpKind::Remove => {
            net.exclusive = false;
            net.removed |= ok;
        }
        OpKind::Connect | OpKind::Disconnect => {
            net.shared -= 1;
            if let Some(c) = plan.container {
                model.busy[c] = false;
                match (plan.kind, rec.outcome) {
                    (OpKind::Connect, Outcome::Ok | Outcome::Indeterminate) => {
                        model.maybe_connected.insert((c, plan.net));
                    }
                    (OpKind::Disconnect, Outcome::Ok) => {
                        model.maybe_connected.remove(&(c, plan.net));
                    }
                    _ => {}
                }
            }
        }
    }
    model.history.push(rec);
}

/// Runs one op on the lab.
fn run_op(
    lab: &Lab,
    plan: &Plan,
    network: &str,
    container: Option<&Container>,
) -> (Option<i32>, String, String) {
    let mut args = vec!["network"];
    match plan.kind {
        OpKind::Create | OpKind::DupCreate => args.extend(["create", network]),
        OpKind::Remove => args.extend(["rm", network]),
        OpKind::Connect => args.push("connect"),
        OpKind::Disconnect => args.push("disconnect"),
    }
    if let Some(c) = container {
        args.extend([network, c.ns.as_str()]);
    }
    match lab.host(plan.host).vxnet_timed(&args, OP_TIMEOUT) {
        Ok(out) => (
            out.output.status.code(),
            out.stdout().trim().to_string(),
            out.stderr().trim().to_string(),
        ),
        // Killed at its deadline: it may have got anywhere.
        Err(e) => (None, String::new(), format!("{e:#}")),
    }
}

fn worker(
    lab: &Lab,
    model: &Mutex<Model>,
    containers: &[Container],
    config: &ChaosConfig,
    index: usize,
    started: Instant,
) {
    let mut rng = Rng::derive(config.seed, 1 + index as u64);
    while started.elapsed() < config.op_phase {
        let picked = {
            let mut m = lock(model);
            if m.issued >= config.max_ops {
                break;
            }
            let p = plan(&mut m, &mut rng, containers, config.hosts);
            if p.is_some() {
                m.issued += 1;
            }
            p.map(|p| (p, m.issued))
        };
        let Some((plan, id)) = picked else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let network = lock(model).nets[plan.net].name.clone();
        let container = plan.container.map(|c| &containers[c]);
        let start = started.elapsed();
        let (exit, stdout, stderr) = run_op(lab, &plan, &network, container);
        let end = started.elapsed();
        let rec = OpRecord {
            id,
            worker: index,
            kind: plan.kind,
            host: plan.host,
            network,
            container: container.map(|c| c.ns.clone()),
            start,
            end,
            outcome: classify(exit, &stderr),
            exit,
            stdout,
            stderr,
        };
        finish(&mut lock(model), &plan, rec);
        std::thread::sleep(rng.millis(0, 150));
    }
}

/// The nftables script of a cut: drop what comes in on the uplink, what goes out, or both.
fn cut_rules(kind: FaultKind) -> String {
    let mut s = format!("table inet {CHAOS_TABLE} {{\n");
    if matches!(kind, FaultKind::CutIn | FaultKind::CutBoth) {
        let _ = writeln!(
            s,
            "  chain input {{ type filter hook input priority -200; policy accept; iifname \"{HOST_UPLINK}\" drop; }}"
        );
    }
    if matches!(kind, FaultKind::CutOut | FaultKind::CutBoth) {
        let _ = writeln!(
            s,
            "  chain output {{ type filter hook output priority -200; policy accept; oifname \"{HOST_UPLINK}\" drop; }}"
        );
    }
    s.push_str("}\n");
    s
}

fn signal(pid: Option<u32>, sig: i32) -> Result<()> {
    let pid = pid.context("no daemon pid")?;
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) on the pid of a child the lab owns and has not reaped.
    if unsafe { libc::kill(pid, sig) } != 0 {
        anyhow::bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Injects one fault and heals it; returns what went wrong, if anything.
fn inject(lab: &Lab, host: usize, kind: FaultKind, rng: &mut Rng) -> String {
    let h = lab.host(host);
    let mut note = String::new();
    match kind {
        FaultKind::Kill => {
            if let Err(e) = h.kill_daemon(libc::SIGKILL) {
                note = format!("kill: {e:#}");
            }
            std::thread::sleep(rng.millis(500, 2500));
            if let Err(e) = h.spawn_daemon() {
                let _ = write!(note, " restart: {e:#}");
            }
            // Give it time to replay and catch up before the slot may fault another host: a
            // host still starting counts as faulted.
            if let Err(e) = h.wait_ready(Duration::from_secs(20)) {
                let _ = write!(note, " not ready: {}", first_line(&format!("{e:#}")));
            }
        }
        FaultKind::Pause => {
            let pid = h.daemon_pid();
            if let Err(e) = signal(pid, libc::SIGSTOP) {
                note = format!("stop: {e:#}");
            }
            // Past the election timeout (1–2 s): the others elect without it.
            std::thread::sleep(rng.millis(2500, 4500));
            if let Err(e) = signal(pid, libc::SIGCONT) {
                let _ = write!(note, " cont: {e:#}");
            }
        }
        FaultKind::CutIn | FaultKind::CutOut | FaultKind::CutBoth => {
            if let Err(e) = h.nft_load("cut", &cut_rules(kind)) {
                note = format!("cut: {e:#}");
            }
            std::thread::sleep(rng.millis(2000, 5000));
            if let Err(e) = heal_cut(lab, host) {
                let _ = write!(note, " heal: {e:#}");
            }
        }
    }
    note
}

/// Deletes the cut table of `host`, if there is one.
fn heal_cut(lab: &Lab, host: usize) -> Result<()> {
    lab.host(host).nft_delete_table(CHAOS_TABLE).map(drop)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn fault_slot(
    lab: &Lab,
    config: &ChaosConfig,
    slot: usize,
    faulted: &Mutex<BTreeSet<usize>>,
    faults: &Mutex<Vec<FaultRecord>>,
    stop: &AtomicBool,
    started: Instant,
) {
    let mut rng = Rng::derive(config.seed, 100 + slot as u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(rng.millis(200, 1000));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let free: Vec<usize> = {
            let f = lock(faulted);
            (0..config.hosts).filter(|h| !f.contains(h)).collect()
        };
        // Half the faults go to the leader (as the healthy hosts see it): that is where a
        // fault costs an election and strands proposals.
        let leader = if rng.below(2) == 0 {
            lab.leader(&free).ok()
        } else {
            None
        };
        let host = {
            let mut f = lock(faulted);
            let free: Vec<usize> = (0..config.hosts).filter(|h| !f.contains(h)).collect();
            let Some(h) = leader
                .filter(|l| free.contains(l))
                .or_else(|| rng.pick(&free))
            else {
                continue;
            };
            f.insert(h);
            h
        };
        let kind = FaultKind::ALL[rng.below(FaultKind::ALL.len())];
        let start = started.elapsed();
        let note = inject(lab, host, kind, &mut rng);
        let end = started.elapsed();
        lock(faults).push(FaultRecord {
            kind,
            host,
            start,
            end,
            note,
        });
        // A host just healed still catches up; let it before it counts as healthy.
        std::thread::sleep(Duration::from_millis(700));
        lock(faulted).remove(&host);
    }
}

/// Makes sure every host is healed: no cut table, no stopped daemon, every daemon running.
/// A daemon that died by itself is a finding.
fn heal_all(lab: &Lab, faults: &[FaultRecord], findings: &mut Vec<String>) {
    for h in lab.hosts() {
        let _ = heal_cut(lab, h.index());
        let _ = signal(h.daemon_pid(), libc::SIGCONT);
        if !h.daemon_running() {
            let killed = faults
                .iter()
                .any(|f| f.host == h.index() && f.kind == FaultKind::Kill);
            findings.push(format!(
                "the daemon of {} is not running after the run (killed by the suite: {killed}); \
                 log tail:\n{}",
                h.name(),
                h.log_tail(40)
            ));
            let _ = h.spawn_daemon();
        }
    }
}

/// See [`SABOTAGE_ENV`]: a network made outside the history, and a veth pair, one end with an
/// address in `container`.
fn sabotage(lab: &Lab, container: &Container) {
    eprintln!("chaos: {SABOTAGE_ENV}=1: adding a ghost network and a leaked interface");
    let _ = lab
        .host(0)
        .vxnet_timed(&["network", "create", "ghost"], Duration::from_secs(10));
    let _ = container.exec(&[
        "ip", "link", "add", "sab0", "type", "veth", "peer", "name", "sab1",
    ]);
    let _ = container.exec(&["ip", "addr", "add", "10.255.0.9/24", "dev", "sab0"]);
}

/// Every host's `network ls --format json`, parsed; an error if any host cannot answer.
fn views(lab: &Lab) -> Result<Vec<(String, Vec<NetworkInfo>)>> {
    lab.hosts()
        .iter()
        .map(|h| {
            let out = h.vxnet_timed(
                &["network", "ls", "--format", "json"],
                Duration::from_secs(5),
            )?;
            if !out.success() {
                anyhow::bail!("{}: {}", h.name(), out.stderr().trim());
            }
            Ok((h.name().to_string(), parse_inspect(&out.stdout())?))
        })
        .collect()
}

/// Waits (bounded) until every host answers with the same state and that state has not
/// changed for [`STABLE_FOR`]; returns the last views either way, and whether they settled.
fn settle(lab: &Lab) -> (Vec<(String, Vec<NetworkInfo>)>, Option<String>) {
    let all: Vec<usize> = (0..lab.hosts().len()).collect();
    let _ = lab.wait_leader(&all, CLUSTER_TIMEOUT);
    let mut last: Option<(Vec<String>, Instant)> = None;
    let mut latest = Vec::new();
    let result = wait_for(
        "the healed cluster to agree and hold still",
        SETTLE_TIMEOUT,
        Duration::from_millis(500),
        || {
            let v = views(lab)?;
            let norm: Vec<Vec<String>> = v.iter().map(|(_, n)| normalized(n)).collect();
            latest = v;
            if norm.iter().any(|n| n != &norm[0]) {
                last = None;
                anyhow::bail!("hosts disagree");
            }
            match &last {
                Some((prev, since)) if prev == &norm[0] => {
                    Ok((since.elapsed() >= STABLE_FOR).then_some(()))
                }
                _ => {
                    last = Some((norm[0].clone(), Instant::now()));
                    Ok(None)
                }
            }
        },
    );
    (latest, result.err().map(|e| format!("{e:#}")))
}

fn observe_dataplane(lab: &Lab, containers: &[Container]) -> Result<DataplaneView> {
    let mut view = DataplaneView::default();
    for c in containers {
        let links = c.exec_ok(&["ip", "-o", "link", "show"])?;
        let addrs = c.exec_ok(&["ip", "-o", "-4", "addr", "show"])?;
        view.containers
            .insert(c.ns.clone(), parse_interfaces(&links, &addrs)?);
    }
    for h in lab.hosts() {
        let mut sandboxes = BTreeMap::new();
        for sb in h.sandbox_namespaces() {
            let name = sb
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = netns::exec_in_file(&sb, &["ip", "-o", "link", "show"])?;
            let veths: Vec<String> = parse_link_names(&String::from_utf8_lossy(&out.stdout))
                .into_iter()
                .filter(|l| is_endpoint_veth(l))
                .collect();
            sandboxes.insert(name, veths);
        }
        view.sandboxes.insert(h.name().to_string(), sandboxes);
        let links = netns::exec_ok(h.ns(), &["ip", "-o", "link", "show"])?;
        let transits = parse_link_names(&links)
            .into_iter()
            .filter(|l| l.len() == 15 && l.starts_with("vxg"))
            .collect();
        view.transits.insert(h.name().to_string(), transits);
    }
    Ok(view)
}

/// Pings every ordered pair of endpoints of every network; returns the pairs tried and the
/// findings.
fn ping_all(state: &[NetworkInfo], containers: &[Container]) -> (usize, Vec<String>) {
    let mut findings = Vec::new();
    let mut pairs = 0;
    for n in state {
        for a in &n.endpoints {
            let Some(from) = containers.iter().find(|c| c.ns == a.name) else {
                continue;
            };
            for b in n.endpoints.iter().filter(|b| b.name != a.name) {
                pairs += 1;
                if let Err(e) = ping::wait_reachable(&from.ns, &b.ipv4.to_string(), PING_TIMEOUT) {
                    findings.push(format!(
                        "no ping in {}: {} ({}) -> {} ({}): {e:#}",
                        n.name, a.name, a.host, b.name, b.host
                    ));
                }
            }
        }
    }
    (pairs, findings)
}

/// One chaos run: a cluster of `config.hosts`, the op and fault phase, healing, the checks.
/// Errors only when the lab cannot be built; everything the run finds is in the summary.
pub fn run(config: &ChaosConfig) -> Result<RunSummary> {
    let began = Instant::now();
    eprintln!(
        "chaos: seed={} hosts={} op phase {:?} (replay: {SEED_ENV}={} {HOSTS_ENV}={} {RUNS_ENV}=1)",
        config.seed, config.hosts, config.op_phase, config.seed, config.hosts
    );
    let lab = Lab::cluster(config.hosts).context("forming the cluster")?;
    let mut containers = Vec::new();
    let mut infos = Vec::new();
    for h in 0..config.hosts {
        for i in 0..config.containers_per_host {
            let c = lab.container(h, &format!("k{h}x{i}"))?;
            infos.push(ContainerInfo {
                ns: c.ns.clone(),
                host_name: lab.host(h).name().to_string(),
            });
            containers.push(c);
        }
    }
    let model = Mutex::new(Model {
        busy: vec![false; containers.len()],
        ..Model::default()
    });
    let faulted = Mutex::new(BTreeSet::new());
    let faults = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let slots = (config.hosts - 1) / 2;
    let started = Instant::now();
    std::thread::scope(|s| {
        for slot in 0..slots {
            let (lab, faulted, faults, stop) = (&lab, &faulted, &faults, &stop);
            s.spawn(move || fault_slot(lab, config, slot, faulted, faults, stop, started));
        }
        let workers: Vec<_> = (0..config.workers)
            .map(|w| {
                let (lab, model, containers) = (&lab, &model, &containers);
                s.spawn(move || worker(lab, model, containers, config, w, started))
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let ops_done = started.elapsed();
    let faults = faults.into_inner().unwrap_or_else(|e| e.into_inner());
    let model = model.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut findings = Vec::new();
    heal_all(&lab, &faults, &mut findings);
    let (views, unsettled) = settle(&lab);
    if let Some(e) = unsettled {
        findings.push(format!("the cluster did not settle after healing: {e}"));
    }
    let views = if std::env::var(SABOTAGE_ENV).is_ok_and(|v| v == "1") {
        sabotage(&lab, &containers[0]);
        settle(&lab).0
    } else {
        views
    };
    findings.extend(check_history(&model.history, &infos, &views));
    let state: Vec<NetworkInfo> = views.first().map(|(_, v)| v.clone()).unwrap_or_default();
    match observe_dataplane(&lab, &containers) {
        Ok(view) => findings.extend(check_dataplane(&state, &view)),
        Err(e) => findings.push(format!("cannot read the dataplane: {e:#}")),
    }
    let (pings, ping_findings) = ping_all(&state, &containers);
    findings.extend(ping_findings);

    let mut outcomes = BTreeMap::new();
    for r in &model.history {
        *outcomes.entry(r.outcome).or_insert(0) += 1;
    }
    let mut by_kind = BTreeMap::new();
    for f in &faults {
        *by_kind.entry(f.kind).or_insert(0) += 1;
    }
    let report = std::env::temp_dir().join(format!(
        "vxnet-chaos-s{}-h{}.txt",
        config.seed, config.hosts
    ));
    let mut text = format!(
        "seed {} hosts {} ops phase {:.1}s\n\n== faults\n",
        config.seed,
        config.hosts,
        ops_done.as_secs_f64()
    );
    for f in &faults {
        let _ = writeln!(
            text,
            "{:?} h{} [{:.3}s..{:.3}s] {}",
            f.kind,
            f.host,
            f.start.as_secs_f64(),
            f.end.as_secs_f64(),
            f.note
        );
    }
    text.push_str("\n== history\n");
    let mut history = model.history.clone();
    history.sort_by_key(|r| r.id);
    for r in &history {
        let _ = writeln!(text, "{r}");
    }
    text.push_str("\n== final state\n");
    for line in normalized(&state) {
        let _ = writeln!(text, "{line}");
    }
    text.push_str("\n== findings\n");
    for f in &findings {
        let _ = writeln!(text, "- {f}");
    }
    if !findings.is_empty() {
        text.push_str("\n== daemon logs\n");
        text.push_str(&lab.daemon_logs(300));
    }
    if let Err(e) = std::fs::write(&report, text) {
        eprintln!("chaos: cannot write {}: {e}", report.display());
    }
    let summary = RunSummary {
        seed: config.seed,
        hosts: config.hosts,
        outcomes,
        faults: by_kind,
        pings,
        findings,
        duration: began.elapsed(),
        report,
    };
    eprintln!("{summary}");
    Ok(summary)
}
