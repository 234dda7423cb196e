//! The `gpuconv` command line: `run`, `info`, `bench`, `explain`, `sgemm`.

mod cli;

use std::path::PathBuf;

/// Mesa's GL probe prints several "error:" lines when `XDG_RUNTIME_DIR` is unset or not a
/// directory; a private one (mode 0700, removed at exit) keeps a run to its own one line.
fn private_runtime_dir() -> Option<PathBuf> {
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|d| d.is_dir());
    if usable {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("gpuconv-runtime-")
        .tempdir()
        .ok()?
        .keep();
    // Set before any thread exists: nothing else reads the environment concurrently.
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
    Some(dir)
}

fn main() {
    // A bug must still end in one line on stderr, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("gpuconv: internal error{at}: {}", one_line(&msg));
    }));
    let runtime_dir = private_runtime_dir();
    cli::output::install_signal_cleanup(runtime_dir.clone());
    let code = cli::main();
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code);
}

/// Collapses a multi-line message (wgpu's are) into one line.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
