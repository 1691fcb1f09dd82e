//! The benchmark's output: one row per figure, printed as a table and written
//! as JSON and CSV so that runs can be compared by machines too.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub scenario: String,
    /// What was measured: `dts`, `mydumper/myloader`, `native parallel=4`, ...
    pub subject: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub note: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub command: String,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn add(&mut self, scenario: &str, subject: &str, metric: &str, value: f64, unit: &str) {
        self.add_noted(scenario, subject, metric, value, unit, "");
    }

    pub fn add_noted(
        &mut self,
        scenario: &str,
        subject: &str,
        metric: &str,
        value: f64,
        unit: &str,
        note: &str,
    ) {
        let figure = Figure {
            scenario: scenario.into(),
            subject: subject.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            note: note.into(),
        };
        println!("  {}", one_line(&figure));
        self.figures.push(figure);
    }

    pub fn table(&self) -> String {
        let headers = ["scenario", "subject", "metric", "value", "unit", "note"];
        let rows: Vec<[String; 6]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.scenario.clone(),
                    f.subject.clone(),
                    f.metric.clone(),
                    format_value(f.value),
                    f.unit.clone(),
                    f.note.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        let line = |cells: &[String]| -> String {
            let mut l = String::from("|");
            for (i, cell) in cells.iter().enumerate() {
                let _ = if i == 3 {
                    write!(l, " {:>w$} |", cell, w = widths[i])
                } else {
                    write!(l, " {:<w$} |", cell, w = widths[i])
                };
            }
            l
        };
        out += &line(&headers.map(String::from));
        out.push('\n');
        out += &line(&widths.map(|w| "-".repeat(w)));
        out.push('\n');
        for row in &rows {
            out += &line(row);
            out.push('\n');
        }
        out
    }

    pub fn csv(&self) -> String {
        let mut out = String::from("scenario,subject,metric,value,unit,note\n");
        for f in &self.figures {
            let cells = [
                f.scenario.clone(),
                f.subject.clone(),
                f.metric.clone(),
                f.value.to_string(),
                f.unit.clone(),
                f.note.clone(),
            ];
            let quoted: Vec<String> = cells
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect();
            out += &quoted.join(",");
            out.push('\n');
        }
        out
    }

    /// Writes `bench.json`, `bench.csv` and `bench.md` (the table) into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("bench.csv"), self.csv())?;
        std::fs::write(dir.join("bench.md"), self.table())?;
        Ok(())
    }
}

fn one_line(f: &Figure) -> String {
    let note = if f.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.note)
    };
    format!(
        "{} / {} / {}: {} {}{note}",
        f.scenario,
        f.subject,
        f.metric,
        format_value(f.value),
        f.unit
    )
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_csv_carry_every_figure() {
        let mut report = Report::default();
        report.add("full sync", "dts", "seconds", 12.345, "s");
        report.add_noted(
            "full sync",
            "dts",
            "vs best peer",
            1.5,
            "x",
            "a \"quoted\" note",
        );
        let table = report.table();
        assert!(table.contains("| full sync | dts     | seconds      |  12.3 | s    |"));
        let csv = report.csv();
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.contains("\"a \"\"quoted\"\" note\""));
    }
}
