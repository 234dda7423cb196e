//! Benchmark shape suites: the default one embedded in the crate (a copy of the public suite,
//! `benches/shapes.json`) and user files in the same JSON format. Unknown keys are refused with
//! their name (a misspelt `"stide"` must not silently benchmark stride 1).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::problem::{ConvParams, ConvProblem};

/// The default suite, embedded at build time.
pub const DEFAULT_SUITE_JSON: &str = include_str!("../benches/shapes.json");

/// One benchmark shape, as written in the JSON file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Where the layer comes from (documentation only).
    #[serde(default)]
    pub source: Option<String>,
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
        // The weight shape is derived from the groups, so their errors come first and say so.
        let groups = if self.groups == 0 {
            Err(Error::ZeroGroups)
        } else if !self.c.is_multiple_of(self.groups) {
            Err(Error::GroupsDoNotDivide {
                groups: self.groups,
                what: "C",
                value: self.c,
            })
        } else {
            Ok(self.c / self.groups)
        };
        groups
            .and_then(|cg| {
                ConvProblem::new(
                    &[self.n, self.c, self.h, self.w],
                    &[self.k, cg, self.r, self.s],
                    params,
                )
            })
            .map_err(|e| Error::Suite {
                origin: "shape".into(),
                message: format!("{:?}: {e}", self.name),
            })
    }
}

/// Parses a suite from JSON text (an array of shapes); `origin` names it in errors.
pub fn parse(json: &str, origin: &str) -> Result<Vec<Shape>> {
    let shapes: Vec<Shape> = serde_json::from_str(json).map_err(|e| Error::Suite {
        origin: origin.to_string(),
        message: format!("not a shape suite ({e})"),
    })?;
    for s in &shapes {
        s.problem().map_err(|e| Error::Suite {
            origin: origin.to_string(),
            message: match e {
                Error::Suite { message, .. } => format!("shape {message}"),
                other => other.to_string(),
            },
        })?;
    }
    Ok(shapes)
}

/// The embedded default suite.
pub fn default_suite() -> Vec<Shape> {
    // The embedded suite is checked by tests/suite.rs; an empty list can never be reached.
    parse(DEFAULT_SUITE_JSON, "embedded suite").unwrap_or_default()
}
