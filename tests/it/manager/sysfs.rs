//! The sysfs side of DPDK binding that needs no PCI device: an interface without one, on
//! this machine's own sysfs. Binding, unbinding and giving devices back run against real
//! PCI devices in a node VM (`node_vm::dpdk`).

use multi_eni::manager::sysfs::{Settle, Sysfs};

#[test]
fn an_interface_without_a_pci_device_is_an_error_naming_the_fix() {
    let sysfs = Sysfs::new("/sys", Settle::default());
    let error = sysfs.pci_address("lo").unwrap_err();
    assert_eq!(error.label(), "no_pci_device_for_interface");
    assert!(error.to_string().contains("spec.dpdkPCIAddress"), "{error}");
}
