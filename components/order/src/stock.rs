//! The leader's copy of the catalog's stock: reading it (`GET /stock`) and keeping the newest
//! answer as the base of its stock view. What the base decides is [`crate::admission`]'s.

use http::Method;
use toystore_guest::Net;

use crate::admission::{Base, StockAnswer};
use crate::node::Service;

impl<N: Net + 'static> Service<N> {
    /// `GET /stock` at the catalog.
    pub(crate) async fn fetch_stock(&self) -> Result<Base, String> {
        let url = format!("{}/stock", self.cfg.catalog_url);
        match self.net.call(Method::GET, &url, None, self.cfg.timeout).await {
            Ok(r) if r.is_success() => r.data::<StockAnswer>().map(Base::from).map_err(|e| format!("catalog /stock: {e}")),
            Ok(r) => Err(format!("catalog /stock answered {}: {}", r.status, r.error_message())),
            Err(e) => Err(format!("catalog unavailable: {e}")),
        }
    }

    /// Read `/stock` and keep it as the base (unless a newer one arrived meanwhile).
    pub(crate) async fn refresh_base(&self) -> Result<(), String> {
        let base = self.fetch_stock().await?;
        self.offer_base(base, false);
        Ok(())
    }

    /// Keep `base` unless the one we hold has applied more orders (answers can arrive out of
    /// order); `force` replaces it whatever it says (the catalog told us it is behind).
    pub(crate) fn offer_base(&self, base: Base, force: bool) {
        let mut slot = self.stock.borrow_mut();
        if force || slot.as_ref().is_none_or(|b| b.applied_orders <= base.applied_orders) {
            *slot = Some(base);
        }
    }

    pub(crate) fn base(&self) -> Option<Base> {
        self.stock.borrow().clone()
    }

    /// How many orders the catalog had applied as of the base we hold (no copy of the table).
    pub(crate) fn applied_orders(&self) -> Option<u64> {
        self.stock.borrow().as_ref().map(|b| b.applied_orders)
    }
}
