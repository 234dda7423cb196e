//! Reading and writing .npy arrays of f32 (f64 input is converted).

use std::io::{BufReader, Write};
use std::path::Path;

use npyz::{DType, Order, TypeChar};

use crate::error::{Error, Result};

/// A dense C-order f32 array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<f32>,
}

fn npy_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a float .npy file: f4 or f8 (converted to f32), C order, any rank.
pub fn read(path: &Path) -> Result<Array> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| npy_error(path, format!("not a valid .npy file ({e})")))?;
    if npy.order() != Order::C {
        return Err(npy_error(
            path,
            "Fortran-order arrays are not supported: save a C-order array (numpy.ascontiguousarray)",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let size = match npy.dtype() {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float => ts.size_field(),
        other => {
            return Err(npy_error(
                path,
                format!(
                    "dtype {} is not supported: expected float32 ('<f4') or float64 ('<f8')",
                    other.descr()
                ),
            ))
        }
    };
    let truncated =
        |e: std::io::Error| npy_error(path, format!("data is truncated or unreadable ({e})"));
    let data = match size {
        4 => npy.into_vec::<f32>().map_err(truncated)?,
        8 => npy
            .into_vec::<f64>()
            .map_err(truncated)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        _ => {
            return Err(npy_error(
                path,
                format!(
                    "float{} is not supported: expected float32 or float64",
                    size * 8
                ),
            ))
        }
    };
    Ok(Array { shape, data })
}

/// The .npy v1.0 bytes of a little-endian f32 C-order array.
pub fn encode(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes an f32 array to `path` atomically: a temporary file beside it, then a rename, so
/// `path` is either untouched or complete.
pub fn write_atomic(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let io_err = |p: &Path| {
        let p = p.display().to_string();
        move |source| Error::Io { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&encode(shape, data)).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
