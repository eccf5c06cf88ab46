//! The line-protocol receiver, driven through the plugin's exported entry points
//! with a fake host whose `emit` records batches, and real clients: `curl
//! --data-binary` (how InfluxDB's docs write data) and Python's `urllib` with a
//! gzip body (how client libraries send). Checks:
//! - the reference examples in, the emitted batch field by field (names
//!   `<measurement>_<field>`, tags, types, precision, `db` from the query);
//! - `/api/v2/write` with gzip, `bucket` -> `db`;
//! - partial writes: 400 with InfluxDB's JSON error on each API, good lines kept;
//! - 413 (as sent and once gunzipped), 503 + Retry-After when the host is full,
//!   429 over the rate limit, 404/405, `/ping`;
//! - SO_REUSEPORT: two generations on one port; shutdown closes the port.
//!
//! Needs `curl` and `python3` (standard library only); without them these tests
//! print SKIP and pass, unless TFO_REQUIRE_SERVICES=1.

use std::{net::SocketAddr, process::Command};

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, testing::TestHost, AnyValue, Batch, EmitStatus,
    MetricKind, PluginInstanceBox, PluginKind, PointValue,
};

fn module() -> tfo_plugin_api::PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_influxdb)
}

fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!("SKIP: {program} not found (apt-get install curl python3)");
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg}, and TFO_REQUIRE_SERVICES=1");
        }
        eprintln!("{msg}");
    }
    ok
}

fn start(host: &TestHost, receiver: &str) -> (PluginInstanceBox, SocketAddr) {
    let config = format!(r#"{{"receiver": {{"listen": "127.0.0.1:0"{receiver}}}}}"#);
    let mut inst = tfo_plugin_api::testing::create(module(), host, "influx-in", &config)
        .unwrap_or_else(|e| panic!("create: {e:?}"));
    if let RResult::RErr(e) = inst.start() {
        panic!("start: {e}");
    }
    let line = host
        .logs()
        .into_iter()
        .rev()
        .find(|(_, l)| l.contains("listening on http://"))
        .map(|(_, l)| l)
        .expect("the receiver logs its address");
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (inst, addr)
}

fn shutdown(mut inst: PluginInstanceBox) {
    if let RResult::RErr(e) = inst.shutdown(5000) {
        panic!("shutdown: {e}");
    }
}

/// `curl -s -i` with `args`: (status, headers lower-cased, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "-H", "Expect:", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?} {:?}", out.stderr));
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn attrs(p: &tfo_plugin_api::DataPoint) -> Vec<(String, AnyValue)> {
    p.attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.clone()))
        .collect()
}

fn s(v: &str) -> AnyValue {
    AnyValue::from(v)
}

fn only_batch(host: &TestHost) -> Batch {
    let mut b = host.take_batches();
    assert_eq!(b.len(), 1, "{b:?}");
    b.remove(0)
}

#[test]
fn declares_source_and_sink() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "influxdb");
    assert_eq!(d.kind, PluginKind::SourceAndSink);
}

#[test]
fn curl_v1_reference_examples_round_trip() {
    if !have("curl") {
        return;
    }
    let host = TestHost::default();
    let (inst, addr) = start(&host, "");
    // From the line protocol reference and the 1.x "Writing data with the HTTP API"
    // page (escaping, all field types, a comment, a timestamp-less line).
    let body = "# reference examples\n\
        cpu_load_short,host=server01,region=us-west value=0.64 1434055562\n\
        weather,location=us-midwest temperature=82i,raining=true,note=\"hot \\\"day\\\"\" 1465839830\n\
        my\\ Measurement,tag\\ Key1=tag\\ Value1 field\\,Key=1.5e3,big=18446744073709551615u 1465839830\n\
        disk,path=/ used=9u\n";
    let (status, _, text) = curl(&[
        "-XPOST",
        &format!("http://{addr}/write?db=mydb&precision=s"),
        "--data-binary",
        body,
    ]);
    assert_eq!(status, 204, "{text}");
    let b = only_batch(&host);
    let names: Vec<&str> = b.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu_load_short_value",
            "weather_temperature",
            "weather_raining",
            "my Measurement_field,Key",
            "my Measurement_big",
            "disk_used"
        ]
    );
    assert!(b.metrics.iter().all(|m| m.kind == MetricKind::Gauge));
    let load = &b.metrics[0].points[0];
    assert_eq!(load.value, PointValue::Double(0.64));
    assert_eq!(load.time_unix_nano, 1_434_055_562_000_000_000);
    assert_eq!(
        attrs(load),
        [
            ("host".into(), s("server01")),
            ("region".into(), s("us-west")),
            ("db".into(), s("mydb"))
        ]
    );
    assert_eq!(b.metrics[1].points[0].value, PointValue::Int(82));
    assert_eq!(b.metrics[2].points[0].value, PointValue::Int(1));
    let esc = &b.metrics[3].points[0];
    assert_eq!(esc.value, PointValue::Double(1500.0));
    assert_eq!(attrs(esc)[0], ("tag Key1".into(), s("tag Value1")));
    assert_eq!(
        b.metrics[4].points[0].value,
        PointValue::Double(18446744073709551615u64 as f64)
    );
    // No timestamp: the time of the request (within the last minute).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let t = b.metrics[5].points[0].time_unix_nano;
    assert!(t <= now && now - t < 60_000_000_000, "{t} vs {now}");
    assert_eq!(b.item_count(), 6);
    // /ping, unknown path, wrong method.
    assert_eq!(curl(&[&format!("http://{addr}/ping")]).0, 204);
    let (st, _, text) = curl(&[&format!("http://{addr}/query?q=show")]);
    assert_eq!(st, 404, "{text}");
    let (st, head, _) = curl(&[&format!("http://{addr}/write")]);
    assert_eq!(st, 405);
    assert!(head.contains("allow: post"), "{head}");
    assert!(host.take_batches().is_empty());
    shutdown(inst);
}

/// ABI 1.2: a request is parsed into the batches the host hands back after
/// their export (`HostServices::reclaimed`); what is emitted is the new
/// request's data, nothing of the old.
#[test]
fn requests_are_parsed_into_batches_the_host_hands_back() {
    if !have("curl") {
        return;
    }
    let host = TestHost::default();
    let (inst, addr) = start(&host, "");
    let url = format!("http://{addr}/write?db=mydb&precision=s");
    let old =
        "cpu,host=an-old-and-rather-long-host-name,dc=x usage=1.5,other=2 1700000000\n".repeat(3);
    let (status, _, text) = curl(&["-XPOST", &url, "--data-binary", &old]);
    assert_eq!(status, 204, "{text}");
    let first = only_batch(&host);
    assert_eq!(first.item_count(), 6);
    host.give_back(first.clone());
    host.give_back(first);
    let asked = host.reclaim_asks();
    let new = "mem,host=b used=7i 1700000001\nmem,host=c used=8i 1700000002\n";
    let (status, _, text) = curl(&["-XPOST", &url, "--data-binary", new]);
    assert_eq!(status, 204, "{text}");
    assert!(host.reclaim_asks() > asked, "the receiver did not ask");
    let b = only_batch(&host);
    assert_eq!(b.metrics.len(), 1, "{b:?}");
    let m = &b.metrics[0];
    assert_eq!(
        (
            m.name.as_str(),
            m.kind,
            m.unit.as_str(),
            m.description.as_str()
        ),
        ("mem_used", MetricKind::Gauge, "", "")
    );
    let points: Vec<_> = m
        .points
        .iter()
        .map(|p| (attrs(p), p.time_unix_nano, p.value.clone()))
        .collect();
    assert_eq!(
        points,
        [
            (
                vec![("host".into(), s("b")), ("db".into(), s("mydb"))],
                1_700_000_001_000_000_000,
                PointValue::Int(7)
            ),
            (
                vec![("host".into(), s("c")), ("db".into(), s("mydb"))],
                1_700_000_002_000_000_000,
                PointValue::Int(8)
            ),
        ]
    );
    shutdown(inst);
}

#[test]
fn partial_writes_answer_400_with_influx_json_and_keep_good_lines() {
    if !have("curl") {
        return;
    }
    let host = TestHost::default();
    let (inst, addr) = start(&host, "");
    let body = "good f=1 1\nbad line\nalso,bad=1 f=x\ngood f=2 2\n";
    let (st, head, text) = curl(&[
        "-XPOST",
        &format!("http://{addr}/write?db=d"),
        "--data-binary",
        body,
    ]);
    assert_eq!(st, 400, "{text}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("2 line(s) accepted, 2 dropped"), "{msg}");
    assert!(
        msg.contains("line 2: ") && msg.contains("line 3: "),
        "{msg}"
    );
    let b = only_batch(&host);
    assert_eq!(b.metrics[0].name.as_str(), "good_f");
    assert_eq!(b.metrics[0].points.len(), 2);
    // The v2 API answers with {"code", "message"}.
    let (st, _, text) = curl(&[
        "-XPOST",
        &format!("http://{addr}/api/v2/write?org=o&bucket=b"),
        "--data-binary",
        "nope",
    ]);
    assert_eq!(st, 400);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "invalid");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("0 line(s) accepted, 1 dropped"));
    assert!(host.take_batches().is_empty());
    // Bad precision.
    let (st, _, text) = curl(&[
        "-XPOST",
        &format!("http://{addr}/write?precision=d"),
        "--data-binary",
        "m f=1",
    ]);
    assert_eq!(st, 400);
    assert!(text.contains("invalid precision"), "{text}");
    shutdown(inst);
}

#[test]
fn python_v2_gzip_body() {
    if !have("python3") {
        return;
    }
    let host = TestHost::default();
    let (inst, addr) = start(&host, "");
    let script = r#"
import gzip, sys, urllib.request
body = gzip.compress(b"h2o_feet,location=coyote_creek water_level=8.12 1566000000000\nh2o_feet,location=santa_monica water_level=2.064 1566000000001\n")
req = urllib.request.Request(sys.argv[1], data=body, method="POST",
    headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8", "Authorization": "Token x"})
with urllib.request.urlopen(req) as r:
    print(r.status)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://{addr}/api/v2/write?org=my-org&bucket=my%20bucket&precision=ms"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "204");
    let b = only_batch(&host);
    assert_eq!(b.metrics.len(), 1);
    let m = &b.metrics[0];
    assert_eq!(m.name.as_str(), "h2o_feet_water_level");
    assert_eq!(m.points.len(), 2);
    assert_eq!(m.points[0].time_unix_nano, 1_566_000_000_000_000_000);
    assert_eq!(m.points[1].time_unix_nano, 1_566_000_000_001_000_000);
    assert_eq!(m.points[1].value, PointValue::Double(2.064));
    assert_eq!(
        attrs(&m.points[1]),
        [
            ("location".into(), s("santa_monica")),
            ("db".into(), s("my bucket"))
        ]
    );
    shutdown(inst);
}

#[test]
fn limits_and_backpressure() {
    if !have("curl") || !have("python3") {
        return;
    }
    let host = TestHost::default();
    let (inst, addr) = start(&host, r#", "max_body_bytes": 1024"#);
    let url = format!("http://{addr}/write");
    let big = "m f=1\n".repeat(300);
    let (st, _, text) = curl(&["-XPOST", &url, "--data-binary", &big]);
    assert_eq!(st, 413, "{text}");
    assert!(text.contains("max_body_bytes"), "{text}");
    // A small gzip body that expands past the limit.
    let gz = std::env::temp_dir().join(format!("influx-bomb-{}.gz", std::process::id()));
    let py = format!(
        "import gzip; open({:?}, 'wb').write(gzip.compress(b'm f=1\\n' * 1000))",
        gz.display().to_string()
    );
    assert!(Command::new("python3")
        .args(["-c", &py])
        .status()
        .unwrap()
        .success());
    let (st, _, text) = curl(&[
        "-XPOST",
        &url,
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &format!("@{}", gz.display()),
    ]);
    let _ = std::fs::remove_file(&gz);
    assert_eq!(st, 413, "{text}");
    assert!(text.contains("decompressed"), "{text}");
    let (st, _, _) = curl(&[
        "-XPOST",
        &url,
        "-H",
        "Content-Encoding: br",
        "--data-binary",
        "m f=1",
    ]);
    assert_eq!(st, 415);
    // The host's queue is full for a while: the request waits for room
    // (`receiver.queue_wait`, 2 s by default) and is then taken whole.
    host.answer(&[EmitStatus::Full, EmitStatus::Full, EmitStatus::Full]);
    let (st, _, text) = curl(&["-XPOST", &url, "--data-binary", "m f=1"]);
    assert_eq!(st, 204, "{text}");
    assert_eq!(host.take_batches().len(), 1);
    // Full again once parsed (others were admitted meanwhile): it waits again and
    // the body is taken once.
    host.answer(&[EmitStatus::Accepted, EmitStatus::Full, EmitStatus::Full]);
    let (st, _, text) = curl(&["-XPOST", &url, "--data-binary", "m f=1\nm g=2"]);
    assert_eq!(st, 204, "{text}");
    assert_eq!(only_batch(&host).item_count(), 2);
    shutdown(inst);

    // Never room within `queue_wait`: 503 + Retry-After, nothing taken.
    let host = TestHost::default();
    let (inst, addr) = start(&host, r#", "queue_wait": "50ms""#);
    let url = format!("http://{addr}/write");
    // (More answers than a 50 ms wait can ask: pauses are 1 ms at least.)
    host.answer(&[EmitStatus::Full; 100]);
    let (st, head, text) = curl(&["-XPOST", &url, "--data-binary", "m f=1"]);
    assert_eq!(st, 503, "{text}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(text.contains("queue is full"), "{text}");
    assert!(host.take_batches().is_empty());
    shutdown(inst);

    // Rate limit: 1 request per second, the second one at once is 429.
    let host = TestHost::default();
    let (inst, addr) = start(&host, r#", "max_requests_per_second": 1"#);
    let url = format!("http://{addr}/write");
    assert_eq!(curl(&["-XPOST", &url, "--data-binary", "m f=1"]).0, 204);
    let (st, head, _) = curl(&["-XPOST", &url, "--data-binary", "m f=1"]);
    assert_eq!(st, 429);
    assert!(head.contains("retry-after: 1"), "{head}");
    shutdown(inst);
}

/// Overload, as InfluxDB documents it for both write APIs: 503 with a
/// `Retry-After` in seconds and the API's JSON error body (`{"error": ...}` on
/// 1.x, `{"code": "unavailable", "message": ...}` on 2.x, the `code` values of
/// the 2.x API's `Error` schema), nothing of the request taken; the same when the
/// instance is stopping (`emit` answered `Closed`).
#[test]
fn overload_answers_503_with_retry_after_and_influx_json_on_both_apis() {
    if !have("curl") {
        return;
    }
    let host = TestHost::default();
    // No wait: the answer comes at once (with a wait, see the limits test).
    let (inst, addr) = start(&host, r#", "queue_wait": "0s""#);
    let body = "cpu,host=a usage_idle=99,usage_user=1 1700000000000000000\nmem used=5i";
    let json = |head: &str, text: &str| -> serde_json::Map<String, serde_json::Value> {
        assert!(
            head.contains("content-type: application/json; charset=utf-8"),
            "{head}"
        );
        let retry = head
            .lines()
            .find_map(|l| l.strip_prefix("retry-after: "))
            .unwrap_or_else(|| panic!("no Retry-After: {head}"));
        assert!(retry.trim().parse::<u32>().is_ok_and(|s| s >= 1), "{head}");
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object: {text:?} {other:?}"),
        }
    };
    host.answer(&[EmitStatus::Full, EmitStatus::Full, EmitStatus::Closed]);
    // 1.x: {"error": "..."} and nothing else.
    let (st, head, text) = curl(&[
        "-XPOST",
        &format!("http://{addr}/write?db=x"),
        "--data-binary",
        body,
    ]);
    assert_eq!(st, 503, "{text}");
    let o = json(&head, &text);
    assert_eq!(o.keys().collect::<Vec<_>>(), ["error"], "{text}");
    assert!(
        o["error"].as_str().unwrap().contains("queue is full"),
        "{text}"
    );
    // 2.x: {"code": "unavailable", "message": "..."}.
    let v2 = format!("http://{addr}/api/v2/write?org=o&bucket=b&precision=ns");
    let (st, head, text) = curl(&["-XPOST", &v2, "--data-binary", body]);
    assert_eq!(st, 503, "{text}");
    let o = json(&head, &text);
    assert_eq!(o.len(), 2, "{text}");
    assert_eq!(o["code"], "unavailable", "{text}");
    assert!(
        o["message"].as_str().unwrap().contains("retry later"),
        "{text}"
    );
    // Stopping: the same answer, another reason.
    let (st, head, text) = curl(&["-XPOST", &v2, "--data-binary", body]);
    assert_eq!(st, 503, "{text}");
    let o = json(&head, &text);
    assert!(
        o["message"].as_str().unwrap().contains("shutting down"),
        "{text}"
    );
    assert!(host.take_batches().is_empty());
    assert!(host.take_batches().is_empty());
    // The queue fills between the receiver's probe (an empty emit, before the body
    // is read) and the parsed batch: the same 503, nothing taken.
    host.answer(&[EmitStatus::Accepted, EmitStatus::Full]);
    let (st, head, text) = curl(&["-XPOST", &v2, "--data-binary", body]);
    assert_eq!(st, 503, "{text}");
    assert!(json(&head, &text)["message"]
        .as_str()
        .unwrap()
        .contains("queue is full"));
    assert!(host.take_batches().is_empty());
    // Room again: the same request is taken whole.
    let (st, _, text) = curl(&["-XPOST", &v2, "--data-binary", body]);
    assert_eq!(st, 204, "{text}");
    assert_eq!(only_batch(&host).item_count(), 3);
    shutdown(inst);
}

#[test]
fn two_generations_share_the_port_and_shutdown_closes_it() {
    let host = TestHost::default();
    let (old, addr) = start(&host, "");
    let host2 = TestHost::default();
    let config = format!(r#"{{"receiver": {{"listen": "{addr}"}}}}"#);
    let mut new = tfo_plugin_api::testing::create(module(), &host2, "influx-in", &config).unwrap();
    assert!(matches!(new.start(), RResult::ROk(())), "SO_REUSEPORT bind");
    shutdown(old);
    shutdown(new);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "port still open"
    );
}
