//! PNG plots next to the JSON: the UDP loss curve of the rate sweep and the ping RTT CDF, one
//! line per mode, drawn by gnuplot (`gnuplot-nox`, see scripts/install-deps.sh) from data files
//! the bench writes beside them.
//!
//! Rules:
//! - For results `DIR/NAME.json` the files are `DIR/NAME-loss.png`, `DIR/NAME-rtt-cdf.png`, the
//!   data `DIR/NAME-<mode>-sweep.dat` and `DIR/NAME-<mode>-rtt.dat`, and the script
//!   `DIR/NAME-plots.gp`, kept so a plot can be redrawn or restyled by hand.
//! - Every plot's title carries the date and the CPU model: a picture without them is
//!   compared with the wrong one sooner or later.
//! - Plotting is best effort: without gnuplot the data files and script are still written, and
//!   the bench says so instead of failing the measurements.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::analysis::cdf;
use crate::report::Report;

/// Loss below this is drawn at this value: the loss axis is logarithmic (0.1 % and 1 % are the
/// thresholds that matter), where 0 has no place.
const LOSS_FLOOR_PCT: f64 = 0.001;

/// Writes the data files and the gnuplot script for `report`, runs gnuplot, and returns the
/// PNGs drawn, by what they show.
pub fn write_plots(report: &Report, json: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let stem = json
        .file_stem()
        .map_or_else(|| "bench".into(), |s| s.to_string_lossy().into_owned());
    let file = |suffix: &str| dir.join(format!("{stem}-{suffix}"));
    let facts = crate::report::machine_facts();
    let fact = |k: &str| {
        facts
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let subtitle = format!(
        "{} | {} | kernel {}",
        fact("date"),
        fact("cpu_model"),
        fact("kernel")
    );

    let mut loss_lines = Vec::new();
    let mut rtt_lines = Vec::new();
    for m in &report.modes {
        if !m.sweep.is_empty() {
            let path = file(&format!("{}-sweep.dat", m.mode));
            let mut text = String::from("# offered_kpps loss_percent received_kpps\n");
            for st in &m.sweep {
                let _ = writeln!(
                    text,
                    "{} {} {}",
                    st.offered_kpps,
                    st.loss_pct.max(LOSS_FLOOR_PCT),
                    st.received_kpps
                );
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            loss_lines.push((m.mode.clone(), path));
        }
        if !m.rtts_us.is_empty() {
            let path = file(&format!("{}-rtt.dat", m.mode));
            let mut text = String::from("# rtt_us fraction_at_or_below\n");
            for (v, f) in cdf(&m.rtts_us) {
                let _ = writeln!(text, "{v} {f}");
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            rtt_lines.push((format!("{} (n={})", m.mode, m.rtts_us.len()), path));
        }
    }

    let mut script = String::new();
    let mut drawn = Vec::new();
    let header = |s: &mut String, out: &Path, title: &str| {
        let _ = writeln!(
            s,
            "set terminal pngcairo size 1100,700 font \"sans,11\"\nset output {}\n\
             set title {}\nset grid\nset key top left box opaque",
            quote(&out.display().to_string()),
            quote(&format!("{title}\\n{subtitle}"))
        );
    };
    if !loss_lines.is_empty() {
        let out = file("loss.png");
        header(
            &mut script,
            &out,
            "vxnet-bench: UDP 64 B loss vs offered rate",
        );
        let _ = writeln!(
            script,
            "set logscale y\nset yrange [{LOSS_FLOOR_PCT}:100]\nset xrange [0:*]\n\
             set xlabel \"offered rate, thousand packets/s (iperf3 -u -l 64 -b)\"\n\
             set ylabel \"packets lost, % (log scale; 0 drawn at {LOSS_FLOOR_PCT})\"\n\
             set arrow from graph 0, first 0.1 to graph 1, first 0.1 nohead dt 2 lc \"gray40\"\n\
             set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc \"gray40\""
        );
        let _ = writeln!(
            script,
            "plot {}",
            plot_list(&loss_lines, "linespoints lw 2 pt 7")
        );
        let _ = writeln!(
            script,
            "unset arrow\nunset logscale\nunset xrange\nunset yrange"
        );
        drawn.push(("UDP loss curve".to_string(), out));
    }
    if !rtt_lines.is_empty() {
        let out = file("rtt-cdf.png");
        header(
            &mut script,
            &out,
            "vxnet-bench: ping RTT CDF, container to container",
        );
        let _ = writeln!(
            script,
            "set key bottom right box opaque\nset logscale x\nset yrange [0:1]\n\
             set xlabel \"round-trip time, microseconds (log scale)\"\n\
             set ylabel \"fraction of pings with RTT at most x\""
        );
        let _ = writeln!(script, "plot {}", plot_list(&rtt_lines, "lines lw 2"));
        drawn.push(("ping RTT CDF".to_string(), out));
    }
    if drawn.is_empty() {
        return Ok(drawn);
    }
    let script_path = file("plots.gp");
    std::fs::write(&script_path, &script)
        .with_context(|| format!("writing {}", script_path.display()))?;
    let out = Command::new("gnuplot")
        .arg(&script_path)
        .output()
        .with_context(|| {
            format!(
                "running gnuplot on {} (apt-get install -y gnuplot-nox)",
                script_path.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "gnuplot {} failed: {}",
            script_path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(drawn)
}

/// `'file' using 1:2 with STYLE title "mode", ...`
fn plot_list(lines: &[(String, PathBuf)], style: &str) -> String {
    lines
        .iter()
        .map(|(title, path)| {
            format!(
                "{} using 1:2 with {style} title {}",
                quote(&path.display().to_string()),
                quote(title)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A gnuplot double-quoted string (where `\n` is a line break); quotes and backslashes other
/// than an intended `\n` are escaped.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace("\\\\n", "\\n")
        .replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_line_breaks_and_escapes_quotes() {
        assert_eq!(quote("a\\nb"), "\"a\\nb\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote("C:\\x"), "\"C:\\\\x\"");
    }
}
