use super::*;

const OK: &str = "\
PING 10.10.0.3 (10.10.0.3) 56(84) bytes of data.
64 bytes from 10.10.0.3: icmp_seq=1 ttl=64 time=0.512 ms
64 bytes from 10.10.0.3: icmp_seq=2 ttl=64 time=0.045 ms
64 bytes from 10.10.0.3: icmp_seq=3 ttl=64 time=0.071 ms

--- 10.10.0.3 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.045/0.209/0.512/0.214 ms
";

const LOSSY: &str = "\
PING 10.10.0.9 (10.10.0.9) 56(84) bytes of data.
From 10.10.0.2 icmp_seq=1 Destination Host Unreachable
64 bytes from 10.10.0.9: icmp_seq=2 ttl=64 time=1.50 ms
64 bytes from 10.10.0.9: icmp_seq=2 ttl=64 time=1.60 ms (DUP!)

--- 10.10.0.9 ping statistics ---
4 packets transmitted, 1 received, +1 duplicates, +1 errors, 75% packet loss, time 3004ms
";

const DEAD: &str = "\
PING 10.10.0.13 (10.10.0.13) 56(84) bytes of data.

--- 10.10.0.13 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2030ms
";

#[test]
fn parses_replies_and_summary() {
    let s = parse_ping_output(OK).expect("valid output");
    assert_eq!(s.transmitted, 3);
    assert_eq!(s.received, 3);
    assert_eq!(s.rtts_ms, vec![0.512, 0.045, 0.071]);
    assert_eq!(s.loss(), 0.0);
    let avg = s.avg_ms().expect("has replies");
    assert!((avg - 0.209_333).abs() < 1e-3, "{avg}");
}

#[test]
fn duplicates_and_errors_do_not_count_as_replies() {
    let s = parse_ping_output(LOSSY).expect("valid output");
    assert_eq!((s.transmitted, s.received), (4, 1));
    assert_eq!(s.rtts_ms, vec![1.5]);
    assert!((s.loss() - 0.75).abs() < 1e-9);
}

#[test]
fn total_loss_has_no_rtt() {
    let s = parse_ping_output(DEAD).expect("valid output");
    assert_eq!((s.transmitted, s.received), (3, 0));
    assert_eq!(s.avg_ms(), None);
    assert_eq!(s.percentile_ms(99.0), None);
    assert_eq!(s.loss(), 1.0);
}

#[test]
fn output_without_summary_is_an_error() {
    assert!(parse_ping_output("ping: connect: Network is unreachable\n").is_err());
}

#[test]
fn percentile_is_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 100.0), Some(100.0));
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
}
