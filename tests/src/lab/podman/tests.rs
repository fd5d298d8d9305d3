//! The pure pieces of the Podman helper: which mounts stay shared, the conflist.

use super::*;

#[test]
fn shared_mounts_are_found_with_their_paths() {
    let text = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
46 45 0:4 net:[4026532174] /run/netns/a rw shared:2 - nsfs nsfs rw
49 27 254:0 /tmp/x /tmp/with\\040space rw,relatime shared:5 master:1 - ext4 /dev/vda rw
50 27 0:5 / /dev rw master:3 - devtmpfs udev rw
";
    assert_eq!(
        shared_mounts(text),
        [
            PathBuf::from("/run/netns"),
            PathBuf::from("/run/netns/a"),
            PathBuf::from("/tmp/with space"),
        ]
    );
}

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
