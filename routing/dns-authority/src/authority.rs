//! The request handler: answers every query for the zone from the routing
//! table's current value, so an answer changes the moment the table does.
//!
//! The zone is small and fixed in shape, so names are matched by rule rather
//! than looked up in a zone store:
//!
//! | name                    | answer                                          |
//! |-------------------------|-------------------------------------------------|
//! | `<zone>`                | SOA, NS (plus in-zone name servers' glue)        |
//! | `api.<zone>`            | nearest serving region to the client             |
//! | `www.<zone>`            | nearest serving edge POP to the client (the storefront) |
//! | `<pop>.pop.<zone>`      | that POP, while its health serves                |
//! | `<region>.api.<zone>`   | that region, while its health serves             |
//! | `<shard>.shard.<zone>`  | the shard's active region                        |
//! | in-zone name server     | its configured addresses                         |
//! | `shard.<zone>`, `pop.<zone>`, parents of name servers | nothing (empty non-terminals) |
//!
//! Anything else in the zone is NXDOMAIN; outside it, REFUSED. Negative
//! answers carry the SOA in the authority section (RFC 2308).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnet::IpNet;
use tokio::sync::watch;
use topology::routing::{PopStatus, RegionStatus, RoutingTable};
use tracing::{debug, warn};

use crate::config::{ConfigError, DnsConfig, TtlConfig};
use crate::geoip::GeoIp;
use crate::location::{Located, LocationTable};

/// Largest UDP payload we send, whatever the client offers: the DNS Flag Day
/// 2020 size, which avoids IP fragmentation on common paths. Our answers are
/// far smaller; this only bounds the encoder.
const MAX_UDP_PAYLOAD: u16 = 1_232;
/// Most address records in one answer, whatever the routing table holds.
const MAX_ADDRESSES: usize = 16;

/// The zone's authoritative server: a hickory [`RequestHandler`] reading the
/// routing table from a [`watch::Receiver`] on every query.
#[derive(Debug)]
pub struct Authority {
    /// The apex, lowercase.
    zone: LowerName,
    /// How many labels the apex has, so a query's labels below it are the
    /// first `len - zone_labels`.
    zone_labels: usize,
    ttl: TtlConfig,
    /// Answer to `<zone> SOA`.
    soa: [Record; 1],
    /// The SOA with the negative-caching TTL, for negative answers.
    negative_soa: [Record; 1],
    /// The apex NS RRset.
    ns: Vec<Record>,
    /// Addresses of every in-zone name server (additional section of NS).
    glue: Vec<Record>,
    /// In-zone name servers by name.
    ns_hosts: Vec<NsHost>,
    locations: LocationTable,
    /// MaxMind databases asked after `locations` (`[geoip]`).
    geoip: Option<Arc<GeoIp>>,
    table: watch::Receiver<Arc<RoutingTable>>,
}

/// An in-zone name server's name and its address records.
#[derive(Debug)]
struct NsHost {
    /// Its labels below the apex, lowercase, leftmost first.
    labels: Vec<Vec<u8>>,
    records: Vec<Record>,
}

/// What a query's name is, in this zone.
enum Node<'t> {
    Apex,
    Api,
    /// `www.<zone>`: the storefront, at the nearest serving POP.
    Storefront,
    /// `<pop>.pop.<zone>` for a POP in the table.
    Pop(&'t PopStatus),
    /// `<region>.api.<zone>` for a region in the table.
    Region(&'t RegionStatus),
    /// `<shard>.shard.<zone>` for a shard in the table, with its active
    /// region if one serves.
    Shard(Option<&'t RegionStatus>),
    /// An in-zone name server (index into `ns_hosts`).
    NameServer(usize),
    /// A name that exists only because names below it do.
    EmptyNonTerminal,
}

/// A response before encoding. Records fixed by config are borrowed from
/// the authority; only the routing table's addresses are built per query.
struct Reply<'s> {
    metadata: Metadata,
    edns: Option<Edns>,
    answers: Vec<Record>,
    static_answers: &'s [Record],
    authority: &'s [Record],
    additionals: &'s [Record],
}

/// The client's EDNS Client Subnet option, checked.
#[derive(Clone, Copy)]
struct ClientSubnetQuery {
    option: ClientSubnet,
    /// The address block it names; `None` for source prefix 0, which asks
    /// that the subnet not be used (RFC 7871 §7.1.2).
    net: Option<IpNet>,
}

/// Which address records a query wants.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
    Both,
}

impl Authority {
    /// Builds the authority from a configuration (validated again here, as
    /// it may have been built in code) and the routing table's receiver.
    pub fn new(
        config: DnsConfig,
        table: watch::Receiver<Arc<RoutingTable>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let zone = config.zone_name()?;
        let zone_labels = zone.iter().len();
        let (mname, rname) = config.soa_names()?;
        let soa_rdata = SOA::new(
            mname,
            rname,
            config.soa.serial,
            // Validated to be at most i32::MAX.
            i32::try_from(config.soa.refresh_s).unwrap_or(i32::MAX),
            i32::try_from(config.soa.retry_s).unwrap_or(i32::MAX),
            i32::try_from(config.soa.expire_s).unwrap_or(i32::MAX),
            config.soa.minimum_s,
        );
        let soa = Record::from_rdata(
            zone.clone(),
            config.ttl.soa_s,
            RData::SOA(soa_rdata.clone()),
        );
        let negative_ttl_s = config.ttl.soa_s.min(config.soa.minimum_s);
        let negative_soa = Record::from_rdata(zone.clone(), negative_ttl_s, RData::SOA(soa_rdata));

        let mut ns = Vec::new();
        let mut ns_hosts: Vec<NsHost> = Vec::new();
        for (name, address) in config.name_server_names()? {
            let record =
                Record::from_rdata(zone.clone(), config.ttl.ns_s, RData::NS(NS(name.clone())));
            // A name listed twice (IPv4 and IPv6) is one NS record.
            if !ns.contains(&record) {
                ns.push(record);
            }
            let (Some(address), true) = (address, zone.zone_of(&name)) else {
                continue;
            };
            let lower = LowerName::new(&name);
            let labels: Vec<Vec<u8>> = lower
                .iter()
                .take(lower.iter().len().saturating_sub(zone_labels))
                .map(<[u8]>::to_vec)
                .collect();
            let record = address_record(name, address, config.ttl.ns_s);
            match ns_hosts.iter_mut().find(|h| h.labels == labels) {
                Some(host) if host.records.contains(&record) => {}
                Some(host) => host.records.push(record),
                None => ns_hosts.push(NsHost {
                    labels,
                    records: vec![record],
                }),
            }
        }
        let glue = ns_hosts
            .iter()
            .flat_map(|h| h.records.iter().cloned())
            .collect();

        Ok(Self {
            zone: LowerName::new(&zone),
            zone_labels,
            ttl: config.ttl,
            soa: [soa],
            negative_soa: [negative_soa],
            ns,
            glue,
            ns_hosts,
            locations: LocationTable::new(&config.locations, config.default_location),
            geoip: None,
            table,
        })
    }

    /// Places clients the `[[locations]]` table does not with `geoip`
    /// (opened by the caller, who also runs its reloader).
    pub fn with_geoip(mut self, geoip: Arc<GeoIp>) -> Self {
        self.geoip = Some(geoip);
        self
    }

    /// Where `client` is taken to be, and the scope prefix of that answer:
    /// the `[[locations]]` block that holds it, else the first GeoIP
    /// database with coordinates for it, else the default location.
    pub fn locate(&self, client: IpAddr) -> Located {
        let located = self.locations.locate(client);
        if located.cidr.is_some() {
            return located;
        }
        match self.geoip.as_ref().and_then(|g| g.locate(client)) {
            // The database's network, but never wider than what keeps the
            // table's own blocks out of it.
            Some(hit) => Located {
                point: hit.point,
                cidr: None,
                scope_prefix: hit.prefix.max(located.scope_prefix),
            },
            None => located,
        }
    }

    /// Works out the whole response to `request` against `table`.
    fn reply(&self, request: &Request, table: &RoutingTable) -> Reply<'_> {
        let mut reply = Reply {
            metadata: Metadata::response_from_request(&request.metadata),
            edns: None,
            answers: Vec::new(),
            static_answers: &[],
            authority: &[],
            additionals: &[],
        };

        if let Some(request_edns) = &request.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(request_edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            let bad_version = request_edns.version() > 0;
            reply.edns = Some(edns);
            if bad_version {
                return reply.error(ResponseCode::BADVERS);
            }
        }
        // hickory drops responses before they reach a handler; this keeps a
        // stray one from being answered as a query all the same.
        if request.metadata.message_type != MessageType::Query {
            return reply.error(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return reply.error(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return reply.error(ResponseCode::FormErr);
        };
        let subnet = match client_subnet(request.edns.as_ref()) {
            Ok(subnet) => subnet,
            // RFC 7871 §7.1.2: a malformed option SHOULD get FORMERR.
            Err(()) => return reply.error(ResponseCode::FormErr),
        };
        let qname = query.name();
        if query.query_class() != DNSClass::IN || !self.zone.zone_of(qname) {
            return reply.error(ResponseCode::Refused);
        }
        let qtype = query.query_type();
        // The zone is built per query from the routing table; there is no
        // fixed copy to transfer.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return reply.error(ResponseCode::Refused);
        }

        reply.metadata.authoritative = true;
        let owner = query.original().name();
        let mut scope_prefix = 0;
        match self.node(qname, table) {
            None => {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            Some(Node::Apex) => match qtype {
                RecordType::SOA => reply.static_answers = &self.soa,
                RecordType::NS => {
                    reply.static_answers = &self.ns;
                    reply.additionals = &self.glue;
                }
                // Minimal (RFC 8482 allows it), and never more than fits.
                RecordType::ANY => reply.static_answers = &self.soa,
                _ => {}
            },
            Some(node @ (Node::Api | Node::Storefront)) => {
                if let Some(family) = Family::of(qtype) {
                    let client = match subnet.and_then(|s| s.net) {
                        Some(net) => net.network(),
                        // Behind a dual-stack socket, IPv4 clients appear
                        // as IPv4-mapped IPv6 addresses.
                        None => request.src().ip().to_canonical(),
                    };
                    let located = self.locate(client);
                    scope_prefix = located.scope_prefix;
                    let point = located.point;
                    let nearest = match node {
                        Node::Storefront => {
                            table.nearest_serving_pop(point.latitude, point.longitude)
                        }
                        _ => table.nearest_serving(point.latitude, point.longitude),
                    };
                    if let Some(row) = nearest {
                        debug!(%client, to = %row.name, "nearest answer");
                        reply.answers =
                            address_records(owner, &row.addresses, family, self.ttl.api_s);
                    }
                }
            }
            Some(Node::Pop(pop)) => {
                if let Some(family) = Family::of(qtype)
                    && pop.health.serves()
                {
                    reply.answers =
                        address_records(owner, &pop.addresses, family, self.ttl.region_s);
                }
            }
            Some(Node::Region(region)) => {
                if let Some(family) = Family::of(qtype)
                    && region.health.serves()
                {
                    reply.answers =
                        address_records(owner, &region.addresses, family, self.ttl.region_s);
                }
            }
            Some(Node::Shard(active)) => {
                if let (Some(family), Some(region)) = (Family::of(qtype), active) {
                    reply.answers =
                        address_records(owner, &region.addresses, family, self.ttl.shard_s);
                }
            }
            Some(Node::NameServer(index)) => {
                if let (Some(family), Some(host)) = (Family::of(qtype), self.ns_hosts.get(index)) {
                    reply.answers = host
                        .records
                        .iter()
                        .filter(|r| family.wants(r.record_type()))
                        .cloned()
                        .collect();
                }
            }
            Some(Node::EmptyNonTerminal) => {}
        }
        if reply.answers.is_empty() && reply.static_answers.is_empty() {
            // NXDOMAIN or NODATA: the SOA says how long to cache that.
            reply.authority = &self.negative_soa;
        }
        if let (Some(subnet), Some(edns)) = (subnet, reply.edns.as_mut()) {
            // Echo family, source prefix and address; the scope says which
            // clients the answer holds for (0: all of them).
            let mut option = subnet.option;
            option.set_scope_prefix(if subnet.net.is_some() {
                scope_prefix
            } else {
                0
            });
            edns.options_mut().insert(EdnsOption::Subnet(option));
        }
        reply
    }

    /// Classifies `qname` (already known to be in the zone).
    fn node<'t>(&self, qname: &LowerName, table: &'t RoutingTable) -> Option<Node<'t>> {
        let depth = qname.iter().len().saturating_sub(self.zone_labels);
        let mut labels = qname.iter().take(depth);
        let node = match (depth, labels.next(), labels.next()) {
            (0, _, _) => Some(Node::Apex),
            (1, Some(b"api"), _) => Some(Node::Api),
            (1, Some(b"www"), _) => Some(Node::Storefront),
            (1, Some(b"shard" | b"pop"), _) => Some(Node::EmptyNonTerminal),
            (2, Some(pop), Some(b"pop")) => {
                return table
                    .pops
                    .iter()
                    .find(|p| p.name.as_str().as_bytes() == pop)
                    .map(Node::Pop);
            }
            (2, Some(region), Some(b"api")) => {
                // Case-folded by `LowerName`; region names are lowercase.
                return table
                    .regions
                    .iter()
                    .find(|r| r.name.as_str().as_bytes() == region)
                    .map(Node::Region);
            }
            (2, Some(shard), Some(b"shard")) => {
                return table
                    .shards
                    .iter()
                    .find(|s| s.shard.as_str().as_bytes() == shard)
                    .map(|route| {
                        // The table never names a region that does not
                        // serve as active; check anyway, since giving out a
                        // drained region is the one thing DNS must not do.
                        let active = route
                            .active
                            .as_ref()
                            .and_then(|name| table.region(name))
                            .filter(|r| r.health.serves());
                        Node::Shard(active)
                    });
            }
            _ => None,
        };
        if node.is_some() {
            return node;
        }
        for (index, host) in self.ns_hosts.iter().enumerate() {
            let Some(skip) = host.labels.len().checked_sub(depth) else {
                continue;
            };
            let same_tail = host
                .labels
                .iter()
                .skip(skip)
                .zip(qname.iter().take(depth))
                .all(|(a, b)| a.as_slice() == b);
            if same_tail {
                return Some(if skip == 0 {
                    Node::NameServer(index)
                } else {
                    Node::EmptyNonTerminal
                });
            }
        }
        None
    }
}

impl Reply<'_> {
    /// Turns the reply into an error response with no records. Extended
    /// codes (BADVERS) put their high bits in the OPT record.
    fn error(mut self, code: ResponseCode) -> Self {
        self.metadata.response_code = code;
        self.metadata.authoritative = false;
        if let Some(edns) = self.edns.as_mut() {
            edns.set_rcode_high(code.high());
        }
        self
    }
}

impl Family {
    /// The address family a query type asks for; `None` for other types,
    /// which get NODATA at address names.
    fn of(qtype: RecordType) -> Option<Self> {
        match qtype {
            RecordType::A => Some(Self::V4),
            RecordType::AAAA => Some(Self::V6),
            RecordType::ANY => Some(Self::Both),
            _ => None,
        }
    }

    fn wants(self, record_type: RecordType) -> bool {
        match self {
            Self::V4 => record_type == RecordType::A,
            Self::V6 => record_type == RecordType::AAAA,
            Self::Both => true,
        }
    }

    fn wants_addr(self, addr: &IpAddr) -> bool {
        matches!(
            (self, addr),
            (Self::Both, _) | (Self::V4, IpAddr::V4(_)) | (Self::V6, IpAddr::V6(_))
        )
    }
}

/// Checks the query's ECS option. `Ok(None)` when there is none; `Err` when
/// it is malformed: a prefix longer than the address, or address bits set
/// beyond the prefix (RFC 7871 §6).
fn client_subnet(edns: Option<&Edns>) -> Result<Option<ClientSubnetQuery>, ()> {
    let Some(EdnsOption::Subnet(option)) = edns.and_then(|e| e.option(EdnsCode::Subnet)) else {
        return Ok(None);
    };
    let option = *option;
    if option.source_prefix() == 0 {
        return Ok(Some(ClientSubnetQuery { option, net: None }));
    }
    let net = IpNet::new(option.addr(), option.source_prefix()).map_err(|_| ())?;
    if net.trunc() != net {
        return Err(());
    }
    Ok(Some(ClientSubnetQuery {
        option,
        net: Some(net),
    }))
}

fn address_record(owner: Name, addr: IpAddr, ttl_s: u32) -> Record {
    let rdata = match addr {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl_s, rdata)
}

/// A and/or AAAA records for a region's addresses, named as the query was
/// (keeping its letter case, which some resolvers check).
fn address_records(owner: &Name, addrs: &[IpAddr], family: Family, ttl_s: u32) -> Vec<Record> {
    addrs
        .iter()
        .filter(|a| family.wants_addr(a))
        .take(MAX_ADDRESSES)
        .map(|a| address_record(owner.clone(), *a, ttl_s))
        .collect()
}

#[async_trait::async_trait]
impl RequestHandler for Authority {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // Clone the `Arc` and let the watch lock go at once: the sender must
        // never wait on a query.
        let table = Arc::clone(&self.table.borrow());
        let reply = self.reply(request, &table);
        let failed = serve_failed(&reply.metadata);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &reply.edns {
            builder.edns(edns);
        }
        let response = builder.build(
            reply.metadata,
            reply.static_answers.iter().chain(&reply.answers),
            reply.authority,
            std::iter::empty(),
            reply.additionals,
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, src = %request.src(), "failed to send DNS response");
                failed
            }
        }
    }
}

/// What to report when the response could not be sent.
fn serve_failed(metadata: &Metadata) -> ResponseInfo {
    let mut metadata = *metadata;
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
