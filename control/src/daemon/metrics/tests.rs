use std::io::{Read, Write};

use super::*;

fn sample() -> Snapshot {
    let fdb = |local, control, learned| {
        BTreeMap::from([
            ("local", local),
            ("control", control),
            ("static", 0),
            ("learned", learned),
        ])
    };
    Snapshot {
        taken: Instant::now(),
        networks: vec![
            NetworkSample {
                name: "blue".into(),
                rx_frames: 10,
                rx_bytes: 980,
                tx_frames: 12,
                tx_bytes: 1176,
                drops: vec![("no_route", 2)],
                endpoints: 1,
                fdb: fdb(1, 1, 2),
            },
            NetworkSample {
                name: "idle".into(),
                fdb: fdb(0, 0, 0),
                ..NetworkSample::default()
            },
        ],
        drops: vec![("unknown_vni", 3)],
        raft: RaftSample {
            term: 4,
            commit: 17,
            applied: 16,
            is_leader: true,
        },
        voters: 3,
        learners: 1,
        refusals: vec![("tls_handshake", 5), ("frame_too_big", 0)],
    }
}

/// The snapshot's part of the exposition, in order, without the age line (its value is a
/// measured time).
const SAMPLE_TEXT: &str = r#"# HELP vxnet_rx_frames_total Frames received from the wire for the network's containers on this host.
# TYPE vxnet_rx_frames_total counter
vxnet_rx_frames_total{network="blue"} 10
vxnet_rx_frames_total{network="idle"} 0
# HELP vxnet_tx_frames_total Frames sent on the wire from the network's containers on this host, a flooded frame once per copy.
# TYPE vxnet_tx_frames_total counter
vxnet_tx_frames_total{network="blue"} 12
vxnet_tx_frames_total{network="idle"} 0
# HELP vxnet_rx_bytes_total Bytes of the frames received from the wire for the network on this host.
# TYPE vxnet_rx_bytes_total counter
vxnet_rx_bytes_total{network="blue"} 980
vxnet_rx_bytes_total{network="idle"} 0
# HELP vxnet_tx_bytes_total Bytes of the frames sent on the wire from the network on this host.
# TYPE vxnet_tx_bytes_total counter
vxnet_tx_bytes_total{network="blue"} 1176
vxnet_tx_bytes_total{network="idle"} 0
# HELP vxnet_drops_total Datagrams and frames dropped, by reason; network="" for datagrams of no network.
# TYPE vxnet_drops_total counter
vxnet_drops_total{network="",reason="unknown_vni"} 3
vxnet_drops_total{network="blue",reason="no_route"} 2
# HELP vxnet_endpoints Endpoints of the network on this host.
# TYPE vxnet_endpoints gauge
vxnet_endpoints{network="blue"} 1
vxnet_endpoints{network="idle"} 0
# HELP vxnet_fdb_entries Forwarding entries of the network on this host, by kind (local, control, static, learned).
# TYPE vxnet_fdb_entries gauge
vxnet_fdb_entries{network="blue",kind="control"} 1
vxnet_fdb_entries{network="blue",kind="learned"} 2
vxnet_fdb_entries{network="blue",kind="local"} 1
vxnet_fdb_entries{network="blue",kind="static"} 0
vxnet_fdb_entries{network="idle",kind="control"} 0
vxnet_fdb_entries{network="idle",kind="learned"} 0
vxnet_fdb_entries{network="idle",kind="local"} 0
vxnet_fdb_entries{network="idle",kind="static"} 0
# HELP vxnet_raft_term The Raft term of this host's node.
# TYPE vxnet_raft_term gauge
vxnet_raft_term 4
# HELP vxnet_raft_commit_index The last Raft log index this host knows to be committed.
# TYPE vxnet_raft_commit_index gauge
vxnet_raft_commit_index 17
# HELP vxnet_raft_applied_index The last Raft log index applied to the state on this host.
# TYPE vxnet_raft_applied_index gauge
vxnet_raft_applied_index 16
# HELP vxnet_raft_is_leader 1 if this host is the Raft leader, else 0.
# TYPE vxnet_raft_is_leader gauge
vxnet_raft_is_leader 1
# HELP vxnet_cluster_members Hosts of the cluster as this host knows them, by Raft role.
# TYPE vxnet_cluster_members gauge
vxnet_cluster_members{role="voter"} 3
vxnet_cluster_members{role="learner"} 1
# HELP vxnet_cluster_refusals_total Connections the cluster port refused or closed, and raft messages it dropped, by reason.
# TYPE vxnet_cluster_refusals_total counter
vxnet_cluster_refusals_total{reason="tls_handshake"} 5
vxnet_cluster_refusals_total{reason="frame_too_big"} 0
# HELP vxnet_metrics_age_seconds How old the numbers of this scrape are (taken by the control thread once a second).
# TYPE vxnet_metrics_age_seconds gauge
"#;

/// The lines of `text` from the first `# HELP` of `family` on.
fn from_family<'t>(text: &'t str, family: &str) -> &'t str {
    let at = text
        .find(&format!("# HELP {family} "))
        .unwrap_or_else(|| panic!("no {family} in:\n{text}"));
    &text[at..]
}

#[test]
fn a_snapshot_renders_as_prometheus_text() {
    let metrics = Metrics::new();
    metrics.store(sample());
    let text = metrics.render();
    let ours = from_family(&text, "vxnet_rx_frames_total");
    let (head, age) = ours
        .rsplit_once("vxnet_metrics_age_seconds ")
        .expect("an age sample last");
    assert_eq!(head, SAMPLE_TEXT);
    let age: f64 = age.trim().parse().expect("the age is a number");
    assert!((0.0..5.0).contains(&age), "age {age}");
}

#[test]
fn every_sample_belongs_to_a_declared_family() {
    let metrics = Metrics::new();
    metrics.store(sample());
    metrics.observe_proposal(Duration::from_millis(3));
    let text = metrics.render();
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(
                declared.insert(name.into(), kind.into()).is_none(),
                "two TYPE lines for {name}"
            );
            assert!(
                helped.contains(&name.to_string()),
                "TYPE before HELP: {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().expect("name").to_string());
            continue;
        }
        let name = line
            .split(['{', ' '])
            .next()
            .expect("a sample starts with its name");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (declared.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        let kind = declared
            .get(family)
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line}"));
        assert!(
            family.ends_with("_total") == (kind == "counter"),
            "counters and only counters end in _total: {line}"
        );
        assert!(!line.contains(':'), "no MAC or IPv6 in a label: {line}");
    }
    for name in [
        "vxnet_rx_frames_total",
        "vxnet_tx_frames_total",
        "vxnet_rx_bytes_total",
        "vxnet_tx_bytes_total",
        "vxnet_drops_total",
        "vxnet_endpoints",
        "vxnet_fdb_entries",
        "vxnet_raft_term",
        "vxnet_raft_commit_index",
        "vxnet_raft_applied_index",
        "vxnet_raft_is_leader",
        "vxnet_cluster_members",
        "vxnet_proposal_duration_seconds",
    ] {
        assert!(declared.contains_key(name), "{name} missing (CLI.md)");
    }
    assert_eq!(
        declared
            .get("vxnet_proposal_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
}

#[test]
fn before_the_first_tick_only_the_histogram_shows() {
    let text = Metrics::new().render();
    assert!(text.contains("# TYPE vxnet_proposal_duration_seconds histogram"));
    assert!(text.contains("vxnet_proposal_duration_seconds_count 0"));
    assert!(!text.contains("vxnet_raft_term"), "{text}");
}

#[test]
fn proposals_land_in_their_buckets() {
    let metrics = Metrics::new();
    metrics.observe_proposal(Duration::from_millis(3));
    metrics.observe_proposal(Duration::from_millis(3));
    metrics.observe_proposal(Duration::from_secs(2));
    let text = metrics.render();
    for line in [
        r#"vxnet_proposal_duration_seconds_bucket{le="0.0025"} 0"#,
        r#"vxnet_proposal_duration_seconds_bucket{le="0.005"} 2"#,
        r#"vxnet_proposal_duration_seconds_bucket{le="1"} 2"#,
        r#"vxnet_proposal_duration_seconds_bucket{le="2.5"} 3"#,
        r#"vxnet_proposal_duration_seconds_bucket{le="+Inf"} 3"#,
        "vxnet_proposal_duration_seconds_count 3",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

#[test]
fn a_new_snapshot_replaces_the_old_one() {
    let metrics = Metrics::new();
    metrics.store(sample());
    let mut next = sample();
    next.networks.retain(|n| n.name == "idle");
    next.raft.is_leader = false;
    metrics.store(next);
    let text = metrics.render();
    assert!(!text.contains(r#"network="blue""#), "{text}");
    assert!(text.contains("vxnet_raft_is_leader 0"), "{text}");
}

/// Sends `request` to `addr` and returns the status line and the body.
fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn only_get_metrics_answers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let metrics = Arc::new(Metrics::new());
    metrics.store(sample());
    runtime.spawn(MetricsServer { listener, metrics }.serve());

    let (status, head, body) = http(addr, "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains(r#"vxnet_rx_frames_total{network="blue"} 10"#),
        "{body}"
    );

    let (status, _, _) = http(
        addr,
        "GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(
        status.ends_with("200 OK"),
        "a query string is no other path: {status}"
    );
    let (status, _, _) = http(addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(status.ends_with("404 Not Found"), "{status}");
    let (status, _, _) = http(addr, "GET /metrics/x HTTP/1.0\r\n\r\n");
    assert!(status.ends_with("404 Not Found"), "{status}");
    let (status, head, _) = http(addr, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert!(status.ends_with("405 Method Not Allowed"), "{status}");
    assert!(head.contains("allow: get"), "{head}");
}

#[test]
fn an_address_in_use_is_refused_with_the_flag_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let Err(e) = start(addr) else {
        panic!("bound an address in use")
    };
    let text = e.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("--metrics-addr"),
        "{text}"
    );
}
