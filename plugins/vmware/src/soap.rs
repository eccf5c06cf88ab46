//! The vim25 SOAP messages the plugin exchanges with vCenter or ESXi: request
//! building (text templates with XML escaping) and response parsing (quick-xml), both
//! pure and golden-tested.
//!
//! Vendor reference: the vSphere Web Services API
//! (<https://developer.broadcom.com/xapis/vsphere-web-services-api/latest/>):
//! - `ServiceInstance.RetrieveServiceContent` (the entry point: property collector,
//!   view manager, session manager, performance manager, root folder, `about`);
//! - `SessionManager.Login` / `Logout` (the session travels in the
//!   `vmware_soap_session` cookie);
//! - `ViewManager.CreateContainerView`, `ContainerView.DestroyView`;
//! - `PropertyCollector.RetrievePropertiesEx` / `ContinueRetrievePropertiesEx` with a
//!   `TraversalSpec` over the container view's `view` property;
//! - `PerformanceManager.perfCounter` (`PerfCounterInfo`: key, group/name/unit
//!   `ElementDescription`, `rollupType`) and `PerformanceManager.QueryPerf`
//!   (`PerfQuerySpec`: entity, `maxSample`, `metricId` with `counterId` and
//!   `instance`, `intervalId`; answer `PerfEntityMetric` with `sampleInfo` and
//!   `PerfMetricIntSeries` values);
//! - faults: a SOAP 1.1 `Fault` whose `detail` holds the vim25 fault
//!   (`NotAuthenticated`, `InvalidLogin`, ...) as the `xsi:type` of its element.
//!
//! Responses are read into a small element tree ([`Node`]: local names, attributes,
//! text) and navigated from there; nothing here panics on malformed input, and the
//! tree depth is bounded so a hostile document cannot exhaust the stack.

use std::collections::BTreeMap;

use quick_xml::events::Event;

/// The vim25 XML namespace.
pub const VIM25_NS: &str = "urn:vim25";

/// Deepest element nesting accepted in a response (vim25 answers nest about 12).
pub const MAX_DEPTH: usize = 64;

/// A managed object reference: type and id (`VirtualMachine` / `vm-42`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MoRef {
    /// Managed object type, e.g. `HostSystem`.
    pub kind: String,
    /// Its id, e.g. `host-21`.
    pub value: String,
}

impl MoRef {
    /// Builds a reference.
    pub fn new(kind: &str, value: &str) -> Self {
        MoRef {
            kind: kind.to_string(),
            value: value.to_string(),
        }
    }

    /// `<tag type="Kind">value</tag>`, escaped.
    pub fn xml(&self, tag: &str) -> String {
        format!(
            "<{tag} type=\"{}\">{}</{tag}>",
            escape(&self.kind),
            escape(&self.value)
        )
    }
}

impl std::fmt::Display for MoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// Escapes text for an XML element or attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps one vim25 method call in a SOAP 1.1 envelope.
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
}

/// `RetrieveServiceContent` on the well-known `ServiceInstance` object.
pub fn retrieve_service_content() -> String {
    envelope(&format!(
        "<RetrieveServiceContent xmlns=\"{VIM25_NS}\">{}</RetrieveServiceContent>",
        MoRef::new("ServiceInstance", "ServiceInstance").xml("_this")
    ))
}

/// `SessionManager.Login`. The password is escaped into the body and nowhere else.
pub fn login(session_manager: &MoRef, username: &str, password: &str) -> String {
    envelope(&format!(
        "<Login xmlns=\"{VIM25_NS}\">{}<userName>{}</userName><password>{}</password></Login>",
        session_manager.xml("_this"),
        escape(username),
        escape(password)
    ))
}

/// `SessionManager.Logout`.
pub fn logout(session_manager: &MoRef) -> String {
    envelope(&format!(
        "<Logout xmlns=\"{VIM25_NS}\">{}</Logout>",
        session_manager.xml("_this")
    ))
}

/// `ViewManager.CreateContainerView` over `container`, recursive, for `types`.
pub fn create_container_view(view_manager: &MoRef, container: &MoRef, types: &[&str]) -> String {
    let types: String = types
        .iter()
        .map(|t| format!("<type>{}</type>", escape(t)))
        .collect();
    envelope(&format!(
        "<CreateContainerView xmlns=\"{VIM25_NS}\">{}{}{types}<recursive>true</recursive></CreateContainerView>",
        view_manager.xml("_this"),
        container.xml("container"),
    ))
}

/// `ContainerView.DestroyView`.
pub fn destroy_view(view: &MoRef) -> String {
    envelope(&format!(
        "<DestroyView xmlns=\"{VIM25_NS}\">{}</DestroyView>",
        view.xml("_this")
    ))
}

/// `PropertyCollector.RetrievePropertiesEx` of the objects of a container view:
/// one `PropertySpec` per `(type, paths)`, the view itself skipped, its `view`
/// property traversed; at most `max_objects` objects per answer (the rest comes
/// with [`continue_retrieve_properties_ex`]).
pub fn retrieve_view_properties(
    property_collector: &MoRef,
    view: &MoRef,
    specs: &[(&str, &[&str])],
    max_objects: u32,
) -> String {
    let mut prop_sets = String::new();
    for (kind, paths) in specs {
        prop_sets.push_str("<propSet><type>");
        prop_sets.push_str(&escape(kind));
        prop_sets.push_str("</type>");
        for p in paths.iter() {
            prop_sets.push_str("<pathSet>");
            prop_sets.push_str(&escape(p));
            prop_sets.push_str("</pathSet>");
        }
        prop_sets.push_str("</propSet>");
    }
    envelope(&format!(
        "<RetrievePropertiesEx xmlns=\"{VIM25_NS}\">{}<specSet>{prop_sets}\
<objectSet>{}<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>traverseView</name>\
<type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet>\
</specSet><options><maxObjects>{max_objects}</maxObjects></options></RetrievePropertiesEx>",
        property_collector.xml("_this"),
        view.xml("obj"),
    ))
}

/// `PropertyCollector.RetrievePropertiesEx` of properties of one object (the
/// performance manager's `perfCounter`).
pub fn retrieve_object_properties(
    property_collector: &MoRef,
    obj: &MoRef,
    paths: &[&str],
) -> String {
    let path_set: String = paths
        .iter()
        .map(|p| format!("<pathSet>{}</pathSet>", escape(p)))
        .collect();
    envelope(&format!(
        "<RetrievePropertiesEx xmlns=\"{VIM25_NS}\">{}<specSet><propSet><type>{}</type>{path_set}</propSet>\
<objectSet>{}<skip>false</skip></objectSet></specSet><options></options></RetrievePropertiesEx>",
        property_collector.xml("_this"),
        escape(&obj.kind),
        obj.xml("obj"),
    ))
}

/// `PropertyCollector.ContinueRetrievePropertiesEx` with the token of the previous
/// page.
pub fn continue_retrieve_properties_ex(property_collector: &MoRef, token: &str) -> String {
    envelope(&format!(
        "<ContinueRetrievePropertiesEx xmlns=\"{VIM25_NS}\">{}<token>{}</token></ContinueRetrievePropertiesEx>",
        property_collector.xml("_this"),
        escape(token)
    ))
}

/// One entity's part of a `QueryPerf` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfQuery {
    /// The VM or host.
    pub entity: MoRef,
    /// Counter ids (from `perfCounter`), each asked with instance `""` (the
    /// aggregate over instances).
    pub counter_ids: Vec<i32>,
    /// Sampling interval: 20 (the real-time refresh rate) for VMs and hosts, a
    /// historical interval (300...) for clusters and datastores.
    pub interval_id: i32,
}

/// `PerformanceManager.QueryPerf` with one `PerfQuerySpec` per entity, the most
/// recent sample only (`maxSample` 1), in the `normal` format.
pub fn query_perf(perf_manager: &MoRef, queries: &[PerfQuery]) -> String {
    let mut specs = String::new();
    for q in queries {
        specs.push_str("<querySpec>");
        specs.push_str(&q.entity.xml("entity"));
        specs.push_str("<maxSample>1</maxSample>");
        for id in &q.counter_ids {
            specs.push_str(&format!(
                "<metricId><counterId>{id}</counterId><instance></instance></metricId>"
            ));
        }
        specs.push_str(&format!(
            "<intervalId>{}</intervalId><format>normal</format></querySpec>",
            q.interval_id
        ));
    }
    envelope(&format!(
        "<QueryPerf xmlns=\"{VIM25_NS}\">{}{specs}</QueryPerf>",
        perf_manager.xml("_this")
    ))
}

/// One element of a parsed response: local name, attributes (qualified names as
/// written, e.g. `type` and `xsi:type`), text and children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Local name (namespace prefix removed).
    pub name: String,
    /// Attributes, qualified names as written.
    pub attrs: Vec<(String, String)>,
    /// Concatenated text content (unescaped).
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Node> {
        let mut n = self;
        for name in names {
            n = n.child(name)?;
        }
        Some(n)
    }

    /// Text of the child at `names`, trimmed.
    pub fn text_at(&self, names: &[&str]) -> Option<&str> {
        self.path(names).map(|n| n.text.trim())
    }

    /// An attribute by qualified name.
    pub fn attr(&self, qname: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == qname)
            .map(|(_, v)| v.as_str())
    }

    /// The `xsi:type` of this element (any prefix), without its own prefix
    /// (`xsd:long` -> `long`).
    pub fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.ends_with(":type"))
            .map(|(_, v)| v.rsplit(':').next().unwrap_or(v))
    }

    /// This element read as a managed object reference (`type` attribute + text).
    pub fn moref(&self) -> Option<MoRef> {
        let kind = self.attr("type")?;
        let value = self.text.trim();
        if kind.is_empty() || value.is_empty() {
            return None;
        }
        Some(MoRef::new(kind, value))
    }
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

/// Parses a whole XML document into its root [`Node`].
pub fn parse_tree(xml: &[u8]) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut buf = Vec::new();
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, String> {
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| format!("malformed XML attribute: {e}"))?;
            let v = a
                .unescape_value()
                .map_err(|e| format!("malformed XML attribute value: {e}"))?;
            attrs.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                v.into_owned(),
            ));
        }
        Ok(Node {
            name: local(e.name().as_ref()),
            attrs,
            ..Node::default()
        })
    };
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_DEPTH} elements"));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                let node = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err("XML with more than one root element".into()),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced XML end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err("XML with more than one root element".into()),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    let s = t
                        .unescape()
                        .map_err(|e| format!("malformed XML text: {e}"))?;
                    n.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("truncated XML document".into());
    }
    root.ok_or_else(|| "empty XML document".to_string())
}

/// A SOAP fault answered by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`, e.g. `ServerFaultCode`.
    pub code: String,
    /// `faultstring`, the human-readable message.
    pub message: String,
    /// The vim25 fault type from `detail` (`NotAuthenticated`, `InvalidLogin`...),
    /// when present.
    pub kind: Option<String>,
}

impl Fault {
    /// True for `NotAuthenticated`: the session expired or was never valid.
    pub fn is_not_authenticated(&self) -> bool {
        self.kind.as_deref() == Some("NotAuthenticated")
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Some(k) => write!(f, "{k}: {}", self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// Why a response could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The server answered with a SOAP fault.
    Fault(Fault),
    /// Not the XML we expected.
    Malformed(String),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::Fault(x) => write!(f, "SOAP fault {x}"),
            ResponseError::Malformed(m) => write!(f, "unexpected response: {m}"),
        }
    }
}

/// The SOAP body of a response: the fault if it is one, else the method's response
/// element (e.g. `LoginResponse`), whose name is checked.
pub fn response_body(xml: &[u8], expected: &str) -> Result<Node, ResponseError> {
    let root = parse_tree(xml).map_err(ResponseError::Malformed)?;
    if root.name != "Envelope" {
        return Err(ResponseError::Malformed(format!(
            "root element <{}>, not a SOAP Envelope",
            root.name
        )));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| ResponseError::Malformed("SOAP Envelope without Body".into()))?;
    if let Some(f) = body.child("Fault") {
        return Err(ResponseError::Fault(parse_fault(f)));
    }
    let first = body
        .children
        .first()
        .ok_or_else(|| ResponseError::Malformed("empty SOAP Body".into()))?;
    if first.name != expected {
        return Err(ResponseError::Malformed(format!(
            "<{}> where <{expected}> was expected",
            first.name
        )));
    }
    Ok(first.clone())
}

fn parse_fault(f: &Node) -> Fault {
    let kind = f.child("detail").and_then(|d| d.children.first()).map(|d| {
        d.xsi_type()
            .map(str::to_string)
            .unwrap_or_else(|| d.name.trim_end_matches("Fault").to_string())
    });
    Fault {
        code: f.text_at(&["faultcode"]).unwrap_or("").to_string(),
        message: f.text_at(&["faultstring"]).unwrap_or("").to_string(),
        kind: kind.filter(|k| !k.is_empty()),
    }
}

/// The parts of `ServiceContent` the plugin uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceContent {
    /// Root of the inventory.
    pub root_folder: MoRef,
    /// The property collector.
    pub property_collector: MoRef,
    /// The view manager (absent on very old servers).
    pub view_manager: MoRef,
    /// The session manager.
    pub session_manager: MoRef,
    /// The performance manager.
    pub perf_manager: Option<MoRef>,
    /// `about.fullName`, e.g. `VMware vCenter Server 7.0.0 build-...`.
    pub full_name: String,
    /// `about.apiType`: `VirtualCenter` or `HostAgent` (standalone ESXi).
    pub api_type: String,
    /// `about.apiVersion`, e.g. `7.0`.
    pub api_version: String,
    /// `about.instanceUuid` (vCenter only).
    pub instance_uuid: String,
}

/// Parses a `RetrieveServiceContentResponse`.
pub fn parse_service_content(xml: &[u8]) -> Result<ServiceContent, ResponseError> {
    let resp = response_body(xml, "RetrieveServiceContentResponse")?;
    let rv = resp
        .child("returnval")
        .ok_or_else(|| ResponseError::Malformed("no returnval".into()))?;
    let need = |name: &str| -> Result<MoRef, ResponseError> {
        rv.child(name)
            .and_then(Node::moref)
            .ok_or_else(|| ResponseError::Malformed(format!("ServiceContent without {name}")))
    };
    let about = |name: &str| rv.text_at(&["about", name]).unwrap_or("").to_string();
    Ok(ServiceContent {
        root_folder: need("rootFolder")?,
        property_collector: need("propertyCollector")?,
        view_manager: need("viewManager")?,
        session_manager: need("sessionManager")?,
        perf_manager: rv.child("perfManager").and_then(Node::moref),
        full_name: about("fullName"),
        api_type: about("apiType"),
        api_version: about("apiVersion"),
        instance_uuid: about("instanceUuid"),
    })
}

/// Checks a `LoginResponse` (the session itself is the cookie).
pub fn parse_login(xml: &[u8]) -> Result<(), ResponseError> {
    response_body(xml, "LoginResponse").map(|_| ())
}

/// The view created by `CreateContainerView`.
pub fn parse_create_container_view(xml: &[u8]) -> Result<MoRef, ResponseError> {
    let resp = response_body(xml, "CreateContainerViewResponse")?;
    resp.child("returnval")
        .and_then(Node::moref)
        .ok_or_else(|| ResponseError::Malformed("CreateContainerView without a view".into()))
}

/// One object of a property collector answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectContent {
    /// The object.
    pub obj: MoRef,
    /// Property path -> its `val` element.
    pub props: BTreeMap<String, Node>,
    /// Properties the server could not read: path and fault type.
    pub missing: Vec<(String, String)>,
}

impl ObjectContent {
    /// A property's text (scalars).
    pub fn text(&self, path: &str) -> Option<&str> {
        self.props.get(path).map(|n| n.text.trim())
    }

    /// A property as a number.
    pub fn number(&self, path: &str) -> Option<f64> {
        self.text(path).and_then(|t| t.parse::<f64>().ok())
    }

    /// A property as a managed object reference.
    pub fn moref(&self, path: &str) -> Option<MoRef> {
        self.props.get(path).and_then(Node::moref)
    }

    /// A property as a boolean (`true` / `false`).
    pub fn boolean(&self, path: &str) -> Option<bool> {
        match self.text(path)? {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }
}

/// One page of `RetrievePropertiesEx` / `ContinueRetrievePropertiesEx`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetrieveResult {
    /// Token for the next page, when there is one.
    pub token: Option<String>,
    /// The objects.
    pub objects: Vec<ObjectContent>,
}

/// Parses a `RetrievePropertiesExResponse` or `ContinueRetrievePropertiesExResponse`
/// (`expected` names which). An empty answer (no `returnval`) is an empty result.
pub fn parse_retrieve_result(xml: &[u8], expected: &str) -> Result<RetrieveResult, ResponseError> {
    let resp = response_body(xml, expected)?;
    let Some(rv) = resp.child("returnval") else {
        return Ok(RetrieveResult::default());
    };
    let token = rv
        .text_at(&["token"])
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let mut objects = Vec::new();
    for o in rv.children_named("objects") {
        let obj = o
            .child("obj")
            .and_then(Node::moref)
            .ok_or_else(|| ResponseError::Malformed("ObjectContent without obj".into()))?;
        let mut props = BTreeMap::new();
        for p in o.children_named("propSet") {
            if let (Some(name), Some(val)) = (p.text_at(&["name"]), p.child("val")) {
                props.insert(name.to_string(), val.clone());
            }
        }
        let missing = o
            .children_named("missingSet")
            .map(|m| {
                let path = m.text_at(&["path"]).unwrap_or("").to_string();
                let kind = m
                    .path(&["fault", "fault"])
                    .and_then(|f| f.xsi_type().map(str::to_string))
                    .unwrap_or_default();
                (path, kind)
            })
            .collect();
        objects.push(ObjectContent {
            obj,
            props,
            missing,
        });
    }
    Ok(RetrieveResult { token, objects })
}

/// A performance counter definition (`PerfCounterInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfCounter {
    /// Counter id for `QueryPerf` (differs between servers: always resolve).
    pub key: i32,
    /// Group key, e.g. `cpu`.
    pub group: String,
    /// Name key, e.g. `usagemhz`.
    pub name: String,
    /// Rollup type, e.g. `average`.
    pub rollup: String,
    /// Unit key, e.g. `megaHertz`, `percent`, `kiloBytes`.
    pub unit: String,
    /// `absolute`, `delta` or `rate`.
    pub stats_type: String,
}

impl PerfCounter {
    /// `group.name.rollup`, the usual way to name a counter (`cpu.usage.average`).
    pub fn full_name(&self) -> String {
        format!("{}.{}.{}", self.group, self.name, self.rollup)
    }
}

/// Parses the performance manager's `perfCounter` property from a
/// `RetrievePropertiesExResponse`.
pub fn parse_perf_counters(xml: &[u8]) -> Result<Vec<PerfCounter>, ResponseError> {
    let result = parse_retrieve_result(xml, "RetrievePropertiesExResponse")?;
    let obj = result
        .objects
        .first()
        .ok_or_else(|| ResponseError::Malformed("no PerformanceManager in the answer".into()))?;
    if let Some((path, kind)) = obj.missing.first() {
        return Err(ResponseError::Fault(Fault {
            code: "ServerFaultCode".into(),
            message: format!("property {path} not readable"),
            kind: Some(kind.clone()),
        }));
    }
    let val = obj
        .props
        .get("perfCounter")
        .ok_or_else(|| ResponseError::Malformed("no perfCounter property".into()))?;
    let mut out = Vec::new();
    for c in val.children_named("PerfCounterInfo") {
        let Some(key) = c.text_at(&["key"]).and_then(|k| k.parse().ok()) else {
            continue;
        };
        let s = |p: &[&str]| c.text_at(p).unwrap_or("").to_string();
        out.push(PerfCounter {
            key,
            group: s(&["groupInfo", "key"]),
            name: s(&["nameInfo", "key"]),
            rollup: s(&["rollupType"]),
            unit: s(&["unitInfo", "key"]),
            stats_type: s(&["statsType"]),
        });
    }
    Ok(out)
}

/// The latest sample of one counter of one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfValue {
    /// Counter id.
    pub counter_id: i32,
    /// Instance (`""` for the aggregate).
    pub instance: String,
    /// The most recent value (vim25 reports -1 for "no data": such values are
    /// left out).
    pub value: i64,
}

/// One entity's answer in `QueryPerf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfEntity {
    /// The entity.
    pub entity: MoRef,
    /// Time of the latest sample as the server wrote it (xsd:dateTime), if any.
    pub timestamp: Option<String>,
    /// The values.
    pub values: Vec<PerfValue>,
}

/// Parses a `QueryPerfResponse` (`normal` format).
pub fn parse_query_perf(xml: &[u8]) -> Result<Vec<PerfEntity>, ResponseError> {
    let resp = response_body(xml, "QueryPerfResponse")?;
    let mut out = Vec::new();
    for rv in resp.children_named("returnval") {
        let entity = rv
            .child("entity")
            .and_then(Node::moref)
            .ok_or_else(|| ResponseError::Malformed("PerfEntityMetric without entity".into()))?;
        let timestamp = rv
            .children_named("sampleInfo")
            .last()
            .and_then(|s| s.text_at(&["timestamp"]))
            .map(str::to_string);
        let mut values = Vec::new();
        for v in rv.children_named("value") {
            let Some(counter_id) = v.text_at(&["id", "counterId"]).and_then(|c| c.parse().ok())
            else {
                continue;
            };
            let instance = v.text_at(&["id", "instance"]).unwrap_or("").to_string();
            // The last sample is the most recent one.
            let latest = v
                .children_named("value")
                .last()
                .and_then(|x| x.text.trim().parse::<i64>().ok());
            if let Some(value) = latest.filter(|x| *x >= 0) {
                values.push(PerfValue {
                    counter_id,
                    instance,
                    value,
                });
            }
        }
        out.push(PerfEntity {
            entity,
            timestamp,
            values,
        });
    }
    Ok(out)
}

/// Parses an xsd:dateTime in UTC (`2026-11-25T16:20:00Z`, optional fraction, `Z`
/// or `+00:00`) to Unix nanoseconds; `None` for anything else.
pub fn parse_datetime_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':');
    let (h, mi, se): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se;
    if secs < 0 {
        return None;
    }
    let mut nanos: u64 = 0;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    Some(secs as u64 * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_CONTENT: &[u8] = include_bytes!("../tests/data/service_content.xml");
    const LOGIN: &[u8] = include_bytes!("../tests/data/login.xml");
    const INVALID_LOGIN: &[u8] = include_bytes!("../tests/data/fault_invalid_login.xml");
    const NOT_AUTHENTICATED: &[u8] = include_bytes!("../tests/data/fault_not_authenticated.xml");
    const CREATE_VIEW: &[u8] = include_bytes!("../tests/data/create_container_view.xml");
    const PROPERTIES: &[u8] = include_bytes!("../tests/data/retrieve_properties.xml");
    const PERF_COUNTERS: &[u8] = include_bytes!("../tests/data/perf_counters.xml");
    const QUERY_PERF: &[u8] = include_bytes!("../tests/data/query_perf.xml");

    const ENV_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>";
    const ENV_TAIL: &str = "</soapenv:Body></soapenv:Envelope>";

    fn wrapped(body: &str) -> String {
        format!("{ENV_HEAD}{body}{ENV_TAIL}")
    }

    #[test]
    fn requests_match_the_documented_shapes() {
        assert_eq!(
            retrieve_service_content(),
            wrapped("<RetrieveServiceContent xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></RetrieveServiceContent>")
        );
        let sm = MoRef::new("SessionManager", "SessionManager");
        assert_eq!(
            login(&sm, "admin@vsphere.local", "p<&>\"'w"),
            wrapped("<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>admin@vsphere.local</userName><password>p&lt;&amp;&gt;&quot;&apos;w</password></Login>")
        );
        assert_eq!(
            logout(&sm),
            wrapped("<Logout xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Logout>")
        );
        assert_eq!(
            create_container_view(
                &MoRef::new("ViewManager", "ViewManager"),
                &MoRef::new("Folder", "group-d1"),
                &["HostSystem", "VirtualMachine"]
            ),
            wrapped("<CreateContainerView xmlns=\"urn:vim25\"><_this type=\"ViewManager\">ViewManager</_this><container type=\"Folder\">group-d1</container><type>HostSystem</type><type>VirtualMachine</type><recursive>true</recursive></CreateContainerView>")
        );
        let pc = MoRef::new("PropertyCollector", "propertyCollector");
        assert_eq!(
            retrieve_view_properties(
                &pc,
                &MoRef::new("ContainerView", "session[1]v"),
                &[("VirtualMachine", &["name", "runtime.powerState"][..]), ("Datastore", &["summary.capacity"][..])],
                500
            ),
            wrapped("<RetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet><pathSet>runtime.powerState</pathSet></propSet><propSet><type>Datastore</type><pathSet>summary.capacity</pathSet></propSet><objectSet><obj type=\"ContainerView\">session[1]v</obj><skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>traverseView</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet></specSet><options><maxObjects>500</maxObjects></options></RetrievePropertiesEx>")
        );
        assert_eq!(
            continue_retrieve_properties_ex(&pc, "tok&1"),
            wrapped("<ContinueRetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><token>tok&amp;1</token></ContinueRetrievePropertiesEx>")
        );
        assert_eq!(
            retrieve_object_properties(&pc, &MoRef::new("PerformanceManager", "PerfMgr"), &["perfCounter"]),
            wrapped("<RetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>PerformanceManager</type><pathSet>perfCounter</pathSet></propSet><objectSet><obj type=\"PerformanceManager\">PerfMgr</obj><skip>false</skip></objectSet></specSet><options></options></RetrievePropertiesEx>")
        );
        assert_eq!(
            query_perf(
                &MoRef::new("PerformanceManager", "PerfMgr"),
                &[PerfQuery { entity: MoRef::new("VirtualMachine", "vm-57"), counter_ids: vec![2, 6], interval_id: 20 }]
            ),
            wrapped("<QueryPerf xmlns=\"urn:vim25\"><_this type=\"PerformanceManager\">PerfMgr</_this><querySpec><entity type=\"VirtualMachine\">vm-57</entity><maxSample>1</maxSample><metricId><counterId>2</counterId><instance></instance></metricId><metricId><counterId>6</counterId><instance></instance></metricId><intervalId>20</intervalId><format>normal</format></querySpec></QueryPerf>")
        );
    }

    #[test]
    fn every_request_is_well_formed_xml() {
        let sm = MoRef::new("SessionManager", "S<1>");
        for body in [
            retrieve_service_content(),
            login(&sm, "u&", "<p>"),
            logout(&sm),
        ] {
            let root = parse_tree(body.as_bytes()).unwrap();
            assert_eq!(root.name, "Envelope");
        }
        let root = parse_tree(login(&sm, "u&", "<p>").as_bytes()).unwrap();
        let l = root.path(&["Body", "Login"]).unwrap();
        assert_eq!(l.text_at(&["password"]), Some("<p>"));
        assert_eq!(l.child("_this").unwrap().moref(), Some(sm));
    }

    #[test]
    fn parses_service_content_recorded_from_vcsim() {
        let c = parse_service_content(SERVICE_CONTENT).unwrap();
        assert_eq!(c.root_folder, MoRef::new("Folder", "group-d1"));
        assert_eq!(
            c.property_collector,
            MoRef::new("PropertyCollector", "propertyCollector")
        );
        assert_eq!(c.view_manager, MoRef::new("ViewManager", "ViewManager"));
        assert_eq!(
            c.session_manager,
            MoRef::new("SessionManager", "SessionManager")
        );
        assert_eq!(
            c.perf_manager,
            Some(MoRef::new("PerformanceManager", "PerfMgr"))
        );
        assert_eq!(c.api_type, "VirtualCenter");
        assert_eq!(c.api_version, "6.5");
        assert!(c.full_name.starts_with("VMware vCenter Server"));
    }

    #[test]
    fn parses_login_and_faults() {
        parse_login(LOGIN).unwrap();
        match parse_login(INVALID_LOGIN) {
            Err(ResponseError::Fault(f)) => {
                assert_eq!(f.kind.as_deref(), Some("InvalidLogin"));
                assert_eq!(f.code, "ServerFaultCode");
                assert_eq!(f.message, "Login failure");
            }
            other => panic!("{other:?}"),
        }
        match parse_create_container_view(NOT_AUTHENTICATED) {
            Err(ResponseError::Fault(f)) => assert!(f.is_not_authenticated()),
            other => panic!("{other:?}"),
        }
        // A fault without xsi:type falls back to the element name.
        let x = wrapped("<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>gone</faultstring><detail><ManagedObjectNotFoundFault xmlns=\"urn:vim25\"/></detail></soapenv:Fault>");
        match parse_login(x.as_bytes()) {
            Err(ResponseError::Fault(f)) => {
                assert_eq!(f.kind.as_deref(), Some("ManagedObjectNotFound"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_view_and_properties() {
        let v = parse_create_container_view(CREATE_VIEW).unwrap();
        assert_eq!(v.kind, "ContainerView");
        assert!(v.value.starts_with("session["));
        let r = parse_retrieve_result(PROPERTIES, "RetrievePropertiesExResponse").unwrap();
        assert_eq!(r.token, None);
        let vms: Vec<_> = r
            .objects
            .iter()
            .filter(|o| o.obj.kind == "VirtualMachine")
            .collect();
        assert_eq!(vms.len(), 4);
        let vm = vms[0];
        assert_eq!(vm.obj, MoRef::new("VirtualMachine", "vm-57"));
        assert_eq!(vm.text("name"), Some("DC0_H0_VM0"));
        assert_eq!(vm.text("runtime.powerState"), Some("poweredOn"));
        assert_eq!(
            vm.moref("runtime.host"),
            Some(MoRef::new("HostSystem", "host-21"))
        );
        assert_eq!(vm.moref("parent"), Some(MoRef::new("Folder", "folder-3")));
        assert_eq!(vm.number("summary.config.memorySizeMB"), Some(32.0));
        let ds = r
            .objects
            .iter()
            .find(|o| o.obj.kind == "Datastore")
            .unwrap();
        assert!(ds.number("summary.capacity").unwrap() > 0.0);
        assert_eq!(ds.boolean("summary.accessible"), Some(true));
    }

    #[test]
    fn parses_pages_tokens_and_missing_properties() {
        let x = wrapped("<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><token>t-1</token><objects><obj type=\"HostSystem\">host-9</obj><missingSet><path>name</path><fault><fault xsi:type=\"NotAuthenticated\"></fault><localizedMessage></localizedMessage></fault></missingSet></objects></returnval></RetrievePropertiesExResponse>");
        let r = parse_retrieve_result(x.as_bytes(), "RetrievePropertiesExResponse").unwrap();
        assert_eq!(r.token.as_deref(), Some("t-1"));
        assert_eq!(
            r.objects[0].missing,
            vec![("name".to_string(), "NotAuthenticated".to_string())]
        );
        // No returnval: nothing matched.
        let x = wrapped(
            "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"></RetrievePropertiesExResponse>",
        );
        assert_eq!(
            parse_retrieve_result(x.as_bytes(), "RetrievePropertiesExResponse").unwrap(),
            RetrieveResult::default()
        );
    }

    #[test]
    fn parses_perf_counters_and_samples() {
        let c = parse_perf_counters(PERF_COUNTERS).unwrap();
        let names: Vec<String> = c.iter().map(PerfCounter::full_name).collect();
        assert!(
            names.contains(&"cpu.usage.average".to_string()),
            "{names:?}"
        );
        let usage = c
            .iter()
            .find(|x| x.full_name() == "cpu.usage.average")
            .unwrap();
        assert_eq!(usage.key, 2);
        assert_eq!(usage.unit, "percent");
        assert_eq!(usage.stats_type, "rate");
        let mhz = c
            .iter()
            .find(|x| x.full_name() == "cpu.usagemhz.average")
            .unwrap();
        assert_eq!(mhz.unit, "megaHertz");
        let p = parse_query_perf(QUERY_PERF).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].entity, MoRef::new("VirtualMachine", "vm-57"));
        assert_eq!(
            p[0].values,
            vec![
                PerfValue {
                    counter_id: 2,
                    instance: String::new(),
                    value: 1658
                },
                PerfValue {
                    counter_id: 6,
                    instance: String::new(),
                    value: 1016
                },
            ]
        );
        assert_eq!(p[1].entity, MoRef::new("HostSystem", "host-21"));
        let t = parse_datetime_ns(p[0].timestamp.as_deref().unwrap()).unwrap();
        assert_eq!(
            t,
            parse_datetime_ns("2026-11-25T16:18:40.366675244Z").unwrap()
        );
    }

    #[test]
    fn minus_one_means_no_data_and_the_latest_sample_wins() {
        let x = wrapped("<QueryPerfResponse xmlns=\"urn:vim25\"><returnval xsi:type=\"PerfEntityMetric\"><entity type=\"HostSystem\">host-1</entity><sampleInfo><timestamp>2024-01-01T00:00:00Z</timestamp><interval>20</interval></sampleInfo><sampleInfo><timestamp>2024-01-01T00:00:20Z</timestamp><interval>20</interval></sampleInfo><value xsi:type=\"PerfMetricIntSeries\"><id><counterId>2</counterId><instance></instance></id><value>10</value><value>20</value></value><value xsi:type=\"PerfMetricIntSeries\"><id><counterId>6</counterId><instance></instance></id><value>-1</value></value></returnval></QueryPerfResponse>");
        let p = parse_query_perf(x.as_bytes()).unwrap();
        assert_eq!(
            p[0].values,
            vec![PerfValue {
                counter_id: 2,
                instance: String::new(),
                value: 20
            }]
        );
        assert_eq!(p[0].timestamp.as_deref(), Some("2024-01-01T00:00:20Z"));
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_datetime_ns("2024-02-29T12:00:01.5Z"),
            Some(1_709_208_001_500_000_000)
        );
        assert_eq!(
            parse_datetime_ns("2024-02-29T12:00:01+00:00"),
            Some(1_709_208_001_000_000_000)
        );
        assert_eq!(parse_datetime_ns("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_datetime_ns("garbage"), None);
        assert_eq!(parse_datetime_ns("2024-01-01T00:00:00.x1Z"), None);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"not xml",
            b"<a><b></a>",
            b"<soapenv:Envelope><soapenv:Body>",
            b"<x/>",
            b"<a/><b/>",
            b"\xff\xfe<\x00",
        ] {
            assert!(parse_service_content(bad).is_err());
            assert!(parse_query_perf(bad).is_err());
            assert!(parse_retrieve_result(bad, "RetrievePropertiesExResponse").is_err());
        }
        let deep = "<a>".repeat(MAX_DEPTH + 5) + &"</a>".repeat(MAX_DEPTH + 5);
        assert!(parse_tree(deep.as_bytes()).unwrap_err().contains("deeper"));
        // Truncated recorded answer.
        assert!(parse_query_perf(&QUERY_PERF[..QUERY_PERF.len() / 2]).is_err());
        // Wrong response element.
        assert!(matches!(
            parse_login(SERVICE_CONTENT),
            Err(ResponseError::Malformed(_))
        ));
    }
}
