//! A message computed once and sent to many: shared rather than copied, and encoded once, on
//! its first send. The reporting service's generated server (see `build.rs`) answers
//! GetMeasureView with it; on the wire it is the message itself.

use std::sync::{Arc, OnceLock};

use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};

#[derive(Debug, Default)]
pub struct Encoded<M> {
    message: Arc<M>,
    /// The message's encoding, shared by every clone.
    bytes: Arc<OnceLock<Vec<u8>>>,
}

impl<M> Clone for Encoded<M> {
    fn clone(&self) -> Self {
        Encoded {
            message: self.message.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

impl<M: Message> Encoded<M> {
    pub fn new(message: M) -> Self {
        Encoded {
            message: Arc::new(message),
            bytes: Arc::default(),
        }
    }

    pub fn message(&self) -> &M {
        &self.message
    }

    fn bytes(&self) -> &[u8] {
        self.bytes.get_or_init(|| self.message.encode_to_vec())
    }
}

/// Encodes as the message does. Decoding (the server never decodes an answer) changes this
/// clone's own copy of the message, and its encoding is worked out again.
impl<M: Message + Clone> Message for Encoded<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.bytes());
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        self.bytes = Arc::default();
        Arc::make_mut(&mut self.message).merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes().len()
    }

    fn clear(&mut self) {
        self.bytes = Arc::default();
        Arc::make_mut(&mut self.message).clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use ics_proto::reporting::v1::{MeasureRow, MeasureView};

    use super::*;

    fn view() -> MeasureView {
        MeasureView {
            ics_ods_code: "QWO".into(),
            name: "West Yorkshire".into(),
            rows: (0..250)
                .map(|index| MeasureRow {
                    ods_code: format!("R{index:03}"),
                    measure_code: "FFT_POSITIVE".into(),
                    latest_value: f64::from(index) / 7.0,
                    points: index,
                    ..Default::default()
                })
                .collect(),
            observations: 30_000,
            ..Default::default()
        }
    }

    #[test]
    fn encodes_as_the_message_and_decodes_back() {
        let message = view();
        let encoded = Encoded::new(message.clone());
        let clone = encoded.clone();
        assert_eq!(clone.encode_to_vec(), message.encode_to_vec());
        assert_eq!(encoded.encoded_len(), message.encoded_len());
        // The clone shares the message and its encoding.
        assert!(Arc::ptr_eq(&encoded.message, &clone.message));
        assert!(Arc::ptr_eq(&encoded.bytes, &clone.bytes));
        assert!(encoded.bytes.get().is_some());

        let decoded = Encoded::<MeasureView>::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.message(), &message);
        assert_eq!(decoded.encode_to_vec(), message.encode_to_vec());
    }
}
