//! IP and CIDR checks of `k8s.io/apimachinery/pkg/util/validation/ip.go` (strict forms),
//! and core's `ValidateNonSpecialIP`.

use super::field::{self, Bad, Path};
use crate::status::Cause;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Go's sloppy parser also takes IPv4 octets with leading zeros.
fn sloppy_v4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        o[i] = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(o))
}

/// Parses an IP the way upstream's sloppy parser accepts it (for error wording).
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().or_else(|| sloppy_v4(s).map(IpAddr::V4))
}

fn canonical_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// `IsValidIP`: a valid, canonical IP address.
pub fn validate_ip(path: &Path, value: &str) -> Vec<Cause> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![field::invalid(
            path,
            Bad::Str(value),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )];
    };
    let mut errs = Vec::new();
    if value.parse::<IpAddr>().is_err() {
        errs.push(field::invalid(path, Bad::Str(value), "must not have leading 0s"));
    }
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        errs.push(field::invalid(path, Bad::Str(value), "must not be an IPv4-mapped IPv6 address"));
    }
    if !errs.is_empty() {
        return errs;
    }
    let canonical = canonical_ip(&ip);
    if canonical != value {
        errs.push(field::invalid(
            path,
            Bad::Str(value),
            &format!("must be in canonical form ({})", field::go_quote(&canonical)),
        ));
    }
    errs
}

pub fn is_ipv6(value: &str) -> bool {
    matches!(value.parse::<IpAddr>(), Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none())
}

/// `IsValidCIDR`: a valid, canonical CIDR with no host bits set.
pub fn validate_cidr(path: &Path, value: &str) -> Vec<Cause> {
    let bad = || {
        vec![field::invalid(path, Bad::Str(value), "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    };
    let Some((ip_s, len_s)) = value.split_once('/') else {
        return bad();
    };
    let Some(ip) = parse_ip_sloppy(ip_s) else {
        return bad();
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let Ok(len) = len_s.parse::<u32>() else {
        return bad();
    };
    if len > max || len_s.is_empty() {
        return bad();
    }
    if ip_s.parse::<IpAddr>().is_err() || (len_s.len() > 1 && len_s.starts_with('0')) {
        return vec![field::invalid(path, Bad::Str(value), "must not have leading 0s in IP or prefix length")];
    }
    let masked = match ip {
        IpAddr::V4(v4) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            if v6.to_ipv4_mapped().is_some() {
                return vec![field::invalid(path, Bad::Str(value), "must not have an IPv4-mapped IPv6 address")];
            }
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    };
    if masked != ip {
        return vec![field::invalid(path, Bad::Str(value), "must not have bits set beyond the prefix length")];
    }
    let canonical = format!("{}/{}", canonical_ip(&masked), len);
    if canonical != value {
        return vec![field::invalid(
            path,
            Bad::Str(value),
            &format!("must be in canonical form ({})", field::go_quote(&canonical)),
        )];
    }
    Vec::new()
}

/// `ValidateNonSpecialIP`: endpoints may not point at unspecified, loopback or link-local
/// addresses.
pub fn validate_non_special_ip(path: &Path, value: &str) -> Vec<Cause> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![field::invalid(path, Bad::Str(value), "must be a valid IP address")];
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(field::invalid(path, Bad::Str(value), &format!("may not be unspecified ({value})")));
    }
    if ip.is_loopback() {
        errs.push(field::invalid(path, Bad::Str(value), "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    let (link_local_unicast, link_local_multicast) = match ip {
        IpAddr::V4(v4) => (v4.is_link_local(), v4.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            ((seg & 0xffc0) == 0xfe80, (seg & 0xff0f) == 0xff02)
        }
    };
    if link_local_unicast {
        errs.push(field::invalid(
            path,
            Bad::Str(value),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(field::invalid(
            path,
            Bad::Str(value),
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: Vec<Cause>) -> Vec<String> {
        errs.into_iter().map(|c| c.message).collect()
    }

    #[test]
    fn ips() {
        let p = Path::new("ip");
        assert!(validate_ip(&p, "10.0.0.1").is_empty());
        assert!(validate_ip(&p, "2001:db8::1").is_empty());
        assert_eq!(msgs(validate_ip(&p, "10.0.0.01")), vec!["Invalid value: \"10.0.0.01\": must not have leading 0s"]);
        assert_eq!(
            msgs(validate_ip(&p, "2001:DB8::1")),
            vec!["Invalid value: \"2001:DB8::1\": must be in canonical form (\"2001:db8::1\")"]
        );
        assert!(validate_ip(&p, "nope")[0].message.contains("must be a valid IP address"));
        assert!(validate_ip(&p, "::ffff:1.2.3.4")[0].message.contains("IPv4-mapped"));
        assert!(is_ipv6("fd00::1"));
        assert!(!is_ipv6("10.0.0.1"));
    }

    #[test]
    fn cidrs() {
        let p = Path::new("cidr");
        assert!(validate_cidr(&p, "10.42.0.0/16").is_empty());
        assert!(validate_cidr(&p, "fd00::/64").is_empty());
        assert!(validate_cidr(&p, "10.42.0.1/16")[0].message.contains("bits set beyond"));
        assert!(validate_cidr(&p, "10.42.0.0")[0].message.contains("must be a valid CIDR"));
        assert!(validate_cidr(&p, "10.42.0.0/33")[0].message.contains("must be a valid CIDR"));
    }

    #[test]
    fn special_ips() {
        let p = Path::new("ip");
        assert!(validate_non_special_ip(&p, "10.1.2.3").is_empty());
        assert!(validate_non_special_ip(&p, "127.0.0.1")[0].message.contains("loopback"));
        assert!(validate_non_special_ip(&p, "0.0.0.0")[0].message.contains("unspecified"));
        assert!(validate_non_special_ip(&p, "169.254.1.1")[0].message.contains("link-local range"));
        assert!(validate_non_special_ip(&p, "fe80::1")[0].message.contains("link-local range"));
        assert!(validate_non_special_ip(&p, "224.0.0.5")[0].message.contains("multicast"));
    }
}
