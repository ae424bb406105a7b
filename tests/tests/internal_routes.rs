//! The public port serves the public API only: the frontend's internal routes answer on its
//! internal listener and nowhere else, a client cannot pass itself off as internal, and
//! `serve` warns about internal listeners bound where others can reach them.

use toystore_e2e::{test_settings, Cluster, Reply};

/// The marker header the host sets on every request (`toystore_manifest::LISTENER_HEADER`).
const MARKER: &str = "toystore-listener";

/// Every internal route of the frontend. On the internal listener the test calls all but the
/// debug ones (`/debug/trap` would crash the frontend; the spin guard test covers
/// `/debug/spin` there).
const INTERNAL: [(&str, &str); 8] = [
    ("POST", "/invalidate/Tux"),
    // The seed catalog's spelling of it.
    ("POST", "/invalidation/Tux"),
    ("POST", "/invalidate"),
    ("POST", "/tick"),
    ("GET", "/cache/stats"),
    ("GET", "/leader"),
    ("POST", "/debug/trap"),
    ("POST", "/debug/spin"),
];

fn call(c: &Cluster, base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let body = (method == "POST").then_some("");
    c.request_with(method, &format!("{base}{path}"), body, headers)
        .unwrap_or_else(|e| panic!("{method} {base}{path}: {e}\nlog:\n{}", c.log_tail()))
}

/// What the public port answers for a path it does not know at all.
fn assert_unknown(r: &Reply, method: &str, path: &str) {
    assert_eq!(r.status, 404, "{method} {path}: {:?}", r.body);
    assert_eq!(r.body["error"]["code"], 404, "{method} {path}: JSON envelope {:?}", r.body);
    assert_eq!(r.error_message(), format!("no route for {method} {path}"), "{method} {path}: as an unknown path");
}

#[test]
fn internal_routes_are_404_on_the_public_port_and_work_on_the_internal_one_even_with_a_forged_marker() {
    let c = Cluster::start();
    c.wait_for("a leader", std::time::Duration::from_secs(30), || c.leader().is_some());
    let public = c.frontend_url();
    let internal = c.internal_url();
    assert_eq!(c.get("/products/Tux").status, 200);
    let invalidations = c.internal_get("/cache/stats").data()["invalidations"].clone();

    let forged: [&[(&str, &str)]; 4] =
        [&[], &[(MARKER, "internal")], &[("Toystore-Listener", "INTERNAL")], &[(MARKER, "internal, internal")]];
    for headers in forged {
        for (method, path) in INTERNAL {
            assert_unknown(&call(&c, &public, method, path, headers), method, path);
        }
        // Another method on an internal path is unknown too, not 405.
        assert_unknown(&call(&c, &public, "DELETE", "/leader", headers), "DELETE", "/leader");
    }
    // Nothing happened: none of the public invalidations dropped anything.
    assert_eq!(c.internal_get("/cache/stats").data()["invalidations"], invalidations);
    let hits = c.internal_get("/cache/stats").data()["hits"].as_u64().expect("hits");
    assert_eq!(c.get("/products/Tux").status, 200);
    assert_eq!(c.internal_get("/cache/stats").data()["hits"].as_u64(), Some(hits + 1), "Tux is still cached");

    // On the internal listener they answer, whatever marker the caller sends.
    for headers in [&[][..], &[(MARKER, "public")][..]] {
        let r = call(&c, &internal, "GET", "/cache/stats", headers);
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(r.data()["capacity"].is_u64(), "{:?}", r.body);
        let r = call(&c, &internal, "GET", "/leader", headers);
        assert!(r.data()["leader"].is_u64(), "a leader is chosen: {:?}", r.body);
        let r = call(&c, &internal, "POST", "/tick", headers);
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = call(&c, &internal, "POST", "/invalidate/Tux", headers);
        assert_eq!(r.data()["invalidated"], "Tux", "{:?}", r.body);
        let r = call(&c, &internal, "POST", "/invalidation/Tux", headers);
        assert_eq!(r.data()["invalidated"], "Tux", "{:?}", r.body);
    }
    assert_eq!(
        c.internal_get("/cache/stats").data()["invalidations"].as_u64(),
        invalidations.as_u64().map(|n| n + 4),
        "the internal invalidations counted"
    );

    // The public API answers on both; an order placed on one is read on the other.
    let placed = c.order("Fox", 1);
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    let number = placed.data()["order_number"].as_u64().expect("order number");
    for base in [&public, &internal] {
        assert_eq!(call(&c, base, "GET", &format!("/orders/{number}"), &[]).data()["name"], "Fox");
        assert_eq!(call(&c, base, "GET", "/product?Fox", &[]).status, 200);
        assert_eq!(call(&c, base, "GET", "/health", &[]).status, 200);
    }
    // The admin API shows both addresses of the frontend.
    let services = c.admin("GET", "/services");
    let frontend = services.data().as_array().and_then(|all| all.iter().find(|s| s["name"] == "frontend").cloned());
    let frontend = frontend.unwrap_or_else(|| panic!("frontend in {}", services.body));
    assert_eq!(frontend["address"], public.as_str());
    assert_eq!(frontend["internal_address"], internal.as_str());
}

/// The manifest with the catalog's `listen` on every interface (`0.0.0.0`, not loopback:
/// `127.0.0.2` would still be loopback).
fn catalog_on_every_interface(manifest: String) -> String {
    let (before, after) = manifest.split_once("[catalog]").expect("a [catalog] table");
    format!("{before}[catalog]{}", after.replacen("listen = \"127.0.0.1:", "listen = \"0.0.0.0:", 1))
}

const WARNING: &str = "internal listener on a non-loopback address";

#[test]
fn serve_warns_once_about_a_catalog_bound_to_every_interface() {
    let c = Cluster::start_edited(test_settings(), catalog_on_every_interface);
    let log = c.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "one line:\n{log}");
    let address = format!("0.0.0.0:{}", c.ports.catalog);
    assert!(warnings[0].contains("WARN") && warnings[0].contains("catalog") && warnings[0].contains(&address), "{}", warnings[0]);
    assert!(warnings[0].contains("expose_internal"), "says how to silence it: {}", warnings[0]);
    // And the store works with it: lookups and orders reach the catalog.
    assert_eq!(c.get("/products/Tux").status, 200);
    assert_eq!(c.order("Tux", 1).status, 200);
}

#[test]
fn no_warning_when_the_manifest_says_expose_internal() {
    let c = Cluster::start_edited(test_settings(), |m| format!("expose_internal = true\n{}", catalog_on_every_interface(m)));
    assert!(c.log().contains("catalog listening on http://0.0.0.0:"), "the edit took:\n{}", c.log_tail());
    assert!(!c.log().contains(WARNING), "{}", c.log());
    assert_eq!(c.get("/products/Tux").status, 200);
}
