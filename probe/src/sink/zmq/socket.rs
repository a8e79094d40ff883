//! A small, safe binding to the system's libzmq (Debian `libzmq5`, linked against
//! libsodium, so CURVE works). Only what packetless and its tests need: a context,
//! sockets, options, bind/connect, multipart send and receive, CURVE keys, and
//! socket monitors.
//!
//! Why not a crate: the `zmq` crate builds its own libzmq without libsodium (no
//! CURVE), and pure-Rust implementations have no CURVE either. ntopng's newer
//! releases require CURVE by default.
//!
//! A [`Socket`] is `Send` but not `Sync`: libzmq sockets may move between threads
//! but must not be used from two at once.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::sync::Arc;

/// `ZMQ_PAIR`.
pub const PAIR: i32 = 0;
/// `ZMQ_PUB`.
pub const PUB: i32 = 1;
/// `ZMQ_SUB`.
pub const SUB: i32 = 2;
/// `ZMQ_XPUB`: a PUB that also reports subscriptions.
pub const XPUB: i32 = 9;

/// `ZMQ_DONTWAIT`.
pub const DONTWAIT: i32 = 1;
/// `ZMQ_SNDMORE`.
pub const SNDMORE: i32 = 2;

/// `ZMQ_SUBSCRIBE`.
pub const OPT_SUBSCRIBE: i32 = 6;
/// `ZMQ_LINGER`.
pub const OPT_LINGER: i32 = 17;
/// `ZMQ_SNDHWM`.
pub const OPT_SNDHWM: i32 = 23;
/// `ZMQ_RCVHWM`.
pub const OPT_RCVHWM: i32 = 24;
/// `ZMQ_RCVTIMEO`.
pub const OPT_RCVTIMEO: i32 = 27;
/// `ZMQ_TCP_KEEPALIVE`.
pub const OPT_TCP_KEEPALIVE: i32 = 34;
/// `ZMQ_TCP_KEEPALIVE_IDLE`.
pub const OPT_TCP_KEEPALIVE_IDLE: i32 = 36;
/// `ZMQ_CURVE_SERVER`.
pub const OPT_CURVE_SERVER: i32 = 47;
/// `ZMQ_CURVE_PUBLICKEY`.
pub const OPT_CURVE_PUBLICKEY: i32 = 48;
/// `ZMQ_CURVE_SECRETKEY`.
pub const OPT_CURVE_SECRETKEY: i32 = 49;
/// `ZMQ_CURVE_SERVERKEY`.
pub const OPT_CURVE_SERVERKEY: i32 = 50;
/// `ZMQ_XPUB_NODROP`: a full queue makes send fail with EAGAIN instead of dropping.
pub const OPT_XPUB_NODROP: i32 = 69;
/// `ZMQ_IMMEDIATE`: a connecting socket has a pipe only while connected, so a lost
/// connection ends its subscriptions (and a new one subscribes afresh).
pub const OPT_IMMEDIATE: i32 = 39;
/// `ZMQ_XPUB_VERBOSER`: every subscribe and unsubscribe comes up as a message,
/// including the unsubscriptions of a peer that disconnected.
pub const OPT_XPUB_VERBOSER: i32 = 78;

/// Monitor event: a connection was made (connect side).
pub const EVENT_CONNECTED: u16 = 0x0001;
/// Monitor event: a connection was accepted (bind side).
pub const EVENT_ACCEPTED: u16 = 0x0020;
/// Monitor event: a connection went away.
pub const EVENT_DISCONNECTED: u16 = 0x0200;
/// Monitor event: the security handshake failed for no stated reason.
pub const EVENT_HANDSHAKE_FAILED_NO_DETAIL: u16 = 0x0800;
/// Monitor event: the security handshake succeeded.
pub const EVENT_HANDSHAKE_SUCCEEDED: u16 = 0x1000;
/// Monitor event: the peer broke the ZMTP protocol.
pub const EVENT_HANDSHAKE_FAILED_PROTOCOL: u16 = 0x2000;
/// Monitor event: authentication failed (wrong CURVE key).
pub const EVENT_HANDSHAKE_FAILED_AUTH: u16 = 0x4000;

#[repr(C, align(8))]
struct ZmqMsg([u8; 64]);

#[link(name = "zmq")]
unsafe extern "C" {
    fn zmq_ctx_new() -> *mut c_void;
    fn zmq_ctx_term(context: *mut c_void) -> c_int;
    fn zmq_socket(context: *mut c_void, kind: c_int) -> *mut c_void;
    fn zmq_close(socket: *mut c_void) -> c_int;
    fn zmq_setsockopt(socket: *mut c_void, option: c_int, value: *const c_void, len: usize) -> c_int;
    fn zmq_bind(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    fn zmq_connect(socket: *mut c_void, endpoint: *const c_char) -> c_int;
    fn zmq_send(socket: *mut c_void, buf: *const c_void, len: usize, flags: c_int) -> c_int;
    fn zmq_msg_init(msg: *mut ZmqMsg) -> c_int;
    fn zmq_msg_recv(msg: *mut ZmqMsg, socket: *mut c_void, flags: c_int) -> c_int;
    fn zmq_msg_data(msg: *mut ZmqMsg) -> *mut c_void;
    fn zmq_msg_size(msg: *const ZmqMsg) -> usize;
    fn zmq_msg_more(msg: *const ZmqMsg) -> c_int;
    fn zmq_msg_close(msg: *mut ZmqMsg) -> c_int;
    fn zmq_errno() -> c_int;
    fn zmq_strerror(errnum: c_int) -> *const c_char;
    fn zmq_has(capability: *const c_char) -> c_int;
    fn zmq_curve_keypair(public: *mut c_char, secret: *mut c_char) -> c_int;
    fn zmq_z85_decode(dest: *mut u8, string: *const c_char) -> *mut u8;
    fn zmq_socket_monitor(socket: *mut c_void, endpoint: *const c_char, events: c_int) -> c_int;
    fn zmq_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int);
}

/// A libzmq error: the call and the errno with libzmq's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {text} (errno {errno})")]
pub struct ZmqError {
    /// What was called.
    pub call: String,
    /// errno.
    pub errno: i32,
    /// libzmq's description.
    pub text: String,
}

impl ZmqError {
    fn last(call: impl Into<String>) -> Self {
        // SAFETY: zmq_errno reads thread-local errno; zmq_strerror returns a static string.
        let errno = unsafe { zmq_errno() };
        // SAFETY: as above; the pointer is valid for the program's life.
        let text = unsafe { CStr::from_ptr(zmq_strerror(errno)) }.to_string_lossy().into_owned();
        Self { call: call.into(), errno, text }
    }

    /// Whether the call would have blocked (a full queue with `DONTWAIT`, or a receive
    /// timeout).
    #[must_use]
    pub fn would_block(&self) -> bool {
        self.errno == libc::EAGAIN
    }
}

struct Ctx(*mut c_void);

// SAFETY: a libzmq context is thread-safe.
unsafe impl Send for Ctx {}
// SAFETY: as above.
unsafe impl Sync for Ctx {}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: the context is valid and every socket (which holds an Arc of it) is
        // closed before the last Arc drops.
        unsafe { zmq_ctx_term(self.0) };
    }
}

/// A libzmq context. Cheap to clone; terminated when the last clone and the last
/// socket are gone.
#[derive(Clone)]
pub struct Context(Arc<Ctx>);

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context")
    }
}

impl Context {
    /// A new context.
    ///
    /// # Errors
    /// When libzmq cannot create one.
    pub fn new() -> Result<Self, ZmqError> {
        // SAFETY: no preconditions.
        let ctx = unsafe { zmq_ctx_new() };
        if ctx.is_null() {
            return Err(ZmqError::last("zmq_ctx_new"));
        }
        Ok(Self(Arc::new(Ctx(ctx))))
    }

    /// A socket of `kind` ([`PUB`], [`XPUB`], [`SUB`], [`PAIR`]).
    ///
    /// # Errors
    /// When libzmq refuses.
    pub fn socket(&self, kind: i32) -> Result<Socket, ZmqError> {
        // SAFETY: the context is valid for as long as this Arc lives.
        let raw = unsafe { zmq_socket(self.0 .0, kind) };
        if raw.is_null() {
            return Err(ZmqError::last("zmq_socket"));
        }
        Ok(Socket { raw, _ctx: Arc::clone(&self.0) })
    }
}

/// A libzmq socket.
pub struct Socket {
    raw: *mut c_void,
    _ctx: Arc<Ctx>,
}

// SAFETY: libzmq sockets may be moved to another thread (not shared between threads:
// Socket is not Sync and every method takes &self or &mut self on one thread).
unsafe impl Send for Socket {}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Socket")
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: raw is a valid socket, closed once.
        unsafe { zmq_close(self.raw) };
    }
}

fn cstring(s: &str, call: &str) -> Result<CString, ZmqError> {
    CString::new(s).map_err(|_| ZmqError { call: call.into(), errno: libc::EINVAL, text: "NUL in string".into() })
}

impl Socket {
    /// Sets an integer option.
    ///
    /// # Errors
    /// When libzmq refuses the option.
    pub fn set_int(&self, option: i32, value: i32) -> Result<(), ZmqError> {
        self.set_bytes(option, &value.to_ne_bytes())
    }

    /// Sets a binary or string option.
    ///
    /// # Errors
    /// When libzmq refuses the option.
    pub fn set_bytes(&self, option: i32, value: &[u8]) -> Result<(), ZmqError> {
        // SAFETY: value points at value.len() readable bytes.
        let rc = unsafe { zmq_setsockopt(self.raw, option, value.as_ptr().cast(), value.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(ZmqError::last(format!("zmq_setsockopt({option})")))
        }
    }

    /// Binds to `endpoint`.
    ///
    /// # Errors
    /// When the address is invalid or in use.
    pub fn bind(&self, endpoint: &str) -> Result<(), ZmqError> {
        self.endpoint_call("zmq_bind", endpoint, zmq_bind)
    }

    /// Connects to `endpoint` (asynchronously: libzmq retries until it succeeds).
    ///
    /// # Errors
    /// When the address is invalid.
    pub fn connect(&self, endpoint: &str) -> Result<(), ZmqError> {
        self.endpoint_call("zmq_connect", endpoint, zmq_connect)
    }

    fn endpoint_call(
        &self,
        name: &str,
        endpoint: &str,
        call: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    ) -> Result<(), ZmqError> {
        let c = cstring(endpoint, name)?;
        // SAFETY: raw is a valid socket and c a valid NUL-terminated string.
        if unsafe { call(self.raw, c.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(ZmqError::last(format!("{name}({endpoint})")))
        }
    }

    /// Sends one frame with `flags` ([`SNDMORE`], [`DONTWAIT`]).
    ///
    /// # Errors
    /// EAGAIN ([`ZmqError::would_block`]) when the queue is full with `DONTWAIT`.
    pub fn send(&self, frame: &[u8], flags: i32) -> Result<(), ZmqError> {
        // SAFETY: frame points at frame.len() readable bytes; libzmq copies them.
        let rc = unsafe { zmq_send(self.raw, frame.as_ptr().cast(), frame.len(), flags) };
        if rc >= 0 {
            Ok(())
        } else {
            Err(ZmqError::last("zmq_send"))
        }
    }

    /// Receives one multipart message (every frame), honouring `flags` ([`DONTWAIT`])
    /// and the receive timeout.
    ///
    /// # Errors
    /// EAGAIN when nothing arrived in time.
    pub fn recv_multipart(&self, flags: i32) -> Result<Vec<Vec<u8>>, ZmqError> {
        let mut frames = Vec::new();
        loop {
            let mut msg = ZmqMsg([0; 64]);
            // SAFETY: msg is a properly aligned zmq_msg_t we own; it is closed below
            // on every path after a successful init.
            unsafe {
                zmq_msg_init(&raw mut msg);
                if zmq_msg_recv(&raw mut msg, self.raw, flags) < 0 {
                    let e = ZmqError::last("zmq_msg_recv");
                    zmq_msg_close(&raw mut msg);
                    return Err(e);
                }
                let data = zmq_msg_data(&raw mut msg).cast::<u8>();
                let len = zmq_msg_size(&raw const msg);
                let frame = if len == 0 { Vec::new() } else { std::slice::from_raw_parts(data, len).to_vec() };
                let more = zmq_msg_more(&raw const msg) != 0;
                zmq_msg_close(&raw mut msg);
                frames.push(frame);
                if !more {
                    return Ok(frames);
                }
            }
        }
    }

    /// Starts a monitor publishing this socket's events on `inproc://name`; read them
    /// with a [`PAIR`] socket connected there and [`parse_monitor_event`].
    ///
    /// # Errors
    /// When libzmq refuses.
    pub fn monitor(&self, name: &str, events: i32) -> Result<(), ZmqError> {
        let c = cstring(name, "zmq_socket_monitor")?;
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { zmq_socket_monitor(self.raw, c.as_ptr(), events) } == 0 {
            Ok(())
        } else {
            Err(ZmqError::last("zmq_socket_monitor"))
        }
    }
}

/// The event number of a monitor message's first frame (u16 event, u32 value).
#[must_use]
pub fn parse_monitor_event(frames: &[Vec<u8>]) -> Option<u16> {
    let first = frames.first()?;
    (first.len() >= 2).then(|| u16::from_ne_bytes([first[0], first[1]]))
}

/// Whether this libzmq supports `capability` (e.g. `"curve"`).
#[must_use]
pub fn has(capability: &str) -> bool {
    let Ok(c) = CString::new(capability) else { return false };
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { zmq_has(c.as_ptr()) != 0 }
}

/// libzmq's version as `major.minor.patch`.
#[must_use]
pub fn version() -> String {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes.
    unsafe { zmq_version(&raw mut major, &raw mut minor, &raw mut patch) };
    format!("{major}.{minor}.{patch}")
}

/// A CURVE key pair in Z85 (40 characters each): (public, secret).
///
/// # Errors
/// When libzmq has no CURVE support.
pub fn curve_keypair() -> Result<(String, String), ZmqError> {
    let mut public = [0 as c_char; 41];
    let mut secret = [0 as c_char; 41];
    // SAFETY: both buffers hold 41 bytes as zmq_curve_keypair requires.
    if unsafe { zmq_curve_keypair(public.as_mut_ptr(), secret.as_mut_ptr()) } != 0 {
        return Err(ZmqError::last("zmq_curve_keypair"));
    }
    // SAFETY: libzmq wrote NUL-terminated Z85 strings.
    let s = |b: &[c_char; 41]| unsafe { CStr::from_ptr(b.as_ptr()) }.to_string_lossy().into_owned();
    Ok((s(&public), s(&secret)))
}

/// Whether `key` is a valid 40-character Z85 CURVE key.
#[must_use]
pub fn is_z85_key(key: &str) -> bool {
    if key.len() != 40 {
        return false;
    }
    let Ok(c) = CString::new(key) else { return false };
    let mut out = [0u8; 32];
    // SAFETY: out holds the 32 bytes a 40-character Z85 string decodes to.
    !unsafe { zmq_z85_decode(out.as_mut_ptr(), c.as_ptr()) }.is_null()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_available_and_keys_validate() {
        assert!(has("curve"), "libzmq {} has no CURVE: install Debian's libzmq5 (built with libsodium)", version());
        let (public, secret) = curve_keypair().unwrap();
        assert!(is_z85_key(&public) && is_z85_key(&secret));
        assert!(!is_z85_key("too short"));
        assert!(!is_z85_key(&"\"".repeat(40)), "not Z85 characters");
    }

    #[test]
    fn pub_sub_over_inproc_carries_multipart_messages() {
        let ctx = Context::new().unwrap();
        let publisher = ctx.socket(XPUB).unwrap();
        publisher.bind("inproc://pl-test").unwrap();
        let sub = ctx.socket(SUB).unwrap();
        sub.connect("inproc://pl-test").unwrap();
        sub.set_bytes(OPT_SUBSCRIBE, b"flow").unwrap();
        // A bound XPUB reports the subscription once it has reached it: then a
        // message cannot be lost to the subscriber joining late.
        publisher.set_int(OPT_RCVTIMEO, 5000).unwrap();
        let subscription = publisher.recv_multipart(0).unwrap();
        assert_eq!(subscription, vec![b"\x01flow".to_vec()]);
        publisher.send(b"flow-header", SNDMORE).unwrap();
        publisher.send(b"payload", 0).unwrap();
        sub.set_int(OPT_RCVTIMEO, 5000).unwrap();
        assert_eq!(sub.recv_multipart(0).unwrap(), vec![b"flow-header".to_vec(), b"payload".to_vec()]);
        let e = sub.recv_multipart(DONTWAIT).unwrap_err();
        assert!(e.would_block(), "{e}");
    }
}
