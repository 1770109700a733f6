//! What a request is: which cache policy applies and where it must go.

use topology::{ShardId, ShardedId};

use crate::http::Request;

/// Where a request that reaches a regional service must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The region serving this shard now (writes and private reads).
    Shard(ShardId),
    /// The shard of the shopper named by the session token.
    SessionShard,
    /// Any serving region, nearest first (catalog reads, new sessions).
    Nearest,
}

/// Whether a write may be sent a second time (to another region, after the
/// first one's outcome was lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// It stores nothing (a new session is a signed token): always.
    Always,
    /// The region deduplicates it by `Idempotency-Key`, and the edge gives
    /// it one when the shopper did not (cart creation and cart changes).
    EdgeKeyed,
    /// Only with the shopper's own key: the shopper's retry must carry the
    /// same key, so the edge must not invent one (checkout).
    ShopperKeyed,
}

impl Repeat {
    /// Whether a request of this kind may be repeated, given whether it
    /// carries an idempotency key.
    pub fn safe(self, has_key: bool) -> bool {
        match self {
            Repeat::Always => true,
            Repeat::EdgeKeyed | Repeat::ShopperKeyed => has_key,
        }
    }
}

/// A request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/products/{sku}`: shared cache.
    Product { sku: String },
    /// `GET /v1/products/{sku}/availability`: shared cache, short.
    Availability { sku: String },
    /// `GET /v1/products/{sku}/reviews?…`: shared cache, purged when the
    /// product's reviews change.
    Reviews { sku: String },
    /// `GET /v1/products/{sku}/reviews/summary`: shared cache, purged the
    /// same way.
    ReviewSummary { sku: String },
    /// `GET /v1/products/{sku}/recommendations`: shared cache, a TTL (the
    /// batch job publishes a new set now and then).
    Recommendations { sku: String },
    /// `GET /v1/popular?…`: shared cache, a TTL.
    Popular,
    /// `GET /v1/categories`: shared cache.
    Categories,
    /// `GET /v1/search?…`: shared cache, short.
    Search,
    /// `GET /v1/carts/{id}`: cached per cart, never older than the
    /// shopper's own last write.
    CartRead { cart: ShardedId },
    /// A write (cart change, checkout, new session), forwarded uncached.
    /// `cart` names the cart it changes, if any.
    Write {
        target: Target,
        cart: Option<ShardedId>,
        repeat: Repeat,
    },
    /// A private read (orders), forwarded uncached.
    PrivateRead { target: Target },
    /// A static storefront asset.
    Static { path: String },
    /// The edge's own health.
    Health,
    /// Not served at the edge (unknown, admin or internal routes).
    NotFound,
    /// A known path with a method it does not take.
    MethodNotAllowed,
}

impl Route {
    /// Whether responses to it may be stored in the shared cache.
    pub fn is_cacheable(&self) -> bool {
        matches!(
            self,
            Route::Product { .. }
                | Route::Availability { .. }
                | Route::Reviews { .. }
                | Route::ReviewSummary { .. }
                | Route::Recommendations { .. }
                | Route::Popular
                | Route::Categories
                | Route::Search
                | Route::CartRead { .. }
        )
    }
}

fn sharded(text: &str) -> Option<ShardedId> {
    text.parse().ok()
}

/// Classifies a request by method and path. Ids that do not parse make the
/// request `NotFound` here (the region would refuse them anyway).
pub fn classify(req: &Request) -> Route {
    let method = req.method.as_str();
    let read = matches!(method, "GET" | "HEAD");
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] | ["index.html"] | ["assets", ..] | ["favicon.ico"] => {
            if read {
                Route::Static {
                    path: req.path.clone(),
                }
            } else {
                Route::MethodNotAllowed
            }
        }
        ["healthz"] => Route::Health,
        ["v1", "products", sku] => read_or(
            read,
            Route::Product {
                sku: (*sku).to_owned(),
            },
        ),
        ["v1", "products", sku, "availability"] => read_or(
            read,
            Route::Availability {
                sku: (*sku).to_owned(),
            },
        ),
        ["v1", "products", sku, "reviews"] => read_or(
            read,
            Route::Reviews {
                sku: (*sku).to_owned(),
            },
        ),
        ["v1", "products", sku, "reviews", "summary"] => read_or(
            read,
            Route::ReviewSummary {
                sku: (*sku).to_owned(),
            },
        ),
        // The shopper's own review: read and written in their shard.
        ["v1", "products", _sku, "reviews", "mine"] => match method {
            "GET" | "HEAD" => Route::PrivateRead {
                target: Target::SessionShard,
            },
            "PUT" => Route::Write {
                target: Target::SessionShard,
                cart: None,
                repeat: Repeat::EdgeKeyed,
            },
            _ => Route::MethodNotAllowed,
        },
        // A helpful vote is kept in the voter's shard, once per shopper.
        ["v1", "reviews", id, "helpful"] => match sharded(id) {
            Some(_) => write_or(
                method == "POST",
                Route::Write {
                    target: Target::SessionShard,
                    cart: None,
                    repeat: Repeat::EdgeKeyed,
                },
            ),
            None => Route::NotFound,
        },
        ["v1", "products", sku, "recommendations"] => read_or(
            read,
            Route::Recommendations {
                sku: (*sku).to_owned(),
            },
        ),
        ["v1", "popular"] => read_or(read, Route::Popular),
        ["v1", "categories"] => read_or(read, Route::Categories),
        ["v1", "search"] => read_or(read, Route::Search),
        ["v1", "sessions"] => write_or(
            method == "POST",
            Route::Write {
                target: Target::Nearest,
                cart: None,
                repeat: Repeat::Always,
            },
        ),
        ["v1", "carts"] => write_or(
            method == "POST",
            Route::Write {
                target: Target::SessionShard,
                cart: None,
                repeat: Repeat::EdgeKeyed,
            },
        ),
        ["v1", "carts", id] => match sharded(id) {
            Some(cart) => read_or(read, Route::CartRead { cart }),
            None => Route::NotFound,
        },
        ["v1", "carts", id, "items"] => match sharded(id) {
            Some(cart) => write_or(
                method == "POST",
                Route::Write {
                    target: Target::Shard(cart.shard().clone()),
                    cart: Some(cart),
                    repeat: Repeat::EdgeKeyed,
                },
            ),
            None => Route::NotFound,
        },
        ["v1", "carts", id, "items", _sku] => match sharded(id) {
            Some(cart) => write_or(
                matches!(method, "PUT" | "DELETE"),
                Route::Write {
                    target: Target::Shard(cart.shard().clone()),
                    cart: Some(cart),
                    repeat: Repeat::EdgeKeyed,
                },
            ),
            None => Route::NotFound,
        },
        ["v1", "checkout"] => write_or(
            method == "POST",
            Route::Write {
                target: Target::SessionShard,
                cart: None,
                repeat: Repeat::ShopperKeyed,
            },
        ),
        ["v1", "orders"] => read_or(
            read,
            Route::PrivateRead {
                target: Target::SessionShard,
            },
        ),
        ["v1", "orders", id] => match sharded(id) {
            Some(order) => read_or(
                read,
                Route::PrivateRead {
                    target: Target::Shard(order.shard().clone()),
                },
            ),
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

fn read_or(read: bool, route: Route) -> Route {
    if read { route } else { Route::MethodNotAllowed }
}

fn write_or(ok: bool, route: Route) -> Route {
    if ok { route } else { Route::MethodNotAllowed }
}

/// The shard of the shopper whose session token the request carries, read
/// from the token's claims without checking its signature (the region
/// checks it; the edge only needs to know where to send it).
pub fn session_shard(req: &Request) -> Option<ShardId> {
    let token = req.header("authorization")?.strip_prefix("Bearer ")?;
    let claims = regional_api::session::unverified_claims(token)?;
    Some(claims.sub.shard().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    const CART: &str = "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV";

    #[test]
    fn routes() {
        assert_eq!(
            classify(&req("GET", "/v1/products/MRD-000001")),
            Route::Product {
                sku: "MRD-000001".into()
            }
        );
        assert_eq!(classify(&req("GET", "/v1/search")), Route::Search);
        assert_eq!(
            classify(&req("POST", "/v1/search")),
            Route::MethodNotAllowed
        );
        let cart: ShardedId = CART.parse().unwrap();
        assert_eq!(
            classify(&req("GET", &format!("/v1/carts/{CART}"))),
            Route::CartRead { cart: cart.clone() }
        );
        assert_eq!(
            classify(&req("PUT", &format!("/v1/carts/{CART}/items/SKU-1"))),
            Route::Write {
                target: Target::Shard("eu".parse().unwrap()),
                cart: Some(cart),
                repeat: Repeat::EdgeKeyed,
            }
        );
        assert_eq!(
            classify(&req("GET", "/v1/carts/not-an-id")),
            Route::NotFound
        );
        assert_eq!(
            classify(&req("PUT", "/v1/admin/products/X")),
            Route::NotFound
        );
        assert_eq!(classify(&req("GET", "/v1/purge")), Route::NotFound);
        assert_eq!(
            classify(&req("GET", "/assets/app.js")),
            Route::Static {
                path: "/assets/app.js".into()
            }
        );
        assert_eq!(
            classify(&req("POST", "/v1/checkout")),
            Route::Write {
                target: Target::SessionShard,
                cart: None,
                repeat: Repeat::ShopperKeyed,
            }
        );
    }

    #[test]
    fn review_routes() {
        let sku = || "MUG-1".to_owned();
        assert_eq!(
            classify(&req("GET", "/v1/products/MUG-1/reviews")),
            Route::Reviews { sku: sku() }
        );
        assert_eq!(
            classify(&req("GET", "/v1/products/MUG-1/reviews/summary")),
            Route::ReviewSummary { sku: sku() }
        );
        assert!(Route::Reviews { sku: sku() }.is_cacheable());
        assert!(Route::ReviewSummary { sku: sku() }.is_cacheable());
        assert_eq!(
            classify(&req("POST", "/v1/products/MUG-1/reviews")),
            Route::MethodNotAllowed
        );
        let shoppers_write = Route::Write {
            target: Target::SessionShard,
            cart: None,
            repeat: Repeat::EdgeKeyed,
        };
        assert_eq!(
            classify(&req("PUT", "/v1/products/MUG-1/reviews/mine")),
            shoppers_write
        );
        assert_eq!(
            classify(&req("GET", "/v1/products/MUG-1/reviews/mine")),
            Route::PrivateRead {
                target: Target::SessionShard
            }
        );
        assert_eq!(
            classify(&req("DELETE", "/v1/products/MUG-1/reviews/mine")),
            Route::MethodNotAllowed
        );
        assert_eq!(
            classify(&req("POST", &format!("/v1/reviews/{CART}/helpful"))),
            shoppers_write
        );
        assert_eq!(
            classify(&req("GET", &format!("/v1/reviews/{CART}/helpful"))),
            Route::MethodNotAllowed
        );
        assert_eq!(
            classify(&req("POST", "/v1/reviews/nope/helpful")),
            Route::NotFound
        );
        assert_eq!(
            classify(&req("PUT", &format!("/v1/admin/reviews/{CART}/visibility"))),
            Route::NotFound
        );
        assert_eq!(
            classify(&req("GET", "/v1/products/MUG-1/recommendations")),
            Route::Recommendations { sku: sku() }
        );
        assert_eq!(classify(&req("GET", "/v1/popular")), Route::Popular);
        assert_eq!(
            classify(&req("POST", "/v1/popular")),
            Route::MethodNotAllowed
        );
        assert!(Route::Popular.is_cacheable());
    }

    #[test]
    fn session_shard_from_the_token_claims() {
        use base64::Engine;
        let claims = r#"{"sub":"ap.01ARZ3NDEKTSV4RRFFQ69G5FAV","exp_ms":1}"#;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
        let mut r = req("POST", "/v1/checkout");
        r.headers
            .push(("authorization".into(), format!("Bearer {payload}.sig")));
        assert_eq!(session_shard(&r), Some("ap".parse().unwrap()));
        r.headers[0].1 = "Bearer garbage".into();
        assert_eq!(session_shard(&r), None);
    }
}
