use super::*;

#[test]
fn default_endpoint_names() {
    assert_eq!(default_endpoint_name("c1"), "c1");
    assert_eq!(default_endpoint_name("pid:42"), "pid:42");
    assert_eq!(default_endpoint_name("/var/run/netns/c1"), "c1");
    assert_eq!(default_endpoint_name("/proc/42/ns/net"), "/proc/42/ns/net");
}
