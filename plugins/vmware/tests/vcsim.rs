//! The plugin against vcsim, VMware's vCenter simulator (govmomi, built from
//! Debian's golang-github-vmware-govmomi-dev by scripts/vcsim.sh), driven through
//! the exported root module as the agent does. vcsim's default VPX model: one
//! datacenter DC0, one standalone host DC0_H0 and a cluster DC0_C0 of three hosts,
//! two VMs on the standalone host and two in the cluster, one datastore LocalDS_0.
//! The inventory values are compared with an independent read (hand-written SOAP,
//! string scanning); the performance values with the simulator's own sample tables.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{attr, points, vcsim_or_skip, Vcsim};
use tfo_plugin_api::__private::abi_stable::std_types::RResult;
use tfo_plugin_api::{
    testing::{create, TestHost},
    Batch, ErrorKind, HealthState, PluginError, PluginInstanceBox,
};
use tfo_plugin_common::http::{ClientOptions, HttpClient, Method, Request};

fn instance(host: &TestHost, config: serde_json::Value) -> PluginInstanceBox {
    let module = tfo_plugin_api::plugin_module!(tfo_vmware);
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

/// Hand-written SOAP over our own HTTP client, read by string scanning: an
/// independent view of the inventory.
struct RawSoap {
    http: HttpClient,
    url: String,
    cookie: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl RawSoap {
    fn new(sim: &Vcsim) -> RawSoap {
        RawSoap {
            http: HttpClient::new(&ClientOptions {
                ca_file: Some(sim.ca_file.clone()),
                ..ClientOptions::default()
            })
            .unwrap(),
            url: sim.url.clone(),
            cookie: None,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn call(&mut self, body: &str) -> String {
        let env = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Body>{body}</Body></Envelope>"#
        );
        let mut req = Request::new(Method::POST, self.url.clone())
            .header("Content-Type", "text/xml")
            .header("SOAPAction", "urn:vim25/6.5")
            .body(env);
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c.clone());
        }
        let resp = self.rt.block_on(self.http.send(req)).unwrap();
        if let Some(c) = resp.headers.get("set-cookie") {
            self.cookie = Some(c.to_str().unwrap().split(';').next().unwrap().to_string());
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.text()
    }

    /// `(object id, property value)` of one property of every object of `kind`.
    fn property(&mut self, kind: &str, path: &str) -> Vec<(String, String)> {
        let view = self.call(&format!(r#"<CreateContainerView xmlns="urn:vim25"><_this type="ViewManager">ViewManager</_this><container type="Folder">group-d1</container><type>{kind}</type><recursive>true</recursive></CreateContainerView>"#));
        let view = between(&view, r#"<returnval type="ContainerView">"#, "<")[0].clone();
        let text = self.call(&format!(r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><specSet><propSet><type>{kind}</type><pathSet>{path}</pathSet></propSet><objectSet><obj type="ContainerView">{view}</obj><skip>true</skip><selectSet xsi:type="TraversalSpec"><name>v</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet></specSet><options/></RetrievePropertiesEx>"#));
        text.split("<objects>")
            .skip(1)
            .map(|o| {
                let id = between(o, &format!(r#"<obj type="{kind}">"#), "<")[0].clone();
                let val = o
                    .split_once(&format!("<name>{path}</name>"))
                    .map(|(_, rest)| {
                        let rest = &rest[rest.find('>').unwrap() + 1..];
                        rest[..rest.find('<').unwrap()].to_string()
                    })
                    .unwrap_or_default();
                (id, val)
            })
            .collect()
    }
}

fn between(s: &str, start: &str, end: &str) -> Vec<String> {
    s.split(start)
        .skip(1)
        .map(|p| p[..p.find(end).unwrap_or(p.len())].to_string())
        .collect()
}

/// True when `v` (already in raw counter units) is one of the simulator's samples
/// plus its noise (vcsim adds Gaussian noise with sigma = sample/5: allow 6 sigma).
fn plausible(samples: &[i64], v: f64) -> bool {
    samples.iter().any(|&p| {
        let p = p as f64;
        let sigma = (p / 5.0).floor();
        (v - p).abs() <= 6.0 * sigma + 0.5
    })
}

#[test]
fn collects_the_vpx_inventory_and_real_performance_counters() {
    let Some(bin) = vcsim_or_skip("collects_the_vpx_inventory_and_real_performance_counters")
    else {
        return;
    };
    let sim = Vcsim::start(&bin, true, "s3cret-pass");
    let host = TestHost::default();
    let mut i = instance(
        &host,
        serde_json::json!({
            "url": sim.url, "username": "user", "password": "s3cret-pass",
            "ca_file": sim.ca_file, "vcenter": "vcsim", "labels": {"site": "lab"}
        }),
    );
    let batch = collect(&mut i).expect("collect");
    if std::env::var("VMWARE_DUMP").is_ok() {
        for m in batch.metrics.iter() {
            eprintln!(
                "{} [{}] {:?}",
                m.name,
                m.unit,
                m.points
                    .iter()
                    .map(|p| format!("{:?}", p.value))
                    .collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(
        i.health().state,
        HealthState::Healthy,
        "{}",
        i.health().reason
    );

    // Inventory: exact counts of the VPX model.
    let vms = points(&batch, "vsphere.vm.powered_on");
    let names: BTreeSet<&str> = vms.iter().filter_map(|(a, _)| attr(a, "vm")).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "DC0_H0_VM0",
            "DC0_H0_VM1",
            "DC0_C0_RP0_VM0",
            "DC0_C0_RP0_VM1"
        ])
    );
    assert!(vms.iter().all(|(_, v)| *v == 1.0), "{vms:?}");
    let hosts = points(&batch, "vsphere.host.connected");
    assert_eq!(hosts.len(), 4, "{hosts:?}");
    let in_cluster = hosts
        .iter()
        .filter(|(a, _)| attr(a, "cluster") == Some("DC0_C0"))
        .count();
    assert_eq!(in_cluster, 3);
    for (a, _) in vms.iter().chain(&hosts) {
        assert_eq!(attr(a, "datacenter"), Some("DC0"), "{a:?}");
        assert_eq!(attr(a, "vcenter"), Some("vcsim"));
        assert_eq!(attr(a, "site"), Some("lab"));
    }
    for (a, _) in &vms {
        let vm = attr(a, "vm").unwrap();
        let want_cluster = vm.starts_with("DC0_C0").then_some("DC0_C0");
        assert_eq!(attr(a, "cluster"), want_cluster, "{a:?}");
        assert!(
            attr(a, "host").is_some_and(|h| h.starts_with("DC0_")),
            "{a:?}"
        );
    }
    let clusters = points(&batch, "vsphere.cluster.hosts");
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].1, 3.0);
    assert_eq!(points(&batch, "vsphere.cluster.vms")[0].1, 2.0);
    let host_vms: f64 = points(&batch, "vsphere.host.vms").iter().map(|p| p.1).sum();
    assert_eq!(host_vms, 4.0);

    // Inventory values equal an independent read.
    let mut raw = RawSoap::new(&sim);
    raw.call(r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>user</userName><password>s3cret-pass</password></Login>"#);
    let caps = raw.property("Datastore", "summary.capacity");
    assert_eq!(caps.len(), 1);
    let cap: f64 = caps[0].1.parse().unwrap();
    let ds = points(&batch, "vsphere.datastore.capacity");
    assert_eq!(ds.len(), 1);
    assert_eq!(attr(&ds[0].0, "datastore"), Some("LocalDS_0"));
    assert_eq!(ds[0].1, cap);
    let free: f64 = raw.property("Datastore", "summary.freeSpace")[0]
        .1
        .parse()
        .unwrap();
    assert_eq!(points(&batch, "vsphere.datastore.free")[0].1, free);
    assert_eq!(points(&batch, "vsphere.datastore.used")[0].1, cap - free);
    let mem: BTreeSet<String> = raw
        .property("VirtualMachine", "summary.config.memorySizeMB")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    for (_, v) in points(&batch, "vsphere.vm.memory.size") {
        assert!(
            mem.contains(&((v / 1_048_576.0) as i64).to_string()),
            "{v} not in {mem:?}"
        );
    }
    let host_mem: BTreeSet<String> = raw
        .property("HostSystem", "summary.hardware.memorySize")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    for (_, v) in points(&batch, "vsphere.host.memory.size") {
        assert!(host_mem.contains(&(v as i64).to_string()));
    }

    // Performance: every powered-on VM and every host has real, non-zero values
    // drawn from the simulator's sample tables (not the zeros the Go agent sent).
    let checks = [
        (
            "vsphere.vm.cpu.usage",
            "VirtualMachine",
            "cpu.usage.average",
            100.0,
            "%",
        ),
        (
            "vsphere.vm.cpu.usagemhz",
            "VirtualMachine",
            "cpu.usagemhz.average",
            1.0,
            "MHz",
        ),
        (
            "vsphere.vm.mem.usage",
            "VirtualMachine",
            "mem.usage.average",
            100.0,
            "%",
        ),
        (
            "vsphere.vm.mem.consumed",
            "VirtualMachine",
            "mem.consumed.average",
            1.0 / 1024.0,
            "By",
        ),
        (
            "vsphere.vm.disk.usage",
            "VirtualMachine",
            "disk.usage.average",
            1.0 / 1024.0,
            "By/s",
        ),
        (
            "vsphere.vm.net.usage",
            "VirtualMachine",
            "net.usage.average",
            1.0 / 1024.0,
            "By/s",
        ),
        (
            "vsphere.host.cpu.usage",
            "HostSystem",
            "cpu.usage.average",
            100.0,
            "%",
        ),
        (
            "vsphere.host.cpu.usagemhz",
            "HostSystem",
            "cpu.usagemhz.average",
            1.0,
            "MHz",
        ),
        (
            "vsphere.host.mem.consumed",
            "HostSystem",
            "mem.consumed.average",
            1.0 / 1024.0,
            "By",
        ),
        (
            "vsphere.host.net.usage",
            "HostSystem",
            "net.usage.average",
            1.0 / 1024.0,
            "By/s",
        ),
    ];
    for (metric, kind, counter, to_raw, unit) in checks {
        let samples = sim.samples(kind, counter);
        assert!(!samples.is_empty(), "{counter}");
        let pts = points(&batch, metric);
        // Four powered-on VMs, four connected hosts.
        assert_eq!(pts.len(), 4, "{metric}: {pts:?}");
        for (a, v) in &pts {
            assert!(*v > 0.0, "{metric} {a:?} = {v}");
            assert!(
                plausible(&samples, v * to_raw),
                "{metric} {a:?} = {v}: not from {samples:?}"
            );
        }
        let m = batch
            .metrics
            .iter()
            .find(|m| m.name.as_str() == metric)
            .unwrap();
        assert_eq!(m.unit.as_str(), unit, "{metric}");
    }
    // Percentages are percentages.
    for (_, v) in points(&batch, "vsphere.vm.cpu.usage") {
        assert!((0.0..=100.0 * 1.5).contains(&v), "{v}");
    }

    // A second collection reuses the session (one login in all).
    let again = collect(&mut i).expect("second collect");
    assert_eq!(points(&again, "vsphere.vm.powered_on").len(), 4);
    let logs = host.logs();
    let opened = logs
        .iter()
        .filter(|(_, l)| l.contains("session opened"))
        .count();
    assert_eq!(opened, 1, "{logs:?}");
    assert!(
        logs.iter().all(|(_, l)| !l.contains("s3cret-pass")),
        "password in the log: {logs:?}"
    );

    assert!(matches!(i.shutdown(2000), RResult::ROk(())));
}

#[test]
fn login_refusal_tls_verification_and_plain_http() {
    let Some(bin) = vcsim_or_skip("login_refusal_tls_verification_and_plain_http") else {
        return;
    };
    let sim = Vcsim::start(&bin, true, "right-pass");
    let host = TestHost::default();

    // A wrong password is permanent, says why, and never shows the password.
    let mut i = instance(
        &host,
        serde_json::json!({"url": sim.url, "username": "user", "password": "wrong-pass-123", "ca_file": sim.ca_file}),
    );
    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
    assert!(
        e.message.contains("login refused for user \"user\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("check username and password"));
    assert!(!e.message.contains("wrong-pass-123"));
    let h = i.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(!h.reason.contains("wrong-pass-123"));
    assert!(host
        .logs()
        .iter()
        .all(|(_, l)| !l.contains("wrong-pass-123")));

    // Without the CA, verification fails (retryable transport error).
    let mut i = instance(
        &host,
        serde_json::json!({"url": sim.url, "username": "user", "password": "right-pass"}),
    );
    let e = collect(&mut i).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(
        e.message.to_lowercase().contains("certificate"),
        "{}",
        e.message
    );

    // insecure_skip_verify accepts it.
    let mut i = instance(
        &host,
        serde_json::json!({"url": sim.url, "username": "user", "password": "right-pass", "insecure_skip_verify": true,
                           "collect_vms": false, "collect_hosts": false, "collect_clusters": false}),
    );
    let b = collect(&mut i).unwrap();
    assert_eq!(points(&b, "vsphere.datastore.capacity").len(), 1);
    assert!(points(&b, "vsphere.vm.powered_on").is_empty());
    drop(sim);

    // Plain http (vcsim -tls=false); an unknown counter is skipped, not an error.
    let sim = Vcsim::start(&bin, false, "pw");
    assert!(sim.url.starts_with("http://"));
    let mut i = instance(
        &host,
        serde_json::json!({"url": sim.url.trim_end_matches("/sdk"), "username": "user", "password": "pw",
                           "performance": {"vm_counters": ["cpu.usagemhz.average", "nosuch.counter.average"], "host_counters": []}}),
    );
    let b = collect(&mut i).unwrap();
    assert_eq!(points(&b, "vsphere.vm.cpu.usagemhz").len(), 4);
    assert!(points(&b, "vsphere.host.cpu.usage").is_empty());
    host.wait_for_log("nosuch.counter.average", Duration::from_secs(1));
    assert_eq!(i.health().state, HealthState::Healthy);
}
