//! The catalog file's two forms and the stock arithmetic (apply, restock).

use super::*;

const SEED: &str = "name,price,quantity\nTux,25.99,100\nFox,19.99,100\nWhale,34.50,100\n";
const FULL: &str = "name,price,quantity,seeded,restocked,applied_orders\n\
                    Tux,25.99,97,100,0,2\nFox,19.99,100,100,0,2\nWhale,34.50,100,100,0,2\n";

fn order(number: u64, name: &str, quantity: u64) -> OrderLine {
    OrderLine { number, name: name.into(), quantity }
}

fn quantities(inv: &Inventory) -> Vec<i64> {
    inv.products().iter().map(|p| p.quantity).collect()
}

/// `seeded + restocked - quantity == Σ applied orders` for every toy (the invariant).
fn conserved(inv: &Inventory, applied: &[OrderLine]) -> bool {
    inv.products().iter().all(|p| {
        let ordered: i128 = applied.iter().filter(|o| o.name == p.name).map(|o| i128::from(o.quantity)).sum();
        p.taken() == ordered
    })
}

#[test]
fn the_seed_form_reads_as_nothing_applied_and_writes_the_full_form() {
    let inv = Inventory::parse(SEED.as_bytes()).unwrap();
    assert_eq!(inv.applied_orders(), 0);
    let tux = inv.get("Tux").unwrap();
    assert_eq!((tux.quantity, tux.seeded, tux.restocked), (100, 100, 0));
    let written = String::from_utf8(inv.to_csv()).unwrap();
    assert_eq!(
        written,
        "name,price,quantity,seeded,restocked,applied_orders\n\
         Tux,25.99,100,100,0,0\nFox,19.99,100,100,0,0\nWhale,34.50,100,100,0,0\n"
    );
    assert_eq!(Inventory::parse(written.as_bytes()).unwrap(), inv);
}

#[test]
fn the_full_form_round_trips_exactly() {
    let inv = Inventory::parse(FULL.as_bytes()).unwrap();
    assert_eq!(inv.applied_orders(), 2);
    let names: Vec<_> = inv.products().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Tux", "Fox", "Whale"]);
    assert_eq!(String::from_utf8(inv.to_csv()).unwrap(), FULL);
    assert_eq!(inv.get("Whale").unwrap().price, "34.50", "price text kept exactly");
}

#[test]
fn the_real_seed_parses() {
    let seed = include_str!("../../../../data/catalog.csv");
    let inv = Inventory::parse(seed.as_bytes()).unwrap();
    assert_eq!(inv.products().len(), 10);
    assert!(inv.products().iter().all(|p| p.quantity == 100 && p.seeded == 100 && p.restocked == 0));
    assert_eq!(inv.applied_orders(), 0);
}

#[test]
fn json_has_numeric_price_and_stock_has_the_exact_text() {
    let inv = Inventory::parse(FULL.as_bytes()).unwrap();
    assert_eq!(inv.get("Tux").unwrap().to_json(), json!({"name":"Tux","price":25.99,"quantity":97}));
    assert_eq!(inv.get("Whale").unwrap().to_json()["price"], json!(34.5));
    let stock = inv.stock_json();
    assert_eq!(stock["applied_orders"], 2);
    assert_eq!(stock["toys"][2], json!({"name":"Whale","price":34.5,"price_text":"34.50","quantity":100}));
}

#[test]
fn names_with_commas_and_quotes_survive() {
    let mut inv = Inventory::new(vec![Product {
        name: "Rock, \"Paper\"".into(),
        price: "1".into(),
        quantity: 3,
        seeded: 3,
        restocked: 0,
    }]);
    inv.apply(0, &[order(0, "Rock, \"Paper\"", 1)]).unwrap();
    assert_eq!(Inventory::parse(&inv.to_csv()).unwrap(), inv);
}

#[test]
fn tolerant_of_whitespace_crlf_and_blank_lines() {
    let inv = Inventory::parse(b"name, price ,quantity\r\nTux , 25.99, 7\r\n\r\n").unwrap();
    assert_eq!(inv.get("Tux").unwrap().quantity, 7);
    assert!(Inventory::parse(b"").unwrap().products().is_empty());
    assert!(Inventory::parse(b"name,price,quantity\n").unwrap().products().is_empty());
    assert!(Inventory::parse(HEADER.join(",").as_bytes()).unwrap().products().is_empty());
}

#[test]
fn a_negative_quantity_is_read_back_in_the_full_form_only() {
    let inv = Inventory::parse(b"name,price,quantity,seeded,restocked,applied_orders\nTux,1,-3,5,0,1\n").unwrap();
    assert_eq!(inv.get("Tux").unwrap().quantity, -3);
    assert_eq!(inv.get("Tux").unwrap().taken(), 8);
    assert!(Inventory::parse(b"name,price,quantity\nTux,1,-1\n").is_err(), "a seed is never negative");
}

#[test]
fn malformed_files_are_errors() {
    for bad in [
        "name,cost,quantity\nTux,1,1\n",
        "name,price\nTux,1\n",
        "name,price,quantity\nTux,abc,1\n",
        "name,price,quantity\nTux,-1,1\n",
        "name,price,quantity\nTux,NaN,1\n",
        "name,price,quantity\nTux,1,-1\n",
        "name,price,quantity\nTux,1,1.5\n",
        "name,price,quantity\n,1,1\n",
        "name,price,quantity\nTux,1,1\nTux,2,2\n",
        "name,price,quantity\nTux,1,1,extra\n",
        "name,price,quantity\nTux,1\n",
        "name,price,quantity,seeded,restocked\nTux,1,1,1,0\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,1,1,0\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,1,-1,0,0\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,1,1,-2,0\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,1,1,0,-1\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,x,1,0,0\n",
        "name,price,quantity,seeded,restocked,applied_orders\nTux,1,1,1,0,3\nFox,1,1,1,0,4\n",
    ] {
        assert!(Inventory::parse(bad.as_bytes()).is_err(), "accepted: {bad:?}");
    }
}

#[test]
fn apply_takes_committed_orders_in_number_order() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let orders = [order(0, "Tux", 2), order(1, "Fox", 1), order(2, "Tux", 1)];
    let applied = inv.apply(0, &orders).unwrap();
    assert_eq!(applied.changed, ["Tux", "Fox"], "file order, each once");
    assert!(applied.oversold.is_empty());
    assert_eq!(inv.applied_orders(), 3);
    assert_eq!(quantities(&inv), [97, 99, 100]);
    assert!(conserved(&inv, &orders));
}

#[test]
fn apply_is_idempotent_and_skips_what_was_applied() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let orders = [order(0, "Tux", 2), order(1, "Fox", 1), order(2, "Whale", 5)];
    inv.apply(0, &orders[..2]).unwrap();
    let before = inv.clone();
    assert_eq!(inv.apply(0, &orders[..2]).unwrap(), Applied::default(), "a resend changes nothing");
    assert_eq!(inv, before);
    // An overlapping batch applies only the new tail.
    let applied = inv.apply(1, &orders[1..]).unwrap();
    assert_eq!(applied.changed, ["Whale"]);
    assert_eq!(quantities(&inv), [98, 99, 95]);
    assert_eq!(inv.applied_orders(), 3);
    assert!(conserved(&inv, &orders));
    // An empty batch at or below the count is a no-op.
    assert_eq!(inv.apply(3, &[]).unwrap(), Applied::default());
    assert_eq!(inv.apply(0, &[]).unwrap(), Applied::default());
}

#[test]
fn a_gap_is_refused_with_the_count_to_resend_from() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    inv.apply(0, &[order(0, "Tux", 1)]).unwrap();
    let before = inv.clone();
    let e = inv.apply(2, &[order(2, "Tux", 1)]).unwrap_err();
    assert_eq!(e, ApplyError::Gap { from: 2, applied_orders: 1 });
    assert!(e.to_string().contains("resend from 1"), "{e}");
    assert_eq!(inv, before);
}

#[test]
fn a_batch_with_an_unknown_toy_or_bad_numbers_applies_nothing() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let before = inv.clone();
    let e = inv.apply(0, &[order(0, "Tux", 1), order(1, "Nope", 1)]).unwrap_err();
    assert_eq!(e, ApplyError::UnknownProduct { number: 1, name: "Nope".into() });
    assert_eq!(inv, before, "the Tux before it is not applied either");
    let e = inv.apply(0, &[order(0, "Tux", 1), order(2, "Fox", 1)]).unwrap_err();
    assert_eq!(e, ApplyError::NotContiguous { from: 0, position: 1, number: 2 });
    assert!(matches!(inv.apply(0, &[order(1, "Tux", 1)]), Err(ApplyError::NotContiguous { .. })));
    assert!(matches!(inv.apply(0, &[order(0, "Tux", u64::MAX)]), Err(ApplyError::Overflow { .. })));
    assert_eq!(inv, before);
}

#[test]
fn an_oversell_is_applied_and_reported_never_clipped() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let orders = [order(0, "Fox", 99), order(1, "Fox", 3)];
    let applied = inv.apply(0, &orders).unwrap();
    assert_eq!(applied.oversold, [("Fox".to_string(), -2)]);
    assert_eq!(inv.get("Fox").unwrap().quantity, -2);
    assert!(conserved(&inv, &orders));
    let back = Inventory::parse(&inv.to_csv()).unwrap();
    assert_eq!(back.get("Fox").unwrap().quantity, -2, "written as a negative number");
}

#[test]
fn restock_raises_low_toys_and_records_the_delta() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let orders = [order(0, "Tux", 90), order(1, "Fox", 89), order(2, "Whale", 100)];
    inv.apply(0, &orders).unwrap(); // Tux 10 (at the threshold), Fox 11 (above), Whale 0
    assert_eq!(inv.restock(10, 100), ["Tux", "Whale"]);
    assert_eq!(quantities(&inv), [100, 11, 100]);
    let restocked: Vec<_> = inv.products().iter().map(|p| p.restocked).collect();
    assert_eq!(restocked, [90, 0, 100]);
    assert!(conserved(&inv, &orders));
    assert!(inv.restock(10, 100).is_empty(), "nothing left to restock");
}

#[test]
fn restock_never_lowers_stock() {
    // A threshold above the amount: a toy between them is left alone rather than lowered.
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    inv.apply(0, &[order(0, "Tux", 40)]).unwrap();
    assert_eq!(inv.restock(200, 80), ["Tux"]);
    assert_eq!(quantities(&inv), [80, 100, 100]);
    assert_eq!(inv.get("Tux").unwrap().restocked, 20);
}

#[test]
fn restock_after_an_oversell_keeps_the_books_balanced() {
    let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
    let orders = [order(0, "Tux", 103)];
    inv.apply(0, &orders).unwrap();
    assert_eq!(inv.restock(10, 100), ["Tux"]);
    assert_eq!(inv.get("Tux").unwrap().restocked, 103);
    assert!(conserved(&inv, &orders));
}
