//! Goal: servers link on both channels over real loopback sockets, keep each link's order,
//! refuse strangers without disturbing their links, tell a broken link from its successor,
//! and never buffer without bound for a peer that stops reading. Method: two transports (or
//! one and a raw socket playing a peer) on 127.0.0.1, every wait bounded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rzk_peer::transport::{Event, PeerAddrs, Transport, TransportConfig};
use rzk_peer::wire::{encode, Channel, Frame, Hello};
use rzk_quorum::{Entry, Message, Zxid};

const WAIT: Duration = Duration::from_secs(10);

struct Bound {
    quorum: TcpListener,
    election: TcpListener,
}

impl Bound {
    fn new() -> Bound {
        Bound {
            quorum: TcpListener::bind("127.0.0.1:0").unwrap(),
            election: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn at(addrs: PeerAddrs) -> Bound {
        Bound {
            quorum: TcpListener::bind(addrs.quorum).unwrap(),
            election: TcpListener::bind(addrs.election).unwrap(),
        }
    }

    fn addrs(&self) -> PeerAddrs {
        PeerAddrs {
            quorum: self.quorum.local_addr().unwrap(),
            election: self.election.local_addr().unwrap(),
        }
    }
}

fn start(
    me: u64,
    bound: Bound,
    peers: &[(u64, PeerAddrs)],
    tune: impl FnOnce(&mut TransportConfig),
) -> Transport {
    let peers: BTreeMap<u64, PeerAddrs> = peers.iter().copied().collect();
    let mut config = TransportConfig::new(me, peers);
    config.redial_after = Duration::from_millis(20);
    tune(&mut config);
    Transport::start(config, bound.quorum, bound.election).unwrap()
}

fn next(t: &Transport) -> Event {
    t.events()
        .recv_timeout(WAIT)
        .expect("an event within the bound")
}

/// Waits for links to `peer` on both channels; returns (quorum, election) generations.
fn linked(t: &Transport, peer: u64) -> (u64, u64) {
    let (mut quorum, mut election) = (None, None);
    let deadline = Instant::now() + WAIT;
    while quorum.is_none() || election.is_none() {
        assert!(Instant::now() < deadline, "no links to s{peer}");
        match next(t) {
            Event::Connected {
                peer: p,
                channel,
                generation,
            } if p == peer => match channel {
                Channel::Quorum => quorum = Some(generation),
                Channel::Election => election = Some(generation),
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    (quorum.unwrap(), election.unwrap())
}

fn ack(counter: u32) -> Frame {
    Frame::Message(Message::Ack {
        zxid: Zxid::new(1, counter),
    })
}

fn ack_counter(event: Event) -> u32 {
    match event {
        Event::Frame {
            frame: Frame::Message(Message::Ack { zxid }),
            ..
        } => zxid.counter,
        other => panic!("expected an ACK, got {other:?}"),
    }
}

fn pair() -> (Transport, Transport, PeerAddrs, PeerAddrs) {
    let (b1, b2) = (Bound::new(), Bound::new());
    let (a1, a2) = (b1.addrs(), b2.addrs());
    let t1 = start(1, b1, &[(2, a2)], |_| {});
    let t2 = start(2, b2, &[(1, a1)], |_| {});
    (t1, t2, a1, a2)
}

#[test]
fn two_servers_link_on_both_channels_and_keep_each_links_order() {
    let (t1, t2, _, _) = pair();
    let (q1, _) = linked(&t1, 2);
    let (q2, e2) = linked(&t2, 1);
    for i in 0..2_000 {
        t2.send(1, Channel::Quorum, q2, &ack(i));
    }
    for i in 0..2_000 {
        assert_eq!(ack_counter(next(&t1)), i);
    }
    t1.send(2, Channel::Quorum, q1, &ack(7));
    assert_eq!(ack_counter(next(&t2)), 7);
    // The election link carries its own frames.
    t2.send(1, Channel::Election, e2, &ack(9));
    match next(&t1) {
        Event::Frame {
            channel: Channel::Election,
            frame: Frame::Message(Message::Ack { zxid }),
            ..
        } => assert_eq!(zxid.counter, 9),
        other => panic!("{other:?}"),
    }
}

fn raw_hello(sid: u64, channel: Channel) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Frame::Hello(Hello { sid, channel }), &mut out);
    out
}

/// Whether the server closed `stream` (EOF or reset) within the bound.
fn closed_by_server(mut stream: TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn strangers_and_garbage_are_refused_and_established_links_go_on() {
    let (t1, t2, a1, _) = pair();
    let (q1, _) = linked(&t1, 2);
    let (q2, _) = linked(&t2, 1);
    let strangers: [(&str, Vec<u8>, SocketAddr); 5] = [
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec(), a1.quorum),
        ("an unlisted id", raw_hello(9, Channel::Quorum), a1.quorum),
        (
            "the other channel",
            raw_hello(2, Channel::Election),
            a1.quorum,
        ),
        ("a ZooKeeper 4lw", b"ruok".to_vec(), a1.election),
        (
            "a message before the hello",
            {
                let mut b = Vec::new();
                encode(&ack(1), &mut b);
                b
            },
            a1.election,
        ),
    ];
    for (what, bytes, addr) in strangers {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&bytes).unwrap();
        assert!(closed_by_server(s), "{what}: not closed");
    }
    // The real link saw nothing of it and still carries frames both ways.
    t2.send(1, Channel::Quorum, q2, &ack(1));
    assert_eq!(ack_counter(next(&t1)), 1);
    t1.send(2, Channel::Quorum, q1, &ack(2));
    assert_eq!(ack_counter(next(&t2)), 2);
    assert!(t1.events().try_recv().is_err(), "no other event on s1");
}

#[test]
fn a_silent_connection_is_dropped_after_the_hello_timeout() {
    let b1 = Bound::new();
    let a1 = b1.addrs();
    let peer = Bound::new().addrs();
    let _t1 = start(1, b1, &[(2, peer)], |c| {
        c.hello_timeout = Duration::from_millis(200)
    });
    let s = TcpStream::connect(a1.quorum).unwrap();
    assert!(closed_by_server(s));
}

#[test]
fn a_restarted_peer_is_a_new_generation_and_sends_for_the_old_one_are_dropped() {
    let (t1, t2, a1, a2) = pair();
    let (q1, e1) = linked(&t1, 2);
    linked(&t2, 1);
    t2.stop();
    let mut gone = Vec::new();
    while gone.len() < 2 {
        match next(&t1) {
            Event::Disconnected {
                peer: 2,
                channel,
                generation,
            } => gone.push((channel, generation)),
            other => panic!("{other:?}"),
        }
    }
    gone.sort();
    assert_eq!(gone, vec![(Channel::Election, e1), (Channel::Quorum, q1)]);
    // s2 comes back on the same ports.
    let t2 = start(2, Bound::at(a2), &[(1, a1)], |_| {});
    let (q1_new, _) = linked(&t1, 2);
    assert!(q1_new > q1, "a new link has a new generation");
    // Sent for the broken link: dropped, never delivered on its successor.
    t1.send(2, Channel::Quorum, q1, &ack(100));
    t1.send(2, Channel::Quorum, q1_new, &ack(101));
    loop {
        match next(&t2) {
            Event::Connected { .. } => continue,
            event => {
                assert_eq!(ack_counter(event), 101);
                break;
            }
        }
    }
}

#[test]
fn a_peer_that_stops_reading_is_disconnected_instead_of_buffered() {
    let b1 = Bound::new();
    let a1 = b1.addrs();
    let fake2 = Bound::new().addrs();
    let limit = 256 << 10;
    let t1 = start(1, b1, &[(2, fake2)], |c| c.max_queued_bytes = limit);
    // A "server 2" that says hello on s1's quorum port and then never reads.
    let mut s = TcpStream::connect(a1.quorum).unwrap();
    s.write_all(&raw_hello(2, Channel::Quorum)).unwrap();
    let generation = match next(&t1) {
        Event::Connected {
            peer: 2,
            channel: Channel::Quorum,
            generation,
        } => generation,
        other => panic!("{other:?}"),
    };
    // Not a SNAP or a DIFF: a learner's sync stream is exempt from the limit.
    let chunk = Frame::Message(Message::Proposal {
        entries: vec![Entry {
            zxid: Zxid::new(1, 1),
            data: Arc::from(vec![7u8; 64 << 10]),
        }],
    });
    // Far more than the limit plus every kernel buffer on the way.
    for _ in 0..2_000 {
        t1.send(2, Channel::Quorum, generation, &chunk);
        if let Ok(event) = t1.events().try_recv() {
            match event {
                Event::Disconnected { peer: 2, .. } => return,
                other => panic!("{other:?}"),
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    match next(&t1) {
        Event::Disconnected { peer: 2, .. } => {}
        other => panic!("{other:?}"),
    }
    drop(s);
}

#[test]
fn a_stranger_announcing_a_huge_first_frame_is_refused_before_it_is_buffered() {
    let b1 = Bound::new();
    let a1 = b1.addrs();
    let peer = Bound::new().addrs();
    // A hello timeout far beyond the wait below: only the size check can close it in time.
    let _t1 = start(1, b1, &[(2, peer)], |c| {
        c.hello_timeout = Duration::from_secs(600)
    });
    let mut s = TcpStream::connect(a1.quorum).unwrap();
    // A length far above a hello's, then nothing: the server must not wait for 512 MiB.
    s.write_all(&(512u32 << 20).to_be_bytes()).unwrap();
    assert!(closed_by_server(s));
}

/// A SNAP far over the link's queue limit still goes through (in chunks the transport
/// admits as the socket drains), arrives whole as one message, and what was sent after it
/// arrives after it.
#[test]
fn a_snapshot_larger_than_the_queue_limit_arrives_whole_and_in_order() {
    let (b1, b2) = (Bound::new(), Bound::new());
    let (a1, a2) = (b1.addrs(), b2.addrs());
    let limit = 1 << 20;
    let t1 = start(1, b1, &[(2, a2)], |c| c.max_queued_bytes = limit);
    let t2 = start(2, b2, &[(1, a1)], |_| {});
    let (q1, _) = linked(&t1, 2);
    linked(&t2, 1);
    let data: Vec<u8> = (0..(9usize << 20) + 12345)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let snap = Frame::Message(Message::Snap {
        zxid: Zxid::new(3, 4),
        data: Arc::from(data.clone()),
    });
    t1.send(2, Channel::Quorum, q1, &snap);
    t1.send(2, Channel::Quorum, q1, &ack(5));
    match next(&t2) {
        Event::Frame {
            frame: Frame::Message(Message::Snap { zxid, data: got }),
            ..
        } => {
            assert_eq!(zxid, Zxid::new(3, 4));
            assert!(got[..] == data[..], "the snapshot's bytes, in order");
        }
        other => panic!("expected the SNAP, got {other:?}"),
    }
    assert_eq!(ack_counter(next(&t2)), 5);
}
