//! The request body of a gRPC call kept so that [`AddAccessToken`](super::AddAccessToken) can
//! send the call again after an `UNAUTHENTICATED` `invalid_token` refusal (feature `tonic`).
//!
//! A tonic body (`tonic::body::Body`) is read, before the call is sent, for as long as its
//! frames are ready without waiting and up to [`MAX_REPLAY_BYTES`]: a unary call's one message
//! (or any request stream that is already complete) is then kept and each attempt gets a copy;
//! a stream that would wait for the caller, or a larger body, is sent as it comes (what was
//! read first, then the rest) and is not replayed. Other body types are never read.

use bytes::Bytes;
use http::Request;

/// The largest request body kept for a replay: gRPC's default maximum message size.
#[cfg_attr(not(feature = "tonic"), allow(dead_code))]
pub(crate) const MAX_REPLAY_BYTES: usize = 4 * 1024 * 1024;

/// Reads a complete tonic body of a gRPC call into memory; returns the request (with a body
/// that yields the same bytes) and the bytes to replay, if it could be kept.
#[cfg(feature = "tonic")]
pub(crate) async fn keep_body<B: Send + 'static>(
    request: Request<B>,
) -> (Request<B>, Option<Bytes>) {
    use std::any::Any;
    use std::pin::Pin;
    use std::task::Poll;

    use futures_util::StreamExt as _;
    use http_body::{Body as _, Frame};
    use http_body_util::{BodyStream, Full, StreamBody};
    use tonic::body::Body;

    if !crate::rejection::is_grpc_request(request.headers()) {
        return (request, None);
    }
    let (parts, body) = request.into_parts();
    let mut slot = Some(body);
    let Some(tonic_body) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Body>>() else {
        let body = slot.expect("the body is still in the slot");
        return (Request::from_parts(parts, body), None);
    };
    let mut body = tonic_body
        .take()
        .expect("the body was just put in the slot");

    let mut read: Vec<Result<Frame<Bytes>, tonic::Status>> = Vec::new();
    let mut size = 0;
    let complete = loop {
        // Ready frames only: `None` when the body would wait for the caller.
        let next = futures_util::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match next {
            None => break false,
            Some(None) => break true,
            Some(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else {
                    read.push(Ok(frame));
                    break false; // trailers: keep the body as it is
                };
                size += data.len();
                read.push(Ok(frame));
                if size > MAX_REPLAY_BYTES {
                    break false;
                }
            }
            Some(Some(Err(status))) => {
                read.push(Err(status));
                break false;
            }
        }
    };
    let (body, kept) = if complete {
        let mut bytes = bytes::BytesMut::with_capacity(size);
        for frame in read.into_iter().flatten() {
            if let Ok(data) = frame.into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        let bytes = bytes.freeze();
        (Body::new(Full::new(bytes.clone())), Some(bytes))
    } else {
        let stream = futures_util::stream::iter(read).chain(BodyStream::new(body));
        (Body::new(StreamBody::new(stream)), None)
    };
    let mut slot = Some(body);
    let body = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .and_then(Option::take)
        .expect("B is tonic's body");
    (Request::from_parts(parts, body), kept)
}

/// Without the `tonic` feature no body is kept.
#[cfg(not(feature = "tonic"))]
#[allow(clippy::unused_async)]
pub(crate) async fn keep_body<B>(request: Request<B>) -> (Request<B>, Option<Bytes>) {
    (request, None)
}

/// The body of a replayed request: the kept bytes, or `B::default()` (empty).
// Without `tonic` the bytes are never kept, so the value is only dropped.
#[cfg_attr(not(feature = "tonic"), allow(clippy::needless_pass_by_value))]
pub(crate) fn replay_body<B: Default + 'static>(kept: Option<Bytes>) -> B {
    #[cfg(feature = "tonic")]
    if let Some(bytes) = kept {
        let mut slot = Some(tonic::body::Body::new(http_body_util::Full::new(bytes)));
        if let Some(body) = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<B>>()
            .and_then(Option::take)
        {
            return body;
        }
    }
    #[cfg(not(feature = "tonic"))]
    let _ = kept;
    B::default()
}

#[cfg(all(test, feature = "tonic"))]
mod tests {
    use bytes::Bytes;
    use http::Request;
    use http_body::Frame;
    use http_body_util::{BodyExt as _, Full, StreamBody};
    use tonic::body::Body;

    use super::{keep_body, replay_body};

    fn call(body: Body, content_type: &str) -> Request<Body> {
        Request::post("/weather.v1.WeatherForecasts/GetForecast")
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    }

    /// A unary call's body (complete when sent) is kept, and the request still carries it; a
    /// stream that waits for the caller is not kept and goes out whole, in order; a non-gRPC
    /// request is not read.
    #[tokio::test]
    async fn complete_bodies_are_kept_and_waiting_streams_pass_through() {
        let message = Bytes::from_static(b"\0\0\0\0\x02\x08\x01");
        let (request, kept) = keep_body(call(
            Body::new(Full::new(message.clone())),
            "application/grpc",
        ))
        .await;
        assert_eq!(kept.as_ref(), Some(&message));
        let sent = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(sent, message);
        let replayed: Body = replay_body(kept);
        assert_eq!(replayed.collect().await.unwrap().to_bytes(), message);

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
        tx.send(Ok(Frame::data(Bytes::from_static(b"first "))))
            .await
            .unwrap();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let (request, kept) =
            keep_body(call(Body::new(StreamBody::new(stream)), "application/grpc")).await;
        assert!(kept.is_none(), "a stream that waits is not kept");
        tx.send(Ok(Frame::data(Bytes::from_static(b"second"))))
            .await
            .unwrap();
        drop(tx);
        let sent = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(sent, Bytes::from_static(b"first second"));

        let (request, kept) = keep_body(call(
            Body::new(Full::new(message.clone())),
            "application/json",
        ))
        .await;
        assert!(kept.is_none(), "not a gRPC call");
        assert_eq!(
            request.into_body().collect().await.unwrap().to_bytes(),
            message
        );
        let empty: Body = replay_body(None);
        assert!(empty.collect().await.unwrap().to_bytes().is_empty());
    }
}
