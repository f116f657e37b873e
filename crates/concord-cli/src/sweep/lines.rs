//! A sweep's results file: one JSON object per finished cell, one line each (JSON Lines).
//! Reading checks every line (a line of another sweep is an error naming its number); a last
//! line without its newline is a write cut short by a kill, dropped (or kept, if it is whole).

use crate::UsageError;
use concord_core::train::float_serde;
use concord_core::train::ConflictSummary;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashSet;
use std::path::Path;

/// The axes' values of a cell as a JSON object, in the order the axes were given (written and
/// read in that order, whatever map type serde_json is built with).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Axes(pub Vec<(String, String)>);

impl Axes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Serialize for Axes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Axes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Axes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of axis values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Axes, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(Axes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One finished cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The sweep's fingerprint (base config + axes).
    pub sweep: String,
    /// sha256 of the cell's config JSON.
    pub key: String,
    /// The cell's index in the product (first axis slowest), and how many cells there are.
    pub cell: usize,
    pub cells: usize,
    /// What the base config came from (a preset's name, a file name).
    #[serde(default)]
    pub base: String,
    pub axes: Axes,
    /// The cell's method in the text form (`cagrad:c=0.3`, `upgrad+gradnorm`).
    pub method: String,
    pub task_names: Vec<String>,
    /// Steps asked for, and taken (fewer when the run stopped early).
    pub steps: usize,
    pub steps_done: usize,
    #[serde(with = "float_serde::floats")]
    pub final_train_losses: Vec<f64>,
    #[serde(with = "float_serde::opt_floats", default)]
    pub final_test_losses: Option<Vec<f64>>,
    pub conflict_summary: Option<ConflictSummary>,
    /// Why the run stopped early (e.g. a divergence); the cell is still done.
    pub error: Option<String>,
    /// The cell's wall time (building the trainer and every step), and the sweep's threads.
    pub wall_s: f64,
    pub threads: usize,
}

/// A line as read: where it was, what it says, its text.
#[derive(Clone, Debug)]
pub struct Entry {
    pub line_no: usize,
    pub line: Line,
    pub raw: String,
}

/// How a file ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tail {
    /// Empty, or the last line has its newline.
    Clean,
    /// The last line lacks its newline but is whole (kept; a newline is due before appending).
    Unterminated,
    /// The last line was cut short (a kill mid-write): the file's good part ends at this byte.
    Torn { keep: u64, line_no: usize },
}

/// The lines of a sweep file.
#[derive(Clone, Debug)]
pub struct SweepFile {
    pub entries: Vec<Entry>,
    pub tail: Tail,
}

/// Read `path`'s lines. `sweep`: the fingerprint every line must carry; `None` takes the first
/// line's (and sets it). Blank lines are skipped; any other line that is not a sweep line, or
/// one of another sweep, is an error naming the line.
pub fn read(path: &Path, sweep: &mut Option<String>) -> Result<SweepFile, UsageError> {
    let bytes = std::fs::read(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    parse(&bytes, &path.display().to_string(), sweep)
}

/// `read` of text already in memory; `name` is for messages.
pub fn parse(bytes: &[u8], name: &str, sweep: &mut Option<String>) -> Result<SweepFile, UsageError> {
    let mut entries = Vec::new();
    let mut tail = Tail::Clean;
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start < bytes.len() {
        line_no += 1;
        let (end, terminated) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(p) => (start + p, true),
            None => (bytes.len(), false),
        };
        let text = &bytes[start..end];
        let at = start;
        start = end + 1;
        let parsed = std::str::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Line>(t).map(|l| (t.to_string(), l)).map_err(|e| e.to_string()));
        let (raw, line) = match parsed {
            Ok(ok) => ok,
            Err(_) if !terminated => {
                tail = Tail::Torn { keep: at as u64, line_no };
                break;
            }
            Err(_) if text.iter().all(u8::is_ascii_whitespace) => continue,
            Err(e) => return Err(UsageError(format!("{name} line {line_no}: not a sweep line ({e})"))),
        };
        match sweep {
            None => *sweep = Some(line.sweep.clone()),
            Some(s) if *s != line.sweep => {
                return Err(UsageError(format!(
                    "{name} line {line_no}: a line of another sweep ({}, not {s}: another base config or other axes)",
                    line.sweep
                )))
            }
            Some(_) => {}
        }
        if !terminated {
            tail = Tail::Unterminated;
        }
        entries.push(Entry { line_no, line, raw });
    }
    Ok(SweepFile { entries, tail })
}

/// `path` as the file system names it (a file that does not exist yet: its folder's name plus
/// its own), to tell whether two paths are one file.
fn canonical(path: &Path) -> Option<std::path::PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Some(std::fs::canonicalize(parent).ok()?.join(path.file_name()?))
}

/// `concord sweep --merge A B … --out FILE`: every line of the inputs (all of one sweep), each
/// cell once, sorted by cell index. Written to a temporary file beside FILE, then renamed.
pub fn merge(inputs: &[std::path::PathBuf], out: &Path) -> Result<(usize, usize), UsageError> {
    if inputs.is_empty() {
        return Err(UsageError("--merge needs at least one input file".into()));
    }
    let out_canon = canonical(out);
    for input in inputs {
        if out_canon.is_some() && canonical(input) == out_canon {
            return Err(UsageError(format!(
                "--out {} is one of the --merge inputs: write the merge to a new file",
                out.display()
            )));
        }
    }
    let mut sweep = None;
    let mut seen = HashSet::new();
    let mut cells: Option<usize> = None;
    let mut kept: Vec<Entry> = Vec::new();
    let mut read_lines = 0;
    for input in inputs {
        let file = read(input, &mut sweep)?;
        if let Tail::Torn { line_no, .. } = file.tail {
            eprintln!("concord: warning: {} line {line_no} was cut short (a killed run?): left out", input.display());
        }
        for e in file.entries {
            read_lines += 1;
            if *cells.get_or_insert(e.line.cells) != e.line.cells {
                return Err(UsageError(format!(
                    "{} line {}: {} cells, other lines say {}",
                    input.display(),
                    e.line_no,
                    e.line.cells,
                    cells.unwrap_or_default()
                )));
            }
            if seen.insert(e.line.key.clone()) {
                kept.push(e);
            }
        }
    }
    kept.sort_by_key(|e| e.line.cell);
    if let Some(w) = kept.windows(2).find(|w| w[0].line.cell == w[1].line.cell) {
        return Err(UsageError(format!(
            "two different configs claim cell {}: the inputs are inconsistent",
            w[0].line.cell
        )));
    }
    let mut text = String::with_capacity(kept.iter().map(|e| e.raw.len() + 1).sum());
    for e in &kept {
        text.push_str(&e.raw);
        text.push('\n');
    }
    let tmp = out.with_file_name(format!(
        ".{}.merge-{}",
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(|e| UsageError(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        UsageError(format!("cannot write {}: {e}", out.display()))
    })?;
    Ok((read_lines, kept.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sweep: &str, cell: usize) -> Line {
        Line {
            sweep: sweep.into(),
            key: format!("k{cell}"),
            cell,
            cells: 4,
            base: "xor-conflict".into(),
            axes: Axes(vec![("seed".into(), cell.to_string()), ("lr".into(), "0.1".into())]),
            method: "mean".into(),
            task_names: vec!["a".into(), "b".into()],
            steps: 10,
            steps_done: 3,
            final_train_losses: vec![0.5, f64::INFINITY],
            final_test_losses: None,
            conflict_summary: None,
            error: Some("diverged".into()),
            wall_s: 0.25,
            threads: 2,
        }
    }

    fn text(lines: &[Line]) -> String {
        lines.iter().map(|l| serde_json::to_string(l).unwrap() + "\n").collect()
    }

    #[test]
    fn lines_read_back_with_their_axis_order_and_non_finite_losses() {
        let l = line("s", 1);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains(r#""axes":{"seed":"1","lr":"0.1"}"#), "{json}");
        assert!(json.contains(r#""final_train_losses":[0.5,"inf"]"#), "{json}");
        let back: Line = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_whole_one_kept() {
        let full = text(&[line("s", 0), line("s", 1)]);
        let mut sweep = None;
        let f = parse(full.as_bytes(), "f", &mut sweep).unwrap();
        assert_eq!((f.entries.len(), f.tail, sweep.as_deref()), (2, Tail::Clean, Some("s")));
        let torn = format!("{full}{}", &serde_json::to_string(&line("s", 2)).unwrap()[..30]);
        let f = parse(torn.as_bytes(), "f", &mut None).unwrap();
        assert_eq!((f.entries.len(), f.tail), (2, Tail::Torn { keep: full.len() as u64, line_no: 3 }));
        let whole = format!("{full}{}", serde_json::to_string(&line("s", 2)).unwrap());
        let f = parse(whole.as_bytes(), "f", &mut None).unwrap();
        assert_eq!((f.entries.len(), f.tail), (3, Tail::Unterminated));
    }

    #[test]
    fn bad_lines_and_other_sweeps_are_errors_naming_the_line() {
        let good = text(&[line("s", 0)]);
        let bad = format!("{good}{{\"not\": 1}}\n{good}");
        let e = parse(bad.as_bytes(), "f.jsonl", &mut None).unwrap_err().0;
        assert!(e.starts_with("f.jsonl line 2: not a sweep line"), "{e}");
        let mixed = text(&[line("s", 0), line("t", 1)]);
        let e = parse(mixed.as_bytes(), "f.jsonl", &mut None).unwrap_err().0;
        assert!(e.starts_with("f.jsonl line 2: a line of another sweep (t, not s"), "{e}");
        let e = parse(good.as_bytes(), "f.jsonl", &mut Some("u".into())).unwrap_err().0;
        assert!(e.starts_with("f.jsonl line 1: a line of another sweep"), "{e}");
    }
}
