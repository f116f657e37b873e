//! `concord aggregate`: one aggregation of a matrix read as JSON `[[...],...]` or CSV rows
//! (auto-detected) from a file or standard input; prints `{"update": [...], "weights": [...]|null}`.

use crate::UsageError;
use clap::Args;
use concord_core::aggregators::{AggregatorSpec, JacobianF32};
use nalgebra::DMatrix;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct AggregateArgs {
    /// The aggregator (see `concord methods`), e.g. upgrad, mgda, cagrad.
    #[arg(long)]
    method: String,
    /// A parameter as key=value (repeatable), e.g. --param c=0.5 or --param weights=1,2.
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    params: Vec<String>,
    /// The matrix (m rows, one per task): a JSON array of rows or CSV rows; - or absent for stdin.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// The task losses of the batch the matrix came from (m numbers, comma-separated), for the
    /// methods that read them (moco, db-mtl, mgda with gn=loss or loss+); the others ignore them.
    #[arg(long, value_name = "L1,L2,…", allow_hyphen_values = true)]
    losses: Option<String>,
    /// Seed for methods that draw random numbers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// f64 (the CPU reference) or f32 (the matrix rounded to f32; both O(mn) passes in f32,
    /// the m × m weighting in f64).
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    precision: Precision,
}

/// The precision of the Jacobian's two O(mn) passes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Precision {
    F64,
    F32,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// `key=value` pairs as given to `--param` (the value stays text: the registry parses it).
pub fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>, UsageError> {
    raw.iter()
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| UsageError(format!("--param '{p}' is not KEY=VALUE")))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// At most this many rows (tasks): the aggregators form the m × m Gramian and solve on it, so a
/// tall matrix (10⁵ rows × 1 column) would ask for 80 GB and abort instead of failing cleanly.
/// 1024 rows is a Gramian of 8 MB.
pub const MAX_ROWS: usize = 1024;
/// At most this many entries m·n (8 bytes each, as `bench aggregate`'s random matrix).
pub const MAX_ENTRIES: usize = 50_000_000;

/// The matrix shape's bounds ([`MAX_ROWS`], [`MAX_ENTRIES`]), checked before anything m × m or
/// m × n is allocated.
pub fn check_shape(m: usize, n: usize) -> Result<(), UsageError> {
    if m > MAX_ROWS {
        return Err(UsageError(format!(
            "the matrix has m = {m} rows (tasks); at most {MAX_ROWS} are supported (the aggregators form the m × m Gramian) — one row per task, one column per parameter"
        )));
    }
    if m.checked_mul(n).is_none_or(|e| e > MAX_ENTRIES) {
        return Err(UsageError(format!("the matrix is {m} × {n}, more than {MAX_ENTRIES} entries in all")));
    }
    Ok(())
}

/// A matrix from JSON (`[[1, 2], [3, 4]]`, when the first non-blank character is `[`) or CSV
/// (one row per line, comma-separated; blank lines ignored). Rejects ragged rows, empty
/// matrices, non-finite entries and shapes beyond [`check_shape`]'s bounds.
pub fn parse_matrix(text: &str) -> Result<DMatrix<f64>, UsageError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let rows: Vec<Vec<f64>> = if trimmed.starts_with('[') {
        let rows: Vec<Vec<f64>> = serde_json::from_str(trimmed)
            .map_err(|e| UsageError(format!("the input is not a JSON matrix [[...], ...] of numbers: {e}")))?;
        for (i, row) in rows.iter().enumerate() {
            if let Some(k) = row.iter().position(|v| !v.is_finite()) {
                return Err(UsageError(format!("row {}, column {}: non-finite entry", i + 1, k + 1)));
            }
        }
        rows
    } else {
        let mut rows = Vec::new();
        for (line_no, line) in trimmed.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row = line
                .split(',')
                .enumerate()
                .map(|(k, field)| {
                    let field = field.trim();
                    let v: f64 = field.parse().map_err(|_| {
                        UsageError(format!("line {}, column {}: '{field}' is not a number", line_no + 1, k + 1))
                    })?;
                    if v.is_finite() {
                        Ok(v)
                    } else {
                        Err(UsageError(format!("line {}, column {}: non-finite entry '{field}'", line_no + 1, k + 1)))
                    }
                })
                .collect::<Result<Vec<f64>, _>>()?;
            rows.push(row);
            // Stop reading a file that is already too tall (the ragged check comes later).
            check_shape(rows.len(), rows[0].len())?;
        }
        rows
    };
    let m = rows.len();
    if m == 0 {
        return Err(UsageError("empty matrix: the input has no rows".into()));
    }
    let n = rows[0].len();
    if n == 0 {
        return Err(UsageError("empty matrix: the rows have no entries".into()));
    }
    if let Some(i) = rows.iter().position(|r| r.len() != n) {
        return Err(UsageError(format!("ragged matrix: row {} has {} entries, row 1 has {n}", i + 1, rows[i].len())));
    }
    check_shape(m, n)?;
    Ok(DMatrix::from_fn(m, n, |i, k| rows[i][k]))
}

/// The matrix in a file (JSON or CSV, as `parse_matrix`); `cannot read FILE: …` when unreadable.
pub fn read_matrix_file(path: &Path) -> Result<DMatrix<f64>, UsageError> {
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    parse_matrix(&text)
}

fn read_input(input: &Option<PathBuf>) -> Result<String, UsageError> {
    let mut text = String::new();
    match input {
        Some(path) if path.as_os_str() != "-" => {
            text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| UsageError(format!("cannot read standard input: {e}")))?;
        }
    }
    Ok(text)
}

/// The result must be finite: JSON has no ±inf/NaN (serde_json would print `null`), and a
/// non-finite update or weight means the matrix is out of range for the method.
fn check_finite(method: &str, update: &[f64], weights: Option<&[f64]>) -> Result<(), UsageError> {
    for (what, values) in [("update", Some(update)), ("weights", weights)] {
        if let Some(k) = values.and_then(|v| v.iter().position(|x| !x.is_finite())) {
            return Err(UsageError(format!(
                "{method} produced a non-finite value in its {what} (entry {}): the matrix is out of range for it",
                k + 1
            )));
        }
    }
    Ok(())
}

/// `--losses`: m finite numbers, comma-separated (or `;`, or a JSON array).
pub(crate) fn parse_losses(raw: &str) -> Result<Vec<f64>, UsageError> {
    let inner = raw.trim();
    let inner = inner.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(inner);
    let values: Option<Vec<f64>> =
        inner.split([',', ';']).map(|x| x.trim().parse::<f64>().ok().filter(|v| v.is_finite())).collect();
    values.ok_or_else(|| UsageError(format!("--losses must be finite numbers separated by commas, got '{raw}'")))
}

pub fn run(args: AggregateArgs) -> Result<(), UsageError> {
    let params = parse_params(&args.params)?;
    // The method, its parameters and the losses (all but their count) are checked before any
    // input is read.
    let spec = AggregatorSpec::parse(&args.method, &params).map_err(UsageError)?;
    let losses = args.losses.as_deref().map(parse_losses).transpose()?;
    if losses.is_none() && spec.needs_losses() {
        let e = spec.build_without_losses(1, args.seed).err().unwrap_or_default();
        return Err(UsageError(format!("{e}; or give the batch's losses here with --losses L1,L2,…")));
    }
    let j = parse_matrix(&read_input(&args.input)?)?;
    if let Some(l) = &losses {
        if l.len() != j.nrows() {
            return Err(UsageError(format!(
                "--losses has {} entries but the matrix has m = {} rows (one loss per row)",
                l.len(),
                j.nrows()
            )));
        }
    }
    let mut aggregator = spec.build(j.nrows(), args.seed).map_err(UsageError)?;
    // Without --losses only methods that ignore them get here (refused above otherwise).
    let losses = losses.unwrap_or_else(|| vec![1.0; j.nrows()]);
    let (update, weights): (Vec<f64>, _) = match args.precision {
        Precision::F64 => {
            let a = aggregator.aggregate_with_losses(&j, &losses);
            (a.update.as_slice().to_vec(), a.weights)
        }
        Precision::F32 => {
            let a = aggregator.aggregate_f32_with_losses(&JacobianF32::from_f64(&j), &losses);
            (a.update.iter().map(|&x| x as f64).collect(), a.weights)
        }
    };
    check_finite(&args.method, &update, weights.as_ref().map(|w| w.as_slice()))?;
    let out = serde_json::json!({
        "update": update,
        "weights": weights.as_ref().map(|w| w.as_slice().to_vec()),
    });
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_weights_or_updates_are_errors() {
        assert!(check_finite("mgda", &[1.0, 2.0], Some(&[0.5, 0.5])).is_ok());
        assert!(check_finite("graddrop", &[1.0, 2.0], None).is_ok());
        let e = check_finite("mgda", &[1.0, 2.0], Some(&[0.5, f64::NAN])).unwrap_err();
        assert!(e.0.contains("mgda produced a non-finite value in its weights (entry 2)"), "{}", e.0);
        let e = check_finite("sum", &[f64::INFINITY, 2.0], Some(&[1.0, 1.0])).unwrap_err();
        assert!(e.0.contains("sum produced a non-finite value in its update (entry 1)"), "{}", e.0);
    }

    #[test]
    fn losses_are_finite_numbers() {
        assert_eq!(parse_losses("0.5, 2").unwrap(), vec![0.5, 2.0]);
        assert_eq!(parse_losses("[1;2;3]").unwrap(), vec![1.0, 2.0, 3.0]);
        for bad in ["", "1,,2", "1,inf", "NaN", "a"] {
            assert!(parse_losses(bad).unwrap_err().0.contains("--losses must be finite numbers"), "{bad}");
        }
    }

    #[test]
    fn shapes_beyond_the_bounds_are_errors() {
        assert!(check_shape(MAX_ROWS, MAX_ENTRIES / MAX_ROWS).is_ok());
        assert!(check_shape(MAX_ROWS + 1, 1).unwrap_err().0.contains("at most 1024"));
        assert!(check_shape(2, MAX_ENTRIES).unwrap_err().0.contains("more than 50000000 entries"));
        assert!(check_shape(usize::MAX, usize::MAX).is_err());
    }
}
