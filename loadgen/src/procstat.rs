//! The server's CPU time and memory from /proc (Linux).

/// Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`; 100 on Linux's ABIs).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime in ticks from the text of /proc/PID/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last ')'.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   123 kB` line of /proc/PID/status, in kB.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time the process has used so far, in microseconds.
pub fn cpu_us(pid: u32, ticks_per_second: u64) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| format!("{path}: cannot parse"))?;
    Ok(ticks * 1_000_000 / ticks_per_second)
}

/// (peak RSS = VmHWM, current RSS = VmRSS) in kB.
pub fn memory_kb(pid: u32) -> Result<(Option<u64>, Option<u64>), String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok((
        parse_status_kb(&text, "VmHWM"),
        parse_status_kb(&text, "VmRSS"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_lines() {
        let status = "Name:\tjava\nVmPeak:\t 4000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  99 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(123_456));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(99));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        let t = clock_ticks_per_second();
        assert!(cpu_us(pid, t).is_ok());
        let (hwm, rss) = memory_kb(pid).unwrap();
        assert!(hwm.unwrap() >= 1 && rss.unwrap() >= 1);
    }
}
