//! What `vxnet` tells about itself without a daemon: its version, shell completions and man
//! pages. Completions and pages are generated from the clap definitions ([`super::args`]), so
//! they list exactly the commands and flags `vxnet` accepts.
//!
//! The version is the crate's; a build with `VXNET_GIT_COMMIT` in its environment (as
//! `scripts/build-deb.sh` sets it) adds the commit.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::{Cli, Command};

/// `vxnet 0.1.0`, or `vxnet 0.1.0 (commit 1a2b3c4)` when the build knew its commit.
pub fn version() -> String {
    let base = format!("vxnet {}", env!("CARGO_PKG_VERSION"));
    match option_env!("VXNET_GIT_COMMIT").filter(|c| !c.is_empty()) {
        Some(commit) => format!("{base} (commit {commit})"),
        None => base,
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vxnet", &mut out);
    out
}

/// The `vxnet(1)` man page, in roff.
pub fn man_page() -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// Writes `vxnet.1` and one page per subcommand (`vxnet-network-create.1`, ...) into `dir`
/// (made if missing); returns their paths, sorted.
pub fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("vxnet") && name.ends_with(".1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

/// Runs `version`, `completions` or `man`; `Ok` holds what to print on stdout.
pub fn run(command: Command) -> io::Result<String> {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    match command {
        Command::Completions { shell } => text(completions(shell)),
        Command::Man(args) => match args.dir {
            None => text(man_page()?),
            Some(dir) => {
                let pages = man_pages(&dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot write man pages into {}: {e}", dir.display()),
                    )
                })?;
                Ok(pages.iter().map(|p| format!("{}\n", p.display())).collect())
            }
        },
        Command::Version => Ok(format!("{}\n", version())),
        _ => Err(io::Error::other(
            "internal: not a command that answers by itself",
        )),
    }
}

#[cfg(test)]
mod tests;
