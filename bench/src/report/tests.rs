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
    assert_eq!(r.ratio(Metric::Tcp1Gbps), Some(0.25));
    assert_eq!(r.ratio(Metric::RttAvgUs), None);
    let j = r.to_json();
    assert_eq!(j["modes"]["vxnet"]["ping_rtt_avg_us"], Value::Null);
    assert_eq!(
        j["ratio_vxnet_over_kernel"]["tcp_1_stream_gbit_s"],
        json!(0.25)
    );
    let t = r.table();
    assert!(t.contains("0.25x"), "{t}");
}
