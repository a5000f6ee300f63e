//! The worker pool that runs the handler, and the [`Responder`] through which an answer gets
//! back to the event loop, from a worker at once or from any thread later.

use super::stream::ResponseStream;
use super::{Request, Response, Shared};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

/// Stack of a worker thread: handlers build JSON and wait on channels, nothing deep.
const WORKER_STACK_BYTES: usize = 512 * 1024;

/// A request for a worker, with where its answer goes.
pub(super) struct Job {
    pub(super) request: Request,
    pub(super) responder: Responder,
}

/// Starts `shared.limits.workers` workers (at least one) and returns the queue that feeds
/// them. The workers end when the queue's sender is dropped (the event loop ended).
pub(super) fn spawn(shared: &Arc<Shared>) -> std::io::Result<Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for _ in 0..shared.limits.workers.max(1) {
        let queue = queue.clone();
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("http-worker".into())
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || work(&queue, &shared))?;
    }
    Ok(jobs)
}

fn work(queue: &Mutex<Receiver<Job>>, shared: &Shared) {
    loop {
        // The lock is held only while waiting for the next job, never while serving it.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Job { request, responder }) = job else {
            return;
        };
        serve(shared, request, responder);
    }
}

/// Runs the handler on one request, on a worker or on the event loop
/// ([`super::Handler::serves_without_waiting`]). A handler that panics costs its request (the
/// responder, dropped unanswered, sends a 500), not the thread.
pub(super) fn serve(shared: &Shared, request: Request, responder: Responder) {
    let served = std::panic::catch_unwind(AssertUnwindSafe(|| {
        shared.handler.serve(request, responder)
    }));
    if served.is_err() {
        tracing::error!("an HTTP handler panicked; its request was answered 500");
    }
}

/// Where one request's answer goes. Send it once, from any thread, now or later; a responder
/// dropped without an answer answers `500`, so a request is never left without one. A
/// responder of the event loop may also open a chunked stream instead ([`Responder::stream`]).
pub struct Responder {
    deliver: Option<Box<dyn FnOnce(Response) + Send>>,
    /// Opens a stream on the connection instead of answering once; `None` for a responder
    /// that is not the event loop's ([`Responder::new`], [`Responder::channel`]).
    open_stream: Option<Box<dyn FnOnce(Response) -> ResponseStream + Send>>,
}

impl Responder {
    /// A responder that hands the answer to `deliver`.
    pub fn new(deliver: impl FnOnce(Response) + Send + 'static) -> Responder {
        Responder {
            deliver: Some(Box::new(deliver)),
            open_stream: None,
        }
    }

    /// A responder that may also open a stream through `open_stream`.
    pub(super) fn streaming(
        deliver: impl FnOnce(Response) + Send + 'static,
        open_stream: impl FnOnce(Response) -> ResponseStream + Send + 'static,
    ) -> Responder {
        Responder {
            deliver: Some(Box::new(deliver)),
            open_stream: Some(Box::new(open_stream)),
        }
    }

    /// Answers with `head` (its status and headers; its body is ignored) and a body sent in
    /// chunks through the [`ResponseStream`], for as long as the stream lives. Gives the
    /// responder back when it cannot stream (one made by [`Responder::new`]).
    pub fn stream(mut self, head: Response) -> Result<ResponseStream, Responder> {
        match self.open_stream.take() {
            Some(open_stream) => {
                // Answered by the stream: dropping the responder sends nothing more.
                self.deliver = None;
                Ok(open_stream(head))
            }
            None => Err(self),
        }
    }

    /// A responder and the channel its answer arrives on, for a caller that waits.
    pub fn channel() -> (Responder, Receiver<Response>) {
        let (sender, receiver) = mpsc::channel();
        let responder = Responder::new(move |response| {
            let _ = sender.send(response);
        });
        (responder, receiver)
    }

    pub fn send(mut self, response: Response) {
        if let Some(deliver) = self.deliver.take() {
            deliver(response);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(deliver) = self.deliver.take() {
            deliver(Response {
                status: 500,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"code":"internal","message":"the request was dropped unanswered"}"#
                    .to_vec(),
            });
        }
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Responder")
            .field("answered", &self.deliver.is_none())
            .finish()
    }
}
