use super::*;

fn step(offered_kpps: f64, loss_pct: f64) -> SweepStep {
    SweepStep {
        offered_kpps,
        sent_kpps: offered_kpps,
        received_kpps: offered_kpps * (1.0 - loss_pct / 100.0),
        loss_pct,
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=5000).map(f64::from).collect();
    let s = LatencySummary::of(&v).expect("samples");
    assert_eq!(s.count, 5000);
    assert_eq!(s.p50, 2500.0);
    assert_eq!(s.p99, 4950.0);
    assert_eq!(s.p999, 4995.0);
    assert_eq!(s.mean, 2500.5);
    assert_eq!(LatencySummary::of(&[]), None);
    assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.0), Some(1.0));
    assert_eq!(percentile(&[3.0, 1.0, 2.0], 100.0), Some(3.0));
    // 1000 samples: p99.9 is the 999th, not the largest.
    let k: Vec<f64> = (1..=1000).map(f64::from).collect();
    assert_eq!(percentile(&k, 99.9), Some(999.0));
    let one = LatencySummary::of(&[7.0]).expect("one sample");
    assert_eq!((one.p50, one.p999, one.mean), (7.0, 7.0, 7.0));
}

#[test]
fn sweep_takes_the_highest_rate_below_the_first_failure() {
    let steps = [
        step(25.0, 0.0),
        step(50.0, 0.05),
        step(100.0, 0.5),
        step(150.0, 3.0),
        // A lucky step above a failing one does not count.
        step(200.0, 0.0),
    ];
    assert_eq!(highest_rate_within(&steps, 0.1), Some(50.0));
    assert_eq!(highest_rate_within(&steps, 1.0), Some(100.0));
    assert_eq!(highest_rate_within(&steps, 100.0), Some(200.0));
    // Order of the steps does not matter.
    let mut reversed = steps;
    reversed.reverse();
    assert_eq!(highest_rate_within(&reversed, 1.0), Some(100.0));
    assert_eq!(highest_rate_within(&[step(25.0, 2.0)], 1.0), None);
    assert_eq!(highest_rate_within(&[], 1.0), None);
}

#[test]
fn cdf_ends_at_one() {
    let c = cdf(&[30.0, 10.0, 20.0, 40.0]);
    assert_eq!(
        c,
        vec![(10.0, 0.25), (20.0, 0.5), (30.0, 0.75), (40.0, 1.0)]
    );
    assert!(cdf(&[]).is_empty());
}

#[test]
fn snmp_udp_by_column_name() {
    let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
        Udp: 57 1 812 58 800 3 12\n\
        UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
        UdpLite: 0 0 0 0 0 0\n";
    assert_eq!(
        parse_snmp_udp(text),
        Some(UdpSnmp {
            rcvbuf_errors: 800,
            in_errors: 812
        })
    );
    assert_eq!(parse_snmp_udp("Ip: 1\n"), None);
}

#[test]
fn link_drops_sum_all_but_lo() {
    let json = r#"[
      {"ifname":"lo","stats64":{"rx":{"dropped":1000},"tx":{"dropped":1000}}},
      {"ifname":"eth0","stats64":{"rx":{"packets":9,"dropped":7},"tx":{"dropped":2}}},
      {"ifname":"vxtap0","stats64":{"rx":{"dropped":0},"tx":{"dropped":40}}}
    ]"#;
    assert_eq!(
        parse_link_drops(json),
        Some(LinkDrops {
            rx_dropped: 7,
            tx_dropped: 42
        })
    );
    assert_eq!(parse_link_drops("not json"), None);
    assert_eq!(parse_link_drops(r#"[{"ifname":"eth0"}]"#), None);
}
