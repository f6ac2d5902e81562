//! IP prefixes (`10.42.0.0/24`, `fd00:42::/64`) as node podCIDRs and cluster routes
//! carry them: parsed strictly (no host bits set), so that a route or an IPAM range
//! is exactly what the control plane allocated.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {input:?}: {reason}")]
pub struct CidrError {
    pub input: String,
    pub reason: &'static str,
}

impl Cidr {
    /// A prefix whose address has no bits set past the prefix length.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let err = |reason| CidrError { input: format!("{addr}/{prefix}"), reason };
        if prefix > max_prefix(addr) {
            return Err(err("prefix length too long for the address family"));
        }
        if mask(addr, prefix) != addr {
            return Err(err("host bits are set"));
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// The default route of this prefix's family (`0.0.0.0/0` or `::/0`).
    pub fn default_route(&self) -> &'static str {
        if self.is_ipv4() { "0.0.0.0/0" } else { "::/0" }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = |reason| CidrError { input: s.to_string(), reason };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| err("no prefix length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        // Only plain decimal digits: "+24" or " 24" are not prefix lengths.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("invalid prefix length"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| err("invalid prefix length"))?;
        Cidr::new(addr, prefix).map_err(|e| CidrError { input: s.to_string(), reason: e.reason })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let c: Cidr = "10.42.1.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.1.0/24");
        assert_eq!(c.prefix(), 24);
        assert!(c.is_ipv4());
        assert_eq!(c.default_route(), "0.0.0.0/0");
        let v6: Cidr = "fd00:42::/64".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00:42::/64");
        assert_eq!(v6.default_route(), "::/0");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["10.42.1.0", "10.42.1.1/24", "10.42.1.0/33", "x/24", "10.0.0.0/", "10.0.0.0/+8", "::/129", "/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = "10.42.1.1/24".parse::<Cidr>().unwrap_err();
        assert_eq!(e.to_string(), "invalid CIDR \"10.42.1.1/24\": host bits are set");
    }

    #[test]
    fn containment() {
        let c: Cidr = "10.42.1.0/24".parse().unwrap();
        assert!(c.contains("10.42.1.77".parse().unwrap()));
        assert!(!c.contains("10.42.2.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn serde_round_trip() {
        let c: Cidr = serde_json::from_str("\"10.42.0.0/16\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"10.42.0.0/16\"");
        assert!(serde_json::from_str::<Cidr>("\"10.42.0.1/16\"").is_err());
    }
}
