//! Result rows of a batch job as a readable table, CSV or JSON Lines.

use crate::prediction::Prediction;
use std::path::PathBuf;

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The file.
    pub path: PathBuf,
    /// The prediction, or why there is none.
    pub result: Result<Prediction, String>,
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned text for a terminal.
    #[default]
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "pretty" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "jsonl" | "json-lines" | "ndjson" => Ok(Format::Jsonl),
            other => Err(format!(
                "unknown format {other:?}: expected table, csv or jsonl"
            )),
        }
    }
}

/// What every row shares.
#[derive(Debug, Clone)]
pub struct RowContext {
    /// Class names, indexed by class (an index is printed where a name is missing).
    pub classes: Vec<String>,
    /// How many of the most probable classes each row lists.
    pub top_k: usize,
    /// The engine that ran the model (`ort` or `tract`).
    pub engine: String,
    /// The execution provider that ran it.
    pub provider: String,
}

impl RowContext {
    fn class_name(&self, class: usize) -> String {
        self.classes
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The header line, for formats that have one.
pub fn header(format: Format, ctx: &RowContext) -> Option<String> {
    match format {
        Format::Csv => {
            let mut cols = vec!["path".to_string(), "status".into()];
            for i in 1..=ctx.top_k.max(1) {
                cols.push(format!("label_{i}"));
                cols.push(format!("probability_{i}"));
            }
            cols.extend(["engine".into(), "provider".into(), "error".into()]);
            Some(cols.join(","))
        }
        Format::Table | Format::Jsonl => None,
    }
}

/// One line (without its newline) for one file.
pub fn row(format: Format, outcome: &FileOutcome, ctx: &RowContext) -> String {
    let path = outcome.path.display().to_string();
    let k = ctx.top_k.max(1);
    match (format, &outcome.result) {
        (Format::Table, Ok(p)) => {
            let top: Vec<String> = p
                .top_k(k)
                .iter()
                .map(|&(c, prob)| format!("{} {:.2} %", ctx.class_name(c), 100.0 * prob))
                .collect();
            format!("{path}\t{}", top.join(", "))
        }
        (Format::Table, Err(e)) => format!("{path}\tERROR {e}"),
        (Format::Csv, Ok(p)) => {
            let mut cols = vec![csv_field(&path), "ok".into()];
            let top = p.top_k(k);
            for i in 0..k {
                match top.get(i) {
                    Some(&(c, prob)) => {
                        cols.push(csv_field(&ctx.class_name(c)));
                        cols.push(format!("{prob:.6}"));
                    }
                    None => cols.extend([String::new(), String::new()]),
                }
            }
            cols.extend([
                csv_field(&ctx.engine),
                csv_field(&ctx.provider),
                String::new(),
            ]);
            cols.join(",")
        }
        (Format::Csv, Err(e)) => {
            let mut cols = vec![csv_field(&path), "error".into()];
            cols.extend(std::iter::repeat_n(String::new(), 2 * k));
            cols.extend([
                csv_field(&ctx.engine),
                csv_field(&ctx.provider),
                csv_field(e),
            ]);
            cols.join(",")
        }
        (Format::Jsonl, Ok(p)) => {
            let top: Vec<serde_json::Value> = p
                .top_k(k)
                .iter()
                .map(|&(c, prob)| serde_json::json!({"label": ctx.class_name(c), "class": c, "probability": prob}))
                .collect();
            serde_json::json!({"path": path, "ok": true, "top": top, "engine": ctx.engine, "provider": ctx.provider})
                .to_string()
        }
        (Format::Jsonl, Err(e)) => {
            serde_json::json!({"path": path, "ok": false, "error": e}).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prediction::Prediction;
    use std::path::PathBuf;

    fn ctx() -> RowContext {
        RowContext {
            classes: vec!["cat".into(), "dog, big".into(), "eel".into()],
            top_k: 2,
            engine: "tract".into(),
            provider: "cpu".into(),
        }
    }

    fn ok(path: &str) -> FileOutcome {
        FileOutcome {
            path: PathBuf::from(path),
            result: Ok(Prediction {
                class: 1,
                class_name: "dog, big".into(),
                probability: 0.7,
                probabilities: vec![0.2, 0.7, 0.1],
            }),
        }
    }

    #[test]
    fn csv_quotes_and_keeps_columns_aligned() {
        let c = ctx();
        let head = header(Format::Csv, &c).unwrap();
        let good = row(Format::Csv, &ok("a \"b\".png"), &c);
        let bad = row(
            Format::Csv,
            &FileOutcome {
                path: "x.png".into(),
                result: Err("cannot decode: bad, very".into()),
            },
            &c,
        );
        assert_eq!(
            head,
            "path,status,label_1,probability_1,label_2,probability_2,engine,provider,error"
        );
        assert_eq!(
            good,
            "\"a \"\"b\"\".png\",ok,\"dog, big\",0.700000,cat,0.200000,tract,cpu,"
        );
        assert_eq!(
            bad,
            "x.png,error,,,,,tract,cpu,\"cannot decode: bad, very\""
        );
    }

    #[test]
    fn jsonl_rows_parse() {
        let line = row(Format::Jsonl, &ok("a.png"), &ctx());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["top"][0]["label"], "dog, big");
        assert_eq!(v["top"][1]["class"], 0);
        assert_eq!(v["ok"], true);
    }
}
