//! The tuning cache file, shared by the GPU tuner ([`crate::gpu::tune`]) and the CPU tuner
//! ([`crate::cpu::tune`]): one human-readable line per choice,
//! `key<TAB>op<TAB>problem<TAB>choice<TAB>median ms`, where the key names the adapter (or CPU),
//! its driver and gpuconv's version, so a line written on another machine or by another version
//! is kept but not used.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::problem::{ConvProblem, Op};
use crate::rng::SplitMix64;

/// Choices by (op, problem), each with its median time in ms.
pub(crate) type Choices<C> = HashMap<(Op, ConvProblem), (C, f64)>;

/// A problem as one token of the cache file: `n,c,h,w/k,cg,r,s/stride/top,left,bottom,right/dilation/groups`.
pub(crate) fn problem_key(pb: &ConvProblem) -> String {
    let p = pb.params;
    format!(
        "{},{},{},{}/{},{},{},{}/{},{}/{},{},{},{}/{},{}/{}",
        pb.n,
        pb.c,
        pb.h,
        pb.w,
        pb.k,
        pb.c_per_group(),
        pb.r,
        pb.s,
        p.stride[0],
        p.stride[1],
        p.padding[0],
        p.padding[1],
        p.padding[2],
        p.padding[3],
        p.dilation[0],
        p.dilation[1],
        p.groups
    )
}

pub(crate) fn parse_problem(text: &str) -> Option<ConvProblem> {
    let nums: Vec<Vec<usize>> = text
        .split('/')
        .map(|g| {
            g.split(',')
                .map(|v| v.parse().ok())
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<_>>()?;
    let [x, w, stride, pad, dil, groups] = nums.as_slice() else {
        return None;
    };
    let (&[sh, sw], &[t, l, b, r], &[dh, dw], &[g]) = (
        stride.as_slice(),
        pad.as_slice(),
        dil.as_slice(),
        groups.as_slice(),
    ) else {
        return None;
    };
    let params = crate::problem::ConvParams {
        stride: [sh, sw],
        padding: [t, l, b, r],
        dilation: [dh, dw],
        groups: g,
    };
    ConvProblem::new(x, w, params).ok()
}

fn op_of(name: &str) -> Option<Op> {
    [Op::Forward, Op::InputGrad, Op::WeightGrad, Op::BiasGrad]
        .into_iter()
        .find(|op| op.name() == name)
}

/// The first line of every cache file.
const HEADER: &str = "# gpuconv tuning cache: adapter or CPU<TAB>op<TAB>problem (x/w/stride/padding/dilation/groups)<TAB>choice<TAB>median ms";

/// A cache file's lines for other keys, and the choices of lines keyed `key`.
pub(crate) fn read<C>(path: &Path, key: &str) -> Result<(Vec<String>, Choices<C>)>
where
    C: FromStr<Err = Error>,
{
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut others = Vec::new();
    let mut choices = Choices::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |why: &str| Error::InvalidSetting {
            name: "tuning cache line",
            value: format!("{}:{}: {line}", path.display(), i + 1),
            expected: if why.is_empty() {
                "key, op, problem, choice and ms separated by tabs"
            } else {
                "a problem gpuconv accepts and a known op"
            },
        };
        let [who, op, problem, choice, ms] = fields.as_slice() else {
            return Err(bad(""));
        };
        if *who != key {
            others.push(line.to_string());
            continue;
        }
        let op = op_of(op).ok_or_else(|| bad("op"))?;
        let problem = parse_problem(problem).ok_or_else(|| bad("problem"))?;
        let choice: C = choice.parse()?;
        let ms: f64 = ms.parse().map_err(|_| bad(""))?;
        choices.insert((op, problem), (choice, ms));
    }
    Ok((others, choices))
}

/// Writes `mine` under `key` into the cache file at `path`: this key's lines already there and
/// not in `mine` are kept, as are every other key's lines.
pub(crate) fn save<C>(path: &Path, key: &str, mine: &Choices<C>) -> Result<()>
where
    C: FromStr<Err = Error> + fmt::Display + Clone,
{
    let (others, mut all) = read::<C>(path, key)?;
    all.extend(mine.iter().map(|(k, v)| (*k, v.clone())));
    let mut lines: Vec<String> = all
        .iter()
        .map(|((op, pb), (choice, ms))| {
            format!(
                "{key}\t{}\t{}\t{choice}\t{ms:.4}",
                op.name(),
                problem_key(pb)
            )
        })
        .collect();
    lines.sort();
    let mut text = String::from(HEADER);
    text.push('\n');
    for l in others.iter().chain(&lines) {
        text.push_str(l);
        text.push('\n');
    }
    write_safely(path, &text)
}

/// Writes `text` to `path` through an exclusively created temporary file beside it, then a
/// rename: never through a symlink (the link itself is replaced), never over anything but a
/// regular file.
fn write_safely(path: &Path, text: &str) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return Err(io(std::io::Error::other(
                "exists and is not a regular file: the tuning cache is not written there",
            )));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tune".into());
    // Seeded from the standard library's per-process random hash keys (drawn from the OS), so
    // another process cannot predict the names; `create_new` keeps each one exclusive.
    let mut rng = SplitMix64::new(RandomState::new().build_hasher().finish());
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.tmp-{:016x}", rng.next_u64()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(mut f) => {
                let written = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
                let renamed = written.and_then(|_| std::fs::rename(&tmp, path));
                if let Err(e) = renamed {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io(e));
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(std::io::Error::other("no unused temporary name")))
}
