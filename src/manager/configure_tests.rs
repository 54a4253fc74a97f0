//! The rename of an up link on a kernel before Linux 6.2, which refuses it with EBUSY before
//! it looks at the name (net/core/dev.c `dev_change_name`; allowed since commit bd039b5ea2a9).
//! This machine's kernel renames up links, so that answer cannot be had from it: these tests
//! run [`configure`] over a model of the older kernel's rules. tests/it/manager/ runs it
//! against the real kernel.

use std::io;
use std::sync::Mutex;

use nix::errno::Errno;

use super::configure;
use crate::manager::desired::{EntryKey, Wanted};
use crate::manager::links::{LinkError, LinkState, Links};
use crate::manager::mac::Mac;

const OURS: u32 = 7;

/// Links as a kernel before 6.2 treats them; every call is logged.
struct OldKernel {
    links: Mutex<Vec<LinkState>>,
    calls: Mutex<Vec<String>>,
    /// The name is taken between the agent's check and its rename (another actor raced it).
    raced: bool,
}

impl OldKernel {
    fn new(ours_up: bool, other: &str, raced: bool) -> OldKernel {
        let link = |index, name: &str, up| LinkState {
            index,
            name: name.into(),
            mac: Mac([2, 0, 0, 0, 0, u8::try_from(index).unwrap()]),
            mtu: 1500,
            up,
        };
        OldKernel {
            links: Mutex::new(vec![link(OURS, "ens9", ours_up), link(8, other, true)]),
            calls: Mutex::default(),
            raced,
        }
    }

    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn ours(&self) -> LinkState {
        self.links.lock().unwrap()[0].clone()
    }

    fn change(&self, index: u32, f: impl FnOnce(&mut LinkState)) {
        let mut links = self.links.lock().unwrap();
        f(links.iter_mut().find(|l| l.index == index).unwrap());
    }
}

fn refused(errno: Errno) -> LinkError {
    LinkError::Refused {
        operation: "test".into(),
        source: io::Error::from_raw_os_error(errno as i32),
    }
}

impl Links for OldKernel {
    async fn links(&self) -> Result<Vec<LinkState>, LinkError> {
        Ok(self.links.lock().unwrap().clone())
    }

    async fn link(&self, index: u32) -> Result<Option<LinkState>, LinkError> {
        let links = self.links.lock().unwrap();
        Ok(links.iter().find(|l| l.index == index).cloned())
    }

    async fn set_down(&self, index: u32) -> Result<(), LinkError> {
        self.log("down".into());
        self.change(index, |l| l.up = false);
        Ok(())
    }

    async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        self.log("up".into());
        self.change(index, |l| l.up = true);
        Ok(())
    }

    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), LinkError> {
        self.log(format!("mtu {mtu}"));
        self.change(index, |l| l.mtu = mtu);
        Ok(())
    }

    async fn rename(&self, index: u32, name: &str) -> Result<(), LinkError> {
        let up = self.link(index).await?.unwrap().up;
        let taken = self.name_taken(name).await? || self.raced;
        let result = match (up, taken) {
            (true, _) => Err(refused(Errno::EBUSY)),
            (false, true) => Err(LinkError::NameTaken { name: name.into() }),
            (false, false) => {
                self.change(index, |l| l.name = name.into());
                Ok(())
            }
        };
        let outcome = match &result {
            Ok(()) => "ok",
            Err(error) if error.is_busy() => "EBUSY",
            Err(_) => "EEXIST",
        };
        self.log(format!("rename {name}: {outcome}"));
        result
    }

    async fn name_taken(&self, name: &str) -> Result<bool, LinkError> {
        Ok(self.links.lock().unwrap().iter().any(|l| l.name == name))
    }
}

fn wanted(name: &str) -> Wanted {
    Wanted {
        key: EntryKey {
            nodeeni: "n".into(),
            subnet_id: "s".into(),
        },
        eni_id: None,
        mac: Mac([2, 0, 0, 0, 0, 7]),
        name: Some(name.into()),
        mtu: Some(9001),
        dpdk: None,
        resource: None,
        pod_network: None,
    }
}

async fn run(kernel: &OldKernel, name: &str) -> (Vec<String>, Option<&'static str>) {
    let outcome = configure(kernel, &wanted(name), &kernel.ours(), false).await;
    let calls = kernel.calls.lock().unwrap().clone();
    (calls, outcome.problem.map(|p| p.label))
}

#[tokio::test]
async fn an_up_link_whose_name_is_taken_is_never_taken_down() {
    let kernel = OldKernel::new(true, "net-c", false);
    let (calls, problem) = run(&kernel, "net-c").await;
    assert_eq!(calls, ["rename net-c: EBUSY", "mtu 9001"]);
    assert_eq!(problem, Some("name_taken"));
    let link = kernel.ours();
    assert!(
        link.up && link.name == "ens9" && link.mtu == 9001,
        "{link:?}"
    );
}

#[tokio::test]
async fn an_up_link_is_taken_down_for_a_free_name_and_brought_up() {
    let kernel = OldKernel::new(true, "other", false);
    let (calls, problem) = run(&kernel, "net-c").await;
    assert_eq!(
        calls,
        [
            "rename net-c: EBUSY",
            "down",
            "rename net-c: ok",
            "up",
            "mtu 9001"
        ]
    );
    assert_eq!(problem, None);
    assert!(kernel.ours().up && kernel.ours().name == "net-c");
}

#[tokio::test]
async fn a_rename_that_fails_while_down_still_brings_the_link_up() {
    let kernel = OldKernel::new(true, "other", true);
    let (calls, problem) = run(&kernel, "net-c").await;
    assert_eq!(
        calls,
        [
            "rename net-c: EBUSY",
            "down",
            "rename net-c: EEXIST",
            "up",
            "mtu 9001"
        ]
    );
    assert_eq!(problem, Some("name_taken"));
    assert!(kernel.ours().up && kernel.ours().name == "ens9");
}

#[tokio::test]
async fn a_down_link_is_renamed_directly_then_brought_up() {
    let kernel = OldKernel::new(false, "other", false);
    let (calls, problem) = run(&kernel, "net-c").await;
    assert_eq!(calls, ["rename net-c: ok", "mtu 9001", "up"]);
    assert_eq!(problem, None);
}
