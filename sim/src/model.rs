//! The replicated state the simulated servers apply: a few znodes, each a register with a
//! version, and the transactions that change them. The leader's host decides every outcome
//! (as ZooKeeper's prep does) and replicates the result, so applying never fails.

use std::collections::BTreeMap;

use crate::linearizability::{Model, Znode, ZnodeOp, ZnodeRet};

pub type Key = u8;

/// A znode's state as applied: None when it does not exist.
pub type Value = Option<(u64, i32)>;

/// What one transaction carries: who asked (so the origin server can answer), and the
/// outcome fixed by the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub client: u64,
    pub op_id: u64,
    pub origin: u64,
    pub key: Key,
    /// The key's value after this transaction.
    pub value: Value,
    pub ret: ZnodeRet,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48);
        b.extend_from_slice(&self.client.to_be_bytes());
        b.extend_from_slice(&self.op_id.to_be_bytes());
        b.extend_from_slice(&self.origin.to_be_bytes());
        b.push(self.key);
        encode_value(&mut b, self.value);
        match self.ret {
            ZnodeRet::Created => b.push(0),
            ZnodeRet::NodeExists => b.push(1),
            ZnodeRet::Set { version } => {
                b.push(2);
                b.extend_from_slice(&version.to_be_bytes());
            }
            ZnodeRet::Deleted => b.push(3),
            ZnodeRet::NoNode => b.push(4),
            ZnodeRet::BadVersion => b.push(5),
            ZnodeRet::Read(v) => {
                b.push(6);
                encode_value(&mut b, v);
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Record {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (value, mut i) = decode_value(b, 25);
        let tag = b[i];
        i += 1;
        let ret = match tag {
            0 => ZnodeRet::Created,
            1 => ZnodeRet::NodeExists,
            2 => ZnodeRet::Set {
                version: i32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes")),
            },
            3 => ZnodeRet::Deleted,
            4 => ZnodeRet::NoNode,
            5 => ZnodeRet::BadVersion,
            _ => ZnodeRet::Read(decode_value(b, i).0),
        };
        Record {
            client: u64_at(0),
            op_id: u64_at(8),
            origin: u64_at(16),
            key: b[24],
            value,
            ret,
        }
    }
}

fn encode_value(b: &mut Vec<u8>, value: Value) {
    match value {
        None => b.push(0),
        Some((data, version)) => {
            b.push(1);
            b.extend_from_slice(&data.to_be_bytes());
            b.extend_from_slice(&version.to_be_bytes());
        }
    }
}

fn decode_value(b: &[u8], i: usize) -> (Value, usize) {
    if b[i] == 0 {
        return (None, i + 1);
    }
    let data = u64::from_be_bytes(b[i + 1..i + 9].try_into().expect("8 bytes"));
    let version = i32::from_be_bytes(b[i + 9..i + 13].try_into().expect("4 bytes"));
    (Some((data, version)), i + 13)
}

/// Decides a write against the current (speculative) value, as the linearizability model
/// defines the operation: one definition of the semantics for the servers and the checker.
pub fn prep(current: Value, op: &ZnodeOp) -> (Value, ZnodeRet) {
    let (after, ret) = Znode(current).step(op);
    (after.0, ret)
}

/// The applied state: every key's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub values: BTreeMap<Key, Value>,
}

impl State {
    pub fn get(&self, key: Key) -> Value {
        self.values.get(&key).copied().flatten()
    }

    pub fn apply(&mut self, record: &Record) {
        self.values.insert(record.key, record.value);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for (&key, &value) in &self.values {
            b.push(key);
            encode_value(&mut b, value);
        }
        b
    }

    pub fn decode(b: &[u8]) -> State {
        let mut state = State::default();
        let mut i = 0;
        while i < b.len() {
            let key = b[i];
            let (value, next) = decode_value(b, i + 1);
            state.values.insert(key, value);
            i = next;
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_states_round_trip() {
        let rets = [
            ZnodeRet::Created,
            ZnodeRet::NodeExists,
            ZnodeRet::Set { version: 7 },
            ZnodeRet::Deleted,
            ZnodeRet::NoNode,
            ZnodeRet::BadVersion,
            ZnodeRet::Read(Some((3, 4))),
            ZnodeRet::Read(None),
        ];
        for ret in rets {
            for value in [None, Some((u64::MAX, -1))] {
                let r = Record {
                    client: 1,
                    op_id: 2,
                    origin: 3,
                    key: 4,
                    value,
                    ret: ret.clone(),
                };
                assert_eq!(Record::decode(&r.encode()), r);
            }
        }
        let mut s = State::default();
        s.values.insert(1, Some((5, 0)));
        s.values.insert(2, None);
        assert_eq!(State::decode(&s.encode()), s);
    }
}
