//! `vxnet-bench --scenario scale`, in process: how the replicated state and the programming
//! of one host grow with the number of endpoints, measured on the code the daemon runs
//! (`vxnet_control::state::StateMachine`, `vxnet_control::program`, the dataplane's forwarding
//! tables) without sockets, disks or namespaces.
//!
//! - **apply**: commands per second of `StateMachine::apply_proposal` for the connects that
//!   bring the state from 90 % to 100 % of each size (`--scale-endpoints`, spread round-robin
//!   over `--scale-networks` networks and `--scale-hosts` hosts).
//! - **memory**: heap in use for the state machine (state, indexes, recent outcomes), per
//!   endpoint; then what programming one host adds (its program and the forwarding tables of
//!   every network it has an endpoint in), per endpoint.
//! - **snapshot**: the state's protobuf size, encode and decode time, and the time to rebuild
//!   the machine from it (`StateMachine::from_snapshot`, which checks every invariant).
//! - **program**: one host programmed from scratch at full size; then `--scale-changes`
//!   single changes (a connect or a disconnect on another host of a random network), each
//!   applied and programmed as the daemon does: p50/p99 of each.
//!
//! Rules: each size is built from an empty state; memory is the heap the bench's counting
//! allocator sees in use ([`CountingAlloc`]); the ids, names and addresses are made up but of
//! the real shapes (random-looking 64-hex-digit ids, `/run/netns/...` targets).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{json, Value};
use vxnet_control::program::Programmer;
use vxnet_control::state::StateMachine;
use vxnet_dataplane::core::forward::NetworkPlane;
use vxnet_dataplane::host::NetworkProgram;
use vxnet_proto::{command, AddHost, Cidr, Command, Connect, CreateNetwork, Disconnect, Host};

use crate::report::machine_line;

/// The shape of the state to build.
#[derive(Debug, Clone)]
pub struct ScaleParams {
    /// Endpoint counts to measure at.
    pub sizes: Vec<usize>,
    pub networks: usize,
    pub hosts: usize,
    /// Single changes timed at each size.
    pub changes: usize,
    /// Hosts of the lab part (0: no lab part; see [`lab`]).
    pub lab_hosts: usize,
    /// Connects timed in the lab part.
    pub lab_connects: usize,
    /// Hosts of the simulated part (0: none; see [`sim`]), connects timed there, and
    /// connects made while one learner is away.
    pub sim_hosts: usize,
    pub sim_changes: usize,
    pub sim_away: usize,
}

/// What one size measured.
#[derive(Debug, Clone, Default)]
pub struct SizeFigures {
    pub endpoints: usize,
    pub apply_per_sec: f64,
    pub state_bytes_per_endpoint: f64,
    pub snapshot_bytes: usize,
    pub snapshot_encode_ms: f64,
    pub snapshot_decode_ms: f64,
    pub snapshot_restore_ms: f64,
    pub program_from_scratch_ms: f64,
    pub program_bytes_per_endpoint: f64,
    pub change_apply_us: [f64; 2],
    pub change_program_us: [f64; 2],
}

/// How one table row shows one size's figures.
type Cell = fn(&SizeFigures) -> String;

pub struct ScaleReport {
    pub params: ScaleParams,
    pub sizes: Vec<SizeFigures>,
    pub lab: Option<lab::LabFigures>,
    pub sim: Option<sim::SimFigures>,
}

/// Builds the state up to each size in turn and measures there (see the module docs).
pub fn run(params: ScaleParams) -> anyhow::Result<ScaleReport> {
    let most = params.networks.saturating_mul(ADDRESSES_PER_NETWORK);
    if params.networks > 65536 || params.hosts == 0 {
        anyhow::bail!("the scale scenario takes 1 to 65536 networks and at least one host");
    }
    if let Some(&too_many) = params
        .sizes
        .iter()
        .find(|&&s| s == 0 || s + params.changes > most)
    {
        anyhow::bail!(
            "{too_many} endpoints (and {} changes) do not fit {} networks of {ADDRESSES_PER_NETWORK} \
             addresses; give more --scale-networks",
            params.changes,
            params.networks
        );
    }
    let sizes = params
        .sizes
        .iter()
        .map(|&size| measure_size(&params, size))
        .collect();
    let sim = (params.sim_hosts > 0)
        .then(|| sim::run(params.sim_hosts, params.sim_changes, params.sim_away));
    let lab = (params.lab_hosts > 0).then(|| lab::run(params.lab_hosts, params.lab_connects));
    Ok(ScaleReport {
        params,
        sizes,
        lab,
        sim,
    })
}

/// Usable addresses of a network's /24 (less network, gateway and broadcast).
const ADDRESSES_PER_NETWORK: usize = 253;

fn measure_size(params: &ScaleParams, size: usize) -> SizeFigures {
    let before = heap_bytes();
    let mut sm = StateMachine::new();
    let mut proposal = 0u64;
    let mut apply = |sm: &mut StateMachine, cmd: Command| {
        proposal += 1;
        sm.apply_proposal(proposal, &cmd)
    };
    for h in 0..params.hosts {
        apply(&mut sm, add_host(h)).expect("add host");
    }
    for n in 0..params.networks {
        apply(&mut sm, create_network(n)).expect("create network");
    }
    let timed_from = size - size / 10;
    let mut timed = Duration::ZERO;
    for e in 0..size {
        let cmd = connect(e, e % params.networks, e % params.hosts);
        let start = Instant::now();
        apply(&mut sm, cmd).expect("connect");
        if e >= timed_from {
            timed += start.elapsed();
        }
    }
    let state_growth = heap_bytes().saturating_sub(before);
    let mut f = SizeFigures {
        endpoints: size,
        apply_per_sec: (size - timed_from) as f64 / timed.as_secs_f64(),
        state_bytes_per_endpoint: state_growth as f64 / size as f64,
        ..Default::default()
    };

    let before = heap_bytes();
    let start = Instant::now();
    let mut programmer = Programmer::new(host_id(0));
    let mut planes = Planes::default();
    planes.apply(&programmer.program(&sm));
    f.program_from_scratch_ms = ms(start.elapsed());
    f.program_bytes_per_endpoint = heap_bytes().saturating_sub(before) as f64 / size as f64;

    let mut applies = Vec::new();
    let mut programs = Vec::new();
    let mut next = size;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..params.changes {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let network = (rng >> 33) as usize % params.networks;
        // Every other change takes back the connect before it, so the size stays put.
        let cmd = if i % 2 == 0 {
            next += 1;
            connect(next, network, 1 % params.hosts)
        } else {
            disconnect(next)
        };
        let start = Instant::now();
        apply(&mut sm, cmd).expect("change");
        let applied = start.elapsed();
        let start = Instant::now();
        planes.apply(&programmer.program(&sm));
        programs.push(us(start.elapsed()));
        applies.push(us(applied));
    }
    f.change_apply_us = [pct(&mut applies, 0.5), pct(&mut applies, 0.99)];
    f.change_program_us = [pct(&mut programs, 0.5), pct(&mut programs, 0.99)];

    let start = Instant::now();
    let encoded = sm.to_state().encode_to_vec();
    f.snapshot_encode_ms = ms(start.elapsed());
    f.snapshot_bytes = encoded.len();
    let start = Instant::now();
    let decoded = vxnet_proto::State::decode(encoded.as_slice()).expect("decode");
    f.snapshot_decode_ms = ms(start.elapsed());
    let start = Instant::now();
    let restored = StateMachine::from_snapshot(decoded, sm.recent()).expect("restore");
    f.snapshot_restore_ms = ms(start.elapsed());
    drop(restored);
    f
}

/// The forwarding tables of one host, programmed as `vxnet_dataplane::host::Host::apply`
/// programs them: a network's tables are rebuilt only when its program changed.
#[derive(Default)]
struct Planes {
    planes: BTreeMap<String, (Option<Arc<NetworkProgram>>, NetworkPlane)>,
}

impl Planes {
    fn apply(&mut self, program: &vxnet_dataplane::host::HostProgram) {
        let now = Instant::now();
        for net in program.networks.iter().filter(|n| n.has_local_endpoint()) {
            let (programmed, plane) = self
                .planes
                .entry(net.id.clone())
                .or_insert_with(|| (None, NetworkPlane::new(net.plane_config(), 0)));
            if programmed.as_ref().is_some_and(|p| Arc::ptr_eq(p, net)) {
                continue;
            }
            plane.install(&net.control_entries(), &net.vteps(), now);
            *programmed = Some(Arc::clone(net));
        }
    }
}

/// A 64-hex-digit id, as random-looking as the real ones (which are random or hashes): ids
/// sharing long prefixes would make every comparison slower than it is in a cluster.
fn id(kind: u8, n: usize) -> String {
    let mut x = (u64::from(kind) << 56) ^ n as u64;
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let _ = write!(out, "{:016x}", z ^ (z >> 31));
    }
    out
}

fn host_id(h: usize) -> String {
    id(1, h)
}

fn add_host(h: usize) -> Command {
    wrap(command::Kind::AddHost(AddHost {
        host: Some(Host {
            id: host_id(h),
            name: format!("host{h}"),
            addr: u32::from(Ipv4Addr::new(198, 18, (h >> 8) as u8, h as u8)),
            ..Default::default()
        }),
    }))
}

fn create_network(n: usize) -> Command {
    wrap(command::Kind::CreateNetwork(CreateNetwork {
        id: id(2, n),
        name: format!("net{n}"),
        mtu: 1450,
        subnet: Some(Cidr {
            addr: u32::from(Ipv4Addr::new(10, (n >> 8) as u8, n as u8, 0)),
            prefix_len: 24,
        }),
        ..Default::default()
    }))
}

fn connect(e: usize, network: usize, host: usize) -> Command {
    wrap(command::Kind::Connect(Connect {
        endpoint_id: id(3, e),
        network_id: id(2, network),
        host_id: host_id(host),
        name: format!("c{e}"),
        ifname: "eth0".into(),
        target: format!("/run/netns/c{e}"),
        ..Default::default()
    }))
}

fn disconnect(e: usize) -> Command {
    wrap(command::Kind::Disconnect(Disconnect {
        endpoint_id: id(3, e),
    }))
}

fn wrap(kind: command::Kind) -> Command {
    Command { kind: Some(kind) }
}

/// Bytes this process has allocated and not freed (see [`CountingAlloc`]).
fn heap_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes in use: memory figures are then exact and do not
/// depend on what the allocator kept from an earlier size (they leave out its per-block
/// overhead, some 8–16 bytes per allocation).
pub struct CountingAlloc;

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `q` quantile (nearest rank) of `values`; NaN when empty.
fn pct(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

impl ScaleReport {
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scale, in process: {} networks, {} hosts, {} changes timed; {}",
            p.networks,
            p.hosts,
            p.changes,
            machine_line()
        );
        let _ = write!(out, "| metric |");
        for s in &self.sizes {
            let _ = write!(out, " {} endpoints |", s.endpoints);
        }
        let _ = writeln!(out);
        let _ = write!(out, "|---|");
        for _ in &self.sizes {
            let _ = write!(out, "---|");
        }
        let _ = writeln!(out);
        let rows: [(&str, Cell); 9] = [
            ("apply, commands/s", |s| format!("{:.0}", s.apply_per_sec)),
            ("state memory per endpoint, bytes", |s| {
                format!("{:.0}", s.state_bytes_per_endpoint)
            }),
            ("one host's program and tables per endpoint, bytes", |s| {
                format!("{:.0}", s.program_bytes_per_endpoint)
            }),
            ("snapshot size, MB", |s| {
                format!("{:.1}", s.snapshot_bytes as f64 / 1e6)
            }),
            ("snapshot encode / decode / restore, ms", |s| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    s.snapshot_encode_ms, s.snapshot_decode_ms, s.snapshot_restore_ms
                )
            }),
            ("program one host from scratch, ms", |s| {
                format!("{:.1}", s.program_from_scratch_ms)
            }),
            ("one change: apply p50 / p99, µs", |s| {
                format!("{:.1} / {:.1}", s.change_apply_us[0], s.change_apply_us[1])
            }),
            ("one change: program p50 / p99, µs", |s| {
                format!(
                    "{:.1} / {:.1}",
                    s.change_program_us[0], s.change_program_us[1]
                )
            }),
            ("one change: apply + program p50, µs", |s| {
                format!("{:.1}", s.change_apply_us[0] + s.change_program_us[0])
            }),
        ];
        for (label, cell) in rows.iter() {
            let _ = write!(out, "| {label} |");
            for s in &self.sizes {
                let _ = write!(out, " {} |", cell(s));
            }
            let _ = writeln!(out);
        }
        if let Some(sim) = &self.sim {
            let _ = writeln!(out, "\n{}", sim.table());
        }
        if let Some(lab) = &self.lab {
            let _ = writeln!(out, "\n{}", lab.table());
        }
        out
    }

    /// Whether the lab or the simulated part failed.
    pub fn failed(&self) -> bool {
        self.lab.as_ref().is_some_and(|l| l.error.is_some())
            || self.sim.as_ref().is_some_and(|s| s.error.is_some())
    }

    pub fn to_json(&self) -> Value {
        let p = &self.params;
        json!({
            "scenario": "scale",
            "machine": crate::report::machine_facts(),
            "networks": p.networks,
            "hosts": p.hosts,
            "changes": p.changes,
            "sizes": self.sizes.iter().map(|s| json!({
                "endpoints": s.endpoints,
                "apply_per_sec": s.apply_per_sec,
                "state_bytes_per_endpoint": s.state_bytes_per_endpoint,
                "program_bytes_per_endpoint": s.program_bytes_per_endpoint,
                "snapshot_bytes": s.snapshot_bytes,
                "snapshot_encode_ms": s.snapshot_encode_ms,
                "snapshot_decode_ms": s.snapshot_decode_ms,
                "snapshot_restore_ms": s.snapshot_restore_ms,
                "program_from_scratch_ms": s.program_from_scratch_ms,
                "change_apply_us": {"p50": s.change_apply_us[0], "p99": s.change_apply_us[1]},
                "change_program_us": {"p50": s.change_program_us[0], "p99": s.change_program_us[1]},
            })).collect::<Vec<_>>(),
            "lab": self.lab.as_ref().map(lab::LabFigures::to_json),
            "simulated": self.sim.as_ref().map(sim::SimFigures::to_json),
        })
    }
}

pub mod lab;
pub mod sim;
#[cfg(test)]
mod tests;
