//! The simulated part of `vxnet-bench --scenario scale` (`--scale-sim-hosts N`): N Raft nodes
//! in this process — 5 voters, the rest learners, as a vxnet cluster of N hosts runs them —
//! each a raft-rs `RawNode` on its in-memory storage with vxnet's own `StateMachine` applying
//! the committed connects, exchanging messages over an in-memory bus. Raft settings are the
//! daemon's (pre-vote, check-quorum, 1 MiB messages, 256 in flight).
//!
//! Measured: per connect, the **work to apply it on all N hosts** — the wall time of this one
//! thread delivering every message and handling every node's `Ready` until each has applied
//! it. That is the sum of all hosts' work, so it bounds from above what a real cluster spends
//! (whose hosts work in parallel, plus network round trips: three hops — append, ack, commit);
//! the leader's share of it; the messages the leader sends per change; the heap per host.
//! Then **catch-up**: one learner is cut off while `--scale-sim-away` connects commit, then
//! joined again, and the work until it has applied them all is timed. The simulated storage
//! keeps the whole log, so the learner catches up from it (a daemon compacts every 1000
//! entries and sends a snapshot instead).
//!
//! Rules: messages to or from a cut-off node are dropped, as a network would; nothing else is
//! lost or reordered; a run that does not converge within a bounded number of rounds fails.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prost::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::Storage as _;
use raft::{Config, RawNode, ReadOnlyOption, StateRole};
use vxnet_control::state::StateMachine;
use vxnet_proto::Command;

use super::{add_host, connect, create_network, heap_bytes, pct};

/// Voters in a vxnet cluster (`--voters`, default 3; the bench takes 5 as the issue asks).
const VOTERS: u64 = 5;
/// Connects per network (a /24 holds 253).
const PER_NETWORK: usize = 200;
/// Rounds of delivery a change may take before the run is declared stuck.
const MAX_ROUNDS: usize = 10_000;

/// What the simulation measured.
#[derive(Debug, Clone, Default)]
pub struct SimFigures {
    pub hosts: usize,
    /// Per connect: wall time until every host applied it, ms.
    pub apply_on_all_ms: Vec<f64>,
    /// Per connect: the leader's share of that time, ms.
    pub leader_ms: Vec<f64>,
    /// Messages the leader sent per connect (median).
    pub leader_messages: f64,
    /// Heap per simulated host (storage, log, state, raft), bytes.
    pub heap_per_host: f64,
    /// Connects committed while one learner was away, and the work to catch it up, ms.
    pub away_changes: usize,
    pub catch_up_ms: f64,
    pub error: Option<String>,
}

struct SimNode {
    raw: RawNode<MemStorage>,
    machine: StateMachine,
    applied: u64,
    /// Time spent handling this node's messages and readies.
    busy: Duration,
    sent: u64,
}

struct Sim {
    nodes: Vec<SimNode>,
    bus: VecDeque<Message>,
    away: BTreeSet<u64>,
}

pub fn run(hosts: usize, changes: usize, away: usize) -> SimFigures {
    let mut figures = SimFigures {
        hosts,
        away_changes: away,
        ..SimFigures::default()
    };
    if let Err(e) = measure(hosts, changes, away, &mut figures) {
        figures.error = Some(format!("{e:#}"));
    }
    figures
}

fn measure(hosts: usize, changes: usize, away: usize, f: &mut SimFigures) -> Result<()> {
    if (hosts as u64) <= VOTERS {
        bail!("the simulation needs more than {VOTERS} hosts");
    }
    let before = heap_bytes();
    let mut sim = Sim::new(hosts as u64)?;
    sim.elect()?;
    // The cluster's hosts and one network, through the log like everything else.
    for h in 0..hosts {
        sim.commit(&add_host(h))?;
    }
    for n in 0..=(changes + away) / PER_NETWORK {
        sim.commit(&create_network(n))?;
    }
    let mut sent = Vec::new();
    for i in 0..changes {
        let leader_before = (sim.leader().busy, sim.leader().sent);
        let start = Instant::now();
        sim.commit(&connect(i, i / PER_NETWORK, i % hosts))?;
        f.apply_on_all_ms.push(start.elapsed().as_secs_f64() * 1e3);
        if i % 64 == 63 {
            sim.compact_followers()?;
        }
        let leader = sim.leader();
        f.leader_ms
            .push((leader.busy - leader_before.0).as_secs_f64() * 1e3);
        sent.push((leader.sent - leader_before.1) as f64);
    }
    f.leader_messages = pct(&mut sent, 0.5);
    f.heap_per_host = heap_bytes().saturating_sub(before) as f64 / hosts as f64;

    let learner = hosts as u64;
    sim.away.insert(learner);
    for i in 0..away {
        let e = changes + i;
        sim.propose(&connect(e, e / PER_NETWORK, i % hosts))?;
        if i % 64 == 63 {
            sim.settle()?;
            sim.compact_followers()?;
        }
    }
    sim.settle()?;
    let target = sim.leader().applied;
    sim.away.clear();
    let start = Instant::now();
    let mut rounds = 0;
    while sim.nodes[learner as usize - 1].applied < target {
        // Heartbeats bring the leader back to the learner.
        sim.tick_all();
        sim.settle()?;
        rounds += 1;
        if rounds > MAX_ROUNDS {
            bail!("the learner did not catch up");
        }
    }
    f.catch_up_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(())
}

fn raft_config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 2,
        pre_vote: true,
        check_quorum: true,
        read_only_option: ReadOnlyOption::Safe,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Config::default()
    }
}

impl Sim {
    fn new(hosts: u64) -> Result<Sim> {
        let voters: Vec<u64> = (1..=VOTERS).collect();
        let learners: Vec<u64> = (VOTERS + 1..=hosts).collect();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = (1..=hosts)
            .map(|id| {
                let conf = ConfState::from((voters.clone(), learners.clone()));
                let raw = RawNode::new(
                    &raft_config(id),
                    MemStorage::new_with_conf_state(conf),
                    &logger,
                )?;
                Ok(SimNode {
                    raw,
                    machine: StateMachine::new(),
                    applied: 0,
                    busy: Duration::ZERO,
                    sent: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Sim {
            nodes,
            bus: VecDeque::new(),
            away: BTreeSet::new(),
        })
    }

    fn leader(&self) -> &SimNode {
        &self.nodes[0]
    }

    fn elect(&mut self) -> Result<()> {
        self.nodes[0].raw.campaign()?;
        self.settle()?;
        if self.nodes[0].raw.raft.state != StateRole::Leader {
            bail!("node 1 did not become the leader");
        }
        Ok(())
    }

    /// Drops the applied log of every host but the leader (which keeps it for the learner
    /// that is away), as the daemons compact theirs: memory stays that of the state.
    fn compact_followers(&mut self) -> Result<()> {
        for node in &mut self.nodes[1..] {
            let store = &node.raw.raft.raft_log.store;
            if node.applied > store.first_index()? {
                store.wl().compact(node.applied)?;
            }
        }
        Ok(())
    }

    fn tick_all(&mut self) {
        for node in &mut self.nodes {
            node.raw.tick();
        }
    }

    fn propose(&mut self, cmd: &Command) -> Result<()> {
        let started = Instant::now();
        self.nodes[0]
            .raw
            .propose(Vec::new(), cmd.encode_to_vec())
            .context("propose")?;
        self.nodes[0].busy += started.elapsed();
        Ok(())
    }

    /// Proposes `cmd` and runs until every host that is not away applied it.
    fn commit(&mut self, cmd: &Command) -> Result<()> {
        self.propose(cmd)?;
        self.settle()?;
        let target = self.leader().applied;
        if let Some(n) = self
            .nodes
            .iter()
            .enumerate()
            .find(|(i, n)| !self.away.contains(&(*i as u64 + 1)) && n.applied < target)
        {
            bail!("host {} applied {} of {target}", n.0 + 1, n.1.applied);
        }
        Ok(())
    }

    /// Handles readies and delivers messages until nothing is left to do.
    fn settle(&mut self) -> Result<()> {
        for _ in 0..MAX_ROUNDS {
            let mut idle = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].raw.has_ready() {
                    idle = false;
                    self.handle_ready(i)?;
                }
            }
            while let Some(msg) = self.bus.pop_front() {
                idle = false;
                if self.away.contains(&msg.to) || self.away.contains(&msg.from) {
                    continue;
                }
                let node = &mut self.nodes[msg.to as usize - 1];
                let started = Instant::now();
                // A message a node refuses (an old term, say) is a normal event in Raft.
                let _ = node.raw.step(msg);
                node.busy += started.elapsed();
            }
            if idle {
                return Ok(());
            }
        }
        bail!("the simulation did not settle")
    }

    fn handle_ready(&mut self, i: usize) -> Result<()> {
        let started = Instant::now();
        let node = &mut self.nodes[i];
        let mut ready = node.raw.ready();
        let mut out: Vec<Message> = ready.take_messages();
        if !ready.snapshot().is_empty() {
            node.raw
                .raft
                .raft_log
                .store
                .wl()
                .apply_snapshot(ready.snapshot().clone())?;
        }
        apply(node, ready.take_committed_entries())?;
        if !ready.entries().is_empty() {
            node.raw.raft.raft_log.store.wl().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            node.raw.raft.raft_log.store.wl().set_hardstate(hs.clone());
        }
        out.extend(ready.take_persisted_messages());
        let mut light = node.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            node.raw.raft.raft_log.store.wl().mut_hard_state().commit = commit;
        }
        out.extend(light.take_messages());
        apply(node, light.take_committed_entries())?;
        node.raw.advance_apply();
        node.sent += out.len() as u64;
        node.busy += started.elapsed();
        self.bus.extend(out);
        Ok(())
    }
}

/// Applies committed entries to the node's state machine, as the daemon does.
fn apply(node: &mut SimNode, entries: Vec<Entry>) -> Result<()> {
    for entry in entries {
        node.applied = entry.index;
        if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
            continue;
        }
        let cmd = Command::decode(entry.data.as_ref()).context("a command in the log")?;
        // A refusal is an outcome like any other; every host gets the same one.
        let _ = node.machine.apply(&cmd);
    }
    Ok(())
}

impl SimFigures {
    pub fn table(&self) -> String {
        let mut all = self.apply_on_all_ms.clone();
        let mut leader = self.leader_ms.clone();
        let mut out = format!(
            "simulated: {} hosts ({VOTERS} voters, the rest learners), in-memory bus, one thread\n\
             | metric | p50 | p99 |\n|---|---|---|\n",
            self.hosts
        );
        out += &format!(
            "| work to apply one connect on all hosts, ms | {:.1} | {:.1} |\n",
            pct(&mut all, 0.5),
            pct(&mut all, 0.99)
        );
        out += &format!(
            "| the leader's part of it, ms | {:.2} | {:.2} |\n",
            pct(&mut leader, 0.5),
            pct(&mut leader, 0.99)
        );
        out += &format!(
            "| messages the leader sends per connect | {:.0} | |\n",
            self.leader_messages
        );
        out += &format!(
            "| heap per simulated host, KiB | {:.1} | |\n",
            self.heap_per_host / 1024.0
        );
        out += &format!(
            "| catch-up of a learner away for {} connects, ms | {:.1} | |\n",
            self.away_changes, self.catch_up_ms
        );
        if let Some(e) = &self.error {
            out += &format!("simulation: FAILED: {e}\n");
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "hosts": self.hosts,
            "voters": VOTERS,
            "apply_on_all_ms": self.apply_on_all_ms,
            "leader_ms": self.leader_ms,
            "leader_messages_per_change": self.leader_messages,
            "heap_bytes_per_host": self.heap_per_host,
            "away_changes": self.away_changes,
            "catch_up_ms": self.catch_up_ms,
            "error": self.error,
        })
    }
}
