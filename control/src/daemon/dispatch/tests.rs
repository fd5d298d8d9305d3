use super::endpoints::default_endpoint_name;
use super::*;

#[test]
fn default_endpoint_names() {
    assert_eq!(default_endpoint_name("c1"), "c1");
    assert_eq!(default_endpoint_name("pid:42"), "pid:42");
    assert_eq!(default_endpoint_name("/var/run/netns/c1"), "c1");
    assert_eq!(default_endpoint_name("/proc/42/ns/net"), "/proc/42/ns/net");
}

#[test]
fn request_timeouts_keep_a_margin_and_stay_within_bounds() {
    assert_eq!(request_timeout(0), DEFAULT_TIMEOUT);
    assert_eq!(request_timeout(10_000), Duration::from_millis(9_500));
    assert_eq!(request_timeout(1), Duration::from_millis(100));
    assert_eq!(request_timeout(u32::MAX), MAX_TIMEOUT);
}
