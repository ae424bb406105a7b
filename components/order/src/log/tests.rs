use super::damage::*;
use super::index::*;
use super::record::*;
use std::fs;
use std::io;
use std::path::Path;

use crate::keys::SEGMENT;

#[test]
fn the_fast_paths_write_and_read_what_the_csv_crate_does() {
    let fields = ["Tux", "a", "", " ", " a", "a ", "a,b", "a\"b", "\"", "a\rb", "a\nb", "Ünïcödé", "k-0001", "25.99", "#a", "a b"];
    for f in fields {
        assert_eq!(csv_field(f), csv_written(f), "{f:?}");
    }
    assert_eq!(Record::epoch_record(10, 18_446_744_073_709_551_615).to_line(), "10,18446744073709551615,epoch,,,,,\n");
    for name in fields {
        let o = Order { number: 3, name: name.to_string(), quantity: 2, price: "1.5".into(), key: "k".into() };
        let e = Record::order_record(4, 1, o);
        let line = e.to_line();
        // The file format, spelled out: what the field-by-field writer must produce.
        assert_eq!(line, format!("4,1,order,3,{},2,1.5,k\n", csv_written(name)));
        let line = line.strip_suffix('\n').unwrap_or(&line);
        // The csv reader's view of the same line, through the slow path.
        assert_eq!(Record::parse(line), parse_csv(line), "{line:?}");
    }
}


const H: &str = "index,epoch,kind,number,name,quantity,price,key\n";

fn order(index: u64, number: u64, key: &str, epoch: u64) -> Record {
    Record::order_record(index, epoch, Order { number, name: "Tux".into(), quantity: 1, price: "25.99".into(), key: key.into() })
}

/// A log of `epoch` records: an epoch record, then orders `numbers` with keys `k<n>`.
fn epoch_then_orders(start: u64, first_number: u64, count: u64, epoch: u64) -> Vec<Record> {
    let mut v = vec![Record::epoch_record(start, epoch)];
    for i in 0..count {
        v.push(order(start + 1 + i, first_number + i, &format!("k{}", first_number + i), epoch));
    }
    v
}

#[test]
fn csv_round_trip_with_awkward_fields() {
    for name in ["Tux", "Lego, big", "say \"hi\"", " padded ", "ünïcode"] {
        let o = Order { number: 7, name: name.into(), quantity: 3, price: "34.50".into(), key: "k,\"1\"".into() };
        let e = Record::order_record(9, 2, o);
        let line = e.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(Record::parse(line.trim_end_matches('\n')), Some(e.clone()), "{line}");
    }
    let epoch = Record::epoch_record(3, 2);
    assert_eq!(Record::parse(epoch.to_line().trim_end_matches('\n')), Some(epoch));
    assert_eq!(Record::parse("0,1,order,0,Tux,1,25.99"), None);
    assert_eq!(Record::parse("0,1,order,0,Tux,0,25.99,k"), None, "quantity must be positive");
    assert_eq!(Record::parse("0,1,order,0,Tux,1,-1,k"), None, "price must be a non-negative number");
    assert_eq!(Record::parse("0,1,order,0,Tux,1,,k"), None, "an order has a price");
    assert_eq!(Record::parse("0,1,epoch,0,,,,"), None, "an epoch record has no number");
    assert_eq!(Record::parse("0,1,noop,,,,,"), None);
    assert_eq!(Record::parse("x,1,epoch,,,,,"), None);
    assert_eq!(Record::parse("0,1,order,0,\"Tux,1,25.99,k"), None);
}

#[test]
fn records_have_pinned_bytes() {
    let line = |name: &str, key: &str| {
        let o = Order { number: 7, name: name.into(), quantity: 3, price: "34.50".into(), key: key.into() };
        Record::order_record(12, 2, o).to_line()
    };
    assert_eq!(Record::epoch_record(0, 1).to_line(), "0,1,epoch,,,,,\n");
    assert_eq!(order(1, 0, "k-7f3a", 1).to_line(), "1,1,order,0,Tux,1,25.99,k-7f3a\n");
    assert_eq!(line("Lego, big", "k"), "12,2,order,7,\"Lego, big\",3,34.50,k\n");
    assert_eq!(line("say \"hi\"", "k"), "12,2,order,7,\"say \"\"hi\"\"\",3,34.50,k\n");
    assert_eq!(line(" padded", "k "), "12,2,order,7,\" padded\",3,34.50,\"k \"\n");
    assert_eq!(line("Tux Jr", "a-b"), "12,2,order,7,Tux Jr,3,34.50,a-b\n");
    assert_eq!(line("ünïcode", "k'1"), "12,2,order,7,ünïcode,3,34.50,k'1\n");
}

#[test]
fn only_lines_in_the_written_form_parse() {
    assert_eq!(Record::parse("1,1,order,0,Tux,1,25.99,k"), Some(order(1, 0, "k", 1)));
    assert_eq!(Record::parse("1,1,order,0,Tu\"x,1,25.99,k"), None, "stray quote");
    assert_eq!(Record::parse("1,1,order,0,\"Tux\"x,1,25.99,k"), None, "text after a closing quote");
    assert_eq!(Record::parse("1,1,order,0,\"Tux\",1,25.99,k"), None, "quoted although nothing needs quotes");
    assert_eq!(Record::parse("01,1,order,0,Tux,1,25.99,k"), None);
    assert_eq!(Record::parse("1,1,order,0,Tux,1,2.5e1,k"), None, "prices are plain decimals");
}

#[test]
fn append_reload_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    assert_eq!(log.last(), -1);
    log.append(&epoch_then_orders(0, 0, 2, 1)).unwrap();
    log.append(&epoch_then_orders(3, 2, 1, 2)).unwrap();
    let bytes = fs::read(log.path()).unwrap();
    let want = format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,k0\n2,1,order,1,Tux,1,25.99,k1\n3,2,epoch,,,,,\n4,2,order,2,Tux,1,25.99,k2\n");
    assert_eq!(String::from_utf8(bytes).unwrap(), want);
    let again = Log::open(dir.path()).unwrap();
    assert_eq!((again.last(), again.next_number()), (4, 3));
    assert_eq!(again.number_of("k1").unwrap(), Some(1));
    assert_eq!(again.index_of(2), Some(4));
    assert_eq!(again.order(1).map(|(i, o)| (i, o.key)), Some((2, "k1".to_string())));
    assert_eq!(again.position(), Position { last_epoch: 2, last: 4 });
    assert_eq!((again.orders_through(-1), again.orders_through(0), again.orders_through(3), again.orders_through(9)), (0, 0, 2, 3));
    assert_eq!(again.orders_between(1, 4, 10).iter().map(|o| o.number).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(again.orders_between(1, 2, 10).len(), 1);
    assert!(log.append(&[order(9, 3, "z", 2)]).is_err(), "index gaps are refused");
    assert!(log.append(&[order(5, 4, "z", 2)]).is_err(), "number gaps are refused");
    assert!(log.append(&[order(5, 2, "z", 2)]).is_err(), "numbers are not reused");
}

#[test]
fn pending_sums_follow_appends_cuts_and_the_applied_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    let fox = |index, number, quantity| {
        Record::order_record(index, 1, Order { number, name: "Fox".into(), quantity, price: "1".into(), key: format!("f{number}") })
    };
    log.append(&[Record::epoch_record(0, 1), fox(1, 0, 2), order(2, 1, "t", 1), fox(3, 2, 5)]).unwrap();
    // (applied count, then) → (Fox pending, Tux pending)
    let cases = [(0, 7, 1), (1, 5, 1), (2, 5, 0), (3, 0, 0), (9, 0, 0), (1, 5, 1), (0, 7, 1)];
    for (from, f, t) in cases {
        log.set_pending_from(from).unwrap();
        assert_eq!((log.pending("Fox"), log.pending("Tux")), (f, t), "from {from}");
    }
    log.set_pending_from(1).unwrap();
    log.truncate_from(3).unwrap();
    assert_eq!(log.pending("Fox"), 0);
    log.append(&[fox(3, 2, 4)]).unwrap();
    assert_eq!(log.pending("Fox"), 4);
    // A reload (another instance wrote the file) recounts from the same point.
    fs::OpenOptions::new().append(true).open(log.path()).unwrap();
    let mut other = Log::open(dir.path()).unwrap();
    other.append(&[fox(4, 3, 1)]).unwrap();
    log.refresh().unwrap();
    assert_eq!((log.pending("Fox"), log.pending("Tux"), log.pending_from()), (5, 1, 1));
}

#[test]
fn torn_tail_is_ignored_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    fs::write(&path, format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,a\n2,1,order,1,Tux,1,2")).unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    assert_eq!(log.last(), 1);
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,a\n"));
    log.append(&[order(2, 1, "c", 1)]).unwrap();
    assert_eq!(Log::open(dir.path()).unwrap().order(1).unwrap().1.key, "c");
    // A torn header is nothing at all.
    fs::write(&path, "index,epo").unwrap();
    assert_eq!(Log::open(dir.path()).unwrap().last(), -1);
    assert_eq!(fs::read(&path).unwrap(), b"");
}

#[test]
fn a_corrupt_line_before_the_end_stops_the_log_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let e0 = "0,1,epoch,,,,,\n";
    // (file contents, 1-based line reported)
    let cases = [
        (format!("{H}{e0}garbage\n2,1,order,1,Tux,1,1,c\n"), 3),
        (format!("{H}{e0}2,1,order,0,Tux,1,1,c\n"), 3),
        (format!("{H}{e0}1,1,order,1,Tux,1,1,c\n"), 3),
        (format!("{H}{e0}1,1,order,0,Tux,1,1,b\nnope\n3,1,order,2,Tux,1,1,d"), 4),
        // Damaged but complete last line: still not a torn append.
        (format!("{H}{e0}1,1,order,0,Tux,0,1,a\n"), 3),
        ("not our header\n0,1,epoch,,,,,\n".to_string(), 1),
    ];
    for (contents, line) in cases {
        fs::write(&path, &contents).unwrap();
        let err = Log::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{contents:?}");
        let damage = err.get_ref().and_then(|e| e.downcast_ref::<Damage>()).cloned();
        assert!(matches!(damage, Some(Damage::Corrupt(Corrupt { line: l, .. })) if l == line), "{contents:?}: {damage:?}");
        assert!(err.to_string().contains(&format!("{}: line {line}", path.display())), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), contents, "nothing is cut");
    }
    // An instance that had the log open sees the damage on refresh, and cuts nothing either.
    fs::write(&path, format!("{H}{e0}")).unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    fs::write(&path, format!("{H}{e0}bad\n2,1,order,0,Tux,1,1,b\n")).unwrap();
    assert!(log.refresh().is_err());
    assert!(fs::read_to_string(&path).unwrap().ends_with("2,1,order,0,Tux,1,1,b\n"));
}

#[test]
fn a_log_of_the_old_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let old = "number,name,quantity,key,epoch\n0,Tux,1,a,1\n";
    fs::write(&path, old).unwrap();
    let err = Log::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains(&format!("{}: an order log in the old format", path.display())), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), old);
}

#[test]
fn refresh_sees_another_instances_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Log::open(dir.path()).unwrap();
    let mut b = Log::open(dir.path()).unwrap();
    a.append(&[order(0, 0, "a", 1)]).unwrap();
    assert_eq!(b.last(), -1);
    b.refresh().unwrap();
    assert_eq!(b.last(), 0);
    b.append(&[order(1, 1, "b", 1)]).unwrap();
    a.refresh().unwrap();
    assert_eq!(a.number_of("b").unwrap(), Some(1));
}

#[test]
fn merge_skips_same_and_replaces_divergent_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    log.append(&[Record::epoch_record(0, 1), order(1, 0, "a", 1), order(2, 1, "x", 1)]).unwrap();
    // 0..1 identical, 2 differs (epoch 2's leader wrote its epoch record there), 3 new.
    let m = log.merge(&[order(1, 0, "a", 1), Record::epoch_record(2, 2), order(3, 1, "c", 2)]).unwrap();
    assert_eq!(m, Merge::Applied);
    assert_eq!((log.last(), log.next_number()), (3, 2));
    assert_eq!(log.number_of("x").unwrap(), None);
    assert_eq!(log.number_of("c").unwrap(), Some(1));
    let reread = Log::open(dir.path()).unwrap();
    assert_eq!(reread.get(3), Some(order(3, 1, "c", 2)));
    assert_eq!(log.merge(&[order(9, 5, "z", 2)]).unwrap(), Merge::Gap);
    log.truncate_from(1).unwrap();
    assert_eq!(Log::open(dir.path()).unwrap().last(), 0);
    assert_eq!(log.next_number(), 0);
}

#[test]
fn bare_lines_parse_exactly_as_the_csv_path_does() {
    let lines = [
        "0,1,epoch,,,,,", "12,3,epoch,,,,,", "0,1,epoch,0,,,,", "0,1,epoch,,,,,,", "0,1,epoch,,,,", "00,1,epoch,,,,,",
        "+1,1,epoch,,,,,", "1,1,order,0,Tux,1,25.99,k", "1,1,order,0,Tux Jr,3,34.50,a-b", "1,1,order,0,ünïcode,3,34.50,k'1",
        "1,1,order,0, Tux,1,25.99,k", "1,1,order,0,Tux ,1,25.99,k", "1,1,order,0,Tux,1,25.99,k ", "1,1,order,0,Tux,0,25.99,k",
        "1,1,order,0,Tux,-1,25.99,k", "1,1,order,0,Tux,+1,25.99,k", "1,1,order,0,Tux,01,25.99,k", "1,1,order,00,Tux,1,25.99,k",
        "1,1,order,0,Tux,1,2.5e1,k", "1,1,order,0,Tux,1,,k", "1,1,order,0,,1,1,k", "1,1,order,0,Tux,1,1,", "1,1,order,,Tux,1,1,k",
        "1,1,order,0,Tux,1,1,k,", "1,1,order,0,Tux,1,1", "1,1,noop,,,,,", "x,1,epoch,,,,,", "1,1,order,0,T\tx,1,1,k",
        "1,1,order,0,Tux,1,1,k\r", "18446744073709551615,1,epoch,,,,,", "18446744073709551616,1,epoch,,,,,",
        "1,1,order,0,Tux,9223372036854775808,1,k", "", ",,,,,,,",
    ];
    for line in lines {
        assert!(!line.contains('"'));
        assert_eq!(parse_bare(line), parse_csv(line), "{line:?}");
    }
}

/// A log of `orders` orders with an epoch record every 1000 records (so number ≠ index).
fn long_log(dir: &Path, orders: u64) -> (Log, Vec<Record>) {
    let mut log = Log::open(dir).unwrap();
    let mut all = Vec::new();
    let (mut index, mut number) = (0, 0);
    while number < orders {
        if index % 1000 == 0 {
            all.push(Record::epoch_record(index, index / 1000 + 1));
        } else {
            all.push(order(index, number, &format!("k{number}"), index / 1000 + 1));
            number += 1;
        }
        index += 1;
    }
    log.append(&all).unwrap();
    (log, all)
}

#[test]
fn keys_are_found_in_every_segment_and_a_deleted_segment_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let orders = 2 * SEGMENT + 500;
    let (log, all) = long_log(dir.path(), orders);
    let seg = |start: u64| dir.path().join(crate::keys::DIR).join(format!("{start:020}.seg"));
    assert!(seg(0).exists() && seg(SEGMENT).exists() && !seg(2 * SEGMENT).exists());
    let samples = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 4321, 2 * SEGMENT - 1, 2 * SEGMENT, orders - 1];
    for n in samples {
        assert_eq!(log.number_of(&format!("k{n}")).unwrap(), Some(n), "k{n}");
        let (index, o) = log.order(n).unwrap();
        assert_eq!((Some(&all[index as usize]), o.number), (all.iter().find(|e| e.order.as_ref().is_some_and(|o| o.number == n)), n));
    }
    assert_eq!(log.number_of("k-absent").unwrap(), None);
    assert_eq!(log.number_of(&format!("k{orders}")).unwrap(), None);
    // Memory for the sealed keys: a couple of bytes a key, not the keys.
    assert!(log.sealed_memory() < 2 * SEGMENT as usize * 2, "{}", log.sealed_memory());
    // Damaged while open: the lookup falls back to the log and is still exact.
    let first = fs::read(seg(SEGMENT)).unwrap();
    fs::write(seg(SEGMENT), b"garbage").unwrap();
    assert_eq!(log.number_of(&format!("k{}", SEGMENT + 7)).unwrap(), Some(SEGMENT + 7));
    // Deleted or damaged: the next open rebuilds both, byte for byte.
    let zero_before = fs::read(seg(0)).unwrap();
    fs::remove_file(seg(0)).unwrap();
    let zero = {
        let again = Log::open(dir.path()).unwrap();
        for n in samples {
            assert_eq!(again.number_of(&format!("k{n}")).unwrap(), Some(n), "k{n} after rebuild");
        }
        fs::read(seg(0)).unwrap()
    };
    assert_eq!(fs::read(seg(SEGMENT)).unwrap(), first);
    assert_eq!(zero, zero_before);
    // A stale segment of a longer log is removed on open.
    fs::write(seg(5 * SEGMENT), &first).unwrap();
    Log::open(dir.path()).unwrap();
    assert!(!seg(5 * SEGMENT).exists());
}

#[test]
fn reads_by_offset_agree_with_the_file_after_cuts_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let orders = SEGMENT + 3000;
    let (mut log, mut all) = long_log(dir.path(), orders);
    let check = |log: &Log, all: &[Record]| {
        assert_eq!(log.last(), all.len() as i64 - 1);
        for i in (0..all.len()).step_by(97).chain([0, all.len() - 1]) {
            assert_eq!(log.get(i as u64).as_ref(), Some(&all[i]), "record {i}");
        }
        assert_eq!(log.after(4, 3), all[5..8].to_vec());
        assert_eq!(log.position(), Position { last_epoch: all.last().unwrap().epoch, last: all.len() as i64 - 1 });
        let orders: Vec<(u64, &Order)> = all.iter().filter_map(|e| e.order.as_ref().map(|o| (e.index, o))).collect();
        assert_eq!(log.next_number(), orders.len() as u64);
        for (index, o) in orders.iter().step_by(331) {
            assert_eq!(log.index_of(o.number), Some(*index), "number {}", o.number);
            assert_eq!(log.orders_through(*index as i64), o.number + 1);
            assert_eq!(log.number_of(&o.key).unwrap(), Some(o.number), "{}", o.key);
        }
    };
    check(&log, &all);
    // Cut below the sealed segment's end: its keys after the cut are gone, before it found.
    let cut_at = SEGMENT - 100; // a record index: order number ≈ SEGMENT - 117
    let cut_number = all[cut_at as usize..].iter().find_map(|e| e.order.as_ref().map(|o| o.number)).unwrap();
    log.truncate_from(cut_at).unwrap();
    all.truncate(cut_at as usize);
    check(&log, &all);
    assert_eq!(log.number_of(&format!("k{cut_number}")).unwrap(), None);
    assert_eq!(log.number_of(&format!("k{}", SEGMENT + 10)).unwrap(), None);
    check(&Log::open(dir.path()).unwrap(), &all);
    // Grow it again past the segment with new keys, then merge a divergent suffix that
    // starts before the tail.
    let epoch = all.last().unwrap().epoch + 1;
    let mut more = vec![Record::epoch_record(all.len() as u64, epoch)];
    let first = log.next_number();
    for n in first..first + 2000 {
        more.push(order(all.len() as u64 + more.len() as u64, n, &format!("new{n}"), epoch));
    }
    log.append(&more).unwrap();
    all.extend(more);
    assert_eq!(log.number_of(&format!("new{}", first + 1999)).unwrap(), Some(first + 1999));
    let from = all.len() as u64 - 1500;
    let number = all[from as usize..].iter().find_map(|e| e.order.as_ref().map(|o| o.number)).unwrap();
    let mut theirs = all[from as usize - 2..from as usize].to_vec();
    theirs.push(Record::epoch_record(from, epoch + 1));
    theirs.push(order(from + 1, number, "theirs", epoch + 1));
    assert_eq!(log.merge(&theirs).unwrap(), Merge::Applied);
    all.truncate(from as usize);
    all.extend(theirs[2..].iter().cloned());
    check(&log, &all);
    assert_eq!(log.number_of("theirs").unwrap(), Some(number));
    assert_eq!(log.number_of(&format!("new{}", first + 1999)).unwrap(), None);
    check(&Log::open(dir.path()).unwrap(), &all);
    let file = fs::read_to_string(log.path()).unwrap();
    let want: String = std::iter::once(H.to_string()).chain(all.iter().map(Record::to_line)).collect();
    assert!(file == want, "the file is the records, in order");
}

#[test]
fn open_resumes_from_the_last_boundary_that_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let orders = 2 * SEGMENT + 700;
    let (log, all) = long_log(dir.path(), orders);
    let path = log.path().to_path_buf();
    let seg = |start: u64| dir.path().join(crate::keys::DIR).join(format!("{start:020}.seg"));
    let same = |log: &Log, all: &[Record]| {
        assert_eq!(log.position(), Position { last_epoch: all.last().unwrap().epoch, last: all.len() as i64 - 1 });
        for i in (0..all.len()).step_by(211).chain([all.len() - 1]) {
            assert_eq!(log.get(i as u64).as_ref(), Some(&all[i]), "record {i}");
            if let Some(o) = &all[i].order {
                assert_eq!(log.index_of(o.number), Some(i as u64));
                assert_eq!(log.number_of(&o.key).unwrap(), Some(o.number), "{}", o.key);
            }
        }
        assert_eq!(log.orders_through(all.len() as i64), all.iter().filter(|e| e.order.is_some()).count() as u64);
    };
    drop(log);
    let reopened = Log::open(dir.path()).unwrap();
    same(&reopened, &all);
    assert_eq!(reopened.boundaries.len(), 2, "both segments' boundaries were used");
    drop(reopened);
    // Cut while down (as the benchmark does to a stopped replica): the second boundary is past
    // the end, so its segment goes and the scan resumes from the first.
    let keep = all.iter().position(|e| e.order.as_ref().is_some_and(|o| o.number == SEGMENT + 900)).unwrap();
    let file = fs::read(&path).unwrap();
    let cut_at = file.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(keep).unwrap().0 + 1;
    fs::write(&path, &file[..cut_at]).unwrap();
    let cut = Log::open(dir.path()).unwrap();
    same(&cut, &all[..keep]);
    assert_eq!(cut.boundaries.len(), 1);
    assert!(!seg(SEGMENT).exists());
    assert_eq!(cut.number_of(&format!("k{}", SEGMENT + 901)).unwrap(), None);
    drop(cut);
    // The line at the first boundary replaced by another of the same length: no boundary
    // holds, everything is scanned (and resealed) from the start.
    let b = all.iter().position(|e| e.order.as_ref().is_some_and(|o| o.number == SEGMENT - 1)).unwrap();
    let text = String::from_utf8(fs::read(&path).unwrap()).unwrap();
    let line = all[b].to_line();
    let other = line.replace(&format!("k{}", SEGMENT - 1), &format!("x{}", SEGMENT - 1));
    fs::write(&path, text.replacen(&line, &other, 1)).unwrap();
    let mut changed = all[..keep].to_vec();
    if let Some(o) = changed[b].order.as_mut() {
        o.key = format!("x{}", SEGMENT - 1);
    }
    let rescanned = Log::open(dir.path()).unwrap();
    same(&rescanned, &changed);
    assert_eq!(rescanned.number_of(&format!("k{}", SEGMENT - 1)).unwrap(), None);
    assert_eq!(rescanned.number_of(&format!("x{}", SEGMENT - 1)).unwrap(), Some(SEGMENT - 1));
    assert_eq!(rescanned.boundaries.len(), 1, "segment 0 resealed from the log");
}

#[test]
fn a_batch_longer_than_the_tail_reads_back_whole_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    let first = epoch_then_orders(0, 0, 10, 1);
    let batch: Vec<Record> = (0..2 * TAIL as u64 + 5).map(|n| order(11 + n, 10 + n, &format!("k{}", 10 + n), 1)).collect();
    log.append(&first).unwrap();
    log.merge(&batch).unwrap();
    let all: Vec<Record> = first.into_iter().chain(batch).collect();
    assert_eq!(log.tail.len(), TAIL);
    for (reopened, log) in [(false, &log), (true, &Log::open(dir.path()).unwrap())] {
        for e in &all {
            assert_eq!(log.get(e.index).as_ref(), Some(e), "record {} (reopened: {reopened})", e.index);
        }
        assert_eq!(log.after(5, 3000), all[6..].to_vec());
        let last = all.last().and_then(|e| e.order.clone()).unwrap();
        assert_eq!(log.number_of(&last.key).unwrap(), Some(last.number));
    }
}

#[test]
fn large_log_appends_stay_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    let batch: Vec<Record> = (0..100_000).map(|n| order(n, n, &format!("k{n}"), 1)).collect();
    log.append(&batch).unwrap();
    let t = std::time::Instant::now();
    for n in 100_000..100_050 {
        log.refresh().unwrap();
        log.append(&[order(n, n, &format!("k{n}"), 1)]).unwrap();
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(Log::open(dir.path()).unwrap().number_of("k100049").unwrap(), Some(100_049));
}

/// The leader's group commit: records appended without an fsync are in the index (numbers,
/// keys, the next index) but not in `durable_last` until `mark_synced`; a synced append, a
/// cut or a reload covers everything before it; `drop_unsynced` cuts exactly them.
#[test]
fn unsynced_records_count_as_durable_only_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path()).unwrap();
    assert!(log.append_unsynced(&epoch_then_orders(0, 0, 2, 1)).unwrap(), "the first write creates the file");
    assert_eq!((log.last(), log.durable_last()), (2, -1));
    assert_eq!(log.number_of("k1").unwrap(), Some(1), "numbered and keyed at once");
    log.mark_synced(1);
    assert_eq!(log.durable_last(), 1);
    log.mark_synced(2);
    assert_eq!(log.durable_last(), 2);

    assert!(!log.append_unsynced(&[order(3, 2, "k2", 1), order(4, 3, "k3", 1)]).unwrap());
    assert_eq!(log.durable_last(), 2);
    log.drop_unsynced().unwrap();
    assert_eq!((log.last(), log.durable_last(), log.number_of("k3").unwrap()), (2, 2, None), "the unsynced batch is cut");
    assert_eq!(Log::open(dir.path()).unwrap().last(), 2, "and gone from the file");

    log.append_unsynced(&[order(3, 2, "k2", 1)]).unwrap();
    log.append(&[order(4, 3, "k3", 1)]).unwrap();
    assert_eq!(log.durable_last(), 4, "an fsync covers the earlier writes too");
    log.append_unsynced(&[order(5, 4, "k4", 1)]).unwrap();
    log.truncate_from(5).unwrap();
    assert_eq!(log.durable_last(), 4);
}
