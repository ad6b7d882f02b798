//! Timestamps as the API writes them: RFC 3339 in UTC with `Z`, the fraction in 0, 3, 6 or 9
//! digits as the value needs, which is what chrono's own `Serialize` writes. chrono writes it
//! through `fmt` one piece at a time and serde_json checks each piece for escapes; a page of
//! sources has forty of them, and writing them here in one go took a few percent of its CPU.
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// For `#[serde(serialize_with)]`: the same text as chrono's `Serialize`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0; 32];
    match text(at, &mut buf) {
        Some(text) => s.serialize_str(text),
        // Years past 9999 or before 0, and leap seconds: rare enough to leave to chrono.
        None => at.serialize(s),
    }
}

/// The text [`serialize`] writes (without quotes), in `buf`; `None` for a year past 9999 or
/// before 0 and for a leap second, which chrono's `Serialize` writes.
pub fn text<'b>(at: &DateTime<Utc>, buf: &'b mut [u8; 32]) -> Option<&'b str> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nano = Some(at.nanosecond()).filter(|n| *n < 1_000_000_000)?;
    let mut len = 0;
    let mut put = |value: u32, width: u32, then: Option<u8>| {
        for i in (0..width).rev() {
            // One decimal digit: always ASCII.
            buf[len] = b'0' + (value / 10u32.pow(i) % 10) as u8;
            len += 1;
        }
        if let Some(b) = then {
            buf[len] = b;
            len += 1;
        }
    };
    put(year, 4, Some(b'-'));
    put(at.month(), 2, Some(b'-'));
    put(at.day(), 2, Some(b'T'));
    put(at.hour(), 2, Some(b':'));
    put(at.minute(), 2, Some(b':'));
    match nano {
        0 => put(at.second(), 2, Some(b'Z')),
        n => {
            put(at.second(), 2, Some(b'.'));
            if n % 1_000_000 == 0 {
                put(n / 1_000_000, 3, Some(b'Z'));
            } else if n % 1_000 == 0 {
                put(n / 1_000, 6, Some(b'Z'));
            } else {
                put(n, 9, Some(b'Z'));
            }
        }
    }
    std::str::from_utf8(&buf[..len]).ok()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[test]
    fn it_writes_what_chrono_writes() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let mut cases = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            // A leap second.
            Utc.from_utc_datetime(&day.and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap()),
        ];
        for nano in [
            1,
            10,
            999,
            1_000,
            1_001,
            120_000,
            999_999,
            1_000_000,
            120_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
        ] {
            cases.push(Utc.from_utc_datetime(&day.and_hms_nano_opt(7, 8, 9, nano).unwrap()));
        }
        // Microseconds, as the domain stores them.
        cases.push(crate::domain::now());
        for at in cases {
            assert_eq!(
                serde_json::to_string(&Ours(at)).unwrap(),
                serde_json::to_string(&at).unwrap(),
                "{at:?}"
            );
        }
    }
}
