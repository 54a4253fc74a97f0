//! The network limits of instance types, as `DescribeInstanceTypes` reports them in AWS.

pub struct InstanceType {
    pub name: &'static str,
    pub max_interfaces: u32,
    pub network_cards: u32,
    pub ipv4_per_interface: u32,
    pub performance: &'static str,
    /// `nitro` or `xen` (DescribeInstanceTypes `Hypervisor`): prefixes need `nitro`.
    pub hypervisor: &'static str,
}

impl InstanceType {
    /// Every listed type spreads its interfaces evenly over its cards.
    pub fn per_card(&self) -> u32 {
        self.max_interfaces / self.network_cards
    }
}

const fn single(
    name: &'static str,
    max_interfaces: u32,
    ipv4_per_interface: u32,
    performance: &'static str,
) -> InstanceType {
    InstanceType {
        name,
        max_interfaces,
        network_cards: 1,
        ipv4_per_interface,
        performance,
        hypervisor: "nitro",
    }
}

/// A previous-generation type on the Xen hypervisor: no prefix delegation.
const fn xen(
    name: &'static str,
    max_interfaces: u32,
    ipv4_per_interface: u32,
    performance: &'static str,
) -> InstanceType {
    InstanceType {
        hypervisor: "xen",
        ..single(name, max_interfaces, ipv4_per_interface, performance)
    }
}

const TYPES: &[InstanceType] = &[
    single("t3.nano", 2, 2, "Up to 5 Gigabit"),
    single("t3.micro", 2, 2, "Up to 5 Gigabit"),
    single("t3.small", 3, 4, "Up to 5 Gigabit"),
    single("t3.medium", 3, 6, "Up to 5 Gigabit"),
    single("t3.large", 3, 12, "Up to 5 Gigabit"),
    single("t3.xlarge", 4, 15, "Up to 5 Gigabit"),
    single("t3.2xlarge", 4, 15, "Up to 5 Gigabit"),
    single("m5.large", 3, 10, "Up to 10 Gigabit"),
    single("m5.xlarge", 4, 15, "Up to 10 Gigabit"),
    single("m5.2xlarge", 4, 15, "Up to 10 Gigabit"),
    single("m5.4xlarge", 8, 30, "Up to 10 Gigabit"),
    single("m5.8xlarge", 8, 30, "10 Gigabit"),
    single("m5.12xlarge", 8, 30, "12 Gigabit"),
    single("m5.16xlarge", 15, 50, "20 Gigabit"),
    single("m5.24xlarge", 15, 50, "25 Gigabit"),
    single("c5.large", 3, 10, "Up to 10 Gigabit"),
    single("c5.xlarge", 4, 15, "Up to 10 Gigabit"),
    single("c5.2xlarge", 4, 15, "Up to 10 Gigabit"),
    single("c5.4xlarge", 8, 30, "Up to 10 Gigabit"),
    single("c5.9xlarge", 8, 30, "12 Gigabit"),
    single("c5.12xlarge", 8, 30, "12 Gigabit"),
    single("c5.18xlarge", 15, 50, "25 Gigabit"),
    single("c5.24xlarge", 15, 50, "25 Gigabit"),
    single("c5n.large", 3, 10, "Up to 25 Gigabit"),
    single("c5n.xlarge", 4, 15, "Up to 25 Gigabit"),
    single("c5n.2xlarge", 4, 15, "Up to 25 Gigabit"),
    single("c5n.4xlarge", 8, 30, "Up to 25 Gigabit"),
    single("c5n.9xlarge", 8, 30, "50 Gigabit"),
    single("c5n.18xlarge", 15, 50, "100 Gigabit"),
    InstanceType {
        name: "p4d.24xlarge",
        max_interfaces: 60,
        network_cards: 4,
        ipv4_per_interface: 50,
        performance: "4x 100 Gigabit",
        hypervisor: "nitro",
    },
    xen("t2.medium", 3, 6, "Low to Moderate"),
    xen("m4.large", 2, 10, "Moderate"),
    xen("c4.large", 3, 10, "Moderate"),
];

pub fn find(name: &str) -> Option<&'static InstanceType> {
    TYPES.iter().find(|t| t.name == name)
}

pub fn all() -> &'static [InstanceType] {
    TYPES
}
