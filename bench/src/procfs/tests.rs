use super::*;

// Shapes copied from a Linux 6.x /proc, numbers chosen to make each field distinct.
const STAT: &str = "cpu  100 20 30 900 7 5 11 2 40 0\ncpu0 50 10 15 450 3 2 5 1 20 0\nintr 1 2 3\n";
const TASK_STAT: &str = "4242 (vxnet rx (1)) S 1 4242 4242 0 -1 4194560 12 0 0 0 \
    321 654 0 0 20 0 3 0 100 1000 200 18446744073709551615";
const STATUS: &str = "Name:\tvxnet-rx\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1500\n\
    nonvoluntary_ctxt_switches:\t25\n";

#[test]
fn machine_busy_excludes_idle_and_iowait() {
    let t = parse_proc_stat(STAT).expect("parses");
    // user 100 + nice 20 + system 30 + irq 5 + softirq 11 + steal 2; not idle 900, iowait 7,
    // nor guest 40 (inside user already).
    assert_eq!(t.busy, 168);
    assert_eq!(t.softirq, 11);
    assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
    assert_eq!(parse_proc_stat("intr 1\n"), None);
}

#[test]
fn task_stat_counts_fields_after_the_last_parenthesis() {
    // The name holds a space and a ')': naive splitting would read the wrong fields.
    assert_eq!(parse_task_stat(TASK_STAT), Some(321 + 654));
    assert_eq!(parse_task_stat("4242 (x) S 1 2"), None);
    assert_eq!(parse_task_stat("no parenthesis"), None);
}

#[test]
fn task_switches_sum_both_kinds() {
    assert_eq!(parse_task_switches(STATUS), Some(1525));
    assert_eq!(
        parse_task_switches("voluntary_ctxt_switches:\t3\n"),
        None,
        "both lines are needed"
    );
}

#[test]
fn cpu_per_gb_and_per_packet() {
    let hz = 100.0;
    let cpu = seconds_between(1_000, 1_250, hz);
    assert_eq!(cpu, 2.5);
    assert_eq!(seconds_between(10, 5, hz), 0.0);
    // 2.5 CPU seconds for 5 GB: 0.5 s per GB.
    assert_eq!(per_gb(cpu, 5e9), Some(0.5));
    assert_eq!(per_gb(cpu, 0.0), None);
    // 2.5 s for 1 M packets: 2.5 µs each.
    assert_eq!(us_per_packet(cpu, 1e6), Some(2.5));
    assert_eq!(us_per_packet(cpu, 0.0), None);
    assert_eq!(per(64, 2), Some(32.0));
    assert_eq!(per(64, 0), None);
}

#[test]
fn live_samples_of_this_process() {
    let me = process(std::process::id()).expect("own /proc entry");
    assert!(me.switches > 0, "{me:?}");
    let m = machine().expect("/proc/stat");
    assert!(m.busy >= m.softirq && m.busy > 0, "{m:?}");
    assert!(process(u32::MAX).is_none());
}
