use super::*;

#[test]
fn medians() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0]), Some(3.0));
    assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
}

#[test]
fn machine_facts_are_in_every_report() {
    let j = Report::new(3, 1, false).to_json();
    for key in ["date", "kernel", "nproc", "cpu_model", "modes", "statistic"] {
        assert!(j.get(key).is_some(), "{key} missing: {j}");
    }
    assert!(machine_line().contains("kernel "));
}

#[test]
fn dates() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
}

#[test]
fn ratio_and_missing_values() {
    let mut r = Report::new(3, 1, false);
    let mut vx = ModeResult::new("vxnet");
    vx.add(Metric::Tcp1Gbps, 2.0);
    let mut k = ModeResult::new("kernel");
    k.add(Metric::Tcp1Gbps, 8.0);
    k.add(Metric::RttAvgUs, 50.0);
    r.modes = vec![vx, k];
    assert_eq!(r.ratio(Metric::Tcp1Gbps, PLAIN), Some(0.25));
    assert_eq!(r.ratio(Metric::RttAvgUs, PLAIN), None);
    let j = r.to_json();
    assert_eq!(j["modes"]["vxnet"]["ping_rtt_avg_us"], Value::Null);
    assert_eq!(
        j["ratio_vxnet_over_kernel"]["tcp_1_stream_gbit_s"],
        json!(0.25)
    );
    let t = r.table();
    assert!(t.contains("0.25×"), "{t}");
}

#[test]
fn ratio_formatting() {
    assert_eq!(fmt_ratio(Some(3.4)), "3.40×");
    assert_eq!(fmt_ratio(Some(0.851)), "0.85×");
    assert_eq!(fmt_ratio(None), "—");
    assert_eq!(fmt_ratio(Some(f64::INFINITY)), "—");
    assert_eq!(fmt_pct(69.53), "70 %");
    assert_eq!(fmt_pct(0.9), "0.9 %");
    assert_eq!(fmt_pct(0.0123), "0.012 %");
    assert_eq!(fmt_pct(0.0), "0 %");
    assert_eq!(fmt_loss_pair(Some(99.6), Some(1.0)), "100 % vs 1.0 %");
    assert_eq!(fmt_loss_pair(Some(2.0), None), "—");
}

#[test]
fn loss_is_never_a_ratio_and_counts_have_none() {
    let mut r = Report::new(3, 1, false);
    let mut vx = ModeResult::new("vxnet");
    vx.add(Metric::Udp64LossPct, 99.56);
    vx.add(Metric::DropHostRcvbuf, 500.0);
    vx.add(Metric::RttP99Us, 600.0);
    let mut k = ModeResult::new("kernel");
    k.add(Metric::Udp64LossPct, 1.0);
    k.add(Metric::DropHostRcvbuf, 5.0);
    k.add(Metric::RttP99Us, 200.0);
    r.modes = vec![vx, k];
    assert_eq!(r.ratio(Metric::Udp64LossPct, PLAIN), None);
    assert_eq!(r.comparison(Metric::Udp64LossPct, PLAIN), "100 % vs 1.0 %");
    assert_eq!(r.ratio(Metric::DropHostRcvbuf, PLAIN), None);
    assert_eq!(r.comparison(Metric::DropHostRcvbuf, PLAIN), "—");
    let counts = format!(
        "{:<34}{:>10}{:>10}  —",
        Metric::DropHostRcvbuf.label(),
        500,
        5
    );
    assert!(r.table().contains(&counts), "{}", r.table());
    assert_eq!(r.comparison(Metric::RttP99Us, PLAIN), "3.00×");
    let t = r.table();
    assert!(!t.contains("99.56x") && !t.contains("99.56×"), "{t}");
    for g in Group::ALL {
        assert!(t.contains(g.title()), "{} missing in\n{t}", g.title());
    }
    let j = r.to_json();
    assert_eq!(
        j["ratio_vxnet_over_kernel"]["udp_64b_loss_percent"],
        Value::Null
    );
    assert_eq!(
        j["modes"]["vxnet"]["drops_host_udp_rcvbuf_errors"],
        json!(500.0)
    );
}

#[test]
fn sweep_steps_are_tabled_and_written() {
    let mut r = Report::new(3, 1, false);
    let mut vx = ModeResult::new("vxnet");
    vx.sweep = vec![crate::analysis::SweepStep {
        offered_kpps: 50.0,
        sent_kpps: 50.0,
        received_kpps: 49.5,
        loss_pct: 1.0,
    }];
    let mut wg = ModeResult::new("userspace-wg");
    wg.sweep = vx.sweep.clone();
    r.modes = vec![vx, wg];
    let t = r.table();
    assert!(t.contains("50.0 -> 49.5 (1.0 %)"), "{t}");
    // A long mode name keeps its head apart from the one before.
    assert!(
        t.contains("vxnet: sent -> rx (loss)  userspace-wg: sent -> rx (loss)"),
        "{t}"
    );
    let j = r.to_json();
    assert_eq!(
        j["modes"]["vxnet"]["udp_sweep"][0]["offered_kpackets_s"],
        json!(50.0)
    );
}

#[test]
fn keys_and_labels_are_unique() {
    let keys: std::collections::HashSet<_> = Metric::ALL.iter().map(|m| m.key()).collect();
    let labels: std::collections::HashSet<_> = Metric::ALL.iter().map(|m| m.label()).collect();
    assert_eq!(keys.len(), Metric::ALL.len());
    assert_eq!(labels.len(), Metric::ALL.len());
    for m in Metric::ALL {
        assert!(
            m.label().len() <= 34,
            "{} too wide for the table",
            m.label()
        );
    }
}

#[test]
fn sealed_modes_get_their_own_column_ratios_and_mtus() {
    let mode = |name: &str, gbps: f64, loss: f64, mtu: u32| {
        let mut m = ModeResult::new(name);
        m.add(Metric::Tcp1Gbps, gbps);
        m.add(Metric::Udp64LossPct, loss);
        m.mtu = Some(mtu);
        m
    };
    let mut r = Report::new(3, 1, false);
    r.modes = vec![
        mode("vxnet", 3.0, 1.0, 1450),
        mode("kernel", 4.0, 2.0, 1450),
    ];
    assert!(!r.table().contains("sealed vs"), "{}", r.table());
    r.modes.push(mode("vxnet-sealed", 1.0, 5.0, 1426));
    let alone = Report {
        modes: r.modes[2..].to_vec(),
        ..Report::new(3, 1, false)
    };
    let t = alone.table();
    assert!(
        t.contains("  sealed vs kernel-wg\n") && !t.contains("vxnet vs kernel"),
        "{t}"
    );
    r.modes.push(mode("kernel-wg", 2.0, 0.5, 1390));
    // The plain column still compares vxnet with kernel; the sealed one its own pair.
    assert_eq!(r.ratio(Metric::Tcp1Gbps, PLAIN), Some(0.75));
    assert_eq!(r.ratio(Metric::Tcp1Gbps, SEALED), Some(0.5));
    assert_eq!(r.comparison(Metric::Udp64LossPct, SEALED), "5.0 % vs 0.5 %");
    let t = r.table();
    assert!(t.contains("vxnet vs kernel | sealed vs kernel-wg"), "{t}");
    let row = format!(
        "{:<34}{:>10}{:>10}{:>13}{:>10}  0.75×           | 0.50×",
        Metric::Tcp1Gbps.label(),
        "3.00",
        "4.00",
        "1.00",
        "2.00"
    );
    assert!(t.contains(&row), "{row:?} not in\n{t}");
    assert!(
        t.contains("endpoint MTU: vxnet 1450, kernel 1450, vxnet-sealed 1426, kernel-wg 1390"),
        "{t}"
    );
    let j = r.to_json();
    assert_eq!(
        j["ratio_vxnet_sealed_over_kernel_wg"]["tcp_1_stream_gbit_s"],
        json!(0.5)
    );
    assert_eq!(
        j["ratio_vxnet_over_kernel"]["tcp_1_stream_gbit_s"],
        json!(0.75)
    );
    assert_eq!(j["modes"]["kernel-wg"]["mtu"], json!(1390));
}

#[test]
fn sealed_column_uses_kernel_wg_if_measured_else_userspace_wg() {
    let mode = |name: &str, gbps: f64| {
        let mut m = ModeResult::new(name);
        m.add(Metric::Tcp1Gbps, gbps);
        m.mtu = Some(1390);
        m
    };
    let failed = |name: &str| {
        let mut m = ModeResult::new(name);
        m.error = Some("this kernel (6.18) has no WireGuard".into());
        m
    };
    let report = |modes: Vec<ModeResult>| Report {
        modes,
        ..Report::new(3, 1, false)
    };
    // kernel-wg could not run here: the column compares with userspace-wg and says so.
    let r = report(vec![
        mode("vxnet-sealed", 1.0),
        failed("kernel-wg"),
        mode("userspace-wg", 0.5),
    ]);
    assert_eq!(r.sealed_pairing(), SEALED_USERSPACE);
    let t = r.table();
    assert!(t.contains("  sealed vs userspace-wg\n"), "{t}");
    assert!(
        t.contains("sealed vs userspace-wg: vxnet-sealed's value"),
        "{t}"
    );
    assert!(!t.contains("sealed vs kernel-wg"), "{t}");
    let row = format!(
        "{:<34}{:>13}{:>10}{:>13}  2.00×",
        Metric::Tcp1Gbps.label(),
        "1.00",
        "-",
        "0.50"
    );
    assert!(t.contains(&row), "{row:?} not in\n{t}");
    assert!(
        t.contains("endpoint MTU: vxnet-sealed 1390, userspace-wg 1390"),
        "{t}"
    );
    let j = r.to_json();
    assert_eq!(
        j["ratio_vxnet_sealed_over_userspace_wg"]["tcp_1_stream_gbit_s"],
        json!(2.0)
    );
    assert_eq!(
        j["ratio_vxnet_sealed_over_kernel_wg"]["tcp_1_stream_gbit_s"],
        Value::Null
    );
    // Both measured: kernel-wg is the anchor.
    let r = report(vec![
        mode("vxnet-sealed", 1.0),
        mode("kernel-wg", 2.0),
        mode("userspace-wg", 0.5),
    ]);
    assert_eq!(r.sealed_pairing(), SEALED);
    assert!(
        r.table().contains("  sealed vs kernel-wg\n"),
        "{}",
        r.table()
    );
    // userspace-wg alone still gets the column.
    let r = report(vec![mode("userspace-wg", 0.5)]);
    let t = r.table();
    assert!(
        t.contains("  sealed vs userspace-wg\n") && !t.contains("vxnet vs kernel"),
        "{t}"
    );
}
