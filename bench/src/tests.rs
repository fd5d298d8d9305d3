use super::*;

#[test]
fn sealed_modes_parse_and_name_their_carrier() {
    let args = Args::try_parse_from([
        "vxnet-bench",
        "--modes",
        "vxnet-sealed,kernel-wg,userspace-wg",
    ])
    .expect("modes parse");
    assert_eq!(
        args.modes,
        [Mode::VxnetSealed, Mode::KernelWg, Mode::UserspaceWg]
    );
    let names: Vec<&str> = args.modes.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["vxnet-sealed", "kernel-wg", "userspace-wg"]);
    // Both anchors are the same sealed kernel pair (same MTU), over different WireGuards.
    assert_eq!(Mode::KernelWg.wireguard(), Some(WireGuard::Kernel));
    assert_eq!(Mode::UserspaceWg.wireguard(), Some(WireGuard::Boringtun));
    assert_eq!(Mode::Kernel.wireguard(), None);
    assert_eq!(Mode::VxnetSealed.wireguard(), None);
    for m in [Mode::KernelWg, Mode::UserspaceWg] {
        assert_eq!(m.sealing(), Sealing::Sealed);
        assert!(!m.is_vxnet());
    }
    // The names the report pairs on are the modes' names.
    assert_eq!(report::SEALED.baseline, Mode::KernelWg.name());
    assert_eq!(report::SEALED_USERSPACE.baseline, Mode::UserspaceWg.name());
    assert!(Args::try_parse_from(["vxnet-bench", "--modes", "boringtun"]).is_err());
}
