//! What one entry of the replicated log carries: a ZooKeeper transaction, and for the last
//! entry of a leader's proposal the leader's tree digest after it (ZooKeeper's TxnDigest),
//! so a learner applying the batch detects divergence (`Input::Replicated`).
//!
//! The quorum core treats these bytes as opaque; the log on disk keeps only the txn.

use rzk_proto::{DecodeError, Reader, Txn, Writer};

pub fn encode(txn: &Txn, digest: Option<u64>) -> Vec<u8> {
    let mut w = Writer::new();
    match digest {
        Some(d) => {
            w.bool(true);
            w.long(d as i64);
        }
        None => w.bool(false),
    }
    txn.encode(&mut w);
    w.bytes
}

/// The entry's txn and digest. An error means the bytes were not made by `encode`: a learner
/// must not apply them.
pub fn decode(data: &[u8]) -> Result<(Txn, Option<u64>), DecodeError> {
    let mut r = Reader::new(data);
    let digest = if r.bool()? {
        Some(r.long()? as u64)
    } else {
        None
    };
    let txn = Txn::decode(&mut r)?;
    r.finish()?;
    Ok((txn, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_proto::TxnBody;

    #[test]
    fn entries_round_trip_and_refuse_other_bytes() {
        let txn = Txn {
            zxid: 0x5_0000_0003,
            time_ms: 7,
            session_id: 9,
            cxid: 2,
            body: TxnBody::Delete { path: "/a".into() },
        };
        for digest in [None, Some(u64::MAX)] {
            let bytes = encode(&txn, digest);
            assert_eq!(decode(&bytes).unwrap(), (txn.clone(), digest));
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err(), "trailing bytes");
        }
    }
}
