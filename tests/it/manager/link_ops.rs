//! The netlink implementation of the link operations, in a throwaway namespace.

use multi_eni::manager::links::{LinkError, Links};
use multi_eni::manager::netlink::{self, LinkEvent};

use crate::support::netns::TestNetns;

#[tokio::test]
async fn operations_map_kernel_answers_to_domain_errors() {
    let ns = TestNetns::new();
    let (links, _) = netlink::open(Some(&ns.path())).unwrap();
    ns.add_link("one", "02:00:00:00:0b:01").await;
    ns.add_link("two", "02:00:00:00:0b:02").await;
    let one = links
        .link_by_mac("02:00:00:00:0b:01".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((one.name.as_str(), one.mtu, one.up), ("one", 1500, false));

    links.set_mtu(one.index, 9001).await.unwrap();
    links.rename(one.index, "renamed").await.unwrap();
    links.set_up(one.index).await.unwrap();
    let now = links.link(one.index).await.unwrap().unwrap();
    assert_eq!(
        (now.name.as_str(), now.mtu, now.up),
        ("renamed", 9001, true)
    );

    links.set_down(one.index).await.unwrap();
    let error = links.rename(one.index, "two").await.unwrap_err();
    assert!(
        matches!(&error, LinkError::NameTaken { name } if name == "two"),
        "{error:?}"
    );
    let error = links.rename(one.index, "bad/name").await.unwrap_err();
    assert!(matches!(error, LinkError::Refused { .. }), "{error:?}");
    assert!(!error.is_transient());

    ns.delete("renamed").await;
    assert_eq!(links.link(one.index).await.unwrap(), None);
    assert!(matches!(
        links.set_up(one.index).await,
        Err(LinkError::Gone)
    ));
}

#[tokio::test]
async fn notifications_report_links_appearing_changing_and_going() {
    let ns = TestNetns::new();
    let (_links, mut events) = netlink::open(Some(&ns.path())).unwrap();
    ns.add_link("watched", "02:00:00:00:0c:01").await;
    let appeared = loop {
        if let Some(LinkEvent::Changed(link)) = events.next().await
            && link.name == "watched"
        {
            break link;
        }
    };
    assert_eq!(appeared.mac.to_string(), "02:00:00:00:0c:01");
    ns.delete("watched").await;
    loop {
        if let Some(LinkEvent::Removed(link)) = events.next().await
            && link.index == appeared.index
        {
            break;
        }
    }
}
