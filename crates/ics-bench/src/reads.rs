//! Board reads at a constant arrival rate (open model): GetOverview, GetOutcomes and
//! GetMeasureView, each on its own, with p50/p95/p99. Each request asks for the next of the
//! ICSs given, as that many boards would: the 42 of the ICS-scale data set ([`crate::scale`]),
//! or the benchmark ICS alone.
//!
//! Each answer is received whole and parsed, but nothing of it is kept ([`Parsed`]): a board
//! builds its view of the answer on its own machine, while here the load generator shares two
//! cores with the server, and building 2,000 measure views of 250 rows a second (thousands of
//! strings each) took the server's share of them. The bytes received are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ics_client::RetryingChannel;
use ics_proto::reporting::v1::{GetMeasureViewRequest, GetOutcomesRequest, GetOverviewRequest};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

use crate::{Clients, authorized, count, open_loop, scope_of};

/// An answer parsed field by field (every field is unknown here, so each is skipped over),
/// with its size.
#[derive(Debug, Default)]
struct Parsed {
    bytes: usize,
}

/// Encodes requests as prost does; decodes answers into [`Parsed`].
struct ParsingCodec<T>(std::marker::PhantomData<T>);

impl<T: Message + Send + 'static> Codec for ParsingCodec<T> {
    type Encode = T;
    type Decode = Parsed;
    type Encoder = RequestEncoder<T>;
    type Decoder = ParsingDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RequestEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ParsingDecoder
    }
}

struct RequestEncoder<T>(std::marker::PhantomData<T>);

impl<T: Message> Encoder for RequestEncoder<T> {
    type Item = T;
    type Error = tonic::Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(buf)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

struct ParsingDecoder;

impl Decoder for ParsingDecoder {
    type Item = Parsed;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Parsed>, Self::Error> {
        use prost::bytes::Buf;
        let bytes = buf.remaining();
        // An empty message type: prost walks every field of the answer and skips it.
        #[derive(Clone, PartialEq, prost::Message)]
        struct Nothing {}
        Nothing::decode(buf).map_err(|error| tonic::Status::internal(error.to_string()))?;
        Ok(Some(Parsed { bytes }))
    }
}

/// Calls the reporting service as a board, parsing each answer and dropping it.
struct Reader {
    channel: RetryingChannel,
    token: String,
    /// Bytes of the answers received so far.
    received: Arc<AtomicU64>,
}

impl Reader {
    /// One unary call of `path`.
    async fn call<T: Message + Send + 'static>(
        self,
        path: &'static str,
        message: T,
    ) -> Result<(), tonic::Status> {
        let request = authorized(&self.token, message)
            .map_err(|error| tonic::Status::internal(error.to_string()))?;
        let mut grpc = tonic::client::Grpc::new(self.channel);
        grpc.ready()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        let answer = grpc
            .unary(
                request,
                PathAndQuery::from_static(path),
                ParsingCodec(std::marker::PhantomData),
            )
            .await?;
        self.received
            .fetch_add(answer.into_inner().bytes as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReadArgs {
    /// Run only the read benchmarks.
    #[arg(long)]
    pub reads_only: bool,
    /// Skip the read benchmarks.
    #[arg(long, conflicts_with = "reads_only")]
    pub no_reads: bool,
    /// Arrival rate of each read benchmark.
    #[arg(long, default_value_t = 2000)]
    pub read_rate: u32,
    /// Connections each read is measured over, one run per count (e.g. `1,8`): the requests
    /// of a run go to its connections in turn. One is a single client multiplexing every
    /// board's reads on one HTTP/2 connection, as a gateway would; several stand for boards
    /// with connections of their own. On this machine 1 and 8 measured the same.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub read_connections: Vec<u16>,
}

pub(crate) async fn run(
    clients: &Clients,
    reporting_url: &str,
    icss: &[String],
    seconds: u64,
    args: &ReadArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(!icss.is_empty(), "no ICS to read");
    let mut connections = vec![clients.reporting_channel.clone()];
    for _ in 1..args.read_connections.iter().copied().max().unwrap_or(1) {
        connections.push(crate::connect(reporting_url, &clients.tls).await?);
    }
    let total = count(args.read_rate, Duration::from_secs(seconds));
    let warmup = count(args.read_rate, Duration::from_secs(1));
    for read in ["GetOverview", "GetOutcomes", "GetMeasureView"] {
        for &connection_count in &args.read_connections {
            let channels = &connections[..usize::from(connection_count)];
            for (measured, requests) in [(false, warmup), (true, total)] {
                let received = Arc::new(AtomicU64::new(0));
                let sample = open_loop(args.read_rate, requests, |index| {
                    let ics = icss[index % icss.len()].clone();
                    let reader = Reader {
                        channel: channels[index % channels.len()].clone(),
                        // 2,000 reads a second is many boards' load: one board's token would meet
                        // its own call rate (ICS_TENANT_CALLS_PER_SEC) first, so the operator's is
                        // used; the read path is the same.
                        token: clients.operator.clone(),
                        received: received.clone(),
                    };
                    async move {
                        match read {
                            "GetOverview" => {
                                let request = GetOverviewRequest {
                                    scope: scope_of(&ics),
                                    as_of: None,
                                };
                                reader
                                    .call("/ics.reporting.v1.ReportingService/GetOverview", request)
                                    .await
                            }
                            "GetOutcomes" => {
                                let request = GetOutcomesRequest {
                                    scope: scope_of(&ics),
                                    as_of: None,
                                };
                                reader
                                    .call("/ics.reporting.v1.ReportingService/GetOutcomes", request)
                                    .await
                            }
                            _ => {
                                let request = GetMeasureViewRequest {
                                    ics_ods_code: ics,
                                    peer_group_id: String::new(),
                                    as_of: None,
                                };
                                reader
                                    .call(
                                        "/ics.reporting.v1.ReportingService/GetMeasureView",
                                        request,
                                    )
                                    .await
                            }
                        }
                    }
                })
                .await?;
                if measured {
                    sample.print(&format!(
                    "{read} of {} ICS(s) in turn at {}/s over {} connection(s) for {seconds} s (target p99 <= 5 ms at 2,000/s on the ICS-scale data set)",
                    icss.len(),
                    args.read_rate,
                    channels.len()
                ));
                    let answers = u64::try_from(sample.latencies.len()).unwrap_or(1).max(1);
                    println!(
                        "  answers received whole and parsed (not kept): {} bytes each on average",
                        received.load(Ordering::Relaxed) / answers
                    );
                }
            }
        }
    }
    Ok(())
}
