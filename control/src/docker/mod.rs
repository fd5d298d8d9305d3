//! The Docker network and IPAM driver `vxnet` (`vxnet daemon --docker-plugin[=PATH]`): Docker's
//! plugin protocol v1, JSON over HTTP on a Unix socket, translated into the requests the CLI
//! sends — a client of the daemon's one door, never of Raft or the dataplane.
//!
//! How Docker's calls map onto vxnet (README, "With Docker"):
//! - A Docker network is local to its engine (`Scope: local`); vxnet makes the networks of the
//!   same *name* on every host one cluster-wide network. Docker gives a driver no name, so the
//!   driver asks the engine that called it ([`engine`], its API socket) when it first needs
//!   one, at `CreateEndpoint`; the vxnet network is made then, with the Docker network's
//!   subnet, gateway and `--internal`, or found, and then must have the same subnet.
//! - IPAM: a pool is a subnet (the one given, else a free /24 of vxnet's default pool); an
//!   address is the one given (`--ip`) or the lowest that no vxnet network on that subnet
//!   uses. The state machine checks it again when the endpoint is made, so addresses are
//!   unique cluster-wide even when two engines ask at once (the loser gets a clear error).
//! - `CreateEndpoint` remembers the endpoint; `Join` (which brings the container's namespace)
//!   makes the vxnet endpoint with Docker's endpoint id, its container end left in the
//!   daemon's namespace for Docker to move and rename `eth<N>`; `DeleteEndpoint` disconnects
//!   it (idempotent). `DeleteNetwork` forgets nothing cluster-wide: other hosts may use the
//!   network (`vxnet network rm` removes it).
//! - Errors are `{"Err": "..."}` with one sentence; unknown methods answer 404.

pub mod driver;
pub mod engine;
mod http;
pub mod wire;

pub use http::serve;
