use super::*;

#[test]
fn missing_samples_are_null_not_zero() {
    let mut r = ClusterReport::default();
    r.commit.samples_ms = vec![4.0, 2.0, 3.0, 100.0];
    r.failover.error = Some("no leader".into());
    let j = r.to_json();
    assert_eq!(j["scenario"], json!("cluster"));
    assert_eq!(j["metrics"]["network_create_commit_ms"]["p50"], json!(3.0));
    assert_eq!(
        j["metrics"]["network_create_commit_ms"]["p99"],
        json!(100.0)
    );
    assert_eq!(
        j["metrics"]["network_create_commit_ms"]["median"],
        json!(3.5)
    );
    assert_eq!(j["metrics"]["leader_failover_ms"]["median"], Value::Null);
    assert_eq!(
        j["metrics"]["leader_failover_ms"]["error"],
        json!("no leader")
    );
    for key in ["date", "kernel", "nproc", "cpu_model"] {
        assert!(j.get(key).is_some(), "{key} missing");
    }
    assert!(r.failed());
    let t = r.table();
    assert!(t.contains("leader_failover_ms: FAILED: no leader"), "{t}");
    assert!(t.contains("kernel "), "{t}");
}

#[test]
fn clean_report_has_not_failed() {
    let mut r = ClusterReport::default();
    r.convergence.samples_ms = vec![12.0];
    assert!(!r.failed());
    assert_eq!(r.convergence.max(), Some(12.0));
    assert_eq!(Series::default().max(), None);
}
