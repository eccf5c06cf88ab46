//! The plugin against a strict local HTTPS server playing vCenter from a script:
//! the wire format of every call (method, path, headers, cookie, body decoded
//! independently), the documented faults (NotAuthenticated -> one re-login;
//! InvalidLogin -> permanent with a clear message; 503 + Retry-After), paging with
//! ContinueRetrievePropertiesEx, a QueryPerf fault that still yields the inventory
//! (health says what failed), malformed answers, and the password never leaking.

mod common;

use common::{attr, points};
use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RResult},
    testing::{create, TestHost},
    Batch, DataTypes, ErrorKind, HealthState, PluginError, PluginInstanceBox, PluginKind,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const SERVICE_CONTENT: &str = include_str!("data/service_content.xml");
const LOGIN: &str = include_str!("data/login.xml");
const INVALID_LOGIN: &str = include_str!("data/fault_invalid_login.xml");
const NOT_AUTHENTICATED: &str = include_str!("data/fault_not_authenticated.xml");
const CREATE_VIEW: &str = include_str!("data/create_container_view.xml");
const PERF_COUNTERS: &str = include_str!("data/perf_counters.xml");
const PASSWORD: &str = "pa<ss&wo\"rd-42";

fn env(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
    )
}

fn ok(body: &str) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body.to_string())
}

fn login_ok(cookie: &str) -> ScriptedResponse {
    ok(LOGIN).header(
        "Set-Cookie",
        &format!("vmware_soap_session=\"{cookie}\"; Path=/; HttpOnly; Secure;"),
    )
}

fn fault(body: &str) -> ScriptedResponse {
    ScriptedResponse::status(500)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body.to_string())
}

fn prop(name: &str, val: &str) -> String {
    format!(r#"<propSet><name>{name}</name><val xsi:type="xsd:string">{val}</val></propSet>"#)
}

fn ref_prop(name: &str, kind: &str, id: &str) -> String {
    format!(
        r#"<propSet><name>{name}</name><val xsi:type="ManagedObjectReference" type="{kind}">{id}</val></propSet>"#
    )
}

/// A small inventory in two pages: datacenter, folders, a cluster with one host
/// (page 1, with a token), a VM and a datastore (page 2).
fn page1() -> String {
    env(&format!(
        r#"<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>tok-1</token>
<objects><obj type="Datacenter">datacenter-2</obj>{}{}</objects>
<objects><obj type="Folder">group-h4</obj>{}{}</objects>
<objects><obj type="ClusterComputeResource">domain-c7</obj>{}{}{}</objects>
<objects><obj type="HostSystem">host-10</obj>{}{}{}{}</objects>
</returnval></RetrievePropertiesExResponse>"#,
        prop("name", "Paris"),
        ref_prop("parent", "Folder", "group-d1"),
        prop("name", "host"),
        ref_prop("parent", "Datacenter", "datacenter-2"),
        prop("name", "Prod &amp; Test"),
        ref_prop("parent", "Folder", "group-h4"),
        prop("summary.numHosts", "1"),
        prop("name", "esx1.example.com"),
        ref_prop("parent", "ClusterComputeResource", "domain-c7"),
        prop("runtime.connectionState", "connected"),
        prop("summary.hardware.memorySize", "68719476736"),
    ))
}

fn page2() -> String {
    env(&format!(
        r#"<ContinueRetrievePropertiesExResponse xmlns="urn:vim25"><returnval>
<objects><obj type="Folder">group-v3</obj>{}{}</objects>
<objects><obj type="VirtualMachine">vm-42</obj>{}{}{}{}{}</objects>
<objects><obj type="Datastore">datastore-11</obj>{}{}{}{}</objects>
</returnval></ContinueRetrievePropertiesExResponse>"#,
        prop("name", "vm"),
        ref_prop("parent", "Datacenter", "datacenter-2"),
        prop("name", "web-01"),
        ref_prop("parent", "Folder", "group-v3"),
        prop("runtime.powerState", "poweredOn"),
        ref_prop("runtime.host", "HostSystem", "host-10"),
        prop("summary.config.memorySizeMB", "4096"),
        prop("name", "ds-01"),
        ref_prop("parent", "Folder", "group-s5"),
        prop("summary.capacity", "1000"),
        prop("summary.freeSpace", "250"),
    ))
}

fn query_perf_ok() -> String {
    env(
        r#"<QueryPerfResponse xmlns="urn:vim25"><returnval xsi:type="PerfEntityMetric"><entity type="VirtualMachine">vm-42</entity><sampleInfo><timestamp>2026-11-25T10:00:20Z</timestamp><interval>20</interval></sampleInfo><value xsi:type="PerfMetricIntSeries"><id><counterId>6</counterId><instance></instance></id><value>1234</value></value></returnval><returnval xsi:type="PerfEntityMetric"><entity type="HostSystem">host-10</entity><sampleInfo><timestamp>2026-11-25T10:00:20Z</timestamp><interval>20</interval></sampleInfo><value xsi:type="PerfMetricIntSeries"><id><counterId>2</counterId><instance></instance></id><value>4321</value></value></returnval></QueryPerfResponse>"#,
    )
}

fn instance(host: &TestHost, server: &TestServer, extra: serde_json::Value) -> PluginInstanceBox {
    let module = tfo_plugin_api::plugin_module!(tfo_vmware);
    let mut config = serde_json::json!({
        "url": server.url("/sdk"), "username": "admin@vsphere.local", "password": PASSWORD,
        "ca_file": server.ca_file(), "vcenter": "vc1",
        "performance": {"vm_counters": ["cpu.usagemhz.average"], "host_counters": ["cpu.usage.average"]},
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    match create(module, host, "vsphere", &config.to_string()) {
        Ok(i) => i,
        Err(e) => panic!("create: {} {:?}", e.message, e.config_errors),
    }
}

fn collect(i: &mut PluginInstanceBox) -> Result<Batch, PluginError> {
    match i.collect() {
        RResult::ROk(b) => Ok(b),
        RResult::RErr(e) => Err(e),
    }
}

/// The vim25 method of a recorded request, read independently of the plugin's
/// code: the first element inside the SOAP Body.
fn method(r: &RecordedRequest) -> String {
    let t = r.text();
    let body = t.split_once("<soapenv:Body>").expect("a SOAP body").1;
    let start = body.find('<').unwrap() + 1;
    body[start..].split([' ', '>']).next().unwrap().to_string()
}

fn check_wire(r: &RecordedRequest, cookie: Option<&str>) {
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.path, "/sdk");
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    let action = r.header("soapaction").expect("SOAPAction");
    assert!(action.starts_with("urn:vim25"), "{action}");
    assert_eq!(
        r.header("cookie"),
        cookie
            .map(|c| format!("vmware_soap_session=\"{c}\""))
            .as_deref()
    );
    assert!(!r.text().is_empty());
}

#[test]
fn descriptor_is_a_metrics_source() {
    let d = (tfo_plugin_api::plugin_module!(tfo_vmware).descriptor())();
    assert_eq!(d.name.as_str(), "vmware");
    assert_eq!(d.kind, PluginKind::Source);
    assert_eq!(d.data_types, DataTypes::METRICS);
}

#[test]
fn config_errors_carry_paths_and_hide_the_password() {
    let module = tfo_plugin_api::plugin_module!(tfo_vmware);
    let host = TestHost::default();
    let e = create(
        module,
        &host,
        "v",
        r#"{"url":"vcenter","username":"","password":"hunter2-xyz","timeout":"0s","performance":{"vm_counters":["cpu"]}}"#,
    )
    .err()
    .expect("refused");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["url", "username", "timeout", "performance.vm_counters[0]"]
    );
    assert!(!format!("{e:?}").contains("hunter2-xyz"));
    let e = create(module, &host, "v", r#"{"url":"https://x","username":"u"}"#)
        .err()
        .expect("refused");
    assert!(e.config_errors[0].message.contains("password"), "{e:?}");
    assert!(host.logs().iter().all(|(_, l)| !l.contains("hunter2-xyz")));
}

#[test]
fn relogin_once_on_not_authenticated_paging_and_a_failed_query_perf() {
    let server = TestServer::https();
    // Session 1: the inventory call finds the session gone.
    server.push_response(ok(SERVICE_CONTENT));
    server.push_response(login_ok("s-1"));
    server.push_response(ok(CREATE_VIEW));
    server.push_response(fault(NOT_AUTHENTICATED));
    // Session 2.
    server.push_response(ok(SERVICE_CONTENT));
    server.push_response(login_ok("s-2"));
    server.push_response(ok(CREATE_VIEW));
    server.push_response(ok(&page1()));
    server.push_response(ok(&page2()));
    server.push_response(ok(PERF_COUNTERS));
    server.push_response(fault(&env(r#"<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>A specified parameter was not correct: querySpec.interval</faultstring><detail><InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"><invalidProperty>querySpec.interval</invalidProperty></InvalidArgumentFault></detail></soapenv:Fault>"#)));

    let host = TestHost::default();
    let mut i = instance(
        &host,
        &server,
        serde_json::json!({"labels": {"env": "prod"}}),
    );
    let b = collect(&mut i).expect("the inventory is returned despite the QueryPerf fault");

    let reqs = server.requests();
    let methods: Vec<String> = reqs.iter().map(method).collect();
    assert_eq!(
        methods,
        [
            "RetrieveServiceContent",
            "Login",
            "CreateContainerView",
            "RetrievePropertiesEx",
            "RetrieveServiceContent",
            "Login",
            "CreateContainerView",
            "RetrievePropertiesEx",
            "ContinueRetrievePropertiesEx",
            "RetrievePropertiesEx",
            "QueryPerf",
        ]
    );
    let cookies = [
        None,
        None,
        Some("s-1"),
        Some("s-1"),
        None,
        None,
        Some("s-2"),
        Some("s-2"),
        Some("s-2"),
        Some("s-2"),
        Some("s-2"),
    ];
    for (r, c) in reqs.iter().zip(cookies) {
        check_wire(r, c);
    }
    // After RetrieveServiceContent the API version of the server is used.
    assert_eq!(reqs[0].header("soapaction"), Some("urn:vim25"));
    assert_eq!(reqs[1].header("soapaction"), Some("urn:vim25/6.5"));
    // Login body: user and escaped password.
    let login = reqs[1].text();
    assert!(
        login.contains("<userName>admin@vsphere.local</userName>"),
        "{login}"
    );
    assert!(
        login.contains("<password>pa&lt;ss&amp;wo&quot;rd-42</password>"),
        "{login}"
    );
    assert!(login.contains(r#"<_this type="SessionManager">SessionManager</_this>"#));
    // The view over the root folder, the property spec over the view, the token.
    assert!(reqs[2]
        .text()
        .contains(r#"<container type="Folder">group-d1</container>"#));
    assert!(reqs[2].text().contains("<type>VirtualMachine</type>"));
    let rp = reqs[7].text();
    assert!(rp.contains(r#"<obj type="ContainerView">session[883b1111-e13e-4cd1-bcd0-26c8e7e11f2c]91ccf8ff-0cbb-4856-8658-08d3e02eb8dd</obj>"#), "{rp}");
    assert!(rp.contains("<pathSet>summary.quickStats.overallCpuUsage</pathSet>"));
    assert!(rp.contains("<maxObjects>500</maxObjects>"));
    assert!(reqs[8].text().contains("<token>tok-1</token>"));
    assert!(reqs[9]
        .text()
        .contains(r#"<obj type="PerformanceManager">PerfMgr</obj>"#));
    // QueryPerf: the VM with the counter id of cpu.usagemhz.average, the host with
    // cpu.usage.average's, real-time interval, one sample.
    let qp = reqs[10].text();
    let usagemhz_key = PERF_COUNTERS
        .split("<PerfCounterInfo>")
        .find(|c| {
            c.contains("<key>usagemhz</key>") && c.contains("<rollupType>average</rollupType>")
        })
        .and_then(|c| c.split("<key>").nth(1))
        .and_then(|c| c.split('<').next())
        .unwrap()
        .to_string();
    assert!(qp.contains(&format!(r#"<entity type="VirtualMachine">vm-42</entity><maxSample>1</maxSample><metricId><counterId>{usagemhz_key}</counterId><instance></instance></metricId><intervalId>20</intervalId>"#)), "{qp}");
    assert!(qp.contains(r#"<entity type="HostSystem">host-10</entity><maxSample>1</maxSample><metricId><counterId>2</counterId>"#), "{qp}");

    // Inventory metrics with identity resolved through the parents.
    let vm = points(&b, "vsphere.vm.memory.size");
    assert_eq!(vm.len(), 1);
    assert_eq!(vm[0].1, 4096.0 * 1_048_576.0);
    let a = &vm[0].0;
    assert_eq!(attr(a, "vm"), Some("web-01"));
    assert_eq!(attr(a, "host"), Some("esx1.example.com"));
    assert_eq!(attr(a, "cluster"), Some("Prod & Test"));
    assert_eq!(attr(a, "datacenter"), Some("Paris"));
    assert_eq!(attr(a, "vcenter"), Some("vc1"));
    assert_eq!(attr(a, "env"), Some("prod"));
    assert_eq!(points(&b, "vsphere.host.memory.size")[0].1, 68719476736.0);
    assert_eq!(points(&b, "vsphere.datastore.used")[0].1, 750.0);
    assert_eq!(points(&b, "vsphere.datastore.utilization")[0].1, 75.0);
    assert_eq!(points(&b, "vsphere.cluster.vms")[0].1, 1.0);
    assert!(points(&b, "vsphere.vm.cpu.usagemhz").is_empty());

    // Health says what failed.
    let h = i.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(
        h.reason.contains("performance counters failed"),
        "{}",
        h.reason
    );
    assert!(h.reason.contains("QueryPerf"), "{}", h.reason);
    assert!(h.reason.contains("InvalidArgument"), "{}", h.reason);

    // Next collection: same session, counters already resolved, QueryPerf works.
    server.push_response(ok(&page1().replace("<token>tok-1</token>", "")));
    server.push_response(ok(&query_perf_ok()));
    let b = collect(&mut i).expect("second collection");
    let methods: Vec<String> = server.requests()[11..].iter().map(method).collect();
    assert_eq!(methods, ["RetrievePropertiesEx", "QueryPerf"]);
    let host_cpu = points(&b, "vsphere.host.cpu.usage");
    assert_eq!(host_cpu.len(), 1);
    assert_eq!(host_cpu[0].1, 43.21);
    assert_eq!(i.health().state, HealthState::Healthy);

    // Shutdown logs out.
    assert!(matches!(i.shutdown(2000), RResult::ROk(())));
    let tail: Vec<String> = server.requests()[13..].iter().map(method).collect();
    assert_eq!(tail, ["DestroyView", "Logout"]);

    // The password is in the Login body only.
    for (n, r) in server.requests().iter().enumerate() {
        if n != 1 && n != 5 {
            assert!(!r.text().contains("pa&lt;ss"), "request {n}");
        }
    }
    let logs = host.logs();
    assert!(logs.iter().all(|(_, l)| !l.contains("rd-42")), "{logs:?}");
}

#[test]
fn not_authenticated_twice_is_permanent_after_one_relogin() {
    let server = TestServer::https();
    for _ in 0..2 {
        server.push_response(ok(SERVICE_CONTENT));
        server.push_response(login_ok("s"));
        server.push_response(ok(CREATE_VIEW));
        server.push_response(fault(NOT_AUTHENTICATED));
    }
    let host = TestHost::default();
    let mut i = instance(&host, &server, serde_json::json!({}));
    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
    assert!(e.message.contains("NotAuthenticated"), "{}", e.message);
    assert_eq!(server.requests().len(), 8);
}

#[test]
fn invalid_login_is_permanent_and_clear() {
    let server = TestServer::https();
    server.push_response(ok(SERVICE_CONTENT));
    server.push_response(fault(INVALID_LOGIN));
    let host = TestHost::default();
    let mut i = instance(&host, &server, serde_json::json!({}));
    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message
            .contains("vSphere login refused for user \"admin@vsphere.local\""),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("InvalidLogin: Login failure"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("rd-42"));
    assert_eq!(server.requests().len(), 2);
    let h = i.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("login refused"));
}

#[test]
fn http_errors_and_malformed_answers_are_retryable_errors() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(503)
            .header("Retry-After", "7")
            .body("busy"),
    );
    server.push_response(ok("<html>not soap"));
    server.push_response(ok(SERVICE_CONTENT));
    server.push_response(ok(LOGIN)); // no session cookie
    server.push_response(ScriptedResponse::status(404).body("no such path"));
    let host = TestHost::default();
    let mut i = instance(&host, &server, serde_json::json!({}));

    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms, ROption::RSome(7000));
    assert!(e.message.contains("503"), "{}", e.message);

    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("unexpected response"), "{}", e.message);

    let e = collect(&mut i).unwrap_err();
    assert!(e.message.contains("vmware_soap_session"), "{}", e.message);

    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
    assert!(e.message.contains("404"));
    assert!(host.panics().is_empty());
}

#[test]
fn a_silent_server_is_bounded_by_collect_timeout() {
    // Accepts connections (the kernel's backlog) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/sdk", listener.local_addr().unwrap());
    let module = tfo_plugin_api::plugin_module!(tfo_vmware);
    let host = TestHost::default();
    let config = serde_json::json!({"url": url, "username": "u", "password": "p",
                                    "timeout": "20s", "collect_timeout": "300ms"});
    let mut i = create(module, &host, "v", &config.to_string())
        .ok()
        .unwrap();
    let started = std::time::Instant::now();
    let e = collect(&mut i).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("collect_timeout"), "{}", e.message);
    assert!(i.health().reason.contains("collect_timeout"));
    drop(listener);
}
