//! `--server-metrics`: reads rzk's Prometheus endpoint before and after the measured window
//! and reports the mean time requests spent in each pipeline stage, so a latency figure
//! comes with where it went. Only rzk serves `rzk_stage_seconds`; against another server the
//! flag reports that it found no stages.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sum (seconds) and count of `rzk_stage_seconds` per stage, as scraped.
pub type StageTotals = BTreeMap<String, (f64, u64)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMean {
    /// Requests that passed the stage in the window.
    pub count: u64,
    pub mean_us: f64,
}

/// The pipeline's stages in order; scraped stages outside this list follow in name order.
const STAGE_ORDER: [&str; 6] = ["queue", "prep", "log", "quorum", "apply", "reply"];

pub fn fetch(url: &str) -> Result<StageTotals, String> {
    let response = minreq::get(url)
        .with_timeout(Duration::from_secs(5).as_secs())
        .send()
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status_code != 200 {
        return Err(format!("{url}: HTTP {}", response.status_code));
    }
    let text = response.as_str().map_err(|e| format!("{url}: {e}"))?;
    Ok(parse(text))
}

/// Picks `rzk_stage_seconds_sum{stage="x"} v` and `..._count{...} v` out of the text format.
pub fn parse(text: &str) -> StageTotals {
    let mut totals = StageTotals::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("rzk_stage_seconds_") else {
            continue;
        };
        let (kind, rest) = match rest.split_once("{stage=\"") {
            Some(split) => split,
            None => continue,
        };
        let Some((stage, value)) = rest.split_once("\"}") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = totals.entry(stage.to_owned()).or_insert((0.0, 0));
        match kind {
            "sum" => entry.0 = value,
            "count" => entry.1 = value as u64,
            _ => {}
        }
    }
    totals
}

/// Means over what happened between two scrapes.
pub fn window(before: &StageTotals, after: &StageTotals) -> BTreeMap<String, StageMean> {
    after
        .iter()
        .filter_map(|(stage, &(sum, count))| {
            let (sum0, count0) = before.get(stage).copied().unwrap_or((0.0, 0));
            let n = count.checked_sub(count0)?;
            (n > 0).then(|| {
                (
                    stage.clone(),
                    StageMean {
                        count: n,
                        mean_us: (sum - sum0) / n as f64 * 1e6,
                    },
                )
            })
        })
        .collect()
}

/// "queue 12.0 · prep 8.1 · …" in pipeline order.
pub fn describe(stages: &BTreeMap<String, StageMean>) -> String {
    let mut names: Vec<&String> = stages.keys().collect();
    names.sort_by_key(|n| {
        (
            STAGE_ORDER
                .iter()
                .position(|s| s == n)
                .unwrap_or(usize::MAX),
            n.to_string(),
        )
    });
    names
        .iter()
        .map(|n| format!("{n} {:.1}", stages[*n].mean_us))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_over_the_window() {
        let before = parse(
            "rzk_stage_seconds_sum{stage=\"log\"} 1.0\nrzk_stage_seconds_count{stage=\"log\"} 10\n\
             rzk_stage_seconds_bucket{stage=\"log\",le=\"0.1\"} 10\n",
        );
        let after = parse(
            "# TYPE rzk_stage_seconds histogram\nrzk_stage_seconds_sum{stage=\"log\"} 1.002\n\
             rzk_stage_seconds_count{stage=\"log\"} 30\nrzk_stage_seconds_sum{stage=\"queue\"} 0.001\n\
             rzk_stage_seconds_count{stage=\"queue\"} 20\nrzk_stage_seconds_count{stage=\"idle\"} 0\n",
        );
        let w = window(&before, &after);
        assert_eq!(w["log"].count, 20);
        assert!((w["log"].mean_us - 100.0).abs() < 1e-6);
        assert!((w["queue"].mean_us - 50.0).abs() < 1e-6);
        assert!(!w.contains_key("idle"));
        assert_eq!(describe(&w), "queue 50.0 · log 100.0");
    }
}
