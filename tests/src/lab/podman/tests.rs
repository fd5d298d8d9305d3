//! The pure pieces of the Podman helper: the conflist.

use super::*;

#[test]
fn conflist_puts_vxnet_first() {
    let c = Podman::vxnet_conflist(
        "1.0.0",
        "lab",
        "shop",
        Path::new("/run/vxnet/vxnet.sock"),
        &[json!({"type": "tuning"})],
    );
    assert_eq!(c["plugins"][0]["type"], "vxnet");
    assert_eq!(c["plugins"][0]["network"], "shop");
    assert_eq!(c["plugins"][0]["capabilities"]["portMappings"], true);
    assert_eq!(c["plugins"][1]["type"], "tuning");
    assert_eq!(c["cniVersion"], "1.0.0");
}
