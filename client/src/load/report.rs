//! The run's report: per-request-type table, verification verdict, JSON form, exit status.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::load::stats::{Kind, Summary};
use crate::load::verify::Verification;

/// Everything a run of the client found out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub url: String,
    pub clients: usize,
    pub requests_per_client: usize,
    pub prob: f64,
    pub seed: Option<u64>,
    /// Wall time of the load phase (the read-back not included).
    pub load_secs: f64,
    /// Wall time of the read-back.
    pub verify_secs: f64,
    /// One row per request type that was sent.
    pub summaries: Vec<Summary>,
    /// Orders the store acknowledged with a number.
    pub orders_placed: usize,
    /// TCP connections the sessions opened (= clients when none broke).
    pub connects: u64,
    pub verification: Verification,
}

impl Report {
    pub fn summary(&self, kind: Kind) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.kind == kind)
    }

    /// Every acknowledged order read back as ordered.
    pub fn verified(&self) -> bool {
        self.verification.ok()
    }

    /// Some request failed even after all its retries.
    pub fn saw_errors(&self) -> bool {
        self.summaries.iter().any(|s| s.errors > 0)
    }

    /// Retries happened (the store failed some attempts, the client recovered).
    pub fn retries(&self) -> u64 {
        self.summaries.iter().map(|s| s.retries).sum()
    }

    /// 0: verified; 1: an acknowledged order is missing or wrong; 2: not a single request got
    /// an answer (wrong URL, store down).
    pub fn exit_status(&self) -> u8 {
        let sent: u64 = self.summaries.iter().map(|s| s.count).sum();
        let answered: u64 = self.summaries.iter().map(|s| s.ok + s.rejected).sum();
        if !self.verified() {
            1
        } else if sent > 0 && answered == 0 {
            2
        } else {
            0
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.requests_per_client == 0 {
            let _ = writeln!(
                s,
                "toystore client: read-back only of {} order(s) over {} connection(s), {} ({:.1} s)",
                self.orders_placed, self.clients, self.url, self.verify_secs
            );
        } else {
            let _ = writeln!(
                s,
                "toystore client: {} session(s) x {} iteration(s), p = {}, {} ({:.1} s load, {:.1} s read-back)",
                self.clients, self.requests_per_client, self.prob, self.url, self.load_secs, self.verify_secs
            );
        }
        s.push('\n');
        s.push_str(&stats_table(&self.summaries));
        s.push('\n');
        let v = &self.verification;
        if !v.ran {
            let _ = writeln!(s, "verification: skipped ({} order(s) acknowledged)", self.orders_placed);
        } else if v.ok() {
            let _ = writeln!(s, "verification: OK, all {} acknowledged order(s) read back exactly as ordered", v.checked);
        } else {
            let _ = writeln!(
                s,
                "verification: FAILED, {} problem(s); {} of {} acknowledged order(s) read back as ordered",
                v.problems.len(),
                v.verified,
                v.checked
            );
            const SHOWN: usize = 50;
            for p in v.problems.iter().take(SHOWN) {
                let _ = writeln!(s, "  {p}");
            }
            if v.problems.len() > SHOWN {
                let _ = writeln!(s, "  ... and {} more (see --json)", v.problems.len() - SHOWN);
            }
        }
        if self.saw_errors() {
            let _ = writeln!(s, "errors: some requests failed after every retry (see the errors column)");
        }
        s
    }
}

/// A plain-text table of the summaries, columns aligned.
pub fn stats_table(summaries: &[Summary]) -> String {
    let header = ["type", "count", "errors", "rejected", "retries", "mean ms", "p50 ms", "p99 ms", "max ms"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for x in summaries {
        rows.push(vec![
            x.kind.name().to_string(),
            x.count.to_string(),
            x.errors.to_string(),
            x.rejected.to_string(),
            x.retries.to_string(),
            format!("{:.3}", x.mean_ms),
            format!("{:.3}", x.p50_ms),
            format!("{:.3}", x.p99_ms),
            format!("{:.3}", x.max_ms),
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for r in &rows {
        for (c, cell) in r.iter().enumerate() {
            if c == 0 {
                let _ = write!(s, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(s, "  {cell:>w$}", w = widths[c]);
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::verify::{PlacedOrder, Problem};

    fn summary(kind: Kind, ok: u64, errors: u64) -> Summary {
        Summary {
            kind,
            count: ok + errors,
            ok,
            rejected: 0,
            errors,
            retries: 2,
            mean_ms: 1.5,
            p50_ms: 1.0,
            p99_ms: 4.25,
            max_ms: 9.0,
        }
    }

    fn report(summaries: Vec<Summary>, verification: Verification) -> Report {
        Report {
            url: "http://127.0.0.1:1".into(),
            clients: 2,
            requests_per_client: 10,
            prob: 0.5,
            seed: Some(1),
            load_secs: 1.0,
            verify_secs: 0.1,
            summaries,
            orders_placed: 3,
            connects: 2,
            verification,
        }
    }

    #[test]
    fn table_has_a_row_per_type() {
        let t = stats_table(&[summary(Kind::Lookup, 20, 0), summary(Kind::Order, 3, 1)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("type") && lines[0].contains("p99 ms"));
        assert!(lines[2].starts_with("order ") && lines[2].contains("4.250"), "{t}");
    }

    #[test]
    fn exit_status_follows_verification_then_reachability() {
        let ok = Verification { ran: true, checked: 3, verified: 3, problems: vec![] };
        assert_eq!(report(vec![summary(Kind::Lookup, 20, 1)], ok.clone()).exit_status(), 0);
        assert_eq!(report(vec![summary(Kind::Lookup, 0, 20)], ok.clone()).exit_status(), 2);
        let bad = Verification {
            ran: true,
            checked: 3,
            verified: 2,
            problems: vec![Problem::Missing {
                expected: PlacedOrder { number: 1, name: "Tux".into(), quantity: 1, key: "k".into() },
                detail: "404: no such order".into(),
            }],
        };
        let r = report(vec![summary(Kind::Lookup, 20, 0)], bad);
        assert_eq!(r.exit_status(), 1);
        let text = r.to_text();
        assert!(text.contains("verification: FAILED"), "{text}");
        assert!(text.contains("MISSING  #1 Tux x1"), "{text}");
    }

    #[test]
    fn json_round_trips() {
        let r = report(vec![summary(Kind::Order, 3, 0)], Verification::default());
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains("\"kind\":\"order\""));
        let back: Report = serde_json::from_str(&j).unwrap();
        assert_eq!(back.summaries, r.summaries);
    }
}
