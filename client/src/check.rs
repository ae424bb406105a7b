//! `toystore check`: an fsck for a store's data directories, running or stopped. It reads
//! files only and never writes.
//!
//! What it verifies (ARCHITECTURE.md, "Stock"), each failure a named [`Violation`] with the
//! file, the line and what is wrong:
//! - every replica's `orders.csv` parses, record indexes run 0,1,2,... without gaps, epochs
//!   never decrease, order numbers run 0,1,2,... over the order records, and no key appears
//!   twice. A torn last line (a crash mid-append, never acknowledged) is reported, not an error.
//! - the replicas agree: the *committed prefix* is the longest prefix of records held
//!   (byte-identical) by a majority of the replicas; a replica holding a different record
//!   inside it has diverged. Replicas that hold less of it trail (reported, not an error).
//!   Differing tails past it are uncommitted (a deposed leader's, cut when it rejoins): an
//!   error only with `--strict`.
//! - `catalog.csv`, per toy: `seeded + restocked - quantity` equals the quantity of the
//!   committed orders with number `< applied_orders` for it (nothing leaked, nothing counted
//!   twice), `quantity >= 0` (never oversold), and `applied_orders` is at most the committed
//!   order count. Committed orders not applied yet are counted: normal while the store runs
//!   (the catalog trails the commit by one push), an error with `--strict` (a quiet point).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use toystore_catalog::inventory::Inventory;
use toystore_manifest::resolve::{Manifest, Selection, ServiceKind};

pub mod log;

use log::{Line, Record};

/// The catalog's file inside its data directory.
pub const CATALOG_FILE: &str = "catalog.csv";
/// A replica's log inside its data directory.
pub const ORDERS_FILE: &str = "orders.csv";

/// `toystore check`: which directories to read, and how strictly.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CheckArgs {
    /// The store's manifest: the catalog's and every replica's data directory, resolved as
    /// `toystore serve` does (relative to the manifest file).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The catalog's data directory (instead of the manifest's).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// A replica's data directory; repeat for each (instead of the manifest's).
    #[arg(long)]
    pub replica: Vec<PathBuf>,
    /// A quiet point: every committed order must be applied at the catalog, and the replicas'
    /// tails must agree too.
    #[arg(long, alias = "quiet-point")]
    pub strict: bool,
    /// Print the report as JSON (for machines and tests) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The directories to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub catalog: PathBuf,
    pub replicas: Vec<PathBuf>,
}

/// A mistake in how `toystore check` was called (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("name the store: --manifest <toystore.toml>, or --catalog <dir> and --replica <dir> (repeated)")]
    NothingToCheck,
    #[error("no catalog directory: pass --catalog <dir> (or --manifest)")]
    NoCatalog,
    #[error("cannot read the manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
}

impl CheckArgs {
    /// The directories, from the manifest and/or the explicit flags (the flags win).
    pub fn dirs(&self) -> Result<Dirs, UsageError> {
        if self.manifest.is_none() && self.catalog.is_none() && self.replica.is_empty() {
            return Err(UsageError::NothingToCheck);
        }
        let from_manifest = match &self.manifest {
            Some(path) => Some(manifest_dirs(path)?),
            None => None,
        };
        let catalog = self
            .catalog
            .clone()
            .or_else(|| from_manifest.as_ref().map(|d| d.catalog.clone()))
            .ok_or(UsageError::NoCatalog)?;
        let replicas = if self.replica.is_empty() {
            from_manifest.map(|d| d.replicas).unwrap_or_default()
        } else {
            self.replica.clone()
        };
        for dir in std::iter::once(&catalog).chain(&replicas) {
            if !dir.is_dir() {
                return Err(UsageError::NotADirectory(dir.clone()));
            }
        }
        Ok(Dirs { catalog, replicas })
    }
}

/// The data directories a manifest names, read, resolved and validated exactly as `toystore
/// serve` reads it (nothing is selected to run, so no component file needs to exist).
fn manifest_dirs(path: &Path) -> Result<Dirs, UsageError> {
    let manifest = Manifest::load(path, &Selection::none()).map_err(|e| UsageError::Manifest { path: path.to_path_buf(), reason: e.to_string() })?;
    let catalog = manifest.services.iter().find(|s| s.kind == ServiceKind::Catalog).map(|s| s.data_dir.clone()).ok_or(UsageError::NoCatalog)?;
    let replicas = manifest.services.iter().filter(|s| s.replica_id().is_some()).map(|s| s.data_dir.clone()).collect();
    Ok(Dirs { catalog, replicas })
}

/// What kind of rule a violation breaks (decided on this, never on message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A file that cannot be read at all, or whose header is not the record format's.
    Unreadable,
    /// A complete line that is not a record.
    BadRecord,
    /// Record indexes not 0,1,2,...
    IndexGap,
    /// An epoch lower than the record before it.
    EpochDecreased,
    /// Order numbers not 0,1,2,... over the order records (a reused or skipped number).
    NumberGap,
    /// The same idempotency key on two orders of one log.
    DuplicateKey,
    /// A replica holds a different record inside the committed prefix.
    Diverged,
    /// Replicas' tails past the committed prefix differ (only with `--strict`).
    TailsDiffer,
    /// `catalog.csv` does not parse.
    CatalogUnreadable,
    /// A toy below zero.
    Oversold,
    /// `seeded + restocked - quantity` differs from the applied committed orders.
    NotConserved,
    /// The catalog claims more orders applied than are committed.
    AppliedBeyondCommit,
    /// An applied order names a toy the catalog does not have.
    UnknownToy,
    /// Committed orders not applied yet (only with `--strict`).
    Unapplied,
}

/// One broken rule: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub file: PathBuf,
    /// 1-based line in `file` (the header is line 1), when one line is to blame.
    pub line: Option<u64>,
    pub what: String,
}

/// One replica's log as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaReport {
    pub file: PathBuf,
    /// Valid records read (up to the first one that does not parse or is out of sequence).
    pub records: u64,
    pub orders: u64,
    /// The line number of a torn last line (no `\n`: a crash mid-append), if any.
    pub torn_last_line: Option<u64>,
    /// How many committed records it lacks (0: it holds the whole committed prefix).
    pub trails_by: u64,
}

/// The prefix a majority holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Committed {
    pub records: u64,
    pub orders: u64,
    /// How many replicas make a majority.
    pub majority: usize,
}

/// One toy's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToyReport {
    pub name: String,
    pub seeded: i64,
    pub restocked: i64,
    pub quantity: i64,
    /// Σ quantity of the committed orders for it with number < applied_orders (None: not
    /// computable, the catalog claims orders that are not committed).
    pub ordered: Option<i128>,
}

/// The catalog's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogReport {
    pub file: PathBuf,
    pub applied_orders: u64,
    /// Committed orders the catalog has not applied yet.
    pub unapplied: u64,
    pub toys: Vec<ToyReport>,
}

/// Everything `toystore check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No violations.
    pub ok: bool,
    pub strict: bool,
    pub replicas: Vec<ReplicaReport>,
    pub committed: Committed,
    pub catalog: Option<CatalogReport>,
    pub violations: Vec<Violation>,
    /// What is worth knowing but breaks nothing (torn lines, differing uncommitted tails).
    pub notes: Vec<String>,
}

/// A log's valid records, each with its line.
struct Parsed {
    file: PathBuf,
    records: Vec<(Record, Line)>,
    torn_last_line: Option<u64>,
}

/// Read and judge one replica's log on its own.
fn parse_replica(dir: &Path, violations: &mut Vec<Violation>, notes: &mut Vec<String>) -> Parsed {
    let file = dir.join(ORDERS_FILE);
    let mut parsed = Parsed { file: file.clone(), records: Vec::new(), torn_last_line: None };
    let mut violation = |kind, line, what: String| violations.push(Violation { kind, file: file.clone(), line, what });
    let raw = match log::read(&file) {
        Ok(raw) => raw,
        Err(e) => {
            violation(ViolationKind::Unreadable, None, format!("cannot read: {e}"));
            return parsed;
        }
    };
    if let Some(torn) = &raw.torn {
        let line = raw.lines.len() as u64 + if raw.header.is_some() { 2 } else { 1 };
        parsed.torn_last_line = Some(line);
        notes.push(format!(
            "{}:{line}: torn last line ({} bytes without a newline: a crash mid-append, never acknowledged; the replica cuts it on load)",
            file.display(),
            torn.len()
        ));
    }
    match raw.header.as_deref() {
        None => return parsed,
        Some(h) if h == log::header() => {}
        Some(h) if h == log::old_header() => {
            violation(
                ViolationKind::Unreadable,
                Some(1),
                format!("the format before issue 9 (`{h}`); the replicas refuse it"),
            );
            return parsed;
        }
        Some(other) => {
            violation(ViolationKind::Unreadable, Some(1), format!("header `{other}`, expected `{}`", log::header()));
            return parsed;
        }
    }
    let mut next_number = 0u64;
    let mut keys: HashMap<String, (u64, u64)> = HashMap::new();
    for line in raw.lines {
        let record = match log::parse_line(&line.text) {
            Ok(r) => r,
            Err(reason) => {
                violation(ViolationKind::BadRecord, Some(line.number), format!("{reason} (nothing after it is read)"));
                break;
            }
        };
        let position = parsed.records.len() as u64;
        if record.index != position {
            violation(
                ViolationKind::IndexGap,
                Some(line.number),
                format!("record index {} where {position} was due (nothing after it is read)", record.index),
            );
            break;
        }
        if let Some((prev, _)) = parsed.records.last() {
            if record.epoch < prev.epoch {
                violation(
                    ViolationKind::EpochDecreased,
                    Some(line.number),
                    format!("epoch {} after epoch {}", record.epoch, prev.epoch),
                );
            }
        }
        if let Some(order) = &record.order {
            if order.number != next_number {
                let how = if order.number < next_number { "reused" } else { "skipped to" };
                violation(
                    ViolationKind::NumberGap,
                    Some(line.number),
                    format!("order number {} {how} where {next_number} was due", order.number),
                );
            }
            next_number = next_number.max(order.number.saturating_add(1));
            if let Some((number, first_line)) = keys.get(&order.key) {
                violation(
                    ViolationKind::DuplicateKey,
                    Some(line.number),
                    format!("key `{}` of order {} already on line {first_line} (order {number})", order.key, order.number),
                );
            } else {
                keys.insert(order.key.clone(), (order.number, line.number));
            }
        }
        parsed.records.push((record, line));
    }
    parsed
}

/// How many leading records two logs share, byte for byte.
fn common_prefix(a: &[(Record, Line)], b: &[(Record, Line)]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x.1.text == y.1.text).count()
}

/// Check the store in `dirs`. Reads files only.
pub fn check(dirs: &Dirs, strict: bool) -> Report {
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    let logs: Vec<Parsed> = dirs.replicas.iter().map(|d| parse_replica(d, &mut violations, &mut notes)).collect();

    // The committed prefix: for each replica, the longest prefix of its log that a majority
    // shares with it; the longest of those.
    let majority = logs.len() / 2 + 1;
    let mut committed: &[(Record, Line)] = &[];
    for a in &logs {
        let mut shared: Vec<usize> = logs.iter().map(|b| common_prefix(&a.records, &b.records)).collect();
        shared.sort_unstable_by(|x, y| y.cmp(x));
        let held = shared.get(majority - 1).copied().unwrap_or(0);
        if held > committed.len() {
            committed = &a.records[..held];
        }
    }
    let committed_orders: Vec<&log::Order> = committed.iter().filter_map(|(r, _)| r.order.as_ref()).collect();

    let mut replicas = Vec::new();
    for log in &logs {
        let agree = common_prefix(&log.records, committed);
        if agree < log.records.len().min(committed.len()) {
            let (mine, line) = &log.records[agree];
            let theirs = &committed[agree].1.text;
            violations.push(Violation {
                kind: ViolationKind::Diverged,
                file: log.file.clone(),
                line: Some(line.number),
                what: format!(
                    "record {} is `{}` but the committed record (held by a majority) is `{theirs}`",
                    mine.index, line.text
                ),
            });
        }
        // Reported in the replica's line of the summary (a replica that was down, catching up).
        let trails_by = (committed.len() - agree) as u64;
        replicas.push(ReplicaReport {
            file: log.file.clone(),
            records: log.records.len() as u64,
            orders: log.records.iter().filter(|(r, _)| r.order.is_some()).count() as u64,
            torn_last_line: log.torn_last_line,
            trails_by,
        });
    }
    // Tails past the committed prefix: uncommitted, so they may differ while a deposed leader
    // has not rejoined yet.
    for (i, a) in logs.iter().enumerate() {
        for b in &logs[i + 1..] {
            let shared = common_prefix(&a.records, &b.records);
            if shared >= committed.len() && shared < a.records.len().min(b.records.len()) {
                let what = format!(
                    "uncommitted tails differ from record {shared}: {} has `{}`, {} has `{}`",
                    a.file.display(),
                    a.records[shared].1.text,
                    b.file.display(),
                    b.records[shared].1.text
                );
                if strict {
                    let line = Some(a.records[shared].1.number);
                    violations.push(Violation { kind: ViolationKind::TailsDiffer, file: a.file.clone(), line, what });
                } else {
                    notes.push(what);
                }
            }
        }
    }

    let catalog = check_catalog(&dirs.catalog, &committed_orders, strict, &mut violations);
    Report {
        ok: violations.is_empty(),
        strict,
        replicas,
        committed: Committed {
            records: committed.len() as u64,
            orders: committed_orders.len() as u64,
            majority: if logs.is_empty() { 0 } else { majority },
        },
        catalog,
        violations,
        notes,
    }
}

/// The catalog's books against the committed orders.
fn check_catalog(
    dir: &Path,
    committed: &[&log::Order],
    strict: bool,
    violations: &mut Vec<Violation>,
) -> Option<CatalogReport> {
    let file = dir.join(CATALOG_FILE);
    let mut violation =
        |kind, line, what: String| violations.push(Violation { kind, file: file.clone(), line, what });
    let inv = match std::fs::read(&file).map_err(|e| e.to_string()).and_then(|b| Inventory::parse(&b).map_err(|e| e.to_string())) {
        Ok(inv) => inv,
        Err(reason) => {
            violation(ViolationKind::CatalogUnreadable, None, reason);
            return None;
        }
    };
    let applied = inv.applied_orders();
    let count = committed.len() as u64;
    let known = applied <= count;
    if !known {
        violation(
            ViolationKind::AppliedBeyondCommit,
            Some(2),
            format!("applied_orders is {applied} but only {count} orders are committed"),
        );
    }
    let applied_orders = if known { &committed[..applied as usize] } else { &[][..] };
    for o in applied_orders {
        if inv.get(&o.name).is_none() {
            violation(ViolationKind::UnknownToy, None, format!("applied order {} names `{}`, not in the catalog", o.number, o.name));
        }
    }
    let mut toys = Vec::new();
    for (i, p) in inv.products().iter().enumerate() {
        // Rows are written one per line under the header.
        let line = Some(i as u64 + 2);
        let ordered =
            known.then(|| applied_orders.iter().filter(|o| o.name == p.name).map(|o| i128::from(o.quantity)).sum::<i128>());
        if p.quantity < 0 {
            violation(ViolationKind::Oversold, line, format!("{}: quantity {} (oversold by {})", p.name, p.quantity, -p.quantity));
        }
        if let Some(ordered) = ordered {
            let taken = p.taken();
            if taken != ordered {
                let how = if taken > ordered {
                    format!("{} unit(s) taken with no committed order behind them (leaked)", taken - ordered)
                } else {
                    format!("{} unit(s) ordered but not taken", ordered - taken)
                };
                violation(
                    ViolationKind::NotConserved,
                    line,
                    format!(
                        "{}: seeded {} + restocked {} - quantity {} = {taken}, but committed orders 0..{applied} hold {ordered}: {how}",
                        p.name, p.seeded, p.restocked, p.quantity
                    ),
                );
            }
        }
        toys.push(ToyReport { name: p.name.clone(), seeded: p.seeded, restocked: p.restocked, quantity: p.quantity, ordered });
    }
    let unapplied = count.saturating_sub(applied);
    if strict && unapplied > 0 {
        violation(
            ViolationKind::Unapplied,
            None,
            format!("{unapplied} committed order(s) not applied (applied_orders {applied} of {count}) at a quiet point"),
        );
    }
    Some(CatalogReport { file, applied_orders: applied, unapplied, toys })
}

impl Report {
    /// The human summary: a few lines, then each violation as `file:line: what`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut say = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        say(format!(
            "toystore check: {}{}",
            if self.ok { "OK" } else { "VIOLATIONS" },
            if self.strict { " (strict: quiet point)" } else { "" }
        ));
        say(format!(
            "committed prefix: {} records, {} orders (held by a majority: {} of {} replicas)",
            self.committed.records,
            self.committed.orders,
            self.committed.majority,
            self.replicas.len()
        ));
        for r in &self.replicas {
            let mut extra = Vec::new();
            if r.trails_by > 0 {
                extra.push(format!("trails by {}", r.trails_by));
            }
            if let Some(line) = r.torn_last_line {
                extra.push(format!("torn last line {line}"));
            }
            let extra = if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) };
            say(format!("  {}: {} records, {} orders{extra}", r.file.display(), r.records, r.orders));
        }
        if let Some(c) = &self.catalog {
            let conserved = c.toys.iter().filter(|t| t.ordered == Some(i128::from(t.seeded) + i128::from(t.restocked) - i128::from(t.quantity))).count();
            say(format!(
                "catalog {}: applied_orders {} ({} committed not applied yet); seeded + restocked - quantity = ordered for {} of {} toys",
                c.file.display(),
                c.applied_orders,
                c.unapplied,
                conserved,
                c.toys.len()
            ));
        }
        for n in &self.notes {
            say(format!("note: {n}"));
        }
        for v in &self.violations {
            let at = match v.line {
                Some(line) => format!("{}:{line}", v.file.display()),
                None => v.file.display().to_string(),
            };
            say(format!("VIOLATION {at}: {}", v.what));
        }
        out
    }
}

/// `toystore check`: print the report; exit 0 (all checks pass), 1 (a violation), 2 (usage).
pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let dirs = match args.dirs() {
        Ok(dirs) => dirs,
        Err(e) => {
            eprintln!("toystore check: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = check(&dirs, args.strict);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
    } else {
        print!("{}", report.summary());
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests;
