use super::*;

#[test]
fn wait_for_reports_last_error() {
    let mut n = 0;
    let err = wait_for("nothing", Duration::from_millis(50), POLL_INTERVAL, || {
        n += 1;
        Err::<Option<()>, _>(anyhow::anyhow!("attempt {n}"))
    })
    .expect_err("never succeeds");
    assert!(format!("{err}").contains("attempt"), "{err}");
    assert!(n > 1, "errors are retried");
}

#[test]
fn wait_for_returns_the_first_value() {
    let mut n = 0;
    let v = wait_for(
        "three looks",
        Duration::from_secs(5),
        Duration::ZERO,
        || {
            n += 1;
            Ok((n == 3).then_some(n))
        },
    )
    .expect("ready on the third look");
    assert_eq!(v, 3);
}

#[test]
fn strict_wait_stops_at_the_first_error() {
    let mut n = 0;
    let err = wait_for_strict("nothing", Duration::from_secs(5), POLL_INTERVAL, || {
        n += 1;
        Err::<Option<()>, _>(anyhow::anyhow!("broken"))
    })
    .expect_err("an error ends the wait");
    assert_eq!(n, 1);
    assert!(format!("{err:#}").contains("broken"), "{err:#}");
}
