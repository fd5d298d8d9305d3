use vxnet_proto::ErrorCode;

use super::*;

fn refusal_not_found() -> RequestError {
    RequestError::Refused(Refusal::NoSuchNetwork {
        network: "n9".into(),
    })
}

fn refusal_usage() -> RequestError {
    RequestError::Refused(Refusal::VniOutOfRange { vni: 0 })
}

#[test]
fn codes_follow_the_cause_and_give_the_cli_its_exit_code() {
    assert_eq!(refusal_not_found().code(), ErrorCode::NotFound);
    assert_eq!(refusal_usage().code(), ErrorCode::Usage);
    assert_eq!(refusal_usage().code().exit_code(), 2);
    assert_eq!(refusal_not_found().code().exit_code(), 1);
    let taken = RequestError::Host(HostError::IfnameTaken {
        ifname: "eth0".into(),
        target: "/proc/1/ns/net".into(),
    });
    assert_eq!(taken.code(), ErrorCode::Conflict);
    assert_eq!(RequestError::EmptyRequest.code(), ErrorCode::Internal);
    let not_connected = RequestError::NotConnected {
        target: "c1".into(),
        network: "n1".into(),
    };
    assert_eq!(not_connected.code(), ErrorCode::NotFound);
    assert_eq!(
        not_connected.to_string(),
        "\"c1\" is not connected to network n1; see `vxnet network inspect n1`"
    );
}

#[test]
fn several_failures_say_each_and_what_was_removed() {
    let e = RequestError::Several {
        errors: vec![refusal_not_found(), refusal_usage()],
        removed: vec!["a".into(), "b".into()],
    };
    let text = e.to_string();
    assert!(text.starts_with(&refusal_not_found().to_string()), "{text}");
    assert!(text.contains(&format!("; {}", refusal_usage())), "{text}");
    assert!(text.ends_with("; removed: a, b"), "{text}");
    assert_eq!(e.code(), ErrorCode::Usage, "a usage error anywhere decides");
    let response = e.to_response();
    assert_eq!(response.error, text);
    assert_eq!(response.code(), ErrorCode::Usage);
}
