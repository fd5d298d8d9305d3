//! Prometheus metrics (README, "Metrics"): three daemons, each started with `--metrics-addr
//! <its underlay address>:9100`, form a cluster; a ping between containers on two hosts moves
//! the frame and byte counters of their network; the gauges show the endpoints, the forwarding
//! entries, one Raft leader among the hosts and the members; the proposal histogram counts the
//! writes; a stranger on the underlay who knocks on h0's cluster port (not TLS; silence) shows
//! in `vxnet_cluster_refusals_total` by reason; `promtool check metrics` accepts every host's
//! exposition; only `GET /metrics` answers. Scrapes are plain HTTP/1.0 from inside each host's
//! namespace.
//!
//! `promtool` (Debian's `prometheus`, installed by scripts/install-deps.sh) must be there: a
//! missing one fails the test rather than skipping the check.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vxnet_tests::lab::cluster::{CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::netns::in_netns_thread;
use vxnet_tests::scenario::WARMUP_TIMEOUT;
use vxnet_tests::{require_root, wait_for, Host, HostKind, Lab};

const METRICS_PORT: u16 = 9100;

const CLUSTER_PORT: u16 = 7946;

/// How often each daemon's control thread takes the numbers a scrape shows.
const TICK: Duration = Duration::from_secs(1);

/// How long a change may take to show in a scrape: a few ticks.
const FRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on `host`'s metrics address, from inside its namespace: status line and body.
fn get(host: &Host, path: &str) -> Result<(String, String)> {
    let addr = SocketAddr::from((host.addr(), METRICS_PORT));
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    in_netns_thread(host.ns(), move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let Some((head, body)) = answer.split_once("\r\n\r\n") else {
            bail!("no HTTP answer from {addr}: {answer:?}");
        };
        let status = head.lines().next().unwrap_or_default().to_string();
        Ok((status, body.to_string()))
    })
}

/// A stranger on the lab's underlay (the bridge's own address, no member's) connects to
/// `host`'s cluster port and sends `junk`; the connection is returned open.
fn stranger_knocks(lab: &Lab, host: &Host, junk: &'static [u8]) -> Result<TcpStream> {
    let addr = SocketAddr::from((host.addr(), CLUSTER_PORT));
    in_netns_thread(lab.underlay_ns(), move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.write_all(junk)?;
        Ok(stream)
    })
}

/// The exposition of `host`, which must answer 200.
fn scrape(host: &Host) -> Result<Metrics> {
    let (status, body) = get(host, "/metrics")?;
    if !status.ends_with(" 200 OK") {
        bail!("{}: GET /metrics answered {status:?}", host.name());
    }
    Ok(Metrics::parse(&body))
}

/// Samples by their full name with labels, as written (`name{a="b"}`).
#[derive(Debug)]
struct Metrics {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect();
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// The value of `sample`; an error naming what is there if it is missing.
    fn get(&self, sample: &str) -> Result<f64> {
        match self.samples.get(sample) {
            Some(v) => Ok(*v),
            None => bail!("no sample {sample} in:\n{}", self.text),
        }
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<&str> {
        self.samples
            .keys()
            .filter_map(|k| k.split_once('{'))
            .flat_map(|(_, labels)| labels.trim_end_matches('}').split(','))
            .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.trim_matches('"')))
            .collect()
    }
}

/// `promtool check metrics` on `text`: Ok if it is clean, else what promtool said.
fn promtool_check(text: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running promtool (Debian package prometheus; scripts/install-deps.sh installs it)",
        )?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn metrics_follow_traffic_endpoints_and_raft() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 3)
        .start_daemons(false)
        .build()
        .expect("three hosts");
    for host in lab.hosts() {
        let addr = format!("{}:{METRICS_PORT}", host.addr());
        host.start_daemon_with(&["--metrics-addr", &addr], &[])
            .expect("daemon with --metrics-addr");
    }
    lab.form_cluster(&[0, 1, 2]).expect("one cluster");
    // A stranger holds a connection to h0's cluster port and says nothing: refused at the
    // handshake timeout (5 s), checked at the end.
    let _silent = stranger_knocks(&lab, lab.host(0), b"").expect("a silent stranger");

    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.60.0.0/24", "metered"]);
    lab.host(1)
        .wait_networks(&["metered"], REPLICATION_TIMEOUT)
        .expect("network replicated");
    let c1 = lab.container(0, "c1").expect("c1");
    let c2 = lab.container(1, "c2").expect("c2");
    lab.host(0)
        .connect_auto("metered", &c1)
        .expect("connect c1");
    let ip2 = lab
        .host(1)
        .connect_auto("metered", &c2)
        .expect("connect c2");
    let ip2 = ip2.to_string();
    c1.wait_reachable(&ip2, WARMUP_TIMEOUT)
        .expect("c2 reachable from c1");

    let net = |name: &str| format!("{name}{{network=\"metered\"}}");
    let (rx, tx) = (net("vxnet_rx_frames_total"), net("vxnet_tx_frames_total"));
    let (rx_bytes, tx_bytes) = (net("vxnet_rx_bytes_total"), net("vxnet_tx_bytes_total"));
    // Two ticks after the warm-up, so that the numbers read next already count it.
    std::thread::sleep(2 * TICK + Duration::from_millis(200));
    let before: Vec<(f64, f64, f64, f64)> = [0, 1]
        .into_iter()
        .map(|h| {
            let m = scrape(lab.host(h)).expect("scrape");
            let get = |sample: &str| m.get(sample).expect("a counter of the network");
            (get(&rx), get(&tx), get(&rx_bytes), get(&tx_bytes))
        })
        .collect();

    const PINGS: u32 = 5;
    let s = c1.ping(&ip2, PINGS).expect("ping");
    assert_eq!(s.received, PINGS, "{s:?}");

    // c1's requests leave h0 and reach h1; c2's replies leave h1 and reach h0.
    for (i, h) in [0, 1].into_iter().enumerate() {
        let (rx0, tx0, rxb0, txb0) = before[i];
        let after = wait_for(
            &format!("h{h}'s counters to count the pings"),
            FRESH_TIMEOUT,
            Duration::from_millis(200),
            || {
                let m = scrape(lab.host(h))?;
                let grown =
                    m.get(&rx)? >= rx0 + f64::from(PINGS) && m.get(&tx)? >= tx0 + f64::from(PINGS);
                Ok(grown.then_some(m))
            },
        )
        .expect("rx and tx frames grow");
        // An echo of 56 bytes of data is a 98-byte frame.
        assert!(after.get(&rx_bytes).expect("rx bytes") >= rxb0 + 98.0 * f64::from(PINGS));
        assert!(after.get(&tx_bytes).expect("tx bytes") >= txb0 + 98.0 * f64::from(PINGS));
    }

    // Gauges, once every host's tick has seen both endpoints.
    let endpoints = net("vxnet_endpoints");
    let want_endpoints = [1.0, 1.0, 0.0];
    let scraped: Vec<Metrics> = (0..3)
        .map(|h| {
            wait_for(
                &format!("h{h} to show its endpoints"),
                FRESH_TIMEOUT,
                Duration::from_millis(200),
                || {
                    let m = scrape(lab.host(h))?;
                    Ok((m.get(&endpoints)? == want_endpoints[h]).then_some(m))
                },
            )
            .expect("endpoint gauge")
        })
        .collect();
    let fdb = |kind: &str| format!("vxnet_fdb_entries{{network=\"metered\",kind=\"{kind}\"}}");
    // The entries the control plane programs, as `vxnet fdb` lists them (learned ones come
    // and go with traffic).
    for (h, m) in scraped.iter().enumerate().take(2) {
        let rows = lab.host(h).fdb("metered").expect("vxnet fdb");
        for kind in ["local", "control", "static"] {
            let listed = rows.iter().filter(|r| r.kind == kind).count() as f64;
            assert_eq!(
                m.get(&fdb(kind)).expect("an fdb gauge"),
                listed,
                "h{h}: {kind}"
            );
        }
        assert!(
            m.get(&fdb("control")).expect("control") >= 1.0,
            "h{h}: the other container"
        );
    }

    // Raft: one leader, one term, as every host sees it.
    let leader = lab
        .wait_leader(&[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("a leader");
    let raft = wait_for(
        "exactly one host to say it leads",
        FRESH_TIMEOUT,
        Duration::from_millis(200),
        || {
            let all = (0..3)
                .map(|h| scrape(lab.host(h)))
                .collect::<Result<Vec<_>>>()?;
            let leaders: Vec<usize> = (0..3)
                .filter(|&h| all[h].get("vxnet_raft_is_leader").ok() == Some(1.0))
                .collect();
            Ok((leaders == [leader]).then_some(all))
        },
    )
    .expect("vxnet_raft_is_leader is 1 on the leader alone");
    let term = raft[0].get("vxnet_raft_term").expect("term");
    assert!(term >= 1.0, "term {term}");
    for (h, m) in raft.iter().enumerate() {
        assert_eq!(
            m.get("vxnet_raft_term").expect("term"),
            term,
            "h{h}: same term"
        );
        let commit = m.get("vxnet_raft_commit_index").expect("commit");
        let applied = m.get("vxnet_raft_applied_index").expect("applied");
        assert!(
            applied >= 1.0 && applied <= commit,
            "h{h}: applied {applied}, commit {commit}"
        );
        assert_eq!(
            m.get(r#"vxnet_cluster_members{role="voter"}"#)
                .expect("voters"),
            3.0,
            "h{h}"
        );
        assert_eq!(
            m.get(r#"vxnet_cluster_members{role="learner"}"#)
                .expect("learners"),
            0.0,
            "h{h}"
        );
        // No label carries an address.
        for value in m.label_values() {
            assert!(
                value.parse::<Ipv4Addr>().is_err() && !value.contains(':'),
                "h{h}: label value {value:?} looks like an address"
            );
        }
        promtool_check(&m.text).unwrap_or_else(|e| panic!("h{h}: {e:#}"));
    }
    // h0 proposed the create and c1's connect; h1 c2's connect.
    let proposals = "vxnet_proposal_duration_seconds_count";
    assert!(raft[0].get(proposals).expect("h0 proposals") >= 2.0);
    assert!(raft[1].get(proposals).expect("h1 proposals") >= 1.0);
    assert!(
        raft[0]
            .get(r#"vxnet_proposal_duration_seconds_bucket{le="+Inf"}"#)
            .expect("+Inf bucket")
            == raft[0].get(proposals).expect("count"),
    );

    // Refusals on the cluster port, by reason: every reason has its series; a stranger that
    // does not speak TLS counts under tls_handshake, the silent one under handshake_timeout.
    let refusals = |reason: &str| format!("vxnet_cluster_refusals_total{{reason=\"{reason}\"}}");
    assert_eq!(
        raft[1]
            .get(&refusals("bad_certificate"))
            .expect("a zero series"),
        0.0
    );
    let before = raft[0]
        .get(&refusals("tls_handshake"))
        .expect("tls_handshake");
    let mut knock = stranger_knocks(&lab, lab.host(0), b"GET / HTTP/1.0\r\n\r\n").expect("knock");
    knock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Until h0 closes it.
    let _ = knock.read_to_end(&mut Vec::new());
    wait_for(
        "h0 to count the strangers",
        FRESH_TIMEOUT,
        Duration::from_millis(200),
        || {
            let m = scrape(lab.host(0))?;
            let counted = m.get(&refusals("tls_handshake"))? >= before + 1.0
                && m.get(&refusals("handshake_timeout"))? >= 1.0;
            Ok(counted.then_some(()))
        },
    )
    .expect("refusals counted by reason");

    let (status, _) = get(lab.host(0), "/").expect("GET /");
    assert!(status.ends_with(" 404 Not Found"), "{status}");
}
