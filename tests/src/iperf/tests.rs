use super::*;

const TCP: &str = r#"{"start":{"test_start":{"protocol":"TCP","num_streams":1}},
  "end":{"sum_sent":{"seconds":3.0,"bytes":3000000000,"bits_per_second":8.0e9,"retransmits":12},
         "sum_received":{"seconds":3.0,"bytes":2990000000,"bits_per_second":7.9e9}}}"#;

const UDP: &str = r#"{"start":{"test_start":{"protocol":"UDP","num_streams":1}},
  "end":{"sum":{"seconds":1.0,"bits_per_second":1.6e8,"lost_packets":1041,"packets":325860},
         "sum_sent":{"seconds":1.0,"bits_per_second":1.6e8,"lost_packets":0,"packets":325860},
         "sum_received":{"seconds":2.0,"bits_per_second":1.5e8,"lost_packets":1000,
                         "packets":201000,"lost_percent":0.4975}}}"#;

#[test]
fn tcp_uses_receiver_rate_and_sender_retransmits() {
    let r = parse_iperf_json(TCP).expect("valid report");
    assert_eq!(r.bits_per_second, 7.9e9);
    assert_eq!(r.retransmits, Some(12));
    assert_eq!(r.packets_per_second, None);
}

#[test]
fn udp_counts_received_packets_per_second() {
    let r = parse_iperf_json(UDP).expect("valid report");
    assert_eq!(r.bits_per_second, 1.5e8);
    assert_eq!(r.packets_per_second, Some(100_000.0));
    assert_eq!(r.lost_percent, Some(0.4975));
}

#[test]
fn error_report_is_an_error() {
    let err = parse_iperf_json(r#"{"start":{},"end":{},"error":"unable to connect"}"#)
        .expect_err("error key");
    assert!(format!("{err}").contains("unable to connect"));
}

#[test]
fn received_bytes_seconds_and_packets() {
    let tcp = parse_iperf_json(TCP).expect("valid report");
    assert_eq!(tcp.bytes, 2_990_000_000.0);
    assert_eq!(tcp.seconds, 3.0);
    assert_eq!(tcp.packets, None);
    let udp = parse_iperf_json(UDP).expect("valid report");
    assert_eq!(udp.seconds, 2.0);
    assert_eq!(udp.packets, Some(200_000.0));
}

#[test]
fn udp_rate_is_payload_bits() {
    assert_eq!(udp_rate_bits(64, 100_000), 51_200_000);
    assert_eq!(udp_rate_bits(1000, 1), 8000);
}
