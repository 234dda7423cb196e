//! The command line under hostile and careless use: every failure is one line on stderr with a
//! non-zero exit and `--out` untouched; output files cannot be redirected, devices and FIFOs are
//! written through, interrupted runs leave nothing behind, and the environment's mistakes are
//! named.
#![cfg(feature = "cli")]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
        let d = std::env::temp_dir().join(format!("gpuconv-hard-{name}-{}", std::process::id()));
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
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts a failed run: non-zero exit, exactly one line `gpuconv: …` containing `expect`.
fn assert_one_line_failure(label: &str, o: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "{label}: expected failure, stderr {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("gpuconv: "),
        "{label}: expected one line, got {stderr:?}"
    );
    assert!(
        lines[0].to_lowercase().contains(&expect.to_lowercase()),
        "{label}: {:?} lacks {expect:?}",
        lines[0]
    );
}

/// The small inputs of the issue's reproducers: X 1×2×5×5, W 3×2×3×3.
fn inputs(dir: &Dir) -> (String, String, ConvProblem, Vec<f32>, Vec<f32>) {
    let pb = ConvProblem::new(&[1, 2, 5, 5], &[3, 2, 3, 3], ConvParams::default()).unwrap();
    let mut rng = SplitMix64::new(9);
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    (
        dir.save("x.npy", &pb.x_shape(), &x),
        dir.save("w.npy", &pb.w_shape(), &w),
        pb,
        x,
        w,
    )
}

#[test]
fn wrapping_padding_fails_in_one_line_and_out_stays() {
    let dir = Dir::new("wrap");
    let (xf, wf, ..) = inputs(&dir);
    let out = dir.path("y.npy");
    std::fs::write(&out, b"sentinel").unwrap();
    for device in ["cpu", "gpu"] {
        for op in ["forward", "weight-grad", "input-grad"] {
            let mut args = vec!["run", "--op", op, "--device", device, "--padding"];
            args.push("18446744073709551615");
            match op {
                "forward" => args.extend(["--x", &xf, "--w", &wf]),
                "weight-grad" => args.extend(["--x", &xf, "--dy", &xf, "--w-shape", "3,2,3,3"]),
                _ => args.extend(["--dy", &xf, "--w", &wf, "--x-shape", "1,2,5,5"]),
            }
            args.extend(["--out", out.to_str().unwrap()]);
            let o = bin().args(&args).output().unwrap();
            assert_one_line_failure(&format!("{device} {op}"), &o, "padding");
            assert_eq!(std::fs::read(&out).unwrap(), b"sentinel");
        }
    }
    // A header-only .npy whose shape wraps to zero elements.
    let bad = dir.path("wrap.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296, 4294967296), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    std::fs::write(&bad, bytes).unwrap();
    for device in ["cpu", "gpu"] {
        let o = bin()
            .args(["run", "--op", "forward", "--device", device, "--x"])
            .arg(&bad)
            .args(["--w", &wf, "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert_one_line_failure(device, &o, "elements");
        assert_eq!(std::fs::read(&out).unwrap(), b"sentinel");
    }
}

#[test]
fn out_through_a_symlink_replaces_the_link_not_its_target() {
    let dir = Dir::new("link");
    let (xf, wf, pb, x, w) = inputs(&dir);
    let victim = dir.path("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let out = dir.path("y.npy");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let o = bin()
        .args([
            "run", "--op", "forward", "--device", "cpu", "--x", &xf, "--w", &wf,
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&out)
        .unwrap()
        .file_type()
        .is_file());
    let y = npy::read(&out).unwrap();
    assert_close(
        "through a link",
        &y.data,
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
    // Nothing left beside it.
    assert_eq!(dir.entries(), ["victim.txt", "w.npy", "x.npy", "y.npy"]);
}

#[test]
fn devices_and_fifos_are_written_through_not_replaced() {
    let dir = Dir::new("dev");
    let (xf, wf, pb, x, w) = inputs(&dir);
    for device in ["cpu", "gpu"] {
        let o = bin()
            .args([
                "run", "--op", "forward", "--device", device, "--x", &xf, "--w", &wf,
            ])
            .args(["--out", "/dev/null"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }
    let fifo = dir.path("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = bin()
        .args([
            "run", "--op", "forward", "--device", "cpu", "--x", &xf, "--w", &wf,
        ])
        .arg("--out")
        .arg(&fifo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = reader.join().unwrap();
    let y = npy::read_from(&bytes[..], Path::new("fifo")).unwrap();
    assert_close(
        "through a FIFO",
        &y.data,
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn out_of_memory_on_the_cpu_is_one_line() {
    let dir = Dir::new("oom");
    let one = dir.save("one.npy", &[1, 1, 1, 1], &[1.0]);
    let out = dir.path("y.npy");
    // Under a 4 GB address-space limit the 32001×32001 output cannot be allocated.
    let cmd = format!(
        "ulimit -v 4000000 && exec '{}' run --op forward --device cpu --x '{one}' --w '{one}' --padding 16000 --out '{}'",
        env!("CARGO_BIN_EXE_gpuconv"),
        out.display()
    );
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert_one_line_failure("cpu forward under ulimit", &o, "memory");
    assert!(!out.exists());
}

#[test]
fn an_interrupted_write_leaves_no_temporary_file() {
    let dir = Dir::new("sigint");
    let one = dir.save("one.npy", &[1, 1, 1, 1], &[1.0]);
    let out = dir.path("y.npy");
    // A 576 MB output: the reference computes it, then writes it for long enough to interrupt.
    let mut child = bin()
        .args([
            "run", "--op", "forward", "--device", "cpu", "--x", &one, "--w", &one,
        ])
        .args(["--padding", "6000", "--out", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let tmp = loop {
        if let Some(t) = dir.entries().into_iter().find(|e| e.ends_with(".tmp")) {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no temporary file appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(tmp.starts_with(".y.npy."), "{tmp}");
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        dir.entries(),
        ["one.npy"],
        "a temporary file or --out was left behind"
    );
}

#[test]
fn environment_mistakes_are_named_in_one_line() {
    let dir = Dir::new("env");
    let (xf, wf, ..) = inputs(&dir);
    let out = dir.path("y.npy");
    let run = |vars: &[(&str, &str)]| {
        let mut c = bin();
        c.args(["run", "--op", "forward", "--x", &xf, "--w", &wf])
            .args(["--out", out.to_str().unwrap()]);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&[("WGPU_BACKEND", "vulkann")]);
    assert_one_line_failure("bogus backend", &o, "WGPU_BACKEND");
    for (name, value) in [
        ("GPUCONV_TILE", "32,x,8"),
        ("GPUCONV_BLOCK", "on"),
        ("GPUCONV_SHADER_CHECKS", "fast"),
    ] {
        let o = run(&[(name, value)]);
        assert_one_line_failure(name, &o, name);
    }
    assert!(!out.exists());
    // A missing argument is named.
    let o = bin().args(["run", "--op", "forward"]).output().unwrap();
    assert_one_line_failure("missing --out", &o, "--out");
    // Without XDG_RUNTIME_DIR a GPU run prints nothing, and a failing one exactly one line.
    let o = bin()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["run", "--op", "forward", "--x", &xf, "--w", &wf])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bin()
        .env_remove("XDG_RUNTIME_DIR")
        .args([
            "run", "--op", "forward", "--groups", "2", "--x", &xf, "--w", &wf,
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_failure("groups without XDG_RUNTIME_DIR", &o, "groups");
}

#[test]
fn bench_inputs_and_outputs_are_checked_first() {
    let dir = Dir::new("bench");
    let suite = |body: &str| {
        let p = dir.path("suite.json");
        std::fs::write(&p, body).unwrap();
        p
    };
    let shape = |extra: &str| {
        format!(
            r#"[{{"name": "s", "n": 1, "c": 4, "h": 6, "w": 6, "k": 4, "r": 3, "s": 3{extra}}}]"#
        )
    };
    let bench = |file: &Path, more: &[&str]| {
        bin()
            .args([
                "bench",
                "--devices",
                "cpu",
                "--repeats",
                "1",
                "--min-time-ms",
                "0",
                "--shapes",
            ])
            .arg(file)
            .args(more)
            .output()
            .unwrap()
    };
    let o = bench(&suite(&shape(r#", "stide": [2, 2]"#)), &[]);
    assert_one_line_failure("unknown key", &o, "stide");
    let o = bench(&suite(&shape(r#", "groups": 0"#)), &[]);
    assert_one_line_failure("groups 0", &o, "groups must be at least 1");
    let o = bench(&suite(&shape(r#", "groups": 3"#)), &[]);
    assert_one_line_failure("groups 3", &o, "groups=3 does not divide C=4");
    // An output path that cannot be written fails before any timing.
    let start = Instant::now();
    let o = bench(
        &suite(&shape("")),
        &["--json", "/nonexistent-dir/out.jsonl"],
    );
    assert_one_line_failure("bad --json", &o, "nonexistent-dir");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A shape name with markup stays text in the SVG.
    let evil = r#"[{"name": "a</title><script>alert(1)</script>", "n": 1, "c": 4, "h": 6, "w": 6, "k": 4, "r": 3, "s": 3}]"#;
    let plot = dir.path("plot.svg");
    let o = bench(&suite(evil), &["--plot", plot.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&plot).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(doc.descendants().all(|n| n.tag_name().name() != "script"));
    assert!(svg.contains("&lt;script&gt;"));
}
