//! The built-in object sets, with the OIDs, types and units of their MIB modules:
//!
//! - SNMPv2-MIB `system` group (RFC 3418 §2): `scalars: [system]`;
//! - HOST-RESOURCES-MIB `hrSystem` group, `hrStorageTable`, `hrProcessorTable`
//!   (RFC 2790): `scalars: [hrSystem]`, `tables: [hrStorageTable, hrProcessorTable]`;
//! - IF-MIB `ifTable` and `ifXTable` (RFC 2863): `tables: [ifTable, ifXTable]`.
//!
//! Metric names are the MIB object names (as the Prometheus snmp_exporter reports
//! them), so a dashboard can be written straight from the MIB. Counter32/Counter64
//! objects become cumulative monotonic sums, Gauge32/INTEGER objects gauges,
//! TimeTicks gauges in seconds, and text objects "info" gauges of value 1 with the
//! text in an attribute named after the object. Some text columns (`ifDescr`,
//! `ifName`, `hrStorageDescr`, `hrStorageType`) are not metrics of their own but
//! attributes of every point of their row.

/// How an object is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjKind {
    /// Counter32/Counter64: a cumulative monotonic sum.
    Counter,
    /// Gauge32, Integer32, enumerations: a gauge.
    Gauge,
    /// TimeTicks: a gauge in seconds (hundredths / 100).
    Seconds,
    /// Text: a gauge of value 1 with the text in an attribute of the object's name.
    Info,
    /// Text that labels every point of its table row instead of being a metric.
    Label,
}

/// How an OCTET STRING is turned into attribute text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    /// UTF-8 text when it is printable, else colon-separated hex.
    Text,
    /// Always colon-separated lower-case hex (`PhysAddress`).
    Hex,
}

/// One MIB object: a scalar of a group or a column of a table.
#[derive(Debug)]
pub struct Object {
    /// Sub-identifier below the group or table entry.
    pub sub: u32,
    /// MIB object name, used as the metric (or attribute) name.
    pub name: &'static str,
    /// How it is reported.
    pub kind: ObjKind,
    /// UCUM unit.
    pub unit: &'static str,
    /// Description from the MIB, shortened.
    pub description: &'static str,
    /// Text rendering of OCTET STRING values.
    pub render: Render,
}

const fn obj(
    sub: u32,
    name: &'static str,
    kind: ObjKind,
    unit: &'static str,
    description: &'static str,
) -> Object {
    Object {
        sub,
        name,
        kind,
        unit,
        description,
        render: Render::Text,
    }
}

/// A group of scalars (`<base>.<sub>.0`), fetched with one GET.
#[derive(Debug)]
pub struct ScalarGroup {
    /// Config name.
    pub name: &'static str,
    /// OID of the group.
    pub base: &'static [u32],
    /// The scalars.
    pub objects: &'static [Object],
}

/// An attribute taken from a column of another table with the same index (ifName
/// on ifTable rows, ifDescr on ifXTable rows).
#[derive(Debug)]
pub struct ForeignLabel {
    /// Attribute name.
    pub name: &'static str,
    /// The column's OID.
    pub column: &'static [u32],
}

/// A conceptual table, walked with GETBULK (GETNEXT for SNMPv1).
#[derive(Debug)]
pub struct TableDef {
    /// Config name.
    pub name: &'static str,
    /// OID of the table's entry (`...Entry`, columns are `<entry>.<sub>`).
    pub entry: &'static [u32],
    /// Attribute name(s) of the instance index arcs.
    pub index_labels: &'static [&'static str],
    /// Walk the whole entry in one pass (true), or each column of `columns` alone
    /// (false, for tables where most columns are not wanted).
    pub walk_entry: bool,
    /// The columns reported.
    pub columns: &'static [Object],
    /// Attributes from other tables.
    pub foreign_labels: &'static [ForeignLabel],
}

use ObjKind::*;

const IF_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
const IF_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];

/// The scalar groups.
pub static SCALAR_GROUPS: [ScalarGroup; 2] = [
    ScalarGroup {
        name: "system",
        base: &[1, 3, 6, 1, 2, 1, 1],
        objects: &[
            obj(1, "sysDescr", Info, "1", "A textual description of the entity."),
            obj(2, "sysObjectID", Info, "1", "The vendor's authoritative identification of the network management subsystem."),
            obj(3, "sysUpTime", Seconds, "s", "Time since the network management portion of the system was last re-initialized."),
            obj(4, "sysContact", Info, "1", "The contact person for this managed node."),
            obj(5, "sysName", Info, "1", "An administratively-assigned name for this managed node."),
            obj(6, "sysLocation", Info, "1", "The physical location of this node."),
            obj(7, "sysServices", Gauge, "1", "A value which indicates the set of services that this entity may potentially offer."),
        ],
    },
    ScalarGroup {
        name: "hrSystem",
        base: &[1, 3, 6, 1, 2, 1, 25, 1],
        objects: &[
            obj(1, "hrSystemUptime", Seconds, "s", "Time since this host was last initialized."),
            obj(5, "hrSystemNumUsers", Gauge, "{user}", "The number of user sessions for which this host is storing state information."),
            obj(6, "hrSystemProcesses", Gauge, "{process}", "The number of process contexts currently loaded or running on this system."),
            obj(7, "hrSystemMaxProcesses", Gauge, "{process}", "The maximum number of process contexts this system can support (0: no fixed maximum)."),
        ],
    },
];

/// The tables.
pub static TABLES: [TableDef; 4] = [
    TableDef {
        name: "ifTable",
        entry: &[1, 3, 6, 1, 2, 1, 2, 2, 1],
        index_labels: &["ifIndex"],
        walk_entry: true,
        columns: &[
            obj(2, "ifDescr", Label, "1", "A textual string containing information about the interface."),
            obj(3, "ifType", Gauge, "1", "The type of interface (IANAifType)."),
            obj(4, "ifMtu", Gauge, "By", "The size of the largest packet which can be sent/received on the interface."),
            obj(5, "ifSpeed", Gauge, "bit/s", "An estimate of the interface's current bandwidth in bits per second."),
            Object {
                render: Render::Hex,
                ..obj(6, "ifPhysAddress", Info, "1", "The interface's address at its protocol sub-layer.")
            },
            obj(7, "ifAdminStatus", Gauge, "1", "The desired state of the interface: 1 up, 2 down, 3 testing."),
            obj(8, "ifOperStatus", Gauge, "1", "The current operational state of the interface: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown."),
            obj(9, "ifLastChange", Seconds, "s", "The value of sysUpTime when the interface entered its current operational state."),
            obj(10, "ifInOctets", Counter, "By", "The total number of octets received on the interface, including framing characters."),
            obj(11, "ifInUcastPkts", Counter, "{packet}", "The number of unicast packets delivered to a higher-layer protocol."),
            obj(12, "ifInNUcastPkts", Counter, "{packet}", "The number of non-unicast packets delivered to a higher-layer protocol (deprecated)."),
            obj(13, "ifInDiscards", Counter, "{packet}", "The number of inbound packets discarded though no errors were detected."),
            obj(14, "ifInErrors", Counter, "{packet}", "The number of inbound packets that contained errors."),
            obj(15, "ifInUnknownProtos", Counter, "{packet}", "The number of packets received for an unknown or unsupported protocol."),
            obj(16, "ifOutOctets", Counter, "By", "The total number of octets transmitted out of the interface, including framing characters."),
            obj(17, "ifOutUcastPkts", Counter, "{packet}", "The total number of unicast packets that higher-level protocols requested be transmitted."),
            obj(18, "ifOutNUcastPkts", Counter, "{packet}", "The total number of non-unicast packets requested to be transmitted (deprecated)."),
            obj(19, "ifOutDiscards", Counter, "{packet}", "The number of outbound packets discarded though no errors were detected."),
            obj(20, "ifOutErrors", Counter, "{packet}", "The number of outbound packets that could not be transmitted because of errors."),
            obj(21, "ifOutQLen", Gauge, "{packet}", "The length of the output packet queue (deprecated)."),
        ],
        foreign_labels: &[ForeignLabel {
            name: "ifName",
            column: IF_NAME,
        }],
    },
    TableDef {
        name: "ifXTable",
        entry: &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1],
        index_labels: &["ifIndex"],
        walk_entry: true,
        columns: &[
            obj(1, "ifName", Label, "1", "The textual name of the interface."),
            obj(2, "ifInMulticastPkts", Counter, "{packet}", "The number of multicast packets delivered to a higher-layer protocol."),
            obj(3, "ifInBroadcastPkts", Counter, "{packet}", "The number of broadcast packets delivered to a higher-layer protocol."),
            obj(4, "ifOutMulticastPkts", Counter, "{packet}", "The total number of multicast packets requested to be transmitted."),
            obj(5, "ifOutBroadcastPkts", Counter, "{packet}", "The total number of broadcast packets requested to be transmitted."),
            obj(6, "ifHCInOctets", Counter, "By", "The total number of octets received on the interface (64-bit)."),
            obj(7, "ifHCInUcastPkts", Counter, "{packet}", "The number of unicast packets delivered to a higher-layer protocol (64-bit)."),
            obj(8, "ifHCInMulticastPkts", Counter, "{packet}", "The number of multicast packets delivered to a higher-layer protocol (64-bit)."),
            obj(9, "ifHCInBroadcastPkts", Counter, "{packet}", "The number of broadcast packets delivered to a higher-layer protocol (64-bit)."),
            obj(10, "ifHCOutOctets", Counter, "By", "The total number of octets transmitted out of the interface (64-bit)."),
            obj(11, "ifHCOutUcastPkts", Counter, "{packet}", "The total number of unicast packets requested to be transmitted (64-bit)."),
            obj(12, "ifHCOutMulticastPkts", Counter, "{packet}", "The total number of multicast packets requested to be transmitted (64-bit)."),
            obj(13, "ifHCOutBroadcastPkts", Counter, "{packet}", "The total number of broadcast packets requested to be transmitted (64-bit)."),
            obj(14, "ifLinkUpDownTrapEnable", Gauge, "1", "Whether linkUp/linkDown traps are generated: 1 enabled, 2 disabled."),
            obj(15, "ifHighSpeed", Gauge, "Mbit/s", "An estimate of the interface's current bandwidth in units of 1,000,000 bits per second."),
            obj(16, "ifPromiscuousMode", Gauge, "1", "1 (true) when the interface accepts all packets, 2 (false) otherwise."),
            obj(17, "ifConnectorPresent", Gauge, "1", "1 (true) when the interface sublayer has a physical connector, 2 (false) otherwise."),
            obj(18, "ifAlias", Info, "1", "An 'alias' name for the interface as specified by a network manager."),
            obj(19, "ifCounterDiscontinuityTime", Seconds, "s", "The value of sysUpTime at the last discontinuity of any of the interface's counters."),
        ],
        foreign_labels: &[ForeignLabel {
            name: "ifDescr",
            column: IF_DESCR,
        }],
    },
    TableDef {
        name: "hrStorageTable",
        entry: &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1],
        index_labels: &["hrStorageIndex"],
        walk_entry: true,
        columns: &[
            obj(2, "hrStorageType", Label, "1", "The type of storage (an OID of hrStorageTypes)."),
            obj(3, "hrStorageDescr", Label, "1", "A description of the type and instance of the storage."),
            obj(4, "hrStorageAllocationUnits", Gauge, "By", "The size, in bytes, of the data objects allocated from this pool."),
            obj(5, "hrStorageSize", Gauge, "{allocation_unit}", "The size of the storage, in units of hrStorageAllocationUnits."),
            obj(6, "hrStorageUsed", Gauge, "{allocation_unit}", "The amount of the storage allocated, in units of hrStorageAllocationUnits."),
            obj(7, "hrStorageAllocationFailures", Counter, "{failure}", "The number of requests for storage that could not be honored for lack of space."),
        ],
        foreign_labels: &[],
    },
    TableDef {
        name: "hrProcessorTable",
        entry: &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1],
        index_labels: &["hrDeviceIndex"],
        walk_entry: false,
        columns: &[obj(
            2,
            "hrProcessorLoad",
            Gauge,
            "%",
            "The average percentage of time this processor was not idle over the last minute.",
        )],
        foreign_labels: &[],
    },
];

/// The scalar group of a config name.
pub fn scalar_group(name: &str) -> Option<&'static ScalarGroup> {
    SCALAR_GROUPS.iter().find(|g| g.name == name)
}

/// The table of a config name.
pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

/// Name of the metric saying whether a target answered (1) or not (0).
pub const UP_METRIC: &str = "snmp.up";
/// Name of the metric with each target's collection time.
pub const DURATION_METRIC: &str = "snmp.collect.duration";

/// Every metric name the built-in sets can produce (user-defined objects may not
/// reuse one).
pub fn builtin_metric_names() -> impl Iterator<Item = &'static str> {
    SCALAR_GROUPS
        .iter()
        .flat_map(|g| g.objects.iter())
        .chain(TABLES.iter().flat_map(|t| t.columns.iter()))
        .filter(|o| o.kind != Label)
        .map(|o| o.name)
        .chain([UP_METRIC, DURATION_METRIC])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_subs_increase() {
        let names: Vec<&str> = builtin_metric_names().collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for t in TABLES.iter() {
            assert!(
                t.columns.windows(2).all(|w| w[0].sub < w[1].sub),
                "{}",
                t.name
            );
        }
        for g in SCALAR_GROUPS.iter() {
            assert!(
                g.objects.windows(2).all(|w| w[0].sub < w[1].sub),
                "{}",
                g.name
            );
        }
        assert!(scalar_group("system").is_some() && table("ifXTable").is_some());
        assert!(table("nope").is_none());
    }
}
