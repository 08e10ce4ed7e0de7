// The change feed as an AsyncThrowingStream, over the generated
// `Organization.watch(since:observer:)` and `ChangeObserver` (see README.md,
// "Watching the queue"). Nothing of the feed is re-implemented here: the
// library's watch thread follows the feed and hands each change over once,
// in order; this file only forwards them to the stream.
import Foundation

extension Organization {
    /// This organization's changes after `since` (`.now` by default), as they
    /// commit, oldest first, each once:
    ///
    ///     for try await change in acme.changeStream() { ... }
    ///
    /// The stream ends by throwing when the store fails (a
    /// `CallbackStoreError`) or `since` is refused (`.ValidationError`, e.g. a
    /// cursor of another organization). Ending the loop, cancelling its task
    /// or dropping the stream cancels the library's watch. To resume without
    /// a gap, keep the `cursor` of the last change handled and pass
    /// `.cursor(cursor:)`.
    ///
    /// The stream buffers what the consumer has not read yet (no change may
    /// be dropped); the watch reads a page (up to 1000 changes) at a time.
    public func changeStream(since: Since = .now) -> AsyncThrowingStream<Change, Error> {
        AsyncThrowingStream { continuation in
            do {
                let watch = try self.watch(since: since, observer: StreamObserver(continuation))
                // Called once the consumer is gone or the stream finished;
                // cancel() waits for the watch's thread, so no change is
                // yielded after it.
                continuation.onTermination = { @Sendable _ in watch.cancel() }
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }
}

/// Forwards a watch's changes to a stream's continuation. Called on the
/// watch's own thread, one call at a time.
private final class StreamObserver: ChangeObserver, @unchecked Sendable {
    // Continuation is Sendable; the class holds nothing else.
    private let continuation: AsyncThrowingStream<Change, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<Change, Error>.Continuation) {
        self.continuation = continuation
    }

    func onChanges(changes: [Change]) throws {
        for change in changes {
            if case .terminated = continuation.yield(change) {
                // Nobody reads any more: stop the watch instead of reading on.
                throw ObserverError.Stop(reason: "the stream's consumer is gone")
            }
        }
    }

    func onError(error: CallbackStoreError) throws {
        continuation.finish(throwing: error)
    }
}
