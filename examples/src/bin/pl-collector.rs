//! pl-collector: a minimal ZMQ collector for packetless (or nProbe) exports.
//!
//! It binds like ntopng in collector mode (`ntopng -i tcp://*:5556c`) and prints
//! every message it receives as one JSON line: the header's topic, version, message
//! id and source id, then flow records decoded from nDPI TLV (field ids shown with
//! their ntopng names), the JSON payload of events, or packetless's protobuf batches.
//!
//! ```text
//! cargo run -p packetless-examples --bin pl-collector -- tcp://*:5556
//! packetless run --zmq tcp://127.0.0.1:5556c
//! ```
//!
//! A second argument, a CURVE secret key (Z85), makes it a CURVE server like ntopng
//! with `--zmq-encryption`; give the probe the matching public key.

use std::process::ExitCode;

use packetless::sink::zmq::socket::{self, Context};
use packetless_wire::header::Header;
use packetless_wire::{compress, fields, proto, tlv};
use serde_json::{json, Map, Value as Json};

/// ntopng's topics (every one it subscribes to), and packetless's protobuf topic.
const TOPICS: [&str; 10] = [
    "flow",
    "event",
    "counter",
    "template",
    "option",
    "hello",
    "listening-ports",
    "snmp-ifaces",
    "message",
    proto::TOPIC,
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(endpoint) = args.first() else {
        eprintln!("usage: pl-collector tcp://*:PORT [CURVE-SECRET-KEY]");
        return ExitCode::from(2);
    };
    match run(endpoint, args.get(1).map(String::as_str)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pl-collector: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(endpoint: &str, curve_secret: Option<&str>) -> Result<(), socket::ZmqError> {
    let ctx = Context::new()?;
    let sub = ctx.socket(socket::SUB)?;
    sub.set_int(socket::OPT_RCVHWM, 100_000)?;
    if let Some(secret) = curve_secret {
        sub.set_int(socket::OPT_CURVE_SERVER, 1)?;
        sub.set_bytes(socket::OPT_CURVE_SECRETKEY, secret.as_bytes())?;
    }
    for topic in TOPICS {
        sub.set_bytes(socket::OPT_SUBSCRIBE, topic.as_bytes())?;
    }
    sub.bind(endpoint)?;
    eprintln!("pl-collector: listening on {endpoint}");
    loop {
        let frames = sub.recv_multipart(0)?;
        println!("{}", describe(&frames));
    }
}

/// One message as a JSON object; malformed messages are described, not fatal.
fn describe(frames: &[Vec<u8>]) -> Json {
    let [header, payload, ..] = frames else {
        return json!({ "error": format!("{} frame(s); ntopng expects 2", frames.len()) });
    };
    let header = match Header::decode(header) {
        Ok(h) => h,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut out = json!({
        "topic": header.topic(),
        "msg_id": header.msg_id(),
        "source_id": header.source_id(),
        "tlv": header.is_tlv(),
        "compressed": header.is_compressed(),
    });
    let payload = if header.is_compressed() {
        match compress::inflate(payload, 16 << 20) {
            Ok(p) => p,
            Err(e) => return json!({ "error": e.to_string() }),
        }
    } else {
        payload.clone()
    };
    out["payload"] = if header.topic() == proto::TOPIC {
        match proto::decode(&payload) {
            Ok(batch) => Json::String(format!("{batch:?}")),
            Err(e) => json!({ "error": e.to_string() }),
        }
    } else if header.topic() == "flow" && header.is_tlv() {
        match tlv::decode(&payload) {
            Ok(records) => Json::Array(records.iter().map(record).collect()),
            Err(e) => json!({ "error": e.to_string() }),
        }
    } else {
        serde_json::from_slice(&payload).unwrap_or_else(|e| json!({ "error": e.to_string() }))
    };
    out
}

fn record(r: &tlv::Record) -> Json {
    let mut m = Map::new();
    for (key, value) in r {
        let name = match key {
            tlv::Key::Id(id) => fields::name(*id).map_or_else(|| id.to_string(), str::to_owned),
            tlv::Key::Name(name) => name.clone(),
        };
        let value = match value {
            tlv::Value::Uint(v) => json!(v),
            tlv::Value::Int(v) => json!(v),
            tlv::Value::Float(v) => json!(v),
            tlv::Value::Str(v) => json!(v),
        };
        m.insert(name, value);
    }
    Json::Object(m)
}
