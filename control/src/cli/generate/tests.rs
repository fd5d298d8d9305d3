use super::*;

/// The top-level commands, which every generated artefact must mention.
const COMMANDS: [&str; 8] = [
    "daemon",
    "network",
    "fdb",
    "stats",
    "cluster",
    "version",
    "completions",
    "man",
];

#[test]
fn the_version_is_the_crates() {
    let v = version();
    assert!(
        v.starts_with(&format!("vxnet {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

#[test]
fn completions_know_every_command_and_flag() {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let script = String::from_utf8(completions(shell)).expect("utf-8");
        for word in
            COMMANDS
                .iter()
                .chain(&["create", "connect", "--advertise-addr", "--metrics-addr"])
        {
            // Flags without their dashes: fish writes `-l advertise-addr`.
            let word = word.trim_start_matches('-');
            assert!(script.contains(word), "{shell}: no {word:?}");
        }
    }
    let bash = String::from_utf8(completions(Shell::Bash)).expect("utf-8");
    assert!(
        bash.contains("complete -F _vxnet"),
        "bash registers the function"
    );
}

#[test]
fn the_man_page_lists_the_subcommands() {
    let page = String::from_utf8(man_page().expect("renders")).expect("utf-8");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "roff: {}",
        &page[..80]
    );
    assert!(page.contains(".TH vxnet 1"), "title");
    for command in COMMANDS {
        assert!(page.contains(command), "no {command:?} in the page");
    }
}

#[test]
fn man_pages_go_one_per_command_into_a_directory() {
    let dir = std::env::temp_dir().join(format!("vxnet-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pages = man_pages(&dir).expect("written");
    let names: Vec<String> = pages
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    for want in [
        "vxnet.1",
        "vxnet-daemon.1",
        "vxnet-network-create.1",
        "vxnet-cluster-join.1",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    let create = std::fs::read_to_string(dir.join("vxnet-network-create.1")).expect("read");
    assert!(
        create.contains("subnet"),
        "the create page documents --subnet"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_answers_the_three_commands() {
    let out = run(Command::Version).expect("version");
    assert_eq!(out, format!("{}\n", version()));
    let out = run(Command::Completions { shell: Shell::Fish }).expect("completions");
    assert!(out.contains("complete -c vxnet"), "{out:.200}");
    let out = run(Command::Man(super::super::args::ManArgs { dir: None })).expect("man");
    assert!(
        out.contains(".SH SUBCOMMANDS") || out.contains(".SH \"SUBCOMMANDS\""),
        "{out:.400}"
    );
}
