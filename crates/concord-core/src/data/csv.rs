//! The user's own data: CSV text → `MultiTaskData` (no I/O here; the caller reads the file).
//!
//! Format: a header `x1,x2,<task>[:kind],…` (1–8 task columns), then one point per line.
//! `kind` is `bin` (labels −1/1, or 0/1 mapped to −1/1), `class` (integers 0–255, k = max + 1)
//! or `reg` (any finite number). Without a kind a column is `bin` when every value is −1/1 or
//! every value is 0/1, else `reg`. Fields are split on commas and trimmed; quoting is not
//! supported; blank lines are skipped; a leading UTF-8 BOM is ignored. Errors name the 1-based
//! line and column. The result has every point in the train set; call
//! `MultiTaskData::shuffle_and_split` to split.

use super::multitask::{LabelKind, MultiTaskData, MAX_CLASSES, MAX_DATA_TASKS, MAX_POINTS};

#[derive(Clone, Copy, PartialEq)]
enum Declared {
    Infer,
    Bin,
    Class,
    Reg,
}

fn parse_header(line: &str) -> Result<(Vec<String>, Vec<Declared>), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 3 || !fields[0].eq_ignore_ascii_case("x1") || !fields[1].eq_ignore_ascii_case("x2") {
        return Err(format!(
            "line 1: the header must start with x1,x2 and name at least one task column, got '{line}'"
        ));
    }
    if fields.len() - 2 > MAX_DATA_TASKS {
        return Err(format!("line 1: at most {MAX_DATA_TASKS} task columns, got {}", fields.len() - 2));
    }
    let mut names = Vec::new();
    let mut kinds = Vec::new();
    for (c, f) in fields.iter().enumerate().skip(2) {
        let (name, kind) = match f.rsplit_once(':') {
            Some((n, k)) => (
                n.trim(),
                match k.trim() {
                    "bin" => Declared::Bin,
                    "class" => Declared::Class,
                    "reg" => Declared::Reg,
                    other => {
                        return Err(format!(
                            "line 1, column {}: unknown column kind '{other}' (expected bin, class or reg)",
                            c + 1
                        ))
                    }
                },
            ),
            None => (*f, Declared::Infer),
        };
        if name.is_empty() {
            return Err(format!("line 1, column {}: empty task name", c + 1));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("line 1, column {}: duplicate task name '{name}'", c + 1));
        }
        names.push(name.to_owned());
        kinds.push(kind);
    }
    Ok((names, kinds))
}

/// Parse CSV text into shared points and one label column per task.
pub fn parse_csv(text: &str) -> Result<MultiTaskData, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (header_no, header) = lines.next().ok_or("the CSV is empty (expected a header x1,x2,<task>…)")?;
    if header_no != 0 {
        return Err(format!("line {}: the header must be the first line", header_no + 1));
    }
    let (names, declared) = parse_header(header)?;
    let width = names.len() + 2;
    let mut points = Vec::new();
    let mut labels = vec![Vec::new(); names.len()];
    // The line each row came from, for label errors found after reading.
    let mut line_of = Vec::new();
    for (no, line) in lines {
        let line_no = no + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != width {
            return Err(format!(
                "line {line_no}: expected {width} fields (x1, x2 and {} tasks), got {}",
                names.len(),
                fields.len()
            ));
        }
        let mut values = Vec::with_capacity(width);
        for (c, f) in fields.iter().enumerate() {
            let col = if c < 2 { format!("x{}", c + 1) } else { names[c - 2].clone() };
            let v: f64 =
                f.parse().map_err(|_| format!("line {line_no}, column {} ('{col}'): '{f}' is not a number", c + 1))?;
            if !v.is_finite() {
                return Err(format!("line {line_no}, column {} ('{col}'): '{f}' is not a finite number", c + 1));
            }
            values.push(v);
        }
        if points.len() == MAX_POINTS {
            return Err(format!("line {line_no}: more than {MAX_POINTS} data rows"));
        }
        points.push([values[0], values[1]]);
        for (t, col) in labels.iter_mut().enumerate() {
            col.push(values[t + 2]);
        }
        line_of.push(line_no);
    }
    if points.is_empty() {
        return Err("the CSV has a header but no data rows".into());
    }
    let mut kinds = Vec::with_capacity(names.len());
    for (t, col) in labels.iter_mut().enumerate() {
        let c = t + 3;
        let name = &names[t];
        let all_pm1 = col.iter().all(|&v| v == 1.0 || v == -1.0);
        let all_01 = col.iter().all(|&v| v == 0.0 || v == 1.0);
        let kind = match declared[t] {
            Declared::Infer if all_pm1 || all_01 => Declared::Bin,
            Declared::Infer => Declared::Reg,
            k => k,
        };
        kinds.push(match kind {
            Declared::Bin => {
                if !(all_pm1 || all_01) {
                    // A −1 anywhere means the −1/1 style; report the first value outside it.
                    let pm1 = col.contains(&-1.0);
                    let bad = col
                        .iter()
                        .position(|&v| if pm1 { v != 1.0 && v != -1.0 } else { v != 0.0 && v != 1.0 })
                        .unwrap_or(0);
                    return Err(format!(
                        "line {}, column {c} ('{name}'): binary labels must all be −1/1 or all be 0/1, got {}",
                        line_of[bad], col[bad]
                    ));
                }
                if all_01 && !all_pm1 {
                    col.iter_mut().for_each(|v| *v = 2.0 * *v - 1.0);
                }
                LabelKind::Binary
            }
            Declared::Class => {
                if let Some(bad) = col.iter().position(|&v| v < 0.0 || v.fract() != 0.0 || v >= MAX_CLASSES as f64) {
                    return Err(format!(
                        "line {}, column {c} ('{name}'): class labels must be integers 0–{}, got {}",
                        line_of[bad],
                        MAX_CLASSES - 1,
                        col[bad]
                    ));
                }
                let k = col.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
                LabelKind::Classes { k: k.max(2) }
            }
            Declared::Reg | Declared::Infer => LabelKind::Regression,
        });
    }
    let n_train = points.len();
    let data = MultiTaskData { task_names: names, kinds, points, labels, n_train };
    // The checks above give these invariants (a run file's data is checked the same way).
    data.validate()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_infers_label_kinds() {
        let d = parse_csv("x1,x2,a,b,c,d:class\n0.5,-1,1,0,0.25,2\n\n1e-1, 2 ,-1,1,3,0\r\n").unwrap();
        assert_eq!(d.points, vec![[0.5, -1.0], [0.1, 2.0]]);
        assert_eq!(d.task_names, ["a", "b", "c", "d"]);
        assert_eq!(d.kinds, [LabelKind::Binary, LabelKind::Binary, LabelKind::Regression, LabelKind::Classes { k: 3 }]);
        assert_eq!(d.labels[1], [-1.0, 1.0]); // 0/1 → −1/1
        assert_eq!(d.labels[2], [0.25, 3.0]);
        assert_eq!(d.n_train, 2);
    }

    fn err(text: &str) -> String {
        parse_csv(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_line_and_column() {
        assert!(err("").contains("empty"));
        assert!(err("a,b,c\n1,2,3").contains("line 1"));
        assert!(err("x1,x2\n1,2").contains("at least one task"));
        assert!(err("x1,x2,t\n").contains("no data rows"));
        assert!(err("x1,x2,t,t\n1,2,3,4").contains("duplicate"));
        assert!(err("x1,x2,\n1,2,3").contains("empty task name"));
        assert!(err("x1,x2,t:foo\n1,2,3").contains("unknown column kind"));
        assert!(err(&format!("x1,x2{}\n", ",t".repeat(9))).contains("at most 8"));
        let e = err("x1,x2,t\n1,2,1\n1,2\n");
        assert!(e.contains("line 3") && e.contains("expected 3 fields"), "{e}");
        let e = err("x1,x2,t\n1,2,1\n1,abc,1\n");
        assert!(e.contains("line 3, column 2 ('x2')") && e.contains("'abc'"), "{e}");
        let e = err("x1,x2,t\n1,2,NaN\n");
        assert!(e.contains("line 2, column 3 ('t')") && e.contains("finite"), "{e}");
        let e = err("x1,x2,t:bin\n1,2,1\n1,2,-1\n3,4,0.5\n");
        assert!(e.contains("line 4, column 3 ('t')") && e.contains("binary"), "{e}");
        let e = err("x1,x2,a,t:class\n1,2,0,1\n3,4,0,1.5\n");
        assert!(e.contains("line 3, column 4 ('t')") && e.contains("class"), "{e}");
        let e = err("x1,x2,a,t:class\n1,2,0,-1\n");
        assert!(e.contains("line 2, column 4"), "{e}");
    }
}
