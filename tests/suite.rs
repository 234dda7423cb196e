//! The embedded benchmark suite loads and is the public suite; bad suite files are refused.
#![cfg(feature = "cli")]

use gpuconv::suite::{default_suite, parse};

#[test]
fn embedded_suite_is_valid() {
    let suite = default_suite();
    assert_eq!(suite.len(), 9);
    assert!(suite
        .iter()
        .any(|s| s.name == "depthwise-3x3" && s.groups == 256));
    for s in &suite {
        assert!(s.problem().unwrap().flops() > 0.0, "{}", s.name);
    }
}

#[test]
fn bad_suites_are_refused_with_the_shape_named() {
    assert!(parse("not json", "f.json")
        .unwrap_err()
        .to_string()
        .contains("f.json"));
    let bad =
        r#"[{"name": "odd", "n": 1, "c": 6, "h": 8, "w": 8, "k": 4, "r": 3, "s": 3, "groups": 4}]"#;
    let e = parse(bad, "f.json").unwrap_err().to_string();
    assert!(
        e.contains("odd") && e.contains("groups=4 does not divide C=6"),
        "{e}"
    );
}
