use super::*;

const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
611 25 0:4 net:[4026532711] /run/netns/vl1x0-h0 rw shared:301 - nsfs nsfs rw
612 22 0:4 net:[4026532800] /tmp/vxlab\\040x/h0/netns/net1 rw shared:302 - nsfs nsfs rw
613 22 0:4 net:[4026532801] /tmp/vxlab/h0/netns/net2 rw - nsfs nsfs rw
bogus line
";

#[test]
fn mountinfo_parses_nsfs_bind_mounts() {
    let m = parse_mountinfo(SAMPLE);
    assert_eq!(m.len(), 4);
    assert_eq!(m[1].fs_type, "nsfs");
    assert_eq!(m[1].root, "net:[4026532711]");
    assert_eq!(
        m[2].mount_point,
        PathBuf::from("/tmp/vxlab x/h0/netns/net1")
    );
    assert_eq!(m[3].mount_point, PathBuf::from("/tmp/vxlab/h0/netns/net2"));
    assert_eq!(m[0].fs_type, "ext4");
}

#[test]
fn unescape_leaves_plain_backslashes() {
    assert_eq!(unescape_mount("a\\040b"), "a b");
    assert_eq!(unescape_mount("a\\x"), "a\\x");
    assert_eq!(unescape_mount("tail\\"), "tail\\");
}
