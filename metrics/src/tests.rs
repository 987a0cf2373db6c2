use super::*;

fn fresh(name: &str) -> Distribution {
    Distribution::new(name, "test", latency_buckets())
}

#[test]
fn quantiles_land_in_the_right_bucket_and_never_past_the_extremes() {
    let d = fresh("q");
    assert_eq!(d.quantile(0.5), 0.0, "empty");
    for _ in 0..90 {
        d.observe(100e-6);
    }
    for _ in 0..10 {
        d.observe(5e-3);
    }
    let p50 = d.quantile(0.5);
    assert!((80e-6..=160e-6).contains(&p50), "p50 {p50}");
    let p99 = d.quantile(0.99);
    assert!((2.56e-3..=5e-3).contains(&p99), "p99 {p99}");
    assert_eq!(d.min(), 100e-6);
    assert_eq!(d.max(), 5e-3);
    assert_eq!(d.count(), 100);
}

#[test]
fn huge_values_report_the_max() {
    let d = fresh("huge");
    d.observe(1000.0);
    assert_eq!(d.quantile(0.99), 1000.0);
}

#[test]
fn mntr_lines_use_zookeeper_names_and_units() {
    let d = fresh("m");
    d.observe(0.002);
    d.observe(0.004);
    let mut out = Vec::new();
    d.zk_mntr("fsynctime", 1e3, &mut out);
    let get = |k: &str| out.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(get("zk_avg_fsynctime"), "3");
    assert_eq!(get("zk_min_fsynctime"), "2");
    assert_eq!(get("zk_max_fsynctime"), "4");
    assert_eq!(get("zk_cnt_fsynctime"), "2");
    assert_eq!(get("zk_sum_fsynctime"), "6");
}

#[test]
fn prometheus_text_has_gauges_summaries_and_histograms() {
    let m = metrics();
    m.stage(Stage::Log).observe(0.001);
    m.request(OpCode::Create.code(), true, Duration::from_micros(300));
    let mntr = vec![
        ("zk_version".to_owned(), "3.9.3-rzk".to_owned()),
        ("zk_znode_count".to_owned(), "5".to_owned()),
        ("zk_avg_fsynctime".to_owned(), "0".to_owned()),
    ];
    let text = m.render_prometheus(&mntr);
    assert!(
        text.contains("# TYPE znode_count gauge\nznode_count 5\n"),
        "{text}"
    );
    assert!(
        !text.contains("zk_version") && !text.contains("\nversion "),
        "{text}"
    );
    assert!(
        !text.contains("avg_fsynctime"),
        "summary lines become summaries"
    );
    assert!(text.contains("# TYPE fsynctime summary"));
    assert!(text.contains("fsynctime{quantile=\"0.5\"}"));
    assert!(
        text.contains("rzk_stage_seconds_bucket{stage=\"log\",le=\"0.00128\"}"),
        "{text}"
    );
    assert!(text.contains("rzk_request_seconds_count{op=\"create\"}"));
    assert!(text.contains("updatelatency_count"));
}

#[test]
fn every_stage_has_its_own_series() {
    let m = metrics();
    for stage in Stage::ALL {
        assert_eq!(
            m.stage(stage).histogram.get_sample_count(),
            m.stage(stage).count()
        );
    }
    assert_eq!(op_name(OpCode::GetData.code()), "getData");
    assert_eq!(op_name(9999), "unknown");
    assert_eq!(op_name(i32::MIN), "unknown");
    assert_eq!(op_name(OpCode::CloseSession.code()), "closeSession");
    for (code, name) in OPS {
        assert_eq!(
            op_name(code.code()),
            *name,
            "every opcode finds its own slot"
        );
    }
}
