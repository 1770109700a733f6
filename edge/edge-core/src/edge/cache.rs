//! Rate limits on what costs the origin, and cached reads: lookup,
//! purge generations, fills, stale-while-revalidate and stale-if-error,
//! conditional answers, the cart written through.

use super::*;
use regional_api::headers::REGION;

impl<H: Host> Edge<H> {
    /// Takes a token of `class` for the request's subject (its session's
    /// shopper when it carries unexpired session claims, else its address),
    /// and for a session also from its address's larger bucket; the
    /// seconds until one is free when none is.
    pub(super) async fn admit(&self, req: &Request, class: Class) -> Result<(), u64> {
        let now_ms = self.host.now_ms();
        let limits = self.config.rate_limits;
        let limit = limits.of(class);
        let address = format!("{}|a:{}", class.name(), req.client);
        let shopper = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(regional_api::session::unverified_claims)
            .filter(|claims| claims.exp_ms > now_ms)
            .map(|claims| format!("{}|s:{}", class.name(), claims.sub));
        match shopper {
            Some(shopper) => {
                self.take(&shopper, limit, now_ms).await?;
                let wider = RateLimit {
                    per_s: limit.per_s * limits.address_factor,
                    burst: limit.burst * limits.address_factor,
                };
                self.take(&address, wider, now_ms).await
            }
            None => self.take(&address, limit, now_ms).await,
        }
    }

    pub(super) async fn take(
        &self,
        subject: &str,
        limit: RateLimit,
        now_ms: u64,
    ) -> Result<(), u64> {
        let key = kv::bucket(subject);
        let mut bucket = self
            .host
            .get(&key)
            .await
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| Bucket::decode(&t))
            .unwrap_or_else(|| Bucket::full(&limit, now_ms));
        let outcome = bucket.take(&limit, now_ms);
        self.host.set(&key, bucket.encode().as_bytes()).await;
        outcome
    }

    /// A tag's purge generation (0 before any purge).
    pub(super) async fn generation(&self, tag: &str) -> u64 {
        self.host
            .get(&kv::tag(tag))
            .await
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }

    /// Purges every entry carrying any of `tags` (bumps their generations).
    pub async fn purge(&self, tags: &[String]) {
        for tag in tags {
            let next = self.generation(tag).await + 1;
            self.host
                .set(&kv::tag(tag), next.to_string().as_bytes())
                .await;
        }
    }

    /// Purges entries carrying `tag` stored before catalog version
    /// `version`: the tag's generation becomes that version (never lower),
    /// and later fills ask the origin for at least it.
    pub async fn purge_to_version(&self, tag: &str, version: u64) {
        if version > self.generation(tag).await {
            self.host
                .set(&kv::tag(tag), version.to_string().as_bytes())
                .await;
        }
    }

    pub(super) async fn generations(&self, route: &Route, req: &Request) -> Vec<(String, u64)> {
        let mut tags = policy::tags(route, req);
        tags.push(ALL_TAG.to_owned());
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            let generation = self.generation(&tag).await;
            out.push((tag, generation));
        }
        out
    }

    /// A cached read: hit, stale, or filled from the origin.
    pub(super) async fn cached(&self, req: &Request, route: &Route) -> Handled {
        let (Some(policy), Some(key)) = (policy::policy(route), policy::cache_key(route, req))
        else {
            return match self.admit(req, Class::Read).await {
                Ok(()) => self.forward(req, &read_target(route), None).await.into(),
                Err(retry_after_s) => self.rate_limited(retry_after_s).into(),
            };
        };
        let now_ms = self.host.now_ms();
        let entry = self.lookup(req, route, &key).await;
        let freshness = entry.as_ref().map(|e| e.freshness(now_ms));
        match (entry, freshness) {
            (Some(e), Some(Freshness::Fresh)) => self.entry_response(req, &e, "HIT", now_ms).into(),
            (Some(e), Some(Freshness::StaleWhileRevalidate)) => Handled {
                response: self.entry_response(req, &e, "STALE", now_ms),
                deferred: vec![Deferred::Revalidate(req.clone())],
            },
            (stale, _) => {
                let usable = stale.filter(|e| e.freshness(now_ms) != Freshness::Expired);
                if let Err(retry_after_s) = self.admit(req, Class::Read).await {
                    // Limited: what is still usable beats a refusal.
                    return match usable {
                        Some(e) => self
                            .entry_response(req, &e, "STALE-IF-ERROR", now_ms)
                            .into(),
                        None => self.rate_limited(retry_after_s).into(),
                    };
                }
                match self.fill(req, route, policy, &key).await {
                    Ok(response) => self.conditional(req, response).into(),
                    Err(error) => match usable {
                        Some(e) => self
                            .entry_response(req, &e, "STALE-IF-ERROR", now_ms)
                            .into(),
                        None => error.into(),
                    },
                }
            }
        }
    }

    /// Fetches a cacheable read from its origin and stores a 200. An error
    /// (no answer, 5xx) is `Err` with the response to give if nothing stale
    /// can be served instead.
    pub(super) async fn fill(
        &self,
        req: &Request,
        route: &Route,
        policy: CachePolicy,
        key: &str,
    ) -> Result<Response, Response> {
        // Generations are read before the fetch: a purge during it makes
        // the stored entry invalid at once.
        let generations = self.generations(route, req).await;
        // The newest catalog version a purge named for these tags: the
        // origin must not answer from a cache older than that.
        let min_version = generations
            .iter()
            .filter(|(tag, _)| tag != ALL_TAG)
            .map(|(_, g)| *g)
            .max()
            .unwrap_or(0);
        let mut req = req.clone();
        // The origin is asked exactly what the key names: a parameter the
        // key leaves out (`utm_source`, …) must not shape what is stored
        // under it.
        req.query = key.split_once('?').map(|(_, q)| q.to_owned());
        if min_version > 0 {
            req.headers.push((
                regional_api::headers::MIN_VERSION.into(),
                min_version.to_string(),
            ));
        }
        let response = self.forward(&req, &read_target(route), None).await;
        if response.status >= 500 {
            return Err(response);
        }
        if response.status != 200 || response.body.len() > MAX_BODY_BYTES {
            return Ok(response);
        }
        let now_ms = self.host.now_ms();
        let entry = Entry {
            key: key.to_owned(),
            status: 200,
            content_type: response
                .header("content-type")
                .unwrap_or("application/json")
                .to_owned(),
            etag: policy::etag(&response.body),
            stored_ms: now_ms,
            policy,
            tags: generations,
            cart_version: match route {
                Route::CartRead { .. } => token::version_of(&response.body),
                _ => None,
            },
            region: response.header(REGION).map(str::to_owned),
            body: response.body,
        };
        self.host.set(&kv::cache(key), &entry.encode()).await;
        Ok(self.entry_response(&req, &entry, "MISS", now_ms))
    }

    pub(super) fn entry_response(
        &self,
        req: &Request,
        e: &Entry,
        state: &str,
        now_ms: u64,
    ) -> Response {
        let mut response = Response::new(e.status);
        response.set_header("content-type", e.content_type.clone());
        response.set_header("etag", e.etag.clone());
        response.set_header("cache-control", e.policy.cache_control());
        response.set_header("age", e.age_s(now_ms).to_string());
        response.set_header("x-cache", state);
        if let Some(version) = e.cart_version {
            response.set_header(token::HEADER, version.to_string());
        }
        if let Some(region) = &e.region {
            response.set_header(REGION, region.clone());
        }
        response.body = e.body.clone();
        self.conditional(req, response)
    }

    /// Turns a 200 into a 304 when the shopper's validator matches.
    pub(super) fn conditional(&self, req: &Request, mut response: Response) -> Response {
        if response.status == 200
            && let Some(etag) = response.header("etag").map(str::to_owned)
            && policy::not_modified(req, &etag)
        {
            response.status = 304;
            response.body.clear();
        }
        response
    }

    /// After a cart write: give the shopper the new version (cookie and
    /// header) and store the new cart in this POP's cache.
    pub(super) async fn after_cart_write(
        &self,
        req: &Request,
        cart: &topology::ShardedId,
        mut response: Response,
    ) -> Response {
        if !(200..300).contains(&response.status) {
            return response;
        }
        let Some(version) = token::version_of(&response.body) else {
            return response;
        };
        response.set_header(token::HEADER, version.to_string());
        response.set_header("set-cookie", token::set_cookie(&cart.to_string(), version));
        let read = Request {
            method: "GET".into(),
            path: format!("/v1/carts/{cart}"),
            query: None,
            headers: req.headers.clone(),
            body: Vec::new(),
            client: req.client.clone(),
        };
        let route = Route::CartRead { cart: cart.clone() };
        if let (Some(policy), Some(key)) =
            (policy::policy(&route), policy::cache_key(&route, &read))
        {
            let entry = Entry {
                key: key.clone(),
                status: 200,
                content_type: "application/json".into(),
                etag: policy::etag(&response.body),
                stored_ms: self.host.now_ms(),
                policy,
                tags: self.generations(&route, &read).await,
                cart_version: Some(version),
                region: response.header(REGION).map(str::to_owned),
                body: response.body.clone(),
            };
            self.host.set(&kv::cache(&key), &entry.encode()).await;
        }
        response
    }
}
