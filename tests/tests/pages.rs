//! The two HTML pages in a real headless Chromium (see `toystore_e2e::browser`): the storefront
//! on the public port and the operations page on the admin address. Each test also takes the
//! screenshot README shows; `just screenshots` saves them as `docs/storefront.png` and
//! `docs/operations.png` (a plain test run writes nothing outside its temporary directories).

use std::time::Duration;

use toystore_e2e::browser::Browser;
use toystore_e2e::{Cluster, TOYS};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storefront_lists_the_toys_places_an_order_and_looks_it_up() {
    let c = Cluster::start();
    let b = Browser::start().await;
    b.client.goto(&format!("{}/", c.frontend_url())).await.expect("open the storefront");

    // The ten toys, with price and stock.
    b.wait_text("the toy list", "#toys tbody tr:nth-child(10)", WAIT, |t| !t.is_empty()).await;
    let rows = b.client.find_all(fantoccini::Locator::Css("#toys tbody tr")).await.expect("rows");
    let mut names = Vec::new();
    for row in &rows {
        names.push(row.attr("data-toy").await.expect("data-toy").expect("data-toy set"));
    }
    names.sort();
    let mut expected: Vec<String> = TOYS.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    let lego_stock = "#toys tr[data-toy='Lego'] td.stock";
    let before: i64 = b.text(lego_stock).await.expect("Lego stock").parse().expect("stock is a number");
    assert_eq!(before, c.stock("Lego"), "the page shows the catalog's stock");
    let price = b.text("#toys tr[data-toy='Lego'] td:nth-child(2)").await.expect("Lego price");
    assert!(price.starts_with('$'), "price shown: {price}");

    // An order through the form: its number is shown and the stock shown drops.
    let select = b.client.find(fantoccini::Locator::Css("#order-name")).await.expect("toy select");
    select.select_by_value("Lego").await.expect("choose Lego");
    b.fill("#order-quantity", "3").await;
    b.click("#order-submit").await;
    let result = b.wait_text("the order number", "#order-result", WAIT, |t| t.starts_with("Order number")).await;
    let number: u64 = b.attr("#order-result", "data-number").await.expect("data-number").parse().expect("a number");
    assert!(result.contains(&number.to_string()), "{result}");
    let order = c.get(&format!("/orders/{number}"));
    assert_eq!((order.data()["name"].as_str(), order.data()["quantity"].as_i64()), (Some("Lego"), Some(3)), "{:?}", order.body);
    b.wait_text("the lower stock", lego_stock, WAIT, |t| t == (before - 3).to_string()).await;
    assert_eq!(c.stock("Lego"), before - 3);

    // A failing order shows the store's error message and changes nothing.
    b.fill("#order-quantity", "100000").await;
    b.click("#order-submit").await;
    let failure = b.wait_text("the error", "#order-result", WAIT, |t| t.starts_with("Order failed")).await;
    assert!(failure.contains("stock"), "the message says why: {failure}");
    assert_eq!(c.stock("Lego"), before - 3);

    // Lookup by number.
    b.fill("#lookup-number", &number.to_string()).await;
    b.click("#lookup-submit").await;
    let found = b.wait_text("the lookup", "#lookup-result", WAIT, |t| t.starts_with("Order ")).await;
    assert_eq!(found, format!("Order {number}: 3 x Lego"));
    // The failure message stays visible for the screenshot, next to a successful lookup.
    b.screenshot("storefront.png").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_page_shows_the_leader_and_a_kill_there_moves_it() {
    let c = Cluster::start();
    let b = Browser::start().await;
    b.client.goto(&format!("{}/", c.admin_url())).await.expect("open the operations page");

    let leader = c.leader().expect("a leader is chosen");
    let shown = b.wait_text("the leader", "#leader", WAIT, |t| t.starts_with("replica ")).await;
    assert_eq!(shown, format!("replica {leader}"));
    b.wait_text("the replica rows", "#replicas tbody tr:nth-child(3)", WAIT, |t| t.contains("running")).await;

    // Some traffic, so the live rates have something to show.
    for (i, toy) in TOYS.iter().enumerate() {
        assert_eq!(c.get(&format!("/products/{toy}")).status, 200);
        if i % 3 == 0 {
            assert_eq!(c.order(toy, 1).status, 200);
        }
    }
    b.wait_text("the lookup rate", "#lookups-rate", WAIT, |t| t.parse::<f64>().is_ok()).await;

    // Kill the leader from the page: another replica leads, and the page says so.
    b.click(&format!("#kill-{leader}")).await;
    let row = format!("#replicas tr[data-replica='{leader}']");
    b.wait_text("the killed replica", &row, WAIT, |t| t.contains("killed")).await;
    let moved = b
        .wait_text("a new leader", "#leader", Duration::from_secs(30), |t| {
            t.starts_with("replica ") && t != format!("replica {leader}")
        })
        .await;
    let new_leader: u64 = moved.trim_start_matches("replica ").parse().expect("a replica id");
    c.wait_for("the frontend to follow", Duration::from_secs(30), || c.leader() == Some(new_leader));
    assert_eq!(c.order("Tux", 1).status, 200, "orders go to the new leader");

    // Steady traffic while the page refreshes, so the screenshot shows live rates.
    for round in 0..15 {
        for toy in TOYS {
            assert_eq!(c.get(&format!("/products/{toy}")).status, 200);
        }
        assert_eq!(c.order(TOYS[round % TOYS.len()], 1).status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rate = b.text("#lookups-rate").await.expect("lookup rate");
    assert!(rate.parse::<f64>().is_ok_and(|r| r > 0.0), "the page shows the lookups just made: {rate}");
    b.screenshot("operations.png").await;

    // Restart it from the page too.
    b.click(&format!("#restart-{leader}")).await;
    b.wait_text("the restarted replica", &row, Duration::from_secs(30), |t| t.contains("running") && t.contains("follower")).await;

    // Pause that follower from the page, see it paused, resume it.
    b.click(&format!("#pause-{leader}")).await;
    b.wait_text("the paused replica", &row, WAIT, |t| t.contains("paused")).await;
    assert_eq!(c.order("Fox", 1).status, 200, "orders go on with a follower paused");
    b.click(&format!("#resume-{leader}")).await;
    b.wait_text("the resumed replica", &row, Duration::from_secs(30), |t| t.contains("running") && t.contains("follower")).await;
    b.close().await;
}
