//! Raft clusters of lab hosts, formed and watched through the CLI (`cluster token`, `cluster
//! join`, `cluster members`; README, "Clustering").
//!
//! Rules a test relies on:
//! - [`Lab::form_cluster`] returns only once every member lists exactly the members and they
//!   agree on a leader; joins go one at a time (a membership change at a time), each waited
//!   for on the seed.
//! - Hosts are identified by their underlay address: the `Addr` of a member is `IP` or
//!   `IP:PORT`, and [`Lab::host_by_addr`] maps the IP back to a lab host index.
//! - [`Lab::leader`] is "right now"; [`Lab::wait_leader`] polls it. Hosts that do not answer
//!   (daemon down, cut off) are skipped, but a majority must answer.
//! - [`CLUSTER_TIMEOUT`] and [`REPLICATION_TIMEOUT`] bound failures only; a healthy cluster on
//!   one machine needs a few Raft round trips.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{Host, Lab, TimedOutput};
use crate::vxnet_json::{leader_of, parse_members, Member};
use crate::wait::{wait_for, POLL_INTERVAL};

/// How long forming a cluster, or agreeing on a leader, may take in a lab.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a change made on one host may take to show on the others in these tests. Far above
/// what a healthy cluster needs (a few Raft round trips on one machine); it only bounds a
/// failure.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(20);

/// How many failed attempts the error of [`Lab::create_network_retrying`] quotes (the last
/// ones): a bench run without pauses may make hundreds.
const MAX_FAILURES_SHOWN: usize = 20;

/// How [`Lab::create_network_retrying`] retries a write while a cluster recovers.
#[derive(Debug, Clone, Copy)]
pub struct WriteRetry {
    /// `--timeout` of each attempt.
    pub attempt_timeout: Duration,
    /// Pause after a failed attempt.
    pub pause: Duration,
    /// No attempt starts once this long has passed since the clock started.
    pub limit: Duration,
}

/// The write that [`Lab::create_network_retrying`] got through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetriedWrite {
    /// The network it created.
    pub name: String,
    /// The lab host that took it.
    pub host: usize,
    /// From the start of the clock to the successful attempt's exit.
    pub after: Duration,
}

impl Host {
    /// `cluster token`, trimmed.
    pub fn cluster_token(&self) -> Result<String> {
        let token = self
            .vxnet_checked(&["cluster", "token"])?
            .trim()
            .to_string();
        if token.is_empty() {
            bail!("cluster token on {} printed nothing", self.name());
        }
        Ok(token)
    }

    /// `cluster join ADDR --token TOKEN`.
    pub fn join_cluster(&self, addr: Ipv4Addr, token: &str) -> Result<()> {
        self.vxnet_checked(&["cluster", "join", &addr.to_string(), "--token", token])
            .map(drop)
    }

    /// `cluster join ADDR --token TOKEN` with `--timeout cli_timeout`, whatever its outcome:
    /// for tests of a join that is to fail (or may not finish).
    pub fn try_join_cluster(
        &self,
        addr: Ipv4Addr,
        token: &str,
        cli_timeout: Duration,
    ) -> Result<TimedOutput> {
        self.vxnet_timed(
            &["cluster", "join", &addr.to_string(), "--token", token],
            cli_timeout,
        )
    }

    /// `cluster members --format json`, parsed.
    pub fn members(&self) -> Result<Vec<Member>> {
        parse_members(&self.probe(&["cluster", "members", "--format", "json"])?)
    }
}

impl Lab {
    /// A lab of `n` vxnet hosts formed into one cluster ([`Lab::form_cluster`] with host 0 as
    /// the seed, the others joining in index order).
    pub fn cluster(n: usize) -> Result<Lab> {
        let lab = Lab::new(n)?;
        let all: Vec<usize> = (0..n).collect();
        lab.form_cluster(&all)?;
        Ok(lab)
    }

    /// The lab host indexes of `members`, sorted; an error for a member that is no lab host.
    pub fn member_hosts(&self, members: &[Member]) -> Result<Vec<usize>> {
        let mut hosts = members
            .iter()
            .map(|m| {
                let ip = m.ip()?;
                self.host_by_addr(ip)
                    .ok_or_else(|| anyhow!("member {m:?} is no lab host"))
            })
            .collect::<Result<Vec<_>>>()?;
        hosts.sort_unstable();
        Ok(hosts)
    }

    /// Forms one cluster of `hosts`: the first one's `cluster token`, then `cluster join
    /// <first's address> --token T` on each other host in order, each join waited for until the
    /// first host lists the newcomer (membership changes go one at a time). Returns once every
    /// host of `hosts` lists exactly `hosts` and they agree on a leader (bounded).
    pub fn form_cluster(&self, hosts: &[usize]) -> Result<()> {
        let (&seed, _) = hosts
            .split_first()
            .ok_or_else(|| anyhow!("form_cluster needs at least one host"))?;
        let seed_host = self.host(seed);
        let token = seed_host.cluster_token()?;
        for n in 1..hosts.len() {
            let joiner = self.host(hosts[n]);
            joiner
                .join_cluster(seed_host.addr(), &token)
                .with_context(|| format!("{} joining {}", joiner.name(), seed_host.name()))?;
            self.wait_members(&[seed], &hosts[..=n], CLUSTER_TIMEOUT)?;
        }
        self.wait_members(hosts, hosts, CLUSTER_TIMEOUT)?;
        self.wait_leader(hosts, CLUSTER_TIMEOUT)?;
        Ok(())
    }

    /// Waits (bounded) until `cluster members` on every host of `observers` lists exactly the
    /// hosts `expected`.
    pub fn wait_members(
        &self,
        observers: &[usize],
        expected: &[usize],
        timeout: Duration,
    ) -> Result<()> {
        let want: BTreeSet<usize> = expected.iter().copied().collect();
        for &o in observers {
            let host = self.host(o);
            wait_for(
                &format!("{} to list members {want:?}", host.name()),
                timeout,
                Duration::from_millis(100),
                || {
                    let have: BTreeSet<usize> =
                        self.member_hosts(&host.members()?)?.into_iter().collect();
                    if have == want {
                        Ok(Some(()))
                    } else {
                        bail!("lists {have:?}")
                    }
                },
            )?;
        }
        Ok(())
    }

    /// The leader as `hosts` see it right now: every host of `hosts` that answers names the
    /// same leader, a majority of them answers, and the leader is one of `hosts`. Hosts that
    /// do not answer (daemon down, cut off) are skipped.
    pub fn leader(&self, hosts: &[usize]) -> Result<usize> {
        let mut seen = BTreeSet::new();
        let mut answered = 0;
        let mut errors = Vec::new();
        for &h in hosts {
            let members = match self.host(h).members() {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    continue;
                }
            };
            answered += 1;
            match leader_of(&members)? {
                Some(l) => {
                    let ip = l.ip()?;
                    seen.insert(
                        self.host_by_addr(ip)
                            .ok_or_else(|| anyhow!("leader {l:?} is no lab host"))?,
                    );
                }
                None => bail!("{} knows no leader", self.host(h).name()),
            }
        }
        if answered * 2 <= hosts.len() {
            bail!(
                "only {answered} of {} hosts answered: {errors:?}",
                hosts.len()
            );
        }
        match (seen.len(), seen.first()) {
            (1, Some(&l)) if hosts.contains(&l) => Ok(l),
            (1, Some(&l)) => bail!(
                "the leader is {}, not one of {hosts:?}",
                self.host(l).name()
            ),
            _ => bail!("hosts disagree on the leader: {seen:?}"),
        }
    }

    /// Polls [`Lab::leader`] until it gives an answer (bounded).
    pub fn wait_leader(&self, hosts: &[usize], timeout: Duration) -> Result<usize> {
        wait_for(
            &format!("hosts {hosts:?} to agree on a leader"),
            timeout,
            POLL_INTERVAL.max(Duration::from_millis(100)),
            || self.leader(hosts).map(Some),
        )
    }

    /// Tries `network create NAME` on `hosts` in turn until one succeeds: attempt `n` runs on
    /// `hosts[n % hosts.len()]` with `--timeout` [`WriteRetry::attempt_timeout`] and is named
    /// `name(n)`, because an attempt that timed out may still commit later and must not turn
    /// the next one into a duplicate. The clock starts at `since` (a leader kill, say); no
    /// attempt starts after [`WriteRetry::limit`].
    ///
    /// Errors when the CLI cannot run, and when the limit passes first (then quoting the failed
    /// attempts' stderr).
    pub fn create_network_retrying(
        &self,
        hosts: &[usize],
        name: impl Fn(usize) -> String,
        since: Instant,
        retry: WriteRetry,
    ) -> Result<RetriedWrite> {
        if hosts.is_empty() {
            bail!("create_network_retrying needs at least one host");
        }
        let mut failures = Vec::new();
        for n in 0.. {
            if since.elapsed() >= retry.limit {
                break;
            }
            let host = hosts[n % hosts.len()];
            let network = name(n);
            let out = self
                .host(host)
                .vxnet_timed(&["network", "create", &network], retry.attempt_timeout)?;
            if out.success() {
                return Ok(RetriedWrite {
                    name: network,
                    host,
                    after: since.elapsed(),
                });
            }
            failures.push(format!("h{host}: {}", out.stderr().trim()));
            std::thread::sleep(retry.pause);
        }
        let shown = &failures[failures.len().saturating_sub(MAX_FAILURES_SHOWN)..];
        bail!(
            "no network create succeeded on {hosts:?} within {:?}; {} attempts failed, the last \
             ones: {shown:?}",
            retry.limit,
            failures.len()
        )
    }
}
