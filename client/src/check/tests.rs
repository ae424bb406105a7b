//! `toystore check` on fabricated stores: a good one, then one mutation per rule, each of
//! which must be caught (and named).

use std::fs;

use super::*;

const HEADER: &str = "index,epoch,kind,number,name,quantity,price,key\n";

/// A good log: epoch 1, three orders, epoch 2, one more (Tux 2+1, Fox 1, Whale 4).
fn good_log() -> String {
    let mut s = HEADER.to_string();
    s += "0,1,epoch,,,,,\n";
    s += "1,1,order,0,Tux,2,25.99,k-a\n";
    s += "2,1,order,1,Fox,1,19.99,k-b\n";
    s += "3,1,order,2,Whale,4,34.50,k-c\n";
    s += "4,2,epoch,,,,,\n";
    s += "5,2,order,3,Tux,1,25.99,k-d\n";
    s
}

/// The catalog after applying `applied` of those orders (and a Fox restock of 5).
fn catalog_csv(applied: u64) -> String {
    let orders: [(&str, i64); 4] = [("Tux", 2), ("Fox", 1), ("Whale", 4), ("Tux", 1)];
    let mut rows = vec!["name,price,quantity,seeded,restocked,applied_orders".to_string()];
    for (name, price, restocked) in [("Tux", "25.99", 0), ("Fox", "19.99", 5), ("Whale", "34.50", 0)] {
        let taken: i64 = orders[..applied as usize].iter().filter(|(n, _)| *n == name).map(|(_, q)| q).sum();
        rows.push(format!("{name},{price},{},100,{restocked},{applied}", 100 + restocked - taken));
    }
    rows.join("\n") + "\n"
}

struct Store {
    _dir: tempfile::TempDir,
    dirs: Dirs,
}

impl Store {
    /// Three replicas with `logs` and a catalog with `catalog`.
    fn new(logs: [&str; 3], catalog: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog_dir = dir.path().join("catalog");
        fs::create_dir(&catalog_dir).unwrap();
        fs::write(catalog_dir.join(CATALOG_FILE), catalog).unwrap();
        let replicas: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("order-{i}"))).collect();
        for (r, log) in replicas.iter().zip(logs) {
            fs::create_dir(r).unwrap();
            if !log.is_empty() {
                fs::write(r.join(ORDERS_FILE), log).unwrap();
            }
        }
        Self { _dir: dir, dirs: Dirs { catalog: catalog_dir, replicas } }
    }

    fn good() -> Self {
        let log = good_log();
        Self::new([&log, &log, &log], &catalog_csv(4))
    }

    fn check(&self) -> Report {
        check(&self.dirs, false)
    }
}

fn kinds(r: &Report) -> Vec<ViolationKind> {
    r.violations.iter().map(|v| v.kind).collect()
}

#[test]
fn a_good_store_passes() {
    let store = Store::good();
    let r = store.check();
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.committed, Committed { records: 6, orders: 4, majority: 2 });
    let c = r.catalog.as_ref().unwrap();
    assert_eq!((c.applied_orders, c.unapplied), (4, 0));
    assert_eq!(c.toys[0], ToyReport { name: "Tux".into(), seeded: 100, restocked: 0, quantity: 97, ordered: Some(3) });
    assert!(r.replicas.iter().all(|x| x.records == 6 && x.orders == 4 && x.trails_by == 0));
    assert!(check(&store.dirs, true).ok, "a quiet point too");
    assert!(r.summary().starts_with("toystore check: OK\n"), "{}", r.summary());
}

#[test]
fn a_fresh_store_passes() {
    // Nothing ordered yet: the seed's short catalog, no logs at all.
    let store = Store::new(["", "", ""], "name,price,quantity\nTux,25.99,100\n");
    let r = check(&store.dirs, true);
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.committed.records, 0);
}

#[test]
fn the_catalog_trailing_the_commit_is_fine_while_running_not_at_a_quiet_point() {
    let log = good_log();
    let store = Store::new([&log, &log, &log], &catalog_csv(2));
    let r = store.check();
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.catalog.as_ref().unwrap().unapplied, 2);
    let strict = check(&store.dirs, true);
    assert_eq!(kinds(&strict), [ViolationKind::Unapplied]);
}

#[test]
fn an_oversold_toy_is_caught() {
    // The books balance (5 Whale ordered, 5 taken) but the toy is below zero.
    let log = good_log().replace("3,1,order,2,Whale,4,34.50,k-c", "3,1,order,2,Whale,105,34.50,k-c");
    let catalog = catalog_csv(4).replace("Whale,34.50,96,100,0,4", "Whale,34.50,-5,100,0,4");
    let store = Store::new([&log, &log, &log], &catalog);
    let r = store.check();
    assert_eq!(kinds(&r), [ViolationKind::Oversold], "{}", r.summary());
    assert_eq!(r.violations[0].line, Some(4));
    assert!(r.violations[0].what.contains("Whale"), "{:?}", r.violations[0]);
}

#[test]
fn leaked_stock_is_caught() {
    // 3 Fox taken, 1 ordered: 2 leaked (the bug: stock taken, order never committed).
    let catalog = catalog_csv(4).replace("Fox,19.99,104,100,5,4", "Fox,19.99,102,100,5,4");
    let log = good_log();
    let store = Store::new([&log, &log, &log], &catalog);
    let r = store.check();
    assert_eq!(kinds(&r), [ViolationKind::NotConserved], "{}", r.summary());
    assert!(r.violations[0].what.contains("2 unit(s) taken with no committed order"), "{}", r.violations[0].what);
    assert_eq!(r.violations[0].file, store.dirs.catalog.join(CATALOG_FILE));
    assert_eq!(r.violations[0].line, Some(3));
}

#[test]
fn stock_given_back_twice_is_caught() {
    // A restock not recorded in `restocked`: more on the shelf than the books allow.
    let catalog = catalog_csv(4).replace("Tux,25.99,97,100,0,4", "Tux,25.99,100,100,0,4");
    let log = good_log();
    let r = Store::new([&log, &log, &log], &catalog).check();
    assert_eq!(kinds(&r), [ViolationKind::NotConserved]);
    assert!(r.violations[0].what.contains("ordered but not taken"), "{}", r.violations[0].what);
}

#[test]
fn a_reused_number_is_caught() {
    let bad = good_log().replace("5,2,order,3,Tux,1,25.99,k-d", "5,2,order,2,Tux,1,25.99,k-d");
    let store = Store::new([&bad, &bad, &bad], &catalog_csv(3));
    let r = store.check();
    assert!(kinds(&r).iter().all(|k| *k == ViolationKind::NumberGap) && r.violations.len() == 3, "{}", r.summary());
    assert_eq!(r.violations[0].line, Some(7));
    assert!(r.violations[0].what.contains("reused"), "{}", r.violations[0].what);
}

#[test]
fn a_duplicate_key_is_caught() {
    let bad = good_log().replace("k-d", "k-a");
    let r = Store::new([&bad, &bad, &bad], &catalog_csv(4)).check();
    assert_eq!(kinds(&r), [ViolationKind::DuplicateKey; 3], "{}", r.summary());
    assert!(r.violations[0].what.contains("already on line 3"), "{}", r.violations[0].what);
}

#[test]
fn a_diverged_replica_is_caught() {
    // Replica 3 holds a different order 1 inside the prefix the other two committed.
    let bad = good_log().replace("2,1,order,1,Fox,1,19.99,k-b", "2,1,order,1,Lego,1,49.99,k-z");
    let store = Store::new([&good_log(), &good_log(), &bad], &catalog_csv(4));
    let r = store.check();
    assert_eq!(kinds(&r), [ViolationKind::Diverged], "{}", r.summary());
    assert_eq!(r.violations[0].file, store.dirs.replicas[2].join(ORDERS_FILE));
    assert_eq!(r.violations[0].line, Some(4));
    assert_eq!(r.committed.records, 6);
}

#[test]
fn an_uncommitted_tail_may_differ_while_running_but_not_at_a_quiet_point() {
    // A deposed leader's extra record (epoch 1) next to the new leader's epoch record.
    let committed: String = good_log().lines().take(5).map(|l| format!("{l}\n")).collect();
    let old_leader = committed.clone() + "4,1,order,3,Fox,1,19.99,k-x\n";
    let new_leader = committed.clone() + "4,2,epoch,,,,,\n";
    let store = Store::new([&old_leader, &new_leader, &committed], &catalog_csv(3));
    let r = store.check();
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.committed.records, 4);
    assert!(r.notes.iter().any(|n| n.contains("uncommitted tails differ")), "{:?}", r.notes);
    assert!(kinds(&check(&store.dirs, true)).contains(&ViolationKind::TailsDiffer));
}

#[test]
fn a_trailing_replica_is_reported_not_an_error() {
    let short: String = good_log().lines().take(4).map(|l| format!("{l}\n")).collect();
    let r = Store::new([&good_log(), &good_log(), &short], &catalog_csv(4)).check();
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.replicas[2].trails_by, 3);
    assert!(r.summary().contains("trails by 3"), "{}", r.summary());
}

#[test]
fn a_torn_last_line_is_reported_not_an_error() {
    let torn = good_log() + "6,2,order,4,Fox,1,19";
    let r = Store::new([&good_log(), &torn, &good_log()], &catalog_csv(4)).check();
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.replicas[1].torn_last_line, Some(8));
    assert_eq!(r.replicas[1].records, 6);
    assert!(r.notes.iter().any(|n| n.contains(":8: torn last line")), "{:?}", r.notes);
}

#[test]
fn a_damaged_line_in_the_middle_is_an_error() {
    let bad = good_log().replace("2,1,order,1,Fox,1,19.99,k-b", "2,1,order,1,Fox,x,19.99,k-b");
    let r = Store::new([&bad, &good_log(), &good_log()], &catalog_csv(4)).check();
    assert_eq!(kinds(&r), [ViolationKind::BadRecord], "{}", r.summary());
    assert_eq!(r.violations[0].line, Some(4), "header, index 0, index 1, then this one");
    assert_eq!(r.replicas[0].records, 2, "nothing after it is read");
}

#[test]
fn gaps_and_old_formats_are_caught() {
    let gap = good_log().replace("4,2,epoch", "9,2,epoch");
    let r = Store::new([&gap, &good_log(), &good_log()], &catalog_csv(4)).check();
    assert_eq!(kinds(&r), [ViolationKind::IndexGap]);
    let back = good_log().replace("5,2,order", "5,0,order");
    assert_eq!(kinds(&Store::new([&back, &back, &back], &catalog_csv(4)).check()), [ViolationKind::EpochDecreased; 3]);
    let old = "number,name,quantity,key,epoch\n0,Tux,1,k,1\n";
    let r = Store::new([old, &good_log(), &good_log()], &catalog_csv(4)).check();
    assert_eq!(kinds(&r), [ViolationKind::Unreadable]);
    assert!(r.violations[0].what.contains("before issue 9"));
}

#[test]
fn a_catalog_ahead_of_the_log_or_unreadable_is_caught() {
    let short: String = good_log().lines().take(4).map(|l| format!("{l}\n")).collect();
    // Only 3 orders committed anywhere, but the catalog says 4 applied.
    let r = Store::new([&short, &short, &short], &catalog_csv(4)).check();
    assert_eq!(kinds(&r), [ViolationKind::AppliedBeyondCommit], "{}", r.summary());
    let r = Store::new([&short, &short, &short], "name,price\nTux,1\n").check();
    assert_eq!(kinds(&r), [ViolationKind::CatalogUnreadable]);
}

#[test]
fn usage_errors() {
    assert!(matches!(CheckArgs::default().dirs(), Err(UsageError::NothingToCheck)));
    let only_replicas = CheckArgs { replica: vec!["/tmp".into()], ..CheckArgs::default() };
    assert!(matches!(only_replicas.dirs(), Err(UsageError::NoCatalog)));
    let missing = CheckArgs { catalog: Some("/no/such/dir".into()), ..CheckArgs::default() };
    assert!(matches!(missing.dirs(), Err(UsageError::NotADirectory(_))));
    let bad_manifest = CheckArgs { manifest: Some("/no/such/toystore.toml".into()), ..CheckArgs::default() };
    assert!(matches!(bad_manifest.dirs(), Err(UsageError::Manifest { .. })));
}

#[test]
fn data_dirs_come_from_the_manifest_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("toystore.toml");
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../toystore.toml")).unwrap();
    fs::write(&manifest, text).unwrap();
    for d in ["run/catalog", "run/order-1", "run/order-2", "run/order-3"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let dirs = CheckArgs { manifest: Some(manifest.clone()), ..CheckArgs::default() }.dirs().unwrap();
    assert_eq!(dirs.catalog, dir.path().join("run/catalog"));
    assert_eq!(dirs.replicas, (1..=3).map(|i| dir.path().join(format!("run/order-{i}"))).collect::<Vec<_>>());
    // An explicit flag wins over the manifest.
    let other = tempfile::tempdir().unwrap();
    let args = CheckArgs { manifest: Some(manifest), catalog: Some(other.path().into()), ..CheckArgs::default() };
    assert_eq!(args.dirs().unwrap().catalog, other.path());
}

#[test]
fn the_json_report_names_each_violation() {
    let catalog = catalog_csv(4).replace("Fox,19.99,104,100,5,4", "Fox,19.99,102,100,5,4");
    let log = good_log();
    let r = Store::new([&log, &log, &log], &catalog).check();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["violations"][0]["kind"], "not_conserved");
    assert_eq!(v["violations"][0]["line"], 3);
    assert_eq!(v["committed"]["orders"], 4);
    assert_eq!(v["catalog"]["unapplied"], 0);
}
