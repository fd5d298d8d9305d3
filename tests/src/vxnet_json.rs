//! Reading the JSON the vxnet CLI prints (CLI.md), tolerant of keys added later.
//!
//! Rules: only keys CLI.md lists are relied on; a missing key is an error naming it, so a
//! contract break shows up as a clear test failure rather than a zero.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// Parses CLI output as JSON, with the text in the error.
pub fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("vxnet printed invalid JSON: {text:?}"))
}

/// `Name` of every network in `network ls --format json` (or `inspect`) output, sorted.
pub fn network_names(ls_json: &str) -> Result<Vec<String>> {
    let v = parse(ls_json)?;
    let arr = v
        .as_array()
        .ok_or_else(|| anyhow!("network list is not a JSON array: {ls_json}"))?;
    let mut names = arr
        .iter()
        .map(|n| {
            n.get("Name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("network object without Name: {n}"))
        })
        .collect::<Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Drop counters from `vxnet stats --format json`: the top-level `Drops` plus every network's
/// `Drops`, summed per reason.
pub fn drop_counts(stats_json: &str) -> Result<BTreeMap<String, u64>> {
    let v = parse(stats_json)?;
    let mut total = BTreeMap::new();
    let mut add = |drops: &Value| -> Result<()> {
        let map = drops
            .as_object()
            .ok_or_else(|| anyhow!("Drops is not an object: {drops}"))?;
        for (reason, n) in map {
            let n = n
                .as_u64()
                .ok_or_else(|| anyhow!("drop count {reason} is not a number: {n}"))?;
            *total.entry(reason.clone()).or_insert(0) += n;
        }
        Ok(())
    };
    add(v
        .get("Drops")
        .ok_or_else(|| anyhow!("stats JSON has no top-level Drops: {stats_json}"))?)?;
    let networks = v
        .get("networks")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("stats JSON has no networks array: {stats_json}"))?;
    for n in networks {
        if let Some(d) = n.get("Drops") {
            add(d)?;
        }
    }
    Ok(total)
}

/// Sum of the counters whose reason contains any of `needles` (case-insensitive).
pub fn sum_matching(drops: &BTreeMap<String, u64>, needles: &[&str]) -> u64 {
    drops
        .iter()
        .filter(|(reason, _)| {
            let r = reason.to_ascii_lowercase();
            needles.iter().any(|n| r.contains(&n.to_ascii_lowercase()))
        })
        .map(|(_, n)| n)
        .sum()
}

/// Sum of all counters.
pub fn sum_all(drops: &BTreeMap<String, u64>) -> u64 {
    drops.values().sum()
}

/// One network's field from `stats --format json` (e.g. `RxFrames`), by network name.
pub fn network_stat(stats_json: &str, network: &str, field: &str) -> Result<u64> {
    let v = parse(stats_json)?;
    v.get("networks")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|n| n.get("Name").and_then(Value::as_str) == Some(network))
        })
        .and_then(|n| n.get(field))
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no {field} for network {network} in stats: {stats_json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = r#"{"networks":[
        {"Name":"net1","VNI":4100,"RxFrames":10,"RxBytes":1000,"TxFrames":9,"TxBytes":900,
         "Drops":{"oversize":2,"unknown_vni":1}},
        {"Name":"net2","VNI":4200,"RxFrames":0,"RxBytes":0,"TxFrames":0,"TxBytes":0,"Drops":{}}],
      "Drops":{"truncated":3,"bad_flags":4,"unknown_vni":5,"unknown_vtep":6}}"#;

    #[test]
    fn drops_sum_top_level_and_networks() {
        let d = drop_counts(STATS).expect("valid stats");
        assert_eq!(d["unknown_vni"], 6);
        assert_eq!(d["oversize"], 2);
        assert_eq!(sum_all(&d), 21);
        assert_eq!(sum_matching(&d, &["TRUNC"]), 3);
        assert_eq!(sum_matching(&d, &["vtep", "source"]), 6);
        assert_eq!(sum_matching(&d, &["nothing"]), 0);
    }

    #[test]
    fn network_fields_by_name() {
        assert_eq!(
            network_stat(STATS, "net1", "RxFrames").expect("present"),
            10
        );
        assert!(network_stat(STATS, "net3", "RxFrames").is_err());
    }

    #[test]
    fn missing_drops_is_an_error() {
        assert!(drop_counts(r#"{"networks":[]}"#).is_err());
    }

    #[test]
    fn names_from_ls() {
        let ls = r#"[{"Name":"b","Id":"x"},{"Name":"a","Id":"y"}]"#;
        assert_eq!(network_names(ls).expect("valid"), vec!["a", "b"]);
        assert!(network_names("{}").is_err());
    }
}
