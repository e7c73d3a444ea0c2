//! `serve` over a real socket: health, reflection, the message size limit and the drain order.

use std::time::Duration;

use ics_service_kit::server::{ServeOptions, serve};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const TRUSTS: &str = "ics.trusts.v1.TrustsService";

async fn channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(endpoint.to_owned())
        .expect("valid endpoint uri")
        .connect()
        .await
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn serves_health_and_reflection_then_drains_in_order() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
    let shutdown = CancellationToken::new();
    let options = ServeOptions::new(listener, vec![TRUSTS])
        .with_grace(Duration::from_secs(20))
        .with_max_message_bytes(1024);
    let server = tokio::spawn(serve(options, Routes::default(), shutdown.clone()));

    let mut health = HealthClient::new(
        channel(&endpoint)
            .await
            .expect("server accepts connections"),
    );
    for service in ["", TRUSTS] {
        let status = health
            .check(check(service))
            .await
            .expect("health check answers")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }

    let oversized = health
        .check(check(&"x".repeat(4096)))
        .await
        .expect_err("a 4 KiB request exceeds the 1 KiB limit");
    assert_eq!(oversized.code(), tonic::Code::ResourceExhausted);

    let mut reflection = ServerReflectionClient::new(
        channel(&endpoint)
            .await
            .expect("server accepts connections"),
    );
    let list_services = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([list_services]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("reflection stream")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
        panic!("expected a service list, got {:?}", answer.message_response);
    };
    let names: Vec<String> = listed
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert!(names.iter().any(|name| name == TRUSTS), "{names:?}");
    assert!(
        names.iter().any(|name| name == "grpc.health.v1.Health"),
        "{names:?}"
    );
    drop(answers);
    drop(reflection);

    // The same through v1alpha, which older tools speak.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(
            channel(&endpoint)
                .await
                .expect("server accepts connections"),
        );
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }]))
            .await
            .expect("v1alpha reflection answers")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("v1alpha reflection stream")
            .expect("one answer");
        let Some(MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
            panic!("expected a service list, got {:?}", answer.message_response);
        };
        assert!(
            listed.service.iter().any(|service| service.name == TRUSTS),
            "{listed:?}"
        );
    }

    let mut watch = health
        .watch(check(TRUSTS))
        .await
        .expect("health watch opens")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("watch stream")
        .expect("status");
    assert_eq!(first.status(), ServingStatus::Serving);

    let shutdown_started = tokio::time::Instant::now();
    shutdown.cancel();
    let during_drain = watch
        .message()
        .await
        .expect("watch stream")
        .expect("status");
    assert_eq!(during_drain.status(), ServingStatus::NotServing);

    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("an open health watch does not hold the drain for the whole grace")
        .expect("server task")
        .expect("serve returns cleanly");
    assert!(shutdown_started.elapsed() < Duration::from_secs(10));
    assert!(
        channel(&endpoint).await.is_err(),
        "no connections accepted after shutdown"
    );
}

/// Every field recorded on a span after its creation, as `(name, value)`.
#[derive(Clone, Default)]
struct RecordedFields(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl tracing::field::Visit for RecordedFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecordedFields {
    fn on_record(
        &self,
        _span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut self.clone());
    }
}

/// A call the server fails carries its gRPC status on its span, marked as an error, so that a
/// trace shows it failed.
#[tokio::test]
async fn a_call_the_server_fails_is_an_error_on_its_span() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let recorded = RecordedFields::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorded.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
    let shutdown = CancellationToken::new();
    // No service behind the routes: any platform call is UNIMPLEMENTED, the server's failing.
    let server = tokio::spawn(serve(
        ServeOptions::new(listener, vec![TRUSTS]),
        Routes::default(),
        shutdown.clone(),
    ));
    let mut trusts = ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient::new(
        channel(&endpoint)
            .await
            .expect("server accepts connections"),
    );
    let refused = trusts
        .list_organisations(ics_proto::trusts::v1::ListOrganisationsRequest::default())
        .await
        .expect_err("no trusts service here");
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    shutdown.cancel();
    server.await.expect("server task").expect("served");
    let fields = recorded.0.lock().expect("not poisoned").clone();
    assert!(
        fields.contains(&("rpc.grpc.status_code".to_owned(), "12".to_owned())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("otel.status_code".to_owned(), "ERROR".to_owned())),
        "{fields:?}"
    );
}
