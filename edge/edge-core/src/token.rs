//! The cart consistency token: after each cart write the edge gives the
//! shopper the cart's new version (cookie `mrd_cv=<cart id>:<version>` and
//! header `x-cart-version`); a cached cart older than the version the
//! shopper presents is never served, at any POP.

use topology::ShardedId;

use crate::http::Request;

pub const COOKIE: &str = "mrd_cv";
/// The contract's header for the cart version.
pub const HEADER: &str = regional_api::headers::CART_VERSION;

/// The least version of `cart` this shopper may be shown: from the
/// `x-cart-version` header, else from the cookie when it names this cart.
pub fn required_version(req: &Request, cart: &ShardedId) -> u64 {
    if let Some(v) = req.header(HEADER).and_then(|v| v.trim().parse().ok()) {
        return v;
    }
    let cart = cart.to_string();
    req.header("cookie")
        .into_iter()
        .flat_map(|c| c.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .filter_map(|(_, value)| value.rsplit_once(':'))
        .filter(|(id, _)| *id == cart)
        .filter_map(|(_, v)| v.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The `Set-Cookie` value recording `version` of `cart`.
pub fn set_cookie(cart: &str, version: u64) -> String {
    format!("{COOKIE}={cart}:{version}; Path=/; Max-Age=2592000; SameSite=Lax; HttpOnly")
}

/// The version in a cart JSON body (`{"version": n, …}`).
pub fn version_of(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u64,
    }
    serde_json::from_slice::<Versioned>(body)
        .ok()
        .map(|v| v.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_cookie_for_this_cart_only() {
        let cart: ShardedId = "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
        let mut r = Request::default();
        assert_eq!(required_version(&r, &cart), 0);
        r.headers.push((
            "cookie".into(),
            format!("a=b; {COOKIE}=us.01ARZ3NDEKTSV4RRFFQ69G5FAV:9; {COOKIE}={cart}:4"),
        ));
        assert_eq!(required_version(&r, &cart), 4);
        r.headers.push((HEADER.into(), "7".into()));
        assert_eq!(required_version(&r, &cart), 7);
        assert_eq!(
            version_of(br#"{"id":"x","version":12,"lines":[]}"#),
            Some(12)
        );
        assert!(set_cookie("eu.X", 3).starts_with("mrd_cv=eu.X:3;"));
    }
}
