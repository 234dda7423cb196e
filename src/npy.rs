//! Reading and writing .npy arrays of f32 (f64 input is converted).
//!
//! The reader accepts exactly the header numpy writes — a dict with the keys `descr`,
//! `fortran_order` and `shape` (in any order), `shape` a flat tuple of integers — checked by a
//! single pass over at most [`MAX_HEADER_LEN`] bytes, so a crafted header cannot make it recurse
//! or run long; and it checks the data's length against the shape before allocating, fallibly.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result, TensorRole};
use crate::problem::MAX_ELEMENTS;

/// Longest header accepted, numpy's own default limit (`max_header_size`).
pub const MAX_HEADER_LEN: usize = 10_000;

/// A dense C-order f32 array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<f32>,
}

/// The element type of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32 { big_endian: bool },
    F64 { big_endian: bool },
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 { .. } => 4,
            Dtype::F64 { .. } => 8,
        }
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
}

fn npy_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A cursor over the header's bytes for the one-pass parser.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip_space(&mut self) {
        while self.at < self.text.len() && matches!(self.text[self.at], b' ' | b'\t') {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> std::result::Result<(), String> {
        match self.peek() {
            Some(b) if b == byte => {
                self.at += 1;
                Ok(())
            }
            Some(b) => Err(format!(
                "expected '{}' at header byte {}, found '{}'",
                byte as char,
                self.at,
                (b as char).escape_default()
            )),
            None => Err(format!("header ends where '{}' was expected", byte as char)),
        }
    }

    /// A quoted string without escapes ('...' or "...").
    fn string(&mut self) -> std::result::Result<&str, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted string at header byte {}",
                    self.at
                ))
            }
        };
        self.at += 1;
        let start = self.at;
        while self.at < self.text.len() && self.text[self.at] != quote {
            if self.text[self.at] == b'\\' {
                return Err("escapes are not part of numpy's header".into());
            }
            self.at += 1;
        }
        if self.at == self.text.len() {
            return Err("unterminated string in the header".into());
        }
        let s = std::str::from_utf8(&self.text[start..self.at])
            .map_err(|_| "header string is not UTF-8".to_string())?;
        self.at += 1;
        Ok(s)
    }

    /// A bare word (True, False, an integer with an optional L suffix).
    fn word(&mut self) -> &str {
        self.skip_space();
        let start = self.at;
        while self.at < self.text.len() && self.text[self.at].is_ascii_alphanumeric() {
            self.at += 1;
        }
        std::str::from_utf8(&self.text[start..self.at]).unwrap_or("")
    }

    /// `(d0, d1, …)`: a flat tuple of non-negative integers, trailing comma allowed.
    fn shape(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.peek() == Some(b')') {
                self.at += 1;
                return Ok(dims);
            }
            let at = self.at;
            let word = self.word();
            let digits = word.strip_suffix('L').unwrap_or(word);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "shape must be a flat tuple of integers, found {word:?} at header byte {at}"
                ));
            }
            let dim = digits
                .parse::<usize>()
                .map_err(|_| format!("shape dimension {digits} is too large"))?;
            dims.push(dim);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {}
                _ => return Err("shape tuple is not closed".into()),
            }
        }
    }
}

/// Parses numpy's header dict: exactly the keys descr, fortran_order and shape.
fn parse_header(text: &[u8]) -> std::result::Result<Header, String> {
    let mut c = Cursor { text, at: 0 };
    c.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if c.peek() == Some(b'}') {
            c.at += 1;
            break;
        }
        let key = c.string()?.to_string();
        c.expect(b':')?;
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(c.string()?.to_string()),
            "fortran_order" if fortran.is_none() => {
                fortran = Some(match c.word() {
                    "True" => true,
                    "False" => false,
                    other => {
                        return Err(format!(
                            "fortran_order must be True or False, found {other:?}"
                        ))
                    }
                })
            }
            "shape" if shape.is_none() => shape = Some(c.shape()?),
            "descr" | "fortran_order" | "shape" => {
                return Err(format!("key {key:?} appears twice"))
            }
            _ => {
                return Err(format!(
                "unexpected key {key:?}: numpy's header has exactly descr, fortran_order and shape"
            ))
            }
        }
        match c.peek() {
            Some(b',') => c.at += 1,
            Some(b'}') => {}
            _ => return Err("header dict is not closed".into()),
        }
    }
    // After the dict: only padding spaces and the final newline.
    if c.text[c.at..]
        .iter()
        .any(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0))
    {
        return Err("unexpected bytes after the header dict".into());
    }
    let descr = descr.ok_or("header lacks descr")?;
    let fortran = fortran.ok_or("header lacks fortran_order")?;
    let shape = shape.ok_or("header lacks shape")?;
    if fortran {
        return Err(
            "Fortran-order arrays are not supported: save a C-order array (numpy.ascontiguousarray)"
                .into(),
        );
    }
    let dtype = match descr.as_str() {
        "<f4" | "=f4" => Dtype::F32 { big_endian: false },
        ">f4" => Dtype::F32 { big_endian: true },
        "<f8" | "=f8" => Dtype::F64 { big_endian: false },
        ">f8" => Dtype::F64 { big_endian: true },
        other => {
            return Err(format!(
                "dtype {other} is not supported: expected float32 ('<f4') or float64 ('<f8')"
            ))
        }
    };
    Ok(Header { dtype, shape })
}

/// Reads the magic, version and header of an .npy stream.
fn read_header(r: &mut impl Read) -> std::result::Result<Header, String> {
    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix)
        .map_err(|_| "not a valid .npy file (shorter than its magic string)".to_string())?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err("not a valid .npy file (no \\x93NUMPY magic string)".into());
    }
    let len = match prefix[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|_| "truncated header length")?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| "truncated header length")?;
            usize::try_from(u32::from_le_bytes(b)).unwrap_or(usize::MAX)
        }
        v => return Err(format!("unsupported .npy format version {v}.{}", prefix[7])),
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(
            "header of {len} bytes exceeds the {MAX_HEADER_LEN} numpy itself accepts"
        ));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text).map_err(|_| "truncated header")?;
    parse_header(&text)
}

/// Reads a float .npy file: f4 or f8 (converted to f32), C order, any rank.
pub fn read(path: &Path) -> Result<Array> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_from(std::io::BufReader::new(file), path)
}

/// Reads an .npy array from `r`; `path` names it in errors.
pub fn read_from(mut r: impl Read, path: &Path) -> Result<Array> {
    let header = read_header(&mut r).map_err(|m| npy_error(path, m))?;
    let elems = header
        .shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if elems > MAX_ELEMENTS as u128 {
        return Err(npy_error(
            path,
            format!(
                "shape {:?} has {elems} elements, more than the {MAX_ELEMENTS} gpuconv handles",
                header.shape
            ),
        ));
    }
    let len = usize::try_from(elems).map_err(|_| npy_error(path, "too many elements"))?;
    let mut data = crate::cpu::alloc::vec_with_capacity::<f32>(len, &path.display().to_string())?;
    let size = header.dtype.size();
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let take = left.min(chunk.len() / size);
        let bytes = &mut chunk[..take * size];
        r.read_exact(bytes).map_err(|_| {
            npy_error(
                path,
                format!(
                    "data is truncated: shape {:?} needs {} bytes of {}",
                    header.shape,
                    elems * size as u128,
                    match header.dtype {
                        Dtype::F32 { .. } => "float32",
                        Dtype::F64 { .. } => "float64",
                    }
                ),
            )
        })?;
        match header.dtype {
            Dtype::F32 { big_endian } => data.extend(bytes.chunks_exact(4).map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                if big_endian {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            })),
            Dtype::F64 { big_endian } => data.extend(bytes.chunks_exact(8).map(|b| {
                let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                let v = if big_endian {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                };
                v as f32
            })),
        }
        left -= take;
    }
    let mut extra = [0u8; 1];
    if matches!(r.read(&mut extra), Ok(n) if n > 0) {
        return Err(npy_error(
            path,
            format!(
                "file is longer than shape {:?} needs: trailing data after the array",
                header.shape
            ),
        ));
    }
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// The .npy header (magic, version, length, dict, padding) of a little-endian f32 C-order array.
pub fn header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // A rank-4 shape's header is far below 64 KiB.
    out.extend_from_slice(&u16::try_from(dict.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes an f32 array as .npy to `w`, streaming the data (no second copy of the whole file).
pub fn write_to(
    w: &mut (impl Write + ?Sized),
    shape: &[usize],
    data: &[f32],
) -> std::io::Result<()> {
    w.write_all(&header(shape))?;
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in data.chunks(1 << 14) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// The .npy v1.0 bytes of a little-endian f32 C-order array.
pub fn encode(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = header(shape);
    out.reserve(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Checks that an array read for tensor `role` has `expected` as its shape.
pub fn check_rank(role: TensorRole, array: &Array, rank: usize) -> Result<()> {
    if array.shape.len() != rank {
        return Err(Error::Rank {
            role,
            expected: rank,
            shape: array.shape.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_headers_parse_and_others_do_not() {
        let ok = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }",
            "{'shape': (), 'fortran_order': False, 'descr': '>f4'}",
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
        ];
        for h in ok {
            assert!(parse_header(h.as_bytes()).is_ok(), "{h}");
        }
        let bad = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': [[[]]]}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': ((1, 2),)}",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}",
            "{'descr': '<f4', 'shape': (1,)}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
        ];
        for h in bad {
            assert!(parse_header(h.as_bytes()).is_err(), "{h}");
        }
        let deep = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}}}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse_header(deep.as_bytes()).is_err());
    }

    #[test]
    fn round_trip_through_the_stream_writer() {
        let data: Vec<f32> = (0..100_000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut bytes = Vec::new();
        write_to(&mut bytes, &[10, 100, 100], &data).unwrap();
        assert_eq!(bytes, encode(&[10, 100, 100], &data));
        let back = read_from(&bytes[..], Path::new("mem")).unwrap();
        assert_eq!(back.shape, vec![10, 100, 100]);
        assert_eq!(back.data, data);
    }
}
