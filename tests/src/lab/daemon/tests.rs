use super::*;

#[test]
fn one_error_line() {
    assert!(is_one_error_line("vxnet: no quorum; retry later\n"));
    assert!(is_one_error_line("\nvxnet: padded\n\n"));
    assert!(!is_one_error_line("vxnet: a\nvxnet: b\n"));
    assert!(!is_one_error_line("error: something\n"));
    assert!(!is_one_error_line(""));
}
