//! The `gpuconv` command line: `run`, `info`, `bench`, `explain`.

mod cli;

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
    std::process::exit(cli::main());
}

/// Collapses a multi-line message (wgpu's are) into one line.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
