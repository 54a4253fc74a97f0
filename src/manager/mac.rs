//! MAC addresses: the one reliable key from an ENI to its Linux interface.

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address, compared as bytes so that `02:AB:…` and `02:ab:…` are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC in a netlink hardware-address attribute (`None` for other lengths, such as
    /// the empty address of a tunnel).
    pub fn from_bytes(bytes: &[u8]) -> Option<Mac> {
        bytes.try_into().ok().map(Mac)
    }
}

/// The MAC is not six colon-separated hexadecimal octets.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hexadecimal octets such as 02:1a:2b:3c:4d:5e)")]
pub struct MacParseError(String);

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(text: &str) -> Result<Mac, MacParseError> {
        let error = || MacParseError(text.to_owned());
        let mut bytes = [0u8; 6];
        let mut octets = text.split(':');
        for byte in &mut bytes {
            let octet = octets.next().filter(|o| o.len() == 2).ok_or_else(error)?;
            *byte = u8::from_str_radix(octet, 16).map_err(|_| error())?;
        }
        if octets.next().is_some() {
            return Err(error());
        }
        Ok(Mac(bytes))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [b0, b1, b2, b3, b4, b5] = self.0;
        write!(f, "{b0:02x}:{b1:02x}:{b2:02x}:{b3:02x}:{b4:02x}:{b5:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::Mac;

    #[test]
    fn parses_either_case_and_prints_lower_case() {
        let mac: Mac = "02:AB:cd:00:01:ff".parse().unwrap();
        assert_eq!(mac.to_string(), "02:ab:cd:00:01:ff");
        assert_eq!(mac, "02:ab:CD:00:01:FF".parse().unwrap());
    }

    #[test]
    fn rejects_what_is_not_six_octets() {
        for bad in [
            "",
            "02:ab",
            "02:ab:cd:00:01:ff:00",
            "02:ab:cd:00:01:fg",
            "2:ab:cd:00:01:ff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }
}
