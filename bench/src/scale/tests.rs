use super::*;

/// The scenario at a small size: every figure is there and sane, so the bench cannot rot
/// (the figures themselves are the README's, from a release build).
#[test]
fn a_small_run_measures_every_figure() {
    let report = run(ScaleParams {
        sizes: vec![300, 600],
        networks: 10,
        hosts: 3,
        changes: 20,
        lab_hosts: 0,
        lab_connects: 0,
        sim_hosts: 12,
        sim_changes: 20,
        sim_away: 100,
    })
    .expect("valid parameters");
    assert_eq!(report.sizes.len(), 2);
    for s in &report.sizes {
        assert!(s.apply_per_sec.is_finite() && s.apply_per_sec > 0.0);
        assert!(
            s.snapshot_bytes > s.endpoints * 64,
            "every endpoint id is in the snapshot"
        );
        assert!(s.change_program_us[0] <= s.change_program_us[1]);
        assert!(s.change_apply_us[0] > 0.0);
    }
    let table = report.table();
    assert!(table.contains("| 600 endpoints |"), "{table}");
    let json = report.to_json();
    assert_eq!(json["sizes"][1]["endpoints"], 600);
    let sim = report.sim.as_ref().expect("simulated part");
    assert_eq!(sim.error, None);
    assert_eq!(sim.apply_on_all_ms.len(), 20);
    // The leader sends each of the 11 others at least the entry.
    assert!(sim.leader_messages >= 11.0, "{}", sim.leader_messages);
    assert!(sim.catch_up_ms > 0.0);
}

#[test]
fn sizes_that_do_not_fit_the_networks_are_refused() {
    let params = ScaleParams {
        sizes: vec![3000],
        networks: 10,
        hosts: 3,
        changes: 20,
        lab_hosts: 0,
        lab_connects: 0,
        sim_hosts: 0,
        sim_changes: 0,
        sim_away: 0,
    };
    let err = run(params).err().expect("refused");
    assert!(err.to_string().contains("--scale-networks"), "{err}");
}

/// The lab part on three real daemons, so it cannot rot: every connect converges on the two
/// other hosts and every daemon's memory is read.
#[test]
fn the_lab_part_runs_on_three_hosts() {
    if !vxnet_tests::require_root() {
        return;
    }
    let lab = lab::run(3, 3);
    assert_eq!(lab.error, None);
    assert_eq!(lab.convergence_ms.len(), 3);
    assert!(lab.convergence_ms.iter().all(|&ms| ms > 0.0));
    assert_eq!(lab.rss_kib.len(), 3);
    assert!(lab.rss_kib.iter().all(|&k| k > 1024), "{:?}", lab.rss_kib);
    assert!(lab.table().contains("convergence on all hosts"));
}
