use super::*;

const OUTPUT: &str = "\
PING 10.10.0.3 (10.10.0.3) 56(84) bytes of data.
[1765100000.100000] 64 bytes from 10.10.0.3: icmp_seq=1 ttl=64 time=0.210 ms
[1765100000.105000] 64 bytes from 10.10.0.3: icmp_seq=2 ttl=64 time=0.190 ms
[1765100000.105100] 64 bytes from 10.10.0.3: icmp_seq=2 ttl=64 time=0.290 ms (DUP!)
[1765100000.200000] From 10.10.0.2 icmp_seq=20 Destination Host Unreachable
[1765100000.350000] 64 bytes from 10.10.0.3: icmp_seq=51 ttl=64 time=0.400 ms
[1765100000.355000] 64 bytes from 10.10.0.3: icmp_seq=52 ttl=64 time=0.200 ms

--- 10.10.0.3 ping statistics ---
52 packets transmitted, 4 received, +1 errors, 92.3077% packet loss, time 260ms
rtt min/avg/max/mdev = 0.190/0.250/0.400/0.082 ms
";

#[test]
fn reads_timestamps_and_sequence_numbers_of_replies_only() {
    let replies = parse_timestamped_replies(OUTPUT);
    let seqs: Vec<u32> = replies.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 2, 51, 52]);
    assert!((replies[2].at - 1_765_100_000.35).abs() < 1e-6);
    assert_eq!(replies[2].rtt_ms, Some(0.4));
    assert_eq!(
        parse_timestamped_reply("64 bytes from 10.10.0.3: icmp_seq=1"),
        None
    );
    assert_eq!(
        parse_timestamped_reply("[garbage] 64 bytes from x: icmp_seq=1"),
        None
    );
    let stats = parse_ping_output(OUTPUT).expect("summary");
    assert_eq!((stats.transmitted, stats.received), (52, 4));
}

#[test]
fn the_gap_is_around_the_moment_the_daemon_was_gone() {
    let replies = parse_timestamped_replies(OUTPUT);
    let gap = restart_gap(&replies, 1_765_100_000.11).expect("a reply after");
    assert_eq!(gap.last_before, Some(1_765_100_000.105));
    assert_eq!(gap.first_after.at, 1_765_100_000.35);
    assert_eq!(gap.first_after.seq, 51);
    assert_eq!(restart_gap(&replies, 1_765_100_001.0), None);
    let none_before = restart_gap(&replies, 1_765_100_000.0).expect("a reply after");
    assert_eq!(none_before.last_before, None);
}

fn run(window_ms: f64, lost: u32) -> Run {
    Run {
        window_ms,
        outage_ms: window_ms - 1.0,
        first_reply_rtt_ms: Some(0.2),
        transmitted: 100 + lost,
        received: 100,
        exit_ms: 2.0,
        ready_ms: 150.0,
        exited_on_signal: true,
    }
}

#[test]
fn report_has_median_min_max_per_signal_and_errors() {
    let mut r = RestartReport::new(3);
    let term = r.signal_mut(Stop::Term);
    term.runs = vec![run(40.0, 8), run(20.0, 4), run(30.0, 6)];
    r.signal_mut(Stop::Kill)
        .errors
        .push("round 1: no reply".into());
    let j = r.to_json();
    assert_eq!(j["scenario"], json!("restart"));
    assert_eq!(j["ping_interval_ms"], json!(5.0));
    let w = &j["signals"]["SIGTERM"]["metrics"]["kill_to_first_reply_ms"];
    assert_eq!(w["median"], json!(30.0));
    assert_eq!(w["min"], json!(20.0));
    assert_eq!(w["max"], json!(40.0));
    assert_eq!(w["n"], json!(3));
    assert_eq!(
        j["signals"]["SIGTERM"]["metrics"]["lost_echo_requests"]["median"],
        json!(6.0)
    );
    assert_eq!(
        j["signals"]["SIGKILL"]["metrics"]["kill_to_first_reply_ms"]["median"],
        Value::Null
    );
    assert_eq!(
        j["signals"]["SIGKILL"]["errors"][0],
        json!("round 1: no reply")
    );
    for key in ["date", "kernel", "nproc", "cpu_model"] {
        assert!(j.get(key).is_some(), "{key} missing");
    }
    assert!(r.failed());
    let t = r.table();
    assert!(t.contains("SIGKILL: FAILED: round 1: no reply"), "{t}");
    assert!(t.contains("bounds the resolution"), "{t}");
}

#[test]
fn clean_report_has_not_failed() {
    let mut r = RestartReport::new(1);
    r.signal_mut(Stop::Kill).runs.push(run(12.0, 2));
    assert!(!r.failed());
    assert_eq!(r.signals[1].samples(RestartMetric::Lost), vec![2.0]);
}
