//! Link-layer types: pcap DLT/LINKTYPE values, shared by capture sources and the packet parser.

use std::fmt;

/// The link layers xdpcarve decodes. Values are tcpdump's LINKTYPE_* numbers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte address family in host byte order.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101; also DLT_RAW 12 on most systems): bare IPv4 or IPv6.
    Raw,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, address family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1 (`tcpdump -i any`).
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// LINKTYPE_IEEE802_11 (105): 802.11 MAC frames without FCS; data frames carry LLC/SNAP.
    Ieee80211,
    /// LINKTYPE_IEEE802_11_RADIOTAP (127): a radiotap header, then an 802.11 frame (with an FCS
    /// when radiotap's Flags say so).
    Ieee80211Radiotap,
    /// LINKTYPE_NFLOG (239): Linux netfilter log (`tcpdump -i nflog:N`): a 4-byte header, then
    /// TLVs, one of which holds the IP packet.
    Nflog,
}

impl LinkType {
    /// Every supported type, for error messages.
    pub const ALL: [LinkType; 11] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Ieee80211,
        LinkType::Ieee80211Radiotap,
        LinkType::Nflog,
    ];

    /// Maps a pcap/pcapng link type number; `None` when it is not supported.
    pub fn from_linktype(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 101 => LinkType::Raw,
            105 => LinkType::Ieee80211,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            127 => LinkType::Ieee80211Radiotap,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    pub fn linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Ieee80211 => 105,
            LinkType::Ieee80211Radiotap => 127,
            LinkType::Nflog => 239,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkType::Null => "NULL (BSD loopback)",
            LinkType::Ethernet => "Ethernet",
            LinkType::Raw => "RAW (IP)",
            LinkType::Loop => "LOOP (OpenBSD loopback)",
            LinkType::LinuxSll => "Linux cooked (SLL)",
            LinkType::Ipv4 => "IPv4",
            LinkType::Ipv6 => "IPv6",
            LinkType::LinuxSll2 => "Linux cooked v2 (SLL2)",
            LinkType::Ieee80211 => "IEEE 802.11",
            LinkType::Ieee80211Radiotap => "IEEE 802.11 with radiotap",
            LinkType::Nflog => "NFLOG (Linux netfilter log)",
        }
    }

    /// "Ethernet (1), Linux cooked (SLL) (113), ..." for error messages.
    pub fn supported_list() -> String {
        LinkType::ALL
            .iter()
            .map(|l| format!("{} ({})", l.name(), l.linktype()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.linktype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_round_trips_and_is_listed() {
        let list = LinkType::supported_list();
        for l in LinkType::ALL {
            assert_eq!(LinkType::from_linktype(l.linktype()), Some(l));
            assert!(list.contains(&l.to_string()), "{l} missing from {list}");
        }
        assert!(list.contains("IEEE 802.11 with radiotap (127)"), "{list}");
        assert_eq!(LinkType::from_linktype(147), None);
    }
}
