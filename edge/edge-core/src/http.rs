//! Plain request and response types: the adapters (Spin, Workers, the local
//! host) convert their platform's types to and from these.

/// The largest request body an edge accepts (a cart or checkout write is
/// a few KiB); a larger one gets 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;

/// Largest origin (region or routing API) response body an edge takes:
/// every host cuts a longer one off and treats the call as lost.
pub const MAX_ORIGIN_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The header Spin (and edge-host) tells a component its client's address
/// in (`ip:port`); never taken from the client.
pub const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// The client's IP from lowercase `headers` (Spin's `ip:port` form), as
/// every host that runs the component reads it (the component itself and
/// edge-host's fast path must agree).
pub fn client_ip(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n == CLIENT_ADDR_HEADER)
        .map(|(_, a)| {
            a.rsplit_once(':')
                .map_or(a.as_str(), |(ip, _)| ip)
                .to_owned()
        })
        .unwrap_or_default()
}

/// An incoming request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Uppercase, e.g. `GET`.
    pub method: String,
    /// The path, without the query, e.g. `/v1/products/MRD-000001`.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who is asking (client address), for rate limits.
    pub client: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path and query as sent to an origin.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) if !q.is_empty() => format!("{}?{q}", self.path),
            _ => self.path.clone(),
        }
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a header, replacing any of the same name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }

    /// An RFC 9457 problem+json response (the contract's one document).
    pub fn problem(status: u16, kind: &str, title: &str, detail: &str) -> Self {
        Response {
            status,
            headers: vec![(
                "content-type".to_owned(),
                regional_api::problem::CONTENT_TYPE.to_owned(),
            )],
            body: regional_api::Problem::new(status, kind, title, detail).to_json(),
        }
    }
}
