//! The wire codec: round trips, hostile bytes, limits.

use bytes::BytesMut;
use paxos_core::{
    AcceptedEntry, Ballot, ClientId, Entry, InstanceId, Message, NodeId, ProposalId, SnapshotMeta,
};
use paxos_net::CodecError;
use paxos_net::codec::{EncodedFrame, Frame, FrameCodec, Hello, WIRE_VERSION};
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio_util::codec::{Decoder, Encoder};

const MAX: usize = 64 * 1024;

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u64>(), any::<u64>()).prop_map(|(round, node)| Ballot::new(round, NodeId(node)))
}

fn instance() -> impl Strategy<Value = InstanceId> {
    any::<u64>().prop_map(InstanceId)
}

fn proposal() -> impl Strategy<Value = ProposalId> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(node, boot, session, seq)| ProposalId {
            client: ClientId {
                node: NodeId(node),
                boot,
                session,
            },
            seq,
        },
    )
}

/// A log entry: a no-op, or a request's value.
fn entry<V: Clone + Debug + 'static>(
    value: impl Strategy<Value = V> + Clone + 'static,
) -> impl Strategy<Value = Entry<V>> {
    prop_oneof![
        Just(Entry::Noop),
        (proposal(), value).prop_map(|(id, value)| Entry::Value { id, value }),
    ]
}

fn message<V: Clone + Debug + 'static>(
    value: impl Strategy<Value = V> + Clone + 'static,
) -> impl Strategy<Value = Message<V>> {
    let accepted =
        (instance(), ballot(), entry(value.clone())).prop_map(|(instance, ballot, entry)| {
            AcceptedEntry {
                instance,
                ballot,
                entry,
            }
        });
    prop_oneof![
        (ballot(), instance()).prop_map(|(ballot, first)| Message::Prepare { ballot, first }),
        (
            ballot(),
            instance(),
            prop::collection::vec(accepted, 0..8),
            prop::option::of(instance()),
            instance()
        )
            .prop_map(
                |(ballot, first, accepted, more, compacted)| Message::Promise {
                    ballot,
                    first,
                    accepted,
                    more,
                    compacted
                }
            ),
        (ballot(), instance(), entry(value.clone())).prop_map(|(ballot, instance, entry)| {
            Message::Accept {
                ballot,
                instance,
                entry,
            }
        }),
        (ballot(), instance(), prop::option::of(entry(value.clone()))).prop_map(
            |(ballot, instance, entry)| {
                Message::Accepted {
                    ballot,
                    instance,
                    entry,
                }
            }
        ),
        (ballot(), ballot()).prop_map(|(ballot, promised)| Message::Nack { ballot, promised }),
        (instance(), entry(value.clone()))
            .prop_map(|(instance, entry)| Message::Decided { instance, entry }),
        (ballot(), prop::collection::vec(instance(), 0..8))
            .prop_map(|(ballot, instances)| Message::Chosen { ballot, instances }),
        Just(Message::Heartbeat),
        instance().prop_map(|first| Message::CatchUp { first }),
        (proposal(), value, prop::option::of(instance()))
            .prop_map(|(id, value, at)| Message::Forward { id, value, at }),
        (
            instance(),
            ballot(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(index, ballot, size, checksum, offset, data)| {
                Message::SnapshotChunk {
                    meta: SnapshotMeta {
                        index,
                        ballot,
                        size,
                        checksum,
                    },
                    offset,
                    data: data.into(),
                }
            }),
        (instance(), any::<u64>())
            .prop_map(|(index, offset)| Message::SnapshotRead { index, offset }),
    ]
}

/// Encode frames back to back, as a stream would carry them.
fn wire<V: Serialize>(frames: &[Frame<V>]) -> BytesMut {
    let mut codec = FrameCodec::<V>::new(MAX);
    let mut buf = BytesMut::new();
    for frame in frames {
        let encoded = EncodedFrame::encode(frame, MAX).expect("encodes");
        codec.encode(encoded, &mut buf).expect("fits");
    }
    buf
}

/// Decode everything in `bytes`, fed in chunks of `chunk` bytes, then signal end of stream.
fn decode_all<V: Serialize + DeserializeOwned>(
    bytes: &[u8],
    chunk: usize,
) -> Result<Vec<Frame<V>>, CodecError> {
    let mut codec = FrameCodec::<V>::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf)? {
            out.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        out.push(frame);
    }
    Ok(out)
}

fn round_trip<V: Serialize + DeserializeOwned + PartialEq + Debug + Clone>(
    messages: Vec<Message<V>>,
    chunk: usize,
) {
    let frames: Vec<Frame<V>> = messages.into_iter().map(Frame::Message).collect();
    let decoded = decode_all::<V>(&wire(&frames), chunk).expect("decodes");
    assert_eq!(decoded, frames);
}

proptest! {
    #[test]
    fn messages_of_u64_round_trip(messages in prop::collection::vec(message(any::<u64>()), 1..6), chunk in 1usize..64) {
        round_trip(messages, chunk);
    }

    #[test]
    fn messages_of_bytes_round_trip(
        messages in prop::collection::vec(message(prop::collection::vec(any::<u8>(), 0..300)), 1..6),
        chunk in 1usize..512,
    ) {
        round_trip(messages, chunk);
    }

    #[test]
    fn handshake_frames_round_trip(cluster_id in any::<u64>(), node in any::<u64>(), auth in any::<Option<[u8; 32]>>(), nonce in any::<[u8; 32]>()) {
        let frames: Vec<Frame<u64>> = vec![
            Frame::Challenge { nonce },
            Frame::Hello(Hello { version: WIRE_VERSION, cluster_id, node: NodeId(node), auth }),
            Frame::Welcome { node: NodeId(node) },
            Frame::Ping,
            Frame::Pong,
        ];
        prop_assert_eq!(decode_all::<u64>(&wire(&frames), 7).expect("decodes"), frames);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..128) {
        let _ = decode_all::<u64>(&bytes, chunk);
        let _ = decode_all::<Vec<u8>>(&bytes, chunk);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        bytes.push(WIRE_VERSION);
        bytes.extend_from_slice(&payload);
        let _ = decode_all::<Vec<u8>>(&bytes, 64);
    }
}

#[test]
fn oversize_length_prefix_is_refused_before_reading_the_body() {
    let mut codec = FrameCodec::<u64>::new(MAX);
    let mut buf = BytesMut::from(&((MAX as u32) + 1).to_be_bytes()[..]);
    match codec.decode(&mut buf) {
        Err(CodecError::Oversize { len, max }) => assert_eq!((len, max), (MAX + 1, MAX)),
        other => panic!("expected Oversize, got {other:?}"),
    }
    // A 4 GiB announcement reserves nothing.
    let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::Oversize { .. })
    ));
    assert!(buf.capacity() < 1024);
}

#[test]
fn oversize_message_is_refused_when_encoding() {
    let big = Frame::Message(Message::Decided {
        instance: InstanceId(0),
        entry: Entry::Value {
            id: ProposalId::default(),
            value: vec![7u8; 2 * MAX],
        },
    });
    assert!(matches!(
        EncodedFrame::encode(&big, MAX),
        Err(CodecError::Oversize { .. })
    ));
}

#[test]
fn frame_cut_short_is_truncated() {
    let bytes = wire(&[Frame::Message(crate::tagged(1, 2))]);
    for cut in 1..bytes.len() {
        assert!(
            matches!(
                decode_all::<u64>(&bytes[..cut], 3),
                Err(CodecError::Truncated)
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn other_versions_are_unknown() {
    let mut bytes = wire(&[Frame::<u64>::Ping]);
    bytes[4] = WIRE_VERSION + 1;
    assert!(matches!(
        decode_all::<u64>(&bytes, 100),
        Err(CodecError::UnknownVersion(v)) if v == WIRE_VERSION + 1
    ));
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut body = EncodedFrame::encode(&Frame::<u64>::Ping, MAX)
        .expect("encodes")
        .as_bytes()
        .to_vec();
    body.push(0);
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    assert!(matches!(
        decode_all::<u64>(&bytes, 100),
        Err(CodecError::Malformed(_))
    ));
}
