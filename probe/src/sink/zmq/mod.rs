//! zmq: flow records to ntopng (or any ZMQ collector) in ntopng's contract
//! (docs/ntopng-zmq.md): PUB sockets, two-frame messages (header, payload), one
//! message counter for every topic, nDPI TLV (or JSON) flows of at most 128 KiB,
//! periodic `event` and `listening-ports` messages, CURVE when asked.
//!
//! flow stage -> [`SinkInput`] channel -> exporter thread (owns every socket, so
//! header and payload frames of one message are never interleaved) -> collectors.
//!
//! Nothing here blocks the pipeline. A collector is ready once its subscription has
//! reached us (the sockets are XPUBs, which report subscriptions); until then,
//! messages wait in a bounded backlog. There, a newer `event` or `listening-ports`
//! message replaces the older one instead of taking a flow message's place. When the
//! backlog or libzmq's queue is full, flow messages are dropped and counted, and the
//! next `event` message reports the drops. Each collector has its own message ids,
//! numbered as messages leave: it sees every drop as a gap in them.

pub mod mapping;
pub mod protobuf;
pub mod socket;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use packetless_wire::header::{Header, FLAG_COMPRESSED, FLAG_TLV, VERSION_JSON, VERSION_TLV};
use packetless_wire::tlv::TlvWriter;
use packetless_wire::{compress, json};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use self::socket::{Context, Socket, ZmqError};
use super::json::RunStats;
use crate::flow::{FlowRecord, FlowState, ListenRecord, Record};
use crate::source::Proto;

/// What the flow stage hands to sinks.
#[derive(Clone, Debug)]
pub enum SinkInput {
    /// Records, in emission order.
    Records(Arc<Vec<Record>>),
    /// The latest counters of the pipeline (for `event` messages).
    Stats(Arc<RunStats>),
}

/// Largest payload: ntopng's receive buffer is 131072 bytes and it appends a NUL.
pub const MAX_PAYLOAD: usize = 131_000;

/// Where to send: `tcp://host:port` (we bind, the collector connects) or
/// `tcp://host:portc` (the collector binds, we connect), as in nProbe and ntopng.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// As the user wrote it.
    pub given: String,
    /// The address handed to libzmq (trailing `c` removed, `zmq://` as `tcp://`).
    pub address: String,
    /// Whether we connect (collector mode on the ntopng side).
    pub connect: bool,
}

impl Endpoint {
    /// Parses an endpoint.
    ///
    /// # Errors
    /// A message saying what form is expected.
    pub fn parse(given: &str) -> Result<Self, String> {
        let rewritten = given.strip_prefix("zmq://").map_or_else(|| given.to_owned(), |rest| format!("tcp://{rest}"));
        let (address, connect) = match rewritten.strip_suffix('c') {
            Some(stripped) => (stripped.to_owned(), true),
            None => (rewritten, false),
        };
        let Some(rest) = address.strip_prefix("tcp://").or_else(|| address.strip_prefix("ipc://")) else {
            return Err(
                "expected tcp://HOST:PORT (we bind) or tcp://HOST:PORTc (we connect to a collector that binds)".into(),
            );
        };
        if address.starts_with("tcp://") {
            let port = rest.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("{port:?} is not a port: expected tcp://HOST:PORT or tcp://HOST:PORTc"));
            }
        }
        Ok(Self { given: given.to_owned(), address, connect })
    }
}

/// Flow payload format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZmqFormat {
    /// nDPI TLV: what every ntopng since 6.0 parses.
    Tlv,
    /// JSON: parsed only by ntopng builds with Pro code.
    Json,
    /// packetless's own protobuf schema, every record kind, on the `pl-records`
    /// topic (not for ntopng).
    Protobuf,
}

/// Header layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// 28 bytes, version 3 for TLV / 2 for JSON: ntopng 5.4 to 6.4 and later.
    V2,
    /// 36 bytes, version 4 with flags: ntopng 6.4 and later.
    V3,
}

/// Settings of the ZMQ sink.
#[derive(Clone, Debug)]
pub struct ZmqConfig {
    /// Collectors.
    pub endpoints: Vec<Endpoint>,
    /// Flow payload format.
    pub format: ZmqFormat,
    /// Header layout.
    pub header: HeaderKind,
    /// zlib-compress payloads (v3 headers only).
    pub compress: bool,
    /// This exporter's id in every header.
    pub source_id: u32,
    /// The collector's CURVE public key (Z85), when encrypting.
    pub server_key: Option<String>,
    /// Interval of `event` and `listening-ports` messages.
    pub event_interval: Duration,
    /// Messages queued per collector (libzmq's high-water mark, and our backlog).
    pub queue: usize,
    /// The flow update interval, announced to ntopng as the flow lifetime.
    pub update_interval: Duration,
}

/// Why the ZMQ sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZmqSetupError {
    /// The endpoint could not be bound or connected.
    #[error("--zmq {endpoint}: {source}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// libzmq's error.
        #[source]
        source: ZmqError,
    },
    /// libzmq has no CURVE.
    #[error(
        "--zmq-encryption-key needs CURVE, but libzmq {0} was built without it; install a libzmq built with \
         libsodium (Debian and Ubuntu's libzmq5 is)"
    )]
    NoCurve(String),
    /// Any other libzmq failure.
    #[error("ZMQ: {0}")]
    Zmq(#[from] ZmqError),
}

/// Counters of the ZMQ sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ZmqCounters {
    /// Messages handed to libzmq (all collectors, all topics).
    pub messages_sent: u64,
    /// Flow records put into messages.
    pub flows_exported: u64,
    /// Messages dropped because a collector's queue was full.
    pub dropped_queue_full: u64,
    /// Messages dropped because no collector was connected and the backlog was full.
    pub dropped_no_collector: u64,
    /// CURVE or protocol handshakes that failed (wrong key, wrong peer).
    pub handshake_failures: u64,
    /// Connections made to or accepted from collectors.
    pub connections: u64,
}

impl ZmqCounters {
    /// Counts the outcome of handing a message to libzmq for `endpoint`.
    fn count_send(&mut self, endpoint: &Endpoint, sent: Result<(), ZmqError>) {
        match sent {
            Ok(()) => self.messages_sent += 1,
            Err(e) if e.would_block() => {
                self.dropped_queue_full += 1;
                if self.dropped_queue_full.is_power_of_two() {
                    warn!(endpoint = %endpoint.given, total = self.dropped_queue_full, "collector is not keeping up; messages dropped");
                }
            }
            Err(e) => warn!(endpoint = %endpoint.given, error = %e, "ZMQ send failed"),
        }
    }
}

/// A message for collectors: its two frames, shared by every collector it goes to
/// (the header's message id is written per collector as it leaves).
#[derive(Clone)]
struct Message {
    topic: &'static str,
    /// `event` and `listening-ports`: the state of now, which the next one replaces.
    status: bool,
    header: Arc<Vec<u8>>,
    payload: Arc<Vec<u8>>,
}

struct Collector {
    endpoint: Endpoint,
    /// An XPUB: it passes on what collectors subscribe to.
    socket: Socket,
    monitor: Socket,
    /// Subscriptions held by the collectors connected to this socket (every
    /// subscribe counts up, every unsubscribe, also a departed peer's, down).
    subscriptions: usize,
    /// The message id last given out (sent or dropped) to this collector.
    last_msg_id: u32,
    backlog: VecDeque<Message>,
    /// Backlog messages that are not status messages.
    backlog_flows: usize,
}

impl Collector {
    fn ready(&self) -> bool {
        self.subscriptions > 0
    }

    fn next_msg_id(&mut self) -> u32 {
        self.last_msg_id = self.last_msg_id.wrapping_add(1);
        self.last_msg_id
    }

    /// Hands `message` to libzmq with this collector's next message id. The id
    /// stays free when libzmq's queue is full: the caller decides whether the
    /// message waits or is lost.
    fn try_send(&mut self, message: &Message) -> Result<(), ZmqError> {
        let mut header = [0u8; packetless_wire::header::V3_LEN];
        let header = &mut header[..message.header.len()];
        header.copy_from_slice(&message.header);
        let id = self.last_msg_id.wrapping_add(1);
        Header::set_msg_id(header, id).expect("frames come from Header::encode");
        let sent = send_pair(&self.socket, header, &message.payload);
        if !matches!(&sent, Err(e) if e.would_block()) {
            self.last_msg_id = id;
        }
        sent
    }

    /// Queues `message` while the collector is away or its backlog drains; a
    /// status message replaces the queued one of its topic. Returns whether the
    /// oldest flow message had to make room (its id is then given out, as a gap).
    fn queue(&mut self, message: Message, limit: usize) -> bool {
        if message.status {
            self.backlog.retain(|m| m.topic != message.topic);
            self.backlog.push_back(message);
            return false;
        }
        let mut dropped = false;
        if self.backlog_flows >= limit.max(1) {
            if let Some(at) = self.backlog.iter().position(|m| !m.status) {
                self.backlog.remove(at);
                self.backlog_flows -= 1;
                self.next_msg_id();
                dropped = true;
            }
        }
        self.backlog.push_back(message);
        self.backlog_flows += 1;
        dropped
    }

    fn pop_front(&mut self) {
        if let Some(message) = self.backlog.pop_front() {
            if !message.status {
                self.backlog_flows -= 1;
            }
        }
    }

    /// Reads the subscription messages the XPUB passed on; logs when the
    /// collector becomes ready or goes away.
    fn take_subscriptions(&mut self) {
        let before = self.ready();
        while let Ok(frames) = self.socket.recv_multipart(socket::DONTWAIT) {
            match frames.first().and_then(|f| f.first()) {
                Some(1) => self.subscriptions += 1,
                Some(0) => self.subscriptions = self.subscriptions.saturating_sub(1),
                _ => {}
            }
        }
        match (before, self.ready()) {
            (false, true) => info!(endpoint = %self.endpoint.given, "collector connected"),
            (true, false) => {
                info!(endpoint = %self.endpoint.given, "collector disconnected; holding messages until it returns");
            }
            _ => {}
        }
    }
}

/// Opens every collector's socket (so that bind errors surface before tracing starts)
/// and starts the exporter thread reading `input`. The thread ends when `input`
/// closes, after a last flush and `event`; it returns its counters.
///
/// # Errors
/// [`ZmqSetupError`] naming the endpoint that failed, or a missing CURVE.
pub fn start(config: ZmqConfig, input: Receiver<SinkInput>) -> Result<JoinHandle<ZmqCounters>, ZmqSetupError> {
    let ctx = Context::new()?;
    let curve = match &config.server_key {
        Some(key) => {
            if !socket::has("curve") {
                return Err(ZmqSetupError::NoCurve(socket::version()));
            }
            Some((key.clone(), socket::curve_keypair()?))
        }
        None => None,
    };
    let mut collectors = Vec::new();
    for (i, endpoint) in config.endpoints.iter().enumerate() {
        let err = |source| ZmqSetupError::Endpoint { endpoint: endpoint.given.clone(), source };
        let pub_socket = ctx.socket(socket::XPUB)?;
        pub_socket.set_int(socket::OPT_SNDHWM, i32::try_from(config.queue).unwrap_or(i32::MAX))?;
        pub_socket.set_int(socket::OPT_XPUB_NODROP, 1)?;
        pub_socket.set_int(socket::OPT_XPUB_VERBOSER, 1)?;
        pub_socket.set_int(socket::OPT_IMMEDIATE, 1)?;
        pub_socket.set_int(socket::OPT_LINGER, 2000)?;
        pub_socket.set_int(socket::OPT_TCP_KEEPALIVE, 1)?;
        pub_socket.set_int(socket::OPT_TCP_KEEPALIVE_IDLE, 30)?;
        if let Some((server_key, (public, secret))) = &curve {
            // The probe is the CURVE client; ntopng is always the server.
            pub_socket.set_bytes(socket::OPT_CURVE_SERVERKEY, server_key.as_bytes())?;
            pub_socket.set_bytes(socket::OPT_CURVE_PUBLICKEY, public.as_bytes())?;
            pub_socket.set_bytes(socket::OPT_CURVE_SECRETKEY, secret.as_bytes())?;
        }
        let monitor_name = format!("inproc://packetless-monitor-{i}");
        let events = socket::EVENT_CONNECTED
            | socket::EVENT_ACCEPTED
            | socket::EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | socket::EVENT_HANDSHAKE_FAILED_PROTOCOL
            | socket::EVENT_HANDSHAKE_FAILED_AUTH;
        pub_socket.monitor(&monitor_name, i32::from(events))?;
        let monitor = ctx.socket(socket::PAIR)?;
        monitor.connect(&monitor_name)?;
        if endpoint.connect {
            pub_socket.connect(&endpoint.address).map_err(err)?;
        } else {
            pub_socket.bind(&endpoint.address).map_err(err)?;
        }
        info!(endpoint = %endpoint.given, mode = if endpoint.connect { "connect" } else { "bind" }, encrypted = curve.is_some(), "ZMQ export");
        collectors.push(Collector {
            endpoint: endpoint.clone(),
            socket: pub_socket,
            monitor,
            subscriptions: 0,
            last_msg_id: 0,
            backlog: VecDeque::new(),
            backlog_flows: 0,
        });
    }
    let exporter = Exporter {
        config,
        collectors,
        tlv: TlvWriter::with_capacity(MAX_PAYLOAD),
        spare_payload: None,
        json_objects: Vec::new(),
        json_len: 2,
        batch: packetless_wire::proto::v1::Batch::default(),
        batch_len: 0,
        counters: ZmqCounters::default(),
        listens: BTreeMap::new(),
        stats: None,
        started: SystemTime::now(),
        _ctx: ctx,
    };
    std::thread::Builder::new().name("zmq-export".into()).spawn(move || exporter.run(&input)).map_err(|e| {
        ZmqSetupError::Zmq(ZmqError {
            call: "spawn exporter thread".into(),
            errno: e.raw_os_error().unwrap_or(0),
            text: e.to_string(),
        })
    })
}

/// A listening socket as `listening-ports` reports it.
type ListenKey = (Proto, bool, u16, u32);

struct Exporter {
    config: ZmqConfig,
    collectors: Vec<Collector>,
    tlv: TlvWriter,
    /// A sent TLV payload's buffer, for the next payload to be written in.
    spare_payload: Option<Vec<u8>>,
    json_objects: Vec<serde_json::Value>,
    json_len: usize,
    batch: packetless_wire::proto::v1::Batch,
    batch_len: usize,
    counters: ZmqCounters,
    listens: BTreeMap<ListenKey, String>,
    stats: Option<Arc<RunStats>>,
    started: SystemTime,
    // Dropped after the sockets (field order), which terminating the context needs.
    _ctx: Context,
}

impl Exporter {
    fn run(mut self, input: &Receiver<SinkInput>) -> ZmqCounters {
        let mut next_event = Instant::now();
        loop {
            self.poll_monitors();
            let now = Instant::now();
            if now >= next_event {
                self.send_event();
                self.send_listening_ports();
                next_event = now + self.config.event_interval;
            }
            self.drain_backlogs();
            let wait = next_event.saturating_duration_since(now).min(Duration::from_millis(100));
            match input.recv_timeout(wait) {
                Ok(first) => {
                    self.take(first);
                    while let Ok(more) = input.try_recv() {
                        self.take(more);
                    }
                    self.flush_flows();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush_flows();
        self.send_event();
        self.finish_backlogs();
        info!(
            messages = self.counters.messages_sent,
            flows = self.counters.flows_exported,
            dropped_queue_full = self.counters.dropped_queue_full,
            dropped_no_collector = self.counters.dropped_no_collector,
            "ZMQ export done"
        );
        self.counters
    }

    fn take(&mut self, input: SinkInput) {
        match input {
            SinkInput::Records(records) => {
                for record in records.iter() {
                    if self.config.format == ZmqFormat::Protobuf {
                        self.add_protobuf(protobuf::record(record));
                        if matches!(record, Record::Flow(_)) {
                            self.counters.flows_exported += 1;
                        }
                        continue;
                    }
                    match record {
                        Record::Flow(flow) => self.add_flow(flow),
                        Record::Listen(listen) => self.note_listen(listen),
                        Record::Dependency(_) | Record::LocalIp(_) => {}
                    }
                }
            }
            SinkInput::Stats(stats) => self.stats = Some(stats),
        }
    }

    fn add_protobuf(&mut self, record: packetless_wire::proto::v1::Record) {
        use prost::Message;
        // Tag, length prefix and the record: a safe upper bound of its share.
        let len = record.encoded_len() + 8;
        if self.batch_len + len > MAX_PAYLOAD && !self.batch.records.is_empty() {
            self.flush_flows();
        }
        self.batch_len += len;
        self.batch.records.push(record);
    }

    fn note_listen(&mut self, l: &ListenRecord) {
        let key = (l.proto, l.ip.is_ipv4(), l.port, l.netns);
        if l.state == FlowState::Closed {
            self.listens.remove(&key);
        } else {
            self.listens.insert(key, l.process.as_ref().map(|p| p.comm.to_string()).unwrap_or_default());
        }
    }

    fn add_flow(&mut self, flow: &FlowRecord) {
        match self.config.format {
            ZmqFormat::Tlv => {
                let mark = self.tlv.mark();
                mapping::write_tlv(&mut self.tlv, flow);
                if self.tlv.len() > MAX_PAYLOAD && self.tlv.records() > 1 {
                    // Once per payload: encoding the record again is cheaper than
                    // keeping a copy of every record in case it does not fit.
                    self.tlv.rollback(mark);
                    self.flush_flows();
                    mapping::write_tlv(&mut self.tlv, flow);
                }
            }
            ZmqFormat::Protobuf => unreachable!("protobuf records are added whole"),
            ZmqFormat::Json => {
                let fields = mapping::flow_fields(flow);
                let object = json::flow_object(&fields, &mapping::container_objects(flow));
                let len = serde_json::to_vec(&object).map_or(0, |v| v.len()) + 1;
                if self.json_len + len > MAX_PAYLOAD && !self.json_objects.is_empty() {
                    self.flush_flows();
                }
                self.json_len += len;
                self.json_objects.push(object);
            }
        }
        self.counters.flows_exported += 1;
    }

    /// Sends the flows gathered so far as one `flow` message.
    fn flush_flows(&mut self) {
        match self.config.format {
            ZmqFormat::Tlv => {
                if self.tlv.is_empty() {
                    return;
                }
                // The buffer of the payload sent last, unless a backlog still holds it.
                let next = self.spare_payload.take().unwrap_or_else(|| Vec::with_capacity(MAX_PAYLOAD));
                let payload = self.tlv.take_payload(next);
                self.spare_payload = self.send("flow", payload, true);
            }
            ZmqFormat::Json => {
                if self.json_objects.is_empty() {
                    return;
                }
                self.json_len = 2;
                let payload = json::payload(std::mem::take(&mut self.json_objects));
                self.send("flow", payload, false);
            }
            ZmqFormat::Protobuf => {
                if self.batch.records.is_empty() {
                    return;
                }
                self.batch.source_id = self.config.source_id;
                let payload = packetless_wire::proto::encode(&self.batch);
                self.batch.records.clear();
                self.batch_len = 0;
                self.send(packetless_wire::proto::TOPIC, payload, false);
            }
        }
    }

    /// Frames and sends one message to every collector (or to its backlog).
    /// Gives `payload` back when no collector's backlog kept it (libzmq copies
    /// what it sends), for the next payload to reuse.
    fn send(&mut self, topic: &'static str, payload: Vec<u8>, tlv: bool) -> Option<Vec<u8>> {
        let raw_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut uncompressed = None;
        let (header, payload) = match self.config.header {
            HeaderKind::V2 => (
                Header::V2 {
                    topic: topic.to_owned(),
                    version: if tlv { VERSION_TLV } else { VERSION_JSON },
                    size: u16::try_from(payload.len()).unwrap_or(u16::MAX),
                    msg_id: 0,
                    source_id: self.config.source_id,
                },
                payload,
            ),
            HeaderKind::V3 => {
                let mut flags = if tlv { FLAG_TLV } else { 0 };
                let payload = if self.config.compress {
                    flags |= FLAG_COMPRESSED;
                    let compressed = compress::zlib(&payload);
                    uncompressed = Some(payload);
                    compressed
                } else {
                    payload
                };
                (
                    Header::V3 {
                        topic: topic.to_owned(),
                        flags,
                        uncompressed_size: raw_len,
                        // ntopng sizes its inflate buffer from this field: the
                        // UNCOMPRESSED length, as the contract notes.
                        compressed_size: raw_len,
                        msg_id: 0,
                        source_id: self.config.source_id,
                    },
                    payload,
                )
            }
        };
        let message = Message {
            topic,
            status: matches!(topic, "event" | "listening-ports"),
            header: Arc::new(header.encode().expect("topics are short literals")),
            payload: Arc::new(payload),
        };
        for i in 0..self.collectors.len() {
            self.deliver(i, message.clone());
        }
        uncompressed.or_else(|| Arc::try_unwrap(message.payload).ok())
    }

    fn deliver(&mut self, i: usize, message: Message) {
        let collector = &mut self.collectors[i];
        if !collector.ready() || !collector.backlog.is_empty() {
            if collector.queue(message, self.config.queue) {
                self.counters.dropped_no_collector += 1;
            }
            return;
        }
        let sent = collector.try_send(&message);
        if matches!(&sent, Err(e) if e.would_block()) {
            // Lost: its id becomes the gap the collector sees.
            collector.next_msg_id();
        }
        self.counters.count_send(&collector.endpoint, sent);
    }

    /// Sends what waited for collectors that are now ready.
    fn drain_backlogs(&mut self) {
        for collector in &mut self.collectors {
            while collector.ready() {
                let Some(message) = collector.backlog.front().cloned() else { break };
                let sent = collector.try_send(&message);
                if matches!(&sent, Err(e) if e.would_block()) {
                    break;
                }
                self.counters.count_send(&collector.endpoint, sent);
                collector.pop_front();
            }
        }
    }

    /// At exit: give collectors that are connected a moment to take the backlog;
    /// count the flow messages that cannot be delivered.
    fn finish_backlogs(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && self.collectors.iter().any(|c| !c.backlog.is_empty() && c.ready()) {
            self.poll_monitors();
            self.drain_backlogs();
            std::thread::sleep(Duration::from_millis(20));
        }
        for collector in &mut self.collectors {
            self.counters.dropped_no_collector += collector.backlog_flows as u64;
            collector.backlog.clear();
            collector.backlog_flows = 0;
        }
    }

    fn poll_monitors(&mut self) {
        for collector in &mut self.collectors {
            collector.take_subscriptions();
            while let Ok(frames) = collector.monitor.recv_multipart(socket::DONTWAIT) {
                let Some(event) = socket::parse_monitor_event(&frames) else { continue };
                let given = &collector.endpoint.given;
                match event {
                    socket::EVENT_CONNECTED | socket::EVENT_ACCEPTED => self.counters.connections += 1,
                    socket::EVENT_HANDSHAKE_FAILED_NO_DETAIL
                    | socket::EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | socket::EVENT_HANDSHAKE_FAILED_AUTH => {
                        self.counters.handshake_failures += 1;
                        warn!(
                            endpoint = %given,
                            "ZMQ handshake with the collector failed: with CURVE, the collector's key does not match \
                             --zmq-encryption-key (or the collector does not use CURVE)"
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// The `event` message: ntopng shows the probe from it and, above all, takes its
    /// flow timeouts from it (without `timeout` it expires flows after 10 s).
    fn send_event(&mut self) {
        if self.config.format == ZmqFormat::Protobuf {
            if let Some(stats) = self.stats.clone() {
                self.add_protobuf(protobuf::stats(&stats));
                self.flush_flows();
            }
        }
        let update = self.config.update_interval.as_secs().max(1);
        let stats = self.stats.as_deref().cloned().unwrap_or_default();
        let kernel_lost: u64 =
            stats.pipeline.kernel.iter().filter(|(name, _)| **name != "no_owner").map(|(_, v)| *v).sum();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let event = json!({
            "time": now,
            "probe": {
                "version": env!("CARGO_PKG_VERSION"),
                "edition": "packetless",
                "osname": "Linux",
                "uuid": format!("packetless-{:08x}", self.config.source_id),
                "unique_source_id": self.config.source_id,
                "ip": probe_ip().map(|ip| ip.to_string()).unwrap_or_default(),
            },
            "iface": { "name": "packetless", "speed": 0, "ip": probe_ip().map(|ip| ip.to_string()).unwrap_or_default() },
            "mode": "agent",
            "timeout": { "lifetime": update, "idle": (2 * update).max(60), "collected_lifetime": update },
            "drops": {
                "export_queue_full": self.counters.dropped_queue_full + self.counters.dropped_no_collector,
                "too_many_flows": stats.flows.flows_evicted,
                "flow_collection_drops": kernel_lost + stats.pipeline.channel_full + stats.output_dropped,
            },
            "zmq": { "num_flow_exports": self.counters.flows_exported, "num_zmq_exporters": self.collectors.len() },
            "packetless": {
                "uptime": SystemTime::now().duration_since(self.started).map_or(0, |d| d.as_secs()),
                "zmq": self.counters,
                "stats": stats,
            },
        });
        self.send("event", serde_json::to_vec(&event).expect("JSON values serialize"), false);
    }

    /// The `listening-ports` message: the ports this host listens on, by process.
    fn send_listening_ports(&mut self) {
        let mut ports: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
        for ((proto, v4, port, _netns), process) in &self.listens {
            let family = match (proto, v4) {
                (Proto::Tcp, true) => "tcp4",
                (Proto::Tcp, false) => "tcp6",
                (Proto::Udp, true) => "udp4",
                (Proto::Udp, false) => "udp6",
            };
            ports.entry(family).or_default().push(json!({ "port": port, "proc": process, "pkg": "" }));
        }
        let ips: Vec<String> = crate::classify::interface_addrs()
            .into_iter()
            .filter(|ip| !ip.is_loopback() && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
            .map(|ip| ip.to_string())
            .collect();
        let message = json!({
            "instance-name": "packetless",
            "listening-ports": ports,
            "ip-addresses": ips,
        });
        self.send("listening-ports", serde_json::to_vec(&message).expect("JSON values serialize"), false);
    }
}

fn send_pair(socket: &Socket, header: &[u8], payload: &[u8]) -> Result<(), ZmqError> {
    socket.send(header, socket::SNDMORE | socket::DONTWAIT)?;
    // Once the first frame is accepted libzmq takes the whole message atomically:
    // the second frame cannot fail on a full queue.
    socket.send(payload, socket::DONTWAIT)
}

/// The first IPv4 address of an interface other than loopback.
fn probe_ip() -> Option<IpAddr> {
    crate::classify::interface_addrs().into_iter().find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use packetless_wire::tlv;

    #[test]
    fn endpoints_follow_the_nprobe_convention() {
        let bind = Endpoint::parse("tcp://*:5556").unwrap();
        assert_eq!((bind.address.as_str(), bind.connect), ("tcp://*:5556", false));
        let connect = Endpoint::parse("tcp://ntopng.example:5556c").unwrap();
        assert_eq!((connect.address.as_str(), connect.connect), ("tcp://ntopng.example:5556", true));
        assert_eq!(Endpoint::parse("zmq://10.0.0.1:5556").unwrap().address, "tcp://10.0.0.1:5556");
        assert!(Endpoint::parse("udp://x:1").unwrap_err().contains("expected tcp://HOST:PORT"));
        assert!(Endpoint::parse("tcp://host:http").unwrap_err().contains("is not a port"));
        assert!(Endpoint::parse("ipc:///tmp/pl.sock").is_ok());
    }

    fn message(topic: &'static str) -> Message {
        let header = Header::V2 { topic: topic.into(), version: VERSION_JSON, size: 0, msg_id: 0, source_id: 1 };
        Message {
            topic,
            status: topic != "flow",
            header: Arc::new(header.encode().unwrap()),
            payload: Arc::new(topic.as_bytes().to_vec()),
        }
    }

    #[test]
    fn a_backlog_keeps_flows_numbers_their_losses_and_only_the_latest_status() {
        let ctx = Context::new().unwrap();
        let xpub = ctx.socket(socket::XPUB).unwrap();
        xpub.set_int(socket::OPT_XPUB_VERBOSER, 1).unwrap();
        xpub.bind("inproc://backlog-test").unwrap();
        let monitor = ctx.socket(socket::PAIR).unwrap();
        let mut collector = Collector {
            endpoint: Endpoint::parse("tcp://127.0.0.1:5556").unwrap(),
            socket: xpub,
            monitor,
            subscriptions: 0,
            last_msg_id: 0,
            backlog: VecDeque::new(),
            backlog_flows: 0,
        };
        // Room for two flow messages; status messages take none of it.
        let mut dropped = Vec::new();
        for topic in ["flow", "event", "listening-ports", "flow", "event", "flow", "listening-ports", "event"] {
            dropped.push(collector.queue(message(topic), 2));
        }
        assert_eq!(
            dropped,
            [false, false, false, false, false, true, false, false],
            "the third flow pushes out the first"
        );
        let topics: Vec<_> = collector.backlog.iter().map(|m| m.topic).collect();
        assert_eq!(topics, ["flow", "flow", "listening-ports", "event"]);
        assert_eq!((collector.backlog_flows, collector.last_msg_id), (2, 1), "the lost flow took id 1");

        // Not ready until a subscription arrives; then the backlog goes out in order.
        assert!(!collector.ready());
        let sub = ctx.socket(socket::SUB).unwrap();
        sub.set_bytes(socket::OPT_SUBSCRIBE, b"").unwrap();
        sub.set_int(socket::OPT_RCVTIMEO, 100).unwrap();
        sub.connect("inproc://backlog-test").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !collector.ready() {
            assert!(Instant::now() < deadline, "the subscription never arrived");
            collector.take_subscriptions();
            std::thread::sleep(Duration::from_millis(5));
        }
        while let Some(m) = collector.backlog.front().cloned() {
            collector.try_send(&m).unwrap();
            collector.pop_front();
        }
        assert_eq!(collector.backlog_flows, 0);
        let mut got = Vec::new();
        while got.len() < 4 {
            assert!(Instant::now() < deadline, "received {got:?}");
            let Ok(frames) = sub.recv_multipart(0) else { continue };
            let header = Header::decode(&frames[0]).unwrap();
            got.push((header.msg_id(), header.topic().to_owned()));
        }
        assert_eq!(
            got,
            [(2, "flow".into()), (3, "flow".into()), (4, "listening-ports".into()), (5, "event".into())],
            "ids continue after the gap of the lost flow"
        );

        // The collector leaves: its unsubscription makes the backlog hold again.
        drop(sub);
        while collector.ready() {
            assert!(Instant::now() < deadline, "the unsubscription never arrived");
            collector.take_subscriptions();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A SUB socket bound where an exporter connects, and that exporter.
    fn exporter_and_collector(
        compress: bool,
    ) -> (Socket, std::sync::mpsc::SyncSender<SinkInput>, JoinHandle<ZmqCounters>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let ctx = Context::new().unwrap();
        let sub = ctx.socket(socket::SUB).unwrap();
        sub.set_bytes(socket::OPT_SUBSCRIBE, b"flow").unwrap();
        sub.set_int(socket::OPT_RCVTIMEO, 100).unwrap();
        sub.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let config = ZmqConfig {
            endpoints: vec![Endpoint::parse(&format!("tcp://127.0.0.1:{port}c")).unwrap()],
            format: ZmqFormat::Tlv,
            header: HeaderKind::V3,
            compress,
            source_id: 7,
            server_key: None,
            event_interval: Duration::from_secs(3600),
            queue: 1000,
            update_interval: Duration::from_secs(60),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        (sub, tx, start(config, rx).unwrap())
    }

    /// Receives `flow` messages until `n` records came: their message ids and records.
    fn receive_flows(sub: &Socket, n: usize) -> (Vec<u32>, Vec<tlv::Record>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut ids, mut records) = (Vec::new(), Vec::new());
        while records.len() < n {
            assert!(Instant::now() < deadline, "{} of {n} flows arrived", records.len());
            let Ok(frames) = sub.recv_multipart(0) else { continue };
            let header = Header::decode(&frames[0]).unwrap();
            let payload = if header.is_compressed() {
                compress::inflate(&frames[1], 1 << 20).unwrap()
            } else {
                frames[1].clone()
            };
            assert!(payload.len() <= MAX_PAYLOAD, "a payload of {} bytes", payload.len());
            ids.push(header.msg_id());
            records.extend(tlv::decode(&payload).unwrap());
        }
        (ids, records)
    }

    #[test]
    fn flows_fill_payloads_under_the_limit_and_arrive_whole_in_order_in_reused_buffers() {
        let flows: Vec<FlowRecord> = mapping::tests::golden_records().into_iter().cycle().take(3000).collect();
        let want: Vec<tlv::Record> = flows
            .iter()
            .map(|f| mapping::flow_fields(f).into_iter().map(|(k, v)| (tlv::Key::Id(k), v)).collect())
            .collect();
        let batch = Arc::new(flows.into_iter().map(Record::Flow).collect::<Vec<_>>());
        for compress in [false, true] {
            let (sub, tx, exporter) = exporter_and_collector(compress);
            // The second batch is written in the buffers of the first one's payloads.
            let mut ids = Vec::new();
            for _ in 0..2 {
                tx.send(SinkInput::Records(Arc::clone(&batch))).unwrap();
                let (batch_ids, records) = receive_flows(&sub, want.len());
                assert!(batch_ids.len() > 2, "{} payloads: too few to reuse a buffer", batch_ids.len());
                assert!(records == want, "compress={compress}: the flows that arrived are not the flows sent");
                ids.extend(batch_ids);
            }
            assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "compress={compress}: message ids {ids:?}");
            drop(tx);
            let counters = exporter.join().unwrap();
            assert_eq!(counters.flows_exported, 2 * want.len() as u64);
        }
    }
}
