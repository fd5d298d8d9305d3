//! Running `ip` in a lab namespace and reading what it prints.
//!
//! Rules: [`ip`] fails with ip's own message on a non-zero exit and has the default command
//! deadline; the parsers read `ip -o` (one line per object) output and skip what they do not
//! understand, except [`parse_ipv4_addrs`], which fails on a line without an address.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{anyhow, Result};

use super::topology::split_cidr;
use crate::cmd::{self, DEFAULT_TIMEOUT};

/// `ip -n NS args...`, failing with ip's message; returns stdout.
pub fn ip(ns: &str, args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(["-n", ns]).args(args);
    cmd::run_ok(&mut c, DEFAULT_TIMEOUT)
}

/// The flags of `ip -o link show DEV` output (`<BROADCAST,MULTICAST,UP,LOWER_UP>`).
pub fn link_flags(text: &str) -> Vec<String> {
    text.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Interface names from `ip -o link show` output (`2: eth0@if5: <...>` → `eth0`).
pub fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).trim().to_string())
        .collect()
}

/// `(interface, address, prefix length)` of every line of `ip -o -4 addr show`.
pub fn parse_ipv4_addrs(text: &str) -> Result<Vec<(String, Ipv4Addr, u8)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // "12: eth0    inet 10.10.0.2/24 brd 10.10.0.255 scope global eth0\ ..."
            let words: Vec<&str> = l.split_whitespace().collect();
            let inet = words
                .iter()
                .position(|w| *w == "inet")
                .ok_or_else(|| anyhow!("no inet in {l:?}"))?;
            let ifname = words
                .get(1)
                .ok_or_else(|| anyhow!("no interface in {l:?}"))?;
            let cidr = words
                .get(inet + 1)
                .ok_or_else(|| anyhow!("no address in {l:?}"))?;
            let (addr, len) = split_cidr(cidr)?;
            let ifname = ifname.split('@').next().unwrap_or(ifname);
            Ok((ifname.to_string(), addr, len))
        })
        .collect()
}

/// The link-layer address of `ip neigh show IP` output, if the entry has one.
pub fn neighbour_lladdr(text: &str) -> Option<String> {
    text.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
