//! Benchmark shape suites: the default one embedded in the crate (a copy of the public suite,
//! `benches/shapes.json`) and user files in the same JSON format.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::problem::{ConvParams, ConvProblem};

/// The default suite, embedded at build time.
pub const DEFAULT_SUITE_JSON: &str = include_str!("../benches/shapes.json");

/// One benchmark shape, as written in the JSON file.
#[derive(Debug, Clone, Deserialize)]
pub struct Shape {
    /// Name shown in reports.
    pub name: String,
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height.
    pub r: usize,
    /// Kernel width.
    pub s: usize,
    /// [sh, sw].
    #[serde(default = "one_one")]
    pub stride: [usize; 2],
    /// [top, left, bottom, right].
    #[serde(default)]
    pub padding: [usize; 4],
    /// [dh, dw].
    #[serde(default = "one_one")]
    pub dilation: [usize; 2],
    /// Groups.
    #[serde(default = "one")]
    pub groups: usize,
}

fn one_one() -> [usize; 2] {
    [1, 1]
}
fn one() -> usize {
    1
}

impl Shape {
    /// The validated problem this shape describes.
    pub fn problem(&self) -> Result<ConvProblem> {
        let params = ConvParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        // groups = 0 is reported by ConvProblem::new; the weight shape just needs some value.
        let cg = self.c.checked_div(self.groups).unwrap_or(0);
        ConvProblem::new(
            &[self.n, self.c, self.h, self.w],
            &[self.k, cg, self.r, self.s],
            params,
        )
        .map_err(|e| Error::Invalid(format!("shape {:?}: {e}", self.name)))
    }
}

/// Parses a suite from JSON text (an array of shapes).
pub fn parse(json: &str, origin: &str) -> Result<Vec<Shape>> {
    let shapes: Vec<Shape> = serde_json::from_str(json)
        .map_err(|e| Error::Invalid(format!("{origin}: not a shape suite ({e})")))?;
    for s in &shapes {
        s.problem()?;
    }
    Ok(shapes)
}

/// The embedded default suite.
pub fn default_suite() -> Vec<Shape> {
    parse(DEFAULT_SUITE_JSON, "embedded suite").expect("the embedded suite is valid (tested)")
}
