//! Writes whose answer matters only by its status: events, bindings, the simulated
//! kubelets' status reports and Lease renewals. kube's typed calls parse the object
//! the server echoes back (a whole Pod, managedFields included) just to drop it;
//! these read the body as text only (kube turns an error status into `Error::Api`
//! from it) and never decode it.

use kube::Client;

/// A request as `kube::core::Request`'s builders make it.
pub type Built = Result<http::Request<Vec<u8>>, kube::core::request::Error>;

/// Sends `request`; succeeds if the server answered with a success status.
pub async fn status_only(client: &Client, request: Built) -> Result<(), kube::Error> {
    client.request_text(request.map_err(kube::Error::BuildRequest)?).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use std::future::Ready;
    use std::task::{Context, Poll};

    /// Answers every request with one status and body.
    #[derive(Clone)]
    struct Answer(u16, &'static str);

    impl tower_service::Service<http::Request<kube::client::Body>> for Answer {
        type Response = http::Response<Full<Bytes>>;
        type Error = std::convert::Infallible;
        type Future = Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<kube::client::Body>) -> Self::Future {
            let mut resp = http::Response::new(Full::new(Bytes::from_static(self.1.as_bytes())));
            *resp.status_mut() = http::StatusCode::from_u16(self.0).unwrap();
            std::future::ready(Ok(resp))
        }
    }

    fn create() -> Built {
        kube::core::Request::new("/api/v1/namespaces/default/events")
            .create(&Default::default(), br#"{"metadata":{"name":"e"}}"#.to_vec())
    }

    #[tokio::test]
    async fn success_is_the_status_whatever_the_body() {
        // A body no Event decoder would accept: a typed create would fail on it.
        let client = Client::new(Answer(201, "not an Event"), "default");
        status_only(&client, create()).await.unwrap();
    }

    #[tokio::test]
    async fn an_error_status_is_the_servers_error() {
        let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"events \"e\" already exists","reason":"AlreadyExists","code":409}"#;
        let client = Client::new(Answer(409, status), "default");
        match status_only(&client, create()).await {
            Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
            other => panic!("{other:?}"),
        }
    }
}
