//! The generic slice: L_t(θ + α·δ + β·η) for every grid point through `Objective::losses`, the
//! points shared out over threads. Works for any objective (the analytic problems); the MLP
//! has a batched path in `mlp_slice.rs` that this one checks.

use super::directions::Plane;
use super::grid::{Grid, Surface};
use super::objective::Objective;
use super::vector::combine_into;

/// Threads to use: `requested`, or the machine's parallelism when 0, never more than `points`.
pub fn thread_count(requested: usize, points: usize) -> usize {
    let auto = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = if requested == 0 { auto } else { requested };
    t.clamp(1, points.max(1))
}

/// Runs `eval(k, scratch)` for every flat grid index k on `threads` threads (interleaved, so
/// uneven costs spread out); each thread owns one scratch value. Results come back in order.
pub(crate) fn for_each_point<S, F>(
    points: usize,
    threads: usize,
    make_scratch: impl Fn() -> S + Sync,
    eval: F,
) -> Result<Vec<Vec<f64>>, String>
where
    F: Fn(usize, &mut S) -> Result<Vec<f64>, String> + Sync,
{
    // One thread runs inline: no spawn, so it works where threads do not (wasm: the page's
    // merge barriers).
    if threads <= 1 {
        let mut scratch = make_scratch();
        return (0..points).map(|k| eval(k, &mut scratch)).collect();
    }
    let mut out: Vec<Option<Vec<f64>>> = vec![None; points];
    type ThreadResult = Result<Vec<(usize, Vec<f64>)>, String>;
    let results: Vec<ThreadResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (eval, make_scratch) = (&eval, &make_scratch);
                scope.spawn(move || {
                    let mut scratch = make_scratch();
                    (t..points).step_by(threads).map(|k| eval(k, &mut scratch).map(|v| (k, v))).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a slice thread panicked".into()))).collect()
    });
    for r in results {
        for (k, v) in r? {
            out[k] = Some(v);
        }
    }
    Ok(out.into_iter().map(|v| v.expect("every point is evaluated")).collect())
}

/// Per-task and total losses on the grid, one `losses` call per point.
pub fn slice_surface(objective: &dyn Objective, plane: &Plane, grid: &Grid, threads: usize) -> Result<Surface, String> {
    let dim = objective.dim();
    for (name, v) in [("origin", &plane.origin), ("δ", &plane.delta), ("η", &plane.eta)] {
        if v.len() != dim {
            return Err(format!("the plane's {name} has {} entries, the objective {dim}", v.len()));
        }
    }
    let threads = thread_count(threads, grid.len());
    let per_point = for_each_point(
        grid.len(),
        threads,
        || vec![0.0; dim],
        |k, buf: &mut Vec<f64>| {
            let (a, b) = grid.point(k);
            combine_into(buf, &plane.origin, a, &plane.delta, b, &plane.eta);
            objective.losses(buf)
        },
    )?;
    Ok(surface_from_points(grid.clone(), objective.num_tasks(), &per_point))
}

/// Transposes per-point loss vectors into per-task arrays.
pub(crate) fn surface_from_points(grid: Grid, tasks: usize, per_point: &[Vec<f64>]) -> Surface {
    let arrays = (0..tasks).map(|t| per_point.iter().map(|l| l[t]).collect()).collect();
    Surface::from_tasks(grid, arrays)
}
