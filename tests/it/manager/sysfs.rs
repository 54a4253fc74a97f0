//! The sysfs side of DPDK binding, against a tree that behaves like the kernel's: the
//! order of the steps, and giving the device back.

use std::time::Duration;

use multi_eni::manager::sysfs::{Settle, Sysfs};

use crate::support::control_plane::wait_for;
use crate::support::fake_sysfs::FakeSysfs;

const PCI: &str = "0000:00:06.0";

/// Steps settle within 2 s (the fake kernel acts every millisecond or so).
pub fn settle() -> Settle {
    Settle {
        interval: Duration::from_millis(2),
        attempts: 1000,
    }
}

#[tokio::test]
async fn binding_overrides_unbinds_and_binds_and_restoring_gives_the_device_back() {
    let sys = FakeSysfs::new(&["ena", "vfio-pci"]);
    sys.add_device(PCI, "ena", Some("eth1"));
    let sysfs = Sysfs::new(sys.root(), settle());
    assert_eq!(sysfs.pci_address("eth1").unwrap(), PCI);
    assert_eq!(sysfs.driver(PCI).unwrap().as_deref(), Some("ena"));

    sysfs.bind(PCI, "vfio-pci").await.unwrap();
    assert_eq!(
        sys.log(),
        [
            "unbind 0000:00:06.0 from ena",
            "bind 0000:00:06.0 to vfio-pci (driver_override=vfio-pci)"
        ]
    );
    sys.clear_log();
    sysfs.bind(PCI, "vfio-pci").await.unwrap();
    assert!(
        sys.log().is_empty(),
        "binding again did something: {:?}",
        sys.log()
    );

    sysfs.restore(PCI, Some("ena")).await.unwrap();
    assert_eq!(
        sys.log(),
        [
            "unbind 0000:00:06.0 from vfio-pci",
            "bind 0000:00:06.0 to ena (driver_override=(null))"
        ]
    );
    assert_eq!(sys.driver(PCI).as_deref(), Some("ena"));

    // Without a known original driver, the kernel chooses (drivers_probe).
    sysfs.bind(PCI, "vfio-pci").await.unwrap();
    sys.clear_log();
    sysfs.restore(PCI, None).await.unwrap();
    wait_for("the kernel to probe", || async {
        sys.driver(PCI).as_deref() == Some("ena")
    })
    .await;
    assert_eq!(
        sys.log(),
        [
            "unbind 0000:00:06.0 from vfio-pci",
            "bind 0000:00:06.0 to ena (driver_override=(null))"
        ]
    );
}

#[tokio::test]
async fn a_driver_that_is_not_loaded_is_an_error_naming_the_fix_and_changes_nothing() {
    let sys = FakeSysfs::new(&["ena"]);
    sys.add_device(PCI, "ena", Some("eth1"));
    let sysfs = Sysfs::new(sys.root(), settle());
    let error = sysfs.bind(PCI, "igb_uio").await.unwrap_err();
    assert_eq!(error.label(), "driver_not_loaded");
    let message = error.to_string();
    assert!(
        message.contains("modprobe igb_uio") && message.contains("spec.dpdkDriver"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(sys.log().is_empty(), "{:?}", sys.log());
    assert_eq!(sys.driver(PCI).as_deref(), Some("ena"));
    assert!(
        sysfs
            .pci_address("lo")
            .unwrap_err()
            .to_string()
            .contains("spec.dpdkPCIAddress")
    );
}
