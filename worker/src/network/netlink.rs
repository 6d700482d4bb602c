//! The links and addresses of the bridge network, through rtnetlink.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

/// The index a container's `eth0` gets in its own namespace (its loopback is 1).
const ETH0: u32 = 2;

fn err(what: &str) -> impl Fn(rtnetlink::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A connection to the kernel's routing netlink in the caller's network namespace, driven on
/// the current tokio runtime.
pub fn connect() -> Result<Handle, String> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("cannot open a netlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A connection in the network namespace of process `pid`: the socket is made there (the
/// calling thread enters the namespace for that, and comes back).
pub fn connect_in(pid: i32) -> Result<Handle, String> {
    use nix::sched::{setns, CloneFlags};
    let home = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
    let there = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("cannot open the container's network namespace: {e}"))?;
    setns(there.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot enter the container's network namespace: {e}"))?;
    let made = rtnetlink::new_connection();
    if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
        // A worker thread left in a container's namespace would wire the next one wrong.
        tracing::error!("cannot return to the worker's network namespace: {e}");
        std::process::abort();
    }
    let (conn, handle, _) = made.map_err(|e| format!("cannot open a netlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of link `name`, if it exists.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, String> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(format!("cannot look up link {name}: {e}")),
    }
}

/// Makes bridge `name` with address `gateway/prefix`, up. Returns its index.
pub async fn create_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<u32, String> {
    h.link()
        .add(rtnetlink::LinkMessageBuilder::<LinkBridge>::new(name).build())
        .execute()
        .await
        .map_err(err(&format!("cannot create bridge {name}")))?;
    let index = index_of(h, name)
        .await?
        .ok_or_else(|| format!("bridge {name} vanished as it was made"))?;
    h.address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await
        .map_err(err(&format!("cannot give bridge {name} its address")))?;
    // A bridge without ports has a carrier as soon as it is up, and the kernel applies the
    // address mode after the flags: the mode goes first, on its own.
    ipv4_only(h, LinkUnspec::new_with_index(index), false)
        .await
        .map_err(err(&format!("cannot turn IPv6 off on bridge {name}")))?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(err(&format!("cannot bring bridge {name} up")))?;
    Ok(index)
}

/// Gives a host-side link no IPv6 address of its own, bringing it `up` in the same message
/// (the kernel takes the address mode only once the link exists, and applies it after the
/// flags: fine for a veth, whose carrier comes only once its peer is up). A run's network carries IPv4 only, and a
/// link-local address the kernel would give each bridge and port is one more change of the host's
/// addresses: every one makes Chromium on the host drop the requests it has in flight
/// (`ERR_NETWORK_CHANGED`), the UI's among them. A host without IPv6 refuses the mode: the link
/// just comes up.
async fn ipv4_only(
    h: &Handle,
    link: rtnetlink::LinkMessageBuilder<LinkUnspec>,
    up: bool,
) -> Result<(), rtnetlink::Error> {
    use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode};
    let no_ipv6 =
        LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )])]);
    let plain = if up { link.up() } else { link }.build();
    let mut message = plain.clone();
    message.attributes.push(no_ipv6);
    match h.link().set(message).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EAFNOSUPPORT => {
            if up {
                h.link().set(plain).execute().await
            } else {
                Ok(())
            }
        }
        r => r,
    }
}

/// Deletes link `name`; one already gone is no error.
pub async fn delete(h: &Handle, name: &str) -> Result<(), String> {
    let Some(index) = index_of(h, name).await? else {
        return Ok(());
    };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        Err(e) => Err(format!("cannot delete link {name}: {e}")),
    }
}

/// The names of the links whose name starts with `prefix`.
pub async fn links_named(h: &Handle, prefix: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s
        .try_next()
        .await
        .map_err(err("cannot list the host's links"))?
    {
        for a in &m.attributes {
            if let LinkAttribute::IfName(n) = a {
                if n.starts_with(prefix) {
                    out.push(n.clone());
                }
            }
        }
    }
    Ok(out)
}

/// A container's end of the network, as it is wired.
pub struct Plug<'a> {
    /// The host's end of the pair, a port of the bridge.
    pub veth: &'a str,
    pub bridge: u32,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Plugs the container whose first process is `pid` into its bridge: a veth pair, the host's
/// end on the bridge, the other made straight in the container's namespace as `eth0`, given its
/// address and a default route through the bridge.
pub async fn plug(host: &Handle, inside: &Handle, pid: i32, p: &Plug<'_>) -> Result<(), String> {
    use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
    // The peer is made straight in the container's namespace, with a known index.
    let peer = LinkUnspec::new_with_name("eth0")
        .setns_by_pid(pid as u32)
        .index(ETH0)
        .build();
    let veth = rtnetlink::LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(p.veth.to_string())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(p.bridge)
        .build();
    host.link()
        .add(veth)
        .execute()
        .await
        .map_err(err("cannot create the container's veth pair"))?;
    ipv4_only(host, LinkUnspec::new_with_name(p.veth), true)
        .await
        .map_err(err("cannot bring the container's port up"))?;
    inside
        .address()
        .add(ETH0, IpAddr::V4(p.address), p.prefix)
        .execute()
        .await
        .map_err(err("cannot give eth0 its address"))?;
    inside
        .link()
        .set(LinkUnspec::new_with_index(ETH0).up().build())
        .execute()
        .await
        .map_err(err("cannot bring eth0 up"))?;
    inside
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(p.gateway)
                .output_interface(ETH0)
                .build(),
        )
        .execute()
        .await
        .map_err(err("cannot add the default route"))?;
    Ok(())
}
