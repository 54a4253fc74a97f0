//! The changes that bring one observed link to its wanted state. Pure.

use std::fmt;

use crate::manager::desired::Wanted;
use crate::manager::links::LinkState;

/// One link operation, in the order [`diff`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Down,
    Rename { from: String, to: String },
    Mtu { from: u32, to: u32 },
    Up,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Down => f.write_str("set down"),
            Change::Rename { from, to } => write!(f, "rename {from} to {to}"),
            Change::Mtu { from, to } => write!(f, "MTU {from} to {to}"),
            Change::Up => f.write_str("set up"),
        }
    }
}

/// What differs between `link` and `wanted`, as the operations to perform in order: the
/// rename first, on the link as it is (Linux 6.2 and later rename an up link, kernel commit
/// bd039b5ea2a9; an older kernel answers EBUSY, and then [`rename_while_down`] applies),
/// then the MTU, then up if it is down. No operation takes the link down, so a change that
/// fails leaves an up link up.
pub fn diff(link: &LinkState, wanted: &Wanted) -> Vec<Change> {
    let rename = wanted.name.as_ref().filter(|name| **name != link.name);
    let mtu = wanted.mtu.filter(|&mtu| mtu != link.mtu);
    let mut changes = Vec::new();
    if let Some(to) = rename {
        changes.push(Change::Rename {
            from: link.name.clone(),
            to: to.clone(),
        });
    }
    if let Some(to) = mtu {
        changes.push(Change::Mtu { from: link.mtu, to });
    }
    if !link.up {
        changes.push(Change::Up);
    }
    changes
}

/// A rename for a kernel that renames only a link that is down (before Linux 6.2, which
/// answers EBUSY for an up link before it looks at the name): down, rename, up. The link is
/// brought up again whatever the rename's result.
pub fn rename_while_down(from: &str, to: &str) -> [Change; 3] {
    [
        Change::Down,
        Change::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        },
        Change::Up,
    ]
}

#[cfg(test)]
mod tests {
    use super::{Change, diff, rename_while_down};
    use crate::manager::desired::{EntryKey, Wanted};
    use crate::manager::links::LinkState;
    use crate::manager::mac::Mac;

    fn link(name: &str, mtu: u32, up: bool) -> LinkState {
        LinkState {
            index: 7,
            name: name.into(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            mtu,
            up,
        }
    }

    fn wanted(name: Option<&str>, mtu: Option<u32>) -> Wanted {
        Wanted {
            key: EntryKey {
                nodeeni: "n".into(),
                subnet_id: "s".into(),
            },
            eni_id: None,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            name: name.map(Into::into),
            mtu,
            dpdk: None,
            resource: None,
            pod_network: None,
        }
    }

    fn rename(from: &str, to: &str) -> Change {
        Change::Rename {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn every_combination_of_name_mtu_and_state() {
        let mtu = |from, to| Change::Mtu { from, to };
        let cases = [
            // A hot-plugged ENA: down, kernel name, default MTU.
            (
                link("ens6", 1500, false),
                wanted(Some("multus"), Some(9001)),
                vec![rename("ens6", "multus"), mtu(1500, 9001), Change::Up],
            ),
            // Up with the wrong name: renamed as it is, never taken down.
            (
                link("ens6", 9001, true),
                wanted(Some("multus"), Some(9001)),
                vec![rename("ens6", "multus")],
            ),
            (
                link("ens6", 1500, true),
                wanted(Some("multus"), Some(9001)),
                vec![rename("ens6", "multus"), mtu(1500, 9001)],
            ),
            // Drift: the MTU was set back; no need to go down.
            (
                link("multus", 1500, true),
                wanted(Some("multus"), Some(9001)),
                vec![mtu(1500, 9001)],
            ),
            // Drift: someone took it down.
            (
                link("multus", 9001, false),
                wanted(Some("multus"), Some(9001)),
                vec![Change::Up],
            ),
            // Nothing asked but up.
            (
                link("ens6", 1500, false),
                wanted(None, None),
                vec![Change::Up],
            ),
            // Already right: nothing to do.
            (
                link("multus", 9001, true),
                wanted(Some("multus"), Some(9001)),
                vec![],
            ),
            (link("ens6", 1500, true), wanted(None, None), vec![]),
        ];
        for (observed, want, expected) in cases {
            assert_eq!(diff(&observed, &want), expected, "{observed:?} -> {want:?}");
        }
    }

    #[test]
    fn changes_read_as_sentences() {
        let text: Vec<_> = diff(&link("ens6", 1500, true), &wanted(Some("m0"), Some(9001)))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text, ["rename ens6 to m0", "MTU 1500 to 9001"]);
        let text: Vec<_> = rename_while_down("ens6", "m0")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text, ["set down", "rename ens6 to m0", "set up"]);
    }
}
