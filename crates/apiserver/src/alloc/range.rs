//! The address and port ranges Services draw from, and a bitmap of what is taken.
//!
//! Dynamic picks follow upstream's "static/dynamic band" (KEP-3070): the first
//! `offset` values of a range are left to requests for a specific value (the
//! `kubernetes` Service takes the first address, DNS the tenth), and automatic
//! allocation picks at random from the rest, falling back to the low band only when
//! the upper one is full.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("invalid CIDR address: {0}")]
    BadCidr(String),
    #[error("invalid port range {0:?}: want BASE-END, e.g. 30000-32767")]
    BadPortRange(String),
}

/// The service CIDR: every address but the network address (and, for IPv4, the
/// broadcast address) may be handed out; IPv6 ranges are capped at 65536 addresses
/// as upstream's bitmap is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
    /// The first usable address, as a number.
    base: u128,
    /// How many addresses may be handed out.
    size: usize,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl IpRange {
    pub fn parse(cidr: &str) -> Result<IpRange, RangeError> {
        let bad = || RangeError::BadCidr(cidr.to_string());
        let (ip, bits) = cidr.trim().split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = bits.parse().map_err(|_| bad())?;
        let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
        if u32::from(prefix) > width {
            return Err(bad());
        }
        let host_bits = width - u32::from(prefix);
        let mask = if host_bits >= 128 { 0 } else { !((1u128 << host_bits) - 1) };
        let network_num = to_u128(ip) & mask;
        let network = match ip {
            IpAddr::V4(_) => IpAddr::V4((network_num as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(network_num.into()),
        };
        let total: u128 = if host_bits >= 127 { u128::MAX } else { 1u128 << host_bits };
        let mut size = total.saturating_sub(1); // never the network address
        if ip.is_ipv4() {
            size = size.saturating_sub(1); // nor the broadcast address
        } else {
            size = size.min(65536);
        }
        Ok(IpRange { network, prefix, base: network_num + 1, size: size as usize })
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    /// `"IPv4"` or `"IPv6"`, as `spec.ipFamilies` names it.
    pub fn family(&self) -> &'static str {
        if self.is_ipv4() { "IPv4" } else { "IPv6" }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The offset of an address that may be handed out.
    pub fn offset_of(&self, ip: IpAddr) -> Option<usize> {
        if ip.is_ipv4() != self.is_ipv4() {
            return None;
        }
        let n = to_u128(ip);
        let off = n.checked_sub(self.base)?;
        (off < self.size as u128).then_some(off as usize)
    }

    pub fn at(&self, offset: usize) -> IpAddr {
        let n = self.base + offset as u128;
        if self.is_ipv4() { IpAddr::V4((n as u32).into()) } else { IpAddr::V6(n.into()) }
    }

    /// The `n`th address of the range counting the network address as 0: the
    /// `kubernetes` Service has the first, cluster DNS by convention the tenth.
    pub fn nth(&self, n: usize) -> Option<IpAddr> {
        (n >= 1 && n <= self.size).then(|| self.at(n - 1))
    }

    /// Upstream's static band: `min(max(16, size/16), 256)`, or none for tiny ranges.
    pub fn static_band(&self) -> usize {
        let total = self.size.saturating_add(2);
        if total <= 16 { 0 } else { (total / 16).clamp(16, 256) }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The NodePort range, `BASE-END` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    pub end: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange, RangeError> {
        let bad = || RangeError::BadPortRange(s.to_string());
        let s = s.trim();
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            // Upstream's "BASE+SIZE" form is rare; a single port is a range of one.
            None => (s, s),
        };
        let base: u16 = a.parse().map_err(|_| bad())?;
        let end: u16 = b.parse().map_err(|_| bad())?;
        if base == 0 || end < base {
            return Err(bad());
        }
        Ok(PortRange { base, end })
    }

    pub fn size(&self) -> usize {
        usize::from(self.end - self.base) + 1
    }

    pub fn offset_of(&self, port: i64) -> Option<usize> {
        (i64::from(self.base)..=i64::from(self.end)).contains(&port).then(|| (port - i64::from(self.base)) as usize)
    }

    pub fn at(&self, offset: usize) -> u16 {
        self.base + offset as u16
    }

    /// Upstream's static band for ports: `min(max(16, size/32), 128)`.
    pub fn static_band(&self) -> usize {
        let size = self.size();
        if size <= 16 { 0 } else { (size / 32).clamp(16, 128) }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, self.end)
    }
}

/// Which offsets of a range are taken.
#[derive(Debug, Clone)]
pub struct Bitmap {
    words: Vec<u64>,
    size: usize,
    used: usize,
}

impl Bitmap {
    pub fn new(size: usize) -> Bitmap {
        Bitmap { words: vec![0; size.div_ceil(64)], size, used: 0 }
    }

    pub fn has(&self, i: usize) -> bool {
        i < self.size && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Marks `i` taken; false if it was already (or is outside the range).
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.size || self.has(i) {
            return false;
        }
        self.words[i / 64] |= 1 << (i % 64);
        self.used += 1;
        true
    }

    pub fn clear(&mut self, i: usize) {
        if self.has(i) {
            self.words[i / 64] &= !(1 << (i % 64));
            self.used -= 1;
        }
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn free(&self) -> usize {
        self.size - self.used
    }

    /// A free offset: from a random start in `[band, size)`, scanning forward and
    /// wrapping; then likewise in `[0, band)`. `None` when everything is taken.
    pub fn pick(&self, band: usize, random: u64) -> Option<usize> {
        if self.used >= self.size {
            return None;
        }
        let band = band.min(self.size);
        for (lo, hi) in [(band, self.size), (0, band)] {
            let span = hi - lo;
            if span == 0 {
                continue;
            }
            let start = (random % span as u64) as usize;
            for i in 0..span {
                let at = lo + (start + i) % span;
                if !self.has(at) {
                    return Some(at);
                }
            }
        }
        None
    }
}

/// A random number from the system's generator.
pub fn random() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap_or_default();
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_ranges_skip_the_network_and_broadcast_addresses() {
        let r = IpRange::parse("10.43.0.0/16").unwrap();
        assert_eq!(r.to_string(), "10.43.0.0/16");
        assert_eq!(r.size(), 65534);
        assert_eq!(r.nth(1).unwrap().to_string(), "10.43.0.1");
        assert_eq!(r.nth(10).unwrap().to_string(), "10.43.0.10");
        assert_eq!(r.offset_of("10.43.0.0".parse().unwrap()), None);
        assert_eq!(r.offset_of("10.43.255.255".parse().unwrap()), None);
        assert_eq!(r.offset_of("10.43.255.254".parse().unwrap()), Some(65533));
        assert_eq!(r.offset_of("10.44.0.1".parse().unwrap()), None);
        assert_eq!(r.offset_of("fd00::1".parse().unwrap()), None);
        assert_eq!(r.static_band(), 256);
        // A host address in the CIDR names its network.
        assert_eq!(IpRange::parse("10.43.7.9/16").unwrap().to_string(), "10.43.0.0/16");
        assert_eq!(IpRange::parse("10.0.0.0/24").unwrap().static_band(), 16);
        assert_eq!(IpRange::parse("10.0.0.0/28").unwrap().static_band(), 0);
        assert!(IpRange::parse("10.0.0.0").is_err());
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("nonsense/8").is_err());
    }

    #[test]
    fn ipv6_ranges_are_capped() {
        let r = IpRange::parse("fd00:43::/108").unwrap();
        assert_eq!(r.size(), 65536);
        assert_eq!(r.family(), "IPv6");
        assert_eq!(r.nth(1).unwrap().to_string(), "fd00:43::1");
    }

    #[test]
    fn port_ranges() {
        let p = PortRange::parse("30000-32767").unwrap();
        assert_eq!(p.size(), 2768);
        assert_eq!(p.static_band(), 86);
        assert_eq!(p.offset_of(30000), Some(0));
        assert_eq!(p.offset_of(32767), Some(2767));
        assert_eq!(p.offset_of(32768), None);
        assert_eq!(p.offset_of(80), None);
        assert_eq!(p.to_string(), "30000-32767");
        assert!(PortRange::parse("32767-30000").is_err());
        assert!(PortRange::parse("a-b").is_err());
    }

    #[test]
    fn picks_prefer_the_upper_band_then_fill_the_lower() {
        let mut b = Bitmap::new(20);
        for r in 0..200 {
            let at = b.pick(4, r).unwrap();
            assert!(at >= 4, "{at} picked from the static band while the upper one had room");
        }
        for i in 4..20 {
            assert!(b.set(i));
        }
        assert!(!b.set(4), "set twice");
        let low = b.pick(4, 7).unwrap();
        assert!(low < 4);
        for i in 0..4 {
            b.set(i);
        }
        assert_eq!(b.pick(4, 1), None);
        assert_eq!(b.free(), 0);
        b.clear(9);
        assert_eq!(b.pick(4, 123), Some(9));
        assert_eq!(b.used(), 19);
    }
}
