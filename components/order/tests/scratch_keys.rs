use std::time::Instant;
use toystore_order::log::{Entry, Log, Order};

#[test]
#[ignore]
fn time_key_lookups() {
    for n in [1_000u64, 1_000_000] {
        let a = tempfile::tempdir().unwrap();
        let mut log = Log::open(a.path()).unwrap();
        let mut entries = vec![Entry::epoch_record(0, 1)];
        for i in 0..n {
            entries.push(Entry::order_record(i + 1, 1, Order { number: i, name: "Tux".into(), quantity: 1, price: "25.99".into(), key: format!("{:032x}", (i as u128).wrapping_mul(0x9e3779b97f4a7c15f39cc0605cedc835)) }));
        }
        for c in entries.chunks(10_000) { log.append(c).unwrap(); }
        let t = Instant::now();
        let mut found = 0;
        for k in 0..20_000u64 {
            if log.number_of(&format!("new-{k:028x}")).unwrap().is_some() { found += 1; }
        }
        eprintln!("n {n}: {:.2} us per new-key lookup (found {found})", t.elapsed().as_secs_f64() * 1e6 / 20_000.0);
        let t = Instant::now();
        for k in 0..2_000u64 {
            log.append(&[Entry::order_record(log.last() as u64 + 1, 1, Order { number: log.next_number(), name: "Tux".into(), quantity: 1, price: "25.99".into(), key: format!("x{k}") })]).unwrap();
        }
        eprintln!("n {n}: {:.2} us per single append+fsync", t.elapsed().as_secs_f64() * 1e6 / 2_000.0);
    }
}
