//! The `gpuconv run` contract, driven as the conformance suite drives it: .npy in, .npy out,
//! one-line errors, and an --out file that is never touched on failure.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_close, SplitMix64};
use gpuconv::cpu::reference;
use gpuconv::{npy, ConvParams, ConvProblem};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpuconv"));
    c.env_remove("RUST_BACKTRACE");
    c
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("gpuconv-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn save(&self, name: &str, shape: &[usize], data: &[f32]) -> String {
        let p = self.path(name);
        std::fs::write(&p, npy::encode(shape, data)).unwrap();
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// An .npy file with an arbitrary descr and raw payload.
fn raw_npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Runs a command that must succeed and reads the .npy it wrote to `out`.
fn run_ok(args: &[&str], out: &str) -> npy::Array {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    npy::read(Path::new(out)).unwrap()
}

fn conv_flags(params: &ConvParams) -> Vec<String> {
    let [t, l, b, r] = params.padding;
    vec![
        "--stride".into(),
        format!("{},{}", params.stride[0], params.stride[1]),
        "--padding".into(),
        format!("{t},{l},{b},{r}"),
        "--dilation".into(),
        format!("{},{}", params.dilation[0], params.dilation[1]),
        "--groups".into(),
        params.groups.to_string(),
    ]
}

#[test]
fn every_op_on_both_devices_matches_the_reference() {
    let dir = Dir::new("ops");
    let mut rng = SplitMix64::new(77);
    let params = ConvParams::default()
        .stride(2, 1)
        .padding_tlbr(1, 0, 2, 1)
        .dilation(1, 2)
        .groups(2);
    let pb = ConvProblem::new(&[2, 4, 9, 7], &[6, 2, 3, 2], params).unwrap();
    let (x, w, b, dy) = (
        rng.tensor(pb.x_len()),
        rng.tensor(pb.w_len()),
        rng.tensor(pb.k),
        rng.tensor(pb.y_len()),
    );
    let xf = dir.save("x.npy", &pb.x_shape(), &x);
    let wf = dir.save("w.npy", &pb.w_shape(), &w);
    let bf = dir.save("b.npy", &[pb.k], &b);
    let dyf = dir.save("dy.npy", &pb.y_shape(), &dy);
    let xs = pb.x_shape().map(|d| d.to_string()).join(",");
    let ws = pb.w_shape().map(|d| d.to_string()).join(",");
    let flags = conv_flags(&params);
    for device in ["cpu", "gpu"] {
        let out = dir.path(&format!("out-{device}.npy")).display().to_string();
        let cases: Vec<(Vec<&str>, Vec<usize>, Vec<f32>)> = vec![
            (
                vec!["--op", "forward", "--x", &xf, "--w", &wf, "--b", &bf],
                pb.y_shape().to_vec(),
                reference::forward(&pb, &x, &w, Some(&b)).unwrap(),
            ),
            (
                vec![
                    "--op",
                    "input-grad",
                    "--dy",
                    &dyf,
                    "--w",
                    &wf,
                    "--x-shape",
                    &xs,
                ],
                pb.x_shape().to_vec(),
                reference::input_grad(&pb, &dy, &w).unwrap(),
            ),
            (
                vec![
                    "--op",
                    "weight-grad",
                    "--dy",
                    &dyf,
                    "--x",
                    &xf,
                    "--w-shape",
                    &ws,
                ],
                pb.w_shape().to_vec(),
                reference::weight_grad(&pb, &dy, &x).unwrap(),
            ),
            (
                vec!["--op", "bias-grad", "--dy", &dyf],
                vec![pb.k],
                reference::bias_grad(&pb.y_shape(), &dy).unwrap(),
            ),
        ];
        for (args, shape, want) in cases {
            let mut cmd = bin();
            cmd.arg("run")
                .args(&args)
                .args(["--device", device, "--out", &out]);
            if args[1] != "bias-grad" {
                cmd.args(&flags);
            }
            let o = cmd.output().unwrap();
            assert!(
                o.status.success(),
                "{device} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let got = npy::read(Path::new(&out)).unwrap();
            assert_eq!(got.shape, shape, "{device} {args:?}");
            assert_close(&format!("cli {device} {}", args[1]), &got.data, &want);
        }
    }
}

#[test]
fn f64_input_is_converted_and_device_defaults_to_gpu() {
    let dir = Dir::new("f64");
    let x: Vec<f64> = (0..9).map(|i| i as f64 + 0.25).collect();
    let w: Vec<f64> = vec![1.0, -2.0, 0.5, 3.0];
    let bytes = |v: &[f64]| v.iter().flat_map(|a| a.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(
        dir.path("x.npy"),
        raw_npy("<f8", "(1, 1, 3, 3)", &bytes(&x)),
    )
    .unwrap();
    std::fs::write(
        dir.path("w.npy"),
        raw_npy("<f8", "(1, 1, 2, 2)", &bytes(&w)),
    )
    .unwrap();
    let out = dir.path("y.npy");
    let o = run(&[
        "run",
        "--op",
        "forward",
        "--x",
        dir.path("x.npy").to_str().unwrap(),
        "--w",
        dir.path("w.npy").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = npy::read(&out).unwrap();
    assert_eq!(y.shape, vec![1, 1, 2, 2]);
    let pb = ConvProblem::new(&[1, 1, 3, 3], &[1, 1, 2, 2], ConvParams::default()).unwrap();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    assert_close(
        "f64 forward",
        &y.data,
        &reference::forward(&pb, &x32, &w32, None).unwrap(),
    );
}

/// Runs a failing invocation against a pre-existing --out file and checks the contract.
fn assert_fails_cleanly(dir: &Dir, label: &str, args: &[String], expect_in_message: &str) {
    let out = dir.path("existing-out.npy");
    let sentinel = b"pre-existing output: must stay byte-for-byte".to_vec();
    std::fs::write(&out, &sentinel).unwrap();
    let o = bin()
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "{label}: expected failure, stderr {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{label}: {stderr}"
    );
    // Inputs are validated before any device is opened, so not even driver chatter appears.
    let ours: Vec<&str> = stderr.lines().collect();
    assert!(
        ours.len() == 1 && ours[0].starts_with("gpuconv: "),
        "{label}: expected one line, stderr {stderr}"
    );
    assert!(
        ours[0]
            .to_lowercase()
            .contains(&expect_in_message.to_lowercase()),
        "{label}: message {:?} lacks {expect_in_message:?}",
        ours[0]
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        sentinel,
        "{label}: --out was modified"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{label}: temporary files left behind");
}

#[test]
fn invalid_inputs_fail_with_one_line_and_leave_out_untouched() {
    let dir = Dir::new("bad");
    let mut rng = SplitMix64::new(5);
    let x = dir.save("x.npy", &[1, 6, 5, 5], &rng.tensor(150));
    let w = dir.save("w.npy", &[4, 6, 3, 3], &rng.tensor(216));
    let w3 = dir.save("w3.npy", &[4, 3, 3, 3], &rng.tensor(108));
    let w_k3 = dir.save("wk3.npy", &[3, 3, 3, 3], &rng.tensor(81));
    let w_big = dir.save("wbig.npy", &[4, 6, 7, 7], &rng.tensor(4 * 6 * 49));
    let b5 = dir.save("b5.npy", &[5], &rng.tensor(5));
    let dy = dir.save("dy.npy", &[1, 4, 3, 3], &rng.tensor(36));
    let dy_bad = dir.save("dybad.npy", &[1, 4, 3, 2], &rng.tensor(24));
    let x3 = dir.save("x3.npy", &[6, 5, 5], &rng.tensor(150));
    let zero = dir.save("zero.npy", &[1, 0, 5, 5], &[]);
    std::fs::write(
        dir.path("int.npy"),
        raw_npy("<i4", "(1, 6, 5, 5)", &[0u8; 600]),
    )
    .unwrap();
    let int = dir.path("int.npy").display().to_string();
    let full = npy::encode(&[1, 6, 5, 5], &rng.tensor(150));
    std::fs::write(dir.path("trunc.npy"), &full[..full.len() - 10]).unwrap();
    let trunc = dir.path("trunc.npy").display().to_string();
    std::fs::write(dir.path("garbage.npy"), b"this is not an npy file at all").unwrap();
    let garbage = dir.path("garbage.npy").display().to_string();
    let missing = dir.path("missing.npy").display().to_string();

    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "groups do not divide C",
            s(&[
                "run", "--op", "forward", "--x", &x, "--w", &w3, "--groups", "4",
            ]),
            "groups=4 does not divide C=6",
        ),
        (
            "groups do not divide K",
            s(&[
                "run", "--op", "forward", "--x", &x, "--w", &w_k3, "--groups", "2",
            ]),
            "groups=2 does not divide K=3",
        ),
        (
            "weight channels",
            s(&["run", "--op", "forward", "--x", &x, "--w", &w3]),
            "C/groups",
        ),
        (
            "zero stride",
            s(&[
                "run", "--op", "forward", "--x", &x, "--w", &w, "--stride", "0,1",
            ]),
            "stride",
        ),
        (
            "zero dilation",
            s(&[
                "run",
                "--op",
                "forward",
                "--x",
                &x,
                "--w",
                &w,
                "--dilation",
                "1,0",
            ]),
            "dilation",
        ),
        (
            "zero groups",
            s(&[
                "run", "--op", "forward", "--x", &x, "--w", &w, "--groups", "0",
            ]),
            "groups",
        ),
        (
            "empty output",
            s(&["run", "--op", "forward", "--x", &x, "--w", &w_big]),
            "empty output",
        ),
        (
            "bias length",
            s(&["run", "--op", "forward", "--x", &x, "--w", &w, "--b", &b5]),
            "bias",
        ),
        (
            "zero size",
            s(&["run", "--op", "forward", "--x", &zero, "--w", &w]),
            "zero-sized",
        ),
        (
            "rank",
            s(&["run", "--op", "forward", "--x", &x3, "--w", &w]),
            "4 dimensions",
        ),
        (
            "dy shape",
            s(&[
                "run",
                "--op",
                "input-grad",
                "--dy",
                &dy_bad,
                "--w",
                &w,
                "--x-shape",
                "1,6,5,5",
            ]),
            "requires [1, 4, 3, 3]",
        ),
        (
            "dy shape wgrad",
            s(&[
                "run",
                "--op",
                "weight-grad",
                "--dy",
                &dy_bad,
                "--x",
                &x,
                "--w-shape",
                "4,6,3,3",
            ]),
            "requires [1, 4, 3, 3]",
        ),
        (
            "bad x-shape",
            s(&[
                "run",
                "--op",
                "input-grad",
                "--dy",
                &dy,
                "--w",
                &w,
                "--x-shape",
                "1,6,5",
            ]),
            "x-shape",
        ),
        (
            "bad stride text",
            s(&[
                "run", "--op", "forward", "--x", &x, "--w", &w, "--stride", "a,1",
            ]),
            "stride",
        ),
        (
            "bad padding count",
            s(&[
                "run",
                "--op",
                "forward",
                "--x",
                &x,
                "--w",
                &w,
                "--padding",
                "1,1,1",
            ]),
            "padding",
        ),
        (
            "int dtype",
            s(&["run", "--op", "forward", "--x", &int, "--w", &w]),
            "dtype",
        ),
        (
            "truncated",
            s(&["run", "--op", "forward", "--x", &trunc, "--w", &w]),
            "truncated",
        ),
        (
            "malformed",
            s(&["run", "--op", "forward", "--x", &garbage, "--w", &w]),
            "not a valid .npy",
        ),
        (
            "missing file",
            s(&["run", "--op", "forward", "--x", &missing, "--w", &w]),
            "missing.npy",
        ),
        (
            "missing flag",
            s(&["run", "--op", "input-grad", "--dy", &dy, "--w", &w]),
            "x-shape",
        ),
        (
            "bias-grad rank",
            s(&["run", "--op", "bias-grad", "--dy", &x3]),
            "4 dimensions",
        ),
        (
            "unknown op",
            s(&["run", "--op", "sideways", "--x", &x]),
            "sideways",
        ),
    ];
    for device in ["cpu", "gpu"] {
        for (label, args, msg) in &cases {
            let mut args = args.clone();
            args.extend(["--device".to_string(), device.to_string()]);
            assert_fails_cleanly(&dir, &format!("{label} ({device})"), &args, msg);
        }
    }
}

#[test]
fn without_an_adapter_the_message_says_how_to_get_one() {
    let dir = Dir::new("noadapter");
    let x = dir.save("x.npy", &[1, 1, 3, 3], &[1.0; 9]);
    let w = dir.save("w.npy", &[1, 1, 2, 2], &[1.0; 4]);
    let out = dir.path("y.npy");
    let o = bin()
        .args([
            "run",
            "--op",
            "forward",
            "--x",
            &x,
            "--w",
            &w,
            "--out",
            out.to_str().unwrap(),
        ])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn info_names_the_adapter() {
    let o = run(&["info"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("gpuconv picks:"), "{stdout}");
    assert!(
        stdout.contains("max_storage_buffer_binding_size"),
        "{stdout}"
    );
}

#[test]
fn sgemm_ceiling_runs_checked_and_rejects_bad_sizes() {
    let out = run(&["sgemm", "--size", "66", "--repeats", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sgemm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ceiling (best tile)"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let bad = run(&["sgemm", "--size", "0"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--size 0"), "{stderr}");
}

/// `gpuconv bench` on a tiny suite: every (op, device) gets a checked, timed JSON record, and a
/// measurement keeps running until `--min-time-ms` is spent (a microsecond op runs many times).
#[test]
fn bench_writes_checked_records_and_times_short_ops_repeatedly() {
    let dir = Dir::new("bench");
    let shapes = dir.path("shapes.json");
    std::fs::write(
        &shapes,
        r#"[{"name": "tiny", "n": 1, "c": 4, "h": 6, "w": 5, "k": 3, "r": 3, "s": 3,
             "stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}]"#,
    )
    .unwrap();
    let json = dir.path("out.jsonl");
    let svg = dir.path("out.svg");
    let records = |min_time: &str| {
        let out = run(&[
            "bench",
            "--shapes",
            shapes.to_str().unwrap(),
            "--repeats",
            "2",
            "--min-time-ms",
            min_time,
            "--gpu-warmup-ms",
            "0",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bench failed: {stderr}");
        std::fs::read_to_string(&json)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let quick = records("0");
    for op in ["forward", "input-grad", "weight-grad"] {
        for device in ["cpu", "gpu", "gpu-e2e"] {
            let r = quick
                .iter()
                .find(|r| r["op"] == op && r["device"] == device)
                .unwrap_or_else(|| panic!("no record for {op} on {device}"));
            let (min, median, max) = (
                r["min_ms"].as_f64().unwrap(),
                r["median_ms"].as_f64().unwrap(),
                r["max_ms"].as_f64().unwrap(),
            );
            assert!(0.0 < min && min <= median && median <= max, "{r}");
            assert!(r["rel_err"].as_f64().unwrap() < 1e-5, "{r}");
            assert_eq!(
                r["runs"], 2,
                "--min-time-ms 0 times exactly --repeats runs: {r}"
            );
        }
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let long = records("100");
    let cpu = long
        .iter()
        .find(|r| r["op"] == "forward" && r["device"] == "cpu")
        .unwrap();
    assert!(
        cpu["runs"].as_u64().unwrap() > 10,
        "a microsecond op timed for 100 ms runs more than 10 times: {cpu}"
    );
}

#[test]
fn explain_draws_each_part_alone_and_the_chosen_inputs() {
    let dir = Dir::new("explain-svg");
    let path = dir.path("x.svg");
    let svg = |extra: &[&str]| -> String {
        let mut args = vec![
            "explain",
            "--x-shape",
            "1,1,5,5",
            "--w-shape",
            "1,1,3,3",
            "--stride",
            "2,2",
            "--padding",
            "1",
            "--svg",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("--svg-part full"), "{text}");
        std::fs::read_to_string(&path).unwrap()
    };
    let count = |svg: &str, class: &str| svg.matches(&format!("class=\"{class}\"")).count();
    let all = svg(&[]);
    assert_eq!(count(&all, "weight-panel"), 9);
    assert_eq!(count(&all, "input-panel"), 25);
    assert_eq!(count(&all, "full-view"), 1);
    let weights = svg(&["--svg-part", "weights"]);
    assert_eq!(
        (
            count(&weights, "weight-panel"),
            count(&weights, "input-panel")
        ),
        (9, 0)
    );
    let inputs = svg(&["--svg-part", "inputs", "--inputs", "V7,V13"]);
    assert_eq!(
        (count(&inputs, "input-panel"), count(&inputs, "full-view")),
        (2, 0)
    );
    assert!(inputs.contains("data-input=\"V13\""));
    let full = svg(&["--svg-part", "full", "--inputs", "V13"]);
    assert_eq!(
        (count(&full, "full-view"), count(&full, "weight-panel")),
        (1, 0)
    );
    assert!(full.contains("class=\"full-view\" data-input=\"V13\""));
    // An unknown input name is one line naming it.
    let out = run(&[
        "explain",
        "--svg",
        path.to_str().unwrap(),
        "--inputs",
        "V99",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("V99"), "{err}");
}

#[test]
fn transposed_ops_run_on_both_devices_and_fail_cleanly() {
    use gpuconv::transposed::{self, Backend, TransposedProblem};
    let dir = Dir::new("transposed");
    let mut rng = SplitMix64::new(0x7a);
    let params = ConvParams::default().stride(2, 2).padding(1, 1).groups(2);
    let pb = TransposedProblem::new(&[2, 4, 5, 4], &[4, 3, 3, 3], params, [1, 0]).unwrap();
    let x = rng.tensor(pb.x_len());
    let w = rng.tensor(4 * 3 * 3 * 3);
    let b = rng.tensor(6);
    let dy = rng.tensor(pb.y_shape().iter().product());
    let (xp, wp, bp, dyp) = (
        dir.save("x.npy", &[2, 4, 5, 4], &x),
        dir.save("w.npy", &[4, 3, 3, 3], &w),
        dir.save("b.npy", &[6], &b),
        dir.save("dy.npy", &pb.y_shape(), &dy),
    );
    let out = dir.path("out.npy").display().to_string();
    let flags = [
        "--stride",
        "2",
        "--padding",
        "1",
        "--groups",
        "2",
        "--output-padding",
        "1,0",
    ];
    let want = [
        transposed::forward(Backend::Reference, &pb, &x, &w, Some(&b)).unwrap(),
        transposed::input_grad(Backend::Reference, &pb, &dy, &w).unwrap(),
        transposed::weight_grad(Backend::Reference, &pb, &dy, &x).unwrap(),
    ];
    for device in ["cpu", "gpu"] {
        let runs: [Vec<&str>; 3] = [
            vec![
                "--op",
                "transposed-forward",
                "--x",
                &xp,
                "--w",
                &wp,
                "--b",
                &bp,
            ],
            vec![
                "--op",
                "transposed-input-grad",
                "--dy",
                &dyp,
                "--w",
                &wp,
                "--x-shape",
                "2,4,5,4",
            ],
            vec![
                "--op",
                "transposed-weight-grad",
                "--dy",
                &dyp,
                "--x",
                &xp,
                "--w-shape",
                "4,3,3,3",
            ],
        ];
        for (args, want) in runs.iter().zip(&want) {
            let mut all = vec!["run", "--device", device];
            all.extend(args.iter().copied());
            all.extend(flags);
            all.extend(["--out", &out]);
            let o = run(&all);
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let got = npy::read(std::path::Path::new(&out)).unwrap();
            assert_close(&format!("{device} {args:?}"), &got.data, want);
        }
    }
    // Output padding not below the stride or the dilation: one line, --out untouched.
    std::fs::write(&out, b"keep").unwrap();
    for (bad, expect) in [
        (
            vec![
                "--op",
                "transposed-forward",
                "--x",
                &xp,
                "--w",
                &wp,
                "--stride",
                "2",
                "--output-padding",
                "2",
            ],
            "output padding",
        ),
        (
            vec![
                "--op",
                "forward",
                "--x",
                &xp,
                "--w",
                &wp,
                "--output-padding",
                "1",
            ],
            "--output-padding",
        ),
    ] {
        let mut all = vec!["run"];
        all.extend(bad);
        all.extend(["--out", &out]);
        let o = run(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.trim().lines().count() == 1 && err.contains(expect),
            "{err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    }
}

/// `--activation`, `--residual`, `--alpha` and `--beta` on forward and transposed-forward, on
/// both devices, against the f64 reference with the epilogue applied by its definition; bad
/// values fail with one line and leave --out untouched.
#[test]
fn fused_epilogue_flags_run_on_both_devices_and_fail_cleanly() {
    use gpuconv::epilogue::Addends;
    use gpuconv::transposed::{self, Backend, TransposedProblem};
    use gpuconv::{Activation, Epilogue};
    let dir = Dir::new("epilogue");
    let mut rng = SplitMix64::new(0xe9);
    let params = ConvParams::default().stride(2, 1).padding(1, 1);
    let pb = ConvProblem::new(&[2, 3, 7, 6], &[4, 3, 3, 3], params).unwrap();
    let tpb = TransposedProblem::new(&[2, 4, 4, 6], &[4, 3, 3, 3], params, [1, 0]).unwrap();
    let x = rng
        .tensor(pb.x_len())
        .iter()
        .map(|v| 3.0 * v)
        .collect::<Vec<_>>();
    let w = rng.tensor(pb.w_len());
    let b = rng.tensor(4);
    let z = rng.tensor(pb.y_len());
    let tx = rng.tensor(tpb.x_len());
    let tb = rng.tensor(3);
    let tz = rng.tensor(tpb.y_shape().iter().product());
    let (xp, wp, bp, zp) = (
        dir.save("x.npy", &pb.x_shape(), &x),
        dir.save("w.npy", &pb.w_shape(), &w),
        dir.save("b.npy", &[4], &b),
        dir.save("z.npy", &pb.y_shape(), &z),
    );
    let (txp, tbp, tzp) = (
        dir.save("tx.npy", &tpb.x_shape, &tx),
        dir.save("tb.npy", &[3], &tb),
        dir.save("tz.npy", &tpb.y_shape(), &tz),
    );
    let out = dir.path("out.npy").display().to_string();
    for (name, act) in [
        ("relu", Activation::Relu),
        ("leaky-relu:0.05", Activation::LeakyRelu { slope: 0.05 }),
        ("relu6", Activation::Relu6),
        ("clamp:-0.5,1.5", Activation::Clamp { lo: -0.5, hi: 1.5 }),
        ("gelu", Activation::Gelu),
        ("gelu-tanh", Activation::GeluTanh),
        ("silu", Activation::Silu),
        ("sigmoid", Activation::Sigmoid),
        ("tanh", Activation::Tanh),
        ("identity", Activation::Identity),
    ] {
        let epi = Epilogue {
            activation: act,
            alpha: 0.75,
            beta: -1.5,
        };
        let addends = Addends {
            bias: Some(&b),
            residual: Some(&z),
        };
        let want = reference::forward_fused(&pb, &x, &w, addends, &epi)
            .unwrap()
            .0;
        let t_addends = Addends {
            bias: Some(&tb),
            residual: Some(&tz),
        };
        let t_want =
            transposed::forward_fused(Backend::Reference, &tpb, &tx, &w, t_addends, &epi).unwrap();
        for device in ["cpu", "gpu"] {
            let epi_flags = ["--activation", name, "--alpha", "0.75", "--beta", "-1.5"];
            let mut args = vec!["run", "--device", device, "--op", "forward", "--x", &xp];
            args.extend(["--w", &wp, "--b", &bp, "--residual", &zp, "--out", &out]);
            args.extend(["--stride", "2,1", "--padding", "1"]);
            args.extend(epi_flags);
            let got = run_ok(&args, &out);
            assert_eq!(got.shape, pb.y_shape());
            assert_close(&format!("forward {name} on {device}"), &got.data, &want);

            let mut args = vec!["run", "--device", device, "--op", "transposed-forward"];
            args.extend(["--x", &txp, "--w", &wp, "--b", &tbp, "--residual", &tzp]);
            args.extend([
                "--stride",
                "2,1",
                "--padding",
                "1",
                "--output-padding",
                "1,0",
            ]);
            args.extend(["--out", &out]);
            args.extend(epi_flags);
            let got = run_ok(&args, &out);
            assert_close(
                &format!("transposed-forward {name} on {device}"),
                &got.data,
                &t_want,
            );
        }
    }
    // The epilogue changes the result (the check above is not vacuous).
    let plain = reference::forward(&pb, &x, &w, Some(&b)).unwrap();
    let relu = reference::forward_fused(
        &pb,
        &x,
        &w,
        Addends {
            bias: Some(&b),
            residual: None,
        },
        &Epilogue::new(Activation::Relu),
    )
    .unwrap()
    .0;
    assert_ne!(plain, relu);

    let base: Vec<String> = ["run", "--op", "forward", "--x", &xp, "--w", &wp]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = base.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "unknown activation",
            with(&["--activation", "swish"]),
            "swish",
        ),
        (
            "clamp order",
            with(&["--activation", "clamp:3,1"]),
            "lo=3 is above hi=1",
        ),
        (
            "leaky slope",
            with(&["--activation", "leaky-relu:x"]),
            "leaky-relu",
        ),
        ("alpha nan", with(&["--alpha", "nan"]), "--alpha"),
        ("beta text", with(&["--beta", "two"]), "--beta"),
        ("residual shape", with(&["--residual", &xp]), "residual z"),
        (
            "missing residual",
            with(&["--residual", "/nonexistent/z.npy"]),
            "z.npy",
        ),
        (
            "wrong op",
            vec![
                "run".into(),
                "--op".into(),
                "bias-grad".into(),
                "--dy".into(),
                zp.clone(),
                "--activation".into(),
                "relu".into(),
            ],
            "--activation applies to --op forward",
        ),
    ];
    for (label, args, expect) in cases {
        assert_fails_cleanly(&dir, label, &args, expect);
    }
}
