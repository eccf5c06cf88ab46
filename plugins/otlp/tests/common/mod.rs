//! Test harness shared by `receiver.rs` and `exporter.rs`: drives the plugin through
//! its exported root module, the way the agent does, with a fake host whose `emit`
//! records batches (and can answer `Full`); a raw HTTP/1.1 client; and helpers for
//! the Python programs the tests use as independent peers.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, CreateError, KeyValue, PluginInstanceBox,
    PluginModRef,
};

pub use tfo_plugin_api::testing::TestHost;

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_otlp)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "otlp", config)
}

/// Creates and starts an instance with a receiver on a free loopback port; returns
/// it with the bound address (read from the plugin's "listening on" log line).
pub fn start_receiver(host: &TestHost, extra: &str) -> (PluginInstanceBox, SocketAddr) {
    let config = format!(r#"{{"receiver": {{"listen": "127.0.0.1:0"{extra}}}}}"#);
    let mut inst = create(host, &config).unwrap_or_else(|e| panic!("create: {e:?}"));
    if let RResult::RErr(e) = inst.start() {
        panic!("start: {e}");
    }
    (inst, listening_addr(host))
}

/// The address of the last "listening on" log line.
pub fn listening_addr(host: &TestHost) -> SocketAddr {
    let line = host
        .logs()
        .into_iter()
        .rev()
        .find(|(_, l)| l.contains("listening on http://"))
        .map(|(_, l)| l)
        .expect("the receiver logs its address");
    line.rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A response read by [`RawClient`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client on one keep-alive connection, so a test can show that
/// the connection survives an error answer.
pub struct RawClient {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        RawClient {
            reader: BufReader::new(s),
            addr,
        }
    }

    /// Sends one request (adding `Host` and `Content-Length`) and reads the answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        self.read_response()
    }

    /// Sends only a request head (for a declared length the server refuses before
    /// the body) and reads the answer.
    pub fn request_head_only(&mut self, raw_head: &str) -> RawResponse {
        self.reader
            .get_mut()
            .write_all(raw_head.as_bytes())
            .unwrap();
        self.read_response()
    }

    fn read_response(&mut self) -> RawResponse {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("the receiver always sends Content-Length");
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        RawResponse {
            status,
            headers,
            body,
        }
    }
}

/// One POST on a fresh connection.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> RawResponse {
    RawClient::connect(addr).request("POST", path, &[("Content-Type", content_type)], body)
}

/// True when `python3` can import `modules`. When it cannot, prints what is skipped
/// and why and returns false, unless `TFO_REQUIRE_SERVICES=1`, which makes it a
/// failure (CI installs the packages).
pub fn python_has(modules: &str, what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "SKIP {what}: python3 cannot import {modules} (pip install opentelemetry-sdk \
             opentelemetry-exporter-otlp-proto-http)"
        );
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg}, and TFO_REQUIRE_SERVICES=1");
        }
        println!("{msg}");
        eprintln!("{msg}");
    }
    ok
}

/// Runs a Python script from this directory with `args` and `stdin`; panics with its
/// stderr when it fails; returns its stdout.
pub fn run_python(script: &str, args: &[&str], stdin: &[u8]) -> String {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        // Loopback requests must not go through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of attribute `key`.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// A string attribute, for short assertions.
pub fn attr_str(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        AnyValue::Str(s) => Some(s.to_string()),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
