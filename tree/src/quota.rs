//! Quota statistics as ZooKeeper 3.8 keeps them: a path P has a quota when
//! `/zookeeper/quota{P}/zookeeper_limits` exists; the server then keeps
//! `/zookeeper/quota{P}/zookeeper_stats` at "count=N,bytes=M" for P's subtree (P included) on
//! every create, delete and setData under it, without changing that node's version or mzxid.
//! Limits are not enforced (ZooKeeper enforces them only with zookeeper.enforceQuota).

pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const LIMIT_NODE: &str = "zookeeper_limits";
pub const STAT_NODE: &str = "zookeeper_stats";

/// "/zookeeper/quota/a/b" → "/a/b" (`Quotas.trimQuotaPath`).
pub fn trim_quota_path(quota_dir: &str) -> &str {
    quota_dir.strip_prefix(QUOTA_ROOT).unwrap_or(quota_dir)
}

/// "/a/b" → "/zookeeper/quota/a/b/zookeeper_stats" (`Quotas.statPath`).
pub fn stat_path(quoted: &str) -> String {
    format!("{QUOTA_ROOT}{quoted}/{STAT_NODE}")
}

/// A `StatsTrack`: count and bytes first, then any other keys in the order they came.
pub struct StatsTrack {
    pub count: i64,
    pub bytes: i64,
    others: Vec<(String, String)>,
}

impl StatsTrack {
    pub fn new(count: i64, bytes: i64) -> Self {
        StatsTrack {
            count,
            bytes,
            others: Vec::new(),
        }
    }

    /// Parses "count=1,bytes=2" (separators `,` or `;`); unknown or unparsable values are
    /// kept as text, missing counts read as -1 as in ZooKeeper.
    pub fn parse(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut track = StatsTrack::new(-1, -1);
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (key, value.parse::<i64>()) {
                ("count", Ok(v)) => track.count = v,
                ("bytes", Ok(v)) => track.bytes = v,
                _ => track.others.push((key.to_owned(), value.to_owned())),
            }
        }
        track
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("count={},bytes={}", self.count, self.bytes);
        for (k, v) in &self.others {
            s.push(';');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip() {
        let t = StatsTrack::parse(b"count=3,bytes=-1");
        assert_eq!((t.count, t.bytes), (3, -1));
        assert_eq!(t.to_bytes(), b"count=3,bytes=-1");
        assert_eq!(trim_quota_path("/zookeeper/quota/q"), "/q");
        assert_eq!(stat_path("/q"), "/zookeeper/quota/q/zookeeper_stats");
    }
}
