//! The order replica's route table: the client's routes, then the peers' (README "Internal
//! routes"), and the debug routes when enabled.

use toystore_guest::Router;

/// The order replica's routes: the client's, then the peers' (README "Internal routes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    Ping,
    PlaceOrder,
    Order,
    /// The seed frontend's `GET /orders?<order_number>`.
    OrderByQuery,
    /// The seed's `GET /synchronize` (`crate::seed`).
    Synchronize,
    LeaderSelection,
    InformReplica,
    Fence,
    ReplicateOrder,
    LastOrderNumber,
    MissedOrders,
    Tick,
    Trap,
    Spin,
}

pub(crate) fn routes(debug_routes: bool) -> Router<Route> {
    let routes = Router::new()
        .get("/health", Route::Health)
        .get("/ping", Route::Ping)
        .post("/orders", Route::PlaceOrder)
        .get("/orders/{n}", Route::Order)
        .get("/orders", Route::OrderByQuery)
        .get("/synchronize", Route::Synchronize)
        .post("/synchronize", Route::Synchronize)
        .post("/leaderselection", Route::LeaderSelection)
        .post("/inform_replica", Route::InformReplica)
        .post("/fence", Route::Fence)
        .post("/replicate_order", Route::ReplicateOrder)
        .get("/get_last_order_number", Route::LastOrderNumber)
        .get("/get_missed_orders/{n}", Route::MissedOrders)
        .post("/tick", Route::Tick);
    if debug_routes {
        routes.post("/debug/trap", Route::Trap).post("/debug/spin", Route::Spin)
    } else {
        routes
    }
}
