//! The CSV files of `concord landscape`: one row per grid point, trajectory snapshot,
//! interpolation α or curvature measurement, with a header naming every column.

use concord_core::landscape::{Interpolation, ProjectedPath, SharpnessPoint, Surface};
use std::io::Write;
use std::path::Path;

fn create(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    Ok(std::io::BufWriter::new(std::fs::File::create(path)?))
}

fn task_columns(prefix: &str, m: usize) -> Vec<String> {
    (0..m).map(|t| format!("{prefix}_{t}")).chain([format!("{prefix}_total")]).collect()
}

fn join(values: impl IntoIterator<Item = f64>) -> String {
    values.into_iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

/// alpha,beta,loss_0,…,loss_total.
pub fn write_surface_csv(path: &Path, s: &Surface) -> std::io::Result<()> {
    let mut f = create(path)?;
    writeln!(f, "alpha,beta,{}", task_columns("loss", s.tasks.len()).join(","))?;
    for k in 0..s.grid.len() {
        let (a, b) = s.grid.point(k);
        writeln!(f, "{a},{b},{}", join(s.tasks.iter().map(|t| t[k]).chain([s.total[k]])))?;
    }
    f.flush()
}

/// run,step,alpha,beta,residual (run: the label of the run).
pub fn write_trajectory_csv(path: &Path, paths: &[&ProjectedPath]) -> std::io::Result<()> {
    let mut f = create(path)?;
    writeln!(f, "run,step,alpha,beta,residual")?;
    for p in paths {
        for ((step, c), r) in p.steps.iter().zip(&p.coords).zip(&p.residual) {
            writeln!(f, "{},{step},{},{},{r}", p.label.replace(',', ";"), c[0], c[1])?;
        }
    }
    f.flush()
}

/// alpha,loss_0,…,loss_total; the barriers (one row per published definition) go beside it
/// to `interpolation_barriers.csv`, so each file stays one table.
pub fn write_interpolation_csv(path: &Path, r: &Interpolation) -> std::io::Result<()> {
    let m = r.tasks.len();
    let mut f = create(path)?;
    writeln!(f, "alpha,{}", task_columns("loss", m).join(","))?;
    for (i, a) in r.alphas.iter().enumerate() {
        writeln!(f, "{a},{}", join(r.tasks.iter().map(|t| t[i]).chain([r.total[i]])))?;
    }
    f.flush()?;
    let mut b = create(&path.with_file_name("interpolation_barriers.csv"))?;
    writeln!(b, "definition,{}", task_columns("barrier", m).join(","))?;
    writeln!(b, "frankle2020,{}", join(r.barrier_frankle.iter().copied()))?;
    writeln!(b, "entezari2022,{}", join(r.barrier_entezari.iter().copied()))?;
    b.flush()
}

/// step,lambda_max_0,…,lambda_max_total,trace_0,…,trace_total (trace columns empty if not measured).
pub fn write_sharpness_csv(path: &Path, points: &[SharpnessPoint]) -> std::io::Result<()> {
    let mut f = create(path)?;
    let m = points.first().map_or(0, |p| p.lambda_max.len().saturating_sub(1));
    writeln!(f, "step,{},{}", task_columns("lambda_max", m).join(","), task_columns("trace", m).join(","))?;
    for p in points {
        let trace = match &p.trace {
            Some(t) => join(t.iter().copied()),
            None => vec![""; m + 1].join(","),
        };
        writeln!(f, "{},{},{trace}", p.step, join(p.lambda_max.iter().copied()))?;
    }
    f.flush()
}
