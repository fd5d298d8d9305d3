use super::*;

#[test]
fn run_captures_output_and_status() {
    let out = run(
        Command::new("sh").args(["-c", "echo hi; echo oops >&2; exit 3"]),
        DEFAULT_TIMEOUT,
    )
    .expect("sh runs");
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn run_kills_on_timeout() {
    let started = Instant::now();
    let err = run(Command::new("sleep").arg("5"), Duration::from_millis(200))
        .expect_err("sleep 5 must time out");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(format!("{err}").contains("did not finish"), "{err}");
}

#[test]
fn run_ok_reports_stderr() {
    let err = run_ok(
        Command::new("sh").args(["-c", "echo broken >&2; exit 1"]),
        DEFAULT_TIMEOUT,
    )
    .expect_err("exit 1 is an error");
    assert!(format!("{err}").contains("broken"), "{err}");
}
