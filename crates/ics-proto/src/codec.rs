//! The codec every generated client and server uses: prost's, except that a message is
//! decoded from one contiguous slice.
//!
//! tonic hands a decoder the message in a `DecodeBuf`, a window on a `BytesMut`. prost reads
//! through the `Buf` trait, so decoding from it advances the buffer for every varint and field
//! it reads, each advance a checked step of `BytesMut`. A bulk ingest message carries thousands
//! of observations and tens of thousands of fields: profiled during an ingest, those advances
//! took about 6% of the metrics service's CPU. tonic assembles each message in one `BytesMut`,
//! so its bytes are one slice; prost decodes a `&[u8]` with plain pointer steps, and the buffer
//! is advanced once, past the whole message. Should a message ever span more than one chunk
//! (`Buf` does not promise one), it is decoded through the buffer as before.

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Named in the build script (`codec_path`): prost's encoder, [`SliceDecoder`] to decode.
#[derive(Debug, Clone)]
pub struct ProstCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ProstCodec<T, U> {
    fn default() -> Self {
        ProstCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for ProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder { _pd: PhantomData }
    }
}

/// Decodes `U` from the message's bytes as one slice when they are one (see the module).
#[derive(Debug, Clone)]
pub struct SliceDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let length = buf.remaining();
        let item = if buf.chunk().len() == length {
            let item = U::decode(buf.chunk()).map_err(from_decode_error)?;
            buf.advance(length);
            item
        } else {
            U::decode(buf).map_err(from_decode_error)?
        };
        Ok(Some(item))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// As prost's codec answers: a body that does not decode is INTERNAL. Requests never get
/// here malformed: the service kit's hygiene check refuses them first, naming the field.
fn from_decode_error(error: prost::DecodeError) -> Status {
    Status::internal(error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::metrics::v1::{IngestObservationsRequest, ObservationInput};
    use prost::bytes::{BufMut, Bytes, BytesMut};
    use tonic::codec::Streaming;

    /// A request body arriving in the given frames, as HTTP/2 may cut it anywhere.
    struct Frames(VecDeque<Bytes>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|data| Ok(http_body::Frame::data(data))),
            )
        }
    }

    fn request(rows: usize) -> IngestObservationsRequest {
        IngestObservationsRequest {
            observations: (0..rows)
                .map(|row| ObservationInput {
                    measure_code: "ED_4HR".into(),
                    ods_code: format!("R{row:04}"),
                    numerator: Some(row as f64),
                    denominator: Some(1_000.0),
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// gRPC's framing of `messages`: each behind its flag byte and length.
    fn framed(messages: &[Vec<u8>]) -> Bytes {
        let mut body = BytesMut::new();
        for message in messages {
            body.put_u8(0);
            body.put_u32(message.len() as u32);
            body.put_slice(message);
        }
        body.freeze()
    }

    fn streaming(body: Bytes, cut_every: usize) -> Streaming<IngestObservationsRequest> {
        let frames = (0..body.len())
            .step_by(cut_every)
            .map(|start| body.slice(start..(start + cut_every).min(body.len())))
            .collect();
        Streaming::new_request(
            ProstCodec::<IngestObservationsRequest, IngestObservationsRequest>::default().decoder(),
            Frames(frames),
            None,
            None,
        )
    }

    #[tokio::test]
    async fn messages_decode_whole_however_the_body_is_cut() {
        let sent = [request(3), request(0), request(200)];
        let body = framed(&sent.iter().map(Message::encode_to_vec).collect::<Vec<_>>());
        for cut_every in [1, 7, 4096, body.len()] {
            let mut stream = streaming(body.clone(), cut_every);
            for message in &sent {
                assert_eq!(stream.message().await.unwrap().as_ref(), Some(message));
            }
            assert_eq!(
                stream.message().await.unwrap(),
                None,
                "cut every {cut_every}"
            );
        }
    }

    #[tokio::test]
    async fn a_message_that_does_not_decode_is_internal() {
        // A length-delimited field claiming five bytes where one follows.
        let mut stream = streaming(framed(&[vec![0x0a, 0x05, 0x01]]), 64);
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
