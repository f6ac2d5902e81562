//! Addresses for simulated nodes and their pods, derived from the node's index so that
//! a restarted sim hands out the same ones: node `i` is `10.255.0.0 + i + 1`, and its
//! pods come from the server-assigned `spec.podCIDR` when there is one, else from
//! `10.(200 + i / 256).(i % 256).0/24`.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// The most nodes one sim can address: derived pod CIDRs use second octets 200..=254,
/// leaving 10.255.0.0/16 to the nodes themselves.
pub const MAX_NODES: usize = 55 * 256;

/// A node's InternalIP.
pub fn node_ip(index: usize) -> Ipv4Addr {
    // +1 keeps node 0 off the network address 10.255.0.0.
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 255, 0, 0)) + (index as u32 % 65_534) + 1)
}

/// An IPv4 pod network of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    network: u32,
    prefix_len: u8,
}

impl PodCidr {
    /// Parses `a.b.c.d/n`; `None` for anything else (IPv6 pod CIDRs fall back to the
    /// derived IPv4 one, which is enough for a node that runs nothing).
    pub fn parse(s: &str) -> Option<PodCidr> {
        let (ip, len) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix_len: u8 = len.parse().ok()?;
        if prefix_len > 32 {
            return None;
        }
        let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - prefix_len) };
        Some(PodCidr { network: u32::from(ip) & mask, prefix_len })
    }

    /// The /24 a node gets when the server assigned none.
    pub fn derived(index: usize) -> PodCidr {
        let index = index % MAX_NODES;
        let network = Ipv4Addr::new(10, 200 + (index / 256) as u8, (index % 256) as u8, 0);
        PodCidr { network: u32::from(network), prefix_len: 24 }
    }

    /// The addresses pods may get: all but the network, the gateway (`.1`, as the
    /// bridge CNI plugin takes it) and the broadcast address.
    fn pod_range(&self) -> std::ops::RangeInclusive<u32> {
        let size = 1u64 << (32 - u32::from(self.prefix_len));
        if size < 4 {
            #[allow(clippy::reversed_empty_ranges)] // deliberately empty: no room for pods
            return 1..=0;
        }
        self.network + 2..=self.network + (size - 2) as u32
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix_len == 0 { 0 } else { u32::MAX << (32 - self.prefix_len) };
        u32::from(ip) & mask == self.network
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix_len)
    }
}

/// The pod IPs handed out on one node, by pod UID.
#[derive(Debug, Default)]
pub struct NodeIps {
    by_uid: HashMap<String, Ipv4Addr>,
}

impl NodeIps {
    /// Records an address a pod already has (reported before a restart of the sim).
    pub fn claim(&mut self, uid: &str, ip: Ipv4Addr) {
        self.by_uid.entry(uid.to_string()).or_insert(ip);
    }

    /// The pod's address: the one it has, else the lowest free one in `cidr`.
    pub fn allocate(&mut self, uid: &str, cidr: PodCidr) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Some(*ip);
        }
        let used: HashSet<u32> = self.by_uid.values().map(|ip| u32::from(*ip)).collect();
        let free = cidr.pod_range().find(|a| !used.contains(a))?;
        let ip = Ipv4Addr::from(free);
        self.by_uid.insert(uid.to_string(), ip);
        Some(ip)
    }

    pub fn release(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }

    /// Forgets pods that are gone without us seeing them go (force-deleted elsewhere).
    pub fn retain(&mut self, mut alive: impl FnMut(&str) -> bool) {
        self.by_uid.retain(|uid, _| alive(uid));
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips_are_unique_and_skip_the_network_address() {
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 255, 0, 1));
        assert_eq!(node_ip(255), Ipv4Addr::new(10, 255, 1, 0));
        assert_eq!(node_ip(MAX_NODES - 1), Ipv4Addr::new(10, 255, 55, 0));
        let all: HashSet<_> = (0..MAX_NODES).map(node_ip).collect();
        assert_eq!(all.len(), MAX_NODES);
    }

    #[test]
    fn derived_cidrs_are_disjoint_and_below_the_node_network() {
        assert_eq!(PodCidr::derived(0).to_string(), "10.200.0.0/24");
        assert_eq!(PodCidr::derived(257).to_string(), "10.201.1.0/24");
        assert_eq!(PodCidr::derived(MAX_NODES - 1).to_string(), "10.254.255.0/24");
        let all: HashSet<_> = (0..MAX_NODES).map(|i| PodCidr::derived(i).to_string()).collect();
        assert_eq!(all.len(), MAX_NODES);
    }

    #[test]
    fn cidrs_parse_and_refuse_garbage() {
        assert_eq!(PodCidr::parse("10.42.3.7/24").unwrap().to_string(), "10.42.3.0/24");
        assert!(PodCidr::parse("10.42.3.0/24").unwrap().contains(Ipv4Addr::new(10, 42, 3, 200)));
        assert!(!PodCidr::parse("10.42.3.0/24").unwrap().contains(Ipv4Addr::new(10, 42, 4, 1)));
        for bad in ["", "10.42.3.0", "10.42.3.0/33", "fd00::/64", "x/24", "10.42.3.0/x"] {
            assert_eq!(PodCidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn allocation_is_stable_unique_and_bounded() {
        let cidr = PodCidr::parse("10.42.0.0/29").unwrap(); // .2 ..= .6: five pods
        let mut ips = NodeIps::default();
        let a = ips.allocate("a", cidr).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 42, 0, 2));
        assert_eq!(ips.allocate("a", cidr), Some(a), "a pod keeps its address");
        let rest: Vec<_> = ["b", "c", "d", "e"].iter().map(|u| ips.allocate(u, cidr).unwrap()).collect();
        assert_eq!(rest.last(), Some(&Ipv4Addr::new(10, 42, 0, 6)));
        assert_eq!(ips.allocate("f", cidr), None, "the range is exhausted");
        ips.release("c");
        assert_eq!(ips.allocate("f", cidr), Some(Ipv4Addr::new(10, 42, 0, 4)), "freed addresses are reused");
        ips.retain(|uid| uid != "a");
        assert_eq!(ips.len(), 4);
        assert_eq!(ips.allocate("g", cidr), Some(a));
    }

    #[test]
    fn claimed_addresses_are_not_handed_out_again() {
        let cidr = PodCidr::derived(0);
        let mut ips = NodeIps::default();
        ips.claim("old", Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(ips.allocate("new", cidr), Some(Ipv4Addr::new(10, 200, 0, 3)));
        assert!(PodCidr::parse("10.0.0.0/31").unwrap().pod_range().next().is_none());
    }
}
