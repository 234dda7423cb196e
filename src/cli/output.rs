//! Writing output files safely.
//!
//! A regular file (or a path that does not exist yet) is written to a temporary file created
//! exclusively, under an unpredictable name, in the same directory, and renamed over the path
//! only when complete: the path is either untouched or whole, and nobody who can write to the
//! directory can redirect the write through a planted link. A path that names something other
//! than a regular file or a link (a device such as /dev/null, a FIFO) is written through, never
//! replaced. An interrupted run (SIGINT, SIGTERM, SIGHUP) removes its temporary file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{CliError, CliResult};

/// The temporary file being written, removed if a signal ends the process.
static IN_PROGRESS: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Installs the signal handler that removes an in-progress temporary file (and the private
/// runtime directory, if gpuconv made one) before exiting with status 130.
pub fn install_signal_cleanup(runtime_dir: Option<PathBuf>) {
    let _ = ctrlc::set_handler(move || {
        if let Some(tmp) = IN_PROGRESS.lock().ok().and_then(|mut t| t.take()) {
            let _ = std::fs::remove_file(tmp);
        }
        if let Some(dir) = &runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("gpuconv: interrupted");
        std::process::exit(130);
    });
}

fn failed(path: &Path, reason: impl std::fmt::Display) -> CliError {
    CliError::Output {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// How an output path will be written.
enum Target {
    /// A regular file, or nothing yet: temporary file in `dir`, then rename.
    Replace { dir: PathBuf, mode: u32 },
    /// Something else that accepts writes (a device, a FIFO): written through.
    WriteThrough,
}

/// The umask, from /proc (Linux) or the common default.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Checks that `path` can be written, before any work is done, and how.
fn target(path: &Path) -> CliResult<Target> {
    let name = path
        .file_name()
        .ok_or_else(|| failed(path, "not a file path"))?;
    if name.is_empty() {
        return Err(failed(path, "not a file path"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let ft = meta.file_type();
            if ft.is_dir() {
                return Err(failed(path, "is a directory"));
            }
            if ft.is_file() {
                return Ok(Target::Replace {
                    dir,
                    mode: meta.permissions().mode() & 0o7777,
                });
            }
            if ft.is_symlink() {
                // Renaming replaces the link itself, never what it points to.
                return Ok(Target::Replace {
                    dir,
                    mode: 0o666 & !umask(),
                });
            }
            if ft.is_char_device() || ft.is_fifo() || ft.is_block_device() {
                return Ok(Target::WriteThrough);
            }
            Err(failed(
                path,
                "is neither a regular file nor a device or FIFO",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(Target::Replace {
                dir,
                mode: 0o666 & !umask(),
            }),
            Ok(_) => Err(failed(
                path,
                format!("{} is not a directory", dir.display()),
            )),
            Err(e) => Err(failed(
                path,
                format!("its directory {}: {e}", dir.display()),
            )),
        },
        Err(e) => Err(failed(path, e)),
    }
}

/// Checks, before a long run, that `path` is a place gpuconv could write.
pub fn check_writable(path: &Path) -> CliResult<()> {
    target(path).map(|_| ())
}

/// Writes `path` with what `write` produces, safely (see the module docs). Errors name `path`.
pub fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> CliResult<()> {
    match target(path)? {
        Target::WriteThrough => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| failed(path, e))?;
            let mut w = BufWriter::new(file);
            write(&mut w)
                .and_then(|()| w.flush())
                .map_err(|e| failed(path, e))
        }
        Target::Replace { dir, mode } => {
            let prefix = format!(
                ".{}.",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let tmp = tempfile::Builder::new()
                .prefix(&prefix)
                .suffix(".tmp")
                .tempfile_in(&dir)
                .map_err(|e| {
                    failed(
                        path,
                        format!("creating a temporary file in {}: {e}", dir.display()),
                    )
                })?;
            if let Ok(mut p) = IN_PROGRESS.lock() {
                *p = Some(tmp.path().to_path_buf());
            }
            let result = (|| -> std::io::Result<File> {
                let mut w = BufWriter::new(tmp.reopen()?);
                write(&mut w)?;
                let file = w.into_inner().map_err(|e| e.into_error())?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                file.sync_all()?;
                Ok(file)
            })();
            let done = result
                .map_err(|e| failed(path, e))
                .and_then(|_| tmp.persist(path).map_err(|e| failed(path, e.error)));
            if let Ok(mut p) = IN_PROGRESS.lock() {
                *p = None;
            }
            done.map(|_| ())
        }
    }
}

/// Writes an f32 array as .npy to `path`, safely and streamed.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> CliResult<()> {
    write_file(path, |w| gpuconv::npy::write_to(w, shape, data))
}
