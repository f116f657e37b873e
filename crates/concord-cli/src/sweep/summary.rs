//! `concord sweep --summary FILE`: the results table (per setting × arm), the paired
//! comparisons over seeds (sign test, Wilcoxon signed-rank) and the cost table, as plain
//! aligned text. The first two depend only on the results (lines are taken in cell order), so a
//! merged set of shards and an unsharded run print them identically; the cost table holds the
//! timings.

use super::cells::is_arm_key;
use super::lines::Line;
use super::stats::{self, Paired};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The lines of one sweep grouped for the tables: each cell's arm (its method text), setting
/// (the values of the non-seed axes that are not part of the method) and seed.
pub struct Grouped<'a> {
    pub lines: Vec<&'a Line>,
    /// The setting axes' keys, in the sweep's axis order.
    pub setting_keys: Vec<String>,
    /// Distinct settings and arms, in the order of their first cell.
    pub settings: Vec<Vec<String>>,
    pub arms: Vec<String>,
    pub task_names: Vec<String>,
    /// Test losses when every line has them, else train losses.
    pub test: bool,
    /// The cells of each (setting, arm), in cell order.
    groups: HashMap<(usize, usize), Vec<&'a Line>>,
}

impl<'a> Grouped<'a> {
    /// `lines`, sorted by cell index (so every sum runs in one order, whatever order the file has).
    pub fn new(lines: &'a [Line]) -> Grouped<'a> {
        let mut lines: Vec<&Line> = lines.iter().collect();
        lines.sort_by_key(|l| l.cell);
        let keys: Vec<String> =
            lines.first().map(|l| l.axes.0.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
        let setting_keys: Vec<String> = keys.into_iter().filter(|k| k != "seed" && !is_arm_key(k)).collect();
        let mut g = Grouped {
            setting_keys,
            settings: Vec::new(),
            arms: Vec::new(),
            task_names: lines.first().map(|l| l.task_names.clone()).unwrap_or_default(),
            test: lines.iter().all(|l| l.final_test_losses.is_some()),
            lines: Vec::new(),
            groups: HashMap::new(),
        };
        for l in &lines {
            let s = g.setting(l);
            let si = g.settings.iter().position(|x| *x == s).unwrap_or_else(|| {
                g.settings.push(s);
                g.settings.len() - 1
            });
            let ai = g.arms.iter().position(|x| *x == l.method).unwrap_or_else(|| {
                g.arms.push(l.method.clone());
                g.arms.len() - 1
            });
            g.groups.entry((si, ai)).or_default().push(l);
        }
        g.lines = lines;
        g
    }

    pub fn setting(&self, l: &Line) -> Vec<String> {
        self.setting_keys.iter().map(|k| l.axes.get(k).unwrap_or("").to_string()).collect()
    }

    /// `lr=0.001, steps=30` (empty without setting axes).
    pub fn setting_label(&self, s: &[String]) -> String {
        self.setting_keys.iter().zip(s).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }

    /// The cells of one setting and arm, in cell order.
    pub fn cells(&self, setting: &[String], arm: &str) -> Vec<&'a Line> {
        let s = self.settings.iter().position(|x| x == setting);
        let a = self.arms.iter().position(|x| x == arm);
        s.zip(a).and_then(|k| self.groups.get(&k)).cloned().unwrap_or_default()
    }

    /// The final loss the tables use (test, or train without a test split); NaN when missing.
    pub fn loss(&self, l: &Line, task: usize) -> f64 {
        let v = if self.test { l.final_test_losses.as_deref() } else { Some(l.final_train_losses.as_slice()) };
        v.and_then(|v| v.get(task)).copied().unwrap_or(f64::NAN)
    }

    pub fn loss_name(&self) -> &'static str {
        if self.test {
            "final test loss"
        } else {
            "final train loss (no test split)"
        }
    }
}

/// A run that stopped with an error or ended with a non-finite loss.
pub fn diverged(l: &Line) -> bool {
    l.error.is_some() || l.final_train_losses.iter().chain(l.final_test_losses.iter().flatten()).any(|v| !v.is_finite())
}

/// A number in about four significant digits.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let e = x.abs().log10().floor() as i32;
    if (-3..5).contains(&e) {
        format!("{x:.*}", (3 - e).max(0) as usize)
    } else {
        format!("{x:.3e}")
    }
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "–".into(),
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.4}"),
    }
}

/// A paragraph of explanation, wrapped at 100 columns.
fn para(out: &mut String, text: &str) {
    let mut width = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if width > 0 && width + 1 + n > 100 {
            out.push('\n');
            width = 0;
        } else if width > 0 {
            out.push(' ');
            width += 1;
        }
        out.push_str(word);
        width += n;
    }
    out.push('\n');
}

/// Plain aligned text: the first `left` columns left-aligned, the rest right-aligned.
fn table(out: &mut String, header: &[String], rows: &[Vec<String>], left: usize) {
    let w: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |out: &mut String, cells: &[String]| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let pad = w[c] - cell.chars().count();
            if c > 0 {
                s.push_str("  ");
            }
            if c < left {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(out, header);
    line(out, &w.iter().map(|&n| "-".repeat(n)).collect::<Vec<_>>());
    for r in rows {
        line(out, r);
    }
}

/// The results and comparison tables (deterministic: no timing in them).
pub fn results(g: &Grouped) -> String {
    let mut out = String::new();
    let first = g.lines[0];
    let _ = writeln!(
        out,
        "Sweep {} ({}): {} of {} cells, {} arm(s) × {} setting(s)",
        first.sweep,
        if first.base.is_empty() { "base config" } else { &first.base },
        g.lines.len(),
        first.cells,
        g.arms.len(),
        g.settings.len()
    );
    let tasks: Vec<String> = g.task_names.iter().enumerate().map(|(t, n)| format!("t{t} = {n}")).collect();
    let _ = writeln!(out, "tasks: {}", tasks.join(", "));
    let _ = writeln!(out);
    para(
        &mut out,
        &format!(
            "Results: {} per task, mean ± sd and median over the runs where it is finite; diverged = stopped \
         with an error or a non-finite final loss; cos = mean cosine of the task 0 and 1 gradients, \
         conflict = fraction of steps with cos < 0 (means over runs)",
            g.loss_name()
        ),
    );
    let mut header: Vec<String> = g.setting_keys.clone();
    header.extend(["arm", "n", "diverged"].map(String::from));
    for t in 0..g.task_names.len() {
        header.push(format!("t{t} mean ± sd"));
        header.push(format!("t{t} median"));
    }
    header.extend(["cos", "conflict"].map(String::from));
    let mut rows = Vec::new();
    for s in &g.settings {
        for arm in &g.arms {
            let cells = g.cells(s, arm);
            if cells.is_empty() {
                continue;
            }
            let mut row = s.clone();
            row.push(arm.clone());
            row.push(cells.len().to_string());
            row.push(cells.iter().filter(|l| diverged(l)).count().to_string());
            for t in 0..g.task_names.len() {
                let v: Vec<f64> = cells.iter().map(|l| g.loss(l, t)).filter(|v| v.is_finite()).collect();
                if v.is_empty() {
                    row.extend(["–".into(), "–".into()]);
                    continue;
                }
                let sd = stats::sd(&v).map_or("–".into(), num);
                row.push(format!("{} ± {sd}", num(stats::mean(&v))));
                row.push(num(stats::median(&v)));
            }
            let cs: Vec<_> = cells.iter().filter_map(|l| l.conflict_summary).collect();
            if cs.is_empty() {
                row.extend(["–".into(), "–".into()]);
            } else {
                row.push(format!("{:.3}", stats::mean(&cs.iter().map(|c| c.mean_cosine).collect::<Vec<_>>())));
                row.push(format!("{:.3}", stats::mean(&cs.iter().map(|c| c.conflicting_fraction).collect::<Vec<_>>())));
            }
            rows.push(row);
        }
    }
    let left = g.setting_keys.len() + 1;
    table(&mut out, &header, &rows, left);
    out.push('\n');
    out.push_str(&comparisons(g));
    out
}

/// For each setting and pair of arms, the cells paired by seed (they differ only in the arm).
fn comparisons(g: &Grouped) -> String {
    let mut out = String::new();
    para(
        &mut out,
        &format!(
            "Paired comparisons: A vs B within a setting, runs paired by seed; the lower {} wins; sign test \
         (exact) and Wilcoxon signed-rank test, both two-sided, ties / zero differences dropped; Wilcoxon \
         exact for n ≤ {} without tied |differences|, else normal approximation with tie correction; a \
         NaN loss counts as +inf; no correction for multiple comparisons",
            g.loss_name(),
            stats::EXACT_MAX_N
        ),
    );
    if g.arms.len() < 2 {
        let _ = writeln!(out, "(one arm: nothing to compare)");
        return out;
    }
    let mut header: Vec<String> = g.setting_keys.clone();
    header.extend(
        ["A", "B", "task", "n", "A wins", "B wins", "ties", "median A−B", "sign p", "Wilcoxon p", "Wilcoxon"]
            .map(String::from),
    );
    let mut rows = Vec::new();
    let seed = |l: &Line| l.axes.get("seed").unwrap_or("").to_string();
    for s in &g.settings {
        for i in 0..g.arms.len() {
            for j in i + 1..g.arms.len() {
                let (a, b) = (g.cells(s, &g.arms[i]), g.cells(s, &g.arms[j]));
                let b_by_seed: HashMap<String, &Line> = b.iter().rev().map(|y| (seed(y), *y)).collect();
                let pairs: Vec<(&Line, &Line)> =
                    a.iter().filter_map(|x| b_by_seed.get(&seed(x)).map(|y| (*x, *y))).collect();
                if pairs.is_empty() {
                    continue;
                }
                for t in 0..g.task_names.len() {
                    let (xa, xb): (Vec<f64>, Vec<f64>) =
                        pairs.iter().map(|(x, y)| (g.loss(x, t), g.loss(y, t))).unzip();
                    let p: Paired = stats::paired(&xa, &xb);
                    let d: Vec<f64> = xa.iter().zip(&xb).map(|(x, y)| x - y).filter(|v| v.is_finite()).collect();
                    let mut row = s.clone();
                    row.extend([g.arms[i].clone(), g.arms[j].clone(), format!("t{t}")]);
                    row.extend([p.n, p.wins, p.losses, p.ties].map(|v| v.to_string()));
                    row.push(if d.is_empty() { "–".into() } else { num(stats::median(&d)) });
                    row.push(p_value(p.sign_p));
                    row.push(p_value(p.wilcoxon.map(|w| w.p)));
                    row.push(p.wilcoxon.map_or("–", |w| w.method.name()).to_string());
                    rows.push(row);
                }
            }
        }
    }
    let left = g.setting_keys.len() + 3;
    table(&mut out, &header, &rows, left);
    out
}

/// The cost table: wall time per cell and steps per second, per arm and in all.
pub fn cost(g: &Grouped) -> String {
    let mut out = String::new();
    let mut threads: Vec<usize> = g.lines.iter().map(|l| l.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let threads: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
    para(
        &mut out,
        &format!(
            "Cost: wall time of each cell (building the trainer and every step) while the sweep ran on {} \
         thread(s); steps/s = steps taken / wall time",
            threads.join(", ")
        ),
    );
    let header: Vec<String> = ["arm", "cells", "mean s/cell", "steps/s"].map(String::from).to_vec();
    let row = |name: &str, cells: &[&Line]| {
        let wall: f64 = cells.iter().map(|l| l.wall_s).sum();
        let steps: usize = cells.iter().map(|l| l.steps_done).sum();
        vec![
            name.to_string(),
            cells.len().to_string(),
            num(wall / cells.len() as f64),
            if wall > 0.0 { num(steps as f64 / wall) } else { "–".into() },
        ]
    };
    let mut rows: Vec<Vec<String>> = g
        .arms
        .iter()
        .map(|arm| row(arm, &g.lines.iter().copied().filter(|l| &l.method == arm).collect::<Vec<_>>()))
        .collect();
    rows.push(row("all", &g.lines));
    table(&mut out, &header, &rows, 1);
    let total: f64 = g.lines.iter().map(|l| l.wall_s).sum();
    let _ = writeln!(out, "total wall time of the cells: {} s (summed over cells; they ran in parallel)", num(total));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::lines::Axes;

    fn line(cell: usize, method: &str, seed: usize, lr: &str, losses: [f64; 2]) -> Line {
        Line {
            sweep: "s".into(),
            key: format!("k{cell}"),
            cell,
            cells: 8,
            base: "xor-conflict".into(),
            axes: Axes(vec![
                ("method".into(), method.into()),
                ("lr".into(), lr.into()),
                ("seed".into(), seed.to_string()),
            ]),
            method: method.into(),
            task_names: vec!["a".into(), "b".into()],
            steps: 10,
            steps_done: 10,
            final_train_losses: vec![1.0, 1.0],
            final_test_losses: Some(losses.to_vec()),
            conflict_summary: None,
            error: None,
            wall_s: 0.5,
            threads: 1,
        }
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.64346), "0.6435");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(0.0012345), "0.001234");
        assert_eq!(num(1.5e-5), "1.500e-5");
        assert_eq!(num(2.5e7), "2.500e7");
        assert_eq!((num(0.0), num(f64::INFINITY), num(f64::NAN)), ("0".into(), "inf".into(), "nan".into()));
    }

    #[test]
    fn tables_group_by_setting_and_arm_and_pair_by_seed() {
        // Lines out of order; upgrad beats mean on task 0 for both seeds.
        let lines = vec![
            line(3, "upgrad", 1, "0.1", [0.1, 0.5]),
            line(0, "mean", 0, "0.1", [0.3, 0.5]),
            line(1, "mean", 1, "0.1", [0.4, f64::INFINITY]),
            line(2, "upgrad", 0, "0.1", [0.2, 0.5]),
        ];
        let g = Grouped::new(&lines);
        assert_eq!(
            (g.setting_keys.clone(), g.arms.clone()),
            (vec!["lr".to_string()], vec!["mean".into(), "upgrad".into()])
        );
        let text = results(&g);
        assert!(text.contains("4 of 8 cells, 2 arm(s) × 1 setting(s)"), "{text}");
        let row = |start: &[&str]| -> Vec<String> {
            let line = text.lines().find(|l| l.split_whitespace().take(start.len()).eq(start.iter().copied()));
            line.unwrap_or_else(|| panic!("no row {start:?}:\n{text}")).split_whitespace().map(String::from).collect()
        };
        let cols = row(&["0.1", "mean"]);
        // lr arm n diverged  t0: mean ± sd  median  t1: mean ± sd (one finite value: no sd) median.
        assert_eq!(cols[..11], ["0.1", "mean", "2", "1", "0.3500", "±", "0.07071", "0.3500", "0.5000", "±", "–"]);
        // n, A wins, B wins, ties, median A−B, sign p = 2·(1/4), Wilcoxon exact p = 2·(1/4).
        let cols = row(&["0.1", "mean", "upgrad", "t0"]);
        assert_eq!(cols[4..], ["2", "0", "2", "0", "0.2000", "0.5000", "0.5000", "exact"]);
        // Task 1: the infinite loss loses to 0.5; the other pair ties.
        assert_eq!(row(&["0.1", "mean", "upgrad", "t1"])[4..8], ["2", "0", "1", "1"]);
        let cost = cost(&g);
        let all = cost.lines().find(|l| l.starts_with("all")).expect(&cost);
        // 4 cells of 0.5 s and 10 steps: 0.5 s a cell, 20 steps/s.
        assert_eq!(all.split_whitespace().collect::<Vec<_>>(), ["all", "4", "0.5000", "20.00"]);
    }
}
