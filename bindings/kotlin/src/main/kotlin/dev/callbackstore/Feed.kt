package dev.callbackstore

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.ProducerScope
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.flowOn

/**
 * This organization's changes after [since] as they commit, oldest first,
 * each once: a cold [Flow] over [Organization.watch], one watch per
 * collector.
 *
 * ```
 * org.changesFlow(Since.Now).collect { change -> println(change.event.action) }
 * ```
 *
 * Cancelling the collector (or `take(n)`, `first {}`, ...) cancels the
 * library's watch; the flow throws the store's error when the store fails,
 * and a refused [since] (a cursor of another organization: a
 * `ValidationException`) when collected. To resume without a gap, keep the
 * `cursor` of the last change handled and collect `Since.Cursor(cursor)`.
 *
 * The watch's thread waits while the collector is behind (the channel's
 * buffer is full) instead of reading on: a slow collector slows the reading,
 * it never loses a change. Starting and cancelling a watch are blocking calls
 * (a first read, and waiting for the watch's thread): they run on
 * [Dispatchers.IO].
 */
fun Organization.changesFlow(since: Since = Since.Now): Flow<Change> = changesFlow(since) {}

/** [changesFlow], handing the started [Watch] to [started] first: the tests'
 * window on the watch the flow cancels. */
internal fun Organization.changesFlow(since: Since, started: (Watch) -> Unit): Flow<Change> = callbackFlow {
    val watch = watch(since, ChannelObserver(this))
    started(watch)
    awaitClose {
        // Returns once the watch's thread has ended: nothing is sent after.
        // Not closed: what is left (a flag) is freed with the object, and
        // whoever `started` handed it to may still ask `isRunning()`.
        watch.cancel()
    }
}.flowOn(Dispatchers.IO)

/** Sends a watch's changes into a callbackFlow's channel. Called on the
 * watch's own thread, one call at a time. */
private class ChannelObserver(private val scope: ProducerScope<Change>) : ChangeObserver {
    override fun onChanges(changes: List<Change>) {
        for (change in changes) {
            // Blocks this (native) thread while the buffer is full; fails
            // only once the flow is closed: then the watch stops.
            if (scope.trySendBlocking(change).isFailure) {
                throw ObserverException.Stop("the flow's collector is gone")
            }
        }
    }

    override fun onError(error: CallbackStoreException) {
        scope.close(error)
    }
}
